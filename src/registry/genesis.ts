/**
 * The network's founding document: organizations with their roles and keys, nodes with their keys
 * and addresses, topics with their partitions' replica sets, ACLs and policy. It only bootstraps the
 * __system Raft group (see system-state.ts); from there the registry follows the Raft layer, and
 * every reader goes through the `NetworkRegistry` interface (types.ts) either way.
 *
 * Its format is `genesisSchema` (genesis-schema.ts). It is parsed strictly: an unknown field, a
 * malformed key, a replica that is not a node, or a duplicate id is BAD_CONFIG naming the field, and
 * nothing starts.
 */
import { validateTopicPolicy } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { genesisSchema } from './genesis-schema.js';
import type { Genesis } from './genesis-schema.js';
import { RegistryView, genesisTopicEntries } from './registry-view.js';
import { genesisSystemView } from './system-state.js';

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
