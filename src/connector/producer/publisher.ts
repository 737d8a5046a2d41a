/**
 * Sending (DESIGN steps 1–6): a send's payloads encrypted into storage, then signed publishes of
 * batches that concurrent sends share (per partition and recipient set), submitted, and each
 * acceptance proof checked before the send reports success. A batch refused because its partition
 * moved to a new replica set is published again.
 */
import { randomBytes } from 'node:crypto';
import { decodeTransactionResult } from '../../contracts/results.js';
import type { MessageResult } from '../../contracts/results.js';
import {
  encodePublish,
  messageMetadataSchema,
  nonceBytes,
  transactionLimits,
} from '../../contracts/transactions.js';
import type { InlinePayload, MessageMetadata } from '../../contracts/transactions.js';
import { decodeCanonical, encodeWith } from '../../codec/index.js';
import type { CborValue } from '../../codec/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import {
  decodeAcceptanceProof,
  acceptanceProofSchema,
  compactMessageProofs,
  encodeAcceptanceProof,
  verifyAcceptance,
  verifyAcceptances,
} from '../../proofs/index.js';
import type { AcceptanceProof, AcceptedMessage, BlockEvidence } from '../../proofs/index.js';
import { createRetry } from '../../runtime/retry.js';
import type { Retrier, RetryPolicy } from '../../runtime/retry.js';
import type { OutgoingMessage, SendResult } from '../api-types.js';
import type { ConnectorDatabase } from '../connector-database.js';
import type { ConnectorContext } from '../context.js';
import { checkContentType } from '../media-type.js';
import { StickyPartitioner, partitionForKey } from '../partitioner.js';
import { ciphertextBytesFor, messageTooLarge, plaintextBytesMaxFor } from '../payload-size.js';
import type { NodeSession } from '../session/node-session.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import { publishBatchMessagesMax, recipientSetKey, runsOfSameRecipients } from './batches.js';
import { Coalescer, defaultCoalescingPolicy } from './coalescer.js';
import type { CoalescingPolicy } from './coalescer.js';
import { OutgoingStore } from './outgoing-store.js';
import { checkApplicationMessage, isPartMessageId } from '../parts.js';
import type { OutgoingLimit, OutgoingStored } from './outgoing-store.js';
import { partitionGroupId } from '../../contracts/registry.js';
import type { EscrowPlacer } from '../escrow/placer.js';

/** Outgoing payloads encrypted and stored at once by one send. */
const storeConcurrency = 16;
/** Messages one send may carry. */
const sendMessagesMax = 1024;

/** A closed epoch is retried every half second (the move takes a few) for up to a minute. */
export const epochRetryPolicy: RetryPolicy = {
  initialRetryTimeMs: 500,
  maxRetryTimeMs: 500,
  multiplier: 1,
  jitter: 0.2,
  deadlineMs: 60_000,
};

type TransactionResult = ReturnType<typeof decodeTransactionResult>;
type AcceptedOutcome = Extract<MessageResult, { status: 'ACCEPTED' }>;

/** A stored message of a send, with its partition and its place in the send. */
interface PreparedEntry {
  readonly entry: OutgoingStored;
  readonly partition: number;
  readonly index: number;
}

/** A message the ledger accepted, as its publish's result says. */
interface AcceptedEntry {
  readonly topic: string;
  readonly partition: number;
  readonly message: MessageMetadata;
  readonly messageIndex: number;
  readonly outcome: AcceptedOutcome;
}

export interface PublisherOptions extends Pick<
  ConnectorContext,
  | 'organization'
  | 'signer'
  | 'registry'
  | 'trust'
  | 'database'
  | 'storage'
  | 'logger'
  | 'lifecycle'
  | 'random'
> {
  /** Counts what the ledger accepted and refused (ledgerbus_messages_accepted_total, _rejected_total). */
  readonly metrics?: ConnectorContext['metrics'];
  readonly session: NodeSession;
  readonly submitter: TransactionSubmitter;
  /** Places escrowed chunks and key shares on escrow topics (see OutgoingStoreOptions). */
  readonly placer?: EscrowPlacer;
  /** Refreshes the registry (after a partition moved); its failures are ignored. */
  readonly syncRegistry: () => Promise<void>;
  readonly epochRetryPolicy?: RetryPolicy;
  /** How concurrent sends share batches (default defaultCoalescingPolicy). */
  readonly coalescing?: Partial<CoalescingPolicy>;
  /** Whether small payloads travel inside their publish (OutgoingStoreOptions.inlinePayloads). */
  readonly inlinePayloads?: boolean;
  /** Values declared larger than this travel in parts (OutgoingStoreOptions.partBytes). */
  readonly partBytes?: number;
}

