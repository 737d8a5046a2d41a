/**
 * The SDT (secure data transfer) contract of DESIGN §3, as a deterministic state machine that a
 * partition's replicas run over each committed PBFT batch. Same state, same context, same
 * transactions: same results, same events, same bytes written. It reads no clock (time is the block
 * timestamp the primary stamped), draws no randomness and does no I/O; the registry and the state
 * store are passed in.
 *
 * Rejections are data. Whatever bytes a transaction holds, executing it never throws: it yields a
 * result with a stable `RejectReason`, and a rejected transaction writes nothing. Only a broken
 * invariant (a driver executing heights out of order, a corrupt store) throws, loudly.
 *
 * The escrow contract (DESIGN §7, `escrow/`) runs inside the same batch: escrowed messages are
 * checked and registered as part of a publish, and `escrow` transactions are authenticated here
 * (same keys, nonces and clock window) and then executed by `EscrowExecution`. The job contract
 * (DESIGN §8, `datashare/`) is dispatched the same way: `job` transactions are authenticated here and
 * executed by `JobExecution`.
 */
import { bytesEqual, encodeWith } from '../codec/index.js';
import { SigningDomain } from '../crypto/index.js';
import { assert, isLedgerbusError } from '../errors.js';
import { JobExecution } from './datashare/execute.js';
import { JobStore } from './datashare/store.js';
import { JOB_SIGNING_TYPE, jobSigningPayload } from './datashare/transactions.js';
import type { JobTransaction } from './datashare/transactions.js';
import { EscrowExecution } from './escrow/execute.js';
import { checkEscrowMetadata } from './escrow/registration.js';
import { EscrowStore } from './escrow/store.js';
import { ESCROW_SIGNING_TYPE, escrowSigningPayload } from './escrow/transactions.js';
import type { EscrowTransaction } from './escrow/transactions.js';
import { RejectReason } from './reasons.js';
import { partitionGroupId, validateTopicPolicy } from './registry.js';
import type { Organization, Registry } from './registry.js';
import { BATCHED_RESULT_FORMAT } from '../ledger/result-leaf.js';
import { transactionResultSchema } from './results.js';
import type { DeliveryResult, MessageResult, SdtEvent, TransactionResult } from './results.js';
import { WriteBuffer } from './state.js';
import type { ContractState } from './state.js';
import { PartitionStore } from './store.js';
import type { MessageRecord, PartitionMeta } from './store.js';
import {
  CONFIRM_DELIVERY_SIGNING_TYPE,
  PUBLISH_SIGNING_TYPE,
  confirmBatchHeader,
  confirmBatchSigningPayload,
  confirmDeliverySigningPayload,
  decodeTransaction,
  messageLeaf,
  publishBatchHeader,
  publishSigningPayload,
  transactionClockWindowMs,
} from './transactions.js';
import type {
  ConfirmDeliveryTransaction,
  MessageMetadata,
  PublishTransaction,
  SdtTransaction,
} from './transactions.js';

/** What the node knows about the block being executed. */
export interface BatchContext {
  /** The partition's consensus group id, e.g. "invoices/0" (see `partitionGroupId`). */
  readonly partitionId: string;
  /** Membership epoch of the group; recorded with each accepted message. */
  readonly configEpoch: number;
  /** Height of the block; must be exactly one more than the last executed height (first is 1). */
  readonly height: number;
  /** The block header's timestamp (ms), stamped by the primary. */
  readonly timestamp: number;
  /**
   * The registry at the __system index the batch names. Its `network` is the signing domain every
   * transaction's signature is checked in: one signed for another network is BAD_SIGNATURE.
   */
  readonly registry: Registry;
  /**
   * Set when the batch closes its epoch (the registry it names moved the partition to a new replica
   * set): every transaction is rejected with EPOCH_CLOSED, and the block only ends the epoch.
   */
  readonly closesEpoch?: boolean;
}

