/**
 * How the SDT contract lays out one partition's state in a ContractState. Every key starts with
 * `sdt/<length>:<partitionId>/`, so one store may hold many partitions (a node hosts many) and no
 * partition id can produce another's keys. Values are canonical CBOR, read back through strict
 * schemas: a stored value that does not fit is corruption, and throws rather than being skipped.
 *
 *   …/meta                    PartitionMeta: executed height, contract time, next offset, queues
 *   …/message/<id>            MessageRecord
 *   …/offset/<16 digits>      id of the message at that offset (zero-padded so keys sort by offset)
 *   …/nonce/<hex>/<org>       contract time at which <org> used the nonce
 *   …/nonce-queue/<seq>       { organization, nonce, usedAt }: nonces in order of use, for pruning
 *   …/expiry/<ttl>/<seq>      id of a message accepted with that TTL, in order of acceptance
 *
 * Deadlines within one TTL grow with acceptance order (contract time never goes back), so one FIFO
 * queue per TTL value, merged at expiry time, gives every deadline in order without a sorted index;
 * that keeps the store interface to get/put/delete.
 */
import { decodeWith, encodeCanonical, encodeWith, t, toHex } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { assert } from '../errors.js';
import type { ContractState } from './state.js';
import { messageMetadataSchema, transactionLimits } from './transactions.js';

const uint = t.uint();
/** A message id stored as a value (offset index, expiry queues). */
const storedId = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });
const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });

const expiryQueueSchema = t.record({ ttlMs: t.uint({ min: 1 }), head: uint, tail: uint });
export type ExpiryQueue = { ttlMs: number; head: number; tail: number };

const metaSchema = t.record({
  /** Height of the last executed block; 0 before the first. */
  height: uint,
  /** Contract time: the largest block timestamp executed so far (ms). */
  time: uint,
  nextOffset: uint,
  nonceHead: uint,
  nonceTail: uint,
  /** One queue per TTL value in use, sorted by ttlMs. */
  expiryQueues: t.array(expiryQueueSchema, { maxItems: 1_000_000 }),
});
export interface PartitionMeta {
  height: number;
  time: number;
  nextOffset: number;
  nonceHead: number;
  nonceTail: number;
  expiryQueues: ExpiryQueue[];
}

const deliverySchema = t.record({
  recipient: organizationId,
  height: uint,
  transactionIndex: uint,
  deliveryIndex: uint,
  /** Contract time of the confirmation. */
  confirmedAt: uint,
});
export type DeliveryRecord = Infer<typeof deliverySchema>;

export type MessageStatus = 'ACCEPTED' | 'COMPLETED' | 'EXPIRED';

const messageRecordSchema = t.record({
  metadata: messageMetadataSchema,
  sender: organizationId,
  offset: uint,
  height: uint,
  transactionIndex: uint,
  messageIndex: uint,
  configEpoch: uint,
  acceptedAt: uint,
  /** The message expires in the first block whose time is after this. */
  deadline: uint,
  payloadRetentionMs: uint,
  status: t.oneOf('ACCEPTED', 'COMPLETED', 'EXPIRED'),
  /** Height and contract time at which it completed or expired; null while ACCEPTED. */
  closedHeight: t.nullable(uint),
  closedAt: t.nullable(uint),
  /** Confirmations in the order they were recorded; at most one per recipient. */
  deliveries: t.array(deliverySchema, { maxItems: transactionLimits.recipientsMax }),
});
export type MessageRecord = Infer<typeof messageRecordSchema>;

const nonceQueueEntrySchema = t.record({
  organization: organizationId,
  nonce: t.bytes(),
  usedAt: uint,
});

const offsetDigits = 16;

/** Typed access to one partition's keys in a ContractState. */
export class PartitionStore {
  private readonly prefix: string;

  constructor(
    private readonly state: ContractState,
    partitionId: string,
  ) {
    this.prefix = `sdt/${partitionId.length}:${partitionId}/`;
  }

  meta(): PartitionMeta {
    const bytes = this.state.get(`${this.prefix}meta`);
    if (bytes === undefined) {
      return { height: 0, time: 0, nextOffset: 0, nonceHead: 0, nonceTail: 0, expiryQueues: [] };
    }
    const meta = decodeWith(metaSchema, bytes);
    return { ...meta, expiryQueues: meta.expiryQueues.map((queue) => ({ ...queue })) };
  }

