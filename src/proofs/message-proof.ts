/**
 * Proofs about one message, checkable offline against the network's trust bundle:
 *
 * - an ACCEPTANCE proof: the certified block whose publish transaction holds the message (signed by
 *   its sender) and whose result gives it an offset. Version 2 (`compact-message-proof.ts`) carries
 *   only the message's paths, O(log n); version 1 carries the whole transaction and result;
 * - a DELIVERY RECEIPT: the acceptance proof plus, per recipient, the certified block whose
 *   confirmDelivery transaction (signed by that recipient) the contract recorded as DELIVERED with the
 *   message's content root.
 *
 * A block transaction is a PBFT client request whose `operation` is the SDT transaction. Verification
 * re-checks everything the contract's outcome depends on that can be checked without state: the
 * certificates, the inclusion proofs, the signatures of sender and recipient over what they signed,
 * and that the results say what the proof claims. Every signature is checked in the domain of the
 * trust bundle's network, so a proof from another network fails even where both use the same keys.
 */
import {
  bytesEqual,
  decodeWith,
  encodeCanonical,
  fieldPath,
  schemaMismatch,
  t,
  toHex,
} from '../codec/index.js';
import type { CborValue, Infer, Schema } from '../codec/index.js';
import { messageLimits } from '../consensus/pbft/messages.js';
import { decodeClientRequest } from '../consensus/pbft/messages.js';
import {
  CONFIRM_DELIVERY_SIGNING_TYPE,
  PUBLISH_SIGNING_TYPE,
  confirmSigningPayloadOf,
  decodeTransaction,
  publishSigningPayload,
  transactionLimits,
} from '../contracts/transactions.js';
import { publishBatchHeader } from '../contracts/transactions.js';
import type { ConfirmDeliveryTransaction, PublishTransaction } from '../contracts/transactions.js';
import { decodeTransactionResult } from '../contracts/results.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import {
  MESSAGE_PROOF_VERSION,
  compactMessageProofs,
  messageProofSchema,
  messageProofToCbor,
  verifyMessageProof,
} from './compact-message-proof.js';
import type { MessageProof } from './compact-message-proof.js';
import {
  compactDeliveryProof,
  deliveryProofSchema,
  deliveryProofToCbor,
  verifyDeliveryProof,
} from './compact-delivery-proof.js';
import type { DeliveryProof, VerifiedDelivery } from './compact-delivery-proof.js';
import { blockEvidenceSchema, blockEvidenceToCbor, verifyBlockEvidence } from './evidence.js';
import type { BlockEvidence } from './evidence.js';
import { badProof, checkSigner, membershipOf } from './trust.js';
import type { AcceptedMessage, ProofTrust } from './trust.js';

export type { AcceptedMessage, ProofTrust } from './trust.js';
export type { VerifiedDelivery } from './compact-delivery-proof.js';

/** Version 1 of an acceptance proof: the whole publish transaction and result of its block. */
export const acceptanceProofV1Schema = t.record({
  block: blockEvidenceSchema,
  /** Index of the message in its publish batch. */
  messageIndex: t.uint({ max: transactionLimits.messagesPerPublishMax - 1 }),
});
export type AcceptanceProofV1 = Infer<typeof acceptanceProofV1Schema>;

/** An acceptance proof of either version: version 2 is compact (`MessageProof`). */
export type AcceptanceProof = AcceptanceProofV1 | MessageProof;

/** Proof versions this code verifies, in the words of its error message. */
const knownVersions = `1 (no version field) and ${MESSAGE_PROOF_VERSION}`;

function unsupportedVersion(what: string, version: unknown): LedgerbusError {
  return new LedgerbusError(
    ErrorCode.UnsupportedProofVersion,
    `${what} version ${JSON.stringify(version)} is not supported: this ledgerbus verifies versions ${knownVersions}`,
  );
}

function versionOf(value: unknown): unknown {
  return typeof value === 'object' && value !== null && Object.hasOwn(value, 'version')
    ? (value as Record<string, unknown>)['version']
    : undefined;
}

/**
 * A proof part of either version, told apart by `version` (absent: version 1); an unknown version is
 * UNSUPPORTED_PROOF_VERSION.
 */
function eitherVersion<V1, V2>(what: string, v1: Schema<V1>, v2: Schema<V2>): Schema<V1 | V2> {
  return {
    description: what,
    parse(value, path) {
      const version = versionOf(value);
      if (version === undefined) return v1.parse(value, path);
      if (version === MESSAGE_PROOF_VERSION) return v2.parse(value, path);
      throw unsupportedVersion(what, version);
    },
  };
}

