/**
 * The request side of the connector's OpenAPI document: the limits the REST API enforces and the
 * request schemas. Fastify validates requests with these very objects, so the document cannot
 * drift from what the server accepts.
 */
import { adminLimits } from '../../registry/admin-transactions.js';
import { DEFAULT_ESCROW_POLICY, escrowPolicyBounds } from '../../registry/assignment.js';
import { contentTypeLengthMax, mediaTypePattern } from '../media-type.js';

/** A JSON Schema (2020-12 for OpenAPI 3.1; the subset used here is also valid draft-07 for Ajv). */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** Largest JSON body of `POST /v1/topics/{topic}/batch`: base64 values of small messages. */
export const batchBodyBytesMax = 16 * 1024 * 1024;
/** Largest JSON body of every other route (an admin action or transaction, a sequence). */
export const jsonBodyBytesMax = 1024 * 1024;
/** Most messages in one batch: the connector signs one producer batch per partition. */
export const batchMessagesMax = 1024;
export const receivedLimitDefault = 100;
export const receivedLimitMax = 1000;
/** Longest long-poll: longer waits would outlive common proxy and client idle timeouts. */
export const receivedWaitMsMax = 30_000;

/** A base64 string schema with `description`. */
export const base64String = (description: string): JsonSchema => ({
  type: 'string',
  contentEncoding: 'base64',
  description,
});

const nonEmptyString = { type: 'string', minLength: 1 } as const;
const contentType = {
  type: 'string',
  maxLength: contentTypeLengthMax,
  pattern: mediaTypePattern,
  description:
    'A media type (RFC 9110: type/subtype[; name=value]...) in printable ASCII; recipients are served it ' +
    'back as the Content-Type of the download. Default application/octet-stream.',
} as const;
const partitionQuery = {
  type: 'integer',
  minimum: 0,
  description:
    'The partition, for a message received on several partitions of the topic with this id (ids are unique per partition).',
} as const;

// The same limits the registry's transaction schema enforces, checked here too so that a bad request
// fails with the field's name before the connector signs anything.
const identifier = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[a-zA-Z0-9._-]+$' } as const;
const topicName = { type: 'string', minLength: 1, maxLength: 249, pattern: '^[a-zA-Z0-9._-]+$' } as const;
/** A hex-encoded 32-byte key with `description`. */
export const hexKey = (description: string): JsonSchema => ({
  type: 'string',
  pattern: '^[0-9a-fA-F]{64}$',
  description,
});
const unsignedInteger = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const organizationList = (description: string): JsonSchema => ({
  type: 'array',
  maxItems: adminLimits.aclEntriesMax,
  uniqueItems: true,
  items: identifier,
  description,
});
const replicationFactor = {
  type: 'integer',
  minimum: adminLimits.replicasMin,
  maximum: adminLimits.replicasMax,
  description: `Replicas per partition (${adminLimits.replicasMin}–${adminLimits.replicasMax}); default ${adminLimits.replicasMin}.`,
} as const;
const escrowBound = (field: keyof typeof escrowPolicyBounds, description: string) =>
  ({
    type: 'integer',
    minimum: escrowPolicyBounds[field].min,
    maximum: escrowPolicyBounds[field].max,
    description: `${description} Default ${DEFAULT_ESCROW_POLICY[field]}.`,
  }) as const;
const escrowPolicy = {
  type: 'object',
  additionalProperties: false,
  description:
    "How each message of an escrow topic is escrowed for auditors. Omitted fields keep the topic's " +
    'current ones, else the defaults. shares and replicas are not checked against the organizations ' +
    'registered now (organizations join later): a send fails with NOT_ENOUGH_HOLDERS while too few ' +
    'organizations other than the sender can hold.',
  properties: {
    chunkBytes: escrowBound('chunkBytes', 'Bytes of each chunk of the encrypted payload.'),
    replicas: escrowBound('replicas', 'Distinct holder organizations (other than the sender) per chunk.'),
    threshold: escrowBound('threshold', 'k: key shares needed to rebuild the key; at most shares.'),
    shares: escrowBound('shares', 'n: key shares made, one per share holder organization.'),
    auditApprovals: escrowBound('auditApprovals', 'Member approvals an audit request needs.'),
  },
} as const;
const topicPolicy = {
  type: 'object',
  additionalProperties: false,
  description: 'Omitted fields take the network defaults (createTopic) or stay as they are (setPolicy).',
  properties: {
    messageBytesMax: { ...unsignedInteger, description: 'Largest message payload in bytes.' },
    ttlMs: { ...unsignedInteger, minimum: 1, description: 'How long a message may wait for delivery.' },
    payloadRetentionMs: {
      ...unsignedInteger,
      description: 'How long senders keep a payload after every recipient confirmed it.',
    },
    availability: {
      enum: ['standard', 'escrow'],
      description:
        'escrow: every message is also cut into chunks kept by distinct holder organizations and its key ' +
        'escrowed k-of-n, so an auditor can read it without the sender (DESIGN §7). Omitted: standard ' +
        'for a new topic, unchanged for setPolicy.',
    },
    escrow: escrowPolicy,
  },
} as const;

