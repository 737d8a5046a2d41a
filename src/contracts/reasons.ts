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
 *
 * Escrow (DESIGN §7). Message-level, on a publish to or with escrow: EscrowRequired, EscrowNotAllowed,
 * EscrowPolicyMismatch, EscrowHolderInvalid. Attestation-level (one item of an `attest`):
 * EscrowUnknown, NotEscrowParty, EscrowPolicyMismatch, AttestationConflict. Transaction-level, on the
 * audit actions: NotAuditor, EscrowUnknown, AuditIdConflict, AuditLimit, AuditUnknown, AuditClosed,
 * ApproverNotEligible, AuditNotApproved, NotShareHolder, AlreadyReleased, NotRequestAuditor.
 *
 * Jobs (DESIGN §8, compute-to-data), transaction-level: NotMember, OwnerUnknown, OwnerNotApproved,
 * JobExists, JobUnknown, NotJobOwner, JobState (and Malformed for a result inconsistent in itself).
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

  // ---- escrow (DESIGN §7) ----------------------------------------------------------------------
  /** The topic's availability is 'escrow' and the message carries no `escrow` metadata. */
  EscrowRequired: 'ESCROW_REQUIRED',
  /** The message carries `escrow` metadata but its topic is not an escrow topic. */
  EscrowNotAllowed: 'ESCROW_NOT_ALLOWED',
  /**
   * The escrow metadata does not fit the topic's escrow policy or is inconsistent in itself; `detail`
   * names the field (chunkBytes, commitments, shares, chunkCount, blobBytes, placement, holders). On an
   * attestation: `share` claims a share the attester does not hold (or denies one it holds), or
   * `chunksHeld` exceeds the chunks the placement gives it.
   */
  EscrowPolicyMismatch: 'ESCROW_POLICY_MISMATCH',
  /**
   * A share or chunk holder (`detail` names it) is the sender, unknown, not approved, not a member, or
   * named twice among the share holders or among the chunk holders.
   */
  EscrowHolderInvalid: 'ESCROW_HOLDER_INVALID',
  /** The message id names no escrowed message on this partition. */
  EscrowUnknown: 'ESCROW_UNKNOWN',
  /** The attesting organization holds neither a share nor a chunk of the message. */
  NotEscrowParty: 'NOT_ESCROW_PARTY',
  /** The organization already attested for this message, with different findings. */
  AttestationConflict: 'ATTESTATION_CONFLICT',
  /** An audit request from an organization without the approved 'auditor' role. */
  NotAuditor: 'NOT_AUDITOR',
  /** The request id is already used on this partition by a different request. */
  AuditIdConflict: 'AUDIT_ID_CONFLICT',
  /** The message already has `auditsPerMessageMax` audit requests. */
  AuditLimit: 'AUDIT_LIMIT',
  /** The request id names no audit request on this partition. */
  AuditUnknown: 'AUDIT_UNKNOWN',
  /** The audit request is closed: its auditor recorded the outcome. */
  AuditClosed: 'AUDIT_CLOSED',
  /**
   * The approver is not an approved member, or is the request's auditor or the message's sender (the
   * owner cannot block an audit, and its approval does not count either).
   */
  ApproverNotEligible: 'APPROVER_NOT_ELIGIBLE',
  /** The audit request has not yet gathered the approvals its topic's policy asks for. Retriable. */
  AuditNotApproved: 'AUDIT_NOT_APPROVED',
  /** A share release from an organization that holds no share of the audited message. */
  NotShareHolder: 'NOT_SHARE_HOLDER',
  /** The holder already released a different share for this request. */
  AlreadyReleased: 'ALREADY_RELEASED',
  /** An audit outcome from an organization other than the request's auditor. */
  NotRequestAuditor: 'NOT_REQUEST_AUDITOR',

  // ---- jobs (DESIGN §8) -------------------------------------------------------------------------
  /** A job request from an organization without the approved 'member' role. */
  NotMember: 'NOT_MEMBER',
  /** A job request names an owner the registry does not know (`detail` names it). */
  OwnerUnknown: 'OWNER_UNKNOWN',
  /**
   * A job request names an owner that is pending, suspended or revoked, or not a member (`detail`
   * holds its status, or MEMBER_ROLE_MISSING).
   */
  OwnerNotApproved: 'OWNER_NOT_APPROVED',
  /** The job id is already used on this partition by a different request. */
  JobExists: 'JOB_EXISTS',
  /** The job id names no job request on this partition. */
  JobUnknown: 'JOB_UNKNOWN',
  /** A decision or result from an organization other than the job's owner. */
  NotJobOwner: 'NOT_JOB_OWNER',
  /**
   * The job is not in the state the action needs: a decision on a job already decided otherwise,
   * a result for a job that is not APPROVED, or another result for a finished one (`detail` holds
   * the job's state).
   */
  JobState: 'JOB_STATE',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

/** Every reason, in declaration order: what a result may carry on the wire. */
export const rejectReasons: readonly RejectReason[] = Object.values(RejectReason);

/** The reasons only the escrow contract (DESIGN §7) gives; every other reason is the SDT's. */
export const escrowRejectReasons: readonly RejectReason[] = [
  RejectReason.EscrowRequired,
  RejectReason.EscrowNotAllowed,
  RejectReason.EscrowPolicyMismatch,
  RejectReason.EscrowHolderInvalid,
  RejectReason.EscrowUnknown,
  RejectReason.NotEscrowParty,
  RejectReason.AttestationConflict,
  RejectReason.NotAuditor,
  RejectReason.AuditIdConflict,
  RejectReason.AuditLimit,
  RejectReason.AuditUnknown,
  RejectReason.AuditClosed,
  RejectReason.ApproverNotEligible,
  RejectReason.AuditNotApproved,
  RejectReason.NotShareHolder,
  RejectReason.AlreadyReleased,
  RejectReason.NotRequestAuditor,
];

/** The reasons only the job contract (DESIGN §8) gives. */
export const jobRejectReasons: readonly RejectReason[] = [
  RejectReason.NotMember,
  RejectReason.OwnerUnknown,
  RejectReason.OwnerNotApproved,
  RejectReason.JobExists,
  RejectReason.JobUnknown,
  RejectReason.NotJobOwner,
  RejectReason.JobState,
];

/** The SDT contract's own reasons (DESIGN §3): every reason that is neither an escrow nor a job one. */
export const sdtRejectReasons: readonly RejectReason[] = rejectReasons.filter(
  (reason) => !escrowRejectReasons.includes(reason) && !jobRejectReasons.includes(reason),
);
