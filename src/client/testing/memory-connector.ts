/**
 * An in-memory `ConnectorApi` for the HTTP-layer and SDK tests: it implements the interface with
 * real buffers and streams (no ledger), so the transport can be tested without the connector core.
 * Sent values are consumed by hashing, never buffered, so streaming tests measure the transport.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { AmbiguousMessageIdError } from '../../connector/message-location.js';
import type {
  ConnectorApi,
  ConnectorEvent,
  MessageLocation,
  MessageStatus,
  OutgoingMessage,
  ReceiptBundle,
  ReceivedMessage,
  SendResult,
} from '../../connector/api-types.js';

export interface SentRecord {
  readonly topic: string;
  readonly id: string;
  readonly key: Uint8Array | null;
  readonly to: readonly string[];
  readonly contentType: string | undefined;
  readonly headers: Readonly<Record<string, Uint8Array>> | undefined;
  readonly size: number;
  readonly sha256: string;
  readonly partition: number;
  readonly offset: number;
}

/** Deterministic pseudo-random bytes, produced chunk by chunk: `size` bytes never exist at once. */
export function generatedStream(size: number, seed = 1, chunkBytes = 64 * 1024): Readable {
  let produced = 0;
  let state = seed >>> 0 || 1;
  return new Readable({
    read() {
      if (produced >= size) {
        this.push(null);
        return;
      }
      const length = Math.min(chunkBytes, size - produced);
      const chunk = Buffer.allocUnsafe(length);
      for (let index = 0; index < length; index += 4) {
        // xorshift32: cheap, and different bytes everywhere so a dropped or repeated chunk shows in the hash.
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        state >>>= 0;
        if (index + 4 <= length) chunk.writeUInt32LE(state, index);
        else
          for (let byte = index; byte < length; byte += 1)
            chunk[byte] = (state >>> ((byte - index) * 8)) & 0xff;
      }
      produced += length;
      this.push(chunk);
    },
  });
}

export async function sha256Of(stream: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    const bytes = chunk as Buffer;
    size += bytes.length;
    hash.update(bytes);
  }
  return { sha256: hash.digest('hex'), size };
}

export interface DeliverOptions {
  readonly topic: string;
  /** Default 0. */
  readonly partition?: number;
  readonly sender?: string;
  readonly key?: Buffer | null;
  readonly id?: string;
  readonly contentType?: string;
}

type Failable = 'send' | 'received' | 'payload' | 'status' | 'receipt';

export class MemoryConnector implements ConnectorApi {
  readonly sent: SentRecord[] = [];
  private readonly inbox: { message: ReceivedMessage; body: () => Readable }[] = [];
  private readonly cursors = new Map<string, number>();
  private readonly listeners = new Set<(event: ConnectorEvent) => void>();
  private readonly waiters = new Set<() => void>();
  private readonly failures = new Map<Failable, Error>();
  private readonly offsets = new Map<string, number>();
  /** Every commitSequence call, in order (lets tests see at-least-once commits). */
  readonly commits: { groupId: string; topic: string; sequence: number }[] = [];
  /** Payload requests served (`payload`), to see which payloads came with their listing instead. */
  payloadRequests = 0;
  /** As the connector lists payloads it packed: values of `deliver` up to this size come with the listing (0: none). */
  listValuesUpTo = 0;
  private readonly listedValues = new Map<ReceivedMessage, Buffer>();

  constructor(readonly organization = 'org1') {}

  /** The next call of `method` throws `error`. */
  failNext(method: Failable, error: Error): void {
    this.failures.set(method, error);
  }

