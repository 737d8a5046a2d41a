/**
 * Sending (DESIGN steps 1–6): a send's payloads encrypted into storage, then one signed publish per
 * batch of a partition, submitted, and each acceptance proof checked before the send reports
 * success. A batch refused because its partition moved to a new replica set is published again.
 */
import { randomBytes } from 'node:crypto';
import { decodeTransactionResult } from '../../contracts/results.js';
import { encodePublish, nonceBytes } from '../../contracts/transactions.js';
import type { MessageMetadata } from '../../contracts/transactions.js';
import type { CborValue } from '../../codec/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import {
  decodeAcceptanceProof,
  acceptanceProofSchema,
  encodeAcceptanceProof,
  verifyAcceptance,
  verifyAcceptances,
} from '../../proofs/index.js';
import type { AcceptanceProof, BlockEvidence } from '../../proofs/index.js';
import { createRetry } from '../../runtime/retry.js';
import type { Retrier, RetryPolicy } from '../../runtime/retry.js';
import type { OutgoingMessage, SendResult } from '../api-types.js';
import type { ConnectorContext } from '../context.js';
import { checkContentType } from '../media-type.js';
import { StickyPartitioner, partitionForKey } from '../partitioner.js';
import { ciphertextBytesFor, messageTooLarge, plaintextBytesMaxFor } from '../payload-size.js';
import type { NodeSession } from '../session/node-session.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import { publishBatches } from './batches.js';
import { OutgoingStore } from './outgoing-store.js';
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
  readonly session: NodeSession;
  readonly submitter: TransactionSubmitter;
  /** Places escrowed chunks and key shares on escrow topics (see OutgoingStoreOptions). */
  readonly placer?: EscrowPlacer;
  /** Refreshes the registry (after a partition moved); its failures are ignored. */
  readonly syncRegistry: () => Promise<void>;
  readonly epochRetryPolicy?: RetryPolicy;
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

  constructor(private readonly options: PublisherOptions) {
    this.store = new OutgoingStore(options);
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
   * with its size bounded as it streams, then one signed batch per partition. Whatever this call
   * stored for a message that is not published — a refusal by this connector or by the ledger — is
   * deleted before it throws, and every value it did not finish reading is destroyed.
   * An unknown topic is TOPIC_NOT_FOUND.
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
    // Encrypt and store every payload first (steps 1–2); then one signed batch per partition.
    // Payloads are encrypted and stored several at a time (their fsyncs overlap); each keeps its
    // place in the batch, so offsets follow the order the application gave. After one fails, no
    // other starts, and the call waits for those under way (so it can delete what they stored).
    const prepared: { entry: OutgoingStored; partition: number; index: number }[] = new Array(
      messages.length,
    );
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
    const results: SendResult[] = new Array<SendResult>(messages.length);
    const byPartition = new Map<number, typeof prepared>();
    for (const entry of prepared)
      byPartition.set(entry.partition, [...(byPartition.get(entry.partition) ?? []), entry]);
    const published = await Promise.allSettled(
      // Submitted together over one connection, in order: the batches are pipelined, not serialized.
      [...byPartition].flatMap(([partition, entries]) =>
        // An escrowed message is published alone: its holders read its acceptance proof, which shows
        // the whole batch transaction, and they must not see the sender's other messages.
        (topic.policy.availability === 'escrow'
          ? entries.map((entry) => [entry])
          : publishBatches(entries, (entry) => entry.entry.metadata.recipients)
        ).map(async (batch) => {
          const accepted = await this.publishBatch(
            topicName,
            partition,
            batch.map((entry) => entry.entry),
          );
          batch.forEach((entry, position) => {
            results[entry.index] = accepted[position] as SendResult;
          });
        }),
      ),
    );
    const failure = published.find((outcome) => outcome.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
    this.sticky.next(topicName, topic.partitionCount);
    return results;
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
   * Signs one publish for the batch, submits it, verifies every message's acceptance proof. What
   * the ledger refused is discarded (if this send stored it) before the refusal is thrown; what it
   * accepted is recorded as sent first, whatever else in the batch was refused.
   */
  private async publishBatch(
    topic: string,
    partition: number,
    entries: readonly OutgoingStored[],
  ): Promise<SendResult[]> {
    const { database, trust } = this.options;
    const group = partitionGroupId(topic, partition);
    const metadata = entries.map((entry) => entry.metadata);
    const { answer, result } = await this.publishUntilEpochOpen(group, metadata);
    if (result.status === 'REJECTED') {
      await this.store.discardUnpublished(entries.filter((entry) => entry.created));
      throw new LedgerbusError(
        ErrorCode.MessageRejected,
        `${result.reason}${result.detail === undefined ? '' : ` (${result.detail})`}`,
        { details: { reason: result.reason } },
      );
    }
    if (result.type !== 'publish')
      throw new LedgerbusError(ErrorCode.BadProof, 'the node answered with another transaction');
    // Retries of messages accepted earlier (an id sent again) are proven by their first block.
    const firstAcceptance = new Map<string, AcceptanceProof>();
    for (const outcome of result.messages) {
      if (outcome.status !== 'ACCEPTED' || outcome.height === answer.evidence.header.height) continue;
      const stored = database.sent(topic, outcome.id)?.proof;
      firstAcceptance.set(
        outcome.id,
        stored === null || stored === undefined
          ? await this.acceptanceFromNode(group, outcome.id)
          : decodeAcceptanceProof(stored),
      );
    }
    // Everything first accepted in this block is verified in one pass over the batch.
    const freshIndexes = result.messages.flatMap((outcome, messageIndex) =>
      outcome.status === 'ACCEPTED' && outcome.height === answer.evidence.header.height ? [messageIndex] : [],
    );
    const fresh = new Map(
      verifyAcceptances(answer.evidence, freshIndexes, trust).map((accepted, position) => [
        freshIndexes[position] as number,
        accepted,
      ]),
    );
    const refused: { entry: OutgoingStored; error: LedgerbusError }[] = [];
    const results = metadata.map((message, messageIndex): SendResult | undefined => {
      const outcome = result.messages[messageIndex];
      if (outcome === undefined) throw new LedgerbusError(ErrorCode.BadProof, 'missing message result');
      if (outcome.status === 'REJECTED') {
        refused.push({
          entry: entries[messageIndex] as OutgoingStored,
          error: new LedgerbusError(
            ErrorCode.MessageRejected,
            `message ${message.id}: ${outcome.reason}${outcome.detail === undefined ? '' : ` (${outcome.detail})`}`,
            { details: { reason: outcome.reason } },
          ),
        });
        return undefined;
      }
      // A retry's result points at the first acceptance: prove that block instead.
      const retried = firstAcceptance.get(message.id);
      const proof: AcceptanceProof = retried ?? { block: answer.evidence, messageIndex };
      const accepted = retried === undefined ? fresh.get(messageIndex) : verifyAcceptance(retried, trust);
      if (accepted === undefined || accepted.id !== message.id) {
        throw new LedgerbusError(ErrorCode.BadProof, `no proof of the acceptance of ${message.id}`);
      }
      const proofBytes = encodeAcceptanceProof(proof);
      database.markSent(topic, message.id, accepted.offset, accepted.height, proofBytes);
      return {
        id: message.id,
        topic,
        partition,
        offset: accepted.offset,
        height: accepted.height,
        size: message.size,
        proof: Buffer.from(proofBytes).toString('base64'),
      };
    });
    const [first] = refused;
    if (first !== undefined) {
      await this.store.discardUnpublished(refused.map(({ entry }) => entry).filter((entry) => entry.created));
      throw first.error;
    }
    return results as SendResult[];
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

  private async acceptanceFromNode(group: string, id: string): Promise<AcceptanceProof> {
    const answer = await this.options.session.call('receipt', { group, id });
    return decodeAcceptanceProofValue(answer.acceptance);
  }
}

/** An acceptance proof as the node sends it (a CBOR map), checked against its schema. */
function decodeAcceptanceProofValue(value: CborValue | undefined): AcceptanceProof {
  return acceptanceProofSchema.parse(value ?? null, 'proof.acceptance');
}
