/**
 * `ledgerbus topic ...` and `ledgerbus org ...`: the administration of a running network, as the
 * `--as` organization, through its connector (the SDK's `Admin`). The connector signs each change;
 * the network's Raft layer decides whether that organization may make it.
 */
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { Admin } from '../client/admin.js';
import type { OrganizationStatus } from '../client/admin.js';
import { encodeWith, toHex } from '../codec/index.js';
import type { AdminResult, TopicDescription } from '../connector/api-types.js';
import { SigningDomain, loadSigningKey } from '../crypto/index.js';
import { loadEncryptionKey } from '../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import {
  SYSTEM_GROUP,
  adminLimits,
  adminTransactionSchema,
  defaultQuotas,
  signAdminTransaction,
  signNodePossession,
} from '../registry/admin-transactions.js';
import { readNetworkFile } from './devnet-layout.js';
import type { NetworkFile } from './devnet-layout.js';
import { collectList, integerOption, splitList } from './option-parsers.js';
import { withUsageErrors } from './usage-errors.js';
import {
  addPolicyOptions,
  anyPolicyFlag,
  availabilityText,
  policyInputFrom,
  policyLines,
  usage,
} from './topic-policy.js';
import type { PolicyFlags } from './topic-policy.js';
import { networkTransport } from './connector-target.js';

interface ConnectionOptions {
  readonly network: string;
  readonly as: string;
  readonly json: boolean;
}

interface Session {
  readonly network: NetworkFile;
  readonly admin: Admin;
}

const organizationRoles = ['member', 'supervisor', 'auditor'] as const;
type OrganizationRole = (typeof organizationRoles)[number];

// ---- helpers ----

/** The `--as` organization's connector, from network.json, behind the SDK's admin client. */
function sessionFor(options: ConnectionOptions): Session {
  const network = readNetworkFile(options.network);
  // A change commits through Raft and, for new partitions, PBFT group start-up: allow it time.
  return { network, admin: new Admin(networkTransport(options.network, options.as, 60_000)) };
}

