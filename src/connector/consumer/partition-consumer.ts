/**
 * One partition's consumer (DESIGN steps 7–18): it owns the partition's durable cursor and its
 * back-off. Each round long-polls a page of messages from the cursor, verifies each acceptance
 * proof, fetches the payloads addressed to this organization (several at once), records them in
 * offset order (so applications see partition order), confirms them on-chain, then moves the cursor.
 * A payload that failed for a retriable reason stops the page there: the cursor stays on it.
 */
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import {
  blockEvidenceSchema,
  compactMessageProofs,
  encodeAcceptanceProof,
  verifyAcceptances,
} from '../../proofs/index.js';
import type { AcceptanceProof, AcceptedMessage } from '../../proofs/index.js';
import { Backoff, retryDelayMs } from '../../runtime/retry.js';
import type { RetryPolicy } from '../../runtime/retry.js';
import type { ConnectorEvent } from '../api-types.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import type { StoredObject } from '../storage/index.js';
import type { DeliveryConfirmer } from './delivery-confirmer.js';
import type { PayloadFetcher } from './payload-fetcher.js';
import { toReceivedMessage } from './received-message.js';
import { partitionGroupId } from '../../contracts/registry.js';

const pollWaitMs = 10_000;
const pollLimit = 200;
/**
 * Payloads fetched at once by one partition's consumer. A small payload's fetch is a round trip
 * through two nodes to its sender's connector, so a page of them is latency-bound: bench:e2e had
 * org2's connector idle-waiting behind 8 at a time.
 */
const fetchConcurrency = 32;
/** Attempts before a payload that fails verification is given up, by default. */
const fetchAttemptsMaxDefault = 3;

/** After a failed round: 1 s doubling to 30 s, reset by a round that succeeds. */
export const consumeBackoffPolicy: RetryPolicy = {
  initialRetryTimeMs: 1_000,
  maxRetryTimeMs: 30_000,
  jitter: 0.2,
};
/** After a round stopped at a payload to retry: about a second. */
export const blockedRetryPolicy: RetryPolicy = {
  initialRetryTimeMs: 1_000,
  maxRetryTimeMs: 1_000,
  multiplier: 1,
  jitter: 0.2,
};

/** A message of a page, its acceptance proven. */
export interface ProvenMessage {
  readonly accepted: AcceptedMessage;
  readonly proof: AcceptanceProof;
}

export interface PartitionConsumerOptions extends Pick<
  ConnectorContext,
  'organization' | 'trust' | 'database' | 'logger' | 'lifecycle' | 'events' | 'random'
> {
  readonly topic: string;
  readonly partition: number;
  readonly session: NodeSession;
  readonly fetcher: PayloadFetcher;
  readonly confirmer: DeliveryConfirmer;
  /** Attempts before a message that fails verification is given up (it is recorded as failed). */
  readonly fetchAttemptsMax?: number;
  readonly backoffPolicy?: RetryPolicy;
}

export class PartitionConsumer {
  /** "topic/partition", the partition's consensus group. */
  readonly group: string;
  private readonly backoff: Backoff;

  constructor(private readonly options: PartitionConsumerOptions) {
    this.group = partitionGroupId(options.topic, options.partition);
    this.backoff = new Backoff(options.backoffPolicy ?? consumeBackoffPolicy, options.random);
  }

  /** Runs rounds until the connector stops; a failed round is logged and retried after the back-off. */
  async run(): Promise<void> {
    const { lifecycle } = this.options;
    while (!lifecycle.stopped) {
      try {
        const blocked = await this.round();
        if (blocked) await lifecycle.pause(retryDelayMs(blockedRetryPolicy, 1, this.options.random));
        this.backoff.reset();
      } catch (error) {
        if (lifecycle.stopped) return;
        const retryInMs = this.backoff.next();
        this.options.logger.warn(
          { group: this.group, error: describeError(error), retryInMs },
          'consume loop error; retrying',
        );
        await lifecycle.pause(retryInMs);
      }
    }
  }

  /** One long-poll from the cursor, received and confirmed; true when it stopped at a message to retry. */
  async round(): Promise<boolean> {
    const { database } = this.options;
    const fromOffset = database.cursor(this.group);
    const { messages, nextOffset } = await this.readPage(fromOffset);
    const mine = messages.filter((entry) => entry.accepted.recipients.includes(this.options.organization));
    const blockedAt = await this.receivePage(mine);
    const stored = mine.filter((entry) => entry.accepted.offset < (blockedAt ?? Number.MAX_SAFE_INTEGER));
    await this.options.confirmer.confirmStored(stored.map((entry) => entry.accepted));
    const end = blockedAt ?? nextOffset;
    if (end > database.cursor(this.group)) database.setCursor(this.group, end);
    return blockedAt !== undefined;
  }

