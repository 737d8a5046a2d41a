/**
 * The sender's payload retention (issue 18): once a message it sent is closed — every recipient
 * confirmed it (COMPLETED) or it EXPIRED — and its topic's `payloadRetentionMs` has passed since the
 * delivery watcher saw it close, the connector deletes its copy of the payload (and the envelope
 * header only serving it needed). The message's row stays, with its proof, state and recipients:
 * receipts and status still answer. Payloads are content-addressed, so an object goes only when no
 * other message (sent and still holding it, received, or a kept part) refers to the same key.
 *
 * A row is marked first and its object deleted after: a crash in between leaves an object nothing
 * refers to (found by nobody, harmless), never a message that claims a payload it no longer has.
 */
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';

/** How often closed messages are looked for (at once again while a pass found a full page). */
const sweepIntervalMs = 5_000;
/** Payloads deleted per pass. */
const sweepBatch = 500;

export interface PayloadRetentionOptions extends Pick<
  ConnectorContext,
  'database' | 'storage' | 'logger' | 'lifecycle'
> {
  /** The clock retention times are compared with (tests move it). Default Date.now. */
  readonly now?: () => number;
}

export class PayloadRetention {
  constructor(private readonly options: PayloadRetentionOptions) {}

  async run(): Promise<void> {
    const { lifecycle } = this.options;
    while (!lifecycle.stopped) {
      let full = false;
      try {
        full = (await this.sweep()) === sweepBatch;
      } catch (error) {
        if (lifecycle.stopped) return;
        this.options.logger.warn({ error: describeError(error) }, 'payload retention: retrying');
      }
      if (!full) await lifecycle.pause(sweepIntervalMs);
    }
  }

  /** One pass: deletes the payloads whose retention is over; returns how many messages it closed out. */
  async sweep(): Promise<number> {
    const { database, storage } = this.options;
    const due = database.retainedPayloads((this.options.now ?? Date.now)(), sweepBatch);
    if (due.length === 0) return 0;
    database.transaction(() => {
      for (const row of due) database.markPayloadDeleted(row.topic, row.id);
    });
    for (const key of new Set(due.map((row) => row.storage_key))) {
      if (!database.payloadReferenced(key)) await storage.delete(key);
    }
    this.options.logger.debug(
      { messages: due.length },
      'payload retention: deleted payloads of closed messages',
    );
    return due.length;
  }
}
