/**
 * What the runtime reads about the network, whichever source the registry comes from: genesis
 * (`GenesisRegistry`), the Raft layer (`RegistryView`, `LiveRegistry`) or a node's snapshot on a
 * connector. These types have a module of their own so that every implementation and every reader
 * can import them without importing one another.
 */
import type { Organization, Registry, Topic } from '../contracts/registry.js';
import type { GroupMembership } from '../ledger/block.js';

export interface NodeInfo {
  readonly id: string;
  readonly organization: string;
  readonly publicKey: Uint8Array;
  readonly host: string;
  readonly port: number;
}

export interface PartitionInfo {
  readonly topic: string;
  readonly partition: number;
  /** Consensus group id, "topic/partition". */
  readonly groupId: string;
  readonly configEpoch: number;
  /** Node ids in replica order: replica i is the primary of views ≡ i (mod n). */
  readonly replicas: readonly string[];
}

/**
 * Everything the runtime reads about the network. The SDT contract sees only its `Registry` part,
 * and only at the index a batch names; genesis has one index, 0.
 */
export interface NetworkRegistry extends Registry {
  readonly network: string;
  organizations(): readonly Organization[];
  encryptionKey(organization: string): Uint8Array | undefined;
  node(id: string): NodeInfo | undefined;
  nodes(): readonly NodeInfo[];
  /** The node id whose key is `publicKey`, if any. */
  nodeByKey(publicKey: Uint8Array): NodeInfo | undefined;
  /** The organization one of whose connector keys is `publicKey`, if any. */
  organizationBySigningKey(publicKey: Uint8Array): Organization | undefined;
  topics(): readonly Topic[];
  partition(groupId: string): PartitionInfo | undefined;
  partitions(): readonly PartitionInfo[];
  /** The replica keys of `groupId` at `configEpoch` (any epoch it ever had), for certificates. */
  membership(groupId: string, configEpoch: number): GroupMembership | undefined;
}