export interface BatchOutcome {
  /** One canonical-CBOR `TransactionResult` per transaction, in order: the results root's leaves. */
  readonly results: Uint8Array[];
  /** Expiries first (in deadline order), then each transaction's events in order. */
  readonly events: SdtEvent[];
}

/**
 * Executes one committed batch against `state` and returns its results and events.
 *
 * Order within a batch: (1) contract time becomes max(previous time, `timestamp`) — so time never
 * goes back even if a new primary's clock is behind; (2) messages whose deadline is before that time
 * expire, in (deadline, offset) order; (3) nonces older than the replay horizon are forgotten;
 * (4) transactions execute in order, accepted messages taking the next offsets of the partition.
 *
 * All writes are buffered and applied to `state` at the end, in one go; a driver backed by a
 * database must apply them in the same database transaction as the executed height, so that a
 * crash leaves the state at a block boundary. Executing height h twice, or skipping one, is a driver
 * bug and throws AssertionError before anything is written.
 */
export function executeBatch(
  state: ContractState,
  context: BatchContext,
  transactions: readonly Uint8Array[],
): BatchOutcome {
  assert(context.partitionId.length > 0, 'partitionId is empty');
  assert(Number.isSafeInteger(context.configEpoch) && context.configEpoch >= 0, 'configEpoch');
  assert(Number.isSafeInteger(context.timestamp) && context.timestamp >= 0, 'timestamp');
  const buffer = new WriteBuffer(state);
  const execution = new BatchExecution(buffer, context);
  const outcome = execution.run(transactions);
  buffer.flush();
  return outcome;
}

/** Transaction-level rejection: carries the reason into the result and leaves state untouched. */
interface Refusal {
  readonly reason: RejectReason;
  readonly detail?: string;
}

class BatchExecution {
  private readonly store: PartitionStore;
  private readonly meta: PartitionMeta;
  /** This batch's events: lives as long as the batch's execution. */
  private readonly events: SdtEvent[] = [];
  private readonly signing: SigningDomain;
  /** The escrow contract (DESIGN §7), on the same write buffer and at the same contract time. */
  private readonly escrow: EscrowExecution;
  /** The job contract (DESIGN §8), likewise. */
  private readonly jobs: JobExecution;

  constructor(
    buffer: WriteBuffer,
    private readonly context: BatchContext,
  ) {
    this.store = new PartitionStore(buffer, context.partitionId);
    this.meta = this.store.meta();
    this.signing = SigningDomain.of(context.registry.network);
    assert(
      context.height === this.meta.height + 1,
      `partition ${context.partitionId} executed height ${this.meta.height}, asked to execute ${context.height}`,
    );
    this.meta.height = context.height;
    this.meta.time = Math.max(this.meta.time, context.timestamp);
    this.escrow = new EscrowExecution(new EscrowStore(buffer, context.partitionId), {
      height: context.height,
      time: this.meta.time,
      registry: context.registry,
    });
    this.jobs = new JobExecution(new JobStore(buffer, context.partitionId), {
      partitionId: context.partitionId,
      height: context.height,
      time: this.meta.time,
      registry: context.registry,
    });
  }

  run(transactions: readonly Uint8Array[]): BatchOutcome {
    this.expireDue();
    // A nonce can be replayed only while its timestamp is within the window of contract time, and
    // the timestamp was within the window when the nonce was used: after two windows it is dead.
    this.store.pruneNonces(this.meta, this.meta.time - 2 * transactionClockWindowMs - 1);
    const results = transactions.map((bytes, index) =>
      encodeWith(transactionResultSchema, this.execute(bytes, index)),
    );
    this.store.putMeta(this.meta);
    return { results, events: this.events };
  }