export const acceptanceProofSchema: Schema<AcceptanceProof> = eitherVersion(
  'acceptance proof',
  acceptanceProofV1Schema,
  messageProofSchema,
);

export function isCompactProof(proof: AcceptanceProof): proof is MessageProof {
  return 'version' in proof;
}

/**
 * The proof to hand out for message `messageIndex` of the publish in `evidence`: the compact one,
 * unless the block's result predates batched results (then version 1, the only one it supports).
 */
export function acceptanceProofAt(evidence: BlockEvidence, messageIndex: number): AcceptanceProof {
  return compactMessageProofs(evidence, [messageIndex])?.[0] ?? { block: evidence, messageIndex };
}

/**
 * The evidence to hand out that delivery `deliveryIndex` of the confirmation in `evidence` was
 * recorded for `recipient`: compact, unless the confirmation's result is in format 1.
 */
export function deliveryEvidenceAt(
  evidence: BlockEvidence,
  deliveryIndex: number,
  recipient: string,
): DeliveryEvidence {
  return (
    compactDeliveryProof(evidence, deliveryIndex, recipient) ?? { recipient, block: evidence, deliveryIndex }
  );
}

/** Version 1 of delivery evidence: the whole confirmation and its result. */
export const deliveryEvidenceV1Schema = t.record({
  recipient: t.string({ minLength: 1, maxLength: 256 }),
  block: blockEvidenceSchema,
  deliveryIndex: t.uint({ max: transactionLimits.deliveriesPerConfirmMax - 1 }),
});
export type DeliveryEvidenceV1 = Infer<typeof deliveryEvidenceV1Schema>;

/** Delivery evidence of either version: version 2 is compact (`DeliveryProof`). */
export type DeliveryEvidence = DeliveryEvidenceV1 | DeliveryProof;

export const deliveryEvidenceSchema: Schema<DeliveryEvidence> = eitherVersion(
  'delivery evidence',
  deliveryEvidenceV1Schema,
  deliveryProofSchema,
);

function isCompactDelivery(evidence: DeliveryEvidence): evidence is DeliveryProof {
  return 'version' in evidence;
}

/** Whether a receipt of these parts is of version 2: any of them is compact. */
function compactReceipt(acceptance: AcceptanceProof, deliveries: readonly DeliveryEvidence[]): boolean {
  return isCompactProof(acceptance) || deliveries.some(isCompactDelivery);
}

/** A receipt of `acceptance` and `deliveries`, in the version its parts need. */
export function deliveryReceiptOf(
  acceptance: AcceptanceProof,
  deliveries: readonly DeliveryEvidence[],
): DeliveryReceipt {
  return compactReceipt(acceptance, deliveries)
    ? { version: MESSAGE_PROOF_VERSION, acceptance, deliveries }
    : { acceptance, deliveries };
}

const deliveryReceiptFields = {
  acceptance: acceptanceProofSchema,
  deliveries: t.array(deliveryEvidenceSchema, { maxItems: 64 }),
};
const deliveryReceiptV1Schema = t.record(deliveryReceiptFields);
const deliveryReceiptV2Schema = t.refine(
  t.record({ version: t.literal(MESSAGE_PROOF_VERSION), ...deliveryReceiptFields }),
  (receipt) =>
    compactReceipt(receipt.acceptance, receipt.deliveries)
      ? undefined
      : 'a version 2 receipt holds at least one version 2 proof',
);

/**
 * A delivery receipt. Version 2 (`version: 2`) holds compact proofs (the acceptance, the deliveries,
 * or both, as the blocks allow); version 1 (no field) holds only version-1 ones. An unknown version
 * is UNSUPPORTED_PROOF_VERSION.
 */
export const deliveryReceiptSchema: Schema<{
  readonly version?: typeof MESSAGE_PROOF_VERSION;
  readonly acceptance: AcceptanceProof;
  readonly deliveries: readonly DeliveryEvidence[];
}> = {
  description: 'delivery receipt',
  parse(value, path) {
    const version = versionOf(value);
    if (version === undefined) {
      const receipt = deliveryReceiptV1Schema.parse(value, path);
      if (compactReceipt(receipt.acceptance, receipt.deliveries)) {
        throw schemaMismatch(fieldPath(path, 'version'), 'a receipt holding a version 2 proof has version 2');
      }
      return receipt;
    }
    if (version === MESSAGE_PROOF_VERSION) return deliveryReceiptV2Schema.parse(value, path);
    throw unsupportedVersion('receipt', version);
  },
};
export type DeliveryReceipt = Infer<typeof deliveryReceiptSchema>;

