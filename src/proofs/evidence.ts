/**
 * Evidence that a certified block holds one transaction and one result: the block header and its
 * commit certificate, the transaction and the contract's result for it, each with a Merkle inclusion
 * proof under the header's roots. Anyone holding the group's replica keys can check it offline; it
 * is what every acknowledgement, event and receipt carries (DESIGN §3, §11: a client trusts no single
 * node).
 */
import { t } from '../codec/index.js';
import type { CborValue, Infer } from '../codec/index.js';
import { MerkleTree, inclusionProofSchema, verifyInclusion } from '../crypto/index.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { headerSchema, headerToCbor } from '../ledger/header.js';
import { blockLimits, verifyHeaderCertificate } from '../ledger/block.js';
import type { Block, GroupMembership } from '../ledger/block.js';
import { resultLeaf } from '../ledger/result-leaf.js';
import { inclusionProofToCbor } from './compact-parts.js';

export const blockEvidenceSchema = t.record({
  header: headerSchema,
  signatures: t.array(
    t.record({ signer: t.string({ minLength: 1, maxLength: 256 }), signature: t.bytes({ length: 64 }) }),
    {
      maxItems: blockLimits.signaturesMax,
    },
  ),
  transaction: t.bytes({ maxLength: blockLimits.transactionBytesMax }),
  transactionProof: inclusionProofSchema,
  result: t.bytes({ maxLength: 4 * blockLimits.transactionBytesMax }),
  resultProof: inclusionProofSchema,
});
export type BlockEvidence = Infer<typeof blockEvidenceSchema>;

/** A block's two trees, over its transactions and over its results' leaves (`resultLeaf`). */
export interface BlockTrees {
  readonly transactions: MerkleTree;
  readonly results: MerkleTree;
}

/** Builds the trees every evidence of `block` is cut from (build once per block, reuse per transaction). */
export function blockTrees(block: Block): BlockTrees {
  return {
    transactions: new MerkleTree(block.transactions),
    results: new MerkleTree(block.results.map(resultLeaf)),
  };
}

/** Builds the evidence for transaction `index` of a stored block (trees built by the caller may be reused). */
export function blockEvidence(block: Block, index: number, trees?: BlockTrees): BlockEvidence {
  assert(
    index >= 0 && index < block.transactions.length,
    `transaction ${index} outside block ${block.header.height}`,
  );
  const { transactions, results } = trees ?? blockTrees(block);
  return {
    header: block.header,
    signatures: block.certificate.signatures.map((entry) => ({
      signer: entry.signer,
      signature: entry.signature,
    })),
    transaction: block.transactions[index] as Uint8Array,
    transactionProof: transactions.proof(index),
    result: block.results[index] as Uint8Array,
    resultProof: results.proof(index),
  };
}

export function blockEvidenceToCbor(evidence: BlockEvidence): CborValue {
  return {
    header: headerToCbor(evidence.header),
    signatures: evidence.signatures.map((entry) => ({ signer: entry.signer, signature: entry.signature })),
    transaction: evidence.transaction,
    transactionProof: inclusionProofToCbor(evidence.transactionProof),
    result: evidence.result,
    resultProof: inclusionProofToCbor(evidence.resultProof),
  };
}

/**
 * Checks the certificate against `membership` (in its network) and both inclusion proofs. Throws
 * LedgerbusError: the certificate's codes (WRONG_GROUP, NON_MEMBER, INSUFFICIENT_SIGNATURES,
 * BAD_SIGNATURE...) or BAD_PROOF when a transaction or result is not under the header's roots at the
 * same index.
 */
export function verifyBlockEvidence(evidence: BlockEvidence, membership: GroupMembership): void {
  verifyHeaderCertificate(evidence.header, { signatures: evidence.signatures }, membership);
  const { transactionProof, resultProof, header } = evidence;
  if (!verifyInclusion(header.transactionsRoot, evidence.transaction, transactionProof)) {
    throw new LedgerbusError(
      ErrorCode.BadProof,
      `transaction is not in block ${header.height} of ${header.partitionId}`,
    );
  }
  if (
    resultProof.leafIndex !== transactionProof.leafIndex ||
    resultProof.treeSize !== transactionProof.treeSize ||
    !verifyInclusion(header.resultsRoot, resultLeaf(evidence.result), resultProof)
  ) {
    throw new LedgerbusError(ErrorCode.BadProof, `result is not the block's result for that transaction`);
  }
}
