/**
 * The network's founding document: organizations with their roles and keys, nodes with their keys
 * and addresses, topics with their partitions' replica sets, ACLs and policy. It only bootstraps the
 * __system Raft group (see system-state.ts); from there the registry follows the Raft layer, and
 * every reader goes through the `NetworkRegistry` interface either way.
 *
 * Genesis is JSON (people read and diff it) with keys as lowercase hex. It is parsed strictly: an
 * unknown field, a malformed key, a replica that is not a node, or a duplicate id is BAD_CONFIG naming
 * the field, and nothing starts.
 */
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { validateTopicPolicy } from '../contracts/registry.js';
import type { Organization, Registry, Topic } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import type { GroupMembership } from '../ledger/block.js';
import { RegistryView, genesisTopicEntries } from './registry-view.js';
import { genesisSystemView } from './system-state.js';

const hexKey32 = t.string({ pattern: /^[0-9a-f]{64}$/ });
const identifier = t.string({ minLength: 1, maxLength: 128, pattern: /^[a-zA-Z0-9._-]+$/ });
const address = t.string({ maxLength: 300, pattern: /^[^\s:]+:\d{1,5}$/ });

const organizationSchema = t.record({
  id: identifier,
  roles: t.array(t.oneOf('member', 'supervisor', 'auditor'), { minItems: 1, maxItems: 3 }),
  /** Ed25519 keys of the organization's connectors: any one may sign its transactions. */
  signingKeys: t.array(hexKey32, { minItems: 1, maxItems: 16 }),
  /** X25519 key that payloads are encrypted to (HPKE). */
  encryptionKey: hexKey32,
});

const nodeSchema = t.record({
  id: identifier,
  organization: identifier,
  /** Ed25519 key the node signs consensus messages with and pins in TLS. */
  publicKey: hexKey32,
  /** host:port of its listener (peers and connectors). */
  address,
});

const topicSchema = t.record({
  name: t.string({ minLength: 1, maxLength: 249, pattern: /^[a-zA-Z0-9._-]+$/ }),
  partitions: t.array(t.record({ replicas: t.array(identifier, { minItems: 4, maxItems: 7 }) }), {
    minItems: 1,
    maxItems: 1024,
  }),
  producers: t.array(identifier, { maxItems: 1024 }),
  consumers: t.array(identifier, { maxItems: 1024 }),
  policy: t.record({
    messageBytesMax: t.uint(),
    ttlMs: t.uint({ min: 1 }),
    payloadRetentionMs: t.uint(),
  }),
});

export const genesisSchema = t.record({
  network: identifier,
  organizations: t.array(organizationSchema, { minItems: 1, maxItems: 10_000 }),
  nodes: t.array(nodeSchema, { minItems: 1, maxItems: 10_000 }),
  topics: t.array(topicSchema, { maxItems: 10_000 }),
});
export type Genesis = Infer<typeof genesisSchema>;
export type GenesisOrganization = Infer<typeof organizationSchema>;
export type GenesisNode = Infer<typeof nodeSchema>;
export type GenesisTopic = Infer<typeof topicSchema>;

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

function badConfig(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadConfig, message);
}

/** Parses and cross-checks a genesis document (already JSON-parsed). */
export function parseGenesis(value: unknown, source = 'genesis'): Genesis {
  let genesis: Genesis;
  try {
    genesis = genesisSchema.parse(value, '');
  } catch (error) {
    if (isLedgerbusError(error)) throw badConfig(`${source}: ${error.message}`);
    throw error;
  }
  const unique = (kind: string, ids: readonly string[]): void => {
    const seen = new Set<string>();
    for (const id of ids) {
      if (seen.has(id)) throw badConfig(`${source}: duplicate ${kind} id "${id}"`);
      seen.add(id);
    }
  };
  unique(
    'organization',
    genesis.organizations.map((organization) => organization.id),
  );
  unique(
    'node',
    genesis.nodes.map((node) => node.id),
  );
  unique(
    'topic',
    genesis.topics.map((topic) => topic.name),
  );
  // One key, one party in one role: a link's pinned key must name a single node or organization.
  unique('key (signing or node)', [
    ...genesis.organizations.flatMap((organization) => organization.signingKeys),
    ...genesis.nodes.map((node) => node.publicKey),
  ]);
  const organizations = new Set(genesis.organizations.map((organization) => organization.id));
  const nodes = new Set(genesis.nodes.map((node) => node.id));
  genesis.nodes.forEach((node, index) => {
    const port = Number(node.address.slice(node.address.lastIndexOf(':') + 1));
    if (port < 1 || port > 65535) throw badConfig(`${source}: nodes[${index}].address: port out of range`);
    if (!organizations.has(node.organization)) {
      throw badConfig(
        `${source}: nodes[${index}].organization "${node.organization}" is not an organization`,
      );
    }
  });
  genesis.topics.forEach((topic, topicIndex) => {
    const field = `${source}: topics[${topicIndex}]`;
    try {
      validateTopicPolicy(topic.policy);
    } catch (error) {
      throw badConfig(`${field}.policy: ${(error as Error).message}`);
    }
    topic.partitions.forEach((partition, partitionIndex) => {
      unique(`replica in ${topic.name}/${partitionIndex}`, partition.replicas);
      for (const replica of partition.replicas) {
        if (!nodes.has(replica)) {
          throw badConfig(`${field}.partitions[${partitionIndex}]: replica "${replica}" is not a node`);
        }
      }
    });
    for (const list of ['producers', 'consumers'] as const) {
      for (const organization of topic[list]) {
        if (!organizations.has(organization)) {
          throw badConfig(`${field}.${list}: "${organization}" is not an organization`);
        }
      }
    }
  });
  return genesis;
}

/** The registry as genesis defines it: every organization APPROVED, configuration epoch 0. */
export class GenesisRegistry extends RegistryView {
  constructor(readonly genesis: Genesis) {
    const system = genesisSystemView(genesis);
    super(system, genesisTopicEntries(system));
  }
}
