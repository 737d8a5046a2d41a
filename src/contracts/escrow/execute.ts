/**
 * The escrow contract (DESIGN §7, BlockTorrent), executed by a partition's replicas beside the SDT
 * contract and inside the same batch: the SDT contract authenticates an `escrow` transaction (same
 * keys, nonces and clock window as its own) and hands the action here; it also calls `register` for
 * every escrowed message it accepts. Like the SDT, this is a deterministic state machine: no clock
 * (time is the block's contract time), no randomness, no I/O.
 *
 * Rejections are data. A refused action (an `EscrowRefusal`) must write nothing, which is why every
 * action checks everything before its first write; `attest` is refused item by item instead, and
 * an item that is refused writes nothing either.
 *
 * Lifecycle of an escrowed message: PENDING → VERIFIED once every share holder attested VERIFIED,
 * or → INVALID (for good) as soon as one complains. Lifecycle of an audit: PENDING → APPROVED once
 * `approvalsNeeded` eligible members approved (at once if the policy asks for none) → CLOSED when
 * the auditor records the outcome. Shares are released only while APPROVED.
 */
import { bytesEqual } from '../../codec/index.js';
import { assert } from '../../errors.js';
import { RejectReason } from '../reasons.js';
import type { EscrowPolicy, Organization, Registry } from '../registry.js';
import type { MessageMetadata } from '../transactions.js';
import { newEscrowRecord } from './registration.js';
import type { EscrowRefusal } from './registration.js';
import type { EscrowAuditSummary, EscrowItemResult, EscrowResult } from './results.js';
import type { AuditRecord, EscrowRecord, EscrowStore } from './store.js';
import type { Attestation, EscrowAction } from './transactions.js';
import { auditsPerMessageMax } from './views.js';
import type { EscrowLogKind } from './views.js';

/** What the escrow contract knows about the block being executed. */
export interface EscrowContext {
  readonly height: number;
  /** Contract time of the block (see `executeBatch`). */
  readonly time: number;
  readonly registry: Registry;
}

type Action<K extends EscrowAction['kind']> = Extract<EscrowAction, { kind: K }>;

/** One block's escrow execution over `store` (a view of the batch's write buffer). */
export class EscrowExecution {
  constructor(
    private readonly store: EscrowStore,
    private readonly context: EscrowContext,
  ) {
    assert(Number.isSafeInteger(context.height) && context.height >= 1, 'height');
  }

  /**
   * Records the escrow of a message the SDT contract has just accepted at `transactionIndex`, on a
   * topic whose escrow policy is `policy`. The message must have passed `checkEscrowMetadata` and be
   * new on the partition.
   */
  register(message: MessageMetadata, sender: string, policy: EscrowPolicy, transactionIndex: number): void {
    assert(this.store.record(message.id) === undefined, `escrow record ${message.id} exists already`);
    const record = newEscrowRecord(message, sender, policy, {
      height: this.context.height,
      transactionIndex,
    });
    this.store.putRecord(record);
    this.log('registered', record.id, null, transactionIndex);
  }

  /**
   * Executes `action`, signed by the authenticated `organization`, as transaction `transactionIndex`
   * of the block. Returns its result, or why the whole transaction is refused (then nothing was
   * written, and the caller must not record its nonce either).
   */
  execute(
    organization: Organization,
    action: EscrowAction,
    transactionIndex: number,
  ): EscrowResult | EscrowRefusal {
    switch (action.kind) {
      case 'attest': {
        const items = action.attestations.map((attestation) =>
          this.attest(organization.id, attestation, transactionIndex),
        );
        return {
          status: 'OK',
          type: 'escrow',
          kind: 'attest',
          organization: organization.id,
          items,
          audit: null,
        };
      }
      case 'auditRequest':
        return this.done(
          action.kind,
          organization,
          this.auditRequest(organization, action, transactionIndex),
        );
      case 'auditApprove':
        return this.done(
          action.kind,
          organization,
          this.auditApprove(organization, action, transactionIndex),
        );
      case 'shareRelease':
        return this.done(
          action.kind,
          organization,
          this.shareRelease(organization, action, transactionIndex),
        );
      case 'auditOutcome':
        return this.done(
          action.kind,
          organization,
          this.auditOutcome(organization, action, transactionIndex),
        );
    }
  }

  private done(
    kind: EscrowAction['kind'],
    organization: Organization,
    outcome: EscrowAuditSummary | EscrowRefusal,
  ): EscrowResult | EscrowRefusal {
    if ('reason' in outcome) return outcome;
    return { status: 'OK', type: 'escrow', kind, organization: organization.id, items: [], audit: outcome };
  }

  // ---- attest -----------------------------------------------------------------------------------

