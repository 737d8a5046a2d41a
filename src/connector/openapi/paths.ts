/**
 * The `paths` of the connector's OpenAPI document: every route with its parameters, body and the
 * answers it can give, errors included.
 */
import { ErrorCode, assert, errorInfo } from '../../errors.js';
import { contentTypeLengthMax } from '../media-type.js';
import { auditRequestSchemas, auditResponseSchemas } from './audit-schemas.js';
import { alertPaths } from './alert-paths.js';
import { datasharePaths } from './datashare-paths.js';
import { batchMessagesMax, requestSchemas } from './request-schemas.js';
import type { JsonSchema } from './request-schemas.js';

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonSchema): JsonSchema => ({ 'application/json': { schema } });

/**
 * Names `listed` for a response of HTTP `status`, asserting that the error table (errors.ts) gives
 * each that status, so the document cannot claim a status the API does not answer with.
 */
function codes(status: number, ...listed: ErrorCode[]): string {
  for (const code of listed)
    assert(errorInfo(code).httpStatus === status, `error table: ${code} answers ${status}`);
  return listed.join(', ');
}

const errorResponse = (description: string): JsonSchema => ({ description, content: json(ref('Error')) });

/** The failures every authenticated route can answer with, besides its own. */
const commonErrors: Record<string, JsonSchema> = {
  '400': errorResponse(
    `Invalid request (${codes(400, ErrorCode.SchemaMismatch, ErrorCode.MalformedEncoding, ErrorCode.Oversize, ErrorCode.BadConfig)}).`,
  ),
  '401': errorResponse(`Missing or wrong API token (${codes(401, ErrorCode.Unauthorized)}).`),
  '429': errorResponse(
    'The connector or its node is over capacity (OVERLOADED) or this organization is over its request quota on the node (RATE_LIMITED); retry later.',
  ),
  '500': errorResponse(
    `Unexpected failure (${codes(500, ErrorCode.Internal)} and other codes); details are in the connector log.`,
  ),
  '503': errorResponse(
    `The network did not answer in time (${codes(503, ErrorCode.Timeout, ErrorCode.ConnectionClosed)}); retriable.`,
  ),
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

const notFound = errorResponse(
  `No such message (${codes(404, ErrorCode.MessageNotFound, ErrorCode.PayloadNotFound)}).`,
);
const topicNotFound = errorResponse(`No such topic (${codes(404, ErrorCode.TopicNotFound)}).`);
const adminRejected = errorResponse(
  'The network refused the transaction (ADMIN_REJECTED): the message names the reason code ' +
    '(NOT_ALLOWED, ALREADY_EXISTS, TOPIC_UNKNOWN, BAD_PARTITION_COUNT, ...) and what to fix.',
);
const adminCommitted = { description: 'Committed.', content: json(ref('AdminResult')) };
const forbidden = errorResponse(
  `This organization is not a recipient of the message (${codes(403, ErrorCode.NotRecipient)}).`,
);
const ambiguous = errorResponse(
  'Several messages have this id (AMBIGUOUS_MESSAGE_ID): ids are unique per partition only. ' +
    '`error.candidates` lists them with the path (or partition) that names each.',
);
const notConfirmed = errorResponse(
  `Its delivery is not confirmed on-chain yet (${codes(409, ErrorCode.MessageNotConfirmed)}): try again in a moment.`,
);
const deletedResponse = {
  description: 'Deleted: the message is no longer listed, and its payload is gone from this connector.',
  content: json({
    type: 'object',
    required: ['id', 'topic', 'partition'],
    additionalProperties: false,
    properties: { id: { type: 'string' }, topic: { type: 'string' }, partition: { type: 'integer' } },
  }),
};
/** What a received payload answers, by whichever path it is asked for. */
const payloadResponse = {
  description:
    'Payload bytes, served as a download: `Content-Disposition: attachment` and ' +
    '`X-Content-Type-Options: nosniff`, with the content type the sender gave (or ' +
    '`application/octet-stream` if what the ledger recorded is not a valid media type). ' +
    '`Ledgerbus-Sha256` carries the hex sha256 of the content.',
  content: { '*/*': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
};

// ---- audits (DESIGN §7) ----

const auditMessageParameters = parametersOf('path', auditRequestSchemas.messageParams);
const auditLocationParameters = parametersOf('query', auditRequestSchemas.locationQuery);
const auditForbidden = errorResponse(
  `This organization lacks the standing the action needs (${codes(403, ErrorCode.Forbidden)}): it is not an ` +
    'approved auditor, may not approve (APPROVER_NOT_ELIGIBLE: the auditor and the sender may not), or has no ' +
    "audit of the message. `error.reason` carries the contract's reason code when it refused.",
);
const auditNotFound = errorResponse(
  `The escrowed message or audit request has not been seen here yet (${codes(404, ErrorCode.MessageNotFound)}, ` +
    'retriable), or nothing was fetched for it yet.',
);
const auditConflict = errorResponse(
  `${codes(409, ErrorCode.AuditNotApproved)}: the request still waits for approvals (retriable); ` +
    `${codes(409, ErrorCode.AmbiguousMessageId)}: the id names escrowed messages of several partitions ` +
    '(name the topic and partition); ' +
    `${codes(409, ErrorCode.AdminRejected)}: the contract refused otherwise (AUDIT_CLOSED, AUDIT_ID_CONFLICT, AUDIT_LIMIT; ` +
    '`error.reason`).',
);
const auditFailed = errorResponse(
  `The message could not be rebuilt (${codes(502, ErrorCode.AuditFailed)}): too few valid key shares released yet, ` +
    'or no holder of a chunk served it intact; the message names what is missing. Retriable unless the audit ' +
    'was closed as FAILED.',
);

/** Paths in OpenAPI form (`{param}`); the server registers them in Fastify form (`:param`). */
export const paths: Record<string, Record<string, JsonSchema>> = {
  '/healthz': {
    get: operation({
      operationId: 'health',
      summary: 'Liveness; reports whether the presented token is valid without requiring it.',
      public: true,
      responses: { '200': { description: 'Up.', content: json(ref('Health')) } },
    }),
  },
  '/readyz': {
    get: operation({
      operationId: 'ready',
      summary: 'Readiness: whether the connector can do its work now.',
      description:
        'Ready when the connector was started and is not stopping, its database is open, its payload ' +
        'storage answers a lookup within 2 s, and it holds an open connection to at least one of its ' +
        "organization's nodes that it has not set aside for failing. `/healthz` only says the process " +
        'answers. No token needed; the answer names what failed, never an address or a path.',
      public: true,
      responses: {
        '200': {
          description: 'Ready.',
          content: json({
            type: 'object',
            required: ['status'],
            additionalProperties: false,
            properties: { status: { const: 'ready' } },
          }),
        },
        '503': {
          description: 'Not ready: `failing` names each check that failed.',
          content: json(ref('NotReady')),
        },
      },
    }),
  },
  '/metrics': {
    get: operation({
      operationId: 'metrics',
      summary: "The connector's metrics in the Prometheus text exposition format (all names `ledgerbus_`).",
      description:
        'Messages accepted, refused, delivered, completed, expired and received by topic, payload bytes ' +
        'served and fetched, publish and fetch durations, consumer-group lag, storage sizes, and the ' +
        "process's own metrics; each one's HELP line says what it counts. It requires the API token like " +
        "every route but the public ones (labels name topics and consumer groups): Prometheus's " +
        '`authorization: { type: Bearer, credentials_file: ... }` sends it.',
      responses: {
        '200': {
          description: 'The metrics.',
          content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } },
        },
      },
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
        '404': topicNotFound,
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
        '404': topicNotFound,
        '422': errorResponse(`The partition refused a message (${codes(422, ErrorCode.MessageRejected)}).`),
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
    delete: operation({
      operationId: 'deleteReceived',
      summary:
        'Deletes a received message and its payload (recipients keep what they received until they delete it).',
      description:
        'Its delivery must be confirmed on-chain first. The message is no longer listed nor served; ' +
        'its delivery receipt is still in the ledger (ask the sender, or any node, for it).',
      parameters: receivedParameters,
      responses: { '200': deletedResponse, '404': notFound, '409': notConfirmed },
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
    delete: operation({
      operationId: 'deleteReceivedById',
      summary: 'Deletes the one received message with this id (deprecated: name its topic and partition).',
      deprecated: true,
      parameters: idParameters,
      responses: { '200': deletedResponse, '404': notFound, '409': ambiguous },
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
  '/v1/audits': {
    post: operation({
      operationId: 'requestAudit',
      summary: 'Ask, as an auditor, for an escrowed message (an auditRequest on its partition).',
      description:
        'Only an approved organization with the auditor role may; the request then waits for the approvals ' +
        "the topic's escrow policy asks for (`POST /v1/audits/{requestId}/approve` by other members), after " +
        'which share holders release their key shares to the auditor.',
      requestBody: { required: true, content: json(auditRequestSchemas.requestBody) },
      responses: {
        '200': { description: 'Recorded on-chain.', content: json(auditResponseSchemas.requested) },
        '403': auditForbidden,
        '404': auditNotFound,
        '409': auditConflict,
      },
    }),
    get: operation({
      operationId: 'listAudits',
      summary:
        'Every audit request the escrow agent has seen, oldest first, with approvals, releases and outcome.',
      responses: { '200': { description: 'Audits.', content: json(auditResponseSchemas.audits) } },
    }),
  },
  '/v1/audits/{requestId}/approve': {
    post: operation({
      operationId: 'approveAudit',
      summary:
        "Approve an audit request as this (member) organization; the owner's approval neither counts nor blocks.",
      parameters: [...parametersOf('path', auditRequestSchemas.requestIdParams), ...auditLocationParameters],
      responses: {
        '200': { description: 'Approval recorded.', content: json(auditResponseSchemas.approved) },
        '403': auditForbidden,
        '404': auditNotFound,
        '409': auditConflict,
      },
    }),
  },
  '/v1/audits/{requestId}/record': {
    get: operation({
      operationId: 'auditRecord',
      summary:
        'The audit record of a request (or of the newest audit of a message, by its id), checkable offline with `ledgerbus verify`.',
      description:
        "The message's acceptance proof and the block evidence of the audit's request, approvals, share releases " +
        "and outcome, each checked by this connector against the network's trust bundle before it answers. Any " +
        'organization its node shows the escrow record to may build it: a party of the message, a supervisor, an ' +
        'auditor.',
      parameters: [...parametersOf('path', auditRequestSchemas.requestIdParams), ...auditLocationParameters],
      responses: {
        '200': { description: 'Audit record.', content: json(auditResponseSchemas.record) },
        '403': auditForbidden,
        '404': auditNotFound,
        '409': auditConflict,
      },
    }),
  },
  '/v1/audits/messages/{id}': {
    get: operation({
      operationId: 'escrowStatus',
      summary:
        "An escrowed message's escrow state: shares, attestations, chunk placement, audits, retrievability.",
      description: "Read from this organization's node and checked against the message's acceptance proof.",
      parameters: [...auditMessageParameters, ...auditLocationParameters],
      responses: {
        '200': { description: 'Escrow status.', content: json(auditResponseSchemas.status) },
        '403': auditForbidden,
        '404': auditNotFound,
        '409': auditConflict,
      },
    }),
  },
  '/v1/audits/messages/{id}/fetch': {
    post: operation({
      operationId: 'fetchAudited',
      summary:
        'Rebuild an escrowed message for our approved audit, without its owner, and record the outcome.',
      description:
        'Verifies every released key share against the on-chain commitments, rebuilds the key, fetches every ' +
        'chunk from any live holder (the next one on failure), checks every hash and the content root, decrypts ' +
        "into this connector's storage and records RETRIEVED (or, on a final failure, FAILED) on-chain. Answers " +
        'when done, which for a large message takes a while; a fetch done before answers at once.',
      parameters: [...auditMessageParameters, ...parametersOf('query', auditRequestSchemas.fetchQuery)],
      responses: {
        '200': { description: 'Rebuilt and stored.', content: json(auditResponseSchemas.fetched) },
        '403': auditForbidden,
        '404': auditNotFound,
        '409': auditConflict,
        '502': auditFailed,
      },
    }),
  },
  '/v1/audits/messages/{id}/payload': {
    get: operation({
      operationId: 'getAuditedPayload',
      summary:
        'The plaintext an audit fetch rebuilt, streamed as a download, with Content-Length and Ledgerbus-Sha256.',
      parameters: [...auditMessageParameters, ...parametersOf('query', auditRequestSchemas.fetchQuery)],
      responses: {
        '200': {
          description:
            'Plaintext bytes (`Content-Disposition: attachment`, `X-Content-Type-Options: nosniff`).',
          content: {
            'application/octet-stream': {
              schema: { type: 'string', contentMediaType: 'application/octet-stream' },
            },
          },
        },
        '404': auditNotFound,
      },
    }),
  },
  ...datasharePaths({ operation, parametersOf, codes, errorResponse, json }),
  ...alertPaths({ operation, parametersOf, codes, errorResponse, json }),
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
