/**
 * Steps 19–22 on the sender's side: follows the lifecycle of what this organization sent and emits
 * `delivery.confirmed` once per recipient as the confirmations commit. State is on-chain; what was
 * already reported is kept in the database, so a restart reports nothing twice.
 */
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import { isPartMessageId } from '../parts.js';

/** How often open messages are looked up. */
const watchIntervalMs = 1_000;
/** Open messages looked up per round. */
const watchBatchMessages = 100;
/** Lookups of one round under way at once. */
const watchConcurrency = 16;

export interface DeliveryWatcherOptions extends Pick<
  ConnectorContext,
  'database' | 'logger' | 'lifecycle' | 'events'
> {
  readonly session: NodeSession;
}

export class DeliveryWatcher {
  constructor(private readonly options: DeliveryWatcherOptions) {}

  /** Watches until the connector stops; a failed round is retried at the next one. */
  async run(): Promise<void> {
    const { lifecycle } = this.options;
    while (!lifecycle.stopped) {
      try {
        await this.round();
      } catch (error) {
        if (lifecycle.stopped) return;
        this.options.logger.debug({ error: describeError(error) }, 'delivery watch: retrying');
      }
      await lifecycle.pause(watchIntervalMs);
    }
  }

  /**
   * Asks the node about each open sent message, emits `delivery.confirmed` for each recipient not
   * reported before, and records the new state and recipients (AFTER emitting: a crash between the
   * two reports them again rather than never).
   */
  async round(): Promise<void> {
    const { database, events } = this.options;
    const open = database.openSent(watchBatchMessages);
    const updates: { topic: string; id: string; state: string; delivered: string[] }[] = [];
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < open.length && !failed) {
        const row = open[next++] as (typeof open)[number];
        let answer: Awaited<ReturnType<NodeSession['call']>>;
        try {
          answer = await this.options.session.call('message', { group: row.group_id, id: row.id });
        } catch (error) {
          // The other workers take no new row: what they emit must be recorded below, by this round.
          failed = true;
          throw error;
        }
        const reported = JSON.parse(row.delivered_to) as string[];
        const delivered = [...reported];
        for (const recipient of answer.recipients) {
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
        const state = answer.state;
        if (state !== 'ACCEPTED' || delivered.length !== reported.length) {
          updates.push({ topic: row.topic, id: row.id, state, delivered });
        }
      }
    };
    // Lookups overlap (one at a time made a round last as long as 100 round trips). Every worker has
    // stopped before the updates are written, so nothing emitted is left unrecorded.
    const workers = await Promise.allSettled(
      Array.from({ length: Math.min(watchConcurrency, open.length) }, worker),
    );
    if (updates.length > 0) {
      database.transaction(() => {
        for (const update of updates)
          database.updateLifecycle(update.topic, update.id, update.state, update.delivered);
      });
    }
    const failure = workers.find((outcome) => outcome.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  }
}