  /** A holder's findings for one message; refused findings write nothing. */
  private attest(organization: string, attestation: Attestation, transactionIndex: number): EscrowItemResult {
    const { id } = attestation;
    const refuse = (refusal: EscrowRefusal): EscrowItemResult => ({ id, status: 'REJECTED', ...refusal });
    const record = this.store.record(id);
    if (record === undefined) return refuse({ reason: RejectReason.EscrowUnknown });
    const holdsShare = record.shareHolders.includes(organization);
    const chunkHolder = record.chunkHolders.find((holder) => holder.organization === organization);
    if (!holdsShare && chunkHolder === undefined) return refuse({ reason: RejectReason.NotEscrowParty });
    // Only a share holder can have verified or refuted a share; a share holder must say which.
    if ((attestation.share === 'NONE') === holdsShare) {
      return refuse({ reason: RejectReason.EscrowPolicyMismatch, detail: 'share' });
    }
    if (attestation.chunksHeld > (chunkHolder?.chunks ?? 0)) {
      return refuse({ reason: RejectReason.EscrowPolicyMismatch, detail: 'chunksHeld' });
    }
    const prior = record.attestations.find((candidate) => candidate.organization === organization);
    if (prior !== undefined) {
      const same = prior.share === attestation.share && prior.chunksHeld === attestation.chunksHeld;
      return same ? { id, status: 'RECORDED' } : refuse({ reason: RejectReason.AttestationConflict });
    }

    const attestations = [
      ...record.attestations,
      {
        organization,
        share: attestation.share,
        chunksHeld: attestation.chunksHeld,
        height: this.context.height,
        transactionIndex,
      },
    ];
    const verified = record.shareHolders.every((holder) =>
      attestations.some((entry) => entry.organization === holder && entry.share === 'VERIFIED'),
    );
    // INVALID is final: a complaint shows the sender escrowed a share that rebuilds nothing, and
    // the complaining share holder can never attest VERIFIED after it (one attestation each).
    const status: EscrowRecord['status'] =
      attestation.share === 'INVALID' ? 'INVALID' : verified ? 'VERIFIED' : record.status;
    this.store.putRecord({ ...record, attestations, status });
    this.log('attested', id, null, transactionIndex);
    if (status === 'INVALID' && record.status !== 'INVALID') this.log('invalid', id, null, transactionIndex);
    return { id, status: 'RECORDED' };
  }

  // ---- audits -----------------------------------------------------------------------------------

  private auditRequest(
    auditor: Organization,
    action: Action<'auditRequest'>,
    transactionIndex: number,
  ): EscrowAuditSummary | EscrowRefusal {
    if (!auditor.roles.includes('auditor')) return { reason: RejectReason.NotAuditor };
    const record = this.store.record(action.id);
    if (record === undefined) return { reason: RejectReason.EscrowUnknown };
    const existing = this.store.audit(action.requestId);
    if (existing !== undefined) {
      const same =
        existing.auditor === auditor.id && existing.id === action.id && existing.reason === action.reason;
      if (!same) return { reason: RejectReason.AuditIdConflict };
      // The audit as it stands now: a result later in the ledger must never show an earlier state.
      return summary(existing);
    }
    // One open audit per auditor and message, so one auditor cannot use up a message's audits.
    for (const requestId of record.audits) {
      const other = this.store.audit(requestId);
      if (other !== undefined && other.auditor === auditor.id && other.state !== 'CLOSED') {
        return { reason: RejectReason.AuditLimit, detail: `audit ${requestId} of this auditor is open` };
      }
    }
    if (record.audits.length >= auditsPerMessageMax) return { reason: RejectReason.AuditLimit };

    // The approvals recorded with the message when it was accepted: a later change of the topic's
    // policy (by its owner, who may be the sender) can neither open old messages nor lock them.
    const approvalsNeeded = record.auditApprovals;
    const audit: AuditRecord = {
      requestId: action.requestId,
      id: action.id,
      auditor: auditor.id,
      reason: action.reason,
      state: approvalsNeeded === 0 ? 'APPROVED' : 'PENDING',
      requestedAt: this.context.time,
      height: this.context.height,
      transactionIndex,
      approvals: [],
      approvalsNeeded,
      releases: [],
      outcome: null,
    };
    this.store.putAudit(audit);
    this.store.putRecord({ ...record, audits: [...record.audits, audit.requestId] });
    this.log('auditRequested', audit.id, audit.requestId, transactionIndex);
    return summary(audit);
  }

  private auditApprove(
    approver: Organization,
    action: Action<'auditApprove'>,
    transactionIndex: number,
  ): EscrowAuditSummary | EscrowRefusal {
    const audit = this.store.audit(action.requestId);
    if (audit === undefined) return { reason: RejectReason.AuditUnknown };
    if (audit.state === 'CLOSED') return { reason: RejectReason.AuditClosed };
    const record = this.recordOf(audit);
    // The owner cannot block an audit, nor speed it up: its approval does not count.
    if (
      !approver.roles.includes('member') ||
      approver.id === audit.auditor ||
      approver.id === record.sender
    ) {
      return { reason: RejectReason.ApproverNotEligible };
    }
    // A repeat changes nothing; an approval after the request was approved is not recorded either,
    // which keeps the approval list bounded by the policy's auditApprovals.
    if (audit.state === 'APPROVED' || audit.approvals.some((entry) => entry.organization === approver.id)) {
      return summary(audit);
    }
    const approvals = [
      ...audit.approvals,
      { organization: approver.id, height: this.context.height, transactionIndex },
    ];
    const approved: AuditRecord = {
      ...audit,
      approvals,
      state: approvals.length >= audit.approvalsNeeded ? 'APPROVED' : 'PENDING',
    };
    this.store.putAudit(approved);
    this.log('auditApproved', audit.id, audit.requestId, transactionIndex);
    return summary(approved);
  }

