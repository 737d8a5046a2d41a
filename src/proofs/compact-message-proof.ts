/**
 * The acceptance proof of version 2: O(log n) in the batch and in the block (DESIGN §11).
 *
 * It carries the certified header, the leaf of the publish's result (format 2, `resultLeaf`: the
 * batch header the sender signed, the root of the messages' metadata and the root of their
 * outcomes) with its path under the header's results root, then the message's own leaf with its path
 * under the signed messages root and its outcome with its path under the outcomes root. No other
 * message of the batch, and no other transaction of the block, is in it: a recipient's proof shows
 * only hashes of what is not its own.
 */
import { decodeWith, t } from '../codec/index.js';
import type { CborValue, Infer } from '../codec/index.js';
import { MerkleTree, inclusionProofSchema } from '../crypto/index.js';
import { messageResultSchema, publishResultLeafSchema } from '../contracts/results.js';
import type { PublishResultLeaf } from '../contracts/results.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import {
  PUBLISH_SIGNING_TYPE,
  decodeTransaction,
  messageLeaf,
  messageLeafSchema,
  publishSigningPayload,
  transactionLimits,
} from '../contracts/transactions.js';
import type { MessageLeaf, PublishTransaction } from '../contracts/transactions.js';
import { batchedResult } from '../ledger/result-leaf.js';
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

/** The `version` of a compact acceptance proof (version 1 has no field: `{ block, messageIndex }`). */
export const MESSAGE_PROOF_VERSION = 2;

export const messageProofSchema = t.record({
  version: t.literal(MESSAGE_PROOF_VERSION),
  ...certifiedHeaderFields,
  /** The publish result's leaf (`publishResultLeafSchema` bytes). */
  batch: t.bytes({ maxLength: 64 * 1024 }),
  /** Path of `batch` under header.resultsRoot; its leafIndex is the transaction's index. */
  batchProof: inclusionProofSchema,
  /** The message's leaf (`messageLeaf`: its metadata and sender). */
  message: t.bytes({ maxLength: transactionLimits.transactionBytesMax }),
  /** Path of `message` under the batch's messagesRoot; its leafIndex is the message's index. */
  messageProof: inclusionProofSchema,
  /** The contract's outcome for the message (canonical `messageResultSchema`). */
  outcome: t.bytes({ maxLength: 4096 }),
  /** Path of `outcome` under the batch's outcomes root (`batch.messages`), at the same index. */
  outcomeProof: inclusionProofSchema,
});
export type MessageProof = Infer<typeof messageProofSchema>;

/** Verifies a compact acceptance proof; returns what it proves or throws a LedgerbusError with the reason. */
export function verifyMessageProof(proof: MessageProof, trust: ProofTrust): AcceptedMessage {
  const { header, batchProof, messageProof, outcomeProof } = proof;
  verifyCertifiedResult(proof, trust, 'batch');
  const batch: PublishResultLeaf = strictly('batch', () => decodeWith(publishResultLeafSchema, proof.batch));
  checkSignedBy(trust, batch.sender, batch, PUBLISH_SIGNING_TYPE, publishSigningPayload(batch), 'publish');
  checkItemAndOutcome(
    { root: batch.messagesRoot, count: batch.messageCount, outcomesRoot: batch.messages },
    { bytes: proof.message, proof: messageProof },
    { bytes: proof.outcome, proof: outcomeProof },
    'message',
  );
  const leaf: MessageLeaf = strictly('message', () => decodeWith(messageLeafSchema, proof.message));
  if (leaf.sender !== batch.sender) throw badProof('the message names another sender than its batch');
  const outcome = strictly('outcome', () => decodeWith(messageResultSchema, proof.outcome));
  if (outcome.status !== 'ACCEPTED' || outcome.id !== leaf.id) {
    throw badProof(`the contract did not accept message ${leaf.id} in this block`);
  }
  if (
    outcome.height !== header.height ||
    batch.transactionIndex !== batchProof.leafIndex ||
    outcome.transactionIndex !== batch.transactionIndex ||
    outcome.messageIndex !== messageProof.leafIndex
  ) {
    throw badProof(`message ${leaf.id} was first accepted at height ${outcome.height}: prove that block`);
  }
  const { sender, ...metadata } = leaf;
  return {
    id: leaf.id,
    topic: leaf.topic,
    partition: leaf.partition,
    partitionId: header.partitionId,
    offset: outcome.offset,
    sender,
    signerKey: batch.signerKey,
    recipients: leaf.recipients,
    size: leaf.size,
    contentRoot: leaf.contentRoot,
    contentType: leaf.contentType,
    key: leaf.key,
    height: header.height,
    acceptedAt: header.timestamp,
    metadata,
  };
}

/**
 * Compact proofs of messages `messageIndexes` of a publish, cut from the block evidence of its
 * transaction (which the caller has verified, e.g. with verifyAcceptances). Undefined when the block's result is in format 1
 * (written before results were batched): such a message keeps its version-1 proof.
 */
export function compactMessageProofs(
  evidence: BlockEvidence,
  messageIndexes: readonly number[],
): MessageProof[] | undefined {
  const result = batchedResult(evidence.result);
  const outcomes = result?.lists.get('messages');
  if (result === undefined || outcomes === undefined) return undefined;
  const transaction = decodeTransaction(
    decodeClientRequest(evidence.transaction, messageLimits.requestBytesMax).operation,
  );
  if (transaction.type !== 'publish') throw badProof('the proven transaction is not a publish');
  const publish: PublishTransaction = transaction;
  const leaves = publish.messages.map((message) => messageLeaf(publish.sender, message));
  if (leaves.length !== outcomes.items.length) throw badProof('the publish and its result differ in length');
  const messages = new MerkleTree(leaves);
  return messageIndexes.map((index) => {
    if (!(index >= 0 && index < leaves.length)) throw badProof(`message index ${index} outside the batch`);
    return {
      version: MESSAGE_PROOF_VERSION,
      header: evidence.header,
      signatures: evidence.signatures,
      batch: result.leaf,
      batchProof: evidence.resultProof,
      message: leaves[index] as Uint8Array,
      messageProof: messages.proof(index),
      outcome: outcomes.items[index] as Uint8Array,
      outcomeProof: outcomes.tree.proof(index),
    };
  });
}

export function messageProofToCbor(proof: MessageProof): CborValue {
  return {
    version: proof.version,
    ...certifiedHeaderToCbor(proof),
    message: proof.message,
    messageProof: inclusionProofToCbor(proof.messageProof),
    outcome: proof.outcome,
    outcomeProof: inclusionProofToCbor(proof.outcomeProof),
  };
}
