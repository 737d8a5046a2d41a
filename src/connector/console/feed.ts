/**
 * What keeps the messages view current: the rows it shows, as they appear and change, pushed on the
 * console's own WebSocket (/console/events).
 *
 * Received messages arrive as the connector's `message.received` events. Sent messages have no event
 * of their own for being stored, accepted or completed (applications learn those from `send`'s answer
 * and `delivery.confirmed`), so the feed reads the newest page of sent rows from the database once
 * a second while a console is watching (and soon after a `delivery.confirmed`), and pushes the rows
 * that are new or changed. It runs only while someone is subscribed. Only that newest page is live:
 * older pages stay as the browser was served them.
 */
import type { ConnectorEvent, ReceivedMessage } from '../api-types.js';
import type { SentMessageSummary, SentState } from './sent-messages.js';
import type { ConsoleConnector, ConsoleLogger } from './source.js';
import { messagesPageSize, receivedHref, receivedPage, sentHref } from './views/messages.js';

/** A sent row as the messages view shows it (the browser script builds its cells from this). */
export interface LiveSentRow {
  readonly position: number;
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number | null;
  readonly recipients: readonly string[];
  readonly state: SentState;
  readonly createdAt: number;
  readonly href: string;
}

export interface LiveReceivedRow {
  readonly sequence: number;
  readonly id: string;
  readonly sender: string;
  readonly topic: string;
  readonly partition: number;
  readonly size: number;
  readonly receivedAt: number;
  readonly href: string;
}

export type LiveUpdate =
  | { readonly type: 'sent'; readonly message: LiveSentRow }
  | { readonly type: 'received'; readonly message: LiveReceivedRow };

export interface ConsoleFeedOptions {
  readonly api: ConsoleConnector;
  readonly logger: ConsoleLogger;
  /** How often sent rows are read while someone watches; default 1 s. */
  readonly pollMs?: number;
}

/** How soon after a `delivery.confirmed` the rows are read (the watcher records the state just after emitting). */
const eventPollDelayMs = 250;

type Subscriber = (update: LiveUpdate) => void;

export class ConsoleFeed {
  private readonly subscribers = new Set<Subscriber>();
  /** What subscribers were last told of each sent row of the newest page: at most a page of entries. */
  private readonly known = new Map<string, string>();
  private readonly pollMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private soon: ReturnType<typeof setTimeout> | undefined;
  private unlisten: (() => void) | undefined;

  constructor(private readonly options: ConsoleFeedOptions) {
    this.pollMs = options.pollMs ?? 1_000;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /**
   * Adds a subscriber. It is sent the newest rows of both tables at once (what may have changed
   * between its page being rendered and now), then every change. Returns what removes it.
   */
  async subscribe(subscriber: Subscriber): Promise<() => void> {
    if (this.subscribers.size === 0) this.start();
    // Pushed to the others first, so that the snapshot below cannot hide a change from them.
    this.poll();
    // Subscribed before the received window is read: a message arriving meanwhile comes twice at
    // worst (the browser keeps the row it has), never not at all.
    this.subscribers.add(subscriber);
    // The same instant as that poll (database reads are synchronous): what the others were told.
    for (const row of this.sentWindow()) {
      this.known.set(keyOf(row), signatureOf(row));
      subscriber({ type: 'sent', message: liveSentRow(row) });
    }
    try {
      const { rows } = await receivedPage(this.options.api, undefined);
      for (const message of rows.reverse())
        subscriber({ type: 'received', message: liveReceivedRow(message) });
    } catch (error) {
      this.options.logger.debug({ err: error }, 'console feed: could not read received messages');
    }
    return () => {
      this.subscribers.delete(subscriber);
      if (this.subscribers.size === 0) this.stop();
    };
  }

  /** Stops polling and drops every subscriber (the server is closing). */
  close(): void {
    this.subscribers.clear();
    this.stop();
  }

  private start(): void {
    this.unlisten = this.options.api.onEvent((event) => this.onEvent(event));
    this.timer = setInterval(() => this.poll(), this.pollMs);
    this.timer.unref();
  }

  private stop(): void {
    this.unlisten?.();
    this.unlisten = undefined;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.timer = undefined;
    this.soon = undefined;
    this.known.clear();
  }

  private onEvent(event: ConnectorEvent): void {
    if (event.type === 'message.received') {
      this.broadcast({ type: 'received', message: liveReceivedRow(event.message) });
    } else if (event.type === 'delivery.confirmed' && event.recipient !== this.options.api.organization) {
      // Another organization confirmed something this one sent (this one confirming what it
      // received is reported with itself as the recipient): its state changes about now.
      this.soon ??= setTimeout(() => {
        this.soon = undefined;
        this.poll();
      }, eventPollDelayMs);
    }
  }

  /** Reads the newest page of sent rows and pushes those new or changed since subscribers were told. */
  private poll(): void {
    if (this.options.api.sentMessages === undefined || this.subscribers.size === 0) return;
    try {
      const rows = new Map<string, SentMessageSummary>();
      for (const row of this.sentWindow()) rows.set(keyOf(row), row);
      for (const [key, row] of rows) {
        const signature = signatureOf(row);
        if (this.known.get(key) === signature) continue;
        this.known.set(key, signature);
        this.broadcast({ type: 'sent', message: liveSentRow(row) });
      }
      // Rows pushed off the page by newer ones are forgotten: the map stays as small as a page.
      for (const key of this.known.keys()) if (!rows.has(key)) this.known.delete(key);
    } catch (error) {
      this.options.logger.debug({ err: error }, 'console feed: could not read sent messages');
    }
  }

  private sentWindow(): SentMessageSummary[] {
    return this.options.api.sentMessages?.page({ limit: messagesPageSize }) ?? [];
  }

  private broadcast(update: LiveUpdate): void {
    for (const subscriber of this.subscribers) {
      try {
        subscriber(update);
      } catch (error) {
        this.options.logger.debug({ err: error }, 'console feed: a subscriber failed');
      }
    }
  }
}

function keyOf(message: { readonly topic: string; readonly id: string }): string {
  return `${message.topic}\u0000${message.id}`;
}

/** What a subscriber is told again when it changes. */
function signatureOf(row: SentMessageSummary): string {
  return JSON.stringify([row.state, row.offset, row.deliveredTo]);
}

function liveSentRow(row: SentMessageSummary): LiveSentRow {
  return {
    position: row.position,
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    offset: row.offset,
    recipients: row.recipients,
    state: row.state,
    createdAt: row.createdAt,
    href: sentHref(row),
  };
}

function liveReceivedRow(message: ReceivedMessage): LiveReceivedRow {
  return {
    sequence: message.sequence,
    id: message.id,
    sender: message.sender,
    topic: message.topic,
    partition: message.partition,
    size: message.size,
    receivedAt: message.receivedAt,
    href: receivedHref(message),
  };
}
