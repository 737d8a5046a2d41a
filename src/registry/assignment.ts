/**
 * Default replica assignment for new partitions, in the spirit of Kafka's rack-aware assignment with
 * organizations as racks: partition p's replicas start at node p (round-robin, so leaders — here
 * PBFT primaries of view 0 — spread out), and prefer nodes of organizations the set does not hold
 * yet, so that one organization's nodes never make up a partition's quorum when others exist.
 */
import { escrowLimits } from '../contracts/escrow/transactions.js';
import type { EscrowPolicy, TopicPolicy } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError } from '../errors.js';

/** A new topic's policy where its creator leaves fields out: standard availability (no escrow). */
export const DEFAULT_TOPIC_POLICY: TopicPolicy = {
  messageBytesMax: 64 * 1024 * 1024 * 1024,
  ttlMs: 7 * 24 * 3600 * 1000,
  payloadRetentionMs: 24 * 3600 * 1000,
};

/**
 * An escrow topic's parameters where its creator leaves them out (DESIGN §7): each chunk on 3
 * distinct holders (BlockTorrent's three replicas), the key escrowed 2-of-3, 1 MiB chunks, and one
 * member's approval to release an audit.
 */
export const DEFAULT_ESCROW_POLICY: EscrowPolicy = {
  chunkBytes: 1024 * 1024,
  replicas: 3,
  threshold: 2,
  shares: 3,
  auditApprovals: 1,
};

/**
 * The ranges `validateTopicPolicy` holds an escrow policy to, for the CLI's flags and the REST
 * schema to name up front (a test checks they agree with it at every edge). `threshold` is also at
 * most `shares`, which a range cannot say.
 */
export const escrowPolicyBounds = {
  chunkBytes: { min: escrowLimits.chunkBytesMin, max: escrowLimits.chunkBytesMax },
  replicas: { min: 1, max: escrowLimits.replicasMax },
  threshold: { min: 1, max: escrowLimits.sharesMax },
  shares: { min: 1, max: escrowLimits.sharesMax },
  auditApprovals: { min: 0, max: 64 },
} as const satisfies Record<keyof EscrowPolicy, { min: number; max: number }>;

export const DEFAULT_REPLICATION_FACTOR = 4;

export function assignReplicas(
  nodes: readonly { readonly id: string; readonly organization: string }[],
  firstPartition: number,
  partitions: number,
  replicationFactor: number,
): string[][] {
  if (!Number.isSafeInteger(replicationFactor) || replicationFactor < 4 || replicationFactor > 7) {
    throw new LedgerbusError(ErrorCode.BadConfig, `replication factor ${replicationFactor}: must be 4 to 7`);
  }
  const sorted = [...nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (sorted.length < replicationFactor) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `replication factor ${replicationFactor} needs as many nodes; the network has ${sorted.length}`,
    );
  }
  const sets: string[][] = [];
  for (let p = firstPartition; p < firstPartition + partitions; p++) {
    const rotated = sorted.map((_, i) => sorted[(p + i) % sorted.length]!);
    const chosen: { id: string; organization: string }[] = [];
    const organizations = new Set<string>();
    for (const node of rotated) {
      if (chosen.length === replicationFactor) break;
      if (!organizations.has(node.organization)) {
        chosen.push(node);
        organizations.add(node.organization);
      }
    }
    for (const node of rotated) {
      if (chosen.length === replicationFactor) break;
      if (!chosen.includes(node)) chosen.push(node);
    }
    sets.push(chosen.map((node) => node.id));
  }
  return sets;
}
