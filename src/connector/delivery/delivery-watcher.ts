/**
 * Steps 19–22 on the sender's side: follows the lifecycle of what this organization sent and emits
 * `delivery.confirmed` once per recipient as the confirmations commit. State is on-chain; what was
 * already reported is kept in the database, so a restart reports nothing twice.
 */
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import type { OpenSentPosition } from '../connector-database.js';
import { isPartMessageId } from '../parts.js';
import { lifecyclesMax } from '../../protocol/client-methods.js';
import type { ResponseOf, nodeMethods } from '../../protocol/client-methods.js';

/** How often open messages are looked up (at once again while a round found a full page). */
const watchIntervalMs = 1_000;
/** Open messages looked up per round: one `messages` call per partition among them. */
const watchBatchMessages = lifecyclesMax;
/** Partitions asked at once. */
const watchConcurrency = 4;

export interface DeliveryWatcherOptions extends Pick<
  ConnectorContext,
  'database' | 'logger' | 'lifecycle' | 'events' | 'registry'
> {
  /** Counts the state changes it records (ledgerbus_messages_delivered_total, _completed_total, _expired_total). */
  readonly metrics?: ConnectorContext['metrics'];
  readonly session: NodeSession;
  /** The clock retention times are read from (tests move it). Default Date.now. */
  readonly now?: () => number;
  /** Open messages looked up per round. Default `lifecyclesMax`. */
  readonly pageSize?: number;
}

export class DeliveryWatcher {
  private readonly pageSize: number;
  /**
   * Where the last round's page ended: rounds go through every open message in turn (a message
   * that stays open, to a recipient that is down, must not hide the ones after it), and start
   * again from the oldest after a short page.
   */
  private cursor: OpenSentPosition | undefined;

  constructor(private readonly options: DeliveryWatcherOptions) {
    this.pageSize = options.pageSize ?? watchBatchMessages;
  }

  /** Watches until the connector stops; a failed round is retried at the next one. */
  async run(): Promise<void> {
    const { lifecycle } = this.options;
    while (!lifecycle.stopped) {
      let full = false;
      try {
        full = (await this.round()) === this.pageSize;
      } catch (error) {
        if (lifecycle.stopped) return;
        this.options.logger.debug({ error: describeError(error) }, 'delivery watch: retrying');
      }
      if (!full) await lifecycle.pause(watchIntervalMs);
    }
  }

  /**
   * Asks a node about the open sent messages (one call per partition), emits `delivery.confirmed`
   * for each recipient not reported before, and records the new state and recipients (AFTER
   * emitting: a crash between the two reports them again rather than never). A message that closed
   * (COMPLETED, or EXPIRED) is given the time from which its payload may be deleted: now plus its
   * topic's `payloadRetentionMs`. Returns how many open messages it looked at.
   */
  async round(): Promise<number> {
    const { database, events } = this.options;
    const open = database.openSent(this.pageSize, this.cursor);
    const last = open.at(-1);
    this.cursor =
      open.length < this.pageSize || last === undefined
        ? undefined
        : { created_at: last.created_at, topic: last.topic, id: last.id };
    const byGroup = new Map<string, (typeof open)[number][]>();
    for (const row of open) {
      const rows = byGroup.get(row.group_id);
      if (rows === undefined) byGroup.set(row.group_id, [row]);
      else rows.push(row);
    }
    const groups = [...byGroup];
    const updates: {
      topic: string;
      id: string;
      state: string;
      delivered: string[];
      retainUntil?: number;
      /** No recipient had confirmed it before this round: it leaves ACCEPTED for DELIVERED. */
      firstDelivery: boolean;
    }[] = [];
    let next = 0;
    let failed = false;
    const now = this.options.now ?? Date.now;
    const worker = async (): Promise<void> => {
      while (next < groups.length && !failed) {
        const [group, rows] = groups[next++] as (typeof groups)[number];
        let answer: ResponseOf<(typeof nodeMethods)['messages']>;
        try {
          answer = await this.options.session.call('messages', { group, ids: rows.map((row) => row.id) });
        } catch (error) {
          // The other workers take no new partition: what they emit must be recorded below, by this round.
          failed = true;
          throw error;
        }
        const lifecycles = new Map(answer.messages.map((message) => [message.id, message]));
        for (const row of rows) {
          const lifecycle = lifecycles.get(row.id);
          if (lifecycle === undefined) continue;
          const reported = JSON.parse(row.delivered_to) as string[];
          const delivered = [...reported];
          for (const recipient of lifecycle.recipients) {
            const organization = recipient.organization;
            if (recipient.state !== 'DELIVERED' || delivered.includes(organization)) continue;
            delivered.push(organization);
            // A part of a large value is followed like any message; the application hears of its message.
            if (isPartMessageId(row.id)) continue;
            events.emit({
              type: 'delivery.confirmed',
              id: row.id,
              topic: row.topic,
              partition: row.partition,
              recipient: organization,
              height: recipient.height ?? 0,
            });
          }
          const state = lifecycle.state;
          if (state === 'ACCEPTED' && delivered.length === reported.length) continue;
          const retainUntil = state === 'ACCEPTED' ? undefined : this.retainUntil(row.topic, now());
          updates.push({
            topic: row.topic,
            id: row.id,
            state,
            delivered,
            ...(retainUntil === undefined ? {} : { retainUntil }),
            firstDelivery: reported.length === 0 && delivered.length > 0,
          });
        }
      }
    };
    // Partitions are asked at once (one at a time made a round last as long as their round trips).
    // Every worker has stopped before the updates are written, so nothing emitted is left unrecorded.
    const workers = await Promise.allSettled(
      Array.from({ length: Math.min(watchConcurrency, groups.length) }, worker),
    );
    if (updates.length > 0) {
      database.transaction(() => {
        for (const update of updates)
          database.updateLifecycle(
            update.topic,
            update.id,
            update.state,
            update.delivered,
            update.retainUntil,
          );
      });
      this.count(updates);
    }
    const failure = workers.find((outcome) => outcome.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
    return open.length;
  }

  /**
   * Counts the transitions `updates` recorded, once committed. Each is counted once: a message is
   * read only while its row says ACCEPTED, and its row's recipients say whether one confirmed before.
   * Parts of a large value are followed here like messages but are not counted as messages.
   */
  private count(
    updates: readonly { topic: string; id: string; state: string; firstDelivery: boolean }[],
  ): void {
    const metrics = this.options.metrics;
    if (metrics === undefined) return;
    for (const { topic, id, state, firstDelivery } of updates) {
      if (isPartMessageId(id)) continue;
      if (firstDelivery) metrics.messageDelivered(topic);
      if (state === 'COMPLETED') metrics.messageCompleted(topic);
      else if (state === 'EXPIRED') metrics.messageExpired(topic);
    }
  }

  /**
   * When a closed message's payload may go: after its topic's retention. Never for an escrow topic,
   * whose auditors may still need the sender's copy (DESIGN §7), nor for a topic this connector no
   * longer knows (kept rather than guessed).
   */
  private retainUntil(topic: string, now: number): number | undefined {
    const policy = this.options.registry.topic(topic)?.policy;
    if (policy === undefined || policy.availability === 'escrow') return undefined;
    return now + policy.payloadRetentionMs;
  }
}