  private execute(bytes: Uint8Array, transactionIndex: number): TransactionResult {
    if (this.context.closesEpoch === true) return { status: 'REJECTED', reason: RejectReason.EpochClosed };
    let transaction: SdtTransaction;
    try {
      transaction = decodeTransaction(bytes);
    } catch (error) {
      // Only the codec's typed errors mean "bad input"; anything else is a bug and must surface.
      if (!isLedgerbusError(error)) throw error;
      return { status: 'REJECTED', reason: RejectReason.Malformed };
    }
    switch (transaction.type) {
      case 'publish':
        return this.publish(transaction, transactionIndex);
      case 'confirmDelivery':
        return this.confirmDelivery(transaction, transactionIndex);
      case 'escrow':
        return this.escrowAction(transaction, transactionIndex);
      case 'job':
        return this.jobAction(transaction, transactionIndex);
    }
  }

  // ---- publish --------------------------------------------------------------------------------

  private publish(transaction: PublishTransaction, transactionIndex: number): TransactionResult {
    // Inline payloads exist only in format 2 and come one per message: anything else is malformed.
    if (
      transaction.payloads !== undefined &&
      (transaction.format !== BATCHED_RESULT_FORMAT ||
        transaction.payloads.length !== transaction.messages.length)
    ) {
      return { status: 'REJECTED', reason: RejectReason.Malformed };
    }
    const { header, leaves } = publishBatchHeader(transaction);
    const authenticated = this.authenticate(
      { ...transaction, organization: transaction.sender },
      PUBLISH_SIGNING_TYPE,
      publishSigningPayload(header),
    );
    if ('reason' in authenticated) return rejection(authenticated);
    const sender = authenticated.organization;
    this.store.useNonce(this.meta, sender.id, transaction.nonce);
    // An escrowed message is published alone (its holders read the batch in its proof), and its
    // curve checks cost replicas real work: a second one in a batch is refused before any of that.
    let escrowed = 0;
    const messages = transaction.messages.map((message, messageIndex): MessageResult => {
      if (message.escrow !== undefined && ++escrowed > 1) {
        return {
          id: message.id,
          status: 'REJECTED',
          reason: RejectReason.EscrowPolicyMismatch,
          detail: 'one escrowed message per publish',
        };
      }
      const refusal = this.acceptMessage(
        sender,
        message,
        leaves[messageIndex] as Uint8Array,
        transactionIndex,
        messageIndex,
      );
      return 'reason' in refusal ? { id: message.id, status: 'REJECTED', ...refusal } : refusal;
    });
    const executed = {
      status: 'OK' as const,
      type: 'publish' as const,
      sender: sender.id,
      messagesRoot: header.messagesRoot,
      messageCount: header.messageCount,
      messages,
    };
    // The format the transaction asked for: an old block executed again gives its old result.
    if (transaction.format !== BATCHED_RESULT_FORMAT) return executed;
    return {
      format: BATCHED_RESULT_FORMAT,
      ...executed,
      transactionIndex,
      signerKey: header.signerKey,
      nonce: header.nonce,
      timestamp: header.timestamp,
      ...(header.payloadsHash === undefined ? {} : { payloadsHash: header.payloadsHash }),
      signature: transaction.signature,
    };
  }

