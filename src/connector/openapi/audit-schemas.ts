/**
 * The audit routes' schemas (DESIGN §7): the request schemas Fastify validates the audit routes
 * with (escrow/http-routes.ts) and the OpenAPI document lists (paths.ts), and the answers' shapes.
 * The answers are inlined in the paths rather than named components, so the audit routes stay in
 * this file and paths.ts.
 */
import { escrowLimits } from '../../contracts/escrow/transactions.js';
import { base64String } from './request-schemas.js';
import type { JsonSchema } from './request-schemas.js';

const nonEmptyString = { type: 'string', minLength: 1 } as const;
// `topic` and `partition` go together (the routes refuse one without the other).
const topic = {
  ...nonEmptyString,
  description: 'Topic of the message, when its id alone is ambiguous.',
} as const;
const partition = {
  type: 'integer',
  minimum: 0,
  description: 'Partition of the message, with `topic` (ids are unique per partition only).',
} as const;
const requestId = {
  type: 'string',
  minLength: 1,
  maxLength: escrowLimits.requestIdLengthMax,
  description: 'An audit request id, as `POST /v1/audits` answered it.',
} as const;
const strings = { type: 'array', items: { type: 'string' } } as const;
const auditState = { enum: ['PENDING', 'APPROVED', 'CLOSED'] } as const;

export const auditRequestSchemas = {
  requestBody: {
    type: 'object',
    required: ['id', 'reason'],
    additionalProperties: false,
    properties: {
      id: { ...nonEmptyString, description: 'Id of the escrowed message to audit.' },
      reason: {
        type: 'string',
        minLength: 1,
        maxLength: escrowLimits.reasonLengthMax,
        description: 'Why, for the approvers and the record.',
      },
      topic,
      partition,
    },
  },
  requestIdParams: {
    type: 'object',
    required: ['requestId'],
    properties: { requestId },
  },
  messageParams: {
    type: 'object',
    required: ['id'],
    properties: { id: { ...nonEmptyString, description: 'Id of the escrowed message.' } },
  },
  locationQuery: {
    type: 'object',
    additionalProperties: false,
    properties: { topic, partition },
  },
  fetchQuery: {
    type: 'object',
    additionalProperties: false,
    properties: {
      requestId: { ...requestId, description: 'Which of our approved audits to use (default: the newest).' },
      topic,
      partition,
    },
  },
} as const satisfies Record<string, JsonSchema>;

/** How the auditor recorded that an audit ended; null while it is open. */
const auditOutcome: JsonSchema = {
  type: ['object', 'null'],
  required: ['outcome', 'contentRoot', 'badShares', 'badHolders', 'detail'],
  properties: {
    outcome: { enum: ['RETRIEVED', 'FAILED'] },
    contentRoot: {
      type: ['string', 'null'],
      description: 'Hex content root the rebuilt message matched.',
    },
    badShares: strings,
    badHolders: strings,
    detail: { type: 'string' },
  },
};

const auditSummary: JsonSchema = {
  type: 'object',
  required: [
    'requestId',
    'id',
    'group',
    'auditor',
    'reason',
    'state',
    'approvals',
    'approvalsNeeded',
    'releases',
    'outcome',
  ],
  properties: {
    requestId: { type: 'string' },
    id: { type: 'string' },
    group: { type: 'string', description: 'Partition group, e.g. invoices/0.' },
    auditor: { type: 'string' },
    reason: { type: 'string' },
    state: auditState,
    approvals: {
      type: 'array',
      items: { type: 'object', required: ['organization'], properties: { organization: { type: 'string' } } },
    },
    approvalsNeeded: { type: 'integer' },
    releases: {
      type: 'array',
      description: 'Share holders that released their key share to the auditor.',
      items: { type: 'object', required: ['holder'], properties: { holder: { type: 'string' } } },
    },
    outcome: auditOutcome,
  },
};