  /**
   * A page of the partition from `fromOffset`, each message's acceptance verified (each block once
   * for all of its messages: a page is often one producer batch), in offset order. BAD_PROOF when a
   * proof is for another offset or partition than the node listed.
   */
  async readPage(fromOffset: number): Promise<{ messages: ProvenMessage[]; nextOffset: number }> {
    const page = await this.options.session.call('poll', {
      group: this.group,
      fromOffset,
      limit: pollLimit,
      waitMs: pollWaitMs,
    });
    const byEvidence = new Map<number, { offset: number; messageIndex: number }[]>();
    for (const { evidence, offset, messageIndex } of page.messages) {
      byEvidence.set(evidence, [...(byEvidence.get(evidence) ?? []), { offset, messageIndex }]);
    }
    const messages: ProvenMessage[] = [];
    for (const [index, items] of byEvidence) {
      const block = blockEvidenceSchema.parse(page.evidences[index] ?? null, 'proof.block');
      const indexes = items.map((item) => item.messageIndex);
      const verified = verifyAcceptances(block, indexes, this.options.trust);
      // What is kept (and put in receipts) is each message's own O(log n) proof, not the batch.
      const compact = compactMessageProofs(block, indexes);
      verified.forEach((accepted, position) => {
        const item = items[position] as { offset: number; messageIndex: number };
        if (accepted.offset !== item.offset || accepted.partitionId !== this.group) {
          throw new LedgerbusError(
            ErrorCode.BadProof,
            `the node's proof is for another offset than ${item.offset}`,
          );
        }
        messages.push({
          accepted,
          proof: compact?.[position] ?? { block, messageIndex: item.messageIndex },
        });
      });
    }
    messages.sort((a, b) => a.accepted.offset - b.accepted.offset);
    return { messages, nextOffset: page.nextOffset };
  }

  /**
   * Fetches and stores the page's new payloads, then records them in offset order. Returns the offset
   * of the first message that must be retried (nothing from it on is recorded), or undefined. A
   * payload that failed without a retriable reason `fetchAttemptsMax` times is given up: recorded as
   * failed, `message.failed` emitted, and the cursor moves past it.
   */
  async receivePage(entries: readonly ProvenMessage[]): Promise<number | undefined> {
    const { database, lifecycle, events, fetcher } = this.options;
    const pending = entries.filter(
      (entry) => database.received(entry.accepted.partitionId, entry.accepted.id) === undefined,
    );
    const outcomes = new Map<string, StoredObject | Error>();
    let next = 0;
    const worker = async (): Promise<void> => {
      const connections = fetcher.connections();
      try {
        while (next < pending.length && !lifecycle.stopped) {
          const { accepted } = pending[next++] as ProvenMessage;
          try {
            outcomes.set(accepted.id, await fetcher.fetchToStorage(accepted, connections));
          } catch (error) {
            outcomes.set(accepted.id, error instanceof Error ? error : new Error(String(error)));
          }
        }
      } finally {
        connections.close();
      }
    };
    await Promise.all(Array.from({ length: Math.min(fetchConcurrency, pending.length) }, worker));
    // The page's rows commit in one transaction (one fsync, not one per message); what they announce
    // is emitted only once they are durable.
    const announcements: ConnectorEvent[] = [];
    const blockedAt = database.transaction((): number | undefined => {
      for (const { accepted, proof } of pending) {
        const outcome = outcomes.get(accepted.id);
        if (outcome === undefined) return accepted.offset; // stopping
        if (outcome instanceof Error) {
          const code = isLedgerbusError(outcome) ? outcome.code : 'INTERNAL';
          const attempts = database.recordFailure(
            accepted.id,
            accepted.partitionId,
            accepted.offset,
            code,
            describeError(outcome),
          );
          this.options.logger.warn(
            { id: accepted.id, attempts, error: describeError(outcome) },
            'payload fetch failed; nothing stored',
          );
          // Not retriable: the payload is corrupt, or its sender does not have it; retrying cannot help.
          const permanent = !isLedgerbusError(outcome) || !outcome.retriable;
          if (permanent && attempts >= (this.options.fetchAttemptsMax ?? fetchAttemptsMaxDefault)) {
            announcements.push({
              type: 'message.failed',
              id: accepted.id,
              topic: accepted.topic,
              partition: accepted.partition,
              code,
              reason: describeError(outcome),
            });
            continue; // given up: recorded as failed, the cursor moves past it
          }
          return accepted.offset;
        }
        const row = database.insertReceived({
          id: accepted.id,
          topic: accepted.topic,
          partition: accepted.partition,
          group_id: accepted.partitionId,
          offset: accepted.offset,
          sender: accepted.sender,
          size: outcome.size,
          sha256: outcome.key,
          storage_key: outcome.key,
          content_type: accepted.contentType,
          message_key: accepted.key,
          proof: encodeAcceptanceProof(proof),
          received_at: lifecycle.clock.now(),
        });
        announcements.push({ type: 'message.received', message: toReceivedMessage(row) });
      }
      return undefined;
    });
    for (const event of announcements) events.emit(event);
    if (announcements.some((event) => event.type === 'message.received')) events.wakeReceivedWaiters();
    return blockedAt;
  }
}
