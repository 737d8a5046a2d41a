/**
 * Default replica assignment for new partitions, in the spirit of Kafka's rack-aware assignment with
 * organizations as racks: partition p's replicas start at node p (round-robin, so leaders — here
 * PBFT primaries of view 0 — spread out), and prefer nodes of organizations the set does not hold
 * yet, so that one organization's nodes never make up a partition's quorum when others exist.
 */
import type { TopicPolicy } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError } from '../errors.js';

export const DEFAULT_TOPIC_POLICY: TopicPolicy = {
  messageBytesMax: 64 * 1024 * 1024 * 1024,
  ttlMs: 7 * 24 * 3600 * 1000,
  payloadRetentionMs: 24 * 3600 * 1000,
};

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