export const auditResponseSchemas = {
  requested: {
    type: 'object',
    required: ['requestId', 'id', 'group', 'state'],
    properties: {
      requestId: {
        type: 'string',
        description: 'A fresh UUID: approvers and the fetch name the request by it.',
      },
      id: { type: 'string' },
      group: { type: 'string' },
      state: auditState,
    },
  },
  approved: {
    type: 'object',
    required: ['requestId', 'state', 'approvals', 'approvalsNeeded'],
    properties: {
      requestId: { type: 'string' },
      state: auditState,
      approvals: { type: 'integer' },
      approvalsNeeded: { type: 'integer' },
    },
  },
  audits: {
    type: 'object',
    required: ['audits'],
    properties: { audits: { type: 'array', items: auditSummary } },
  },
  status: {
    type: 'object',
    required: [
      'id',
      'group',
      'sender',
      'status',
      'threshold',
      'shares',
      'placement',
      'attestations',
      'audits',
      'retrievable',
    ],
    properties: {
      id: { type: 'string' },
      group: { type: 'string' },
      sender: { type: 'string' },
      status: { enum: ['PENDING', 'VERIFIED', 'INVALID'] },
      threshold: { type: 'integer', description: 'Key shares needed to rebuild the key.' },
      shares: {
        type: 'array',
        items: {
          type: 'object',
          required: ['holder', 'index', 'attested'],
          properties: {
            holder: { type: 'string' },
            index: { type: 'integer' },
            attested: { enum: ['VERIFIED', 'INVALID', null] },
          },
        },
      },
      placement: {
        type: 'object',
        required: ['chunks', 'replicas', 'holders', 'perChunk', 'allDistinct', 'ownerHolds'],
        properties: {
          chunks: { type: 'integer' },
          replicas: { type: 'integer' },
          holders: strings,
          perChunk: {
            type: 'array',
            items: strings,
            description: "Each chunk's holders, in placement order.",
          },
          allDistinct: { type: 'boolean' },
          ownerHolds: { type: 'boolean' },
        },
      },
      attestations: {
        type: 'array',
        items: {
          type: 'object',
          required: ['organization', 'share', 'chunksHeld'],
          properties: {
            organization: { type: 'string' },
            share: { enum: ['VERIFIED', 'INVALID', 'NONE'] },
            chunksHeld: { type: 'integer' },
          },
        },
      },
      audits: { type: 'array', items: auditSummary },
      retrievable: {
        type: 'boolean',
        description:
          'Not INVALID, enough share holders attested a VERIFIED share, and every chunk has a holder that attested holding all its chunks.',
      },
      why: { type: 'string', description: 'Why not retrievable.' },
    },
  },
  record: {
    type: 'object',
    required: ['format', 'network', 'audit', 'proof'],
    properties: {
      format: { const: 'ledgerbus-audit-record/v1' },
      network: { type: 'string', description: 'The network whose trust bundle verifies the record.' },
      audit: {
        type: 'object',
        description: 'What the proof proves, in this field order; `ledgerbus verify` recomputes it.',
        required: [
          'id',
          'topic',
          'partition',
          'sender',
          'contentRoot',
          'requestId',
          'auditor',
          'reason',
          'approvals',
          'state',
          'releases',
          'outcome',
        ],
        properties: {
          id: { type: 'string' },
          topic: { type: 'string' },
          partition: { type: 'integer' },
          sender: { type: 'string' },
          contentRoot: { type: 'string', description: 'Hex content root of the audited message.' },
          requestId: { type: 'string' },
          auditor: { type: 'string' },
          reason: { type: 'string' },
          approvals: { ...strings, description: 'Members whose approval the contract recorded.' },
          state: { ...auditState, description: "The audit's state as the latest proven result gives it." },
          releases: {
            ...strings,
            description: 'Share holders that released their key share to the auditor.',
          },
          outcome: auditOutcome,
        },
      },
      proof: base64String(
        "Canonical CBOR of the audit record, base64: the message's acceptance proof and the block evidence of the request, each approval, each release and the outcome.",
      ),
    },
  },
  fetched: {
    type: 'object',
    required: [
      'id',
      'requestId',
      'size',
      'sha256',
      'storageKey',
      'chunks',
      'badShares',
      'badHolders',
      'regenerationMs',
    ],
    properties: {
      id: { type: 'string' },
      requestId: { type: 'string' },
      size: { type: 'integer', description: 'Plaintext bytes.' },
      sha256: { type: 'string', description: 'Hex sha256 of the plaintext.' },
      storageKey: { type: 'string' },
      chunks: { type: 'integer' },
      badShares: { ...strings, description: 'Holders whose released key share failed the commitments.' },
      badHolders: {
        ...strings,
        description: 'Holders that did not serve a chunk they acknowledged, intact.',
      },
      regenerationMs: {
        type: 'integer',
        description: 'From the first chunk request to the verified plaintext stored.',
      },
    },
  },
} as const satisfies Record<string, JsonSchema>;