  /** DESIGN §3 steps 3–4: checks one message of an authenticated batch and records it. */
  private acceptMessage(
    sender: Organization,
    message: MessageMetadata,
    leaf: Uint8Array,
    transactionIndex: number,
    messageIndex: number,
  ): MessageResult | Refusal {
    // Idempotent producer: the same id with the same leaf is a retry and gets the first result;
    // this comes first because the first acceptance stays true whatever changed since.
    const existing = this.store.message(message.id);
    if (existing !== undefined) {
      if (!bytesEqual(messageLeaf(existing.sender, existing.metadata), leaf)) {
        return { reason: RejectReason.MessageIdConflict };
      }
      return acceptedResult(existing);
    }
    const { registry, partitionId } = this.context;
    const topic = registry.topic(message.topic);
    if (topic === undefined) return { reason: RejectReason.TopicUnknown, detail: message.topic };
    validateTopicPolicy(topic.policy);
    if (
      message.partition >= topic.partitionCount ||
      partitionGroupId(message.topic, message.partition) !== partitionId
    ) {
      return { reason: RejectReason.WrongPartition };
    }
    if (!sender.roles.includes('member') || !topic.producers.has(sender.id)) {
      return { reason: RejectReason.ProduceNotAllowed };
    }
    for (const recipientId of message.recipients) {
      const recipient = registry.organization(recipientId);
      if (recipient === undefined) return { reason: RejectReason.RecipientUnknown, detail: recipientId };
      if (recipient.status !== 'APPROVED') {
        return { reason: RejectReason.RecipientNotApproved, detail: recipientId };
      }
      if (!recipient.roles.includes('member') || !topic.consumers.has(recipientId)) {
        return { reason: RejectReason.RecipientNotAllowed, detail: recipientId };
      }
    }
    if (message.size > topic.policy.messageBytesMax) return { reason: RejectReason.MessageTooLarge };
    const escrowRefusal = checkEscrowMetadata(registry, sender.id, topic.policy, message);
    if (escrowRefusal !== undefined) return escrowRefusal;

    const record: MessageRecord = {
      metadata: message,
      sender: sender.id,
      offset: this.meta.nextOffset,
      height: this.context.height,
      transactionIndex,
      messageIndex,
      configEpoch: this.context.configEpoch,
      acceptedAt: this.meta.time,
      deadline: Math.min(this.meta.time + topic.policy.ttlMs, Number.MAX_SAFE_INTEGER),
      payloadRetentionMs: topic.policy.payloadRetentionMs,
      status: 'ACCEPTED',
      closedHeight: null,
      closedAt: null,
      deliveries: [],
    };
    this.meta.nextOffset += 1;
    this.store.putMessage(record);
    this.store.putOffset(record.offset, message.id);
    this.store.enqueueExpiry(this.meta, topic.policy.ttlMs, message.id);
    if (topic.policy.escrow !== undefined) {
      this.escrow.register(message, sender.id, topic.policy.escrow, transactionIndex);
    }
    this.events.push({
      type: 'MessageAccepted',
      partitionId,
      height: record.height,
      id: message.id,
      offset: record.offset,
      sender: sender.id,
      topic: message.topic,
      partition: message.partition,
      recipients: message.recipients,
      transactionIndex,
      messageIndex,
      deadline: record.deadline,
    });
    return acceptedResult(record);
  }

  // ---- confirmDelivery --------------------------------------------------------------------------

  private confirmDelivery(
    transaction: ConfirmDeliveryTransaction,
    transactionIndex: number,
  ): TransactionResult {
    const batched =
      transaction.format === BATCHED_RESULT_FORMAT ? confirmBatchHeader(transaction) : undefined;
    const authenticated = this.authenticate(
      { ...transaction, organization: transaction.recipient },
      CONFIRM_DELIVERY_SIGNING_TYPE,
      batched === undefined
        ? confirmDeliverySigningPayload(transaction)
        : confirmBatchSigningPayload(batched.header),
    );
    if ('reason' in authenticated) return rejection(authenticated);
    const recipient = authenticated.organization.id;
    this.store.useNonce(this.meta, recipient, transaction.nonce);
    const deliveries = transaction.deliveries.map((delivery, deliveryIndex): DeliveryResult =>
      this.recordDelivery(recipient, delivery.id, delivery.contentRoot, transactionIndex, deliveryIndex),
    );
    if (batched === undefined) return { status: 'OK', type: 'confirmDelivery', recipient, deliveries };
    const { header } = batched;
    return {
      format: BATCHED_RESULT_FORMAT,
      status: 'OK',
      type: 'confirmDelivery',
      recipient,
      deliveries,
      transactionIndex,
      signerKey: header.signerKey,
      nonce: header.nonce,
      timestamp: header.timestamp,
      deliveriesRoot: header.deliveriesRoot,
      deliveryCount: header.deliveryCount,
      signature: transaction.signature,
    };
  }

