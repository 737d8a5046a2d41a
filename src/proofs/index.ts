/** Offline-verifiable proofs: block evidence, message acceptance, delivery receipts and audit records (DESIGN §3, §7). */
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
