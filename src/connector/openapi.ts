/**
 * The OpenAPI 3.1 description of the connector's local REST/WebSocket API, served at
 * `GET /v1/openapi.json`. It is a plain object so that it needs no generator and can be diffed in
 * review; the request schemas below are the same objects Fastify validates requests with, so the
 * document cannot drift from what the server accepts.
 */

import { adminLimits } from '../registry/admin-transactions.js';
import { contentTypeLengthMax, mediaTypePattern } from './media-type.js';

/** A JSON Schema (2020-12 for OpenAPI 3.1; the subset used here is also valid draft-07 for Ajv). */
export type JsonSchema = { readonly [keyword: string]: unknown };

export interface OpenApiDocument {
  readonly openapi: '3.1.0';
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly servers: readonly { readonly url: string }[];
  readonly security: readonly Readonly<Record<string, readonly string[]>>[];
  readonly paths: Readonly<Record<string, Readonly<Record<string, JsonSchema>>>>;
  readonly components: {
    readonly schemas: Readonly<Record<string, JsonSchema>>;
    readonly securitySchemes: Readonly<Record<string, JsonSchema>>;
  };
}

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

const base64String = (description: string): JsonSchema => ({
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
const hexKey = (description: string): JsonSchema => ({
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
const topicPolicy = {
  type: 'object',
  additionalProperties: false,
  description: 'Omitted fields take the network defaults.',
  properties: {
    messageBytesMax: { ...unsignedInteger, description: 'Largest message payload in bytes.' },
    ttlMs: { ...unsignedInteger, minimum: 1, description: 'How long a message may wait for delivery.' },
    payloadRetentionMs: {
      ...unsignedInteger,
      description: 'How long senders keep a payload after every recipient confirmed it.',
    },
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

// ---- response schemas ----

const proofString = base64String(
  'Canonical CBOR of the proof, base64; checked offline by `ledgerbus verify`.',
);

const componentSchemas: Record<string, JsonSchema> = {
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', description: 'Stable error code (see docs/sdk.md).' },
          message: { type: 'string' },
          retriable: { type: 'boolean', description: 'Whether trying the same request again can succeed.' },
          candidates: {
            type: 'array',
            description:
              'AMBIGUOUS_MESSAGE_ID only: the messages the id could mean, each with the path that names it.',
            items: {
              type: 'object',
              required: ['topic', 'partition', 'id', 'sender', 'path'],
              properties: {
                topic: { type: 'string' },
                partition: { type: 'integer' },
                id: { type: 'string' },
                sender: { type: 'string' },
                path: { type: 'string', description: 'e.g. /v1/received/{topic}/{partition}/{id}' },
              },
            },
          },
        },
      },
    },
  },
  SendResult: {
    type: 'object',
    required: ['id', 'topic', 'partition', 'offset', 'height', 'size', 'proof'],
    properties: {
      id: { type: 'string' },
      topic: { type: 'string' },
      partition: { type: 'integer' },
      offset: { type: 'integer' },
      height: { type: 'integer', description: 'Height of the block that accepted the message.' },
      size: { type: 'integer', description: 'Stored (encrypted) size in bytes.' },
      proof: proofString,
    },
  },
  SendResults: {
    type: 'object',
    required: ['results'],
    properties: { results: { type: 'array', items: { $ref: '#/components/schemas/SendResult' } } },
  },
  ReceivedMessage: {
    type: 'object',
    required: [
      'sequence',
      'id',
      'topic',
      'partition',
      'offset',
      'sender',
      'size',
      'sha256',
      'contentType',
      'key',
      'receivedAt',
      'proof',
    ],
    properties: {
      sequence: { type: 'integer', description: 'Local delivery sequence; consumer cursors count in it.' },
      id: { type: 'string' },
      topic: { type: 'string' },
      partition: { type: 'integer' },
      offset: { type: 'integer' },
      sender: { type: 'string', description: 'Sending organization id.' },
      size: { type: 'integer', description: 'Plaintext size in bytes.' },
      sha256: { type: 'string', pattern: '^[0-9a-f]{64}$', description: 'Hex sha256 of the plaintext.' },
      contentType: { type: 'string' },
      key: { type: ['string', 'null'], contentEncoding: 'base64' },
      receivedAt: { type: 'integer', description: 'Milliseconds since the Unix epoch.' },
      proof: proofString,
    },
  },
  ReceivedMessages: {
    type: 'object',
    required: ['messages'],
    properties: { messages: { type: 'array', items: { $ref: '#/components/schemas/ReceivedMessage' } } },
  },
  MessageStatus: {
    type: 'object',
    required: ['id', 'state', 'sender', 'partition', 'offset', 'recipients'],
    properties: {
      id: { type: 'string' },
      state: { enum: ['ACCEPTED', 'COMPLETED', 'EXPIRED'] },
      sender: { type: 'string' },
      partition: { type: 'integer' },
      offset: { type: 'integer' },
      recipients: {
        type: 'array',
        items: {
          type: 'object',
          required: ['organization', 'state'],
          properties: { organization: { type: 'string' }, state: { enum: ['PENDING', 'DELIVERED'] } },
        },
      },
    },
  },
  ReceiptBundle: {
    type: 'object',
    required: ['format', 'network', 'message', 'deliveredTo', 'proof'],
    properties: {
      format: { const: 'ledgerbus-receipt/v1' },
      network: { type: 'string' },
      source: { enum: ['global', 'partition'] },
      message: {
        type: 'object',
        required: [
          'id',
          'topic',
          'partition',
          'offset',
          'sender',
          'recipients',
          'contentRoot',
          'size',
          'height',
        ],
        properties: {
          id: { type: 'string' },
          topic: { type: 'string' },
          partition: { type: 'integer' },
          offset: { type: 'integer' },
          sender: { type: 'string' },
          recipients: { type: 'array', items: { type: 'string' } },
          contentRoot: { type: 'string' },
          size: { type: 'integer' },
          height: { type: 'integer' },
        },
      },
      deliveredTo: { type: 'array', items: { type: 'string' } },
      proof: base64String('Canonical CBOR of the DeliveryReceipt, base64.'),
    },
  },
  Sequence: {
    type: 'object',
    required: ['sequence'],
    properties: { sequence: { type: 'integer', minimum: 0 } },
  },
  AdminResult: {
    type: 'object',
    required: ['group', 'index', 'status'],
    properties: {
      group: {
        type: 'string',
        description: 'The Raft group that committed it: "__system" or "topic:<name>".',
      },
      index: { type: 'integer', description: 'Raft index at which it committed.' },
      status: { const: 'OK' },
      detail: { type: 'string' },
    },
  },
  OrganizationDescription: {
    type: 'object',
    required: ['id', 'roles', 'status', 'signingKeys', 'encryptionKey'],
    properties: {
      id: { type: 'string' },
      roles: { type: 'array', items: { enum: ['member', 'supervisor', 'auditor'] } },
      status: { enum: ['APPROVED', 'PENDING', 'SUSPENDED', 'REVOKED'] },
      signingKeys: { type: 'array', items: hexKey('Ed25519 public key, hex.') },
      encryptionKey: hexKey('X25519 public key, hex.'),
    },
  },
  Organizations: {
    type: 'object',
    required: ['organizations'],
    properties: {
      organizations: { type: 'array', items: { $ref: '#/components/schemas/OrganizationDescription' } },
    },
  },
  PartitionDescription: {
    type: 'object',
    required: ['partition', 'group', 'configEpoch', 'replicas', 'globalHeight'],
    properties: {
      partition: { type: 'integer' },
      group: { type: 'string', description: 'PBFT group id, "<topic>/<partition>".' },
      configEpoch: { type: 'integer' },
      replicas: { type: 'array', items: { type: 'string' }, description: 'Node ids.' },
      globalHeight: {
        type: 'integer',
        description:
          "Highest block of this partition in the topic's global ledger, as the connector's node knows it.",
      },
    },
  },
  TopicDescription: {
    type: 'object',
    required: ['name', 'owner', 'partitions', 'producers', 'consumers', 'policy', 'topicIndex', 'raft'],
    properties: {
      name: { type: 'string' },
      owner: {
        type: ['string', 'null'],
        description: 'Organization that created it; null for genesis topics (administered by supervisors).',
      },
      partitions: { type: 'array', items: { $ref: '#/components/schemas/PartitionDescription' } },
      producers: { type: 'array', items: { type: 'string' } },
      consumers: { type: 'array', items: { type: 'string' } },
      policy: {
        type: 'object',
        required: ['messageBytesMax', 'ttlMs', 'payloadRetentionMs'],
        properties: {
          messageBytesMax: { type: 'integer' },
          ttlMs: { type: 'integer' },
          payloadRetentionMs: { type: 'integer' },
        },
      },
      topicIndex: { type: 'integer', description: "Index of the topic's Raft group this description is at." },
      raft: {
        type: 'object',
        required: ['voters', 'learners', 'leader'],
        properties: {
          voters: { type: 'array', items: { type: 'string' } },
          learners: { type: 'array', items: { type: 'string' } },
          leader: { type: 'string' },
        },
      },
    },
  },
  Topics: {
    type: 'object',
    required: ['topics'],
    properties: { topics: { type: 'array', items: { $ref: '#/components/schemas/TopicDescription' } } },
  },
  Health: {
    type: 'object',
    required: ['status', 'authenticated'],
    properties: {
      status: { const: 'ok' },
      authenticated: { type: 'boolean', description: 'Whether the request carried the valid API token.' },
      organization: { type: 'string', description: 'Present only when authenticated.' },
    },
  },
  ConnectorEvent: {
    description: 'One WebSocket text frame of `GET /v1/events`.',
    oneOf: [
      {
        type: 'object',
        required: ['type', 'message'],
        properties: {
          type: { const: 'message.received' },
          message: { $ref: '#/components/schemas/ReceivedMessage' },
        },
      },
      {
        type: 'object',
        required: ['type', 'id', 'topic', 'partition', 'code', 'reason'],
        properties: {
          type: { const: 'message.failed' },
          id: { type: 'string' },
          topic: { type: 'string' },
          partition: { type: 'integer' },
          code: { type: 'string' },
          reason: { type: 'string' },
        },
      },
      {
        type: 'object',
        required: ['type', 'id', 'topic', 'partition', 'recipient', 'height'],
        properties: {
          type: { const: 'delivery.confirmed' },
          id: { type: 'string' },
          topic: { type: 'string' },
          partition: { type: 'integer' },
          recipient: { type: 'string' },
          height: { type: 'integer' },
        },
      },
    ],
  },
};

// ---- paths ----

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonSchema): JsonSchema => ({ 'application/json': { schema } });

const errorResponse = (description: string): JsonSchema => ({ description, content: json(ref('Error')) });

/** The failures every authenticated route can answer with, besides its own. */
const commonErrors: Record<string, JsonSchema> = {
  '400': errorResponse('Invalid request (SCHEMA_MISMATCH, MALFORMED_ENCODING, OVERSIZE, BAD_CONFIG).'),
  '401': errorResponse('Missing or wrong API token (UNAUTHORIZED).'),
  '429': errorResponse(
    'The connector or its node is over capacity (OVERLOADED) or this organization is over its request quota on the node (RATE_LIMITED); retry later.',
  ),
  '500': errorResponse('Unexpected failure (INTERNAL and other codes); details are in the connector log.'),
  '503': errorResponse('The network did not answer in time (TIMEOUT, CONNECTION_CLOSED); retriable.'),
};

function operation(spec: {
  operationId: string;
  summary: string;
  description?: string;
  parameters?: readonly JsonSchema[];
  requestBody?: JsonSchema;
  responses: Record<string, JsonSchema>;
  public?: boolean;
  deprecated?: boolean;
}): JsonSchema {
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    ...(spec.deprecated === true ? { deprecated: true } : {}),
    ...(spec.description === undefined ? {} : { description: spec.description }),
    ...(spec.parameters === undefined ? {} : { parameters: spec.parameters }),
    ...(spec.requestBody === undefined ? {} : { requestBody: spec.requestBody }),
    ...(spec.public === true ? { security: [] } : {}),
    responses: spec.public === true ? spec.responses : { ...commonErrors, ...spec.responses },
  };
}

