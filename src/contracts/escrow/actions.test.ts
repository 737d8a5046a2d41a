import { describe, expect, it } from 'vitest';
import { encodeWith } from '../../codec/index.js';
import { SigningDomain } from '../../crypto/index.js';
import { RejectReason, escrowRejectReasons } from '../reasons.js';
import type { RejectReason as RejectReasonType } from '../reasons.js';
import { decodeTransactionResult } from '../results.js';
import type { EscrowItemResult, EscrowResult, TransactionResult } from '../results.js';
import { executeBatch } from '../sdt.js';
import { auditView, escrowLogPage, escrowRecordView } from './queries.js';
import { encodeEscrowTransaction } from './transactions.js';
import type { EscrowAction } from './transactions.js';
import { auditViewSchema, auditsPerMessageMax, escrowRecordViewSchema } from './views.js';
import {
  EscrowHarness,
  chunksOf,
  escrowGroup,
  escrowMessage,
  escrowPolicy,
  keys,
  makeEscrowRegistry,
  sealed,
  signing,
  topicPolicy,
} from './testing/fixtures.js';
import type { OrganizationName } from './testing/fixtures.js';

const exercised = new Set<RejectReasonType>();

function ok(result: TransactionResult | undefined): EscrowResult {
  if (result?.status !== 'OK' || result.type !== 'escrow')
    throw new Error(`not an escrow OK: ${JSON.stringify(result)}`);
  return result;
}

function item(result: TransactionResult | undefined): EscrowItemResult {
  const [first] = ok(result).items;
  if (first === undefined) throw new Error('no item');
  return first;
}

function expectItem(result: EscrowItemResult, reason: RejectReasonType, detail?: string): void {
  expect(result).toEqual({
    id: result.id,
    status: 'REJECTED',
    reason,
    ...(detail === undefined ? {} : { detail }),
  });
  exercised.add(reason);
}

/** A harness where alice published escrowed message m-1 (and m-2). */
function published(registry = makeEscrowRegistry()): EscrowHarness {
  const harness = new EscrowHarness(registry);
  harness.run([
    harness.publish('alice', [escrowMessage({ id: 'm-1' })]),
    harness.publish('alice', [escrowMessage({ id: 'm-2' })]),
  ]);
  return harness;
}

const attest = (id: string, share: 'VERIFIED' | 'INVALID' | 'NONE', chunksHeld: number): EscrowAction => ({
  kind: 'attest',
  attestations: [{ id, share, chunksHeld }],
});
const request = (requestId: string, id = 'm-1', reason = 'court order 7'): EscrowAction => ({
  kind: 'auditRequest',
  requestId,
  id,
  reason,
});
const approve = (requestId: string): EscrowAction => ({ kind: 'auditApprove', requestId });
const release = (requestId: string, fill: number): EscrowAction => ({
  kind: 'shareRelease',
  requestId,
  share: sealed(fill),
});
const outcome = (
  requestId: string,
  result: 'RETRIEVED' | 'FAILED' = 'RETRIEVED',
): Extract<EscrowAction, { kind: 'auditOutcome' }> => ({
  kind: 'auditOutcome',
  requestId,
  outcome: result,
  contentRoot: result === 'RETRIEVED' ? new Uint8Array(32).fill(9) : null,
  badShares: [],
  badHolders: result === 'FAILED' ? ['h4'] : [],
  detail: '',
});

/**
 * Executes `action` by `organization` as the next block and expects the whole transaction refused
 * with `reason`; the state must end byte-identical to executing an empty block instead (not even the
 * nonce is recorded). The harness then moves on with the empty block.
 */
function expectRefused(
  harness: EscrowHarness,
  organization: OrganizationName,
  action: EscrowAction,
  reason: RejectReasonType,
  detail?: string,
): void {
  const transaction = harness.escrow(organization, action);
  const context = {
    partitionId: harness.group,
    configEpoch: 1,
    height: harness.height + 1,
    timestamp: harness.time + 1000,
    registry: harness.registry,
  };
  const reference = harness.state.clone();
  const outcome = executeBatch(harness.state, context, [transaction]);
  executeBatch(reference, context, []);
  harness.height += 1;
  harness.time += 1000;
  expect(harness.state.snapshot()).toEqual(reference.snapshot());
  expect(outcome.results.map(decodeTransactionResult)).toEqual([
    detail === undefined ? { status: 'REJECTED', reason } : { status: 'REJECTED', reason, detail },
  ]);
  exercised.add(reason);
}

