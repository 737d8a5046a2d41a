/**
 * What the compact (version 2) acceptance and delivery proofs share: a certified header, the leaf of a
 * format-2 result with its path under the header's results root, strict decoding of what they carry,
 * and their CBOR form.
 */
import { t } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { verifyInclusion } from '../crypto/index.js';
import type { InclusionProof } from '../crypto/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { blockLimits, verifyHeaderCertificate } from '../ledger/block.js';
import { headerSchema, headerToCbor } from '../ledger/header.js';
import type { BlockHeader, CertificateSignature } from '../ledger/header.js';
import { badProof, checkSigner, membershipOf } from './trust.js';
import type { ProofTrust } from './trust.js';

/** A header and its commit certificate's signatures, as both compact proofs carry them. */
export const certifiedHeaderFields = {
  header: headerSchema,
  signatures: t.array(
    t.record({ signer: t.string({ minLength: 1, maxLength: 256 }), signature: t.bytes({ length: 64 }) }),
    { maxItems: blockLimits.signaturesMax },
  ),
};

interface CertifiedResult {
  readonly header: BlockHeader;
  readonly signatures: readonly CertificateSignature[];
  /** A format-2 result's leaf. */
  readonly batch: Uint8Array;
  readonly batchProof: InclusionProof;
}

/** Checks the header's certificate against the trust bundle and that `batch` is one of its results. */
export function verifyCertifiedResult(proof: CertifiedResult, trust: ProofTrust, what: string): void {
  const { header } = proof;
  verifyHeaderCertificate(header, { signatures: proof.signatures }, membershipOf(trust, header));
  if (!verifyInclusion(header.resultsRoot, proof.batch, proof.batchProof)) {
    throw badProof(`the ${what} is not a result of block ${header.height} of ${header.partitionId}`);
  }
}

/** `decode()`, with a decoding failure reported as BAD_PROOF naming the part of the proof. */
export function strictly<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (isLedgerbusError(error)) throw badProof(`the proof's ${what} does not decode: ${error.message}`);
    throw error;
  }
}

export function inclusionProofToCbor(proof: InclusionProof): CborValue {
  return { leafIndex: proof.leafIndex, treeSize: proof.treeSize, path: [...proof.path] };
}

/** The CBOR form of a certified header's fields (only those: extra properties never reach the bytes). */
export function certifiedHeaderToCbor(proof: CertifiedResult): {
  header: CborValue;
  signatures: CborValue;
  batch: Uint8Array;
  batchProof: CborValue;
} {
  return {
    header: headerToCbor(proof.header),
    signatures: proof.signatures.map((entry) => ({ signer: entry.signer, signature: entry.signature })),
    batch: proof.batch,
    batchProof: inclusionProofToCbor(proof.batchProof),
  };
}

/** `organization` holds `signerKey`, and its signature over `payload` verifies in the trust's network. */
export function checkSignedBy(
  trust: ProofTrust,
  organization: string,
  signed: { readonly signerKey: Uint8Array; readonly signature: Uint8Array },
  type: string,
  payload: Uint8Array,
  what: string,
): void {
  checkSigner(trust, organization, signed.signerKey);
  if (!trust.signing.verify(signed.signerKey, type, payload, signed.signature)) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the ${what} is not signed by ${organization} for network ${trust.signing.network}`,
    );
  }
}

/**
 * The item is in the tree its signer signed (whose size is the signed count), and its outcome is in
 * the outcomes tree at the same position: with RFC 9162 paths, equal index and size pin the position.
 */
export function checkItemAndOutcome(
  signed: { readonly root: Uint8Array; readonly count: number; readonly outcomesRoot: Uint8Array },
  item: { readonly bytes: Uint8Array; readonly proof: InclusionProof },
  outcome: { readonly bytes: Uint8Array; readonly proof: InclusionProof },
  what: 'message' | 'delivery',
): void {
  if (item.proof.treeSize !== signed.count || !verifyInclusion(signed.root, item.bytes, item.proof)) {
    throw badProof(`the ${what} is not among those its signer signed`);
  }
  if (
    outcome.proof.leafIndex !== item.proof.leafIndex ||
    outcome.proof.treeSize !== item.proof.treeSize ||
    !verifyInclusion(signed.outcomesRoot, outcome.bytes, outcome.proof)
  ) {
    throw badProof(`the outcome is not the contract's outcome for that ${what}`);
  }
}