/** The SDT transaction inside a block transaction (a PBFT client request). */
function innerTransaction(evidence: BlockEvidence): ReturnType<typeof decodeTransaction> {
  try {
    const request = decodeClientRequest(evidence.transaction, messageLimits.requestBytesMax);
    return decodeTransaction(request.operation);
  } catch (error) {
    if (isLedgerbusError(error)) throw badProof(`the proven transaction does not decode: ${error.message}`);
    throw error;
  }
}

/** Verifies an acceptance proof; returns what it proves or throws a LedgerbusError with the reason. */
export function verifyAcceptance(proof: AcceptanceProof, trust: ProofTrust): AcceptedMessage {
  if (isCompactProof(proof)) return verifyMessageProof(proof, trust);
  return verifyAcceptances(proof.block, [proof.messageIndex], trust)[0] as AcceptedMessage;
}

/**
 * Verifies the acceptance of several messages of ONE block evidence (one producer batch): the
 * certificate, inclusion proofs, the batch decoding and the sender's signature are checked once,
 * then each message against the contract's result. Equivalent to verifyAcceptance on each, without
 * redoing the batch-wide work per message (which made a page of a large batch quadratic).
 */
export function verifyAcceptances(
  block: BlockEvidence,
  messageIndexes: readonly number[],
  trust: ProofTrust,
): AcceptedMessage[] {
  verifyBlockEvidence(block, membershipOf(trust, block.header));
  const transaction = innerTransaction(block);
  if (transaction.type !== 'publish') throw badProof('the proven transaction is not a publish');
  const publish: PublishTransaction = transaction;
  checkSigner(trust, publish.sender, publish.signerKey);
  const { header } = publishBatchHeader(publish);
  if (
    !trust.signing.verify(
      publish.signerKey,
      PUBLISH_SIGNING_TYPE,
      publishSigningPayload(header),
      publish.signature,
    )
  ) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the publish is not signed by ${publish.sender} for network ${trust.signing.network}`,
    );
  }
  const result = decodeTransactionResult(block.result);
  if (result.status !== 'OK' || result.type !== 'publish')
    throw badProof('the contract did not execute this publish');
  return messageIndexes.map((messageIndex) => {
    const message = publish.messages[messageIndex];
    const outcome = result.messages[messageIndex];
    if (message === undefined || outcome === undefined) throw badProof('message index outside the batch');
    if (outcome.status !== 'ACCEPTED' || outcome.id !== message.id) {
      throw badProof(`the contract did not accept message ${message.id} in this block`);
    }
    if (
      outcome.height !== block.header.height ||
      outcome.messageIndex !== messageIndex ||
      outcome.transactionIndex !== block.resultProof.leafIndex ||
      // A format-2 result names its own position, which a path alone does not pin.
      ('transactionIndex' in result && outcome.transactionIndex !== result.transactionIndex)
    ) {
      throw badProof(
        `message ${message.id} was first accepted at height ${outcome.height}: prove that block`,
      );
    }
    return {
      id: message.id,
      topic: message.topic,
      partition: message.partition,
      partitionId: block.header.partitionId,
      offset: outcome.offset,
      sender: publish.sender,
      signerKey: publish.signerKey,
      recipients: message.recipients,
      size: message.size,
      contentRoot: message.contentRoot,
      contentType: message.contentType,
      key: message.key,
      height: block.header.height,
      acceptedAt: block.header.timestamp,
      metadata: message,
    };
  });
}

/** Verifies that `evidence` (either version) records `message` as delivered to `evidence.recipient`. */
export function verifyDelivery(
  message: AcceptedMessage,
  evidence: DeliveryEvidence,
  trust: ProofTrust,
): VerifiedDelivery {
  if (isCompactDelivery(evidence)) return verifyDeliveryProof(message, evidence, trust);
  if (evidence.block.header.partitionId !== message.partitionId) {
    throw badProof('the delivery was recorded on another partition than the message');
  }
  verifyBlockEvidence(evidence.block, membershipOf(trust, evidence.block.header));
  const transaction = innerTransaction(evidence.block);
  if (transaction.type !== 'confirmDelivery')
    throw badProof('the proven transaction is not a confirmDelivery');
  const confirm: ConfirmDeliveryTransaction = transaction;
  if (confirm.recipient !== evidence.recipient)
    throw badProof('the confirmation is from another organization');
  if (!message.recipients.includes(confirm.recipient))
    throw badProof(`${confirm.recipient} is not a recipient`);
  checkSigner(trust, confirm.recipient, confirm.signerKey);
  if (
    !trust.signing.verify(
      confirm.signerKey,
      CONFIRM_DELIVERY_SIGNING_TYPE,
      confirmSigningPayloadOf(confirm),
      confirm.signature,
    )
  ) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the confirmation is not signed by ${confirm.recipient} for network ${trust.signing.network}`,
    );
  }
  const delivery = confirm.deliveries[evidence.deliveryIndex];
  if (delivery === undefined || delivery.id !== message.id)
    throw badProof('the confirmation is for another message');
  if (!bytesEqual(delivery.contentRoot, message.contentRoot))
    throw badProof('the confirmed content root differs');
  const result = decodeTransactionResult(evidence.block.result);
  if (result.status !== 'OK' || result.type !== 'confirmDelivery') {
    throw badProof('the contract did not execute this confirmation');
  }
  const outcome = result.deliveries[evidence.deliveryIndex];
  if (outcome === undefined || outcome.status !== 'DELIVERED' || outcome.id !== message.id) {
    throw badProof('the contract did not record this delivery');
  }
  if (
    outcome.height !== evidence.block.header.height ||
    outcome.transactionIndex !== evidence.block.resultProof.leafIndex ||
    ('transactionIndex' in result && outcome.transactionIndex !== result.transactionIndex)
  ) {
    throw badProof(`the delivery was first recorded at height ${outcome.height}: prove that block`);
  }
  if (evidence.block.header.height < message.height) throw badProof('the delivery precedes the acceptance');
  return {
    recipient: confirm.recipient,
    height: outcome.height,
    confirmedAt: evidence.block.header.timestamp,
  };
}

