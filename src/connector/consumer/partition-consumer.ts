/**
 * One partition's consumer (DESIGN steps 7–18): it owns the partition's durable cursor and its
 * back-off. Each round long-polls a page of messages from the cursor, verifies each acceptance
 * proof, fetches the payloads addressed to this organization (several at once), records them in
 * offset order (so applications see partition order), confirms them on-chain, then moves the cursor.
 * A payload that failed for a retriable reason stops the page there: the cursor stays on it.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { decodeClientRequest, messageLimits } from '../../consensus/pbft/messages.js';
import { decodeTransaction } from '../../contracts/transactions.js';
import type { InlinePayload } from '../../contracts/transactions.js';
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
import { sha256, toHex } from '../../crypto/index.js';
import { carriesPart, checkParts, partRoleOf, partsStorageKey } from '../parts.js';
import type { PartRole } from '../parts.js';
import { hashParts } from './part-payload.js';
import type { PartPlaintext } from './part-payload.js';

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

/** The inline payloads of a publish transaction, one per message (null: fetched), if it has any. */
function inlinePayloadsIn(transaction: Uint8Array): readonly (InlinePayload | null)[] | undefined {
  // A block's transaction is the client's request; the publish is its operation.
  const decoded = decodeTransaction(
    decodeClientRequest(transaction, messageLimits.requestBytesMax).operation,
  );
  return decoded.type === 'publish' ? decoded.payloads : undefined;
}

/** The value of a message that binds a part set, checked and hashed whole. */
class AssembledValue {
  constructor(
    readonly set: string,
    readonly size: number,
    readonly sha256: string,
  ) {}
}

/** What became of a message's payload: stored, opened from its publish, assembled, or an error. */
type Outcome = StoredObject | Buffer | AssembledValue | Error;

/** A message of a page, its acceptance proven. */
export interface ProvenMessage {
  readonly accepted: AcceptedMessage;
  readonly proof: AcceptanceProof;
  /** Its sealed payload, when its publish carried it (checked only when it is opened). */
  readonly inline?: InlinePayload;
}

export interface PartitionConsumerOptions extends Pick<
  ConnectorContext,
  'organization' | 'trust' | 'database' | 'storage' | 'logger' | 'lifecycle' | 'events' | 'random'
> {
  /** Counts each message received (ledgerbus_messages_received_total). */
  readonly metrics?: ConnectorContext['metrics'];
  readonly topic: string;
  readonly partition: number;
  readonly session: NodeSession;
  readonly fetcher: PayloadFetcher;
  readonly confirmer: DeliveryConfirmer;
  /** Attempts before a message that fails verification is given up (it is recorded as failed). */
  readonly fetchAttemptsMax?: number;
  readonly backoffPolicy?: RetryPolicy;
}

/** Part sets whose value is being hashed as its parts arrive, at most (the oldest is dropped). */
const runningHashesMax = 64;

/** A part set's value hashed as its parts arrive in order: parts [0, next) so far. */
interface RunningHash {
  readonly hash: Hash;
  next: number;
  size: number;
  /** A part is streaming into it. */
  busy: boolean;
}