/** The partition's epoch closed under a publish: its answer, kept for when the retries run out. */
class EpochClosed extends Error {
  constructor(readonly outcome: { answer: { evidence: BlockEvidence }; result: TransactionResult }) {
    super('EPOCH_CLOSED');
  }
}

export class Publisher {
  private readonly sticky = new StickyPartitioner();
  private readonly store: OutgoingStore;
  private readonly retryWhileEpochClosed: Retrier;
  /** Standard topics' messages, queued per partition and recipient set, published in shared batches. */
  private readonly coalescer: Coalescer<OutgoingStored, SendResult | LedgerbusError>;

  constructor(private readonly options: PublisherOptions) {
    this.store = new OutgoingStore({
      ...options,
      // A part of a large value is published as soon as it is sealed, alone (it is large).
      publishPart: async (part) => {
        const { topic, partition } = part.metadata;
        const [outcome] = await this.publishBatch(topic, partition, [part]);
        if (outcome instanceof LedgerbusError) throw outcome;
      },
    });
    this.coalescer = new Coalescer({
      inFlightBatchesMax:
        options.coalescing?.inFlightBatchesMax ?? defaultCoalescingPolicy.inFlightBatchesMax,
      lingerMs: options.coalescing?.lingerMs ?? defaultCoalescingPolicy.lingerMs,
      batchEntriesMax: publishBatchMessagesMax,
      submit: (batch) => {
        const { topic, partition } = (batch[0] as OutgoingStored).metadata;
        return this.publishBatch(topic, partition, batch);
      },
      wait: (ms) => options.lifecycle.pause(ms),
    });
    this.retryWhileEpochClosed = createRetry(options.epochRetryPolicy ?? epochRetryPolicy, {
      clock: options.lifecycle.retryClock,
      random: options.random,
      retriable: (error) => error instanceof EpochClosed,
      stopped: () => options.lifecycle.stopped,
    });
  }

  /**
   * Sends `messages` on `topic`: every check that needs no payload byte first (content types,
   * declared sizes against the topic's `messageBytesMax`), then each payload encrypted into storage
   * with its size bounded as it streams, then published in signed batches that concurrent sends to
   * the same partition and recipients share (see Coalescer). Only the send's own messages decide
   * its outcome: its first refused one is what it throws. Whatever this call stored for a message
   * that is not published — a refusal by this connector or by the ledger — is deleted before it
   * throws, and every value it did not finish reading is destroyed. An unknown topic is
   * TOPIC_NOT_FOUND.
   */
  async send(topicName: string, messages: readonly OutgoingMessage[]): Promise<SendResult[]> {
    const stored: OutgoingStored[] = [];
    try {
      return await this.sendStored(topicName, messages, stored);
    } catch (error) {
      for (const message of messages) if (!message.value.readableEnded) message.value.destroy();
      await this.store.discardUnpublished(stored.filter((entry) => entry.created));
      throw error;
    }
  }

