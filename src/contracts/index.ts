/**
 * The system contracts executed by partition replicas: SDT (secure data transfer, DESIGN §3) and,
 * within the same batches, escrow (auditor availability, DESIGN §7).
 */
export { executeBatch } from './sdt.js';
export type { BatchContext, BatchOutcome } from './sdt.js';
export { RejectReason, escrowRejectReasons, rejectReasons, sdtRejectReasons } from './reasons.js';
export { MemoryContractState } from './state.js';
export type { ContractState } from './state.js';
export { MemoryRegistry, partitionGroupId, policyDurationMsMax, validateTopicPolicy } from './registry.js';
export type {
  EscrowPolicy,
  Organization,
  OrganizationRole,
  OrganizationStatus,
  Registry,
  Topic,
  TopicPolicy,
} from './registry.js';
export {
  CONFIRM_DELIVERY_SIGNING_TYPE,
  PUBLISH_SIGNING_TYPE,
  confirmDeliverySigningPayload,
  decodeTransaction,
  encodeConfirmDelivery,
  encodePublish,
  inlinePayloadSchema,
  messageLeaf,
  messageMetadataSchema,
  nonceBytes,
  payloadsHash,
  publishSigningPayload,
  publishedMessageProof,
  transactionClockWindowMs,
  transactionLimits,
  transactionSchema,
} from './transactions.js';
export type {
  ConfirmDeliveryTransaction,
  InlinePayload,
  MessageMetadata,
  PublishBatchHeader,
  PublishTransaction,
  SdtTransaction,
} from './transactions.js';
export {
  decodeTransactionResult,
  deliveryResultSchema,
  escrowAuditSummarySchema,
  escrowExecutedSchema,
  escrowItemResultSchema,
  messageResultSchema,
  transactionResultSchema,
} from './results.js';
export type {
  ConfirmDeliveryResult,
  DeliveryConfirmedEvent,
  DeliveryResult,
  EscrowAuditSummary,
  EscrowItemResult,
  EscrowResult,
  MessageAcceptedEvent,
  MessageCompletedEvent,
  MessageExpiredEvent,
  MessageResult,
  PublishResult,
  SdtEvent,
  TransactionResult,
} from './results.js';
export { messageById, messagesByOffset, partitionStatus, queryMessagesMax } from './queries.js';
export type { MessageView, PartitionStatus, RecipientDelivery } from './queries.js';
export {
  CHUNK_RECEIPT_SIGNING_TYPE,
  ESCROW_SIGNING_TYPE,
  attestationSchema,
  chunkReceiptPayload,
  encodeEscrowTransaction,
  escrowActionSchema,
  escrowLimits,
  escrowMetadataSchema,
  escrowMetadataValue,
  escrowSigningPayload,
  escrowTransactionSchema,
  sealedShareSchema,
} from './escrow/transactions.js';
export type {
  Attestation,
  EscrowAction,
  EscrowActionKind,
  EscrowMetadata,
  EscrowTransaction,
  SealedShare,
} from './escrow/transactions.js';
export {
  auditViewSchema,
  auditsPerMessageMax,
  escrowAttestationViewSchema,
  escrowLogEntrySchema,
  escrowLogKinds,
  escrowRecordViewSchema,
} from './escrow/views.js';
export type { AuditView, EscrowLogEntry, EscrowLogKind, EscrowRecordView } from './escrow/views.js';
export {
  auditView,
  escrowLogPage,
  escrowLogPageMax,
  escrowParties,
  escrowRecordView,
} from './escrow/queries.js';
