/**
 * An escrowed message's record as the connector may act on it (DESIGN §7): the node's `escrowRecord`
 * answer with the message's acceptance proof verified against the trust bundle, so the escrow
 * metadata (commitments, sealed shares, placement) is what the sender signed and the partition
 * accepted, whatever node answered. The rest of the record (attestations, audits) is the node's
 * view of committed state: a hint the contract enforces again on whatever we submit.
 */
import type { CborValue } from '../../codec/index.js';
import type { EscrowMetadata } from '../../contracts/escrow/transactions.js';
import { escrowRecordViewSchema } from '../../contracts/escrow/views.js';
import type { EscrowRecordView } from '../../contracts/escrow/views.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { acceptanceProofSchema, verifyAcceptance } from '../../proofs/index.js';
import type { AcceptedMessage, ProofTrust } from '../../proofs/index.js';
import type { NodeSession } from '../session/node-session.js';

export interface VerifiedEscrowRecord {
  /** What the acceptance proof establishes (sender, partition, offset, signed metadata). */
  readonly accepted: AcceptedMessage;
  /** The escrow metadata of the accepted message. */
  readonly escrow: EscrowMetadata;
  /** The node's view of the message's escrow state. */
  readonly record: EscrowRecordView;
  /** The block evidences of the share releases, as the node sent them (the auditor verifies them). */
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
  const accepted = verifyAcceptance(acceptanceProofSchema.parse(answer.acceptance, 'acceptance'), trust);
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
  return { accepted, escrow, record, evidences: answer.evidences };
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
