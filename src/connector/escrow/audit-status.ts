/**
 * An escrowed message's standing as an auditor reads it (DESIGN §7): who holds which share and what
 * they attested, where every chunk is, and whether an approved audit could rebuild the message now.
 * Pure functions of a verified escrow record (escrow-record.ts): the placement and share list come
 * from the sender's signed, accepted metadata; attestations and audits from the node's view.
 */
import { toHex } from '../../codec/index.js';
import type { EscrowMetadata } from '../../contracts/escrow/transactions.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { AuditSummary, EscrowPlacementStatus, EscrowShareStatus, EscrowStatus } from './audit-types.js';
import type { VerifiedEscrowRecord } from './escrow-record.js';

/**
 * For each chunk, its holders in the order the sender ranked them. BAD_PROOF when the placement
 * does not fit the chunk count or names a holder index outside `holders` (the contract refuses
 * both, so only a forged record gets here).
 */
export function chunkHolders(escrow: EscrowMetadata): string[][] {
  const replicas = escrow.placement.length / escrow.chunkCount;
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new LedgerbusError(
      ErrorCode.BadProof,
      `the placement (${escrow.placement.length} bytes) does not fit ${escrow.chunkCount} chunks`,
    );
  }
  const perChunk: string[][] = [];
  for (let chunk = 0; chunk < escrow.chunkCount; chunk++) {
    const slots = escrow.placement.subarray(chunk * replicas, (chunk + 1) * replicas);
    perChunk.push(
      Array.from(slots, (slot) => {
        const holder = escrow.holders[slot];
        if (holder === undefined) {
          throw new LedgerbusError(
            ErrorCode.BadProof,
            `chunk ${chunk} is placed on holder ${slot} of ${escrow.holders.length}`,
          );
        }
        return holder;
      }),
    );
  }
  return perChunk;
}

export function placementStatus(escrow: EscrowMetadata, sender: string): EscrowPlacementStatus {
  const perChunk = chunkHolders(escrow);
  return {
    chunks: escrow.chunkCount,
    replicas: perChunk[0]?.length ?? 0,
    holders: [...escrow.holders],
    perChunk,
    allDistinct: perChunk.every((holders) => new Set(holders).size === holders.length),
    ownerHolds: escrow.holders.includes(sender),
  };
}

/** An audit as the REST API shows it. */
export function auditSummary(audit: AuditView, group: string): AuditSummary {
  return {
    requestId: audit.requestId,
    id: audit.id,
    group,
    auditor: audit.auditor,
    reason: audit.reason,
    state: audit.state,
    approvals: audit.approvals.map((approval) => ({ organization: approval.organization })),
    approvalsNeeded: audit.approvalsNeeded,
    releases: audit.releases.map((release) => ({ holder: release.holder })),
    outcome:
      audit.outcome === null
        ? null
        : {
            outcome: audit.outcome.outcome,
            contentRoot: audit.outcome.contentRoot === null ? null : toHex(audit.outcome.contentRoot),
            badShares: [...audit.outcome.badShares],
            badHolders: [...audit.outcome.badHolders],
            detail: audit.outcome.detail,
          },
  };
}

/**
 * The status of a verified escrow record. `retrievable` follows what holders attested, not what
 * they will do: not INVALID, at least `threshold` share holders attested VERIFIED, and every chunk
 * has a holder that attested holding every chunk the placement gives it (a partial holding says
 * nothing about which chunks are missing). `why` says which condition failed first.
 */
export function escrowStatus(verified: VerifiedEscrowRecord): EscrowStatus {
  const { accepted, escrow, record } = verified;
  const group = accepted.partitionId;
  const placement = placementStatus(escrow, accepted.sender);
  const attested = new Map(record.attestations.map((entry) => [entry.organization, entry]));
  const shares: EscrowShareStatus[] = escrow.shares.map((entry, position) => {
    const share = attested.get(entry.holder)?.share;
    return {
      holder: entry.holder,
      index: position + 1,
      attested: share === 'VERIFIED' || share === 'INVALID' ? share : null,
    };
  });
  const placedCount = new Map<string, number>();
  for (const holders of placement.perChunk) {
    for (const holder of new Set(holders)) placedCount.set(holder, (placedCount.get(holder) ?? 0) + 1);
  }
  const holdsAll = (holder: string): boolean =>
    (attested.get(holder)?.chunksHeld ?? 0) >= (placedCount.get(holder) ?? Number.POSITIVE_INFINITY);
  const verifiedShares = shares.filter((share) => share.attested === 'VERIFIED').length;
  const uncovered = placement.perChunk.findIndex((holders) => !holders.some(holdsAll));
  let why: string | undefined;
  if (record.status === 'INVALID') {
    const complainers = shares.filter((share) => share.attested === 'INVALID').map((share) => share.holder);
    why = `escrow INVALID: ${complainers.join(', ') || 'a holder'} found its share does not match the sender's commitments`;
  } else if (verifiedShares < record.threshold) {
    why = `${verifiedShares} of the ${record.threshold} share holders needed attested a VERIFIED share so far`;
  } else if (uncovered >= 0) {
    why = `no holder of chunk ${uncovered} (${placement.perChunk[uncovered]?.join(', ') ?? ''}) attested holding all the chunks placed on it`;
  }
  return {
    id: accepted.id,
    group,
    sender: accepted.sender,
    status: record.status,
    threshold: record.threshold,
    shares,
    placement,
    attestations: record.attestations.map((entry) => ({
      organization: entry.organization,
      share: entry.share,
      chunksHeld: entry.chunksHeld,
    })),
    audits: record.audits.map((audit) => auditSummary(audit, group)),
    retrievable: why === undefined,
    ...(why === undefined ? {} : { why }),
  };
}
