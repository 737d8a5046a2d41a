/**
 * What the SDT contract returns: one canonical-CBOR result per transaction (the leaves of the
 * block's results root, so a client can prove what the contract decided) and events for the node to
 * publish. Schemas are exported so clients decode results strictly.
 */
import { decodeWith, t } from '../codec/index.js';
import type { Infer, Schema } from '../codec/index.js';
import { jobIdPattern, jobLimits } from './datashare/transactions.js';
import { escrowExecutedSchema } from './escrow/results.js';
import { rejectReasons } from './reasons.js';
import type { RejectReason } from './reasons.js';
import { nonceBytes, transactionLimits } from './transactions.js';
import { BATCHED_RESULT_FORMAT } from '../ledger/result-leaf.js';

const uint = t.uint();
const reason = t.oneOf(...rejectReasons) as Schema<RejectReason>;
const id = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });
const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
/** A rejection's optional detail, e.g. the recipient that may not consume. */
const detail = t.optional(t.string({ maxLength: 512 }));

/**
 * A message the partition accepted: where it is and where its proof is. A retry of the same id gets
 * exactly this result again, byte for byte, pointing at the FIRST acceptance: the block at `height`,
 * its transaction `transactionIndex`, leaf `messageIndex` of that publish's batch tree.
 */
const messageAcceptedSchema = t.record({
  id,
  status: t.literal('ACCEPTED'),
  offset: uint,
  height: uint,
  transactionIndex: uint,
  messageIndex: uint,
});
const itemRejectedSchema = t.record({ id, status: t.literal('REJECTED'), reason, detail });

export const messageResultSchema = t.variant('status', {
  ACCEPTED: messageAcceptedSchema,
  REJECTED: itemRejectedSchema,
});
export type MessageResult = Infer<typeof messageResultSchema>;

/** A recorded confirmation; an idempotent repeat gets the first one's result again. */
const deliveryRecordedSchema = t.record({
  id,
  status: t.literal('DELIVERED'),
  height: uint,
  transactionIndex: uint,
  deliveryIndex: uint,
});
export const deliveryResultSchema = t.variant('status', {
  DELIVERED: deliveryRecordedSchema,
  REJECTED: itemRejectedSchema,
});
export type DeliveryResult = Infer<typeof deliveryResultSchema>;

/** The whole transaction was refused; it changed nothing (not even its nonce was recorded). */
const transactionRejectedSchema = t.record({ status: t.literal('REJECTED'), reason, detail });

const publishExecutedV1Fields = {
  status: t.literal('OK'),
  type: t.literal('publish'),
  sender: organizationId,
  /** Root of this batch's message tree (what the sender signed) and its size: proofs check both. */
  messagesRoot: t.bytes({ length: 32 }),
  messageCount: uint,
  /** One per message, in batch order. */
  messages: t.array(messageResultSchema, { maxItems: transactionLimits.messagesPerPublishMax }),
};

/** A publish result written before results were batched (format 1): its whole bytes are its leaf. */
const publishExecutedV1Schema = t.record(publishExecutedV1Fields);

/**
 * A publish result in format 2 (`resultLeaf`): it repeats the batch header the sender signed, so
 * that its leaf — this map with `messages` replaced by the root of the per-message results — proves
 * one message with a path of log2(n) hashes: the signed header, the message's path under
 * `messagesRoot` and its outcome's path under the `messages` root (DESIGN §11).
 */
/** What a format-2 publish result adds: the signed batch header, and where the transaction is. */
const publishHeaderFields = {
  /** The transaction's own index in its block: a path alone cannot pin it (RFC 9162 paths fit several tree sizes). */
  transactionIndex: uint,
  signerKey: t.bytes({ length: 32 }),
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: uint,
  /** Present when the batch carried payloads inline: part of what the sender signed. */
  payloadsHash: t.optional(t.bytes({ length: 32 })),
  signature: t.bytes({ length: 64 }),
};

const publishExecutedV2Schema = t.record({
  format: t.literal(BATCHED_RESULT_FORMAT),
  ...publishExecutedV1Fields,
  ...publishHeaderFields,
});
/**
 * The leaf of a format-2 publish result (`resultLeaf`): the result with its `messages` replaced by the
 * Merkle root of their canonical encodings. A compact message proof carries exactly these bytes.
 */
export const publishResultLeafSchema = t.record({
  format: t.literal(BATCHED_RESULT_FORMAT),
  ...publishExecutedV1Fields,
  ...publishHeaderFields,
  messages: t.bytes({ length: 32 }),
});
export type PublishResultLeaf = Infer<typeof publishResultLeafSchema>;
export type PublishResultV1 = Infer<typeof publishExecutedV1Schema>;
export type PublishResultV2 = Infer<typeof publishExecutedV2Schema>;

/** A result of either format, told apart by the presence of `format`. */
function eitherFormat<V1, V2>(v1: Schema<V1>, v2: Schema<V2>): Schema<V1 | V2> {
  return {
    description: `${v2.description} (format 2) or its format 1`,
    parse(value, path) {
      const formatted = typeof value === 'object' && value !== null && Object.hasOwn(value, 'format');
      return formatted ? v2.parse(value, path) : v1.parse(value, path);
    },
  };
}

const publishExecutedSchema = eitherFormat(publishExecutedV1Schema, publishExecutedV2Schema);

const confirmExecutedV1Fields = {
  status: t.literal('OK'),
  type: t.literal('confirmDelivery'),
  recipient: organizationId,
  /** One per confirmation, in transaction order. */
  deliveries: t.array(deliveryResultSchema, { maxItems: transactionLimits.deliveriesPerConfirmMax }),
};
/** The answer to a format-1 confirmation: its whole bytes are its leaf. */
const confirmExecutedV1Schema = t.record(confirmExecutedV1Fields);

