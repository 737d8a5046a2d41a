import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { refusal } from '../../testing/refusal.js';
import { Coalescer } from './coalescer.js';
import type { CoalescingPolicy } from './coalescer.js';

/** A submitted batch whose answer the test gives. */
interface Submitted {
  readonly entries: readonly string[];
  answer(outcomes?: readonly string[]): void;
  fail(reason: unknown): void;
}

/** A coalescer of strings whose submit function records each batch and waits for the test's answer. */
function harness(policy: Partial<CoalescingPolicy> & { batchEntriesMax?: number } = {}) {
  const batches: Submitted[] = [];
  const waits: { ms: number; end: () => void }[] = [];
  const coalescer = new Coalescer<string, string>({
    inFlightBatchesMax: policy.inFlightBatchesMax ?? 2,
    lingerMs: policy.lingerMs ?? 0,
    batchEntriesMax: policy.batchEntriesMax ?? 4,
    submit: (entries) =>
      new Promise((resolve, reject) => {
        batches.push({
          entries: [...entries],
          answer: (outcomes) => resolve(outcomes ?? entries.map((entry) => `ok ${entry}`)),
          fail: reject,
        });
      }),
    wait: (ms) => new Promise((end) => waits.push({ ms, end })),
  });
  return { coalescer, batches, waits };
}

/** Lets every settled promise's handlers run. */
const drained = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Coalescer', () => {
  it('publishes at once while the queue is under its in-flight limit', () => {
    const { coalescer, batches } = harness();
    coalescer.add('k', ['a']);
    coalescer.add('k', ['b', 'c']);
    expect(batches.map((batch) => batch.entries)).toEqual([['a'], ['b', 'c']]);
  });

  it('at the limit, queues what comes, and the first batch to end lets all of it go in one', async () => {
    const { coalescer, batches } = harness({ inFlightBatchesMax: 2 });
    coalescer.add('k', ['a']);
    coalescer.add('k', ['b']);
    for (const entry of ['c', 'd', 'e']) coalescer.add('k', [entry]);
    expect(batches).toHaveLength(2);
    batches[1]!.answer();
    await drained();
    expect(batches.map((batch) => batch.entries)).toEqual([['a'], ['b'], ['c', 'd', 'e']]);
  });

  it('cuts what is queued into batches of at most batchEntriesMax, in queue order', async () => {
    const { coalescer, batches } = harness({ inFlightBatchesMax: 1, batchEntriesMax: 3 });
    coalescer.add('k', ['a']);
    coalescer.add('k', ['b', 'c']);
    coalescer.add('k', ['d', 'e', 'f', 'g']);
    batches[0]!.answer();
    await drained();
    expect(batches.map((batch) => batch.entries)).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f', 'g']]);
  });

  it('limits each queue on its own', () => {
    const { coalescer, batches } = harness({ inFlightBatchesMax: 1 });
    coalescer.add('one', ['a']);
    coalescer.add('one', ['b']);
    coalescer.add('two', ['c']);
    expect(batches.map((batch) => batch.entries)).toEqual([['a'], ['c']]);
  });

  it('gives each entry its own outcome, and a failed batch’s failure to its entries only', async () => {
    const { coalescer, batches } = harness({ inFlightBatchesMax: 1 });
    const first = coalescer.add('k', ['a']);
    const second = coalescer.add('k', ['b']);
    const third = coalescer.add('k', ['c']);
    const failure = new LedgerbusError(ErrorCode.Timeout, 'no answer');
    batches[0]!.fail(failure);
    await drained();
    batches[1]!.answer(['refused b', 'ok c']);
    expect(await Promise.all([...first.outcomes, ...second.outcomes, ...third.outcomes])).toEqual([
      { status: 'rejected', reason: failure },
      { status: 'fulfilled', value: 'refused b' },
      { status: 'fulfilled', value: 'ok c' },
    ]);
    await drained();
    expect(coalescer.activeQueues).toBe(0);
  });

  it('fails a batch whose submit answers the wrong number of outcomes, and goes on', async () => {
    const { coalescer, batches } = harness({ inFlightBatchesMax: 1 });
    const first = coalescer.add('k', ['a', 'b']);
    const second = coalescer.add('k', ['c']);
    batches[0]!.answer(['one outcome']);
    const [a, b] = await Promise.all(first.outcomes);
    expect(a?.status).toBe('rejected');
    expect(b?.status).toBe('rejected');
    batches[1]!.answer();
    expect(await Promise.all(second.outcomes)).toEqual([{ status: 'fulfilled', value: 'ok c' }]);
  });

  it('says when added entries are submitted: not while they wait for the limit', async () => {
    const { coalescer, batches } = harness({ inFlightBatchesMax: 1 });
    await coalescer.add('k', ['a']).submitted;
    let submitted = false;
    void coalescer.add('k', ['b', 'c']).submitted.then(() => (submitted = true));
    await drained();
    expect(submitted).toBe(false);
    batches[0]!.answer();
    await drained();
    expect(submitted).toBe(true);
    expect(batches[1]!.entries).toEqual(['b', 'c']);
  });

  it('lingers while under the limit, gathering what comes, and not past a full batch', async () => {
    const { coalescer, batches, waits } = harness({ lingerMs: 25, batchEntriesMax: 4 });
    coalescer.add('k', ['a']);
    coalescer.add('k', ['b']);
    expect(batches).toHaveLength(0);
    expect(waits.map((wait) => wait.ms)).toEqual([25]);
    waits[0]!.end();
    await drained();
    expect(batches.map((batch) => batch.entries)).toEqual([['a', 'b']]);
    coalescer.add('k', ['c', 'd', 'e', 'f']);
    expect(batches.map((batch) => batch.entries)).toEqual([
      ['a', 'b'],
      ['c', 'd', 'e', 'f'],
    ]);
  });

  it('does not linger again for entries that waited for the in-flight limit', async () => {
    const { coalescer, batches, waits } = harness({ lingerMs: 25, inFlightBatchesMax: 1 });
    coalescer.add('k', ['a']);
    waits[0]!.end();
    await drained();
    coalescer.add('k', ['b']);
    batches[0]!.answer();
    await drained();
    expect(batches.map((batch) => batch.entries)).toEqual([['a'], ['b']]);
    expect(waits).toHaveLength(1);
  });

  it('refuses a policy that would never publish', async () => {
    const refused = await refusal(() => harness({ inFlightBatchesMax: 0 }));
    expect(refused.code).toBe(ErrorCode.BadConfig);
    expect(refused.message).toContain('inFlightBatchesMax');
  });
});
