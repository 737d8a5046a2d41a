/** Offline-verifiable proofs: block evidence, message acceptance, delivery receipts and audit records (DESIGN §3, §7). */
export {
  blockEvidence,
  blockEvidenceSchema,
  blockEvidenceToCbor,
  blockTrees,
  verifyBlockEvidence,
} from './evidence.js';
export type { BlockEvidence, BlockTrees } from './evidence.js';
export {
  MESSAGE_PROOF_VERSION,
  compactMessageProofs,
  messageProofSchema,
  messageProofToCbor,
  verifyMessageProof,
} from './compact-message-proof.js';
export type { MessageProof } from './compact-message-proof.js';
export {
  compactDeliveryProof,
  deliveryProofSchema,
  deliveryProofToCbor,
  verifyDeliveryProof,
} from './compact-delivery-proof.js';
export type { DeliveryProof } from './compact-delivery-proof.js';
export {
  acceptanceProofAt,
  acceptanceProofSchema,
  acceptanceProofV1Schema,
  isCompactProof,
  acceptanceProofToCbor,
  decodeAcceptanceProof,
  decodeDeliveryReceipt,
  deliveryEvidenceAt,
  deliveryEvidenceSchema,
  deliveryEvidenceV1Schema,
  deliveryEvidenceToCbor,
  deliveryReceiptOf,
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
  AcceptanceProofV1,
  AcceptedMessage,
  DeliveryEvidence,
  DeliveryEvidenceV1,
  DeliveryReceipt,
  ProofTrust,
  ReceiptSummary,
  VerifiedDelivery,
} from './message-proof.js';
export {
  checkAuditRoles,
  escrowRecordPositions,
  provenAuditOf,
  verifyAuditEvidence,
  verifyAuditRequest,
  verifyAuditStep,
} from './audit-evidence.js';
export type {
  AuditStepKind,
  AuditSteps,
  DroppedField,
  PositionedEvidence,
  ProvenAudit,
  ProvenStep,
  RecordPosition,
} from './audit-evidence.js';
export {
  AUDIT_RECORD_FORMAT,
  auditRecordBundle,
  auditRecordSchema,
  auditRecordSummary,
  decodeAuditRecord,
  encodeAuditRecord,
  verifyAuditRecord,
  verifyAuditRecordBundle,
} from './audit-record.js';
export type { AuditRecord, AuditRecordBundle, AuditRecordSummary } from './audit-record.js';
