/**
 * The RPC methods between a connector and its node, in one table: each method's name with the
 * schema of its request and of its answer (or, for a payload stream, of the stream's head). The
 * connector's calls and the node's client and registry services both go through it, so a request or
 * an answer of the wrong shape is SCHEMA_MISMATCH at the boundary, on whichever side receives it,
 * and neither side reads a field the other does not send. `peerMethods` does the same for what one
 * node asks another on behalf of its connectors (a forwarded request, a payload relay).
 *
 * The wire is the CBOR map the schemas describe, unchanged: fields a receiver does not know are
 * ignored (an older peer may send them), and proofs travel as CBOR values that the receiver parses
 * with their own schemas where it verifies them (`blockEvidenceSchema`, `deliveryReceiptSchema`).
 */
import type { CborValue } from '../codec/index.js';
import { schemaMismatch, t } from '../codec/schema.js';
import type { Infer, InferRecord, OptionalSchema, Schema } from '../codec/schema.js';
import { jobLogEntrySchema } from '../contracts/datashare/views.js';
import { escrowLogEntrySchema } from '../contracts/escrow/views.js';
import { alertLimits, alertPolicySchema, alertRecordSchema } from '../registry/alert-schemas.js';
import { catalogEntrySchema, catalogHitSchema, catalogLimits } from '../registry/catalog.js';

/** Messages one poll answers at most (the node caps the limit a connector asks for to this). */
export const pollMessagesMax = 500;
/** Escrow log entries one escrowLog answers at most. */
export const escrowLogPageMax = 500;
/** Job log entries one jobLog answers at most. */
export const jobLogPageMax = 500;
/** Block evidences of one escrow record: one per share release (bounded by the shares of a message). */
const escrowEvidencesMax = 1024;
/** Recipients of one message (the contract's bound). */
const recipientsMax = 64;
/** Delivery evidences of one receipt, one per recipient. */
const deliveriesMax = 64;
/**
 * Entries of a registry or status answer that grow with the network (Raft groups, topics,
 * partitions, peers, organizations): far above any real network, the frame limit binds first.
 */
const networkEntriesMax = 65_536;

type Fields = Record<string, Schema<unknown>>;

/** A record of `fields` that ignores the fields it does not know (see the module comment). */
function openRecord<F extends Fields>(fields: F): Schema<InferRecord<F>> {
  const strict = t.record(fields);
  return {
    description: strict.description,
    parse(value, path) {
      if (
        typeof value !== 'object' ||
        value === null ||
        Array.isArray(value) ||
        value instanceof Uint8Array
      ) {
        return strict.parse(value, path);
      }
      const known = Object.fromEntries(Object.entries(value).filter(([key]) => Object.hasOwn(fields, key)));
      // A malformed count the receiver ignores parses to undefined: dropped, as CBOR has no undefined.
      const parsed = strict.parse(known, path) as Record<string, unknown>;
      for (const key of Object.keys(parsed)) if (parsed[key] === undefined) delete parsed[key];
      return parsed as InferRecord<F>;
    },
  };
}

/** Any CBOR value (a proof, parsed by its own schema where it is verified); absent is refused. */
const cborValue: Schema<CborValue> = {
  description: 'a CBOR value',
  parse(value, path) {
    if (value === undefined) throw schemaMismatch(path, 'expected a CBOR value, got nothing');
    return value as CborValue;
  },
};

/**
 * A count the receiver may ignore: a non-negative integer, or undefined for anything else (absent
 * or malformed), which the node answers with its default as it always has.
 */
function lenientCount(): OptionalSchema<number> {
  return {
    optional: true,
    description: 'a non-negative integer, or nothing',
    parse: (value) =>
      typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined,
  };
}

const partitionId = t.string();
const messageId = t.string();

/** A request/answer method. */
export interface UnaryMethod<Request, Response> {
  readonly kind: 'unary';
  readonly request: Schema<Request>;
  readonly response: Schema<Response>;
}