export class PartitionConsumer {
  /** "topic/partition", the partition's consensus group. */
  readonly group: string;
  private readonly backoff: Backoff;
  /**
   * By sender and part set: the whole value's sha256 fed with each part's plaintext while it is
   * fetched, so the message that binds them needs no second read of its parts. Parts that come out
   * of order, a failed fetch or a restart drop it, and the value is then read back once. At most
   * `runningHashesMax`, the oldest dropped first.
   */
  private readonly runningHashes = new Map<string, RunningHash>();

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
      const payloads = inlinePayloadsIn(block.transaction);
      verified.forEach((accepted, position) => {
        const item = items[position] as { offset: number; messageIndex: number };
        if (accepted.offset !== item.offset || accepted.partitionId !== this.group) {
          throw new LedgerbusError(
            ErrorCode.BadProof,
            `the node's proof is for another offset than ${item.offset}`,
          );
        }
        const inline = payloads?.[item.messageIndex] ?? undefined;
        messages.push({
          accepted,
          proof: compact?.[position] ?? { block, messageIndex: item.messageIndex },
          ...(inline === undefined ? {} : { inline }),
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
    const { database, lifecycle, fetcher } = this.options;
    const pending = entries.filter(
      ({ accepted }) =>
        database.received(accepted.partitionId, accepted.id) === undefined &&
        database.receivedPart(accepted.partitionId, accepted.id) === undefined,
    );
    const outcomes = new Map<string, Outcome>();
    // A payload carried in its publish is opened here; one that does not open is fetched instead.
    const unopened: { id: string; error: string }[] = [];
    const opened = await Promise.all(
      pending.map(async (entry): Promise<boolean> => {
        if (entry.inline === undefined) return false;
        try {
          outcomes.set(entry.accepted.id, await fetcher.openInline(entry.accepted, entry.inline));
          return true;
        } catch (error) {
          unopened.push({ id: entry.accepted.id, error: describeError(error) });
          return false;
        }
      }),
    );
    if (unopened.length > 0) {
      // One line per page, however many a sender got wrong.
      this.options.logger.warn(
        { group: this.group, count: unopened.length, first: unopened[0] },
        'payloads carried in their publish do not open; fetching them from their senders',
      );
    }
    // What opened from the page itself, up to its first payload to fetch, is recorded before any
    // fetch: a sender that is slow or down holds back only its fetched payloads and what follows them.
    const firstToFetch = opened.indexOf(false);
    const ready = firstToFetch === -1 ? pending.length : firstToFetch;
    if (ready > 0) {
      const first = pending.slice(0, ready);
      const blockedAt = this.record(first, outcomes, await this.assemble(first, outcomes));
      if (blockedAt !== undefined) return blockedAt;
    }
    const rest = pending.slice(ready);
    if (rest.length === 0) return undefined;
    const toFetch = rest.filter((entry) => !outcomes.has(entry.accepted.id));
    let next = 0;
    // Parts of large values are fetched one at a time, in offset order (their index order): each
    // then feeds its value's hash as it streams, and a page of parts does not split two cores
    // between several 64 MiB streams. Other payloads are fetched beside them as before.
    let partTurn: Promise<void> = Promise.resolve();
    const worker = async (): Promise<void> => {
      const connections = fetcher.connections();
      try {
        while (next < toFetch.length && !lifecycle.stopped) {
          const { accepted } = toFetch[next++] as ProvenMessage;
          const isPart = carriesPart(accepted.metadata.headers);
          let release = (): void => {};
          if (isPart) {
            const previous = partTurn;
            partTurn = new Promise((resolve) => (release = resolve));
            await previous;
          }
          const running = this.startFeeding(accepted);
          try {
            const stored = await fetcher.fetchToStorage(accepted, connections, running?.observe);
            running?.done(stored.size);
            outcomes.set(accepted.id, stored);
          } catch (error) {
            running?.failed();
            outcomes.set(accepted.id, error instanceof Error ? error : new Error(String(error)));
          } finally {
            release();
          }
        }
      } finally {
        connections.close();
      }
    };
    await Promise.all(Array.from({ length: Math.min(fetchConcurrency, toFetch.length) }, worker));
    return this.record(rest, outcomes, await this.assemble(rest, outcomes));
  }

  /**
   * When `accepted` is the next part of a value being hashed (or its first), what feeds it to that
   * hash as it is fetched; undefined otherwise (it is then read back when its message comes).
   */
  private startFeeding(
    accepted: AcceptedMessage,
  ): { observe: (chunk: Buffer) => void; done: (size: number) => void; failed: () => void } | undefined {
    let role: PartRole | undefined;
    try {
      role = partRoleOf(accepted.metadata.headers, accepted.id);
    } catch {
      return undefined;
    }
    if (role?.kind !== 'part') return undefined;
    const key = `${accepted.sender}\n${role.set}`;
    if (role.index === 0) {
      this.runningHashes.delete(key);
      if (this.runningHashes.size >= runningHashesMax)
        this.runningHashes.delete(this.runningHashes.keys().next().value as string);
      this.runningHashes.set(key, { hash: createHash('sha256'), next: 0, size: 0, busy: false });
    }
    const running = this.runningHashes.get(key);
    if (running === undefined || running.busy || running.next !== role.index) {
      this.runningHashes.delete(key);
      return undefined;
    }
    running.busy = true;
    let fed = 0;
    return {
      observe: (chunk) => {
        running.hash.update(chunk);
        fed += chunk.length;
      },
      done: (size) => {
        running.busy = false;
        if (fed !== size) {
          this.runningHashes.delete(key);
          return;
        }
        running.next++;
        running.size += size;
      },
      failed: () => {
        this.runningHashes.delete(key);
      },
    };
  }

  /** Feeds a part opened from its publish to its value's hash, if it is the next one. */
  private feedOpened(sender: string, role: Extract<PartRole, { kind: 'part' }>, plaintext: Buffer): void {
    const key = `${sender}\n${role.set}`;
    const running = this.runningHashes.get(key);
    if (running === undefined || running.busy || running.next !== role.index) {
      this.runningHashes.delete(key);
      return;
    }
    running.hash.update(plaintext);
    running.next++;
    running.size += plaintext.length;
  }

  /** The sha256 and size of a part set's whole value, if all `count` parts were hashed as fetched. */
  private takeRunningHash(
    sender: string,
    set: string,
    count: number,
  ): { sha256: string; size: number } | undefined {
    const key = `${sender}\n${set}`;
    const running = this.runningHashes.get(key);
    this.runningHashes.delete(key);
    if (running === undefined || running.busy || running.next !== count) return undefined;
    return { sha256: running.hash.digest('hex'), size: running.size };
  }

  /**
   * The role of each of `entries` in a value sent in parts (../parts.ts), and for each message that
   * binds a part set, its outcome replaced by the whole value's: its parts (stored before, or in
   * this page ahead of it) checked against the root it was published with, and their plaintexts
   * hashed together. What does not match is PAYLOAD_CORRUPT, not retriable.
   */
  private async assemble(
    entries: readonly ProvenMessage[],
    outcomes: Map<string, Outcome>,
  ): Promise<ReadonlyMap<string, PartRole>> {
    const { database, storage } = this.options;
    const roles = new Map<string, PartRole>();
    const pageParts: { sender: string; set: string; index: number; part: PartPlaintext; root: Uint8Array }[] =
      [];
    for (const { accepted } of entries) {
      const outcome = outcomes.get(accepted.id);
      if (outcome === undefined || outcome instanceof Error) continue;
      let role: PartRole | undefined;
      try {
        role = partRoleOf(accepted.metadata.headers, `${accepted.id} from ${accepted.sender}`);
      } catch (error) {
        outcomes.set(accepted.id, error as Error);
        continue;
      }
      if (role === undefined) continue;
      roles.set(accepted.id, role);
      if (role.kind === 'part') {
        // A small last part opened from its publish was not fetched: it joins its value's hash here.
        if (Buffer.isBuffer(outcome)) this.feedOpened(accepted.sender, role, outcome);
        const part = Buffer.isBuffer(outcome)
          ? { storageKey: toHex(sha256(outcome)), size: outcome.length, bytes: outcome }
          : { storageKey: (outcome as StoredObject).key, size: (outcome as StoredObject).size };
        pageParts.push({
          sender: accepted.sender,
          set: role.set,
          index: role.index,
          part,
          root: accepted.contentRoot,
        });
        continue;
      }
      try {
        const ownBytes = Buffer.isBuffer(outcome) ? outcome.length : (outcome as StoredObject).size;
        if (ownBytes !== 0) {
          throw new LedgerbusError(
            ErrorCode.PayloadCorrupt,
            `message ${accepted.id} from ${accepted.sender}: it binds parts and carries ${ownBytes} bytes of its own`,
            { retriable: false },
          );
        }
        const found = [
          ...database.receivedPartSet(accepted.partitionId, accepted.sender, role.set).map((row) => ({
            index: row.part_index,
            part: { storageKey: row.storage_key, size: row.size },
            root: row.content_root,
          })),
          ...pageParts.filter((entry) => entry.sender === accepted.sender && entry.set === role.set),
        ].sort((a, b) => a.index - b.index);
        const label = `${accepted.id} from ${accepted.sender}`;
        if (found.some((entry, position) => entry.index !== position)) {
          throw new LedgerbusError(
            ErrorCode.PayloadCorrupt,
            `message ${label}: its parts are not numbered 0 to ${role.count - 1} exactly once`,
            { retriable: false },
          );
        }
        checkParts(
          role,
          found.map((entry) => entry.root),
          label,
        );
        const parts = found.map((entry) => entry.part);
        const hashed = this.takeRunningHash(accepted.sender, role.set, role.count);
        const total = parts.reduce((sum, part) => sum + part.size, 0);
        const whole =
          hashed !== undefined && hashed.size === total ? hashed : await hashParts(parts, storage);
        outcomes.set(accepted.id, new AssembledValue(role.set, whole.size, whole.sha256));
      } catch (error) {
        outcomes.set(accepted.id, error instanceof Error ? error : new Error(String(error)));
      }
    }
    return roles;
  }

  /**
   * Records `entries` in offset order from their outcomes, in one transaction (one fsync, not one per
   * message); what they announce is emitted only once they are durable. Returns the offset of the
   * first message to retry (nothing from it on is recorded), or undefined.
   */
  private record(
    entries: readonly ProvenMessage[],
    outcomes: ReadonlyMap<string, Outcome>,
    roles: ReadonlyMap<string, PartRole>,
  ): number | undefined {
    const { database, lifecycle, events, metrics } = this.options;
    const announcements: ConnectorEvent[] = [];
    /** Messages new here, counted once the transaction that records them committed. */
    let fresh = 0;
    const blockedAt = database.transaction((): number | undefined => {
      for (const { accepted, proof } of entries) {
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
        const role = roles.get(accepted.id);
        // A value in parts is listed whole: its parts' size and hash, its value named by its part set.
        let listed: { size: number; sha256: string; storage_key: string };
        if (outcome instanceof AssembledValue) {
          listed = { size: outcome.size, sha256: outcome.sha256, storage_key: partsStorageKey(outcome.set) };
        } else {
          // A payload opened from its publish is packed in this transaction: no file, no fsync of its own.
          const stored = Buffer.isBuffer(outcome) ? database.putPacked(outcome) : outcome;
          if (role?.kind === 'part') {
            // Kept aside, not listed: its message lists the whole value once every part is here.
            database.insertReceivedPart({
              group_id: accepted.partitionId,
              id: accepted.id,
              sender: accepted.sender,
              part_set: role.set,
              part_index: role.index,
              offset: accepted.offset,
              size: stored.size,
              storage_key: stored.key,
              content_root: accepted.contentRoot,
              proof: encodeAcceptanceProof(proof),
              received_at: lifecycle.clock.now(),
            });
            continue;
          }
          listed = { size: stored.size, sha256: stored.key, storage_key: stored.key };
        }
        const { row, inserted } = database.recordReceived({
          id: accepted.id,
          topic: accepted.topic,
          partition: accepted.partition,
          group_id: accepted.partitionId,
          offset: accepted.offset,
          sender: accepted.sender,
          ...listed,
          content_type: accepted.contentType,
          message_key: accepted.key,
          proof: encodeAcceptanceProof(proof),
          received_at: lifecycle.clock.now(),
        });
        if (inserted) fresh++;
        announcements.push({ type: 'message.received', message: toReceivedMessage(row) });
      }
      return undefined;
    });
    // Every entry of a round is of this consumer's partition, hence topic.
    for (; fresh > 0; fresh--) metrics?.messageReceived(this.options.topic);
    for (const event of announcements) events.emit(event);
    if (announcements.some((event) => event.type === 'message.received')) events.wakeReceivedWaiters();
    return blockedAt;
  }
}
