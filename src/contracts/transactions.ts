/**
 * The SDT contract's transactions: strict schemas, the exact bytes each one signs, and encoders for
 * connectors (and tests). Every transaction is canonical CBOR signed by one of its organization's
 * registered connector keys over a domain-separated hash of its network (`SigningDomain`, so it is
 * worth nothing in another network where the organization uses the same key), and carries a nonce
 * and a timestamp so that a captured transaction cannot be replayed (DESIGN §4).
 *
 * A `publish` carries a producer's BATCH. The connector signs once, over the Merkle root of the
 * batch's message leaves, so replicas check one signature per batch; each message is still its own
 * leaf, with its own offset and its own inclusion proof under that root (DESIGN §4, "Speed").
 */
import { decodeWith, encodeCanonical, encodeWith, t } from '../codec/index.js';
import type { CborValue, Infer, Schema } from '../codec/index.js';
import { MerkleTree, sha256 } from '../crypto/index.js';
import type { InclusionProof, Signer } from '../crypto/index.js';
import { assert } from '../errors.js';
import { jobTransactionSchema } from './datashare/transactions.js';
import type { JobTransaction } from './datashare/transactions.js';
import { escrowMetadataSchema, escrowMetadataValue, escrowTransactionSchema } from './escrow/transactions.js';
import type { EscrowTransaction } from './escrow/transactions.js';
import { nonceBytes, transactionLimits } from './limits.js';
import { BATCHED_RESULT_FORMAT } from '../ledger/result-leaf.js';

/** Signing domain types (`ledgerbus/v1/<network>/<type>`). */
export const PUBLISH_SIGNING_TYPE = 'sdt-publish';
export const CONFIRM_DELIVERY_SIGNING_TYPE = 'sdt-confirm-delivery';

export { nonceBytes, transactionLimits } from './limits.js';

/**
 * A transaction is accepted only if its timestamp is within this distance of the block's time.
 * Nonces are remembered long enough (two windows) that a replay is caught either by its nonce or by
 * its timestamp. Every replica must use the same value: it is part of the contract.
 */
export const transactionClockWindowMs = 5 * 60 * 1000;

const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const messageId = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });
const hash32 = t.bytes({ length: 32 });
const publicKey = t.bytes({ length: 32 });
const signature = t.bytes({ length: 64 });
const nonce = t.bytes({ length: nonceBytes });

function unique(items: readonly string[]): string | undefined {
  return new Set(items).size === items.length ? undefined : 'duplicate entries';
}

/** What a producer states about one message; everything here is on the ledger, the payload is not. */
const messageMetadataFields = {
  id: messageId,
  topic: t.string({
    minLength: 1,
    maxLength: transactionLimits.topicLengthMax,
    pattern: /^[a-zA-Z0-9._-]+$/,
  }),
  partition: t.uint({ max: transactionLimits.partitionMax }),
  /** Partitioning key; null for keyless messages. */
  key: t.nullable(t.bytes({ maxLength: transactionLimits.keyBytesMax })),
  recipients: t.refine(
    t.array(organizationId, { minItems: 1, maxItems: transactionLimits.recipientsMax }),
    unique,
  ),
  /** Size of the (encrypted) payload in bytes, checked against the topic's `messageBytesMax`. */
  size: t.uint(),
  /** Merkle root of the payload's chunk hashes; recipients confirm delivery against it. */
  contentRoot: hash32,
  contentType: t.string({ maxLength: transactionLimits.contentTypeLengthMax }),
  headers: t.dict(t.bytes({ maxLength: transactionLimits.headerValueBytesMax }), {
    maxEntries: transactionLimits.headerEntriesMax,
    key: t.string({ minLength: 1, maxLength: transactionLimits.headerNameLengthMax }),
  }),
  /** Present exactly on an escrow topic (DESIGN §7): chunk placement, key shares, master table. */
  escrow: t.optional(escrowMetadataSchema),
};
export const messageMetadataSchema = t.record(messageMetadataFields);
export type MessageMetadata = Infer<typeof messageMetadataSchema>;

/**
 * A message's leaf in its batch tree (`messageLeaf`) decoded: its metadata and its sender. A compact
 * proof carries the leaf bytes; this schema reads them back, strictly, so one leaf has one meaning.
 */
export const messageLeafSchema = t.record({ ...messageMetadataFields, sender: organizationId });
export type MessageLeaf = Infer<typeof messageLeafSchema>;

