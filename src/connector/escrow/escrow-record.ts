/**
 * An escrowed message's record as the connector may act on it (DESIGN §7): the node's `escrowRecord`
 * answer with the message's acceptance proof verified against the trust bundle, so the escrow
 * metadata (commitments, sealed shares, placement) is what the sender signed and the partition
 * accepted, whatever node answered. The rest of the record (attestations, audits) is the node's
 * view of committed state: a hint the contract enforces again on whatever we submit, and which we
 * act on only as far as its block evidences prove it (`provenAudit`): a holder releases its share
 * and serves its chunks to an audit proven APPROVED, never on its node's word.
 */
import type { CborValue } from '../../codec/index.js';
import type { EscrowMetadata } from '../../contracts/escrow/transactions.js';
import { escrowRecordViewSchema } from '../../contracts/escrow/views.js';
import type { AuditView, EscrowRecordView } from '../../contracts/escrow/views.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import {
  AUDIT_RECORD_FORMAT,
  acceptanceProofSchema,
  auditRecordBundle,
  blockEvidenceSchema,
  verifyAcceptance,
  verifyAuditEvidence,
} from '../../proofs/index.js';
import type {
  AcceptanceProof,
  AcceptedMessage,
  AuditRecordBundle,
  BlockEvidence,
  DroppedField,
  ProofTrust,
  ProvenAudit,
  RecordPosition,
} from '../../proofs/index.js';
import type { NodeSession } from '../session/node-session.js';

export interface VerifiedEscrowRecord {
  /** The message's acceptance proof, verified. */
  readonly acceptance: AcceptanceProof;
  /** What the acceptance proof establishes (sender, partition, offset, signed metadata). */
  readonly accepted: AcceptedMessage;
  /** The escrow metadata of the accepted message. */
  readonly escrow: EscrowMetadata;
  /** The node's view of the message's escrow state. */
  readonly record: EscrowRecordView;
  /**
   * The block evidences of the audits' transactions and the attestations, by position, as the node
   * sent them: unverified until `provenAudit` (or the auditor's share collection) checks them.
   */
  readonly evidences: readonly { height: number; transactionIndex: number; evidence: CborValue }[];
}

/**
 * Asks our node for message `id`'s escrow record in partition `group` and verifies its acceptance.
 * Throws LedgerbusError: whatever the node answered (MESSAGE_NOT_FOUND, FORBIDDEN, …); the proof's
 * own failure (BAD_PROOF, BAD_SIGNATURE, …); BAD_PROOF when the proof is of another message or
 * partition, the message carries no escrow metadata, or the record names another message or sender.
 */
export async function fetchEscrowRecord(
  session: Pick<NodeSession, 'call'>,
  trust: ProofTrust,
  group: string,
  id: string,
): Promise<VerifiedEscrowRecord> {
  const answer = await session.call('escrowRecord', { group, id });
  const acceptance = acceptanceProofSchema.parse(answer.acceptance, 'acceptance');
  const accepted = verifyAcceptance(acceptance, trust);
  if (accepted.id !== id || accepted.partitionId !== group) {
    throw new LedgerbusError(
      ErrorCode.BadProof,
      `the node proved message ${accepted.id} of ${accepted.partitionId}, not ${id} of ${group}`,
    );
  }
  const escrow = accepted.metadata.escrow;
  if (escrow === undefined) {
    throw new LedgerbusError(ErrorCode.BadProof, `message ${id} of ${group} was not escrowed`);
  }
  const record = escrowRecordViewSchema.parse(answer.record, 'record');
  if (record.id !== id || record.group !== group || record.sender !== accepted.sender) {
    throw new LedgerbusError(
      ErrorCode.BadProof,
      `the node's escrow record is of ${record.id} by ${record.sender} in ${record.group}, not of ${id} by ${accepted.sender} in ${group}`,
    );
  }
  return { acceptance, accepted, escrow, record, evidences: answer.evidences };
}

/**
 * Audit `requestId` of `verified`'s message as the node's evidences prove it (verifyAuditEvidence):
 * the view's entry, the proven audit, and the view fields no evidence backs. Undefined when the
 * view has no such audit. Throws (BAD_PROOF, the certificate's or signature's code) when even the
 * request is not proven: then nothing about the audit may be acted on.
 */
export function provenAudit(
  verified: VerifiedEscrowRecord,
  requestId: string,
  trust: ProofTrust,
): { view: AuditView; audit: ProvenAudit; dropped: DroppedField[] } | undefined {
  const view = verified.record.audits.find((audit) => audit.requestId === requestId);
  if (view === undefined) return undefined;
  return { view, ...verifyAuditEvidence(verified.accepted, view, verified.evidences, trust) };
}

/**
 * The offline audit record of audit `requestId` of `verified`'s message (see proofs/audit-record):
 * its acceptance proof and the evidence of every transaction the node's view lists, verified
 * strictly. FORBIDDEN-free by design: whoever the node shows the record to may build it.
 * MESSAGE_NOT_FOUND when the view has no such audit; BAD_PROOF (naming the entry) when the node
 * sent no evidence for an entry of the view, or one that does not verify.
 */
export function buildAuditRecord(
  verified: VerifiedEscrowRecord,
  requestId: string,
  trust: ProofTrust,
): AuditRecordBundle {
  const { accepted, record, evidences } = verified;
  const view = record.audits.find((audit) => audit.requestId === requestId);
  if (view === undefined) {
    throw new LedgerbusError(
      ErrorCode.MessageNotFound,
      `message ${accepted.id} of ${accepted.partitionId} has no audit ${requestId}`,
      { retriable: true },
    );
  }
  const evidenceAt = (what: string, at: RecordPosition): BlockEvidence => {
    const entry = evidences.find(
      (candidate) => candidate.height === at.height && candidate.transactionIndex === at.transactionIndex,
    );
    if (entry === undefined) {
      throw new LedgerbusError(
        ErrorCode.BadProof,
        `our node sent no evidence for ${what} of audit ${requestId} (transaction ${at.transactionIndex} of block ${at.height})`,
      );
    }
    return blockEvidenceSchema.parse(entry.evidence, what);
  };
  return auditRecordBundle(
    {
      format: AUDIT_RECORD_FORMAT,
      acceptance: verified.acceptance,
      audit: {
        requestId,
        request: evidenceAt('the request', view),
        approvals: view.approvals.map((entry) => evidenceAt(`${entry.organization}'s approval`, entry)),
        releases: view.releases.map((entry) => evidenceAt(`${entry.holder}'s release`, entry)),
        outcome: view.outcome === null ? null : evidenceAt('the outcome', view.outcome),
      },
    },
    trust,
  );
}

/**
 * The chunk indexes `placement` gives holder `organization`, in order; empty when it holds none.
 * `placement` is chunkCount × replicas indexes into `holders` (see escrowMetadataSchema).
 */
export function placedChunks(escrow: EscrowMetadata, organization: string): number[] {
  const holderIndex = escrow.holders.indexOf(organization);
  if (holderIndex < 0) return [];
  const replicas = escrow.placement.length / escrow.chunkCount;
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new LedgerbusError(
      ErrorCode.BadProof,
      `the placement (${escrow.placement.length} bytes) does not fit ${escrow.chunkCount} chunks`,
    );
  }
  const chunks: number[] = [];
  for (let chunk = 0; chunk < escrow.chunkCount; chunk++) {
    const slots = escrow.placement.subarray(chunk * replicas, (chunk + 1) * replicas);
    if (slots.includes(holderIndex)) chunks.push(chunk);
  }
  return chunks;
}
