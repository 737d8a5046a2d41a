// Audit records and audit evidence over a real partition (see testing/audit-proof-chain.ts): every
// block executed by the SDT and escrow contracts and certified with real Ed25519 replica keys,
// checked offline; each tampering is refused naming the rule, and a node's view is trusted only as
// far as its evidences go.
import { beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../codec/index.js';
import type { AuditView } from '../contracts/escrow/views.js';
import { signingKeyFromSeed } from '../crypto/index.js';
import { isLedgerbusError } from '../errors.js';
import { escrowRecordPositions, verifyAuditEvidence } from './audit-evidence.js';
import type { PositionedEvidence, RecordPosition } from './audit-evidence.js';
import {
  auditRecordBundle,
  decodeAuditRecord,
  encodeAuditRecord,
  verifyAuditRecord,
  verifyAuditRecordBundle,
} from './audit-record.js';
import type { AuditRecord, AuditRecordSummary } from './audit-record.js';
import { blockEvidenceToCbor } from './evidence.js';
import type { BlockEvidence } from './evidence.js';
import { verifyAcceptance } from './message-proof.js';
import type { AcceptedMessage, ProofTrust } from './message-proof.js';
import { auditProofChain, auditedId } from './testing/audit-proof-chain.js';
import type { AuditProofChain } from './testing/audit-proof-chain.js';

let proof: AuditProofChain;
let trust: ProofTrust;

beforeAll(async () => {
  proof = await auditProofChain();
  trust = proof.trust;
});

/** The code and message `action` throws with, or VALID. */
function refusal(action: () => unknown): { code: string; message: string } {
  try {
    action();
  } catch (error) {
    if (isLedgerbusError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  return { code: 'VALID', message: '' };
}

function audit(requestId: string): AuditView {
  return proof.record().audits.find((entry) => entry.requestId === requestId) as AuditView;
}

/** `record` with its audit part changed. */
function withAudit(record: AuditRecord, change: Partial<AuditRecord['audit']>): AuditRecord {
  return { ...record, audit: { ...record.audit, ...change } };
}

describe('audit records', () => {
  it('prove who asked, who approved, who released and how it ended, offline, after an encode/decode round trip', () => {
    const record = decodeAuditRecord(encodeAuditRecord(proof.auditRecord('audit-1')));
    const { message, audit: proven } = verifyAuditRecord(record, trust);
    expect(message.id).toBe(auditedId);
    const expected: AuditRecordSummary = {
      id: auditedId,
      topic: 'vault',
      partition: 0,
      sender: 'alice',
      contentRoot: toHex(message.contentRoot),
      requestId: 'audit-1',
      auditor: 'inspector',
      reason: 'annual review',
      approvals: ['bob'],
      state: 'CLOSED',
      releases: ['h1', 'h2'],
      outcome: {
        outcome: 'RETRIEVED',
        contentRoot: toHex(message.contentRoot),
        badShares: [],
        badHolders: ['h4'],
        detail: '',
      },
    };
    const bundle = JSON.parse(JSON.stringify(auditRecordBundle(record, trust))) as unknown;
    expect(bundle).toMatchObject({
      format: 'ledgerbus-audit-record/v1',
      network: 'audit-testnet',
      audit: expected,
    });
    expect(verifyAuditRecordBundle(bundle, trust)).toEqual(expected);
    expect(proven.releases.map((release) => release.share)).toEqual(
      audit('audit-1').releases.map((r) => r.share),
    );
    // An audit still waiting for approvals proves just that.
    const pending = verifyAuditRecord(proof.auditRecord('audit-2'), trust).audit;
    expect(pending).toMatchObject({ state: 'PENDING', approvals: [], releases: [], outcome: null });
  });

  it('refuses a bundle whose summary says anything the proof does not, naming the field', () => {
    const bundle = auditRecordBundle(proof.auditRecord('audit-1'), trust);
    const tampered = (change: Partial<AuditRecordSummary>): unknown => ({
      ...bundle,
      audit: { ...bundle.audit, ...change },
    });
    const outcome = refusal(() =>
      verifyAuditRecordBundle(tampered({ outcome: { ...bundle.audit.outcome!, outcome: 'FAILED' } }), trust),
    );
    expect(outcome).toMatchObject({ code: 'BAD_PROOF', message: expect.stringMatching(/summary's outcome/) });
    const approvals = refusal(() => verifyAuditRecordBundle(tampered({ approvals: ['bob', 'h3'] }), trust));
    expect(approvals).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/summary's approvals/),
    });
    expect(refusal(() => verifyAuditRecordBundle(tampered({ state: 'APPROVED' }), trust)).message).toMatch(
      /summary's state/,
    );
    expect(refusal(() => verifyAuditRecordBundle({ ...bundle, network: 'elsewhere' }, trust)).code).toBe(
      'WRONG_GROUP',
    );
    expect(
      refusal(() => verifyAuditRecordBundle({ ...bundle, format: 'ledgerbus-receipt/v1' }, trust)).code,
    ).toBe('SCHEMA_MISMATCH');
    expect(
      refusal(() => verifyAuditRecordBundle({ ...bundle, proof: bundle.proof.slice(0, 400) }, trust)).code,
    ).not.toBe('VALID');
  });

  it('refuses an evidence in the wrong slot, of another audit, refused by the contract, or given twice', () => {
    const record = proof.auditRecord('audit-1');
    const [release1, release2] = record.audit.releases as [BlockEvidence, BlockEvidence];
    const approval = record.audit.approvals[0] as BlockEvidence;
    const cases: [string, AuditRecord, RegExp][] = [
      [
        'a release as an approval',
        withAudit(record, { approvals: [release1] }),
        /^approvals\[0\]: .*shareRelease/,
      ],
      ['an approval as the outcome', withAudit(record, { outcome: approval }), /^outcome: .*auditApprove/],
      [
        "another audit's request",
        withAudit(record, { request: proof.auditRecord('audit-2').audit.request }),
        /^request: .*for audit audit-2/,
      ],
      [
        'an approval the contract refused',
        withAudit(record, {
          approvals: [proof.evidenceAt({ height: proof.refusedApproval, transactionIndex: 0 })],
        }),
        /^approvals\[0\]: the contract did not execute .*APPROVER_NOT_ELIGIBLE/,
      ],
      [
        'a release twice',
        withAudit(record, { releases: [release1, release2, release1] }),
        /^releases\[2\]: a second/,
      ],
      [
        'audit-2 named for audit-1',
        withAudit(record, { requestId: 'audit-2' }),
        /^request: the audit request is for audit audit-1/,
      ],
    ];
    for (const [what, tampered, rule] of cases) {
      const refused = refusal(() => verifyAuditRecord(tampered, trust));
      expect(refused, what).toMatchObject({ code: 'BAD_PROOF', message: expect.stringMatching(rule) });
    }
  });

  it('refuses a forged certificate, a transaction altered after certification, and a signature by a key not the signer’s', () => {
    const record = proof.auditRecord('audit-1');
    const approval = record.audit.approvals[0] as BlockEvidence;
    const flipped = new Uint8Array(approval.signatures[0]?.signature as Uint8Array);
    flipped[0] = (flipped[0] as number) ^ 1;
    const forged = {
      ...approval,
      signatures: [{ ...approval.signatures[0]!, signature: flipped }, ...approval.signatures.slice(1)],
    };
    expect(refusal(() => verifyAuditRecord(withAudit(record, { approvals: [forged] }), trust)).code).toMatch(
      /BAD_SIGNATURE|INSUFFICIENT_SIGNATURES/,
    );
    const altered = new Uint8Array(approval.transaction);
    altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 1;
    const refused = refusal(() =>
      verifyAuditRecord(withAudit(record, { approvals: [{ ...approval, transaction: altered }] }), trust),
    );
    expect(refused).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/^approvals\[0\]: transaction is not in block/),
    });
    // A trust bundle in which bob's connector key is another: bob did not sign that approval.
    const otherKey = signingKeyFromSeed(new Uint8Array(32).fill(9)).publicKey;
    const rekeyed: ProofTrust = {
      ...trust,
      signingKeys: (organization) => (organization === 'bob' ? [otherKey] : trust.signingKeys(organization)),
    };
    expect(refusal(() => verifyAuditRecord(record, rekeyed))).toMatchObject({
      code: 'BAD_SIGNATURE',
      message: expect.stringMatching(/^approvals\[0\]: .*not signed by a key of bob/),
    });
  });
});

describe('verifyAuditEvidence', () => {
  let message: AcceptedMessage;
  let all: PositionedEvidence[];

  beforeAll(() => {
    message = verifyAcceptance(proof.auditRecord('audit-1').acceptance, trust);
    all = escrowRecordPositions(proof.record()).map((position) => ({
      ...position,
      evidence: blockEvidenceToCbor(proof.evidenceAt(position)),
    }));
  });

  const without = (...positions: RecordPosition[]): PositionedEvidence[] =>
    all.filter(
      (entry) =>
        !positions.some((p) => p.height === entry.height && p.transactionIndex === entry.transactionIndex),
    );
  const fields = (dropped: readonly { field: string }[]): string[] => dropped.map((entry) => entry.field);

  it('lists every audit transaction, newest audit first, then the attestations', () => {
    const record = proof.record();
    const [first, second] = record.audits as [AuditView, AuditView];
    expect(escrowRecordPositions(record)).toEqual(
      [second, first, ...first.approvals, ...first.releases, first.outcome!, ...record.attestations].map(
        ({ height, transactionIndex }) => ({ height, transactionIndex }),
      ),
    );
  });

  it('proves what the view says when every evidence is there', () => {
    const { audit: proven, dropped } = verifyAuditEvidence(message, audit('audit-1'), all, trust);
    expect(dropped).toEqual([]);
    const { approvalsNeeded: _needed, requestedAt: _at, ...view } = audit('audit-1');
    const { requestedAt: _proven, ...rest } = proven;
    expect(rest).toEqual(view);
  });

  it('drops what no evidence backs: the state follows the latest proven result', () => {
    const view = audit('audit-1');
    // Without the approval, the releases' and the outcome's results still prove it CLOSED.
    const noApproval = verifyAuditEvidence(message, view, without(view.approvals[0]!), trust);
    expect(noApproval.audit).toMatchObject({ state: 'CLOSED', approvals: [] });
    expect(fields(noApproval.dropped)).toEqual(['approvals[bob]']);
    // With only the request proven, nothing past PENDING is.
    const onlyRequest = verifyAuditEvidence(
      message,
      view,
      all.filter((entry) => entry.height === view.height),
      trust,
    );
    expect(onlyRequest.audit).toMatchObject({ state: 'PENDING', approvals: [], releases: [], outcome: null });
    expect(fields(onlyRequest.dropped)).toEqual([
      'approvals[bob]',
      'releases[h1]',
      'releases[h2]',
      'outcome',
      'state',
    ]);
  });

  it('drops a view entry whose evidence is of another organization or position, and names a claimed auditor it cannot prove', () => {
    const view = audit('audit-1');
    const [h1, h2] = view.releases as [AuditView['releases'][number], AuditView['releases'][number]];
    const claimed: AuditView = {
      ...view,
      auditor: 'bob',
      // h1's release claimed at h2's position, and a release by h3 at h2's too.
      releases: [{ ...h1, height: h2.height }, h2, { ...h2, holder: 'h3' }],
    };
    const { audit: proven, dropped } = verifyAuditEvidence(message, claimed, all, trust);
    expect(proven.auditor).toBe('inspector');
    expect(proven.releases.map((release) => release.holder)).toEqual(['h2']);
    expect(dropped).toEqual([
      expect.objectContaining({
        field: 'releases[h1]',
        reason: expect.stringMatching(/h2's share release/),
      }),
      expect.objectContaining({ field: 'releases[h3]', reason: expect.stringMatching(/h2's share release/) }),
      expect.objectContaining({ field: 'auditor', reason: expect.stringMatching(/prove inspector/) }),
    ]);
  });

  it('throws when the request itself is not proven, or the view is of another message', () => {
    const view = audit('audit-1');
    expect(refusal(() => verifyAuditEvidence(message, view, without(view), trust))).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/no evidence for the request/),
    });
    expect(refusal(() => verifyAuditEvidence(message, { ...view, id: 'other' }, all, trust)).code).toBe(
      'BAD_PROOF',
    );
    // A view whose request position holds the other audit's request.
    const second = audit('audit-2');
    expect(
      refusal(() => verifyAuditEvidence(message, { ...view, height: second.height }, all, trust)).message,
    ).toMatch(/for audit audit-2/);
  });
});
