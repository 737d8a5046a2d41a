/**
 * Administrative transactions of the Raft layer (DESIGN §2, §8): the __system group's registration
 * workflow and topic list, and a topic group's configuration. Each is canonical CBOR signed by one
 * of the acting organization's registered connector keys in its network's signing domain (so it
 * cannot be replayed into another network), names the group it is for (so it cannot be replayed
 * into another group) and carries a nonce.
 *
 * Who may do what is stated once, in `adminPolicy`, and checked by the state machines:
 *   registerOrganization   anyone, signed with one of the keys it registers (proof of possession) → PENDING
 *                          with no roles: the roles it names are only requested
 *   setOrganizationStatus  an APPROVED supervisor, for another organization; approving grants roles
 *                          (`member` if requested; `supervisor`/`auditor` only when named)
 *   bindKey                the APPROVED organization itself
 *   registerNode           the APPROVED organization itself, with the node key's proof of possession
 *   removeNode             the node's APPROVED organization or an APPROVED supervisor
 *   setQuotas              an APPROVED supervisor
 *   createTopic            an APPROVED member or supervisor; it becomes the topic's owner
 *   addPartitions, setReplicas, setAcl, setPolicy   the topic's owner or an APPROVED supervisor
 *   catalogPublish, catalogWithdraw   an APPROVED member, for its own datasets (registry/catalog.ts)
 *   raiseAlert             a registered NODE of the APPROVED organization the transaction names, signed
 *                          with that node's key (never an organization's own key; registry/alerts.ts)
 *   ackAlert, setAlertPolicy   an APPROVED supervisor
 *
 * Every key in the registry (organization signing keys and node keys) is distinct: a key names one
 * party in one role, so a link's pinned key can never be claimed by a second identity.
 */