/** A method answered with a byte stream headed by `head`. */
export interface StreamMethod<Request, Head> {
  readonly kind: 'stream';
  readonly request: Schema<Request>;
  readonly head: Schema<Head>;
}

function unary<Request, Response>(
  request: Schema<Request>,
  response: Schema<Response>,
): UnaryMethod<Request, Response> {
  return { kind: 'unary', request, response };
}

function stream<Request, Head>(request: Schema<Request>, head: Schema<Head>): StreamMethod<Request, Head> {
  return { kind: 'stream', request, head };
}

/**
 * One registry group as a node runs it: its leader ('' when none is known) and applied index; a
 * group stopped because its storage failed also carries `failed` and, for a topic, `retryInMs`.
 */
/** Lifecycles asked for in one `messages` call. */
export const lifecyclesMax = 1000;

/** Where a message is: accepted, completed (every recipient confirmed) or expired, and each recipient. */
const messageLifecycle = openRecord({
  id: messageId,
  state: t.oneOf('ACCEPTED', 'COMPLETED', 'EXPIRED'),
  sender: t.string(),
  offset: t.uint(),
  height: t.uint(),
  recipients: t.array(
    openRecord({
      organization: t.string(),
      state: t.oneOf('PENDING', 'DELIVERED'),
      height: t.optional(t.uint()),
    }),
    { maxItems: recipientsMax },
  ),
});

const groupStatus = openRecord({
  group: t.string(),
  leader: t.string(),
  applied: t.uint(),
  held: t.optional(t.uint()),
  failed: t.optional(t.string()),
  retryInMs: t.optional(t.uint()),
});
export type GroupStatus = Infer<typeof groupStatus>;

/** The head of a payload stream: the envelope header the ciphertext is checked against. */
const payloadHead = openRecord({ header: t.bytes() });
const fetchRequestBody = openRecord({ group: partitionId, fetchRequest: t.bytes() });

/** The connector methods (below) one organization's connector may ask of another's through the nodes. */
export const relayedConnectorMethods = ['escrowChunkPut', 'escrowChunkGet', 'jobResultGet'] as const;
export type RelayedConnectorMethod = (typeof relayedConnectorMethods)[number];

