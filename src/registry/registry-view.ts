/**
 * The network registry as the runtime reads it, assembled from the Raft layer: organizations, nodes
 * and the topic list from __system, each topic's partitions, ACLs and policy from its own group. A
 * node builds one from its state machines after every change; a connector gets the same thing, as a
 * `RegistrySnapshot`, from its own organization's node. Both sit behind `NetworkRegistry`, so no
 * caller cares which.
 */
import { decodeWith, encodeWith, t, toHex } from '../codec/index.js';
import { SigningDomain } from '../crypto/index.js';
import { partitionGroupId } from '../contracts/registry.js';
import type { Organization, Topic } from '../contracts/registry.js';
import type { GroupMembership } from '../ledger/block.js';
import type { Genesis } from './genesis-schema.js';
import {
  genesisSystemView,
  nodeRecordSchema,
  organizationRecordSchema,
  partitionConfigSchema,
  topicConfigSchema,
} from './system-state.js';
import type {
  PartitionConfig,
  RegisteredNode,
  RegisteredOrganization,
  SystemView,
  TopicConfig,
} from './system-state.js';
import { contractTopic } from './topic-state.js';
import type { NetworkRegistry, NodeInfo, PartitionInfo } from './types.js';

/** One topic as the runtime needs it: its latest configuration and every epoch of its partitions. */
export interface TopicEntry {
  readonly config: TopicConfig;
  readonly epochs: readonly (readonly PartitionConfig[])[];
  /** Index of the topic group this configuration is at (0 before the group applied anything). */
  readonly topicIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

const name = t.string({ minLength: 1, maxLength: 300 });

export const registrySnapshotSchema = t.record({
  network: name,
  systemIndex: t.uint(),
  organizations: t.array(organizationRecordSchema, { maxItems: 100_000 }),
  nodes: t.array(nodeRecordSchema, { maxItems: 100_000 }),
  topics: t.array(
    t.record({
      config: topicConfigSchema,
      epochs: t.array(t.array(partitionConfigSchema, { maxItems: 10_000 }), { maxItems: 1024 }),
      topicIndex: t.uint(),
      voters: t.array(name, { maxItems: 64 }),
      learners: t.array(name, { maxItems: 10_000 }),
    }),
    { maxItems: 100_000 },
  ),
});
export type RegistrySnapshot = ReturnType<typeof registrySnapshotSchema.parse>;

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

/** The topics of a registry that no topic group has changed yet. */
export function genesisTopicEntries(system: Pick<SystemView, 'topics'>): TopicEntry[] {
  return [...system.topics.values()].map((topic) => ({
    config: topic.config,
    epochs: topic.config.partitions.map((partition) => [partition]),
    topicIndex: 0,
    voters: topic.voters,
    learners: topic.learners,
  }));
}

export class RegistryView implements NetworkRegistry {
  readonly network: string;
  /** Where certificates of this network's groups verify (see `membership`). */
  private readonly signing: SigningDomain;
  readonly systemIndex: number;
  // Indexes of one registry version, built once: one entry per organization, signing key, node, topic
  // and partition; `epochsById` holds each partition's epochs, which grow with reconfigurations only.
  private readonly organizationsById: ReadonlyMap<string, RegisteredOrganization>;
  private readonly organizationsByKey = new Map<string, RegisteredOrganization>();
  private readonly nodesById = new Map<string, NodeInfo>();
  private readonly nodesByKey = new Map<string, NodeInfo>();
  private readonly topicsByName = new Map<string, { entry: TopicEntry; topic: Topic }>();
  private readonly partitionsById = new Map<string, PartitionInfo>();
  private readonly epochsById = new Map<string, readonly PartitionConfig[]>();

  constructor(
    system: Pick<SystemView, 'network' | 'index' | 'organizations' | 'nodes'>,
    topics: Iterable<TopicEntry>,
  ) {
    this.network = system.network;
    this.signing = SigningDomain.of(system.network);
    this.systemIndex = system.index;
    this.organizationsById = system.organizations;
    for (const organization of system.organizations.values()) {
      for (const key of organization.signingKeys) this.organizationsByKey.set(toHex(key), organization);
    }
    for (const node of system.nodes.values()) {
      const info: NodeInfo = {
        id: node.id,
        organization: node.organization,
        publicKey: node.publicKey,
        ...splitAddress(node.address),
      };
      this.nodesById.set(node.id, info);
      this.nodesByKey.set(toHex(node.publicKey), info);
    }
    for (const entry of topics) {
      this.topicsByName.set(entry.config.name, { entry, topic: contractTopic(entry.config) });
      entry.config.partitions.forEach((partition, index) => {
        const groupId = partitionGroupId(entry.config.name, index);
        this.partitionsById.set(groupId, {
          topic: entry.config.name,
          partition: index,
          groupId,
          configEpoch: partition.configEpoch,
          replicas: partition.replicas.map((replica) => replica.id),
        });
        this.epochsById.set(groupId, entry.epochs[index] ?? [partition]);
      });
    }
  }