  putMeta(meta: PartitionMeta): void {
    this.state.put(`${this.prefix}meta`, encodeWith(metaSchema, meta));
  }

  message(id: string): MessageRecord | undefined {
    const bytes = this.state.get(`${this.prefix}message/${id}`);
    return bytes === undefined ? undefined : decodeWith(messageRecordSchema, bytes);
  }

  putMessage(record: MessageRecord): void {
    this.state.put(`${this.prefix}message/${record.metadata.id}`, encodeWith(messageRecordSchema, record));
  }

  messageIdAt(offset: number): string | undefined {
    const bytes = this.state.get(this.offsetKey(offset));
    return bytes === undefined ? undefined : decodeWith(storedId, bytes);
  }

  putOffset(offset: number, id: string): void {
    this.state.put(this.offsetKey(offset), encodeCanonical(id));
  }

  nonceUsed(organization: string, nonce: Uint8Array): boolean {
    return this.state.get(this.nonceKey(organization, nonce)) !== undefined;
  }

  /** Records a nonce as used now, at the tail of the pruning queue. */
  useNonce(meta: PartitionMeta, organization: string, nonce: Uint8Array): void {
    this.state.put(this.nonceKey(organization, nonce), encodeCanonical(meta.time));
    const entry = { organization, nonce, usedAt: meta.time };
    this.state.put(`${this.prefix}nonce-queue/${meta.nonceTail}`, encodeWith(nonceQueueEntrySchema, entry));
    meta.nonceTail += 1;
  }

  /** Forgets nonces used at or before `usedAtMax`, oldest first. */
  pruneNonces(meta: PartitionMeta, usedAtMax: number): void {
    while (meta.nonceHead < meta.nonceTail) {
      const key = `${this.prefix}nonce-queue/${meta.nonceHead}`;
      const bytes = this.state.get(key);
      assert(bytes !== undefined, `nonce queue entry ${meta.nonceHead} is missing`);
      const entry = decodeWith(nonceQueueEntrySchema, bytes);
      if (entry.usedAt > usedAtMax) return;
      this.state.delete(this.nonceKey(entry.organization, entry.nonce));
      this.state.delete(key);
      meta.nonceHead += 1;
    }
  }

  /** Appends `id` to the expiry queue of its TTL, creating the queue if needed. */
  enqueueExpiry(meta: PartitionMeta, ttlMs: number, id: string): void {
    let queue = meta.expiryQueues.find((candidate) => candidate.ttlMs === ttlMs);
    if (queue === undefined) {
      queue = { ttlMs, head: 0, tail: 0 };
      meta.expiryQueues.push(queue);
      meta.expiryQueues.sort((a, b) => a.ttlMs - b.ttlMs);
    }
    this.state.put(this.expiryKey(ttlMs, queue.tail), encodeCanonical(id));
    queue.tail += 1;
  }

  /** The message id at the head of `queue`; the queue must not be empty. */
  expiryHead(queue: ExpiryQueue): string {
    assert(queue.head < queue.tail, `expiry queue ${queue.ttlMs} is empty`);
    const bytes = this.state.get(this.expiryKey(queue.ttlMs, queue.head));
    assert(bytes !== undefined, `expiry queue ${queue.ttlMs} entry ${queue.head} is missing`);
    return decodeWith(storedId, bytes);
  }

  /** Removes the head of `queue`, and the queue itself from `meta` once it is empty. */
  popExpiry(meta: PartitionMeta, queue: ExpiryQueue): void {
    this.state.delete(this.expiryKey(queue.ttlMs, queue.head));
    queue.head += 1;
    if (queue.head === queue.tail) {
      meta.expiryQueues = meta.expiryQueues.filter((candidate) => candidate !== queue);
    }
  }

  private offsetKey(offset: number): string {
    return `${this.prefix}offset/${String(offset).padStart(offsetDigits, '0')}`;
  }

  private nonceKey(organization: string, nonce: Uint8Array): string {
    return `${this.prefix}nonce/${toHex(nonce)}/${organization}`;
  }

  private expiryKey(ttlMs: number, seq: number): string {
    return `${this.prefix}expiry/${ttlMs}/${seq}`;
  }
}