/** What a connector asks its node (DESIGN §3); the node answers with the `response`. */
export const nodeMethods = {
  /** A signed client request → where it committed and the block's evidence (the ack's proof). */
  publish: unary(
    openRecord({ group: partitionId, request: t.bytes() }),
    openRecord({ height: t.uint(), transactionIndex: t.uint(), evidence: cborValue }),
  ),
  /**
   * A page of the partition from `fromOffset`: each message names its block evidence by index
   * into `evidences` (one per transaction, shared by the messages of a batch).
   */
  poll: unary(
    openRecord({ group: partitionId, fromOffset: t.uint(), limit: lenientCount(), waitMs: lenientCount() }),
    openRecord({
      evidences: t.array(cborValue, { maxItems: pollMessagesMax }),
      messages: t.array(
        openRecord({
          offset: t.uint(),
          id: messageId,
          state: t.string(),
          evidence: t.uint(),
          messageIndex: t.uint(),
        }),
        { maxItems: pollMessagesMax },
      ),
      nextOffset: t.uint(),
      endOffset: t.uint(),
      height: t.uint(),
    }),
  ),
  /** A message's lifecycle; `fetchRequest` lets a replica answer for its recipient (a relay). */
  message: unary(
    openRecord({ group: partitionId, id: messageId, fetchRequest: t.optional(t.bytes()) }),
    messageLifecycle,
  ),
  /**
   * The lifecycles of up to `lifecyclesMax` messages of one partition at once (a sender following
   * what it sent); an id not committed, or not the caller's to see, is left out of the answer.
   */
  messages: unary(
    openRecord({ group: partitionId, ids: t.array(messageId, { maxItems: lifecyclesMax }) }),
    openRecord({ messages: t.array(messageLifecycle, { maxItems: lifecyclesMax }) }),
  ),
  /** The delivery receipt from the partition: its acceptance proof and delivery evidences. */
  receipt: unary(
    openRecord({ group: partitionId, id: messageId }),
    openRecord({
      state: t.string(),
      acceptance: cborValue,
      deliveries: t.array(cborValue, { maxItems: deliveriesMax }),
    }),
  ),
  /**
   * The delivery receipt from the topic's global ledger (served by the registry service). Where the
   * message is and its state come along for people; a connector trusts only the proofs.
   */
  globalReceipt: unary(
    openRecord({ topic: t.string(), id: messageId, partition: t.optional(partitionId) }),
    openRecord({
      acceptance: cborValue,
      deliveries: t.array(cborValue, { maxItems: deliveriesMax }),
      state: t.optional(t.oneOf('ACCEPTED', 'COMPLETED')),
      partition: t.optional(partitionId),
      offset: t.optional(t.uint()),
      height: t.optional(t.uint()),
    }),
  ),
  /** Registers the calling connection as one of the organization's payload-serving connections. */
  serve: unary(openRecord({}), openRecord({ ok: t.bool() })),
  /**
   * A signed admin transaction (served by the registry service) → the Raft index and group it
   * committed at and the registry's result; answered once the node has applied it, so the caller
   * reads its own write next.
   */
  admin: unary(
    openRecord({ transaction: t.bytes() }),
    openRecord({
      index: t.uint(),
      group: t.string(),
      result: openRecord({
        status: t.oneOf('OK', 'REJECTED'),
        reason: t.optional(t.string()),
        detail: t.optional(t.string()),
      }),
    }),
  ),
  /**
   * The live registry (its encoding), the registry groups' status and each followed topic's
   * global-ledger heads (partition → height); served by the registry service.
   */
  registry: unary(
    openRecord({}),
    openRecord({
      registry: t.bytes(),
      groups: t.array(groupStatus, { maxItems: networkEntriesMax }),
      globalHeads: t.array(
        openRecord({ topic: t.string(), heads: t.dict(t.uint(), { maxEntries: networkEntriesMax }) }),
        { maxItems: networkEntriesMax },
      ),
    }),
  ),
  /** The node's own state, for operators and tests: its partitions, peers, serving connections, groups. */
  status: unary(
    openRecord({}),
    openRecord({
      node: t.string(),
      partitions: t.array(
        openRecord({ group: partitionId, height: t.uint(), view: t.uint(), nextOffset: t.uint() }),
        { maxItems: networkEntriesMax },
      ),
      peers: t.array(t.string(), { maxItems: networkEntriesMax }),
      serving: t.array(openRecord({ organization: t.string(), connections: t.uint(), busy: t.uint() }), {
        maxItems: networkEntriesMax,
      }),
      groups: t.array(groupStatus, { maxItems: networkEntriesMax }),
    }),
  ),
  /** A payload, relayed from the sender's connector, for a signed fetch request. */
  fetchPayload: stream(fetchRequestBody, payloadHead),
  /**
   * A page of the partition's escrow log from `fromSeq` (DESIGN §7): the entries the calling
   * organization may see — an escrowed message's registration and attestations to its parties
   * (sender, share and chunk holders), supervisors and auditors; audit requests, approvals, releases
   * and outcomes to every member, as BlockTorrent broadcasts them. A long poll when `waitMs` is set.
   */
  escrowLog: unary(
    openRecord({ group: partitionId, fromSeq: t.uint(), limit: lenientCount(), waitMs: lenientCount() }),
    openRecord({
      entries: t.array(escrowLogEntrySchema, { maxItems: escrowLogPageMax }),
      nextSeq: t.uint(),
      endSeq: t.uint(),
    }),
  ),
  /**
   * An escrowed message's committed escrow state (`record`, an EscrowRecordView), the acceptance
   * proof of the message (whose signed metadata holds the commitments, sealed shares, placement and
   * master table), and the block evidence of every share release transaction, for its parties,
   * supervisors and auditors.
   */
  escrowRecord: unary(
    openRecord({ group: partitionId, id: messageId }),
    openRecord({
      acceptance: cborValue,
      record: cborValue,
      evidences: t.array(openRecord({ height: t.uint(), transactionIndex: t.uint(), evidence: cborValue }), {
        maxItems: escrowEvidencesMax,
      }),
    }),
  ),
  /**
   * A request for another organization's connector (escrow chunks, job results), carried by the
   * nodes: to that organization's connector through this node if it serves here, else through its
   * own node. The body is signed by the calling organization and checked by the receiving connector
   * itself.
   */
  connectorCall: unary(
    openRecord({
      organization: t.string(),
      method: t.oneOf(...relayedConnectorMethods),
      body: cborValue,
    }),
    cborValue,
  ),
  /**
   * A ranked full-text search of the data catalog (DESIGN §8), answered from this node's index of
   * its replicated __system state: the same query gives the same ranking on every node at the same
   * index. Entries of owners that are not APPROVED are left out. `query` is FTS5 syntax (words,
   * "phrases", prefix*, AND / OR / NOT); empty lists every entry (filtered) in key order.
   */
  catalogSearch: unary(
    openRecord({
      query: t.string({ maxLength: catalogLimits.queryLengthMax }),
      domain: t.optional(t.string()),
      owner: t.optional(t.string()),
      limit: lenientCount(),
    }),
    openRecord({
      hits: t.array(catalogHitSchema, { maxItems: catalogLimits.searchResultsMax }),
      /** The __system index the answer was read at. */
      index: t.uint(),
    }),
  ),
  /** One catalog entry (`owner/dataset`), or DATASET_NOT_FOUND (also for a non-APPROVED owner's). */
  catalogEntry: unary(
    openRecord({ owner: t.string(), dataset: t.string() }),
    openRecord({ entry: catalogEntrySchema, index: t.uint() }),
  ),
  /**
   * A page of the partition's job log from `fromSeq` (DESIGN §8): the entries of jobs the calling
   * organization requested or owns; every entry for an approved supervisor. A long poll when
   * `waitMs` is set. `nextSeq` is past every entry the page covered, shown or not.
   */
  jobLog: unary(
    openRecord({ group: partitionId, fromSeq: t.uint(), limit: lenientCount(), waitMs: lenientCount() }),
    openRecord({
      entries: t.array(jobLogEntrySchema, { maxItems: jobLogPageMax }),
      nextSeq: t.uint(),
      endSeq: t.uint(),
    }),
  ),
  /**
   * One job's committed record (a JobView) and the block evidence of each of its transactions
   * (request, decision, result), for its requester, its owner and approved supervisors; anyone else
   * is FORBIDDEN. A job not committed (yet) is MESSAGE_NOT_FOUND, retriable.
   */
  jobRecord: unary(
    openRecord({ group: partitionId, jobId: t.string() }),
    openRecord({
      record: cborValue,
      evidences: t.array(
        openRecord({ step: t.oneOf('request', 'decision', 'result'), evidence: cborValue }),
        {
          maxItems: 3,
        },
      ),
    }),
  ),
  /**
   * A page of the alerts the node holds (DESIGN §9; registry/alerts.ts), answered from its
   * replicated __system state, so every node gives the same page at the same index. An approved
   * supervisor sees every alert; any other approved organization (members, auditors) only alerts
   * about itself (asking for another's is FORBIDDEN). By default the oldest first from `fromIndex`
   * (a follower asks from one past the last index it saw; `more` says a full page stopped short);
   * with `newestFirst` the newest `limit` matches, newest first. `limit`: default 100, at most
   * alertLimits.pageMax. `sinceMs` compares the raising transaction's timestamp.
   */
  alertList: unary(
    openRecord({
      organization: t.optional(t.string()),
      sinceMs: lenientCount(),
      fromIndex: lenientCount(),
      limit: lenientCount(),
      id: t.optional(t.string()),
      newestFirst: t.optional(t.bool()),
    }),
    openRecord({
      alerts: t.array(alertRecordSchema, { maxItems: alertLimits.pageMax }),
      /** The __system index the answer was read at. */
      index: t.uint(),
      more: t.optional(t.bool()),
    }),
  ),
  /** The alert policy in force (a supervisor's, or the default), for any approved organization. */
  alertPolicy: unary(openRecord({}), openRecord({ policy: alertPolicySchema, index: t.uint() })),
} as const;