  /** DESIGN §3 steps 17–18: the recipient stored the payload whose chunk root is `contentRoot`. */
  private recordDelivery(
    recipient: string,
    id: string,
    contentRoot: Uint8Array,
    transactionIndex: number,
    deliveryIndex: number,
  ): DeliveryResult {
    const record = this.store.message(id);
    if (record === undefined) return { id, status: 'REJECTED', reason: RejectReason.MessageUnknown };
    if (!record.metadata.recipients.includes(recipient)) {
      return { id, status: 'REJECTED', reason: RejectReason.NotRecipient };
    }
    // The root is checked before the idempotent answer: a confirmation with another root is not a
    // repeat of the recorded one, it is a false statement about what was received.
    if (!bytesEqual(record.metadata.contentRoot, contentRoot)) {
      return { id, status: 'REJECTED', reason: RejectReason.ContentRootMismatch };
    }
    const prior = record.deliveries.find((delivery) => delivery.recipient === recipient);
    if (prior !== undefined) {
      return {
        id,
        status: 'DELIVERED',
        height: prior.height,
        transactionIndex: prior.transactionIndex,
        deliveryIndex: prior.deliveryIndex,
      };
    }
    if (record.status === 'EXPIRED') return { id, status: 'REJECTED', reason: RejectReason.MessageExpired };

    const { height, partitionId } = this.context;
    const deliveries = [
      ...record.deliveries,
      { recipient, height, transactionIndex, deliveryIndex, confirmedAt: this.meta.time },
    ];
    const completed = deliveries.length === record.metadata.recipients.length;
    this.store.putMessage({
      ...record,
      deliveries,
      status: completed ? 'COMPLETED' : record.status,
      closedHeight: completed ? height : record.closedHeight,
      closedAt: completed ? this.meta.time : record.closedAt,
    });
    const base = { partitionId, height, id, offset: record.offset, sender: record.sender };
    this.events.push({ type: 'DeliveryConfirmed', ...base, recipient, transactionIndex, deliveryIndex });
    if (completed) {
      this.events.push({
        type: 'MessageCompleted',
        ...base,
        transactionIndex,
        payloadRetainUntil: retainUntil(this.meta.time, record.payloadRetentionMs),
      });
    }
    return { id, status: 'DELIVERED', height, transactionIndex, deliveryIndex };
  }

  // ---- escrow (DESIGN §7) ---------------------------------------------------------------------

  /** Authenticated like an SDT transaction; its nonce is recorded only if the action is not refused. */
  private escrowAction(transaction: EscrowTransaction, transactionIndex: number): TransactionResult {
    const authenticated = this.authenticate(
      transaction,
      ESCROW_SIGNING_TYPE,
      escrowSigningPayload(transaction),
    );
    if ('reason' in authenticated) return rejection(authenticated);
    const organization = authenticated.organization;
    const result = this.escrow.execute(organization, transaction.action, transactionIndex);
    if ('reason' in result) return rejection(result);
    this.store.useNonce(this.meta, organization.id, transaction.nonce);
    return result;
  }

  // ---- jobs (DESIGN §8) -----------------------------------------------------------------------

  /** Authenticated like an escrow transaction; its nonce is recorded only if the step is not refused. */
  private jobAction(transaction: JobTransaction, transactionIndex: number): TransactionResult {
    const authenticated = this.authenticate(transaction, JOB_SIGNING_TYPE, jobSigningPayload(transaction));
    if ('reason' in authenticated) return rejection(authenticated);
    const organization = authenticated.organization;
    const result = this.jobs.execute(organization, transaction.action, transactionIndex);
    if ('reason' in result) return rejection(result);
    this.store.useNonce(this.meta, organization.id, transaction.nonce);
    return result;
  }

  // ---- shared checks --------------------------------------------------------------------------