  private async sendStored(
    topicName: string,
    messages: readonly OutgoingMessage[],
    stored: OutgoingStored[],
  ): Promise<SendResult[]> {
    const topic = this.options.registry.topic(topicName);
    if (topic === undefined)
      throw new LedgerbusError(ErrorCode.TopicNotFound, `topic ${topicName} does not exist`);
    if (messages.length === 0) return [];
    if (messages.length > sendMessagesMax)
      throw new LedgerbusError(ErrorCode.Oversize, `at most ${sendMessagesMax} messages per send`);
    const limits = this.checkBeforeReading(topicName, topic.policy.messageBytesMax, messages);
    // Encrypt and store every payload first (steps 1–2); then signed batches per partition.
    // Payloads are encrypted and stored several at a time (their fsyncs overlap); each keeps its
    // place in the batch, so offsets follow the order the application gave. After one fails, no
    // other starts, and the call waits for those under way (so it can delete what they stored).
    const prepared: PreparedEntry[] = new Array<PreparedEntry>(messages.length);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < messages.length && !failed) {
        const index = next++;
        const message = messages[index] as OutgoingMessage;
        const partition =
          message.key === undefined || message.key === null
            ? this.sticky.partition(topicName, topic.partitionCount)
            : partitionForKey(message.key, topic.partitionCount);
        try {
          const entry = await this.store.store(topicName, partition, message, limits[index] as OutgoingLimit);
          stored.push(entry);
          prepared[index] = { entry, partition: entry.metadata.partition, index };
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    const workers = await Promise.allSettled(
      Array.from({ length: Math.min(storeConcurrency, messages.length) }, worker),
    );
    const refusal = workers.find((outcome) => outcome.status === 'rejected');
    if (refusal !== undefined) throw refusal.reason;
    // From here on a payload is deleted only when the ledger refuses its message (publishBatch): a
    // publish that failed otherwise (a timeout) may have been accepted, and its payload is needed.
    stored.length = 0;
    const byPartition = new Map<number, PreparedEntry[]>();
    for (const entry of prepared)
      byPartition.set(entry.partition, [...(byPartition.get(entry.partition) ?? []), entry]);
    const escrowed = topic.policy.availability === 'escrow';
    const outcomes = await Promise.all(
      [...byPartition].map(([partition, entries]) =>
        this.publishPartition(topicName, partition, escrowed, entries),
      ),
    );
    // Every message's outcome is in before the first failure (partition by partition, in the
    // send's order) is thrown: what was accepted is recorded as sent whatever else was refused.
    const results: SendResult[] = new Array<SendResult>(messages.length);
    for (const outcome of outcomes.flat()) {
      if (outcome.status === 'rejected') throw outcome.reason;
      // A value sent in parts is acknowledged with the size of all its ciphertext.
      const parts = prepared[outcome.index]?.entry.partsCiphertextBytes;
      results[outcome.index] =
        parts === undefined ? outcome.value : { ...outcome.value, size: outcome.value.size + parts };
    }
    this.sticky.next(topicName, topic.partitionCount);
    return results;
  }

  /**
   * Publishes one partition's messages of a send; each one's outcome, in order. A standard topic's
   * messages join the queues shared with concurrent sends (one per recipient set).
   */
  private async publishPartition(
    topic: string,
    partition: number,
    escrowed: boolean,
    entries: readonly PreparedEntry[],
  ): Promise<(PromiseSettledResult<SendResult> & { index: number })[]> {
    const outcomes: Promise<PromiseSettledResult<SendResult | LedgerbusError>>[] = [];
    if (escrowed) {
      // An escrowed message is published alone, never coalesced: its holders read its acceptance
      // proof, which shows the whole batch transaction, and they must not see the sender's other
      // messages. Submitted together over one connection, in order: pipelined.
      for (const { entry } of entries)
        outcomes.push(
          this.publishBatch(topic, partition, [entry]).then(
            ([value]) => ({ status: 'fulfilled', value: value as SendResult | LedgerbusError }),
            (reason: unknown) => ({ status: 'rejected', reason }),
          ),
        );
    } else if (entries.some(({ entry }) => !coalescable(entry.metadata))) {
      // A message that could fail a whole transaction (metadata the ledger would refuse to decode,
      // or large enough that 64 of them pass the transaction bound) never shares a batch with
      // other sends: this send's messages are published in batches of their own, as before
      // coalescing, so only this send can fail on them.
      for (const run of runsOfSameRecipients(entries, ({ entry }) => entry.metadata.recipients)) {
        for (let start = 0; start < run.length; start += publishBatchMessagesMax) {
          const batch = run.slice(start, start + publishBatchMessagesMax).map(({ entry }) => entry);
          const answer = this.publishBatch(topic, partition, batch).then(
            (values) => values.map((value) => ({ status: 'fulfilled', value }) as const),
            (reason: unknown) => batch.map(() => ({ status: 'rejected', reason }) as const),
          );
          batch.forEach((_, position) => outcomes.push(answer.then((list) => list[position]!)));
        }
      }
    } else {
      for (const run of runsOfSameRecipients(entries, ({ entry }) => entry.metadata.recipients)) {
        const recipients = run[0]!.entry.metadata.recipients;
        const added = this.coalescer.add(
          JSON.stringify([topic, partition, recipientSetKey(recipients)]),
          run.map(({ entry }) => entry),
        );
        outcomes.push(...added.outcomes);
        // The next run has other recipients, so another queue: added once this run is submitted, it
        // is published after it, and offsets still follow the order the application gave.
        await added.submitted;
      }
    }
    const settled = await Promise.all(outcomes);
    return settled.map((outcome, position) => {
      const index = entries[position]!.index;
      if (outcome.status === 'rejected') return { ...outcome, index };
      return outcome.value instanceof LedgerbusError
        ? { status: 'rejected', reason: outcome.value, index }
        : { status: 'fulfilled', value: outcome.value, index };
    });
  }

  /** Everything checkable before a byte of any payload is read or stored; each message's bound. */
  private checkBeforeReading(
    topicName: string,
    bytesMax: number,
    messages: readonly OutgoingMessage[],
  ): OutgoingLimit[] {
    const plaintextMax = plaintextBytesMaxFor(bytesMax);
    return messages.map((message, index) => {
      const field = messages.length === 1 ? '' : `messages[${index}].`;
      if (message.contentType !== undefined) checkContentType(message.contentType, `${field}contentType`);
      const label = message.id ?? (messages.length === 1 ? 'to send' : `${index}`);
      checkApplicationMessage(message.id, message.headers ?? {}, label);
      if (message.size === undefined) return { label, plaintextMax, declared: undefined, bytesMax };
      if (!Number.isSafeInteger(message.size) || message.size < 0) {
        throw new LedgerbusError(ErrorCode.SchemaMismatch, `${field}size: expected a non-negative integer`);
      }
      const encrypted = ciphertextBytesFor(message.size);
      if (encrypted > bytesMax) {
        throw messageTooLarge(label, topicName, bytesMax, `${message.size} bytes, ${encrypted} encrypted`);
      }
      return { label, plaintextMax: message.size, declared: message.size, bytesMax };
    });
  }

  /**
   * Signs one publish for the batch, submits it, verifies every message's acceptance proof: each
   * entry's outcome, in order, its SendResult or the LedgerbusError that refused it. A refusal of
   * the whole transaction, or a failure to publish it or to check its evidence, is the outcome of
   * every entry. What the ledger refused is discarded (if its send stored it); what it accepted is
   * recorded as sent, whatever else in the batch was refused.
   */
  private async publishBatch(
    topic: string,
    partition: number,
    entries: readonly OutgoingStored[],
  ): Promise<(SendResult | LedgerbusError)[]> {
    try {
      return await this.publishAndProve(topic, partition, entries);
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      return entries.map(() => error);
    }
  }

  private async publishAndProve(
    topic: string,
    partition: number,
    entries: readonly OutgoingStored[],
  ): Promise<(SendResult | LedgerbusError)[]> {
    const { trust } = this.options;
    const group = partitionGroupId(topic, partition);
    const metadata = entries.map((entry) => entry.metadata);
    const { answer, result } = await this.publishUntilEpochOpen(group, metadata, inlinePayloadsOf(entries));
    if (result.status === 'REJECTED') {
      for (const message of metadata) this.countRejected(topic, message.id, result.reason);
      await this.store.discardUnpublished(entries.filter((entry) => entry.created));
      throw new LedgerbusError(
        ErrorCode.MessageRejected,
        `${result.reason}${result.detail === undefined ? '' : ` (${result.detail})`}`,
        { details: { reason: result.reason } },
      );
    }
    if (result.type !== 'publish')
      throw new LedgerbusError(ErrorCode.BadProof, 'the node answered with another transaction');
    // Everything first accepted by this transaction is verified in one pass over the batch.
    const freshIndexes = result.messages.flatMap((outcome, messageIndex) =>
      outcome.status === 'ACCEPTED' && acceptedAt(outcome, answer.evidence) === messageIndex
        ? [messageIndex]
        : [],
    );
    const fresh = new Map(
      verifyAcceptances(answer.evidence, freshIndexes, trust).map((accepted, position) => [
        freshIndexes[position] as number,
        accepted,
      ]),
    );
    // Each message keeps its own O(log n) proof, cut once per batch from the verified evidence.
    const provenHere = result.messages.flatMap((outcome) => {
      const index = outcome.status === 'ACCEPTED' ? acceptedAt(outcome, answer.evidence) : undefined;
      return index === undefined ? [] : [index];
    });
    // Evidence that does not cut (it would fail its messages' checks below) keeps version-1 proofs.
    const compact = compactOrUndefined(() => compactMessageProofs(answer.evidence, provenHere));
    const proofsHere = new Map<number, AcceptanceProof>(
      provenHere.map((index, position) => [
        index,
        compact?.[position] ?? { block: answer.evidence, messageIndex: index },
      ]),
    );
    const refused: OutgoingStored[] = [];
    // The batch's accepted messages are recorded as sent together: one fsync, not one per message.
    const sent: Parameters<ConnectorDatabase['markSent']>[] = [];
    let settled: PromiseSettledResult<SendResult | LedgerbusError>[];
    try {
      // Every proof settles before the batch's rows are written: none is left to push after.
      settled = await Promise.allSettled(
        metadata.map(async (message, messageIndex): Promise<SendResult | LedgerbusError> => {
          const outcome = result.messages[messageIndex];
          if (outcome === undefined) return new LedgerbusError(ErrorCode.BadProof, 'missing message result');
          if (outcome.status === 'REJECTED') {
            this.countRejected(topic, message.id, outcome.reason);
            refused.push(entries[messageIndex] as OutgoingStored);
            return new LedgerbusError(
              ErrorCode.MessageRejected,
              `message ${message.id}: ${outcome.reason}${outcome.detail === undefined ? '' : ` (${outcome.detail})`}`,
              { details: { reason: outcome.reason } },
            );
          }
          try {
            const accepted = { topic, partition, message, messageIndex, outcome };
            return await this.proveAccepted(accepted, answer.evidence, { fresh, proofsHere }, sent);
          } catch (error) {
            if (!isLedgerbusError(error)) throw error;
            return error;
          }
        }),
      );
    } finally {
      // Also when proving another message failed: what was proven is recorded.
      const { database, metrics } = this.options;
      const firstAccepted = database.transaction(() =>
        sent.filter((row) => database.markSent(...row) && !isPartMessageId(row[1])),
      );
      // Counted once committed, and only where the row had no acceptance before: a retry of an id
      // the ledger accepted earlier is acknowledged again but is not a new message.
      for (let count = firstAccepted.length; count > 0; count--) metrics?.messageAccepted(topic);
    }
    await this.store.discardUnpublished(refused.filter((entry) => entry.created));
    return settled.map((outcome) => {
      if (outcome.status === 'rejected') throw outcome.reason;
      return outcome.value;
    });
  }

  /**
   * One accepted message's SendResult, its proof checked and the message recorded as sent. A retry
   * (an id accepted before) is proven by its first acceptance: an earlier transaction, or an
   * earlier message of this one (the same id twice in a batch of concurrent sends).
   */
  private async proveAccepted(
    { topic, partition, message, messageIndex, outcome }: AcceptedEntry,
    evidence: BlockEvidence,
    batch: {
      readonly fresh: ReadonlyMap<number, AcceptedMessage>;
      readonly proofsHere: ReadonlyMap<number, AcceptanceProof>;
    },
    sent: Parameters<ConnectorDatabase['markSent']>[],
  ): Promise<SendResult> {
    const { database, trust } = this.options;
    const inThisTransaction = acceptedAt(outcome, evidence);
    let proof: AcceptanceProof | undefined;
    let accepted: AcceptedMessage | undefined;
    if (inThisTransaction !== undefined) {
      proof = batch.proofsHere.get(inThisTransaction);
      accepted =
        inThisTransaction === messageIndex
          ? batch.fresh.get(messageIndex)
          : verifyAcceptance({ block: evidence, messageIndex: inThisTransaction }, trust);
    } else {
      const stored = database.sent(topic, outcome.id)?.proof;
      proof =
        stored === null || stored === undefined
          ? await this.acceptanceFromNode(partitionGroupId(topic, partition), outcome.id)
          : decodeAcceptanceProof(stored);
      accepted = verifyAcceptance(proof, trust);
    }
    if (proof === undefined || accepted === undefined || accepted.id !== message.id) {
      throw new LedgerbusError(ErrorCode.BadProof, `no proof of the acceptance of ${message.id}`);
    }
    const proofBytes = encodeAcceptanceProof(proof);
    sent.push([topic, message.id, accepted.offset, accepted.height, proofBytes]);
    return {
      id: message.id,
      topic,
      partition,
      offset: accepted.offset,
      height: accepted.height,
      size: message.size,
      proof: Buffer.from(proofBytes).toString('base64'),
    };
  }

  /**
   * Publishes the batch; if the partition's epoch closed under it (it is moving to a new replica
   * set), refreshes the registry and publishes it again, with a fresh nonce, once the new replicas
   * run. Message ids keep a message that was in fact accepted before from being accepted twice.
   * Past the policy's deadline the EPOCH_CLOSED refusal is returned as it came.
   */
  private async publishUntilEpochOpen(
    group: string,
    metadata: MessageMetadata[],
    payloads: (InlinePayload | null)[],
  ): Promise<{ answer: { evidence: BlockEvidence }; result: TransactionResult }> {
    try {
      return await this.retryWhileEpochClosed(async (attempt) => {
        if (attempt > 1) {
          this.options.logger.info({ group }, 'partition moved to a new replica set; publishing again');
          await this.options.syncRegistry().catch(() => undefined);
        }
        const operation = encodePublish(
          {
            sender: this.options.organization,
            nonce: randomBytes(nonceBytes),
            timestamp: this.options.lifecycle.clock.now(),
            messages: metadata,
            payloads,
          },
          this.options.signer,
        );
        const answer = await this.options.submitter.submit(group, operation);
        const result = decodeTransactionResult(answer.evidence.result);
        if (result.status === 'REJECTED' && result.reason === 'EPOCH_CLOSED') {
          throw new EpochClosed({ answer, result });
        }
        return { answer, result };
      });
    } catch (error) {
      if (error instanceof EpochClosed) return error.outcome;
      throw error;
    }
  }

  /** One ledger refusal of a message of this connector (a part of a large value is not a message of its own). */
  private countRejected(topic: string, id: string, reason: string): void {
    if (!isPartMessageId(id)) this.options.metrics?.messageRejected(topic, reason);
  }

  private async acceptanceFromNode(group: string, id: string): Promise<AcceptanceProof> {
    const answer = await this.options.session.call('receipt', { group, id });
    return decodeAcceptanceProofValue(answer.acceptance);
  }
}

/** An acceptance proof as the node sends it (a CBOR map), checked against its schema. */
function decodeAcceptanceProofValue(value: CborValue | undefined): AcceptanceProof {
  return acceptanceProofSchema.parse(value ?? null, 'proof.acceptance');
}

/** `cut()`, or undefined where it refuses the evidence (a LedgerbusError). */
function compactOrUndefined<T>(cut: () => T | undefined): T | undefined {
  try {
    return cut();
  } catch (error) {
    if (!isLedgerbusError(error)) throw error;
    return undefined;
  }
}

/** Where, within the transaction `evidence` proves, the message of `outcome` was first accepted. */
function acceptedAt(outcome: AcceptedOutcome, evidence: BlockEvidence): number | undefined {
  return outcome.height === evidence.header.height &&
    outcome.transactionIndex === evidence.transactionProof.leafIndex
    ? outcome.messageIndex
    : undefined;
}

/** Room kept in a publish for its own fields (sender, keys, nonce, signature) and CBOR framing. */
const publishFieldsBytes = 16 * 1024;

/**
 * The batch's payloads to carry inline, one per entry (null: the recipient fetches it): each sealed
 * small payload, in batch order, while the whole transaction stays within its bound. A payload left
 * out is still packed here and served to the recipient's fetch.
 */
function inlinePayloadsOf(entries: readonly OutgoingStored[]): (InlinePayload | null)[] {
  let room =
    transactionLimits.transactionBytesMax -
    publishFieldsBytes -
    entries.reduce((total, entry) => total + encodeWith(messageMetadataSchema, entry.metadata).length, 0);
  return entries.map(({ inline }) => {
    if (inline === undefined) return null;
    // Each byte string's CBOR head and the map's keys: 32 bytes is more than they take.
    const bytes = inline.header.length + inline.ciphertext.length + 32;
    if (
      bytes > room ||
      inline.header.length > transactionLimits.inlineHeaderBytesMax ||
      inline.ciphertext.length > transactionLimits.inlineCiphertextBytesMax
    ) {
      return null;
    }
    room -= bytes;
    return inline;
  });
}

/**
 * Encoded metadata above this does not share batches: 64 messages of it stay under the 1 MiB bound
 * of a transaction (transactionLimits.transactionBytesMax) with room for the batch's own fields.
 */
const coalescedMetadataBytesMax = 15 * 1024;

/**
 * Whether a message's metadata can share a batch with other sends' messages: it fits its schema,
 * decodes back as every replica will decode it (a string the encoder writes but canonical decoding
 * refuses, such as one starting with U+FEFF, would make the whole transaction MALFORMED), and it is
 * small enough that a full batch of such messages stays within the transaction bound.
 */
function coalescable(metadata: MessageMetadata): boolean {
  try {
    const bytes = encodeWith(messageMetadataSchema, metadata);
    decodeCanonical(bytes);
    return bytes.length <= coalescedMetadataBytesMax;
  } catch (error) {
    if (isLedgerbusError(error)) return false;
    throw error;
  }
}
