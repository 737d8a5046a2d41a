import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeWith } from '../../codec/index.js';
import { decodeTransactionResult } from '../results.js';
import { executeBatch } from '../sdt.js';
import type { BatchContext } from '../sdt.js';
import type { MemoryContractState } from '../state.js';
import { auditView, escrowLogPage, escrowRecordView } from './queries.js';
import type { EscrowAction } from './transactions.js';
import { auditViewSchema, escrowRecordViewSchema } from './views.js';
import {
  EscrowHarness,
  escrowMessage,
  escrowPolicy,
  keys,
  makeEscrowRegistry,
  sealed,
} from './testing/fixtures.js';
import type { OrganizationName } from './testing/fixtures.js';

const actors: OrganizationName[] = [
  'alice',
  'h1',
  'h2',
  'h3',
  'h4',
  'bob',
  'regulator',
  'inspector',
  'pending',
];
const messageIds = ['m-1', 'm-2', 'ghost'];
const requestIds = ['r-1', 'r-2', 'r-3'];

/** Mostly one of the organizations that may plausibly send `action`, sometimes anyone. */
function sentBy(likely: OrganizationName[], action: fc.Arbitrary<EscrowAction>) {
  return fc.record({
    organization: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...likely) },
      { weight: 1, arbitrary: fc.constantFrom(...actors) },
    ),
    action,
  });
}

const requestId = fc.constantFrom('r-1', 'r-1', ...requestIds);
const signedArbitrary = fc.oneof(
  sentBy(
    ['h1', 'h2', 'h3', 'h4'],
    fc.record({
      kind: fc.constant('attest' as const),
      attestations: fc.array(
        fc.record({
          id: fc.constantFrom('m-1', 'm-1', 'm-2', 'ghost'),
          share: fc.constantFrom(
            'VERIFIED' as const,
            'VERIFIED' as const,
            'INVALID' as const,
            'NONE' as const,
          ),
          chunksHeld: fc.nat({ max: 3 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    }),
  ),
  sentBy(
    ['regulator', 'inspector'],
    fc.record({
      kind: fc.constant('auditRequest' as const),
      requestId,
      id: fc.constantFrom(...messageIds),
      reason: fc.constantFrom('subpoena', 'routine'),
    }),
  ),
  sentBy(
    ['bob', 'h1', 'h4', 'alice', 'inspector'],
    fc.record({ kind: fc.constant('auditApprove' as const), requestId }),
  ),
  sentBy(
    ['h1', 'h2', 'h3', 'h4'],
    fc.record({
      kind: fc.constant('shareRelease' as const),
      requestId,
      share: fc.integer({ min: 1, max: 2 }).map(sealed),
    }),
  ),
  sentBy(
    ['regulator', 'inspector'],
    fc.record({
      kind: fc.constant('auditOutcome' as const),
      requestId,
      outcome: fc.constantFrom('RETRIEVED' as const, 'FAILED' as const),
      contentRoot: fc.constant(null),
      badShares: fc.constant([]),
      badHolders: fc.constant([]),
      detail: fc.constant(''),
    }),
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

const scenarioArbitrary = fc.record({
  auditApprovals: fc.constantFrom(0, 1, 2),
  blocks: fc.array(fc.array(transactionArbitrary, { maxLength: 5 }), { minLength: 1, maxLength: 8 }),
});

/** Checks the escrow invariants of messages m-1, m-2 and every audit, and that views fit their schemas. */
function checkInvariants(state: MemoryContractState, group: string): void {
  for (const id of ['m-1', 'm-2']) {
    const view = escrowRecordView(state, group, id);
    if (view === undefined) throw new Error(`${id} is not escrowed`);
    encodeWith(escrowRecordViewSchema, view);
    const organizations = view.attestations.map((entry) => entry.organization);
    expect(new Set(organizations).size).toBe(organizations.length);
    const complained = view.attestations.some((entry) => entry.share === 'INVALID');
    const verified = view.shareHolders.every((holder) =>
      view.attestations.some((entry) => entry.organization === holder && entry.share === 'VERIFIED'),
    );
    expect(view.status).toBe(complained ? 'INVALID' : verified ? 'VERIFIED' : 'PENDING');
    for (const audit of view.audits) {
      encodeWith(auditViewSchema, audit);
      expect(audit.id).toBe(id);
      expect(audit.approvals.length).toBeLessThanOrEqual(audit.approvalsNeeded);
      expect(audit.state === 'PENDING').toBe(audit.approvals.length < audit.approvalsNeeded);
      expect(audit.outcome === null).toBe(audit.state !== 'CLOSED');
      const holders = audit.releases.map((release) => release.holder);
      expect(new Set(holders).size).toBe(holders.length);
      for (const holder of holders) expect(view.shareHolders).toContain(holder);
      for (const approval of audit.approvals)
        expect([audit.auditor, view.sender]).not.toContain(approval.organization);
    }
  }
  for (const requestId of requestIds) {
    const audit = auditView(state, group, requestId);
    if (audit !== undefined) expect(escrowRecordView(state, group, audit.id)?.audits).toContainEqual(audit);
  }
  const log = escrowLogPage(state, group, { fromSeq: 0 });
  expect(log.entries.map((entry) => entry.seq)).toEqual(log.entries.map((_, index) => index));
  expect(log.nextSeq).toBe(log.endSeq);
}

describe('escrow execution over random sequences', () => {
  it('is deterministic, and a refused transaction writes nothing', () => {
    fc.assert(
      fc.property(scenarioArbitrary, ({ auditApprovals, blocks }) => {
        const harness = new EscrowHarness(makeEscrowRegistry({ ...escrowPolicy, auditApprovals }));
        harness.run([
          harness.publish('alice', [escrowMessage({ id: 'm-1' })]),
          harness.publish('alice', [escrowMessage({ id: 'm-2' })]),
        ]);
        // An open request from the start, so approvals, releases and outcomes have something to act on.
        harness.run([
          harness.escrow('regulator', { kind: 'auditRequest', requestId: 'r-1', id: 'm-1', reason: 'x' }),
        ]);
        const twin = harness.state.clone();
        const sent: Uint8Array[] = [];
        const encode = (spec: TransactionSpec): Uint8Array => {
          switch (spec.type) {
            case 'action': {
              // Forged: signed with the supervisor's key, which no actor has registered.
              const options = spec.forged ? { key: keys.supervisor } : {};
              const bytes = harness.escrow(spec.signed.organization, spec.signed.action, options);
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
          // A refused transaction writes nothing: swapping each for junk (refused before anything
          // is read) keeps every other result and the state byte for byte.
          const swapped = transactions.map((bytes, index) =>
            outcome.decoded[index]?.status === 'REJECTED' ? Uint8Array.of(0) : bytes,
          );
          const swappedOutcome = executeBatch(before, context, swapped);
          expect(before.snapshot()).toEqual(harness.state.snapshot());
          swappedOutcome.results.forEach((bytes, index) => {
            if (outcome.decoded[index]?.status === 'OK') expect(bytes).toEqual(outcome.results[index]);
            else expect(decodeTransactionResult(bytes).status).toBe('REJECTED');
          });
          checkInvariants(harness.state, harness.group);
        }
      }),
      { numRuns: 30 },
    );
  });
});