/**
 * The result format a transaction asks for (`src/ledger/result-leaf.ts`): absent, format 1, which
 * every transaction written before batched results has; 2, a result whose per-item outcomes are
 * committed by their Merkle root, so one item is proven in O(log n). The contract answers in the
 * format asked, so re-executing an old block gives its results again byte for byte.
 */
const resultFormat = t.optional(t.literal(BATCHED_RESULT_FORMAT));

/**
 * A small payload carried by its own publish (format 2 only), sealed exactly as it would be served:
 * the envelope header and the ciphertext. The recipient decrypts it from the page it polled instead
 * of fetching it from the sender's connector; it is checked as a served payload is (against the
 * message's `contentRoot` and size), and it is signed with the batch (`payloadsHash`), so no node
 * can change it in transit. It is not part of the message's leaf: proofs do not carry it.
 */
export const inlinePayloadSchema = t.record({
  header: t.bytes({ maxLength: transactionLimits.inlineHeaderBytesMax }),
  ciphertext: t.bytes({ maxLength: transactionLimits.inlineCiphertextBytesMax }),
});
export type InlinePayload = Infer<typeof inlinePayloadSchema>;

const publishSchema = t.record({
  type: t.literal('publish'),
  format: resultFormat,
  sender: organizationId,
  /** The connector key that signed; must be registered for `sender`. */
  signerKey: publicKey,
  nonce,
  /** Sender's clock, ms since the epoch. */
  timestamp: t.uint(),
  messages: t.array(messageMetadataSchema, {
    minItems: 1,
    maxItems: transactionLimits.messagesPerPublishMax,
  }),
  /** One per message, in batch order, where present: its sealed payload, or null (it is fetched). */
  payloads: t.optional(
    t.array(t.nullable(inlinePayloadSchema), { maxItems: transactionLimits.messagesPerPublishMax }),
  ),
  signature,
});
export type PublishTransaction = Infer<typeof publishSchema>;

const deliverySchema = t.record({ id: messageId, contentRoot: hash32 });

const confirmDeliverySchema = t.record({
  type: t.literal('confirmDelivery'),
  /** Format 2 also signs the deliveries by their Merkle root (confirmBatchSigningPayload), not as a list. */
  format: resultFormat,
  recipient: organizationId,
  signerKey: publicKey,
  nonce,
  timestamp: t.uint(),
  deliveries: t.array(deliverySchema, {
    minItems: 1,
    maxItems: transactionLimits.deliveriesPerConfirmMax,
  }),
  signature,
});
export type ConfirmDeliveryTransaction = Infer<typeof confirmDeliverySchema>;

/**
 * Every transaction a partition executes: the SDT's publish and confirmDelivery, the escrow
 * contract's actions (DESIGN §7) and the job contract's steps (DESIGN §8), which share the
 * partition's nonces and its ordering.
 */
export type SdtTransaction =
  PublishTransaction | ConfirmDeliveryTransaction | EscrowTransaction | JobTransaction;
export const transactionSchema: Schema<SdtTransaction> = t.variant('type', {
  publish: publishSchema,
  confirmDelivery: confirmDeliverySchema,
  escrow: escrowTransactionSchema,
  job: jobTransactionSchema,
});

/**
 * Decodes a partition transaction (SDT, escrow or job) from untrusted bytes. Throws LedgerbusError (Oversize,
 * MalformedEncoding or SchemaMismatch) on anything that is not exactly one valid transaction.
 */
export function decodeTransaction(bytes: Uint8Array): SdtTransaction {
  return decodeWith(transactionSchema, bytes, { maxBytes: transactionLimits.transactionBytesMax });
}

/**
 * The leaf of a message in its batch's Merkle tree: canonical CBOR of its metadata plus the sender.
 * The batch's nonce and timestamp are NOT in it, so a producer's retry of a message in a new batch
 * has the same leaf, which is how the contract tells a retry from a conflicting reuse of an id.
 */
export function messageLeaf(sender: string, message: MessageMetadata): Uint8Array {
  return encodeCanonical({
    id: message.id,
    topic: message.topic,
    partition: message.partition,
    key: message.key,
    sender,
    recipients: [...message.recipients],
    size: message.size,
    contentRoot: message.contentRoot,
    contentType: message.contentType,
    headers: { ...message.headers },
    // Only when present, so that every leaf of a standard topic stays byte-identical to before.
    // escrowMetadataValue builds the map from numbers, strings, bytes and arrays of them only.
    ...(message.escrow === undefined ? {} : { escrow: escrowMetadataValue(message.escrow) as CborValue }),
  });
}