  /** The registry as genesis alone defines it (__system index 0, no topic group applied yet). */
  static fromGenesis(genesis: Genesis): RegistryView {
    const system = genesisSystemView(genesis);
    return new RegistryView(system, genesisTopicEntries(system));
  }

  static fromSnapshot(snapshot: RegistrySnapshot): RegistryView {
    return new RegistryView(
      {
        network: snapshot.network,
        index: snapshot.systemIndex,
        organizations: new Map(snapshot.organizations.map((organization) => [organization.id, organization])),
        nodes: new Map(snapshot.nodes.map((node) => [node.id, node])),
      },
      snapshot.topics,
    );
  }

  static decode(bytes: Uint8Array): RegistryView {
    return RegistryView.fromSnapshot(
      decodeWith(registrySnapshotSchema, bytes, { maxBytes: 64 * 1024 * 1024 }),
    );
  }

  toSnapshot(): RegistrySnapshot {
    return {
      network: this.network,
      systemIndex: this.systemIndex,
      organizations: [...this.organizationsById.values()].map((organization) => ({
        id: organization.id,
        roles: [...organization.roles],
        status: organization.status,
        signingKeys: [...organization.signingKeys],
        encryptionKey: organization.encryptionKey,
      })),
      nodes: [...this.nodesById.values()].map((node) => ({
        id: node.id,
        organization: node.organization,
        publicKey: node.publicKey,
        address: `${node.host}:${node.port}`,
      })),
      topics: [...this.topicsByName.values()].map(({ entry }) => ({
        config: {
          ...entry.config,
          partitions: entry.config.partitions.map((partition) => ({
            ...partition,
            replicas: [...partition.replicas],
          })),
          producers: [...entry.config.producers],
          consumers: [...entry.config.consumers],
          policy: { ...entry.config.policy },
        },
        epochs: entry.epochs.map((history) =>
          history.map((partition) => ({ ...partition, replicas: [...partition.replicas] })),
        ),
        topicIndex: entry.topicIndex,
        voters: [...entry.voters],
        learners: [...entry.learners],
      })),
    };
  }

  encode(): Uint8Array {
    return encodeWith(registrySnapshotSchema, this.toSnapshot());
  }

  organization(id: string): Organization | undefined {
    return this.organizationsById.get(id);
  }
  organizations(): readonly Organization[] {
    return [...this.organizationsById.values()];
  }
  encryptionKey(organization: string): Uint8Array | undefined {
    return this.organizationsById.get(organization)?.encryptionKey;
  }
  node(id: string): NodeInfo | undefined {
    return this.nodesById.get(id);
  }
  nodes(): readonly NodeInfo[] {
    return [...this.nodesById.values()];
  }
  nodeByKey(publicKey: Uint8Array): NodeInfo | undefined {
    return this.nodesByKey.get(toHex(publicKey));
  }
  organizationBySigningKey(publicKey: Uint8Array): Organization | undefined {
    return this.organizationsByKey.get(toHex(publicKey));
  }
  topic(name: string): Topic | undefined {
    return this.topicsByName.get(name)?.topic;
  }
  topics(): readonly Topic[] {
    return [...this.topicsByName.values()].map(({ topic }) => topic);
  }
  /** The whole entry of a topic (partitions with keys, epochs, owner, Raft membership). */
  topicEntry(name: string): TopicEntry | undefined {
    return this.topicsByName.get(name)?.entry;
  }
  partition(groupId: string): PartitionInfo | undefined {
    return this.partitionsById.get(groupId);
  }
  partitions(): readonly PartitionInfo[] {
    return [...this.partitionsById.values()];
  }
  membership(groupId: string, configEpoch: number): GroupMembership | undefined {
    const epoch = this.epochsById.get(groupId)?.find((candidate) => candidate.configEpoch === configEpoch);
    if (epoch === undefined) return undefined;
    return {
      signing: this.signing,
      partitionId: groupId,
      configEpoch,
      members: new Map(epoch.replicas.map((replica) => [replica.id, replica.publicKey])),
    };
  }
  registeredNode(id: string): RegisteredNode | undefined {
    const node = this.nodesById.get(id);
    return node === undefined
      ? undefined
      : {
          id: node.id,
          organization: node.organization,
          publicKey: node.publicKey,
          address: `${node.host}:${node.port}`,
        };
  }
}