/** What a node asks a connector on a serving connection. */
export const connectorMethods = {
  /**
   * The stored ciphertext of a message this connector sent, for a recipient's fetch request (which
   * names the partition itself; the node sends `group` too).
   */
  servePayload: stream(openRecord({ group: t.optional(partitionId), fetchRequest: t.bytes() }), payloadHead),
  /** A sender places an escrowed chunk here (a signed ChunkPutRequest and the chunk) → this holder's signed receipt. */
  escrowChunkPut: unary(
    openRecord({ request: t.bytes(), chunk: t.bytes() }),
    openRecord({
      holder: t.string(),
      signerKey: t.bytes({ length: 32 }),
      signature: t.bytes({ length: 64 }),
    }),
  ),
  /** The auditor of an approved audit asks for a chunk this holder keeps (a signed ChunkGetRequest). */
  escrowChunkGet: unary(openRecord({ request: t.bytes() }), openRecord({ chunk: t.bytes() })),
  /**
   * A job's requester asks its owner for the result (a signed JobResultRequest, contracts/datashare/
   * result-requests.ts) → the result sealed to the requester's encryption key.
   */
  jobResultGet: unary(
    openRecord({ request: t.bytes() }),
    openRecord({ sealed: openRecord({ encapsulatedKey: t.bytes({ length: 32 }), ciphertext: t.bytes() }) }),
  ),
} as const;