function status(harness: EscrowHarness, id = 'm-1'): string | undefined {
  return escrowRecordView(harness.state, escrowGroup, id)?.status;
}

function logKinds(harness: EscrowHarness): string[] {
  return escrowLogPage(harness.state, escrowGroup, { fromSeq: 0 }).entries.map((entry) => entry.kind);
}

describe('the happy path', () => {
  it('publish → attest ×3 → VERIFIED; request → approve → APPROVED → releases → outcome CLOSED', () => {
    const harness = published();
    const recorded = { id: 'm-1', status: 'RECORDED' };
    expect(item(harness.one(harness.escrow('h1', attest('m-1', 'VERIFIED', 2))))).toEqual(recorded);
    expect(item(harness.one(harness.escrow('h4', attest('m-1', 'NONE', 2))))).toEqual(recorded);
    expect(item(harness.one(harness.escrow('h2', attest('m-1', 'VERIFIED', 3))))).toEqual(recorded);
    expect(status(harness)).toBe('PENDING');
    expect(item(harness.one(harness.escrow('h3', attest('m-1', 'VERIFIED', 2))))).toEqual(recorded);
    expect(status(harness)).toBe('VERIFIED');
    expect(status(harness, 'm-2')).toBe('PENDING');

    const requested = ok(harness.one(harness.escrow('regulator', request('r-1'))));
    expect(requested).toEqual({
      status: 'OK',
      type: 'escrow',
      kind: 'auditRequest',
      organization: 'regulator',
      items: [],
      audit: { requestId: 'r-1', id: 'm-1', state: 'PENDING', approvals: 0 },
    });
    expect(ok(harness.one(harness.escrow('bob', approve('r-1')))).audit).toEqual({
      requestId: 'r-1',
      id: 'm-1',
      state: 'APPROVED',
      approvals: 1,
    });
    ok(harness.one(harness.escrow('h1', release('r-1', 11))));
    ok(harness.one(harness.escrow('h3', release('r-1', 13))));
    const closed = ok(harness.one(harness.escrow('regulator', outcome('r-1'))));
    expect(closed.audit).toEqual({ requestId: 'r-1', id: 'm-1', state: 'CLOSED', approvals: 1 });

    const audit = auditView(harness.state, escrowGroup, 'r-1');
    expect(audit).toMatchObject({
      requestId: 'r-1',
      id: 'm-1',
      auditor: 'regulator',
      reason: 'court order 7',
      state: 'CLOSED',
      height: 6,
      transactionIndex: 0,
      approvals: [{ organization: 'bob', height: 7, transactionIndex: 0 }],
      approvalsNeeded: 1,
      releases: [
        { holder: 'h1', share: sealed(11), height: 8, transactionIndex: 0 },
        { holder: 'h3', share: sealed(13), height: 9, transactionIndex: 0 },
      ],
      outcome: { outcome: 'RETRIEVED', contentRoot: new Uint8Array(32).fill(9), height: 10 },
    });
    const view = escrowRecordView(harness.state, escrowGroup, 'm-1');
    expect(view?.audits).toEqual([audit]);
    expect(view?.attestations.map((entry) => [entry.organization, entry.share, entry.chunksHeld])).toEqual([
      ['h1', 'VERIFIED', 2],
      ['h4', 'NONE', 2],
      ['h2', 'VERIFIED', 3],
      ['h3', 'VERIFIED', 2],
    ]);
    // What the node serves must fit the wire schemas.
    encodeWith(escrowRecordViewSchema, view ?? expect.fail('no view'));
    encodeWith(auditViewSchema, audit ?? expect.fail('no audit'));
    expect(logKinds(harness)).toEqual([
      'registered',
      'registered',
      'attested',
      'attested',
      'attested',
      'attested',
      'auditRequested',
      'auditApproved',
      'shareReleased',
      'shareReleased',
      'auditClosed',
    ]);
    const page = escrowLogPage(harness.state, escrowGroup, { fromSeq: 6, limit: 2 });
    expect(page.entries).toEqual([
      { seq: 6, kind: 'auditRequested', id: 'm-1', requestId: 'r-1', height: 6, transactionIndex: 0 },
      { seq: 7, kind: 'auditApproved', id: 'm-1', requestId: 'r-1', height: 7, transactionIndex: 0 },
    ]);
    expect([page.nextSeq, page.endSeq]).toEqual([8, 11]);
    expect(escrowLogPage(harness.state, escrowGroup, { fromSeq: 20 })).toEqual({
      entries: [],
      nextSeq: 20,
      endSeq: 11,
    });
  });
});

