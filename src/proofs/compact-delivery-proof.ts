/**
 * The delivery evidence of version 2: that the contract recorded one message as delivered to one
 * recipient, in O(log n) of the confirmation and of the block. It carries the certified header, the
 * leaf of the format-2 confirmation's result (the header the recipient signed, the root of its
 * deliveries and the root of their outcomes) with its path under the results root, the delivery's
 * leaf (id and content root) with its path under the signed deliveries root, and its outcome with
 * its path under the outcomes root.
 */
import { decodeWith, t } from '../codec/index.js';
import type { CborValue, Infer } from '../codec/index.js';
import { MerkleTree, bytesEqual, inclusionProofSchema } from '../crypto/index.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { confirmResultLeafSchema, deliveryResultSchema } from '../contracts/results.js';
import type { ConfirmResultLeaf } from '../contracts/results.js';
import {
  CONFIRM_DELIVERY_SIGNING_TYPE,
  confirmBatchSigningPayload,
  decodeTransaction,
  deliveryLeaf,
  transactionLimits,
} from '../contracts/transactions.js';
import { batchedResult } from '../ledger/result-leaf.js';
import { MESSAGE_PROOF_VERSION } from './compact-message-proof.js';
import type { BlockEvidence } from './evidence.js';
import {
  certifiedHeaderFields,
  checkItemAndOutcome,
  checkSignedBy,
  certifiedHeaderToCbor,
  inclusionProofToCbor,
  strictly,
  verifyCertifiedResult,
} from './compact-parts.js';
import { badProof } from './trust.js';
import type { AcceptedMessage, ProofTrust } from './trust.js';

/** What a valid delivery evidence establishes. */
export interface VerifiedDelivery {
  readonly recipient: string;
  readonly height: number;
  readonly confirmedAt: number;
}

const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const deliveryLeafSchema = t.record({
  id: t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax }),
  contentRoot: t.bytes({ length: 32 }),
});

export const deliveryProofSchema = t.record({
  version: t.literal(MESSAGE_PROOF_VERSION),
  recipient: organizationId,
  ...certifiedHeaderFields,
  /** The confirmation result's leaf (`confirmResultLeafSchema` bytes). */
  batch: t.bytes({ maxLength: 64 * 1024 }),
  /** Path of `batch` under header.resultsRoot; its leafIndex is the transaction's index. */
  batchProof: inclusionProofSchema,
  /** The delivery's leaf (`deliveryLeaf`: the message id and the content root the recipient stored). */
  delivery: t.bytes({ maxLength: 1024 }),
  /** Path of `delivery` under the signed deliveriesRoot; its leafIndex is the delivery's index. */
  deliveryProof: inclusionProofSchema,
  /** The contract's outcome for the delivery (canonical `deliveryResultSchema`). */
  outcome: t.bytes({ maxLength: 4096 }),
  /** Path of `outcome` under the outcomes root (`batch.deliveries`), at the same index. */
  outcomeProof: inclusionProofSchema,
});
export type DeliveryProof = Infer<typeof deliveryProofSchema>;

/** Verifies that `proof` records `message` as delivered to `proof.recipient`. */
export function verifyDeliveryProof(
  message: AcceptedMessage,
  proof: DeliveryProof,
  trust: ProofTrust,
): VerifiedDelivery {
  const { header, batchProof, deliveryProof, outcomeProof } = proof;
  if (header.partitionId !== message.partitionId) {
    throw badProof('the delivery was recorded on another partition than the message');
  }
  verifyCertifiedResult(proof, trust, 'confirmation');
  const batch: ConfirmResultLeaf = strictly('batch', () => decodeWith(confirmResultLeafSchema, proof.batch));
  if (batch.recipient !== proof.recipient) throw badProof('the confirmation is from another organization');
  if (!message.recipients.includes(batch.recipient)) throw badProof(`${batch.recipient} is not a recipient`);
  checkSignedBy(
    trust,
    batch.recipient,
    batch,
    CONFIRM_DELIVERY_SIGNING_TYPE,
    confirmBatchSigningPayload(batch),
    'confirmation',
  );
  checkItemAndOutcome(
    { root: batch.deliveriesRoot, count: batch.deliveryCount, outcomesRoot: batch.deliveries },
    { bytes: proof.delivery, proof: deliveryProof },
    { bytes: proof.outcome, proof: outcomeProof },
    'delivery',
  );
  const delivery = strictly('delivery', () => decodeWith(deliveryLeafSchema, proof.delivery));
  if (delivery.id !== message.id) throw badProof('the confirmation is for another message');
  if (!bytesEqual(delivery.contentRoot, message.contentRoot))
    throw badProof('the confirmed content root differs');
  const outcome = strictly('outcome', () => decodeWith(deliveryResultSchema, proof.outcome));
  if (outcome.status !== 'DELIVERED' || outcome.id !== message.id) {
    throw badProof('the contract did not record this delivery');
  }
  if (
    outcome.height !== header.height ||
    batch.transactionIndex !== batchProof.leafIndex ||
    outcome.transactionIndex !== batch.transactionIndex ||
    outcome.deliveryIndex !== deliveryProof.leafIndex
  ) {
    throw badProof(`the delivery was first recorded at height ${outcome.height}: prove that block`);
  }
  if (header.height < message.height) throw badProof('the delivery precedes the acceptance');
  return { recipient: batch.recipient, height: header.height, confirmedAt: header.timestamp };
}

/**
 * The compact evidence of delivery `deliveryIndex` of the confirmation in `evidence` (whose block the
 * caller has; it is checked when verified). Undefined when the confirmation's result is in format 1.
 */
export function compactDeliveryProof(
  evidence: BlockEvidence,
  deliveryIndex: number,
  recipient: string,
): DeliveryProof | undefined {
  const result = batchedResult(evidence.result);
  const outcomes = result?.lists.get('deliveries');
  if (result === undefined || outcomes === undefined) return undefined;
  const transaction = decodeTransaction(
    decodeClientRequest(evidence.transaction, messageLimits.requestBytesMax).operation,
  );
  if (transaction.type !== 'confirmDelivery')
    throw badProof('the proven transaction is not a confirmDelivery');
  const leaves = transaction.deliveries.map(deliveryLeaf);
  if (leaves.length !== outcomes.items.length)
    throw badProof('the confirmation and its result differ in length');
  if (!(deliveryIndex >= 0 && deliveryIndex < leaves.length)) {
    throw badProof(`delivery index ${deliveryIndex} outside the confirmation`);
  }
  return {
    version: MESSAGE_PROOF_VERSION,
    recipient,
    header: evidence.header,
    signatures: evidence.signatures,
    batch: result.leaf,
    batchProof: evidence.resultProof,
    delivery: leaves[deliveryIndex] as Uint8Array,
    deliveryProof: new MerkleTree(leaves).proof(deliveryIndex),
    outcome: outcomes.items[deliveryIndex] as Uint8Array,
    outcomeProof: outcomes.tree.proof(deliveryIndex),
  };
}

export function deliveryProofToCbor(proof: DeliveryProof): CborValue {
  return {
    version: proof.version,
    recipient: proof.recipient,
    ...certifiedHeaderToCbor(proof),
    delivery: proof.delivery,
    deliveryProof: inclusionProofToCbor(proof.deliveryProof),
    outcome: proof.outcome,
    outcomeProof: inclusionProofToCbor(proof.outcomeProof),
  };
}
