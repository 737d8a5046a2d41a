/**
 * The producer: KafkaJS's `producer.send({ topic, messages })`, where each message also names its
 * recipient organizations. Small values travel together as one JSON batch; streams and large values
 * are uploaded one by one as raw request bodies, so a value of any size is never held in memory.
 */
import { Readable, Transform } from 'node:stream';
import type { SendResult } from '../connector/api-types.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { Transport } from './transport.js';

export type MessageValue = Buffer | Uint8Array | string | Readable;

export interface ProducerMessage {
  /** Partitioning key: messages with equal keys go to the same partition, in order. Strings are UTF-8. */
  readonly key?: Buffer | Uint8Array | string | null;
  /** Bytes, a UTF-8 string, or a Readable of bytes (streamed, for values of any size). */
  readonly value: MessageValue;
  /** Recipient organization ids. */
  readonly to: readonly string[];
  /** Your id for the message; resending the same id after a failure does not publish it twice. */
  readonly id?: string;
  /** The payload's MIME type (default application/octet-stream). */
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, Buffer | Uint8Array | string>>;
  /**
   * Bytes a Readable `value` will yield, when you know them (for bytes and strings the SDK knows).
   * The connector holds the value to exactly this size, and a large value of declared size travels
   * in parts that the recipients start fetching while the rest is still being encrypted.
   */
  readonly size?: number;
}

export interface ProducerRecord {
  readonly topic: string;
  readonly messages: readonly ProducerMessage[];
}

export interface ProducerBatch {
  readonly topicMessages: readonly ProducerRecord[];
}

export interface ProducerConfig {
  /** Byte values larger than this are uploaded as streams rather than base64 in a JSON batch. Default 1 MiB. */
  readonly streamThresholdBytes?: number;
}

/** Server limits of `POST /v1/topics/:topic/batch` (see /v1/openapi.json). */
const batchMessagesMax = 1024;
/** Below the server's 16 MiB body limit with room for base64 growth (4/3) and JSON framing. */
const batchEncodedBytesMax = 12 * 1024 * 1024;

type Prepared =
  | {
      readonly kind: 'stream';
      readonly index: number;
      readonly message: ProducerMessage;
      readonly value: Readable;
      /** Sent as the upload's Content-Length, when known. */
      readonly size: number | undefined;
    }
  | {
      readonly kind: 'bytes';
      readonly index: number;
      readonly entry: BatchEntry;
      readonly encodedBytes: number;
    };