describe('attest', () => {
  it('a complaint makes the escrow INVALID for good, and audits still go on', () => {
    const harness = published();
    ok(harness.one(harness.escrow('h1', attest('m-1', 'VERIFIED', 2))));
    ok(harness.one(harness.escrow('h2', attest('m-1', 'INVALID', 3))));
    expect(status(harness)).toBe('INVALID');
    ok(harness.one(harness.escrow('h3', attest('m-1', 'VERIFIED', 2))));
    expect(status(harness)).toBe('INVALID');
    expect(logKinds(harness).slice(2)).toEqual(['attested', 'attested', 'invalid', 'attested']);
    expect(ok(harness.one(harness.escrow('regulator', request('r-1')))).audit?.state).toBe('PENDING');
  });

  it('judges each attestation of a transaction on its own, in order', () => {
    const harness = published();
    const result = ok(
      harness.one(
        harness.escrow('h2', {
          kind: 'attest',
          attestations: [
            { id: 'm-1', share: 'VERIFIED', chunksHeld: 3 },
            { id: 'ghost', share: 'VERIFIED', chunksHeld: 0 },
            { id: 'm-2', share: 'NONE', chunksHeld: 1 },
            { id: 'm-1', share: 'VERIFIED', chunksHeld: 3 },
            { id: 'm-1', share: 'VERIFIED', chunksHeld: 2 },
          ],
        }),
      ),
    );
    expect(result.items).toEqual([
      { id: 'm-1', status: 'RECORDED' },
      { id: 'ghost', status: 'REJECTED', reason: RejectReason.EscrowUnknown },
      { id: 'm-2', status: 'REJECTED', reason: RejectReason.EscrowPolicyMismatch, detail: 'share' },
      { id: 'm-1', status: 'RECORDED' },
      { id: 'm-1', status: 'REJECTED', reason: RejectReason.AttestationConflict },
    ]);
    expect(result.audit).toBeNull();
    expect(logKinds(harness)).toEqual(['registered', 'registered', 'attested']);
  });

  it('refuses attestations from non-parties and claims the placement does not support', () => {
    const harness = published();
    expectItem(
      item(harness.one(harness.escrow('h1', attest('ghost', 'VERIFIED', 2)))),
      RejectReason.EscrowUnknown,
    );
    expectItem(
      item(harness.one(harness.escrow('alice', attest('m-1', 'NONE', 0)))),
      RejectReason.NotEscrowParty,
    );
    expectItem(
      item(harness.one(harness.escrow('bob', attest('m-1', 'NONE', 0)))),
      RejectReason.NotEscrowParty,
    );
    // h4 holds chunks only: it cannot have verified a share; h1 holds a share: it must say which.
    const mismatch = RejectReason.EscrowPolicyMismatch;
    expectItem(item(harness.one(harness.escrow('h4', attest('m-1', 'VERIFIED', 2)))), mismatch, 'share');
    expectItem(item(harness.one(harness.escrow('h1', attest('m-1', 'NONE', 2)))), mismatch, 'share');
    expectItem(
      item(harness.one(harness.escrow('h1', attest('m-1', 'VERIFIED', (chunksOf.h1 ?? 0) + 1)))),
      mismatch,
      'chunksHeld',
    );
    expect(escrowRecordView(harness.state, escrowGroup, 'm-1')?.attestations).toEqual([]);
    expect(logKinds(harness)).toEqual(['registered', 'registered']);
  });

  it('answers an identical repeat with the first result and refuses a different one', () => {
    const harness = published();
    ok(harness.one(harness.escrow('h4', attest('m-1', 'NONE', 1))));
    const before = escrowRecordView(harness.state, escrowGroup, 'm-1');
    expect(item(harness.one(harness.escrow('h4', attest('m-1', 'NONE', 1))))).toEqual({
      id: 'm-1',
      status: 'RECORDED',
    });
    expectItem(
      item(harness.one(harness.escrow('h4', attest('m-1', 'NONE', 2)))),
      RejectReason.AttestationConflict,
    );
    expect(escrowRecordView(harness.state, escrowGroup, 'm-1')).toEqual(before);
    expect(logKinds(harness)).toEqual(['registered', 'registered', 'attested']);
  });
});