/** The part of a publish that its signature covers: enough, with a leaf and a proof, to verify offline. */
export interface PublishBatchHeader {
  readonly sender: string;
  readonly signerKey: Uint8Array;
  readonly nonce: Uint8Array;
  readonly timestamp: number;
  /** merkleRoot of the messages' leaves, in batch order. */
  readonly messagesRoot: Uint8Array;
  /** Number of messages: the tree size every inclusion proof must claim. */
  readonly messageCount: number;
  /** payloadsHash of the batch's inline payloads; absent when it carries none. */
  readonly payloadsHash?: Uint8Array | undefined;
}

/**
 * What a batch's signature says of its inline payloads: the SHA-256 of their canonical encoding (the
 * whole list, nulls included). A digest, not a tree: nothing proves one payload on its own, the
 * recipient reads them all from the transaction it already holds.
 */
export function payloadsHash(payloads: readonly (InlinePayload | null)[]): Uint8Array {
  return sha256(
    encodeCanonical(
      payloads.map((payload) =>
        payload === null ? null : { header: payload.header, ciphertext: payload.ciphertext },
      ),
    ),
  );
}

/** The bytes a publish's signature is over (in the PUBLISH_SIGNING_TYPE domain). */
export function publishSigningPayload(header: PublishBatchHeader): Uint8Array {
  return encodeCanonical({
    type: 'publish',
    sender: header.sender,
    signerKey: header.signerKey,
    nonce: header.nonce,
    timestamp: header.timestamp,
    messagesRoot: header.messagesRoot,
    messageCount: header.messageCount,
    // Only when present, so that a batch without inline payloads signs exactly what it always did.
    ...(header.payloadsHash === undefined ? {} : { payloadsHash: header.payloadsHash }),
  });
}

/** The signed batch header of a decoded publish, with its Merkle tree (for proofs). */
export function publishBatchHeader(transaction: Omit<PublishTransaction, 'signature'>): {
  header: PublishBatchHeader;
  leaves: Uint8Array[];
  tree: MerkleTree;
} {
  const leaves = transaction.messages.map((message) => messageLeaf(transaction.sender, message));
  const tree = new MerkleTree(leaves);
  return {
    header: {
      sender: transaction.sender,
      signerKey: transaction.signerKey,
      nonce: transaction.nonce,
      timestamp: transaction.timestamp,
      messagesRoot: tree.root,
      messageCount: leaves.length,
      ...(transaction.payloads === undefined ? {} : { payloadsHash: payloadsHash(transaction.payloads) }),
    },
    leaves,
    tree,
  };
}

/** A delivery's leaf in its confirmation's tree: what the recipient states about one message. */
export function deliveryLeaf(delivery: {
  readonly id: string;
  readonly contentRoot: Uint8Array;
}): Uint8Array {
  return encodeCanonical({ id: delivery.id, contentRoot: delivery.contentRoot });
}

/** What a format-2 confirmation's signature covers: with a leaf and a path, enough to verify offline. */
export interface ConfirmBatchHeader {
  readonly recipient: string;
  readonly signerKey: Uint8Array;
  readonly nonce: Uint8Array;
  readonly timestamp: number;
  /** merkleRoot of the deliveries' leaves (deliveryLeaf), in transaction order. */
  readonly deliveriesRoot: Uint8Array;
  readonly deliveryCount: number;
}

/** The bytes a format-2 confirmDelivery's signature is over (in the CONFIRM_DELIVERY_SIGNING_TYPE domain). */
export function confirmBatchSigningPayload(header: ConfirmBatchHeader): Uint8Array {
  // `format` and the root make these bytes differ from every format-1 payload of the same domain.
  return encodeCanonical({
    type: 'confirmDelivery',
    format: BATCHED_RESULT_FORMAT,
    recipient: header.recipient,
    signerKey: header.signerKey,
    nonce: header.nonce,
    timestamp: header.timestamp,
    deliveriesRoot: header.deliveriesRoot,
    deliveryCount: header.deliveryCount,
  });
}

/** The signed header of a format-2 confirmation, with its deliveries' tree (for proofs). */
export function confirmBatchHeader(transaction: Omit<ConfirmDeliveryTransaction, 'signature'>): {
  header: ConfirmBatchHeader;
  leaves: Uint8Array[];
  tree: MerkleTree;
} {
  const leaves = transaction.deliveries.map(deliveryLeaf);
  const tree = new MerkleTree(leaves);
  return {
    header: {
      recipient: transaction.recipient,
      signerKey: transaction.signerKey,
      nonce: transaction.nonce,
      timestamp: transaction.timestamp,
      deliveriesRoot: tree.root,
      deliveryCount: leaves.length,
    },
    leaves,
    tree,
  };
}

