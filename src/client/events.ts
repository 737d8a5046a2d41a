/**
 * Live connector events over the `/v1/events` WebSocket, with typed event names and automatic
 * reconnection. Events are notifications: those emitted while disconnected are not replayed, so
 * anything that must not be missed is read with a consumer (the received log) instead.
 */
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import type { ConnectorEvent } from '../connector/api-types.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { retryDelayMs } from '../runtime/retry.js';
import type { Transport } from './transport.js';

export type ConnectorEventType = ConnectorEvent['type'];
export type ConnectorEventOf<T extends ConnectorEventType> = Extract<ConnectorEvent, { type: T }>;

export type LedgerbusEventMap = { [T in ConnectorEventType]: [event: ConnectorEventOf<T>] } & {
  /** Every connector event, whatever its type. */
  event: [event: ConnectorEvent];
  /** The socket is open (first time and after each reconnection). */
  connected: [];
  /** The socket closed; a reconnection follows unless `close()` was called. */
  disconnected: [info: { code: number; reason: string }];
  /** A connection attempt failed (e.g. UNAUTHORIZED); retried with backoff. */
  failed: [error: LedgerbusError];
};

export interface EventsOptions {
  /** First reconnection delay, doubled up to `maxReconnectDelayMs`, each ±20 % at random. Default 250. */
  readonly reconnectDelayMs?: number;
  readonly maxReconnectDelayMs?: number;
}

export class LedgerbusEvents {
  private readonly emitter = new EventEmitter();
  private socket: WebSocket | undefined;
  private closed = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly reconnectDelayMs: number;
  private readonly maxReconnectDelayMs: number;

  constructor(
    private readonly transport: Transport,
    options: EventsOptions = {},
  ) {
    this.reconnectDelayMs = options.reconnectDelayMs ?? 250;
    this.maxReconnectDelayMs = options.maxReconnectDelayMs ?? 10_000;
    this.open();
  }

  on<K extends keyof LedgerbusEventMap>(name: K, listener: (...args: LedgerbusEventMap[K]) => void): this {
    this.emitter.on(name, listener as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof LedgerbusEventMap>(name: K, listener: (...args: LedgerbusEventMap[K]) => void): this {
    this.emitter.once(name, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof LedgerbusEventMap>(name: K, listener: (...args: LedgerbusEventMap[K]) => void): this {
    this.emitter.off(name, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Whether `close()` was called (the stream never reconnects again). */
  get isClosed(): boolean {
    return this.closed;
  }

  get connected(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Resolves once the socket is open (at once if it is), so no event emitted after it is missed. */
  ready(): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.closed)
      return Promise.reject(
        new LedgerbusError(ErrorCode.ConnectionClosed, 'the event stream is closed', { retriable: false }),
      );
    return new Promise((resolve) => this.once('connected', resolve));
  }

  /** Closes the socket and stops reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
      else socket.close(1000);
    });
  }

  private open(): void {
    const url = this.transport.url('/v1/events');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${this.transport.token}` } });
    this.socket = socket;
    let opened = false;
    let reported = false;
    socket.on('open', () => {
      opened = true;
      this.attempt = 0;
      this.emitter.emit('connected');
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      let event: ConnectorEvent;
      try {
        event = JSON.parse(String(data)) as ConnectorEvent;
      } catch {
        return; // Not an event this version understands; the stream goes on.
      }
      this.emitter.emit(event.type, event);
      this.emitter.emit('event', event);
    });
    socket.on('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      const error =
        status === 401
          ? new LedgerbusError(ErrorCode.Unauthorized, 'the connector refused the API token for /v1/events')
          : new LedgerbusError(
              ErrorCode.ConnectionClosed,
              `the connector answered HTTP ${status} to /v1/events`,
              {
                retriable: true,
              },
            );
      this.emitter.emit('failed', error);
      // Already reported: the 'error' that terminate() raises for the aborted handshake is not news.
      reported = true;
      response.destroy();
      socket.terminate(); // ends in 'close', hence a reconnection attempt with backoff
    });
    socket.on('error', (error) => {
      if (reported || this.closed) return;
      this.emitter.emit(
        'failed',
        new LedgerbusError(ErrorCode.ConnectionClosed, `events: ${error.message}`, {
          retriable: true,
          cause: error,
        }),
      );
    });
    socket.on('close', (code, reason) => {
      if (opened) this.emitter.emit('disconnected', { code, reason: reason.toString() });
      if (!this.closed) this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    this.attempt += 1;
    // Jittered, so that the clients of a connector that restarted do not all come back at once.
    const delay = retryDelayMs(
      { initialRetryTimeMs: this.reconnectDelayMs, maxRetryTimeMs: this.maxReconnectDelayMs, jitter: 0.2 },
      this.attempt,
      Math.random,
    );
    this.reconnectTimer = setTimeout(() => {
      if (!this.closed) this.open();
    }, delay);
    // Reconnecting must not keep a process alive that has nothing else to do.
    this.reconnectTimer.unref();
  }
}