describe('escrow transactions are authenticated like SDT ones', () => {
  it('refuses a forged signature and a replay; a refused action does not burn its nonce', () => {
    const harness = published();
    const forged = harness.escrow('h1', attest('m-1', 'VERIFIED', 2), { key: keys.h2 });
    expect(harness.one(forged)).toEqual({ status: 'REJECTED', reason: RejectReason.SigningKeyUnknown });
    const otherNetwork = encodeEscrowTransaction(
      {
        organization: 'h1',
        nonce: harness.nextNonce(),
        timestamp: harness.time,
        action: attest('m-1', 'VERIFIED', 2),
      },
      SigningDomain.of('another-network').signer(keys.h1),
    );
    expect(harness.one(otherNetwork)).toEqual({ status: 'REJECTED', reason: RejectReason.BadSignature });
    const stale = encodeEscrowTransaction(
      { organization: 'h1', nonce: harness.nextNonce(), timestamp: 0, action: attest('m-1', 'VERIFIED', 2) },
      signing.signer(keys.h1),
    );
    expect(harness.one(stale)).toEqual({ status: 'REJECTED', reason: RejectReason.TimestampOutOfWindow });
    expect(escrowRecordView(harness.state, escrowGroup, 'm-1')?.attestations).toEqual([]);
    const nonce = harness.nextNonce();
    const refused = harness.escrow('h1', request('r-1'), { nonce });
    expect(harness.one(refused)).toEqual({ status: 'REJECTED', reason: RejectReason.NotAuditor });
    const accepted = harness.escrow('h1', attest('m-1', 'VERIFIED', 2), { nonce });
    expect(item(harness.one(accepted)).status).toBe('RECORDED');
    expect(harness.one(accepted)).toEqual({ status: 'REJECTED', reason: RejectReason.Replay });
  });
});

