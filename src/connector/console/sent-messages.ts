/**
 * The messages this organization sent, as the console lists them: read from the connector's own
 * database (the `sent` table the publisher writes and the delivery watcher updates), never from the
 * network, so the console can only ever show what this connector sent.
 */
import type { ConnectorDatabase, SentListingRow, SentRow } from '../connector-database.js';
import { isPartMessageId } from '../parts.js';

/**
 * A sent message's state as the console shows it: the ledger's lifecycle (ACCEPTED, COMPLETED once
 * every recipient confirmed, EXPIRED) as the delivery watcher last recorded it, with DELIVERED for an
 * accepted message some recipient confirmed, and PUBLISHING for a row the ledger has not accepted yet.
 * A send the ledger refuses is answered MESSAGE_REJECTED and its row removed: it is never listed.
 */
export type SentState = 'PUBLISHING' | 'ACCEPTED' | 'DELIVERED' | 'COMPLETED' | 'EXPIRED';

export interface SentMessageSummary {
  /** Where the row is in the listing (newest is highest): what `before` takes to page on. */
  readonly position: number;
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  /** Null until the ledger accepted the message. */
  readonly offset: number | null;
  readonly recipients: readonly string[];
  /** Recipients whose confirmation the delivery watcher recorded. */
  readonly deliveredTo: readonly string[];
  readonly state: SentState;
  /** When the connector stored it (ms since epoch). */
  readonly createdAt: number;
  /** Bytes of the encrypted payload (the plaintext size is not kept). */
  readonly encryptedSize: number;
}

export interface SentMessageDetail extends SentMessageSummary {
  readonly height: number | null;
  /** Base64 of the acceptance proof (canonical CBOR), as `SendResult.proof`; null until accepted. */
  readonly proof: string | null;
}

/** What the console needs of a connector to list what it sent (Connector wires `DatabaseSentMessages`). */
export interface SentMessagesSource {
  /** Newest first, at most `limit`, older than `before` (a `position`) when given. */
  page(options: { readonly before?: number; readonly limit: number }): SentMessageSummary[];
  /** The message `id` this organization sent on `topic`, with its proof. */
  get(topic: string, id: string): SentMessageDetail | undefined;
}

/** `sent` as the console pages it, newest first (ConnectorDatabase.sentListing). */
export class DatabaseSentMessages implements SentMessagesSource {
  constructor(private readonly database: ConnectorDatabase) {}

  page(options: { readonly before?: number; readonly limit: number }): SentMessageSummary[] {
    if (!this.database.open) return [];
    const limit = Math.max(1, Math.min(options.limit, 500));
    const found: SentMessageSummary[] = [];
    let before = options.before;
    // Parts of large values are rows of their own that applications never see: skipped, then the
    // page is topped up from below so that it still holds `limit` messages when there are that many.
    for (;;) {
      const rows = this.database.sentListing(before, limit);
      for (const row of rows)
        if (!isPartMessageId(row.id) && found.length < limit) found.push(summaryOf(row));
      const last = rows.at(-1);
      if (found.length >= limit || rows.length < limit || last === undefined) return found;
      before = last.position;
    }
  }

  get(topic: string, id: string): SentMessageDetail | undefined {
    if (!this.database.open || isPartMessageId(id)) return undefined;
    const row = this.database.sent(topic, id);
    if (row === undefined) return undefined;
    return {
      // The detail is found by key: its place in the listing is not needed there.
      ...summaryOf({ ...row, position: 0 }),
      height: row.height,
      proof: row.proof === null ? null : Buffer.from(row.proof).toString('base64'),
    };
  }
}

/** The console's state of a row (see SentState). */
export function sentStateOf(row: Pick<SentRow, 'offset' | 'state' | 'delivered_to'>): SentState {
  if (row.offset === null) return 'PUBLISHING';
  if (row.state === 'COMPLETED' || row.state === 'EXPIRED') return row.state;
  return stringList(row.delivered_to).length > 0 ? 'DELIVERED' : 'ACCEPTED';
}

function summaryOf(row: SentListingRow): SentMessageSummary {
  return {
    position: row.position,
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    offset: row.offset,
    recipients: stringList(row.recipients),
    deliveredTo: stringList(row.delivered_to),
    state: sentStateOf(row),
    createdAt: row.created_at,
    encryptedSize: row.size,
  };
}

/** A JSON array of organization ids as the table keeps them; anything else reads as none. */
function stringList(json: string): string[] {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
}