/** One branch of the admin action body: `kind` selects it (Ajv's and OpenAPI's discriminator). */
function adminAction(kind: string, properties: Record<string, JsonSchema>, required: readonly string[]) {
  return {
    type: 'object',
    required: ['kind', ...required],
    additionalProperties: false,
    properties: { kind: { const: kind }, ...properties },
  } as const;
}

/** Base64 length of the largest admin transaction the registry accepts. */
const adminTransactionBase64Max = Math.ceil(adminLimits.transactionBytesMax / 3) * 4;

// ---- request schemas (also used by Fastify's validator) ----

export const requestSchemas = {
  topicParams: {
    type: 'object',
    required: ['topic'],
    properties: { topic: nonEmptyString },
  },
  topicMessageParams: {
    type: 'object',
    required: ['topic', 'id'],
    properties: { topic: nonEmptyString, id: nonEmptyString },
  },
  statusQuery: {
    type: 'object',
    additionalProperties: false,
    properties: { partition: partitionQuery },
  },
  receiptQuery: {
    type: 'object',
    additionalProperties: false,
    properties: {
      partition: partitionQuery,
      source: {
        enum: ['global', 'partition', 'best'],
        description:
          "global: the topic's global ledger (any node of the topic answers); partition: its replicas; best (default): both, the one with more deliveries",
      },
    },
  },
  idParams: {
    type: 'object',
    required: ['id'],
    properties: { id: nonEmptyString },
  },
  receivedParams: {
    type: 'object',
    required: ['topic', 'partition', 'id'],
    properties: {
      topic: nonEmptyString,
      partition: { type: 'integer', minimum: 0, description: 'Partition of the topic it was received on.' },
      id: nonEmptyString,
    },
  },
  consumerGroupParams: {
    type: 'object',
    required: ['groupId', 'topic'],
    properties: { groupId: nonEmptyString, topic: nonEmptyString },
  },
  sendQuery: {
    type: 'object',
    properties: {
      to: { type: 'string', description: 'Comma-separated recipient organization ids.' },
      key: base64String('Partitioning key.'),
      id: { ...nonEmptyString, description: 'Message id; a retry with the same id is not published twice.' },
    },
  },
  batchBody: {
    type: 'object',
    required: ['messages'],
    additionalProperties: false,
    properties: {
      messages: {
        type: 'array',
        minItems: 1,
        maxItems: batchMessagesMax,
        items: {
          type: 'object',
          required: ['value', 'to'],
          additionalProperties: false,
          properties: {
            key: { type: ['string', 'null'], contentEncoding: 'base64', description: 'Partitioning key.' },
            value: base64String('The payload.'),
            to: {
              type: 'array',
              minItems: 1,
              items: nonEmptyString,
              description: 'Recipient organization ids.',
            },
            id: nonEmptyString,
            contentType,
            headers: {
              type: 'object',
              additionalProperties: base64String('Header value.'),
            },
          },
        },
      },
    },
  },
  receivedQuery: {
    type: 'object',
    additionalProperties: false,
    properties: {
      topic: nonEmptyString,
      after: { type: 'integer', minimum: 0, default: 0, description: 'Return sequences greater than this.' },
      limit: { type: 'integer', minimum: 1, maximum: receivedLimitMax, default: receivedLimitDefault },
      waitMs: {
        type: 'integer',
        minimum: 0,
        maximum: receivedWaitMsMax,
        default: 0,
        description: 'Long-poll: wait up to this long for a message when none is there yet.',
      },
    },
  },
  sequenceBody: {
    type: 'object',
    required: ['sequence'],
    additionalProperties: false,
    properties: { sequence: { type: 'integer', minimum: 0 } },
  },
  adminActionBody: {
    type: 'object',
    required: ['kind'],
    // Selecting the branch by `kind` makes a bad request fail on the field at fault rather than
    // with "must match exactly one schema in oneOf".
    discriminator: { propertyName: 'kind' },
    oneOf: [
      adminAction(
        'createTopic',
        {
          name: topicName,
          partitions: { type: 'integer', minimum: 1, maximum: adminLimits.partitionsMax },
          replicationFactor,
          producers: organizationList('Organizations that may publish.'),
          consumers: organizationList('Organizations that may be recipients.'),
          policy: topicPolicy,
        },
        ['name', 'partitions', 'producers', 'consumers'],
      ),
      adminAction(
        'addPartitions',
        {
          topic: topicName,
          count: {
            type: 'integer',
            minimum: 1,
            maximum: adminLimits.partitionsMax,
            description: 'The new total number of partitions (as `kafka-topics --alter --partitions`).',
          },
          replicationFactor,
        },
        ['topic', 'count'],
      ),
      adminAction(
        'setAcl',
        {
          topic: topicName,
          producers: organizationList('Organizations that may publish.'),
          consumers: organizationList('Organizations that may be recipients.'),
        },
        ['topic', 'producers', 'consumers'],
      ),
      adminAction('setPolicy', { topic: topicName, policy: { ...topicPolicy, minProperties: 1 } }, [
        'topic',
        'policy',
      ]),
      adminAction(
        'setReplicas',
        {
          topic: topicName,
          partition: { type: 'integer', minimum: 0, maximum: adminLimits.partitionsMax },
          replicas: {
            type: 'array',
            minItems: adminLimits.replicasMin,
            maxItems: adminLimits.replicasMax,
            uniqueItems: true,
            items: identifier,
            description: 'Node ids of the new replica set.',
          },
        },
        ['topic', 'partition', 'replicas'],
      ),
      adminAction(
        'setOrganizationStatus',
        {
          organization: identifier,
          status: { enum: ['APPROVED', 'SUSPENDED', 'REVOKED'] },
          roles: {
            type: 'array',
            maxItems: 3,
            uniqueItems: true,
            items: { enum: ['member', 'supervisor', 'auditor'] },
            description:
              'Roles the organization holds from now on. Absent: unchanged, except that approving a ' +
              'registration grants `member` if it was requested (supervisor and auditor only when named).',
          },
        },
        ['organization', 'status'],
      ),
      adminAction(
        'registerNode',
        {
          id: identifier,
          publicKey: hexKey("The node's Ed25519 public key, hex."),
          address: { type: 'string', minLength: 3, maxLength: 300, pattern: '^[^\\s:]+:\\d{1,5}$' },
          proof: {
            type: 'string',
            pattern: '^[0-9a-fA-F]{128}$',
            description:
              "The node key's Ed25519 signature (hex) over the registration: its proof of possession.",
          },
        },
        ['id', 'publicKey', 'address', 'proof'],
      ),
      adminAction('removeNode', { id: identifier }, ['id']),
      adminAction(
        'setQuotas',
        {
          quotas: {
            type: 'object',
            additionalProperties: false,
            required: [
              'topicsPerOrganizationMax',
              'nodesPerOrganizationMax',
              'pendingRegistrationsMax',
              'partitionsPerTopicMax',
            ],
            properties: {
              topicsPerOrganizationMax: { type: 'integer', minimum: 0, maximum: 1_000_000 },
              nodesPerOrganizationMax: { type: 'integer', minimum: 0, maximum: 10_000 },
              pendingRegistrationsMax: { type: 'integer', minimum: 0, maximum: 100_000 },
              partitionsPerTopicMax: { type: 'integer', minimum: 1, maximum: adminLimits.partitionsMax },
            },
          },
        },
        ['quotas'],
      ),
      adminAction('bindKey', { key: hexKey('Another connector Ed25519 public key, hex.') }, ['key']),
    ],
  },
  adminTransactionBody: {
    type: 'object',
    required: ['transaction'],
    additionalProperties: false,
    properties: {
      transaction: {
        ...base64String('Canonical CBOR of a signed admin transaction, base64.'),
        minLength: 1,
        maxLength: adminTransactionBase64Max,
      },
    },
  },
} as const satisfies Record<string, JsonSchema>;
