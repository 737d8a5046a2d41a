import { afterEach, describe, expect, it } from 'vitest';
import type { CborValue } from '../../codec/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import { TransactionSubmitter } from '../session/submitter.js';
import { partsFixture, settleWithClock, startNodeStandIn } from '../testing/parts-fixture.js';
import type { PartsFixture } from '../testing/parts-fixture.js';
import { DeliveryConfirmer } from './delivery-confirmer.js';
import { PartitionConsumer } from './partition-consumer.js';
import { PayloadFetcher } from './payload-fetcher.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A consumer of demo/0 whose node answers each poll with the next of `answers` (a function may throw). */
async function consumerPolling(answers: ((poll: Record<string, CborValue>) => CborValue)[]): Promise<{
  fixture: PartsFixture;
  context: ConnectorContext;
  consumer: PartitionConsumer;
  polls: Record<string, CborValue>[];
}> {
  const fixture = partsFixture();
  cleanups.push(() => fixture.close());
  const context = await fixture.context(1, { random: () => 0 });
  const polls: Record<string, CborValue>[] = [];
  const node = await startNodeStandIn(context.organization, {
    poll: (body) => {
      const poll = body as Record<string, CborValue>;
      polls.push(poll);
      const answer = answers[polls.length - 1];
      if (answer === undefined) {
        context.lifecycle.stop();
        throw new LedgerbusError(ErrorCode.ConnectionClosed, 'the test is over');
      }
      return answer(poll);
    },
  });
  cleanups.push(() => node.close());
  const session = fixture.session(context, 1, node.node);
  cleanups.push(() => session.close());
  const submitter = new TransactionSubmitter({ ...context, session });
  const consumer = new PartitionConsumer({
    ...context,
    topic: 'demo',
    partition: 0,
    session,
    fetcher: new PayloadFetcher({ ...context, session }),
    confirmer: new DeliveryConfirmer({ ...context, submitter }),
  });
  return { fixture, context, consumer, polls };
}

const unavailable = (): never => {
  throw new LedgerbusError(ErrorCode.Timeout, 'no leader yet', { retriable: true });
};
const emptyPage = (nextOffset: number) => (): CborValue => ({
  evidences: [],
  messages: [],
  nextOffset,
  endOffset: nextOffset,
  height: 1,
});

describe('PartitionConsumer', () => {
  it('backs off 1 s doubling after failed rounds, and starts over after one that succeeds', async () => {
    const { fixture, consumer } = await consumerPolling([
      unavailable,
      unavailable,
      unavailable,
      emptyPage(0),
      unavailable,
    ]);
    await settleWithClock(fixture.clock, consumer.run());
    // random() = 0: the low end of each jittered wait, 0.8 × 1 s, 2 s, 4 s; then 1 s again.
    expect(fixture.clock.waits).toEqual([800, 1_600, 3_200, 800]);
  });

  it('polls from its durable cursor and moves it to the page’s end', async () => {
    const { fixture, context, consumer, polls } = await consumerPolling([emptyPage(7), emptyPage(7)]);
    await settleWithClock(fixture.clock, consumer.run());
    expect(polls.map((poll) => poll['fromOffset'])).toEqual([0, 7, 7]);
    expect(polls[0]).toMatchObject({ group: 'demo/0', limit: 200 });
    expect(context.database.cursor('demo/0')).toBe(7);
  });

  it('refuses a malformed page entry as SCHEMA_MISMATCH without moving its cursor', async () => {
    const { context, consumer } = await consumerPolling([
      () => ({
        evidences: [],
        messages: [{ evidence: 0, offset: 'first', id: 'm1', state: 'ACCEPTED', messageIndex: 0 }],
        nextOffset: 3,
        endOffset: 3,
        height: 1,
      }),
    ]);
    const error = await consumer.round().catch((caught: unknown) => caught);
    expect((error as LedgerbusError).code).toBe(ErrorCode.SchemaMismatch);
    expect(context.database.cursor('demo/0')).toBe(0);
  });
});
