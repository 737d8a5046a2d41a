/**
 * Why the SDT contract refused a transaction or one message of it. A rejection is DATA, not an
 * exception: it is written into the transaction's result (a leaf of the block's results root), so
 * every replica records the same refusal and a client can prove it. The string values are the stable
 * codes that cross the wire; never change one, only add new ones.
 *
 * Transaction-level reasons (the whole transaction is refused and changes nothing): Malformed,
 * OrganizationUnknown, SigningKeyUnknown, BadSignature, OrganizationPending, OrganizationSuspended,
 * OrganizationRevoked, TimestampOutOfWindow, Replay, EpochClosed.
 * Message-level reasons (one message of a publish batch): TopicUnknown, WrongPartition,
 * ProduceNotAllowed, RecipientUnknown, RecipientNotApproved, RecipientNotAllowed, MessageTooLarge,
 * MessageIdConflict.
 * Confirmation-level reasons (one item of a confirmDelivery): MessageUnknown, NotRecipient,
 * ContentRootMismatch, MessageExpired.
 */
export const RejectReason = {
  /** Not canonical CBOR, larger than the transaction limit, or not matching the transaction schema. */
  Malformed: 'MALFORMED',
  /** The organization that claims to sign the transaction is not in the registry. */
  OrganizationUnknown: 'ORGANIZATION_UNKNOWN',
  /** The signing key named by the transaction is not registered for that organization. */
  SigningKeyUnknown: 'SIGNING_KEY_UNKNOWN',
  /** The signature does not verify under the named key over the transaction's signed payload. */
  BadSignature: 'BAD_SIGNATURE',
  /** The signing organization is registered but not yet approved by a supervisor. */
  OrganizationPending: 'ORGANIZATION_PENDING',
  /** The signing organization has been suspended by a supervisor. */
  OrganizationSuspended: 'ORGANIZATION_SUSPENDED',
  /** The signing organization has been revoked by a supervisor. */
  OrganizationRevoked: 'ORGANIZATION_REVOKED',
  /** The transaction's timestamp is further than `transactionClockWindowMs` from the block's time. */
  TimestampOutOfWindow: 'TIMESTAMP_OUT_OF_WINDOW',
  /** The transaction's nonce was already used by this organization within the replay window. */
  Replay: 'REPLAY',
  /** The message names a topic that the registry does not know. */
  TopicUnknown: 'TOPIC_UNKNOWN',
  /** The message's topic and partition do not name the partition executing it. */
  WrongPartition: 'WRONG_PARTITION',
  /** The sender is not a member allowed to produce on the topic. */
  ProduceNotAllowed: 'PRODUCE_NOT_ALLOWED',
  /** A recipient is not in the registry (`detail` names it). */
  RecipientUnknown: 'RECIPIENT_UNKNOWN',
  /** A recipient is pending, suspended or revoked (`detail` names it). */
  RecipientNotApproved: 'RECIPIENT_NOT_APPROVED',
  /** A recipient is not a member allowed to consume from the topic (`detail` names it). */
  RecipientNotAllowed: 'RECIPIENT_NOT_ALLOWED',
  /** The message's size exceeds the topic policy's `messageBytesMax`. */
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  /** The message id was already accepted on this partition with different metadata. */
  MessageIdConflict: 'MESSAGE_ID_CONFLICT',
  /** A confirmation names a message id that this partition never accepted. */
  MessageUnknown: 'MESSAGE_UNKNOWN',
  /** A confirmation comes from an organization that is not a recipient of the message. */
  NotRecipient: 'NOT_RECIPIENT',
  /** A confirmation's content root differs from the chunk Merkle root published for the message. */
  ContentRootMismatch: 'CONTENT_ROOT_MISMATCH',
  /** A confirmation arrived after the message expired (its TTL passed before all recipients confirmed). */
  MessageExpired: 'MESSAGE_EXPIRED',
  /**
   * The partition moved to a new replica set: this block closes the old epoch and executes nothing.
   * Retriable: the producer publishes again to the new replicas (message ids keep it idempotent).
   */
  EpochClosed: 'EPOCH_CLOSED',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

export const rejectReasons: readonly RejectReason[] = Object.values(RejectReason);