export function verifyDeliveryReceipt(
  receipt: DeliveryReceipt,
  trust: ProofTrust,
): { message: AcceptedMessage; deliveries: VerifiedDelivery[] } {
  const message = verifyAcceptance(receipt.acceptance, trust);
  const seen = new Set<string>();
  const deliveries = receipt.deliveries.map((evidence) => {
    if (seen.has(evidence.recipient)) throw badProof(`two deliveries for ${evidence.recipient}`);
    seen.add(evidence.recipient);
    return verifyDelivery(message, evidence, trust);
  });
  return { message, deliveries };
}

export function acceptanceProofToCbor(proof: AcceptanceProof): CborValue {
  if (isCompactProof(proof)) return messageProofToCbor(proof);
  return { block: blockEvidenceToCbor(proof.block), messageIndex: proof.messageIndex };
}

export function deliveryEvidenceToCbor(evidence: DeliveryEvidence): CborValue {
  if (isCompactDelivery(evidence)) return deliveryProofToCbor(evidence);
  return {
    recipient: evidence.recipient,
    block: blockEvidenceToCbor(evidence.block),
    deliveryIndex: evidence.deliveryIndex,
  };
}

export function encodeDeliveryReceipt(receipt: DeliveryReceipt): Uint8Array {
  return encodeCanonical({
    ...(isCompactProof(receipt.acceptance) ? { version: MESSAGE_PROOF_VERSION } : {}),
    acceptance: acceptanceProofToCbor(receipt.acceptance),
    deliveries: receipt.deliveries.map(deliveryEvidenceToCbor),
  });
}

export function decodeDeliveryReceipt(bytes: Uint8Array): DeliveryReceipt {
  return decodeWith(deliveryReceiptSchema, bytes, { maxBytes: 64 * 1024 * 1024 });
}

export function encodeAcceptanceProof(proof: AcceptanceProof): Uint8Array {
  return encodeCanonical(acceptanceProofToCbor(proof));
}

export function decodeAcceptanceProof(bytes: Uint8Array): AcceptanceProof {
  return decodeWith(acceptanceProofSchema, bytes, { maxBytes: 16 * 1024 * 1024 });
}

/** What a delivery-receipt bundle states about its message; `ledgerbus verify` recomputes it from the proof. */
export interface ReceiptSummary {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly contentRoot: string;
  readonly size: number;
  readonly height: number;
}

/** The summary a receipt bundle carries, in a fixed field order (bundles are compared as JSON). */
export function receiptSummary(message: AcceptedMessage): ReceiptSummary {
  return {
    id: message.id,
    topic: message.topic,
    partition: message.partition,
    offset: message.offset,
    sender: message.sender,
    recipients: message.recipients,
    contentRoot: toHex(message.contentRoot),
    size: message.size,
    height: message.height,
  };
}