  /**
   * Transaction-level checks, cheapest first, the signature before anything that depends on the
   * claim being true. Returns the signing organization, or why the whole transaction is refused.
   */
  private authenticate(
    claim: {
      organization: string;
      signerKey: Uint8Array;
      nonce: Uint8Array;
      timestamp: number;
      signature: Uint8Array;
    },
    signingType: string,
    signedPayload: Uint8Array,
  ): { organization: Organization } | Refusal {
    const organization = this.context.registry.organization(claim.organization);
    if (organization === undefined) return { reason: RejectReason.OrganizationUnknown };
    if (!organization.signingKeys.some((key) => bytesEqual(key, claim.signerKey))) {
      return { reason: RejectReason.SigningKeyUnknown };
    }
    if (!this.signing.verify(claim.signerKey, signingType, signedPayload, claim.signature)) {
      return { reason: RejectReason.BadSignature };
    }
    switch (organization.status) {
      case 'APPROVED':
        break;
      case 'PENDING':
        return { reason: RejectReason.OrganizationPending };
      case 'SUSPENDED':
        return { reason: RejectReason.OrganizationSuspended };
      case 'REVOKED':
        return { reason: RejectReason.OrganizationRevoked };
    }
    if (Math.abs(claim.timestamp - this.meta.time) > transactionClockWindowMs) {
      return { reason: RejectReason.TimestampOutOfWindow };
    }
    if (this.store.nonceUsed(organization.id, claim.nonce)) return { reason: RejectReason.Replay };
    return { organization };
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /**
   * Expires every ACCEPTED message whose deadline is before contract time, in (deadline, offset)
   * order, by merging the per-TTL queues. Entries of messages that completed meanwhile are dropped
   * when they reach the head of their queue.
   */
  private expireDue(): void {
    const now = this.meta.time;
    for (;;) {
      let due: { queue: PartitionMeta['expiryQueues'][number]; record: MessageRecord } | undefined;
      for (const queue of [...this.meta.expiryQueues]) {
        const record = this.liveHead(queue);
        if (record === undefined || record.deadline >= now) continue;
        if (
          due === undefined ||
          record.deadline < due.record.deadline ||
          (record.deadline === due.record.deadline && record.offset < due.record.offset)
        ) {
          due = { queue, record };
        }
      }
      if (due === undefined) return;
      const { queue, record } = due;
      this.store.popExpiry(this.meta, queue);
      this.store.putMessage({
        ...record,
        status: 'EXPIRED',
        closedHeight: this.context.height,
        closedAt: now,
      });
      this.events.push({
        type: 'MessageExpired',
        partitionId: this.context.partitionId,
        height: this.context.height,
        id: record.metadata.id,
        offset: record.offset,
        sender: record.sender,
        deadline: record.deadline,
        undelivered: record.metadata.recipients.filter(
          (recipient) => !record.deliveries.some((delivery) => delivery.recipient === recipient),
        ),
        payloadRetainUntil: retainUntil(now, record.payloadRetentionMs),
      });
    }
  }

  /** The first still-ACCEPTED message of `queue`, popping finished ones; undefined if none is left. */
  private liveHead(queue: PartitionMeta['expiryQueues'][number]): MessageRecord | undefined {
    while (queue.head < queue.tail) {
      const id = this.store.expiryHead(queue);
      const record = this.store.message(id);
      assert(record !== undefined, `expiry queue names unknown message ${id}`);
      if (record.status === 'ACCEPTED') return record;
      this.store.popExpiry(this.meta, queue);
    }
    return undefined;
  }
}

function acceptedResult(record: MessageRecord): MessageResult {
  return {
    id: record.metadata.id,
    status: 'ACCEPTED',
    offset: record.offset,
    height: record.height,
    transactionIndex: record.transactionIndex,
    messageIndex: record.messageIndex,
  };
}

function rejection(refusal: Refusal): TransactionResult {
  return { status: 'REJECTED', ...refusal };
}

function retainUntil(time: number, retentionMs: number): number {
  return Math.min(time + retentionMs, Number.MAX_SAFE_INTEGER);
}
