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
  receiptSummary,
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
  ReceiptSummary,
  VerifiedDelivery,
} from './message-proof.js';