import { decodeWith, encodeWith, t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import type { Signer } from '../crypto/index.js';
import { ackAlertActionSchema, raiseAlertActionSchema, setAlertPolicyActionSchema } from './alert-schemas.js';
import { catalogPublishActionSchema, catalogWithdrawActionSchema } from './catalog.js';

export const ADMIN_SIGNING_TYPE = 'admin-transaction';
export const SYSTEM_GROUP = '__system';

/** The Raft group id of a topic's configuration and global ledger. */
export function topicGroupId(topic: string): string {
  return `topic:${topic}`;
}

export const adminLimits = {
  transactionBytesMax: 256 * 1024,
  partitionsMax: 1024,
  replicasMin: 4,
  replicasMax: 7,
  aclEntriesMax: 1024,
  signingKeysMax: 16,
} as const;

export const adminPolicy = {
  registerOrganization: 'anyone, signed by a key it registers (roles are requested, not taken)',
  setOrganizationStatus: 'an approved supervisor (approving grants roles)',
  bindKey: 'the approved organization itself',
  registerNode: "the approved organization itself, with the node key's proof of possession",
  removeNode: "the node's approved organization or an approved supervisor",
  setQuotas: 'an approved supervisor',
  createTopic: 'an approved member or supervisor (becomes the owner)',
  addPartitions: "the topic's owner or an approved supervisor",
  setReplicas: "the topic's owner or an approved supervisor",
  setAcl: "the topic's owner or an approved supervisor",
  setPolicy: "the topic's owner or an approved supervisor",
  catalogPublish: 'an approved member, describing its own dataset (the next version of its entry)',
  catalogWithdraw: 'an approved member, for its own catalog entry',
  raiseAlert:
    "a registered node of the approved organization named, signed with that node's key, within the alert policy",
  ackAlert: 'an approved supervisor',
  setAlertPolicy: 'an approved supervisor',
} as const;

const identifier = t.string({ minLength: 1, maxLength: 128, pattern: /^[a-zA-Z0-9._-]+$/ });
const topicName = t.string({ minLength: 1, maxLength: 249, pattern: /^[a-zA-Z0-9._-]+$/ });
const key32 = t.bytes({ length: 32 });
/** host:port, as genesis writes it; every schema that holds a node address uses this one. */
export const nodeAddress = t.string({ minLength: 3, maxLength: 300, pattern: /^[^\s:]+:\d{1,5}$/ });

function distinct(items: readonly string[]): string | undefined {
  return new Set(items).size === items.length ? undefined : 'duplicate entries';
}

const organizationList = t.refine(t.array(identifier, { maxItems: adminLimits.aclEntriesMax }), distinct);
const roleList = t.refine(t.array(t.oneOf('member', 'supervisor', 'auditor'), { maxItems: 3 }), distinct);

/**
 * What one organization may make every node hold, set by a supervisor (`setQuotas`): each bound is
 * checked by the state machines, so the same log refuses the same transaction on every replica.
 */
export const quotasSchema = t.record({
  /** Topics an organization may own (each is a Raft group and files on every replica node). */
  topicsPerOrganizationMax: t.uint({ max: 1_000_000 }),
  /** Nodes an organization may register (every node dials every registered node). */
  nodesPerOrganizationMax: t.uint({ max: 10_000 }),
  /** Organizations that may wait in PENDING at once (anyone may register). */
  pendingRegistrationsMax: t.uint({ max: 100_000 }),
  /** Partitions one topic may have (each a PBFT group with a file on 4 to 7 nodes). */
  partitionsPerTopicMax: t.uint({ min: 1, max: 1024 }),
});
export type Quotas = Infer<typeof quotasSchema>;

/** Quotas until a supervisor sets others. */
export const defaultQuotas: Quotas = {
  topicsPerOrganizationMax: 100,
  nodesPerOrganizationMax: 16,
  pendingRegistrationsMax: 64,
  partitionsPerTopicMax: 256,
};

/** Domain of a node key's proof of possession (see `nodePossessionPayload`). */
export const NODE_POSSESSION_TYPE = 'node-possession';

/**
 * How an escrow topic escrows each message (DESIGN §7; `EscrowPolicy`). Only the shape is checked
 * here: the ranges are `validateTopicPolicy`'s, so an out-of-range policy is refused as BAD_POLICY
 * naming the field rather than as a MALFORMED transaction.
 */
export const escrowPolicySchema = t.record({
  chunkBytes: t.uint(),
  replicas: t.uint(),
  threshold: t.uint(),
  shares: t.uint(),
  auditApprovals: t.uint(),
});

/**
 * A topic policy. `availability` and `escrow` are optional so that a standard topic's policy, which
 * leaves both out, encodes byte for byte as it did before escrow existed (old logs and snapshots
 * replay unchanged); absent `availability` means 'standard'.
 */
export const policySchema = t.record({
  messageBytesMax: t.uint(),
  ttlMs: t.uint({ min: 1 }),
  payloadRetentionMs: t.uint(),
  availability: t.optional(t.oneOf('standard', 'escrow')),
  escrow: t.optional(escrowPolicySchema),
});

/** A replica as a topic configuration records it: the node and the key it certifies blocks with. */
export const replicaSchema = t.record({ id: identifier, publicKey: key32 });
export type ReplicaRecord = Infer<typeof replicaSchema>;

export const replicaSetSchema = t.refine(
  t.array(replicaSchema, { minItems: adminLimits.replicasMin, maxItems: adminLimits.replicasMax }),
  (replicas) => distinct(replicas.map((replica) => replica.id)),
);

const actionSchema = t.variant('kind', {
  registerOrganization: t.record({
    kind: t.literal('registerOrganization'),
    roles: t.refine(
      t.array(t.oneOf('member', 'supervisor', 'auditor'), { minItems: 1, maxItems: 3 }),
      distinct,
    ),
    signingKeys: t.array(key32, { minItems: 1, maxItems: adminLimits.signingKeysMax }),
    encryptionKey: key32,
  }),
  setOrganizationStatus: t.record({
    kind: t.literal('setOrganizationStatus'),
    organization: identifier,
    status: t.oneOf('APPROVED', 'SUSPENDED', 'REVOKED'),
    /** The roles the organization holds from now on; absent keeps them (see `adminPolicy`). */
    roles: t.optional(roleList),
  }),
  bindKey: t.record({ kind: t.literal('bindKey'), key: key32 }),
  registerNode: t.record({
    kind: t.literal('registerNode'),
    id: identifier,
    publicKey: key32,
    address: nodeAddress,
    /** The node key's signature over `nodePossessionPayload`: whoever registers a key holds it. */
    proof: t.bytes({ length: 64 }),
  }),
  removeNode: t.record({ kind: t.literal('removeNode'), id: identifier }),
  setQuotas: t.record({ kind: t.literal('setQuotas'), quotas: quotasSchema }),
  createTopic: t.record({
    kind: t.literal('createTopic'),
    name: topicName,
    partitions: t.array(replicaSetSchema, { minItems: 1, maxItems: adminLimits.partitionsMax }),
    producers: organizationList,
    consumers: organizationList,
    policy: policySchema,
  }),
  addPartitions: t.record({
    kind: t.literal('addPartitions'),
    /** The new total, as `kafka-topics --alter --partitions N`. */
    count: t.uint({ min: 1, max: adminLimits.partitionsMax }),
    /** Replica sets of the partitions being added, in order. */
    replicas: t.array(replicaSetSchema, { minItems: 1, maxItems: adminLimits.partitionsMax }),
  }),
  setReplicas: t.record({
    kind: t.literal('setReplicas'),
    partition: t.uint({ max: adminLimits.partitionsMax }),
    replicas: replicaSetSchema,
  }),
  setAcl: t.record({ kind: t.literal('setAcl'), producers: organizationList, consumers: organizationList }),
  setPolicy: t.record({ kind: t.literal('setPolicy'), policy: policySchema }),
  catalogPublish: catalogPublishActionSchema,
  catalogWithdraw: catalogWithdrawActionSchema,
  raiseAlert: raiseAlertActionSchema,
  ackAlert: ackAlertActionSchema,
  setAlertPolicy: setAlertPolicyActionSchema,
});
export type AdminAction = Infer<typeof actionSchema>;
export type AdminActionKind = AdminAction['kind'];

export const systemActionKinds: readonly AdminActionKind[] = [
  'registerOrganization',
  'setOrganizationStatus',
  'bindKey',
  'registerNode',
  'removeNode',
  'setQuotas',
  'createTopic',
  'catalogPublish',
  'catalogWithdraw',
  'raiseAlert',
  'ackAlert',
  'setAlertPolicy',
];

const unsignedFields = {
  type: t.literal('admin'),
  /** SYSTEM_GROUP or topicGroupId(topic). */
  group: t.string({ minLength: 1, maxLength: 260 }),
  /** The acting organization. */
  organization: identifier,
  signerKey: key32,
  nonce: t.bytes({ length: 16 }),
  timestamp: t.uint(),
  action: actionSchema,
};
const unsignedAdminSchema = t.record(unsignedFields);
export const adminTransactionSchema = t.record({ ...unsignedFields, signature: t.bytes({ length: 64 }) });
export type AdminTransaction = Infer<typeof adminTransactionSchema>;

/** The bytes the signature covers: everything but the signature, in canonical form. */
export function adminSigningPayload(transaction: Omit<AdminTransaction, 'signature'>): Uint8Array {
  return encodeWith(unsignedAdminSchema, {
    type: 'admin',
    group: transaction.group,
    organization: transaction.organization,
    signerKey: transaction.signerKey,
    nonce: transaction.nonce,
    timestamp: transaction.timestamp,
    action: transaction.action,
  });
}

const nodePossessionSchema = t.record({
  type: t.literal('node-possession'),
  organization: identifier,
  id: identifier,
  publicKey: key32,
  address: nodeAddress,
});

/**
 * What a node key signs to prove its holder registers it: the organization and node id it is bound
 * to, so the proof cannot be lifted into another organization's registration.
 */
export function nodePossessionPayload(registration: {
  organization: string;
  id: string;
  publicKey: Uint8Array;
  address: string;
}): Uint8Array {
  return encodeWith(nodePossessionSchema, {
    type: 'node-possession',
    organization: registration.organization,
    id: registration.id,
    publicKey: registration.publicKey,
    address: registration.address,
  });
}

/** The proof a `registerNode` action carries, signed with the node's own key for its network. */
export function signNodePossession(
  registration: { organization: string; id: string; address: string },
  nodeSigner: Signer,
): Uint8Array {
  return nodeSigner.sign(
    NODE_POSSESSION_TYPE,
    nodePossessionPayload({ ...registration, publicKey: nodeSigner.publicKey }),
  );
}

/**
 * Builds and signs an admin transaction with `signer`, a connector key of `organization` bound to
 * the network the transaction is for (for a `raiseAlert`, the key of the organization's node that
 * raises it; see alerts.ts `raiseAlertTransaction`).
 */
export function signAdminTransaction(
  unsigned: {
    group: string;
    organization: string;
    nonce: Uint8Array;
    timestamp: number;
    action: AdminAction;
  },
  signer: Signer,
): AdminTransaction {
  const body = { type: 'admin' as const, ...unsigned, signerKey: signer.publicKey };
  return { ...body, signature: signer.sign(ADMIN_SIGNING_TYPE, adminSigningPayload(body)) };
}

/**
 * What a Raft entry of a registry group carries: an admin transaction, or (topic groups only) a run
 * of certified partition blocks that the leader's replication task copied (the global ledger).
 */
export const registryEntrySchema = t.variant('type', {
  admin: t.record({
    type: t.literal('admin'),
    transaction: adminTransactionSchema,
    /**
     * Topic groups: the __system index the proposer authorized against. Every replica checks the
     * transaction against the registry at exactly this index, so all decide alike.
     */
    systemIndex: t.optional(t.uint()),
  }),
  blocks: t.record({
    type: t.literal('blocks'),
    /** The partition's consensus group id, e.g. "invoices/0". */
    partition: t.string({ minLength: 1, maxLength: 260 }),
    /** Encoded blocks (`encodeBlock`), consecutive heights. */
    blocks: t.array(t.bytes({ maxLength: 16 * 1024 * 1024 }), { minItems: 1, maxItems: 256 }),
  }),
});
export type RegistryEntry = Infer<typeof registryEntrySchema>;

export const registryEntryBytesMax = 32 * 1024 * 1024;

export function encodeRegistryEntry(entry: RegistryEntry): Uint8Array {
  return encodeWith(registryEntrySchema, entry);
}

export function decodeRegistryEntry(bytes: Uint8Array): RegistryEntry {
  return decodeWith(registryEntrySchema, bytes, { maxBytes: registryEntryBytesMax });
}

/** The result of applying an entry, returned to whoever proposed it. */
export const registryResultSchema = t.variant('status', {
  OK: t.record({ status: t.literal('OK'), detail: t.optional(t.string({ maxLength: 512 })) }),
  REJECTED: t.record({
    status: t.literal('REJECTED'),
    reason: t.string({ minLength: 1, maxLength: 64 }),
    detail: t.optional(t.string({ maxLength: 512 })),
  }),
});
export type RegistryResult = Infer<typeof registryResultSchema>;

export function encodeRegistryResult(result: RegistryResult): Uint8Array {
  return encodeWith(registryResultSchema, result);
}

export function decodeRegistryResult(bytes: Uint8Array): RegistryResult {
  return decodeWith(registryResultSchema, bytes, { maxBytes: 4096 });
}

/** Stable reason codes of a rejected admin transaction or block run. */
export const AdminReject = {
  Malformed: 'MALFORMED',
  WrongGroup: 'WRONG_GROUP',
  OrganizationUnknown: 'ORGANIZATION_UNKNOWN',
  SigningKeyUnknown: 'SIGNING_KEY_UNKNOWN',
  BadSignature: 'BAD_SIGNATURE',
  Replay: 'REPLAY',
  /** Signed too long before its organization's newest applied admin transaction (nonce-window.ts). */
  Stale: 'STALE',
  NotAllowed: 'NOT_ALLOWED',
  AlreadyExists: 'ALREADY_EXISTS',
  KeyInUse: 'KEY_IN_USE',
  NodeUnknown: 'NODE_UNKNOWN',
  /** A node still serves a Raft group or replica set that would lose it. */
  NodeInUse: 'NODE_IN_USE',
  /** A supervisor-set quota (`setQuotas`) would be exceeded. */
  QuotaExceeded: 'QUOTA_EXCEEDED',
  /** A registration's proof of possession does not verify against the key it registers. */
  BadProof: 'BAD_PROOF',
  TopicUnknown: 'TOPIC_UNKNOWN',
  BadPartitionCount: 'BAD_PARTITION_COUNT',
  PartitionUnknown: 'PARTITION_UNKNOWN',
  BadPolicy: 'BAD_POLICY',
  /** A replicated block failed certificate, chain or root verification. */
  BadBlock: 'BAD_BLOCK',
  /** A replicated block is not the next one of its partition. */
  OutOfOrder: 'OUT_OF_ORDER',
  /** A catalog publish does not carry the next version of its entry (the detail names it). */
  VersionConflict: 'VERSION_CONFLICT',
  /** A catalog withdrawal names an entry the organization does not have in the catalog. */
  DatasetUnknown: 'DATASET_UNKNOWN',
  /** An ackAlert names an alert the registry does not hold (never raised, or dropped as the oldest). */
  AlertUnknown: 'ALERT_UNKNOWN',
} as const;
export type AdminReject = (typeof AdminReject)[keyof typeof AdminReject];