  private shareRelease(
    holder: Organization,
    action: Action<'shareRelease'>,
    transactionIndex: number,
  ): EscrowAuditSummary | EscrowRefusal {
    const audit = this.store.audit(action.requestId);
    if (audit === undefined) return { reason: RejectReason.AuditUnknown };
    const notOpen = refuseUnlessApproved(audit);
    if (notOpen !== undefined) return notOpen;
    if (!this.recordOf(audit).shareHolders.includes(holder.id))
      return { reason: RejectReason.NotShareHolder };
    const prior = audit.releases.find((release) => release.holder === holder.id);
    if (prior !== undefined) {
      const same =
        bytesEqual(prior.share.encapsulatedKey, action.share.encapsulatedKey) &&
        bytesEqual(prior.share.sealedShare, action.share.sealedShare);
      return same ? summary(audit) : { reason: RejectReason.AlreadyReleased };
    }
    const released: AuditRecord = {
      ...audit,
      releases: [
        ...audit.releases,
        { holder: holder.id, share: action.share, height: this.context.height, transactionIndex },
      ],
    };
    this.store.putAudit(released);
    this.log('shareReleased', audit.id, audit.requestId, transactionIndex);
    return summary(released);
  }

  private auditOutcome(
    auditor: Organization,
    action: Action<'auditOutcome'>,
    transactionIndex: number,
  ): EscrowAuditSummary | EscrowRefusal {
    const audit = this.store.audit(action.requestId);
    if (audit === undefined) return { reason: RejectReason.AuditUnknown };
    if (auditor.id !== audit.auditor) return { reason: RejectReason.NotRequestAuditor };
    const notOpen = refuseUnlessApproved(audit);
    if (notOpen !== undefined) return notOpen;
    const accusation = checkAccusations(this.recordOf(audit), action);
    if (accusation !== undefined) return accusation;
    const closed: AuditRecord = {
      ...audit,
      state: 'CLOSED',
      outcome: {
        outcome: action.outcome,
        contentRoot: action.contentRoot,
        badShares: action.badShares,
        badHolders: action.badHolders,
        detail: action.detail,
        height: this.context.height,
        transactionIndex,
      },
    };
    this.store.putAudit(closed);
    this.log('auditClosed', audit.id, audit.requestId, transactionIndex);
    return summary(closed);
  }

  // ---- shared -----------------------------------------------------------------------------------

  private recordOf(audit: AuditRecord): EscrowRecord {
    const record = this.store.record(audit.id);
    assert(record !== undefined, `audit ${audit.requestId} names unknown escrow record ${audit.id}`);
    return record;
  }

  private log(kind: EscrowLogKind, id: string, requestId: string | null, transactionIndex: number): void {
    this.store.appendLog({ kind, id, requestId, height: this.context.height, transactionIndex });
  }
}

function refuseUnlessApproved(audit: AuditRecord): EscrowRefusal | undefined {
  switch (audit.state) {
    case 'APPROVED':
      return undefined;
    case 'PENDING':
      return { reason: RejectReason.AuditNotApproved };
    case 'CLOSED':
      return { reason: RejectReason.AuditClosed };
  }
}

function summary(audit: AuditRecord): EscrowAuditSummary {
  return { requestId: audit.requestId, id: audit.id, state: audit.state, approvals: audit.approvals.length };
}

/**
 * An outcome names only parties of the message as bad (share holders, chunk holders), and carries a
 * content root exactly when it says RETRIEVED: the record is evidence against those it names.
 */
function checkAccusations(record: EscrowRecord, action: Action<'auditOutcome'>): EscrowRefusal | undefined {
  if ((action.outcome === 'RETRIEVED') !== (action.contentRoot !== null)) {
    return { reason: RejectReason.EscrowPolicyMismatch, detail: 'contentRoot' };
  }
  const shareHolders = new Set(record.shareHolders);
  if (action.badShares.some((organization) => !shareHolders.has(organization))) {
    return { reason: RejectReason.EscrowPolicyMismatch, detail: 'badShares' };
  }
  const chunkHolders = new Set(record.chunkHolders.map((holder) => holder.organization));
  if (action.badHolders.some((organization) => !chunkHolders.has(organization))) {
    return { reason: RejectReason.EscrowPolicyMismatch, detail: 'badHolders' };
  }
  return undefined;
}
