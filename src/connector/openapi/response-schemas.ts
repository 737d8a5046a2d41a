/**
 * The response side of the connector's OpenAPI document: `components.schemas`, which the paths
 * refer to by name (`#/components/schemas/<name>`).
 */
import { alertJsonSchema } from './alert-paths.js';
import { base64String, hexKey } from './request-schemas.js';
import type { JsonSchema } from './request-schemas.js';

const proofString = base64String(
  'Canonical CBOR of the proof, base64; checked offline by `ledgerbus verify`.',
);

/** Every named schema of the document, in the order the document lists them. */
export const componentSchemas: Record<string, JsonSchema> = {
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
          reason: {
            type: 'string',
            description:
              'ADMIN_REJECTED and MESSAGE_REJECTED only: the reason code of the refusal (e.g. ALREADY_EXISTS, NOT_ALLOWED).',
          },
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
      value: {
        type: 'string',
        contentEncoding: 'base64',
        description:
          'In a listing (GET /v1/received) only: the payload itself when it is at most 4 KiB, so that no payload request is needed. Check it against sha256 and size.',
      },
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
        required: ['messageBytesMax', 'ttlMs', 'payloadRetentionMs', 'availability'],
        properties: {
          messageBytesMax: { type: 'integer' },
          ttlMs: { type: 'integer' },
          payloadRetentionMs: { type: 'integer' },
          availability: { enum: ['standard', 'escrow'] },
          escrow: {
            type: 'object',
            description: 'Present exactly when availability is escrow.',
            required: ['chunkBytes', 'replicas', 'threshold', 'shares', 'auditApprovals'],
            properties: {
              chunkBytes: { type: 'integer' },
              replicas: { type: 'integer', description: 'Holder organizations per chunk.' },
              threshold: { type: 'integer', description: 'k: key shares needed to rebuild the key.' },
              shares: { type: 'integer', description: 'n: key shares made.' },
              auditApprovals: { type: 'integer', description: 'Member approvals an audit request needs.' },
            },
          },
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
  NotReady: {
    type: 'object',
    required: ['status', 'failing'],
    additionalProperties: false,
    properties: {
      status: { const: 'not_ready' },
      failing: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['check', 'reason'],
          additionalProperties: false,
          properties: {
            check: {
              enum: ['started', 'database', 'storage', 'nodes'],
              description:
                'started: start() has not run, or the connector is stopping; database: its SQLite file is ' +
                'not open; storage: the payload storage failed or did not answer in 2 s; nodes: no open ' +
                "connection to any of the organization's nodes.",
            },
            reason: { type: 'string' },
          },
        },
      },
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
      {
        type: 'object',
        required: ['type', 'alert'],
        properties: { type: { const: 'alert' }, alert: alertJsonSchema },
      },
    ],
  },
};
