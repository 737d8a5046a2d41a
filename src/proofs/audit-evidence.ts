/**
 * What the block evidences of an audit of an escrowed message prove (DESIGN §7), checked offline
 * against a trust bundle: each audit transaction — the request, the approvals, the share releases,
 * the outcome — is an escrow transaction signed by a registered key of its organization, included
 * in a block certified by its partition's replica set, and its RESULT, a leaf of the same certified
 * block, is the contract's OK with the audit's state after it. So the contract's decisions are
 * proven, not only what the parties asked for.
 *
 * A node's escrow record view is a hint: `verifyAuditEvidence` keeps only what an evidence proves
 * and names every view field it dropped. The offline audit record (audit-record.ts) is checked with
 * the same steps, strictly: there, any step that fails makes the whole record invalid.
 */
import { bytesEqual } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import type { EscrowAuditSummary } from '../contracts/escrow/results.js';
import { ESCROW_SIGNING_TYPE, escrowSigningPayload } from '../contracts/escrow/transactions.js';
import type { EscrowAction, EscrowTransaction } from '../contracts/escrow/transactions.js';
import type { AuditView, EscrowRecordView } from '../contracts/escrow/views.js';
import { decodeTransactionResult } from '../contracts/results.js';
import { decodeTransaction } from '../contracts/transactions.js';
import { ErrorCode, LedgerbusError, assert, isLedgerbusError } from '../errors.js';
import { blockEvidenceSchema, verifyBlockEvidence } from './evidence.js';
import type { BlockEvidence } from './evidence.js';
import type { AcceptedMessage, ProofTrust } from './message-proof.js';

/** Where a transaction committed: its block and its index in that block. */
export interface RecordPosition {
  readonly height: number;
  readonly transactionIndex: number;
}

/** A block evidence as a node's escrowRecord answer carries it, keyed by the position it proves. */
export interface PositionedEvidence extends RecordPosition {
  readonly evidence: CborValue;
}

export type AuditStepKind = 'auditRequest' | 'auditApprove' | 'shareRelease' | 'auditOutcome';
type ActionOf<K extends AuditStepKind> = Extract<EscrowAction, { kind: K }>;

/** One audit transaction an evidence proves. */
export interface ProvenStep<K extends AuditStepKind> extends RecordPosition {
  readonly organization: string;
  readonly action: ActionOf<K>;
  /** The contract's summary of the audit after this transaction. */
  readonly audit: EscrowAuditSummary;
  /** The block's timestamp. */
  readonly time: number;
}

/**
 * An audit as its evidences prove it: AuditView's shape without `approvalsNeeded` (no transaction
 * states it), `requestedAt` being the request block's timestamp, and `state` what the latest proven
 * result says (proven results only move forward: PENDING, APPROVED, CLOSED).
 */
export type ProvenAudit = Omit<AuditView, 'approvalsNeeded'>;

/** A field of a node's view that no verifying evidence backs, and why. */
export interface DroppedField {
  /** `auditor`, `reason`, `state`, `approvals[org]`, `releases[org]` or `outcome`. */
  readonly field: string;
  readonly code: string;
  readonly reason: string;
}

function badProof(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadProof, message);
}

const kindNames: Record<AuditStepKind, string> = {
  auditRequest: 'audit request',
  auditApprove: 'approval',
  shareRelease: 'share release',
  auditOutcome: 'audit outcome',
};

/** The escrow transaction inside a block transaction; BAD_PROOF if it is none. */
function escrowTransactionOf(evidence: BlockEvidence): EscrowTransaction {
  let transaction;
  try {
    const request = decodeClientRequest(evidence.transaction, messageLimits.requestBytesMax);
    transaction = decodeTransaction(request.operation);
  } catch (error) {
    if (isLedgerbusError(error)) throw badProof(`the proven transaction does not decode: ${error.message}`);
    throw error;
  }
  if (transaction.type !== 'escrow') throw badProof(`the proven transaction is a ${transaction.type}`);
  return transaction;
}