/** The methods a node may forward to a replica node of the partition for one of its connectors. */
export const forwardableMethods = [
  'publish',
  'poll',
  'message',
  'messages',
  'receipt',
  'escrowLog',
  'escrowRecord',
  'jobLog',
  'jobRecord',
] as const;
export type ForwardableMethod = (typeof forwardableMethods)[number];

/** What a node asks another node on behalf of its organization's connectors. */
export const peerMethods = {
  /**
   * A connector's request for a partition this node does not replicate, for `organization`: `body`
   * is the request of `method` (parsed by that method's schema where it is served), and the answer
   * is that method's answer, which the connector parses.
   */
  clientForward: unary(
    openRecord({ method: t.oneOf(...forwardableMethods), organization: t.string(), body: cborValue }),
    cborValue,
  ),
  /** A payload for a recipient's signed fetch request, from the node of the sender's connector. */
  relayPayload: stream(fetchRequestBody, payloadHead),
  /** A connectorCall for `organization`'s connector, from a node where it does not serve to one of its own. */
  relayConnectorCall: unary(
    openRecord({
      organization: t.string(),
      method: t.oneOf(...relayedConnectorMethods),
      body: cborValue,
    }),
    cborValue,
  ),
} as const;

export type NodeMethods = typeof nodeMethods;
export type ConnectorMethods = typeof connectorMethods;
export type PeerMethods = typeof peerMethods;

/** The request type of a method of `Table`. */
export type RequestOf<M> = M extends UnaryMethod<infer R, unknown> | StreamMethod<infer R, unknown>
  ? R
  : never;
/** The answer type of a request/answer method. */
export type ResponseOf<M> = M extends UnaryMethod<unknown, infer R> ? R : never;
/** The head type of a stream method. */
export type HeadOf<M> = M extends StreamMethod<unknown, infer H> ? H : never;

/** The names of the request/answer methods of `Table`. */
export type UnaryNames<Table> = {
  [K in keyof Table]: Table[K] extends UnaryMethod<unknown, unknown> ? K : never;
}[keyof Table];
/** The names of the stream methods of `Table`. */
export type StreamNames<Table> = {
  [K in keyof Table]: Table[K] extends StreamMethod<unknown, unknown> ? K : never;
}[keyof Table];