/** OpenAPI parameters from one of the request schemas above: one entry per property. */
function parametersOf(location: 'path' | 'query' | 'header', schema: JsonSchema): JsonSchema[] {
  const properties = (schema['properties'] ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema['required'] ?? []) as readonly string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property as { description?: string } & JsonSchema;
    return {
      name,
      in: location,
      required: location === 'path' || required.has(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    };
  });
}

const topicParameters = parametersOf('path', requestSchemas.topicParams);
const topicMessageParameters = parametersOf('path', requestSchemas.topicMessageParams);
const idParameters = parametersOf('path', requestSchemas.idParams);
const receivedParameters = parametersOf('path', requestSchemas.receivedParams);
const consumerGroupParameters = parametersOf('path', requestSchemas.consumerGroupParams);

const notFound = errorResponse('No such message (MESSAGE_NOT_FOUND, PAYLOAD_NOT_FOUND).');
const topicNotFound = errorResponse('No such topic (TOPIC_NOT_FOUND).');
const adminRejected = errorResponse(
  'The network refused the transaction (ADMIN_REJECTED): the message names the reason code ' +
    '(NOT_ALLOWED, ALREADY_EXISTS, TOPIC_UNKNOWN, BAD_PARTITION_COUNT, ...) and what to fix.',
);
const adminCommitted = { description: 'Committed.', content: json(ref('AdminResult')) };
const forbidden = errorResponse('This organization is not a recipient of the message (NOT_RECIPIENT).');
const ambiguous = errorResponse(
  'Several messages have this id (AMBIGUOUS_MESSAGE_ID): ids are unique per partition only. ' +
    '`error.candidates` lists them with the path (or partition) that names each.',
);
/** What a received payload answers, by whichever path it is asked for. */
const payloadResponse = {
  description:
    'Payload bytes, served as a download: `Content-Disposition: attachment` and ' +
    '`X-Content-Type-Options: nosniff`, with the content type the sender gave (or ' +
    '`application/octet-stream` if what the ledger recorded is not a valid media type). ' +
    '`Ledgerbus-Sha256` carries the hex sha256 of the content.',
  content: { '*/*': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
};

/** Paths in OpenAPI form (`{param}`); the server registers them in Fastify form (`:param`). */
const paths: Record<string, Record<string, JsonSchema>> = {
  '/healthz': {
    get: operation({
      operationId: 'health',
      summary: 'Liveness; reports whether the presented token is valid without requiring it.',
      public: true,
      responses: { '200': { description: 'Up.', content: json(ref('Health')) } },
    }),
  },
  '/v1/openapi.json': {
    get: operation({
      operationId: 'openapi',
      summary: 'This document.',
      public: true,
      responses: { '200': { description: 'OpenAPI 3.1 document.', content: json({ type: 'object' }) } },
    }),
  },
  '/v1/topics/{topic}/messages': {
    post: operation({
      operationId: 'sendMessage',
      summary: 'Send one message whose payload is the streamed request body (any size).',
      description:
        'The body is streamed to encryption and storage and never held whole. Its size is held to the ' +
        "topic's `messageBytesMax` (which counts the encrypted size): a `Content-Length` over it is refused " +
        'before the body is read, a chunked body as soon as it passes it (422 MESSAGE_REJECTED, ' +
        'MESSAGE_TOO_LARGE), and nothing of a refused message is kept. An upload that sends nothing for ' +
        'a minute is cut. Metadata travels in the query ' +
        '(`to`, `key`, `id`) or in the headers `Ledgerbus-To`, `Ledgerbus-Key`, `Ledgerbus-Id`; ' +
        '`Ledgerbus-Headers` carries message headers as base64 of a JSON object of base64 values. ' +
        'The payload content type is the request `Content-Type`: a media type in printable ASCII ' +
        `(at most ${contentTypeLengthMax} characters), else 400 SCHEMA_MISMATCH before the body is read.`,
      parameters: [
        ...topicParameters,
        ...parametersOf('query', requestSchemas.sendQuery),
        { name: 'Ledgerbus-To', in: 'header', required: false, schema: { type: 'string' } },
        { name: 'Ledgerbus-Key', in: 'header', required: false, schema: { type: 'string' } },
        { name: 'Ledgerbus-Id', in: 'header', required: false, schema: { type: 'string' } },
        { name: 'Ledgerbus-Headers', in: 'header', required: false, schema: { type: 'string' } },
      ],
      requestBody: {
        required: true,
        content: { '*/*': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
      },
      responses: {
        '200': { description: 'Accepted on the ledger.', content: json(ref('SendResult')) },
        '422': errorResponse(
          'The connector or the partition refused the message (MESSAGE_REJECTED; MESSAGE_TOO_LARGE over the topic policy).',
        ),
      },
    }),
  },
  '/v1/topics/{topic}/batch': {
    post: operation({
      operationId: 'sendBatch',
      summary: `Send up to ${batchMessagesMax} small messages (base64 values, body at most 16 MiB).`,
      description:
        "Every message is checked against the topic's `messageBytesMax` before any is encrypted; a " +
        'message over it refuses the whole request (422 MESSAGE_TOO_LARGE). Other routes take JSON bodies ' +
        'of at most 1 MiB (OVERSIZE), sent within 30 s.',
      parameters: topicParameters,
      requestBody: { required: true, content: json(requestSchemas.batchBody) },
      responses: {
        '200': { description: 'Accepted, in request order.', content: json(ref('SendResults')) },
        '422': errorResponse('The partition refused a message (MESSAGE_REJECTED).'),
      },
    }),
  },
  '/v1/topics/{topic}/messages/{id}/status': {
    get: operation({
      operationId: 'messageStatus',
      summary: 'Delivery state of a message on the ledger.',
      description:
        "A sender's ids are unique per topic; a message this organization received may share its id with " +
        'another received on another partition of the topic: then `partition` names it.',
      parameters: [...topicMessageParameters, ...parametersOf('query', requestSchemas.statusQuery)],
      responses: {
        '200': { description: 'Status.', content: json(ref('MessageStatus')) },
        '404': notFound,
        '409': ambiguous,
      },
    }),
  },
  '/v1/topics/{topic}/messages/{id}/receipt': {
    get: operation({
      operationId: 'messageReceipt',
      summary: 'Delivery-proof bundle, checked offline by `ledgerbus verify`.',
      parameters: [...topicMessageParameters, ...parametersOf('query', requestSchemas.receiptQuery)],
      responses: {
        '200': { description: 'Receipt.', content: json(ref('ReceiptBundle')) },
        '403': forbidden,
        '404': notFound,
        '409': ambiguous,
      },
    }),
  },
  '/v1/received': {
    get: operation({
      operationId: 'listReceived',
      summary: 'Received messages after a sequence, oldest first; long-polls with waitMs.',
      parameters: parametersOf('query', requestSchemas.receivedQuery),
      responses: { '200': { description: 'Messages (maybe none).', content: json(ref('ReceivedMessages')) } },
    }),
  },
  '/v1/received/{topic}/{partition}/{id}': {
    get: operation({
      operationId: 'getReceived',
      summary: 'One received message, named by its topic, partition and id (ids are unique per partition).',
      parameters: receivedParameters,
      responses: {
        '200': { description: 'Message.', content: json(ref('ReceivedMessage')) },
        '404': notFound,
      },
    }),
  },
  '/v1/received/{topic}/{partition}/{id}/payload': {
    get: operation({
      operationId: 'getReceivedPayload',
      summary: 'The decrypted payload, streamed, with Content-Length.',
      parameters: receivedParameters,
      responses: { '200': payloadResponse, '403': forbidden, '404': notFound },
    }),
  },
  '/v1/received/{id}': {
    get: operation({
      operationId: 'getReceivedById',
      summary: 'The one received message with this id (deprecated: name its topic and partition).',
      deprecated: true,
      description:
        'Answers when exactly one received message has the id; 409 AMBIGUOUS_MESSAGE_ID, listing the ' +
        'candidates, when messages on several partitions have it.',
      parameters: idParameters,
      responses: {
        '200': { description: 'Message.', content: json(ref('ReceivedMessage')) },
        '404': notFound,
        '409': ambiguous,
      },
    }),
  },
  '/v1/received/{id}/payload': {
    get: operation({
      operationId: 'getReceivedPayloadById',
      summary:
        'The payload of the one received message with this id (deprecated: name its topic and partition).',
      deprecated: true,
      parameters: idParameters,
      responses: { '200': payloadResponse, '403': forbidden, '404': notFound, '409': ambiguous },
    }),
  },
  '/v1/latest-sequence': {
    get: operation({
      operationId: 'latestSequence',
      summary:
        'The highest received sequence (where a new consumer group starts when not from the beginning).',
      responses: {
        '200': { description: 'Sequence (0 when nothing was received).', content: json(ref('Sequence')) },
      },
    }),
  },
  '/v1/consumer-groups/{groupId}/topics/{topic}': {
    get: operation({
      operationId: 'getCommittedSequence',
      summary: "A consumer group's committed sequence for a topic (0 when none).",
      parameters: consumerGroupParameters,
      responses: { '200': { description: 'Committed sequence.', content: json(ref('Sequence')) } },
    }),
    put: operation({
      operationId: 'commitSequence',
      summary: "Commit a consumer group's sequence for a topic.",
      parameters: consumerGroupParameters,
      requestBody: { required: true, content: json(requestSchemas.sequenceBody) },
      responses: { '200': { description: 'Committed.', content: json(ref('Sequence')) } },
    }),
  },
  '/v1/admin': {
    post: operation({
      operationId: 'admin',
      summary: "Sign an administrative action with this organization's key and commit it in its Raft group.",
      description:
        'Topic actions (createTopic excepted) commit in the topic\'s group, the others in "__system". Who may ' +
        'do what: setOrganizationStatus an approved supervisor; createTopic an approved member or supervisor, ' +
        "who becomes the topic's owner; addPartitions, setAcl, setPolicy, setReplicas the topic's owner or an " +
        "approved supervisor; registerNode (with the node key's proof) and bindKey the approved organization " +
        "itself; removeNode the node's organization or a supervisor; setQuotas a supervisor.",
      requestBody: { required: true, content: json(requestSchemas.adminActionBody) },
      responses: { '200': adminCommitted, '404': topicNotFound, '409': adminRejected },
    }),
  },
  '/v1/admin/transactions': {
    post: operation({
      operationId: 'submitAdminTransaction',
      summary: "Relay an admin transaction signed elsewhere, e.g. a new organization's registerOrganization.",
      description:
        'The connector does not sign it: the transaction carries its own signature (for a registration, ' +
        'by a key it registers, which proves possession). The new organization is PENDING until a ' +
        'supervisor approves it.',
      requestBody: { required: true, content: json(requestSchemas.adminTransactionBody) },
      responses: { '200': adminCommitted, '409': adminRejected },
    }),
  },
  '/v1/organizations': {
    get: operation({
      operationId: 'listOrganizations',
      summary: 'Every registered organization: roles, status, keys.',
      responses: { '200': { description: 'Organizations.', content: json(ref('Organizations')) } },
    }),
  },
  '/v1/topics': {
    get: operation({
      operationId: 'listTopics',
      summary: 'Every topic with its partitions, ACL and policy.',
      responses: { '200': { description: 'Topics.', content: json(ref('Topics')) } },
    }),
  },
  '/v1/topics/{topic}': {
    get: operation({
      operationId: 'describeTopic',
      summary: 'One topic: owner, partitions and their replicas, ACL, policy, Raft group.',
      parameters: topicParameters,
      responses: {
        '200': { description: 'Topic.', content: json(ref('TopicDescription')) },
        '404': topicNotFound,
      },
    }),
  },
  '/v1/events': {
    get: operation({
      operationId: 'events',
      summary: 'WebSocket: one JSON text frame per ConnectorEvent.',
      description:
        'Upgrade to WebSocket. Authenticate with the Authorization header or, for clients that cannot set ' +
        'headers (browsers), the `token` query parameter. Events are notifications, not a durable log: ' +
        'frames sent while disconnected are lost; consume messages through /v1/received.',
      parameters: [{ name: 'token', in: 'query', required: false, schema: { type: 'string' } }],
      responses: {
        '101': { description: 'Switching protocols; frames follow.', content: json(ref('ConnectorEvent')) },
      },
    }),
  },
};

export function buildOpenApiDocument(options: { serverUrl?: string } = {}): OpenApiDocument {
  return {
    openapi: '3.1.0',
    info: {
      title: 'ledgerbus connector API',
      version: '1.0.0',
      description:
        "An organization's local API to its ledgerbus connector: send and receive messages, consumer-group " +
        'cursors, delivery status and proofs, live events, and administration (topics, organizations). Every route except /healthz and this document ' +
        'requires `Authorization: Bearer <token>`.',
    },
    servers: [{ url: options.serverUrl ?? '/' }],
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      schemas: componentSchemas,
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } },
    },
  };
}
