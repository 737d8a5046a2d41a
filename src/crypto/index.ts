export {
  bytesEqual,
  domainHash,
  fromHex,
  hashBytes,
  networkIdPattern,
  sha256,
  signingHash,
  toHex,
} from './hash.js';
export {
  generateSigningKey,
  loadSigningKey,
  publicKeyBytes,
  saveSigningKey,
  seedBytes,
  signingKeyFromSeed,
} from './keys.js';
export type { SigningKeyPair } from './keys.js';
export { SigningDomain, signatureBytes } from './sign.js';
export type { Signer } from './sign.js';
export {
  certificateBytesMax,
  certificateDomain,
  certificateSchema,
  decodeCertificate,
  encodeCertificate,
  issueCertificate,
  verifyCertificate,
} from './certificate.js';
export type { Certificate, CertificateCheck, CertificateFields } from './certificate.js';
export {
  MerkleTree,
  inclusionPathLengthMax,
  inclusionProof,
  inclusionProofSchema,
  leafHash,
  merkleRoot,
  nodeHash,
  verifyInclusion,
} from './merkle.js';
export type { InclusionProof } from './merkle.js';
