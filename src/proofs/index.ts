/** Offline-verifiable proofs: block evidence, message acceptance and delivery receipts (DESIGN §3). */
export { blockEvidence, blockEvidenceSchema, blockEvidenceToCbor, verifyBlockEvidence } from './evidence.js';
export type { BlockEvidence } from './evidence.js';
export {
  acceptanceProofSchema,
  acceptanceProofToCbor,
  decodeAcceptanceProof,
  decodeDeliveryReceipt,
  deliveryEvidenceSchema,
  deliveryEvidenceToCbor,
  deliveryReceiptSchema,
  encodeAcceptanceProof,
  encodeDeliveryReceipt,
  verifyAcceptance,
  verifyAcceptances,
  verifyDelivery,
  verifyDeliveryReceipt,
} from './message-proof.js';
export type {
  AcceptanceProof,
  AcceptedMessage,
  DeliveryEvidence,
  DeliveryReceipt,
  ProofTrust,
  VerifiedDelivery,
} from './message-proof.js';
