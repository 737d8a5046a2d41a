import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeWith } from '../../codec/index.js';
import { decodeTransactionResult } from '../results.js';
import { executeBatch } from '../sdt.js';
import type { BatchContext } from '../sdt.js';
import type { MemoryContractState } from '../state.js';
import { jobLogPage, jobView } from './queries.js';
import type { JobAction } from './transactions.js';
import { jobViewSchema } from './views.js';
import type { JobView } from './views.js';
import { JobHarness, hash, jobRequest, keys, organizations } from './testing/fixtures.js';
import type { OrganizationName } from './testing/fixtures.js';

const jobIds = ['job-0001', 'job-0002', 'job-0003'];
const jobId = fc.constantFrom('job-0001', 'job-0001', ...jobIds);

/** Mostly one of the organizations that may plausibly send `action`, sometimes anyone. */
function sentBy(likely: OrganizationName[], action: fc.Arbitrary<JobAction>) {
  return fc.record({
    organization: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...likely) },
      { weight: 1, arbitrary: fc.constantFrom(...organizations) },
    ),
    action,
  });
}

const signedArbitrary = fc.oneof(
  sentBy(
    ['alice', 'carol'],
    fc
      .record({
        jobId,
        owner: fc.constantFrom('bob', 'bob', 'alice', 'pending', 'auditor', 'nobody'),
        plan: fc.constantFrom(1, 1, 2),
      })
      .map(({ jobId: id, owner, plan }) => jobRequest(id, { owner, planHash: hash(plan) })),
  ),
  sentBy(
    ['bob'],
    fc.record({
      kind: fc.constant('jobDecision' as const),
      jobId,
      decision: fc.constantFrom('APPROVED' as const, 'APPROVED' as const, 'REJECTED' as const),
      reason: fc.constantFrom('POLICY', 'MANUAL', 'QUERY_REJECTED'),
      detail: fc.constant(''),
    }),
  ),
  sentBy(
    ['bob'],
    fc
      .record({
        jobId,
        status: fc.constantFrom('COMPLETED' as const, 'FAILED' as const),
        hashed: fc.nat({ max: 5 }),
        code: fc.constantFrom('OK', 'JOB_FAILED'),
      })
      .map(({ jobId: id, status, hashed, code }): JobAction => ({
        kind: 'jobResult',
        jobId: id,
        status,
        // Mostly consistent with the status, now and then not (a hash for FAILED, none for COMPLETED).
        resultHash: (status === 'COMPLETED') === (hashed !== 0) ? hash(hashed + 10) : null,
        resultBytes: hashed * 100,
        code,
        detail: '',
        suppressedGroups: 0,
      })),
  ),
);

/** A transaction to put in a block: a signed action (now and then forged), a replay, or junk bytes. */
const transactionArbitrary = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      type: fc.constant('action' as const),
      signed: signedArbitrary,
      forged: fc.nat({ max: 9 }).map((draw) => draw === 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('replay' as const), index: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('junk' as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
  },
);
type TransactionSpec = typeof transactionArbitrary extends fc.Arbitrary<infer T> ? T : never;

const blocksArbitrary = fc.array(fc.array(transactionArbitrary, { maxLength: 5 }), {
  minLength: 1,
  maxLength: 10,
});