describe('auditRequest', () => {
  it('is for approved auditors, on messages escrowed here', () => {
    const harness = published();
    expectRefused(harness, 'h1', request('r-1'), RejectReason.NotAuditor);
    expectRefused(harness, 'regulator', request('r-1', 'ghost'), RejectReason.EscrowUnknown);
    expect(ok(harness.one(harness.escrow('inspector', request('r-1')))).audit?.state).toBe('PENDING');
  });

  it('keeps request ids unique: a repeat gets the audit as it stands, a different request a conflict', () => {
    const harness = published();
    ok(harness.one(harness.escrow('regulator', request('r-1'))));
    ok(harness.one(harness.escrow('bob', approve('r-1'))));
    const repeat = ok(harness.one(harness.escrow('regulator', request('r-1'))));
    // Never an earlier state than the ledger already shows: the approval came first.
    expect(repeat.audit).toEqual({ requestId: 'r-1', id: 'm-1', state: 'APPROVED', approvals: 1 });
    expect(auditView(harness.state, escrowGroup, 'r-1')?.state).toBe('APPROVED');
    expectRefused(
      harness,
      'regulator',
      request('r-1', 'm-1', 'another reason'),
      RejectReason.AuditIdConflict,
    );
    expectRefused(harness, 'regulator', request('r-1', 'm-2'), RejectReason.AuditIdConflict);
    expectRefused(harness, 'inspector', request('r-1'), RejectReason.AuditIdConflict);
    expect(
      escrowRecordView(harness.state, escrowGroup, 'm-1')?.audits.map((audit) => audit.requestId),
    ).toEqual(['r-1']);
  });

  it('keeps one open audit per auditor and message', () => {
    const harness = published();
    ok(harness.one(harness.escrow('regulator', request('r-1'))));
    expectRefused(
      harness,
      'regulator',
      request('r-2'),
      RejectReason.AuditLimit,
      'audit r-1 of this auditor is open',
    );
    // Another message, or once the first audit is closed, is fine.
    ok(harness.one(harness.escrow('regulator', request('r-3', 'm-2'))));
    ok(harness.one(harness.escrow('bob', approve('r-1'))));
    ok(harness.one(harness.escrow('regulator', outcome('r-1'))));
    ok(harness.one(harness.escrow('regulator', request('r-2'))));
  });

  it(`allows at most ${auditsPerMessageMax} requests per message`, () => {
    const harness = published();
    for (let index = 0; index < auditsPerMessageMax; index++) {
      const { decoded } = harness.run([
        harness.escrow('regulator', request(`r-${index}`)),
        harness.escrow('bob', approve(`r-${index}`)),
        harness.escrow('regulator', outcome(`r-${index}`, 'FAILED')),
      ]);
      expect(decoded.every((result) => result.status === 'OK')).toBe(true);
    }
    expectRefused(harness, 'regulator', request('one-more'), RejectReason.AuditLimit);
    expect(ok(harness.one(harness.escrow('regulator', request('other', 'm-2')))).audit?.id).toBe('m-2');
  });

  it('asks for the approvals recorded with the message, whatever its topic says later', () => {
    const harness = published();
    const change = (auditApprovals: number) =>
      harness.registry.putTopic({
        name: 'vault',
        partitionCount: 1,
        producers: ['alice'],
        consumers: ['bob'],
        policy: topicPolicy({ ...escrowPolicy, auditApprovals }),
      });
    // The topic's owner (who may be the sender) can neither open old messages nor lock them.
    change(0);
    expect(ok(harness.one(harness.escrow('regulator', request('r-0')))).audit?.state).toBe('PENDING');
    expect(auditView(harness.state, escrowGroup, 'r-0')?.approvalsNeeded).toBe(escrowPolicy.auditApprovals);
    change(5);
    ok(harness.one(harness.escrow('inspector', request('r-5'))));
    expect(auditView(harness.state, escrowGroup, 'r-5')?.approvalsNeeded).toBe(escrowPolicy.auditApprovals);
  });
});

describe('auditApprove', () => {
  it('counts eligible members until the policy is met; repeats and later approvals change nothing', () => {
    const harness = published(makeEscrowRegistry({ ...escrowPolicy, auditApprovals: 2 }));
    ok(harness.one(harness.escrow('regulator', request('r-1'))));
    expect(ok(harness.one(harness.escrow('bob', approve('r-1')))).audit).toMatchObject({
      state: 'PENDING',
      approvals: 1,
    });
    const before = harness.state.snapshot().filter(([key]) => key.startsWith('escrow/'));
    expect(ok(harness.one(harness.escrow('bob', approve('r-1')))).audit).toMatchObject({
      state: 'PENDING',
      approvals: 1,
    });
    expect(harness.state.snapshot().filter(([key]) => key.startsWith('escrow/'))).toEqual(before);
    expect(ok(harness.one(harness.escrow('h1', approve('r-1')))).audit).toMatchObject({
      state: 'APPROVED',
      approvals: 2,
    });
    expect(ok(harness.one(harness.escrow('h2', approve('r-1')))).audit).toMatchObject({
      state: 'APPROVED',
      approvals: 2,
    });
    expect(logKinds(harness).slice(2)).toEqual(['auditRequested', 'auditApproved', 'auditApproved']);
  });

  it('refuses the owner, the auditor and non-members: the owner cannot block or approve', () => {
    const harness = published();
    expectRefused(harness, 'bob', approve('ghost'), RejectReason.AuditUnknown);
    ok(harness.one(harness.escrow('inspector', request('r-1'))));
    expectRefused(harness, 'alice', approve('r-1'), RejectReason.ApproverNotEligible);
    expectRefused(harness, 'inspector', approve('r-1'), RejectReason.ApproverNotEligible);
    expectRefused(harness, 'regulator', approve('r-1'), RejectReason.ApproverNotEligible);
    expect(auditView(harness.state, escrowGroup, 'r-1')?.state).toBe('PENDING');
    // The owner's refusal to approve does not hold the audit up: any other member suffices.
    expect(ok(harness.one(harness.escrow('h4', approve('r-1')))).audit?.state).toBe('APPROVED');
    ok(harness.one(harness.escrow('inspector', outcome('r-1', 'FAILED'))));
    expectRefused(harness, 'bob', approve('r-1'), RejectReason.AuditClosed);
  });
});

