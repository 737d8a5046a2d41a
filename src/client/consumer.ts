/**
 * The consumer: KafkaJS's `subscribe` / `run({ eachMessage })` over the connector's received-message
 * log. Each topic's cursor is the consumer group's committed sequence, stored by the connector, and
 * is committed after `eachMessage` resolves: a message is handed to the application at least once,
 * and again after a crash between processing and commit.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable, Transform, pipeline } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { ReceivedMessage } from '../connector/api-types.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { createRetry, retryDelayMs } from '../runtime/retry.js';
import type { RetryPolicy } from '../runtime/retry.js';
import { checkConnection } from './producer.js';
import type { Transport } from './transport.js';

export interface ConsumerConfig {
  readonly groupId: string;
  /** Values up to this size are fetched into `message.value`; larger ones are null: use `message.stream()`. Default 64 MiB. */
  readonly maxBufferedValueBytes?: number;
  /** Long-poll wait for new messages, at most 30 000. Default 10 000. */
  readonly maxWaitTimeInMs?: number;
  /** Messages fetched per poll (1..1000). Default 100. */
  readonly maxMessagesPerPoll?: number;
  /** Backoff between retries of a failed `eachMessage` or connector call. */
  readonly retry?: { readonly initialRetryTime?: number; readonly maxRetryTime?: number };
}

export interface ConsumerSubscribeTopics {
  readonly topic?: string;
  readonly topics?: readonly string[];
  /** With no committed sequence for the group: true starts at the first received message, false at the next one. */
  readonly fromBeginning?: boolean;
}

/** A received message, verified and decrypted by the connector. */
export interface ConsumedMessage {
  readonly id: string;
  readonly key: Buffer | null;
  /** The payload, or null when `size` is above `maxBufferedValueBytes` (then use `stream()`). */
  readonly value: Buffer | null;
  readonly sender: string;
  readonly partition: number;
  readonly offset: number;
  /** This organization's local delivery sequence: what the group's cursor counts in. */
  readonly sequence: number;
  readonly size: number;
  /** Hex sha256 of the payload; `value` and `stream()` are checked against it. */
  readonly sha256: string;
  readonly contentType: string;
  readonly receivedAt: number;
  /** Acceptance proof: base64 of canonical CBOR (block header, certificate, inclusion proofs). */
  readonly proof: string;
  /** The payload as a stream, verified against `size` and `sha256` as it ends. */
  stream(): Promise<Readable>;
}

export interface EachMessagePayload {
  readonly topic: string;
  readonly partition: number;
  readonly message: ConsumedMessage;
}

export interface ConsumerRunConfig {
  readonly eachMessage: (payload: EachMessagePayload) => Promise<void>;
}

export interface ConsumerEvents {
  /** The consumer stopped on an error retrying cannot fix (e.g. UNAUTHORIZED). */
  crash: [error: unknown];
  /** `eachMessage` or a connector call failed; it is retried after `delayMs`. */
  retry: [info: { error: unknown; topic: string; attempt: number; delayMs: number }];
  /** The group's position on `topic` moved to `sequence`: every message up to it was processed. */
  commit: [info: { topic: string; sequence: number }];
}

interface Subscription {
  readonly topic: string;
  after: number;
}

export class Consumer {
  /** One per topic subscribed to. */
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly emitter = new EventEmitter();
  /** While running: one loop per subscription. */
  private running: { readonly abort: AbortController; readonly loops: Promise<void>[] } | undefined;
  /** eachMessage calls are one at a time across topics, as KafkaJS's default concurrency of 1. */
  private processing: Promise<void> = Promise.resolve();
  private readonly maxBufferedValueBytes: number;
  private readonly waitMs: number;
  private readonly limit: number;
  /** Exponential backoff with jitter (as KafkaJS): spreads the retries of many consumers. */
  private readonly retryPolicy: RetryPolicy;

  constructor(
    private readonly transport: Transport,
    private readonly config: ConsumerConfig,
  ) {
    if (config.groupId.length === 0)
      throw new LedgerbusError(ErrorCode.BadConfig, 'groupId: must not be empty');
    this.maxBufferedValueBytes = config.maxBufferedValueBytes ?? 64 * 1024 * 1024;
    this.waitMs = Math.min(config.maxWaitTimeInMs ?? 10_000, 30_000);
    this.limit = Math.max(1, Math.min(config.maxMessagesPerPoll ?? 100, 1000));
    this.retryPolicy = {
      initialRetryTimeMs: config.retry?.initialRetryTime ?? 300,
      maxRetryTimeMs: config.retry?.maxRetryTime ?? 30_000,
      jitter: 0.2,
    };
  }

