/**
 * The escrow contract's part of a publish (DESIGN §7): checking a message's escrow metadata against
 * its topic's policy and the registry, and the escrow record an accepted escrowed message starts
 * with. Pure functions of their arguments; the SDT contract calls `checkEscrowMetadata` after its own
 * checks and `newEscrowRecord` when it records the message.
 */
import { headerBytesMax } from '../../crypto/envelope/header.js';
import { validCommitments } from '../../crypto/escrow/feldman.js';
import { assert } from '../../errors.js';
import { RejectReason } from '../reasons.js';
import type { EscrowPolicy, Registry, TopicPolicy } from '../registry.js';
import type { MessageMetadata } from '../transactions.js';
import type { EscrowRecord } from './store.js';
import type { EscrowMetadata } from './transactions.js';

/** Why the contract refuses something: a stable reason and an optional detail (a field, an org). */
export interface EscrowRefusal {
  readonly reason: RejectReason;
  readonly detail?: string;
}

/** The 4-byte length that frames the envelope header at the start of the blob (crypto/escrow/blob.ts). */
const escrowBlobPrefixBytes = 4;

function mismatch(field: string): EscrowRefusal {
  return { reason: RejectReason.EscrowPolicyMismatch, detail: field };
}

function holderInvalid(organization: string): EscrowRefusal {
  return { reason: RejectReason.EscrowHolderInvalid, detail: organization };
}

/**
 * Checks the escrow side of a message the SDT checks accepted, sent by `sender` on a topic with
 * `policy` (already validated). Returns undefined when the message may be recorded, else why not.
 * Cheap structural checks come first and the curve arithmetic (`validCommitments`) last, so a
 * malformed message costs a replica little.
 */
export function checkEscrowMetadata(
  registry: Registry,
  sender: string,
  policy: TopicPolicy,
  message: MessageMetadata,
): EscrowRefusal | undefined {
  if (policy.availability !== 'escrow') {
    return message.escrow === undefined ? undefined : { reason: RejectReason.EscrowNotAllowed };
  }
  assert(policy.escrow !== undefined, 'an escrow topic policy without escrow passed validation');
  if (message.escrow === undefined) return { reason: RejectReason.EscrowRequired };
  return (
    checkShape(policy.escrow, message.size, message.escrow) ??
    checkHolders(registry, sender, message.escrow) ??
    (validCommitments(message.escrow.commitments) ? undefined : mismatch('commitments'))
  );
}

/** The numbers and the placement against the policy and each other. */
function checkShape(policy: EscrowPolicy, size: number, escrow: EscrowMetadata): EscrowRefusal | undefined {
  if (escrow.chunkBytes !== policy.chunkBytes) return mismatch('chunkBytes');
  if (escrow.commitments.length !== policy.threshold) return mismatch('commitments');
  if (escrow.shares.length !== policy.shares) return mismatch('shares');
  // chunkCount = ceil(blobBytes / chunkBytes), in integers: chunkCount ≤ escrowLimits.chunksMax by
  // schema and chunkBytes ≤ 8 MiB by policy, so both products are far below 2^53 and exact.
  const { chunkBytes, chunkCount, blobBytes } = escrow;
  if (chunkCount * chunkBytes < blobBytes || (chunkCount - 1) * chunkBytes >= blobBytes) {
    return mismatch('chunkCount');
  }
  // The blob is the framed envelope header followed by the ciphertext whose size the SDT checked:
  // no more, so holders never store a sender's padding.
  if (blobBytes < size || blobBytes > size + escrowBlobPrefixBytes + headerBytesMax)
    return mismatch('blobBytes');
  const { replicas } = policy;
  const { placement, holders } = escrow;
  if (placement.length !== chunkCount * replicas) return mismatch('placement');
  const used = new Set<number>();
  for (let chunk = 0; chunk < chunkCount; chunk++) {
    const slots = placement.subarray(chunk * replicas, (chunk + 1) * replicas);
    if (slots.some((index) => index >= holders.length)) return mismatch('placement');
    // Distinct holders per chunk is the whole point of the placement (DESIGN §7).
    if (new Set(slots).size !== replicas) return mismatch('placement');
    for (const index of slots) used.add(index);
  }
  if (used.size !== holders.length) return mismatch('holders');
  return undefined;
}

/** Every share and chunk holder: distinct, not the sender, a registered APPROVED member. */
function checkHolders(registry: Registry, sender: string, escrow: EscrowMetadata): EscrowRefusal | undefined {
  for (const group of [escrow.shares.map((entry) => entry.holder), escrow.holders]) {
    const seen = new Set<string>();
    for (const organizationId of group) {
      if (seen.has(organizationId)) return holderInvalid(organizationId);
      seen.add(organizationId);
      if (organizationId === sender) return holderInvalid(organizationId);
      const organization = registry.organization(organizationId);
      if (
        organization === undefined ||
        organization.status !== 'APPROVED' ||
        !organization.roles.includes('member')
      ) {
        return holderInvalid(organizationId);
      }
    }
  }
  return undefined;
}

/**
 * The escrow record of a message just accepted at (`height`, `transactionIndex`): PENDING, no
 * attestations, no audits. `message.escrow` must have passed `checkEscrowMetadata`.
 */
export function newEscrowRecord(
  message: MessageMetadata,
  sender: string,
  policy: EscrowPolicy,
  position: { height: number; transactionIndex: number },
): EscrowRecord {
  const escrow = message.escrow;
  assert(escrow !== undefined, `message ${message.id} has no escrow metadata`);
  const chunks = new Array<number>(escrow.holders.length).fill(0);
  for (const index of escrow.placement) chunks[index] = (chunks[index] ?? 0) + 1;
  return {
    id: message.id,
    sender,
    topic: message.topic,
    status: 'PENDING',
    threshold: escrow.commitments.length,
    auditApprovals: policy.auditApprovals,
    shareHolders: escrow.shares.map((entry) => entry.holder),
    chunkHolders: escrow.holders.map((organization, index) => ({
      organization,
      chunks: chunks[index] ?? 0,
    })),
    attestations: [],
    audits: [],
    height: position.height,
    transactionIndex: position.transactionIndex,
  };
}