function print(json: boolean, data: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${text}\n`);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join('  '),
    )
    .join('\n');
}

function listText(items: readonly string[]): string {
  return items.length === 0 ? '(none)' : items.join(',');
}

function committed(result: AdminResult): string {
  return `committed in ${result.group} at index ${result.index}${result.detail === undefined ? '' : `: ${result.detail}`}`;
}

/**
 * Runs an admin call; a refusal by the network keeps its code and gains who may do it, so that the
 * user sees at once whether to switch --as or fix the request.
 */
async function explained<T>(call: Promise<T>, whoMay: string): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (!isLedgerbusError(error, ErrorCode.AdminRejected)) throw error;
    throw new LedgerbusError(ErrorCode.AdminRejected, `${error.message} (allowed: ${whoMay})`, {
      cause: error,
      details: error.details,
    });
  }
}

function supervisorsOf(network: NetworkFile): string {
  const supervisors = network.organizations
    .filter((organization) => organization.roles.includes('supervisor'))
    .map((organization) => organization.id);
  return supervisors.length === 0
    ? 'an approved supervisor organization'
    : `an approved supervisor organization, e.g. --as ${supervisors.join(' or --as ')}`;
}

/** The options every admin command takes. */
function connectionOptions(command: Command): Command {
  return command
    .requiredOption('--network <file>', 'network.json of the network')
    .requiredOption('--as <org>', 'the acting organization (its connector signs and submits)')
    .option('--json', 'print JSON', false);
}

function subcommand(parent: Command, parentPath: string, name: string, description: string): Command {
  const command = new Command(name).description(description);
  parent.addCommand(command);
  return connectionOptions(withUsageErrors(command, `${parentPath} ${name}`));
}

// ---- topic ----

interface TopicCreateOptions extends ConnectionOptions, PolicyFlags {
  readonly partitions: number;
  readonly replicationFactor?: number;
  readonly producers?: string;
  readonly consumers?: string;
}

interface TopicAclOptions extends ConnectionOptions {
  readonly allowProduce: string[];
  readonly denyProduce: string[];
  readonly allowConsume: string[];
  readonly denyConsume: string[];
}

const ownerOrSupervisor = "the topic's owner or an approved supervisor";

export function buildTopicCommand(): Command {
  const topic = withUsageErrors(
    new Command('topic').description(
      'Topics: create, add partitions, describe, list, set who may produce and consume, and set the policy (escrow for auditors).',
    ),
    'topic',
  );

  const create = subcommand(
    topic,
    'topic',
    'create',
    'Create a topic; the --as organization becomes its owner. With --escrow, every message is also escrowed for auditors.',
  )
    .argument('<name>', 'topic name (letters, digits, . _ -)')
    .requiredOption(
      '--partitions <n>',
      'number of partitions',
      integerOption('--partitions', 1, adminLimits.partitionsMax),
    )
    .option(
      '--replication-factor <r>',
      `replicas per partition (default ${adminLimits.replicasMin})`,
      integerOption('--replication-factor', adminLimits.replicasMin, adminLimits.replicasMax),
    )
    .option(
      '--producers <orgs>',
      'who may publish, comma-separated (default: every member in the network file)',
    )
    .option(
      '--consumers <orgs>',
      'who may be recipients, comma-separated (default: every member in the network file)',
    );
  addPolicyOptions(create, 'create').action(async (name: string, options: TopicCreateOptions) => {
    // Checked before the network file is read: a bad combination sends nothing.
    const { input: policy, escrow } = policyInputFrom(options, 'topic create');
    const { network, admin } = sessionFor(options);
    const members = network.organizations
      .filter((organization) => organization.roles.includes('member'))
      .map((organization) => organization.id);
    const producers = options.producers === undefined ? members : splitList(options.producers);
    const consumers = options.consumers === undefined ? members : splitList(options.consumers);
    const result = await explained(
      admin.execute({
        kind: 'createTopic',
        name,
        partitions: options.partitions,
        ...(options.replicationFactor === undefined ? {} : { replicationFactor: options.replicationFactor }),
        producers,
        consumers,
        ...(Object.keys(policy).length === 0 ? {} : { policy }),
      }),
      'an approved member or supervisor, for a name not taken yet',
    );
    print(
      options.json,
      {
        topic: name,
        partitions: options.partitions,
        producers,
        consumers,
        availability: escrow === undefined ? 'standard' : 'escrow',
        ...(escrow === undefined ? {} : { escrow }),
        result,
      },
      `created topic ${name}: ${options.partitions} partition(s), owner ${options.as}; producers ${listText(producers)}; consumers ${listText(consumers)}; availability ${availabilityText(escrow)} (${committed(result)})`,
    );
  });

  addPolicyOptions(
    subcommand(
      topic,
      'topic',
      'set-policy',
      "Change a topic's policy: message size, TTL, retention, and escrow for auditors (--escrow, --no-escrow and its parameters). Values not given stay as they are.",
    ).argument('<name>', 'topic name'),
    'update',
  ).action(async (name: string, options: ConnectionOptions & PolicyFlags) => {
    // What the flags alone get wrong is refused before the network file is read.
    if (!anyPolicyFlag(options)) throw usage('name at least one policy option to change', 'topic set-policy');
    if (options.escrow === false) policyInputFrom(options, 'topic set-policy');
    const { admin } = sessionFor(options);
    const current = await admin.describeTopic(name);
    const { input, escrow } = policyInputFrom(options, 'topic set-policy', current.policy);
    const result = await explained(
      admin.setTopicPolicy(name, input),
      `${ownerOrSupervisor} (owner of ${name}: ${current.owner ?? 'none, a genesis topic'})`,
    );
    print(
      options.json,
      {
        topic: name,
        availability: escrow === undefined ? 'standard' : 'escrow',
        ...(escrow === undefined ? {} : { escrow }),
        result,
      },
      `topic ${name}: availability ${availabilityText(escrow)} (${committed(result)})`,
    );
  });

  subcommand(
    topic,
    'topic',
    'add-partitions',
    'Raise the partition count to --count (the new total). Keyed messages may then map to another partition.',
  )
    .argument('<name>', 'topic name')
    .requiredOption(
      '--count <n>',
      'the new total number of partitions',
      integerOption('--count', 1, adminLimits.partitionsMax),
    )
    .option(
      '--replication-factor <r>',
      `replicas of each new partition (default ${adminLimits.replicasMin})`,
      integerOption('--replication-factor', adminLimits.replicasMin, adminLimits.replicasMax),
    )
    .action(
      async (name: string, options: ConnectionOptions & { count: number; replicationFactor?: number }) => {
        const { admin } = sessionFor(options);
        const result = await explained(
          admin.execute({
            kind: 'addPartitions',
            topic: name,
            count: options.count,
            ...(options.replicationFactor === undefined
              ? {}
              : { replicationFactor: options.replicationFactor }),
          }),
          `${ownerOrSupervisor}; --count must be more than the current count`,
        );
        print(
          options.json,
          { topic: name, partitions: options.count, result },
          `topic ${name} now has ${options.count} partitions (${committed(result)}); keys now map over ${options.count} partitions`,
        );
      },
    );

  subcommand(
    topic,
    'topic',
    'describe',
    "A topic's owner, partitions and replicas, ACL, policy and Raft group.",
  )
    .argument('<name>', 'topic name')
    .action(async (name: string, options: ConnectionOptions) => {
      const description = await sessionFor(options).admin.describeTopic(name);
      print(options.json, description, describeText(description));
    });

  subcommand(
    topic,
    'topic',
    'move',
    'Move a partition to another replica set (a new epoch of its group): the old replicas close their epoch, the new ones continue its ledger.',
  )
    .argument('<name>', 'topic name')
    .requiredOption(
      '--partition <p>',
      'the partition',
      integerOption('--partition', 0, adminLimits.partitionsMax),
    )
    .requiredOption(
      '--replicas <nodes>',
      `${adminLimits.replicasMin} to ${adminLimits.replicasMax} node ids, comma-separated`,
      splitList,
    )
    .action(async (name: string, options: ConnectionOptions & { partition: number; replicas: string[] }) => {
      const result = await explained(
        sessionFor(options).admin.execute({
          kind: 'setReplicas',
          topic: name,
          partition: options.partition,
          replicas: options.replicas,
        }),
        ownerOrSupervisor,
      );
      print(
        options.json,
        { topic: name, partition: options.partition, replicas: options.replicas, result },
        `${name}/${options.partition} moves to ${options.replicas.join(',')} (${committed(result)})`,
      );
    });

  subcommand(topic, 'topic', 'list', 'Every topic of the network.').action(
    async (options: ConnectionOptions) => {
      const { topics } = await sessionFor(options).admin.fetchTopicMetadata();
      const rows = topics.map((entry) => [
        entry.name,
        String(entry.partitions.length),
        entry.owner ?? '(genesis)',
        listText(entry.producers),
        listText(entry.consumers),
      ]);
      print(
        options.json,
        { topics },
        topics.length === 0
          ? 'no topics'
          : table(['TOPIC', 'PARTITIONS', 'OWNER', 'PRODUCERS', 'CONSUMERS'], rows),
      );
    },
  );

  subcommand(
    topic,
    'topic',
    'acl',
    'Allow or deny organizations to produce to and consume from a topic (options repeat or take comma lists); without any, print the ACL.',
  )
    .argument('<name>', 'topic name')
    .option('--allow-produce <orgs>', 'may publish', collectList, [])
    .option('--deny-produce <orgs>', 'may no longer publish', collectList, [])
    .option('--allow-consume <orgs>', 'may be recipients', collectList, [])
    .option('--deny-consume <orgs>', 'may no longer be recipients', collectList, [])
    .action(async (name: string, options: TopicAclOptions) => {
      for (const [allow, deny, what] of [
        [options.allowProduce, options.denyProduce, 'produce'],
        [options.allowConsume, options.denyConsume, 'consume'],
      ] as const) {
        const both = allow.filter((organization) => deny.includes(organization));
        if (both.length > 0) {
          throw new LedgerbusError(
            ErrorCode.SchemaMismatch,
            `${both.join(', ')}: both --allow-${what} and --deny-${what}; name each organization once`,
          );
        }
      }
      const { admin } = sessionFor(options);
      const current = await admin.describeTopic(name);
      const changed = (
        list: readonly string[],
        allow: readonly string[],
        deny: readonly string[],
      ): string[] => [...new Set([...list, ...allow].filter((organization) => !deny.includes(organization)))];
      const producers = changed(current.producers, options.allowProduce, options.denyProduce);
      const consumers = changed(current.consumers, options.allowConsume, options.denyConsume);
      const acl = `producers ${listText(producers)}; consumers ${listText(consumers)}`;
      const unchanged =
        sameMembers(producers, current.producers) && sameMembers(consumers, current.consumers);
      if (unchanged) {
        print(options.json, { topic: name, producers, consumers, changed: false }, `topic ${name}: ${acl}`);
        return;
      }
      const result = await explained(
        admin.setTopicAcl(name, { producers, consumers }),
        `${ownerOrSupervisor} (owner of ${name}: ${current.owner ?? 'none, a genesis topic'})`,
      );
      print(
        options.json,
        { topic: name, producers, consumers, changed: true, result },
        `topic ${name}: ${acl} (${committed(result)})`,
      );
    });

  return topic;
}

function sameMembers(left: readonly string[], right: readonly string[]): boolean {
  return left.length === right.length && left.every((item) => right.includes(item));
}

function describeText(topic: TopicDescription): string {
  const lines = [
    `topic ${topic.name}   owner ${topic.owner ?? '(genesis: supervisors administer it)'}`,
    `producers  ${listText(topic.producers)}`,
    `consumers  ${listText(topic.consumers)}`,
    ...policyLines(topic.policy),
    `raft       leader ${topic.raft.leader || '(none)'}; voters ${listText(topic.raft.voters)}; learners ${listText(topic.raft.learners)}; at index ${topic.topicIndex}`,
    '',
    table(
      ['PARTITION', 'GROUP', 'EPOCH', 'HEIGHT', 'REPLICAS'],
      topic.partitions.map((partition) => [
        String(partition.partition),
        partition.group,
        String(partition.configEpoch),
        String(partition.globalHeight),
        partition.replicas.join(','),
      ]),
    ),
  ];
  return lines.join('\n');
}

// ---- org ----

interface RegisterOptions extends ConnectionOptions {
  readonly id: string;
  readonly signingKey: string;
  readonly encryptionKey: string;
  readonly roles: OrganizationRole[];
}

function parseRoles(value: string): OrganizationRole[] {
  const roles = splitList(value);
  const known = new Set<string>(organizationRoles);
  const unknown = roles.filter((role) => !known.has(role));
  if (roles.length === 0 || unknown.length > 0 || new Set(roles).size !== roles.length) {
    throw new InvalidArgumentError(
      `--roles must list distinct roles among ${organizationRoles.join(', ')}${unknown.length > 0 ? ` (unknown: ${unknown.join(', ')})` : ''}`,
    );
  }
  return roles as OrganizationRole[];
}

function organizationId(value: string): string {
  if (!/^[a-zA-Z0-9._-]{1,128}$/.test(value)) {
    throw new InvalidArgumentError('--id must be 1 to 128 letters, digits, dots, underscores or hyphens');
  }
  return value;
}

const statusCommands: readonly { name: string; status: OrganizationStatus; description: string }[] = [
  {
    name: 'approve',
    status: 'APPROVED',
    description: 'Approve a registered (PENDING) or suspended organization.',
  },
  {
    name: 'suspend',
    status: 'SUSPENDED',
    description: 'Suspend an organization: it may no longer act until approved again.',
  },
  { name: 'revoke', status: 'REVOKED', description: 'Revoke an organization for good.' },
];

export function buildOrgCommand(): Command {
  const org = withUsageErrors(
    new Command('org').description('Organizations: register, approve, suspend, revoke, list.'),
    'org',
  );

  subcommand(
    org,
    'org',
    'register',
    "Register a new organization (PENDING until a supervisor approves it), relayed by the --as organization's connector.",
  )
    .requiredOption('--id <org>', 'the new organization id (letters, digits, . _ -)', organizationId)
    .requiredOption('--signing-key <file>', "the new organization's Ed25519 key (signs the registration)")
    .requiredOption('--encryption-key <file>', "the new organization's X25519 encryption key")
    .option(
      '--roles <roles>',
      `roles to request, comma-separated, among ${organizationRoles.join(', ')}; a supervisor grants them on approval`,
      parseRoles,
      ['member'],
    )
    .action(async (options: RegisterOptions) => {
      const roles = options.roles;
      const signingKey = loadSigningKey(options.signingKey);
      const encryptionKey = loadEncryptionKey(options.encryptionKey);
      const { network, admin } = sessionFor(options);
      // Signed with the key it registers: the proof of possession that lets anyone register.
      const transaction = signAdminTransaction(
        {
          group: SYSTEM_GROUP,
          organization: options.id,
          nonce: randomBytes(16),
          timestamp: Date.now(),
          action: {
            kind: 'registerOrganization',
            roles,
            signingKeys: [signingKey.publicKey],
            encryptionKey: encryptionKey.publicKey,
          },
        },
        SigningDomain.of(network.network).signer(signingKey),
      );
      const result = await explained(
        admin.submitSignedTransaction(encodeWith(adminTransactionSchema, transaction)),
        'anyone, with an organization id and keys not registered yet',
      );
      const supervisors = network.organizations
        .filter((organization) => organization.roles.includes('supervisor'))
        .map((organization) => organization.id);
      print(
        options.json,
        {
          organization: options.id,
          status: 'PENDING',
          roles,
          signingKey: toHex(signingKey.publicKey),
          encryptionKey: toHex(encryptionKey.publicKey),
          result,
        },
        `registered ${options.id}, PENDING with no roles yet (requested: ${roles.join(',')}; ${committed(result)}); a supervisor approves it with: ledgerbus org approve ${options.id} --network ${options.network} --as ${supervisors[0] ?? '<supervisor>'} (grants member if requested; --roles ${roles.join(',')} grants what was requested)`,
      );
    });

  for (const { name, status, description } of statusCommands) {
    subcommand(org, 'org', name, `${description} Supervisors only.`)
      .argument('<org>', 'organization id')
      .option(
        '--roles <roles>',
        `the roles it holds from now on, among ${organizationRoles.join(', ')} (default: unchanged; approving a registration grants member if requested, supervisor and auditor only when named here)`,
        parseRoles,
      )
      .action(async (organization: string, options: ConnectionOptions & { roles?: OrganizationRole[] }) => {
        const { network, admin } = sessionFor(options);
        const result = await explained(
          admin.execute({
            kind: 'setOrganizationStatus',
            organization,
            status,
            ...(options.roles === undefined ? {} : { roles: options.roles }),
          }),
          `${supervisorsOf(network)}, for an organization other than itself`,
        );
        const roles = options.roles === undefined ? '' : ` with roles ${options.roles.join(',')}`;
        print(
          options.json,
          { organization, status, ...(options.roles === undefined ? {} : { roles: options.roles }), result },
          `${organization} is now ${status}${roles} (${committed(result)})`,
        );
      });
  }

  subcommand(
    org,
    'org',
    'quotas',
    'Set what one organization may make every node hold: topics it owns, nodes it registers, partitions per topic, registrations waiting for approval. Supervisors only; give every bound (defaults: ' +
      `--topics ${defaultQuotas.topicsPerOrganizationMax} --nodes ${defaultQuotas.nodesPerOrganizationMax} --partitions ${defaultQuotas.partitionsPerTopicMax} --pending ${defaultQuotas.pendingRegistrationsMax}).`,
  )
    .requiredOption('--topics <n>', 'topics one organization may own', integerOption('--topics', 0))
    .requiredOption('--nodes <n>', 'nodes one organization may register', integerOption('--nodes', 0))
    .requiredOption(
      '--partitions <n>',
      'partitions one topic may have',
      integerOption('--partitions', 1, adminLimits.partitionsMax),
    )
    .requiredOption(
      '--pending <n>',
      'registrations that may wait for approval at once',
      integerOption('--pending', 0),
    )
    .action(
      async (
        options: ConnectionOptions & { topics: number; nodes: number; partitions: number; pending: number },
      ) => {
        const { network, admin } = sessionFor(options);
        const quotas = {
          topicsPerOrganizationMax: options.topics,
          nodesPerOrganizationMax: options.nodes,
          pendingRegistrationsMax: options.pending,
          partitionsPerTopicMax: options.partitions,
        };
        const result = await explained(admin.execute({ kind: 'setQuotas', quotas }), supervisorsOf(network));
        print(
          options.json,
          { quotas, result },
          `quotas set (${committed(result)}): ${JSON.stringify(quotas)}`,
        );
      },
    );

  subcommand(
    org,
    'org',
    'add-node',
    'Register a node of the --as organization (approved organizations only). Start it afterwards with a node.yaml that names this id, its key file and `listen`; the network adds it to __system as a learner.',
  )
    .requiredOption('--id <node>', 'the new node id')
    .requiredOption('--key <file>', "the node's Ed25519 key file (ledgerbus keys generate)")
    .requiredOption('--address <host:port>', 'where other nodes and connectors reach it')
    .action(async (options: ConnectionOptions & { id: string; key: string; address: string }) => {
      const nodeKey = loadSigningKey(options.key);
      const publicKey = toHex(nodeKey.publicKey);
      const { network, admin } = sessionFor(options);
      // The node key signs its own registration, for this network: nobody registers a key it does
      // not hold, and a registration made for another network is worth nothing here.
      const proof = toHex(
        signNodePossession(
          { organization: options.as, id: options.id, address: options.address },
          SigningDomain.of(network.network).signer(nodeKey),
        ),
      );
      const result = await explained(
        admin.execute({
          kind: 'registerNode',
          id: options.id,
          publicKey,
          address: options.address,
          proof,
        }),
        'the approved organization the node belongs to (--as), with a key no one else registered',
      );
      print(
        options.json,
        { node: options.id, organization: options.as, publicKey, address: options.address, result },
        `registered node ${options.id} of ${options.as} at ${options.address} (${committed(result)})`,
      );
    });

  subcommand(
    org,
    'org',
    'remove-node',
    'Remove a node from the registry (its organization, or a supervisor). Refused while it replicates a topic or votes in __system: move its partitions first (ledgerbus topic move).',
  )
    .argument('<node>', 'node id')
    .action(async (node: string, options: ConnectionOptions) => {
      const result = await explained(
        sessionFor(options).admin.execute({ kind: 'removeNode', id: node }),
        "the node's approved organization or an approved supervisor",
      );
      print(options.json, { node, result }, `removed node ${node} (${committed(result)})`);
    });

  subcommand(org, 'org', 'list', 'Every registered organization: status, roles, keys.').action(
    async (options: ConnectionOptions) => {
      const organizations = await sessionFor(options).admin.listOrganizations();
      const rows = organizations.map((organization) => [
        organization.id,
        organization.status,
        organization.roles.join(','),
        String(organization.signingKeys.length),
        organization.encryptionKey.slice(0, 16),
      ]);
      print(
        options.json,
        { organizations },
        table(['ORGANIZATION', 'STATUS', 'ROLES', 'SIGNING KEYS', 'ENCRYPTION KEY'], rows),
      );
    },
  );

  return org;
}
