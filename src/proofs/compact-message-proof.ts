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
import { MerkleTree, inclusionProofSchema, verifyInclusion } from '../crypto/index.js';
import type { InclusionProof } from '../crypto/index.js';
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
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { blockLimits, verifyHeaderCertificate } from '../ledger/block.js';
import { headerSchema, headerToCbor } from '../ledger/header.js';
import { batchedResult } from '../ledger/result-leaf.js';
import type { BlockEvidence } from './evidence.js';
import { badProof, checkSigner, membershipOf } from './trust.js';
import type { AcceptedMessage, ProofTrust } from './trust.js';

/** The `version` of a compact acceptance proof (version 1 has no field: `{ block, messageIndex }`). */
export const MESSAGE_PROOF_VERSION = 2;

export const messageProofSchema = t.record({
  version: t.literal(MESSAGE_PROOF_VERSION),
  header: headerSchema,
  signatures: t.array(
    t.record({ signer: t.string({ minLength: 1, maxLength: 256 }), signature: t.bytes({ length: 64 }) }),
    { maxItems: blockLimits.signaturesMax },
  ),
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

function strictly<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (isLedgerbusError(error)) throw badProof(`the proof's ${what} does not decode: ${error.message}`);
    throw error;
  }
}

/** Verifies a compact acceptance proof; returns what it proves or throws a LedgerbusError with the reason. */
export function verifyMessageProof(proof: MessageProof, trust: ProofTrust): AcceptedMessage {
  const { header, batchProof, messageProof, outcomeProof } = proof;
  verifyHeaderCertificate(header, { signatures: proof.signatures }, membershipOf(trust, header));
  if (!verifyInclusion(header.resultsRoot, proof.batch, batchProof)) {
    throw badProof(`the batch is not a result of block ${header.height} of ${header.partitionId}`);
  }
  const batch: PublishResultLeaf = strictly('batch', () => decodeWith(publishResultLeafSchema, proof.batch));
  checkSigner(trust, batch.sender, batch.signerKey);
  if (
    !trust.signing.verify(
      batch.signerKey,
      PUBLISH_SIGNING_TYPE,
      publishSigningPayload(batch),
      batch.signature,
    )
  ) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the publish is not signed by ${batch.sender} for network ${trust.signing.network}`,
    );
  }
  if (
    messageProof.treeSize !== batch.messageCount ||
    !verifyInclusion(batch.messagesRoot, proof.message, messageProof)
  ) {
    throw badProof('the message is not in the batch its sender signed');
  }
  if (
    outcomeProof.leafIndex !== messageProof.leafIndex ||
    outcomeProof.treeSize !== messageProof.treeSize ||
    !verifyInclusion(batch.messages, proof.outcome, outcomeProof)
  ) {
    throw badProof("the outcome is not the contract's outcome for that message");
  }
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

function proofToCbor(proof: InclusionProof): CborValue {
  return { leafIndex: proof.leafIndex, treeSize: proof.treeSize, path: [...proof.path] };
}

export function messageProofToCbor(proof: MessageProof): CborValue {
  return {
    version: proof.version,
    header: headerToCbor(proof.header),
    signatures: proof.signatures.map((entry) => ({ signer: entry.signer, signature: entry.signature })),
    batch: proof.batch,
    batchProof: proofToCbor(proof.batchProof),
    message: proof.message,
    messageProof: proofToCbor(proof.messageProof),
    outcome: proof.outcome,
    outcomeProof: proofToCbor(proof.outcomeProof),
  };
}