describe('shareRelease', () => {
  it('only once approved, only by share holders, one share each', () => {
    const harness = published();
    expectRefused(harness, 'h1', release('ghost', 1), RejectReason.AuditUnknown);
    ok(harness.one(harness.escrow('regulator', request('r-1'))));
    expectRefused(harness, 'h1', release('r-1', 1), RejectReason.AuditNotApproved);
    ok(harness.one(harness.escrow('bob', approve('r-1'))));
    expectRefused(harness, 'h4', release('r-1', 1), RejectReason.NotShareHolder);
    expectRefused(harness, 'bob', release('r-1', 1), RejectReason.NotShareHolder);
    expect(ok(harness.one(harness.escrow('h1', release('r-1', 1)))).audit?.state).toBe('APPROVED');
    const before = harness.state.snapshot().filter(([key]) => key.startsWith('escrow/'));
    ok(harness.one(harness.escrow('h1', release('r-1', 1))));
    expect(harness.state.snapshot().filter(([key]) => key.startsWith('escrow/'))).toEqual(before);
    expectRefused(harness, 'h1', release('r-1', 2), RejectReason.AlreadyReleased);
    ok(harness.one(harness.escrow('regulator', outcome('r-1'))));
    expectRefused(harness, 'h2', release('r-1', 2), RejectReason.AuditClosed);
    expect(auditView(harness.state, escrowGroup, 'r-1')?.releases.map((entry) => entry.holder)).toEqual([
      'h1',
    ]);
  });
});

describe('auditOutcome', () => {
  it("is the request's auditor's, once, after approval", () => {
    const harness = published();
    expectRefused(harness, 'regulator', outcome('ghost'), RejectReason.AuditUnknown);
    ok(harness.one(harness.escrow('regulator', request('r-1'))));
    expectRefused(harness, 'regulator', outcome('r-1'), RejectReason.AuditNotApproved);
    ok(harness.one(harness.escrow('bob', approve('r-1'))));
    expectRefused(harness, 'inspector', outcome('r-1'), RejectReason.NotRequestAuditor);
    expect(ok(harness.one(harness.escrow('regulator', outcome('r-1', 'FAILED')))).audit?.state).toBe(
      'CLOSED',
    );
    expectRefused(harness, 'regulator', outcome('r-1'), RejectReason.AuditClosed);
    expect(auditView(harness.state, escrowGroup, 'r-1')?.outcome).toMatchObject({
      outcome: 'FAILED',
      contentRoot: null,
      badHolders: ['h4'],
    });
  });

  it('names only parties as bad, and carries a content root exactly when RETRIEVED', () => {
    const harness = published();
    ok(harness.one(harness.escrow('regulator', request('r-1'))));
    ok(harness.one(harness.escrow('bob', approve('r-1'))));
    const refused = (action: EscrowAction, detail: string): void =>
      expectRefused(harness, 'regulator', action, RejectReason.EscrowPolicyMismatch, detail);
    refused({ ...outcome('r-1'), badHolders: ['bob'] }, 'badHolders');
    refused({ ...outcome('r-1'), badShares: ['bob'] }, 'badShares');
    refused({ ...outcome('r-1'), contentRoot: null }, 'contentRoot');
    refused({ ...outcome('r-1', 'FAILED'), contentRoot: new Uint8Array(32) }, 'contentRoot');
    expect(auditView(harness.state, escrowGroup, 'r-1')?.state).toBe('APPROVED');
  });
});

describe('coverage', () => {
  it('every escrow action reason is exercised above', () => {
    const publishOnly: RejectReasonType[] = [
      RejectReason.EscrowRequired,
      RejectReason.EscrowNotAllowed,
      RejectReason.EscrowHolderInvalid,
    ];
    expect([...exercised].sort()).toEqual(
      escrowRejectReasons.filter((reason) => !publishOnly.includes(reason)).sort(),
    );
  });
});