  private maybeFail(method: Failable): void {
    const error = this.failures.get(method);
    if (error === undefined) return;
    this.failures.delete(method);
    throw error;
  }

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<SendResult[]> {
    this.maybeFail('send');
    const results: SendResult[] = [];
    for (const message of messages) {
      const { sha256, size } = await sha256Of(message.value);
      const id = message.id ?? `${topic}-${this.sent.length + 1}`;
      const partition = message.key === undefined || message.key === null ? 0 : message.key.length % 2;
      const offsetKey = `${topic}/${partition}`;
      const offset = this.offsets.get(offsetKey) ?? 0;
      this.offsets.set(offsetKey, offset + 1);
      this.sent.push({
        topic,
        id,
        key: message.key ?? null,
        to: [...message.to],
        contentType: message.contentType,
        headers: message.headers,
        size,
        sha256,
        partition,
        offset,
      });
      results.push({
        id,
        topic,
        partition,
        offset,
        height: this.sent.length,
        size,
        proof: Buffer.from(sha256).toString('base64'),
      });
    }
    return results;
  }

  /** A message from another organization arrives (stored, waiters woken, event emitted). */
  deliver(options: DeliverOptions & { value: Buffer }): ReceivedMessage {
    const value = options.value;
    const message = this.store(
      options,
      () => Readable.from([value], { objectMode: false }),
      value.length,
      createHash('sha256').update(value).digest('hex'),
    );
    if (value.length <= this.listValuesUpTo) this.listedValues.set(message, value);
    return message;
  }

  /** Lists `value` with message `id` instead of its payload (to test a forged listing). */
  forgeListedValue(id: string, value: Buffer): void {
    const entry = this.entry(id, undefined);
    if (entry === undefined) throw new Error(`no message ${id}`);
    this.listedValues.set(entry.message, value);
  }

  /** Like `deliver`, with a generated payload of `size` bytes that is never held whole. */
  async deliverGenerated(options: DeliverOptions & { size: number; seed: number }): Promise<ReceivedMessage> {
    const { sha256 } = await sha256Of(generatedStream(options.size, options.seed));
    return this.store(options, () => generatedStream(options.size, options.seed), options.size, sha256);
  }

  private store(
    options: DeliverOptions,
    body: () => Readable,
    size: number,
    sha256: string,
  ): ReceivedMessage {
    const sequence = this.inbox.length + 1;
    const message: ReceivedMessage = {
      sequence,
      id: options.id ?? `in-${sequence}`,
      topic: options.topic,
      partition: options.partition ?? 0,
      offset: sequence - 1,
      sender: options.sender ?? 'org2',
      size,
      sha256,
      contentType: options.contentType ?? 'application/octet-stream',
      key: options.key === undefined || options.key === null ? null : options.key.toString('base64'),
      receivedAt: 1_700_000_000_000 + sequence,
      proof: Buffer.from(`proof-${sequence}`).toString('base64'),
    };
    this.inbox.push({ message, body });
    for (const wake of [...this.waiters]) wake();
    this.emit({ type: 'message.received', message });
    return message;
  }

  /** Serves `body` instead of the real payload of `id` (to test corrupted or truncated transfers). */
  replacePayload(id: string, body: () => Readable, at?: MessageLocation): void {
    const index = this.inbox.indexOf(this.entry(id, at) as (typeof this.inbox)[number]);
    const entry = this.inbox[index];
    if (entry === undefined) throw new Error(`no message ${id}`);
    this.inbox[index] = { ...entry, body };
  }