/** The bytes a confirmation's signature is over, in its format. */
export function confirmSigningPayloadOf(
  transaction: Omit<ConfirmDeliveryTransaction, 'signature'>,
): Uint8Array {
  return transaction.format === BATCHED_RESULT_FORMAT
    ? confirmBatchSigningPayload(confirmBatchHeader(transaction).header)
    : confirmDeliverySigningPayload(transaction);
}

/** The bytes a format-1 confirmDelivery's signature is over (in the CONFIRM_DELIVERY_SIGNING_TYPE domain). */
export function confirmDeliverySigningPayload(
  transaction: Omit<ConfirmDeliveryTransaction, 'signature'>,
): Uint8Array {
  return encodeCanonical({
    type: 'confirmDelivery',
    recipient: transaction.recipient,
    signerKey: transaction.signerKey,
    nonce: transaction.nonce,
    timestamp: transaction.timestamp,
    deliveries: transaction.deliveries.map((delivery) => ({
      id: delivery.id,
      contentRoot: delivery.contentRoot,
    })),
  });
}

/**
 * Encodes and signs a producer batch with `signer` (a connector key registered for `sender`, bound to
 * the network the batch is for). Throws LedgerbusError(SchemaMismatch) naming the field if the batch
 * would not pass the contract's schema.
 */
export function encodePublish(
  batch: {
    sender: string;
    nonce: Uint8Array;
    timestamp: number;
    messages: readonly MessageMetadata[];
    /** One per message where given (null: fetched from the sender); omitted when none is inline. */
    payloads?: readonly (InlinePayload | null)[];
  },
  signer: Signer,
): Uint8Array {
  const payloads =
    batch.payloads === undefined || batch.payloads.every((payload) => payload === null)
      ? undefined
      : [...batch.payloads];
  const unsigned = {
    type: 'publish' as const,
    format: BATCHED_RESULT_FORMAT,
    sender: batch.sender,
    signerKey: signer.publicKey,
    nonce: batch.nonce,
    timestamp: batch.timestamp,
    messages: batch.messages,
    ...(payloads === undefined ? {} : { payloads }),
  };
  // The same header the contract rebuilds from the transaction, so both sign and check one thing.
  const { header } = publishBatchHeader(unsigned);
  return encodeWith(transactionSchema, {
    ...unsigned,
    signature: signer.sign(PUBLISH_SIGNING_TYPE, publishSigningPayload(header)),
  });
}

/**
 * Encodes and signs a delivery confirmation with `signer` (a connector key registered for
 * `recipient`, bound to the network the confirmation is for).
 */
export function encodeConfirmDelivery(
  confirmation: {
    recipient: string;
    nonce: Uint8Array;
    timestamp: number;
    deliveries: readonly { id: string; contentRoot: Uint8Array }[];
  },
  signer: Signer,
): Uint8Array {
  const unsigned = {
    type: 'confirmDelivery' as const,
    format: BATCHED_RESULT_FORMAT,
    recipient: confirmation.recipient,
    signerKey: signer.publicKey,
    nonce: confirmation.nonce,
    timestamp: confirmation.timestamp,
    deliveries: confirmation.deliveries,
  };
  return encodeWith(transactionSchema, {
    ...unsigned,
    signature: signer.sign(CONFIRM_DELIVERY_SIGNING_TYPE, confirmSigningPayloadOf(unsigned)),
  });
}

/**
 * Everything needed to prove, offline, that message `index` of a committed publish transaction was
 * signed by its sender: the signed batch header and signature, the message's leaf, and the leaf's
 * inclusion proof under `header.messagesRoot` (whose tree size is `header.messageCount`). The node
 * adds the block proof (header, certificate, transaction inclusion) around it. `bytes` must be a
 * publish transaction the contract accepted; anything else is a caller bug and throws.
 */
export function publishedMessageProof(
  bytes: Uint8Array,
  index: number,
): {
  header: PublishBatchHeader;
  signature: Uint8Array;
  leaf: Uint8Array;
  proof: InclusionProof;
} {
  const transaction = decodeTransaction(bytes);
  assert(transaction.type === 'publish', 'not a publish transaction');
  const { header, leaves, tree } = publishBatchHeader(transaction);
  assert(index >= 0 && index < leaves.length, `message index ${index} outside the batch`);
  return {
    header,
    signature: transaction.signature,
    leaf: leaves[index] as Uint8Array,
    proof: tree.proof(index),
  };
}