/** The state machine's rules, as every job view and the log must show them. */
function checkInvariants(state: MemoryContractState, group: string, previous: Map<string, JobView>): void {
  const log = jobLogPage(state, group, { fromSeq: 0 });
  expect(log.entries.map((entry) => entry.seq)).toEqual(log.entries.map((_, index) => index));
  expect(log.nextSeq).toBe(log.endSeq);
  for (const id of jobIds) {
    const view = jobView(state, group, id);
    const entries = log.entries.filter((entry) => entry.jobId === id);
    if (view === undefined) {
      expect(entries).toEqual([]);
      continue;
    }
    encodeWith(jobViewSchema, view);
    expect(view.group).toBe(group);
    expect(['bob', 'alice']).toContain(view.owner);
    expect(['alice', 'carol', 'bob']).toContain(view.requester);
    switch (view.state) {
      case 'REQUESTED':
        expect(view.decision).toBeNull();
        expect(view.result).toBeNull();
        break;
      case 'APPROVED':
      case 'REJECTED':
        expect(view.decision?.decision).toBe(view.state);
        expect(view.result).toBeNull();
        break;
      case 'COMPLETED':
      case 'FAILED':
        expect(view.decision?.decision).toBe('APPROVED');
        expect(view.result?.status).toBe(view.state);
        expect(view.result?.resultHash === null).toBe(view.state === 'FAILED');
        break;
    }
    // Steps happen in order, and the log has one entry per recorded step, at its position.
    const steps = [view.request, view.decision, view.result].filter((step) => step !== null);
    for (let index = 1; index < steps.length; index++) {
      const [before, after] = [steps[index - 1]!, steps[index]!];
      expect(after.height * 10_000 + after.transactionIndex).toBeGreaterThan(
        before.height * 10_000 + before.transactionIndex,
      );
    }
    expect(entries.map((entry) => entry.kind)).toEqual(
      ['requested', 'decided', 'finished'].slice(0, steps.length),
    );
    entries.forEach((entry, index) => {
      expect(entry).toMatchObject({
        requester: view.requester,
        owner: view.owner,
        height: steps[index]!.height,
        transactionIndex: steps[index]!.transactionIndex,
      });
    });
    // What is recorded stays recorded: a later block only adds the next step.
    const before = previous.get(id);
    if (before !== undefined) {
      expect(view.request).toEqual(before.request);
      expect({ ...view, planHash: [...view.planHash] }).toMatchObject({
        requester: before.requester,
        owner: before.owner,
        planHash: [...before.planHash],
      });
      if (before.decision !== null) expect(view.decision).toEqual(before.decision);
      if (before.result !== null) expect(view.result).toEqual(before.result);
    }
    previous.set(id, view);
  }
}

describe('job execution over random sequences', () => {
  it('never throws, is deterministic, keeps the state machine’s rules, and a refused transaction writes nothing', () => {
    fc.assert(
      fc.property(blocksArbitrary, (blocks) => {
        const harness = new JobHarness();
        const twin = harness.state.clone();
        const sent: Uint8Array[] = [];
        const previous = new Map<string, JobView>();
        const encode = (spec: TransactionSpec): Uint8Array => {
          switch (spec.type) {
            case 'action': {
              // Forged: signed with the supervisor's key, which no other actor has registered.
              const options = spec.forged ? { key: keys.supervisor } : {};
              const bytes = harness.job(spec.signed.organization, spec.signed.action, options);
              sent.push(bytes);
              return bytes;
            }
            case 'replay':
              return sent.length === 0 ? Uint8Array.of(0) : (sent[spec.index % sent.length] as Uint8Array);
            case 'junk':
              return spec.bytes;
          }
        };
        for (const block of blocks) {
          const transactions = block.map(encode);
          const context: BatchContext = {
            partitionId: harness.group,
            configEpoch: 1,
            height: harness.height + 1,
            timestamp: harness.time + 1000,
            registry: harness.registry,
          };
          const before = harness.state.clone();
          const outcome = harness.run(transactions);
          // Determinism: another replica fed the same block decides and writes the same bytes.
          const twinOutcome = executeBatch(twin, context, transactions);
          expect(twinOutcome.results).toEqual(outcome.results);
          expect(twin.snapshot()).toEqual(harness.state.snapshot());
          // A refused transaction writes nothing: swapping each for junk keeps every other result
          // and the state byte for byte.
          const swapped = transactions.map((bytes, index) =>
            outcome.decoded[index]?.status === 'REJECTED' ? Uint8Array.of(0) : bytes,
          );
          const swappedOutcome = executeBatch(before, context, swapped);
          expect(before.snapshot()).toEqual(harness.state.snapshot());
          swappedOutcome.results.forEach((bytes, index) => {
            if (outcome.decoded[index]?.status === 'OK') expect(bytes).toEqual(outcome.results[index]);
            else expect(decodeTransactionResult(bytes).status).toBe('REJECTED');
          });
          // Every OK names a step the view records, at the position it names.
          for (const result of outcome.decoded) {
            if (result.status !== 'OK' || result.type !== 'job') continue;
            const view = jobView(harness.state, harness.group, result.jobId);
            const step =
              result.kind === 'jobRequest'
                ? view?.request
                : result.kind === 'jobDecision'
                  ? view?.decision
                  : view?.result;
            expect(step).toMatchObject({ height: result.height, transactionIndex: result.transactionIndex });
            expect(result.organization).toBe(result.kind === 'jobRequest' ? view?.requester : view?.owner);
          }
          checkInvariants(harness.state, harness.group, previous);
        }
      }),
      { numRuns: 60 },
    );
  });
});