  emit(event: ConnectorEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  async received(options: {
    topic?: string;
    after: number;
    limit: number;
    waitMs?: number;
  }): Promise<ReceivedMessage[]> {
    this.maybeFail('received');
    const pick = (): ReceivedMessage[] =>
      this.inbox
        .map((entry) => entry.message)
        .filter(
          (message) =>
            message.sequence > options.after &&
            (options.topic === undefined || message.topic === options.topic),
        )
        .slice(0, options.limit)
        .map((message) => {
          const listed = this.listedValues.get(message);
          return listed === undefined ? message : { ...message, value: listed.toString('base64') };
        });
    let found = pick();
    if (found.length === 0 && (options.waitMs ?? 0) > 0) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, options.waitMs);
        this.waiters.add(wake);
      });
      found = pick();
    }
    return found;
  }

  receivedMessage(id: string, at?: MessageLocation): ReceivedMessage | undefined {
    return this.entry(id, at)?.message;
  }

  async deleteReceived(
    id: string,
    at?: MessageLocation,
  ): Promise<{ id: string; topic: string; partition: number }> {
    const entry = this.entry(id, at);
    if (entry === undefined) throw new LedgerbusError(ErrorCode.MessageNotFound, `no received message ${id}`);
    this.inbox.splice(this.inbox.indexOf(entry), 1);
    return { id: entry.message.id, topic: entry.message.topic, partition: entry.message.partition };
  }

  async payload(id: string, at?: MessageLocation): Promise<Readable> {
    this.payloadRequests += 1;
    this.maybeFail('payload');
    const entry = this.entry(id, at);
    if (entry === undefined) throw new LedgerbusError(ErrorCode.MessageNotFound, `no received message ${id}`);
    return entry.body();
  }

  /** As the connector: (topic, partition, id) names one message; an id alone must name only one. */
  private entry(id: string, at: MessageLocation | undefined): (typeof this.inbox)[number] | undefined {
    const matches = this.inbox.filter(
      ({ message }) =>
        message.id === id &&
        (at === undefined || (message.topic === at.topic && message.partition === at.partition)),
    );
    if (matches.length > 1) {
      throw new AmbiguousMessageIdError(
        id,
        matches.map(({ message }) => ({
          topic: message.topic,
          partition: message.partition,
          id,
          sender: message.sender,
        })),
        'name one, as GET /v1/received/{topic}/{partition}/{id}',
      );
    }
    return matches[0];
  }

  latestSequence(): number {
    return this.inbox.length;
  }

  committedSequence(groupId: string, topic: string): number {
    return this.cursors.get(`${groupId}\u0000${topic}`) ?? 0;
  }

  commitSequence(groupId: string, topic: string, sequence: number): void {
    this.commits.push({ groupId, topic, sequence });
    this.cursors.set(`${groupId}\u0000${topic}`, sequence);
  }

  /** How long `status` takes (to test client timeouts). */
  statusDelayMs = 0;

  async status(topic: string, id: string, options: { partition?: number } = {}): Promise<MessageStatus> {
    this.maybeFail('status');
    if (this.statusDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.statusDelayMs));
    const sent = this.sentMessage(topic, id, options.partition);
    if (sent === undefined)
      throw new LedgerbusError(ErrorCode.MessageNotFound, `no message ${id} on ${topic}`);
    return {
      id,
      state: 'ACCEPTED',
      sender: this.organization,
      partition: sent.partition,
      offset: sent.offset,
      recipients: sent.to.map((organization) => ({ organization, state: 'PENDING' as const })),
    };
  }

  async receipt(topic: string, id: string, options: { partition?: number } = {}): Promise<ReceiptBundle> {
    this.maybeFail('receipt');
    const sent = this.sentMessage(topic, id, options.partition);
    if (sent === undefined)
      throw new LedgerbusError(ErrorCode.MessageNotFound, `no message ${id} on ${topic}`);
    return {
      format: 'ledgerbus-receipt/v1',
      network: 'test',
      message: {
        id,
        topic,
        partition: sent.partition,
        offset: sent.offset,
        sender: this.organization,
        recipients: sent.to,
        contentRoot: sent.sha256,
        size: sent.size,
        height: 1,
      },
      deliveredTo: [],
      proof: Buffer.from('receipt').toString('base64'),
    };
  }

  private sentMessage(topic: string, id: string, partition: number | undefined): SentRecord | undefined {
    return this.sent.find(
      (record) =>
        record.topic === topic &&
        record.id === id &&
        (partition === undefined || record.partition === partition),
    );
  }

  onEvent(listener: (event: ConnectorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
