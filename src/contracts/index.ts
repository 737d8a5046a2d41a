/** The system contracts executed by partition replicas. Today: SDT (secure data transfer, DESIGN §3). */
export { executeBatch } from './sdt.js';
export type { BatchContext, BatchOutcome } from './sdt.js';
export { RejectReason, rejectReasons } from './reasons.js';
export { MemoryContractState } from './state.js';
export type { ContractState } from './state.js';
export { MemoryRegistry, partitionGroupId, policyDurationMsMax, validateTopicPolicy } from './registry.js';
export type {
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
  messageLeaf,
  messageMetadataSchema,
  nonceBytes,
  publishSigningPayload,
  publishedMessageProof,
  transactionClockWindowMs,
  transactionLimits,
  transactionSchema,
} from './transactions.js';
export type {
  ConfirmDeliveryTransaction,
  MessageMetadata,
  PublishBatchHeader,
  PublishTransaction,
  SdtTransaction,
} from './transactions.js';
export {
  decodeTransactionResult,
  deliveryResultSchema,
  messageResultSchema,
  transactionResultSchema,
} from './results.js';
export type {
  ConfirmDeliveryResult,
  DeliveryConfirmedEvent,
  DeliveryResult,
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