  on<K extends keyof ConsumerEvents>(event: K, listener: (...args: ConsumerEvents[K]) => void): this {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof ConsumerEvents>(event: K, listener: (...args: ConsumerEvents[K]) => void): this {
    this.emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  async connect(): Promise<void> {
    await checkConnection(this.transport);
  }

  async disconnect(): Promise<void> {
    await this.stop();
  }

  /**
   * Resolves where each topic starts: the group's committed sequence, or, with none, the beginning or
   * "now". "Now" is committed at once, so a restart before the first message does not skip the
   * messages that arrived in between.
   */
  async subscribe(subscription: ConsumerSubscribeTopics): Promise<void> {
    if (this.running !== undefined)
      throw new LedgerbusError(ErrorCode.BadConfig, 'subscribe before run(), or stop() first');
    const topics = [
      ...(subscription.topics ?? []),
      ...(subscription.topic === undefined ? [] : [subscription.topic]),
    ];
    if (topics.length === 0) throw new LedgerbusError(ErrorCode.BadConfig, 'subscribe: name a topic');
    for (const topic of topics) {
      let after = (await this.transport.json<{ sequence: number }>('GET', this.groupPath(topic))).sequence;
      if (after === 0 && subscription.fromBeginning !== true) {
        after = (await this.transport.json<{ sequence: number }>('GET', '/v1/latest-sequence')).sequence;
        if (after > 0) await this.commit(topic, after);
      }
      this.subscriptions.set(topic, { topic, after });
    }
  }

  /** Starts consuming and returns; messages are handed to `eachMessage` until `stop()`. */
  async run(config: ConsumerRunConfig): Promise<void> {
    if (this.running !== undefined)
      throw new LedgerbusError(ErrorCode.BadConfig, 'the consumer is already running');
    if (this.subscriptions.size === 0)
      throw new LedgerbusError(ErrorCode.BadConfig, 'subscribe to a topic before run()');
    const abort = new AbortController();
    const loops = [...this.subscriptions.values()].map((subscription) =>
      // Stopping ends every loop without an error (an aborted poll returns); what still fails then —
      // the commit of a page's processed messages — is a crash the application must hear of.
      this.consume(subscription, config, abort.signal).catch((error: unknown) => {
        abort.abort();
        this.emitter.emit('crash', error);
      }),
    );
    this.running = { abort, loops };
  }

  /** Stops polling; an `eachMessage` in progress finishes (and is committed) first. */
  async stop(): Promise<void> {
    const running = this.running;
    if (running === undefined) return;
    running.abort.abort();
    await Promise.all(running.loops);
    this.running = undefined;
  }

  private groupPath(topic: string): string {
    return `/v1/consumer-groups/${encodeURIComponent(this.config.groupId)}/topics/${encodeURIComponent(topic)}`;
  }

  private async commit(topic: string, sequence: number): Promise<void> {
    await this.transport.json('PUT', this.groupPath(topic), { json: { sequence } });
  }

  private async consume(
    subscription: Subscription,
    config: ConsumerRunConfig,
    signal: AbortSignal,
  ): Promise<void> {
    const { topic } = subscription;
    let attempt = 0;
    while (!signal.aborted) {
      let messages: ReceivedMessage[];
      try {
        ({ messages } = await this.transport.json<{ messages: ReceivedMessage[] }>('GET', '/v1/received', {
          query: { topic, after: subscription.after, limit: this.limit, waitMs: this.waitMs },
          signal,
          timeoutMs: this.waitMs + 30_000,
        }));
        attempt = 0;
      } catch (error) {
        if (signal.aborted) return;
        if (!isRetriable(error)) throw error;
        attempt += 1;
        if (!(await this.backoff(error, topic, attempt, signal))) return;
        continue;
      }
      // The page's processed messages are committed together when it ends, or when the loop is left
      // early (stop, crash): one connector write per page, as KafkaJS commits after each batch.
      let processedUpTo: number | undefined;
      try {
        await this.consumePage(topic, messages, config, signal, (sequence) => {
          subscription.after = sequence;
          processedUpTo = sequence;
        });
      } finally {
        if (processedUpTo !== undefined) {
          await this.commitProcessed(topic, processedUpTo);
          this.emitter.emit('commit', { topic, sequence: processedUpTo });
        }
      }
    }
  }

  /** Hands a page's messages to `eachMessage` in order, each retried until it is processed. */
  private async consumePage(
    topic: string,
    messages: readonly ReceivedMessage[],
    config: ConsumerRunConfig,
    signal: AbortSignal,
    processed: (sequence: number) => void,
  ): Promise<void> {
    let attempt = 0;
    for (const received of messages) {
      // Retry this message until it is processed: skipping it would break at-least-once delivery.
      for (;;) {
        if (signal.aborted) return;
        let payload: EachMessagePayload;
        try {
          payload = await this.consumed(topic, received, signal);
        } catch (error) {
          if (signal.aborted) return;
          if (!isRetriable(error)) throw error;
          attempt += 1;
          if (!(await this.backoff(error, topic, attempt, signal))) return;
          continue;
        }
        let handled: boolean;
        try {
          handled = await this.serially(async () => {
            // Waiting for another topic's eachMessage may have outlasted the consumer.
            if (signal.aborted) return false;
            await config.eachMessage(payload);
            return true;
          });
        } catch (error) {
          if (signal.aborted) return;
          attempt += 1;
          if (!(await this.backoff(error, topic, attempt, signal))) return;
          continue;
        }
        if (!handled) return;
        // Processed: committed with the page even if stop() came meanwhile (or it is handed out again).
        processed(received.sequence);
        attempt = 0;
        break;
      }
    }
  }

  /** Commits with retries of transient failures; gives up (the message will be redelivered) otherwise. */
  private async commitProcessed(topic: string, sequence: number): Promise<void> {
    await createRetry({ ...this.retryPolicy, retries: 4 })(() => this.commit(topic, sequence));
  }

  private async serially<T>(task: () => Promise<T>): Promise<T> {
    const previous = this.processing;
    let release!: () => void;
    this.processing = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      return await task();
    } finally {
      release();
    }
  }

  private async consumed(
    topic: string,
    received: ReceivedMessage,
    signal: AbortSignal,
  ): Promise<EachMessagePayload> {
    // A small payload comes with the listing; it is checked exactly as a fetched one.
    const listed = received.value === undefined ? undefined : Buffer.from(received.value, 'base64');
    if (listed !== undefined) checkBytes(received, listed);
    const stream = async (): Promise<Readable> => {
      if (listed !== undefined) return Readable.from([listed], { objectMode: false });
      const response = await this.transport.request('GET', payloadPath(received), { timeoutMs: null });
      if (response.body === null)
        throw new LedgerbusError(ErrorCode.RemoteError, 'the connector sent no payload body');
      const checked = verifier(received);
      // pipeline, not pipe: a connection lost mid-payload must fail the stream the application reads.
      pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), checked, () => {});
      return checked;
    };
    let value: Buffer | null = null;
    if (listed !== undefined && listed.length <= this.maxBufferedValueBytes) {
      value = listed;
    } else if (received.size <= this.maxBufferedValueBytes) {
      const bytes = await this.transport.bytes('GET', payloadPath(received), { signal, timeoutMs: null });
      checkBytes(received, bytes);
      value = bytes;
    }
    return {
      topic,
      partition: received.partition,
      message: {
        id: received.id,
        key: received.key === null ? null : Buffer.from(received.key, 'base64'),
        value,
        sender: received.sender,
        partition: received.partition,
        offset: received.offset,
        sequence: received.sequence,
        size: received.size,
        sha256: received.sha256,
        contentType: received.contentType,
        receivedAt: received.receivedAt,
        proof: received.proof,
        stream,
      },
    };
  }

  /** Waits before a retry; false when stop() came first. */
  private async backoff(
    error: unknown,
    topic: string,
    attempt: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    const delayMs = retryDelayMs(this.retryPolicy, attempt, Math.random);
    this.emitter.emit('retry', { error, topic, attempt, delayMs });
    await sleep(delayMs, signal);
    return !signal.aborted;
  }
}

/** A received message is named by topic, partition and id: ids are unique only within a partition. */
function payloadPath(received: ReceivedMessage): string {
  return `/v1/received/${encodeURIComponent(received.topic)}/${received.partition}/${encodeURIComponent(received.id)}/payload`;
}

/** checkPayload over a payload held whole. */
function checkBytes(received: ReceivedMessage, bytes: Buffer): void {
  checkPayload(received, bytes.length, createHash('sha256').update(bytes).digest('hex'));
}

/** Connector failures worth retrying; an application's own errors in eachMessage are always retried. */
function isRetriable(error: unknown): boolean {
  return isLedgerbusError(error) && error.retriable;
}

function checkPayload(received: ReceivedMessage, size: number, sha256: string): void {
  if (size !== received.size || sha256 !== received.sha256) {
    throw new LedgerbusError(
      ErrorCode.PayloadCorrupt,
      `payload of ${received.id}: got ${size} bytes with sha256 ${sha256}, expected ${received.size} bytes with ${received.sha256}`,
    );
  }
}

/** Passes the payload through and fails at its end if it is not the announced size and hash. */
function verifier(received: ReceivedMessage): Transform {
  const hash = createHash('sha256');
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      try {
        checkPayload(received, size, hash.digest('hex'));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