/** The contract's result in a block evidence; BAD_PROOF if it does not decode. */
function resultOf(evidence: BlockEvidence): ReturnType<typeof decodeTransactionResult> {
  try {
    return decodeTransactionResult(evidence.result);
  } catch (error) {
    if (isLedgerbusError(error)) throw badProof(`the proven result does not decode: ${error.message}`);
    throw error;
  }
}

/**
 * Verifies that `evidence` proves an OK escrow transaction of `kind` for audit `requestId` of
 * `message`, signed by its organization: the block is of the message's partition, no older than the
 * message, certified by the replica set the trust bundle gives its epoch (certificate codes:
 * WRONG_GROUP, INSUFFICIENT_SIGNATURES, BAD_SIGNATURE, …), holds the transaction and its result
 * (BAD_PROOF), the transaction is signed by a key of its organization in the trust bundle's network
 * (BAD_SIGNATURE; WRONG_GROUP for an organization outside the network) and the contract answered OK
 * for this very request (BAD_PROOF). With `at`, the evidence must be of that position.
 */
export function verifyAuditStep<K extends AuditStepKind>(
  trust: ProofTrust,
  message: AcceptedMessage,
  requestId: string,
  kind: K,
  evidence: BlockEvidence,
  at?: RecordPosition,
): ProvenStep<K> {
  const what = kindNames[kind];
  const { header } = evidence;
  if (header.partitionId !== message.partitionId) {
    throw badProof(`the ${what} was recorded on ${header.partitionId}, not on the message's partition`);
  }
  const membership = trust.membership(header.partitionId, header.configEpoch);
  if (membership === undefined) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `partition ${header.partitionId} epoch ${header.configEpoch} is not in this network`,
    );
  }
  verifyBlockEvidence(evidence, membership);
  const transactionIndex = evidence.transactionProof.leafIndex;
  if (at !== undefined && (header.height !== at.height || transactionIndex !== at.transactionIndex)) {
    throw badProof(
      `the ${what} evidence is of transaction ${transactionIndex} of block ${header.height}, not ${at.transactionIndex} of ${at.height}`,
    );
  }
  if (header.height < message.height) throw badProof(`the ${what} precedes the message's acceptance`);
  const transaction = escrowTransactionOf(evidence);
  const { action, organization } = transaction;
  if (action.kind !== kind) throw badProof(`the ${what} evidence proves an ${action.kind}, not an ${kind}`);
  if (action.requestId !== requestId) {
    throw badProof(`the ${what} is for audit ${action.requestId}, not ${requestId}`);
  }
  const keys = trust.signingKeys(organization);
  if (keys === undefined) {
    throw new LedgerbusError(ErrorCode.WrongGroup, `organization ${organization} is not in this network`);
  }
  if (
    !keys.some((key) => bytesEqual(key, transaction.signerKey)) ||
    !trust.signing.verify(
      transaction.signerKey,
      ESCROW_SIGNING_TYPE,
      escrowSigningPayload(transaction),
      transaction.signature,
    )
  ) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the ${what} is not signed by a key of ${organization} for network ${trust.signing.network}`,
    );
  }
  const result = resultOf(evidence);
  if (
    result.status !== 'OK' ||
    result.type !== 'escrow' ||
    result.kind !== kind ||
    result.organization !== organization ||
    result.audit === null ||
    result.audit.requestId !== requestId ||
    result.audit.id !== message.id
  ) {
    const why = result.status === 'REJECTED' ? `: it refused it (${result.reason})` : '';
    throw badProof(`the contract did not execute this ${what} of ${message.id}${why}`);
  }
  return {
    organization,
    action: action as ActionOf<K>,
    audit: result.audit,
    height: header.height,
    transactionIndex,
    time: header.timestamp,
  };
}

/** The proven steps of one audit, before they are put together. */
export interface AuditSteps {
  readonly request: ProvenStep<'auditRequest'>;
  readonly approvals: readonly ProvenStep<'auditApprove'>[];
  readonly releases: readonly ProvenStep<'shareRelease'>[];
  readonly outcome: ProvenStep<'auditOutcome'> | null;
}

/**
 * Checks what a proven step says against the proven request and the message, beyond what the
 * contract's OK already implies: an approval neither by the auditor nor by the sender, a release by
 * one of the message's share holders, an outcome by the auditor. BAD_PROOF otherwise (a contract
 * that broke its own rules, or evidence of another audit with the same id elsewhere).
 */
export function checkAuditRoles(
  message: AcceptedMessage,
  request: ProvenStep<'auditRequest'>,
  step: { readonly organization: string; readonly action: EscrowAction },
): void {
  const auditor = request.organization;
  switch (step.action.kind) {
    case 'auditApprove':
      if (step.organization === auditor || step.organization === message.sender) {
        throw badProof(`${step.organization} may not approve: it is the auditor or the sender`);
      }
      return;
    case 'shareRelease':
      if (!(message.metadata.escrow?.shares ?? []).some((entry) => entry.holder === step.organization)) {
        throw badProof(`${step.organization} holds no key share of ${message.id}`);
      }
      return;
    case 'auditOutcome':
      if (step.organization !== auditor)
        throw badProof(`the outcome is by ${step.organization}, not the auditor`);
      return;
  }
}

/** Verifies the request step: the auditor asked for THIS message. */
export function verifyAuditRequest(
  trust: ProofTrust,
  message: AcceptedMessage,
  requestId: string,
  evidence: BlockEvidence,
  at?: RecordPosition,
): ProvenStep<'auditRequest'> {
  const request = verifyAuditStep(trust, message, requestId, 'auditRequest', evidence, at);
  if (request.action.id !== message.id) {
    throw badProof(`audit ${requestId} asks for message ${request.action.id}, not ${message.id}`);
  }
  return request;
}

/** The audit `steps` prove, its state the one the latest proven result gives. */
export function provenAuditOf(steps: AuditSteps): ProvenAudit {
  const { request, approvals, releases, outcome } = steps;
  const all = [request, ...approvals, ...releases, ...(outcome === null ? [] : [outcome])];
  const latest = all.reduce((newest, step) =>
    step.height > newest.height ||
    (step.height === newest.height && step.transactionIndex > newest.transactionIndex)
      ? step
      : newest,
  );
  const position = (step: RecordPosition): RecordPosition => ({
    height: step.height,
    transactionIndex: step.transactionIndex,
  });
  return {
    requestId: request.action.requestId,
    id: request.action.id,
    auditor: request.organization,
    reason: request.action.reason,
    state: latest.audit.state,
    requestedAt: request.time,
    ...position(request),
    approvals: approvals.map((step) => ({ organization: step.organization, ...position(step) })),
    releases: releases.map((step) => ({
      holder: step.organization,
      share: step.action.share,
      ...position(step),
    })),
    outcome:
      outcome === null
        ? null
        : {
            outcome: outcome.action.outcome,
            contentRoot: outcome.action.contentRoot,
            badShares: outcome.action.badShares,
            badHolders: outcome.action.badHolders,
            detail: outcome.action.detail,
            ...position(outcome),
          },
  };
}

/**
 * Audit `view` of accepted message `message` as `evidences` prove it, against `trust`. Every view
 * entry (approval, release, outcome) counts only if the evidence at its position verifies
 * (verifyAuditStep, checkAuditRoles) and is by the organization the view names; otherwise it is
 * left out and named in `dropped`, as are the auditor, reason and state when the view says other
 * than what is proven. Throws (BAD_PROOF, the certificate's or signature's code) when the request
 * itself is not proven, or the view is of another message: then nothing about the audit is.
 */
export function verifyAuditEvidence(
  message: AcceptedMessage,
  view: AuditView,
  evidences: readonly PositionedEvidence[],
  trust: ProofTrust,
): { audit: ProvenAudit; dropped: DroppedField[] } {
  if (view.id !== message.id) throw badProof(`audit ${view.requestId} is of ${view.id}, not ${message.id}`);
  const evidenceAt = (field: string, at: RecordPosition): BlockEvidence => {
    const entry = evidences.find(
      (candidate) => candidate.height === at.height && candidate.transactionIndex === at.transactionIndex,
    );
    if (entry === undefined) {
      throw badProof(`no evidence for ${field} at transaction ${at.transactionIndex} of block ${at.height}`);
    }
    return blockEvidenceSchema.parse(entry.evidence, field);
  };
  const request = verifyAuditRequest(trust, message, view.requestId, evidenceAt('the request', view), view);
  const dropped: DroppedField[] = [];
  // The contract records one approval and one release per organization: a second is a node's invention.
  const seen = new Set<string>();
  const prove = <K extends 'auditApprove' | 'shareRelease' | 'auditOutcome'>(
    field: string,
    kind: K,
    entry: RecordPosition & { organization?: string },
  ): ProvenStep<K> | undefined => {
    try {
      const step = verifyAuditStep(trust, message, view.requestId, kind, evidenceAt(field, entry), entry);
      if (entry.organization !== undefined && step.organization !== entry.organization) {
        throw badProof(`the evidence is of ${step.organization}'s ${kindNames[kind]}`);
      }
      checkAuditRoles(message, request, step);
      if (kind !== 'auditOutcome') {
        const key = `${kind}/${step.organization}`;
        if (seen.has(key)) throw badProof(`a second ${kindNames[kind]} by ${step.organization}`);
        seen.add(key);
      }
      return step;
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      dropped.push({ field, code: error.code, reason: error.message });
      return undefined;
    }
  };
  const approvals = view.approvals
    .map((entry) => prove(`approvals[${entry.organization}]`, 'auditApprove', entry))
    .filter((step) => step !== undefined);
  const releases = view.releases
    .map((entry) =>
      prove(`releases[${entry.holder}]`, 'shareRelease', { ...entry, organization: entry.holder }),
    )
    .filter((step) => step !== undefined);
  const outcome = view.outcome === null ? undefined : prove('outcome', 'auditOutcome', view.outcome);
  const audit = provenAuditOf({
    request,
    approvals,
    releases,
    outcome: outcome ?? null,
  });
  const differs = (field: 'auditor' | 'reason' | 'state'): void => {
    if (view[field] !== audit[field]) {
      dropped.push({
        field,
        code: ErrorCode.BadProof,
        reason: `the view says ${field} ${view[field]}; the evidences prove ${audit[field]}`,
      });
    }
  };
  differs('auditor');
  differs('reason');
  differs('state');
  assert(
    audit.requestId === view.requestId && audit.id === message.id,
    'the proven audit is the one asked for',
  );
  return { audit, dropped };
}

/**
 * Where every transaction of `record`'s audits committed — the request, the approvals, the
 * releases, the outcome — then its holders' attestations, each position once. Newest audit first:
 * a node that must cut the list short to fit its answer leaves out the oldest, long closed audits,
 * not the open one an auditor or a holder is acting on.
 */
export function escrowRecordPositions(
  record: Pick<EscrowRecordView, 'audits' | 'attestations'>,
): RecordPosition[] {
  const positions = new Map<string, RecordPosition>();
  const add = ({ height, transactionIndex }: RecordPosition): void => {
    positions.set(`${height}/${transactionIndex}`, { height, transactionIndex });
  };
  for (const audit of [...record.audits].reverse()) {
    add(audit);
    audit.approvals.forEach(add);
    audit.releases.forEach(add);
    if (audit.outcome !== null) add(audit.outcome);
  }
  record.attestations.forEach(add);
  return [...positions.values()];
}