interface BatchEntry {
  key: string | null;
  value: string;
  to: readonly string[];
  id?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export class Producer {
  private disconnected = false;
  private readonly streamThresholdBytes: number;

  constructor(
    private readonly transport: Transport,
    config: ProducerConfig = {},
  ) {
    this.streamThresholdBytes = config.streamThresholdBytes ?? 1024 * 1024;
  }

  /** Checks that the connector is reachable and accepts the token (KafkaJS apps call it first). */
  async connect(): Promise<void> {
    await checkConnection(this.transport);
    this.disconnected = false;
  }

  async disconnect(): Promise<void> {
    this.disconnected = true;
  }

  /**
   * Sends the messages and resolves once the ledger accepted all of them, with one result (and its
   * acceptance proof) per message, in order. Messages are submitted in order: consecutive byte values
   * in one batch request, each stream in its own request, so per-key order is what you wrote. A
   * rejection may come after earlier messages were accepted; resend with the same `id`s to be safe.
   */
  async send(record: ProducerRecord): Promise<SendResult[]> {
    if (this.disconnected)
      throw new LedgerbusError(ErrorCode.ConnectionClosed, 'the producer is disconnected', {
        retriable: false,
      });
    const results: SendResult[] = new Array<SendResult>(record.messages.length);
    let run: Extract<Prepared, { kind: 'bytes' }>[] = [];
    let runBytes = 0;
    const flush = async (): Promise<void> => {
      if (run.length === 0) return;
      const entries = run;
      run = [];
      runBytes = 0;
      const { results: accepted } = await this.transport.json<{ results: SendResult[] }>(
        'POST',
        `/v1/topics/${encodeURIComponent(record.topic)}/batch`,
        { json: { messages: entries.map((prepared) => prepared.entry) } },
      );
      entries.forEach((prepared, position) => {
        const result = accepted[position];
        if (result === undefined)
          throw new LedgerbusError(
            ErrorCode.RemoteError,
            'the connector answered fewer results than messages',
          );
        results[prepared.index] = result;
      });
    };
    for (const [index, message] of record.messages.entries()) {
      const prepared = this.prepare(index, message);
      if (prepared.kind === 'stream') {
        await flush();
        results[index] = await this.sendStream(record.topic, prepared.message, prepared.value, prepared.size);
        continue;
      }
      if (run.length >= batchMessagesMax || runBytes + prepared.encodedBytes > batchEncodedBytesMax)
        await flush();
      run.push(prepared);
      runBytes += prepared.encodedBytes;
    }
    await flush();
    return results;
  }

  /** KafkaJS's sendBatch: the records one after another; results concatenated in order. */
  async sendBatch(batch: ProducerBatch): Promise<SendResult[]> {
    const results: SendResult[] = [];
    for (const record of batch.topicMessages) results.push(...(await this.send(record)));
    return results;
  }

  private prepare(index: number, message: ProducerMessage): Prepared {
    if (message.value instanceof Readable)
      return { kind: 'stream', index, message, value: message.value, size: message.size };
    const value = typeof message.value === 'string' ? Buffer.from(message.value, 'utf8') : message.value;
    if (value.length > this.streamThresholdBytes) {
      return {
        kind: 'stream',
        index,
        message,
        value: Readable.from([value], { objectMode: false }),
        size: value.length,
      };
    }
    const key = message.key === undefined || message.key === null ? null : base64(message.key);
    const headers = message.headers === undefined ? undefined : base64Headers(message.headers);
    const entry: BatchEntry = {
      key,
      value: base64(value),
      to: message.to,
      ...(message.id === undefined ? {} : { id: message.id }),
      ...(message.contentType === undefined ? {} : { contentType: message.contentType }),
      ...(headers === undefined ? {} : { headers }),
    };
    // An estimate that only has to keep a batch under the server's body limit.
    const encodedBytes =
      entry.value.length +
      (key?.length ?? 0) +
      JSON.stringify(entry.to).length +
      JSON.stringify(headers ?? {}).length +
      256;
    return { kind: 'bytes', index, entry, encodedBytes };
  }

  private async sendStream(
    topic: string,
    message: ProducerMessage,
    value: Readable,
    size: number | undefined,
  ): Promise<SendResult> {
    const key = message.key === undefined || message.key === null ? undefined : base64(message.key);
    const headers: Record<string, string> = {};
    if (size !== undefined) {
      if (!Number.isSafeInteger(size) || size < 0)
        throw new LedgerbusError(ErrorCode.SchemaMismatch, 'size: expected a non-negative integer');
      headers['content-length'] = String(size);
    }
    if (message.contentType !== undefined) headers['content-type'] = message.contentType;
    if (message.headers !== undefined) {
      headers['ledgerbus-headers'] = Buffer.from(JSON.stringify(base64Headers(message.headers))).toString(
        'base64',
      );
    }
    // The source's own failure (a file that vanished) explains a failed upload better than fetch's.
    let sourceError: unknown;
    const onError = (error: unknown): void => {
      sourceError = error;
    };
    value.once('error', onError);
    // fetch takes bytes only; an object-mode or text-mode Readable may yield strings.
    const bytes = value.readableObjectMode || value.readableEncoding !== null ? value.pipe(toBytes()) : value;
    try {
      return await this.transport.json<SendResult>(
        'POST',
        `/v1/topics/${encodeURIComponent(topic)}/messages`,
        {
          query: { to: message.to.join(','), key, id: message.id },
          headers,
          body: Readable.toWeb(bytes) as ReadableStream<Uint8Array>,
          // An upload takes as long as its size needs; the connector answers once it is accepted.
          timeoutMs: null,
        },
      );
    } catch (error) {
      throw sourceError ?? error;
    } finally {
      value.off('error', onError);
    }
  }
}

export async function checkConnection(transport: Transport): Promise<void> {
  const health = await transport.json<{ status: string; authenticated?: boolean }>('GET', '/healthz');
  if (health.authenticated !== true) {
    throw new LedgerbusError(
      ErrorCode.Unauthorized,
      `the connector at ${transport.base.origin} refused the API token`,
    );
  }
}

function toBytes(): Transform {
  return new Transform({
    writableObjectMode: true,
    transform(chunk: unknown, _encoding, callback) {
      if (typeof chunk === 'string') callback(null, Buffer.from(chunk, 'utf8'));
      else if (chunk instanceof Uint8Array) callback(null, chunk);
      else
        callback(
          new LedgerbusError(ErrorCode.SchemaMismatch, 'a message value stream must yield bytes or strings'),
        );
    },
  });
}

function base64(value: Buffer | Uint8Array | string): string {
  return (
    typeof value === 'string'
      ? Buffer.from(value, 'utf8')
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  ).toString('base64');
}

function base64Headers(
  headers: Readonly<Record<string, Buffer | Uint8Array | string>>,
): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, base64(value)]));
}