const confirmHeaderFields = {
  transactionIndex: uint,
  signerKey: t.bytes({ length: 32 }),
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: uint,
  /** Root of the deliveries' leaves the recipient signed (deliveryLeaf), and their number. */
  deliveriesRoot: t.bytes({ length: 32 }),
  deliveryCount: uint,
  signature: t.bytes({ length: 64 }),
};

/**
 * The answer to a format-2 confirmation: it repeats the header the recipient signed, so that its
 * leaf (this map with `deliveries` replaced by the root of the per-delivery outcomes) proves one
 * delivery with paths of log2(n) hashes.
 */
const confirmExecutedV2Schema = t.record({
  format: t.literal(BATCHED_RESULT_FORMAT),
  ...confirmExecutedV1Fields,
  ...confirmHeaderFields,
});

/** The leaf of a format-2 confirmation's result; a compact delivery proof carries exactly these bytes. */
export const confirmResultLeafSchema = t.record({
  format: t.literal(BATCHED_RESULT_FORMAT),
  ...confirmExecutedV1Fields,
  ...confirmHeaderFields,
  deliveries: t.bytes({ length: 32 }),
});
export type ConfirmResultLeaf = Infer<typeof confirmResultLeafSchema>;
export type ConfirmDeliveryResultV1 = Infer<typeof confirmExecutedV1Schema>;
export type ConfirmDeliveryResultV2 = Infer<typeof confirmExecutedV2Schema>;

const confirmExecutedSchema = eitherFormat(confirmExecutedV1Schema, confirmExecutedV2Schema);

/**
 * A job step the contract recorded (DESIGN §8). An identical repeat of a recorded step gets this
 * result again, byte for byte, naming the FIRST recording: the state that step moved the job to and
 * where it is, so a proof of a step is the evidence at that position.
 */
export const jobExecutedSchema = t.record({
  status: t.literal('OK'),
  type: t.literal('job'),
  kind: t.oneOf('jobRequest', 'jobDecision', 'jobResult'),
  /** The signing organization: the requester for jobRequest, the owner for the others. */
  organization: organizationId,
  jobId: t.string({ minLength: 8, maxLength: jobLimits.jobIdLengthMax, pattern: jobIdPattern }),
  /** REQUESTED for a request; APPROVED or REJECTED for a decision; COMPLETED or FAILED for a result. */
  state: t.oneOf('REQUESTED', 'APPROVED', 'REJECTED', 'COMPLETED', 'FAILED'),
  /** Where the step was recorded (this transaction, or the first one of an identical repeat). */
  height: uint,
  transactionIndex: uint,
});
export type JobResult = Infer<typeof jobExecutedSchema>;

export const transactionResultSchema = t.variant('status', {
  REJECTED: transactionRejectedSchema,
  OK: t.variant('type', {
    publish: publishExecutedSchema,
    confirmDelivery: confirmExecutedSchema,
    escrow: escrowExecutedSchema,
    job: jobExecutedSchema,
  }),
});
export type TransactionResult = Infer<typeof transactionResultSchema>;
export type PublishResult = PublishResultV1 | PublishResultV2;
export type ConfirmDeliveryResult = ConfirmDeliveryResultV1 | ConfirmDeliveryResultV2;
export { escrowAuditSummarySchema, escrowExecutedSchema, escrowItemResultSchema } from './escrow/results.js';
export type { EscrowAuditSummary, EscrowItemResult, EscrowResult } from './escrow/results.js';

/** Decodes a transaction result strictly (for clients and tests). */
export function decodeTransactionResult(bytes: Uint8Array): TransactionResult {
  return decodeWith(transactionResultSchema, bytes, { maxBytes: 4 * transactionLimits.transactionBytesMax });
}

interface EventBase {
  readonly partitionId: string;
  /** Height of the block whose execution produced the event. */
  readonly height: number;
  readonly id: string;
  readonly offset: number;
  readonly sender: string;
}

/** A message was recorded at `offset`; recipients' connectors may now fetch it. */
export interface MessageAcceptedEvent extends EventBase {
  readonly type: 'MessageAccepted';
  readonly topic: string;
  readonly partition: number;
  readonly recipients: readonly string[];
  readonly transactionIndex: number;
  readonly messageIndex: number;
  readonly deadline: number;
}

/** `recipient` confirmed it stored the message with the published content root. */
export interface DeliveryConfirmedEvent extends EventBase {
  readonly type: 'DeliveryConfirmed';
  readonly recipient: string;
  readonly transactionIndex: number;
  readonly deliveryIndex: number;
}

/** Every recipient confirmed. The sender may drop the payload after `payloadRetainUntil`. */
export interface MessageCompletedEvent extends EventBase {
  readonly type: 'MessageCompleted';
  readonly transactionIndex: number;
  readonly payloadRetainUntil: number;
}

/**
 * The block's time passed the message's deadline before every recipient confirmed. Produced at the
 * start of the block, before its transactions; the block header's timestamp is the evidence.
 */
export interface MessageExpiredEvent extends EventBase {
  readonly type: 'MessageExpired';
  readonly deadline: number;
  /** Recipients that had not confirmed, in the message's recipient order. */
  readonly undelivered: readonly string[];
  readonly payloadRetainUntil: number;
}

export type SdtEvent =
  MessageAcceptedEvent | DeliveryConfirmedEvent | MessageCompletedEvent | MessageExpiredEvent;
