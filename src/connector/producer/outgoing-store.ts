/**
 * Steps 1–2 of a send: a message's payload encrypted for its recipients into storage, its size
 * bounded as it streams, and its row in the database; and the undoing of that for messages the
 * ledger never accepted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, Readable, Writable, pipeline } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { EscrowPolicy } from '../../contracts/registry.js';
import type { EscrowMetadata } from '../../contracts/escrow/transactions.js';
import { transactionLimits } from '../../contracts/transactions.js';
import type { InlinePayload, MessageMetadata } from '../../contracts/transactions.js';
import { chunkTagBytes } from '../../crypto/envelope/header.js';
import {
  decodeEnvelopeHeader,
  encodeEnvelopeHeader,
  encryptPayload,
  encryptPayloadToBytes,
} from '../../crypto/envelope/index.js';
import type { EncryptPayloadOptions } from '../../crypto/envelope/index.js';
import { escrowKeys, splitSecret } from '../../crypto/escrow/index.js';
import type { FeldmanSharing } from '../../crypto/escrow/index.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import type { OutgoingMessage } from '../api-types.js';
import { ByteLimit } from '../byte-limit.js';
import type { ConnectorDatabase, SentRow } from '../connector-database.js';
import type { ConnectorContext } from '../context.js';
import { GroupCommit } from '../group-commit.js';
import { describeError } from '../lifecycle.js';
import { messageTooLarge, sendChunkBytes } from '../payload-size.js';
import { partitionGroupId } from '../../contracts/registry.js';
import type { EscrowPlacer } from '../escrow/placer.js';
import { SentEscrowStore } from '../escrow/sent-escrow.js';
import {
  defaultPartBytes,
  newPartSet,
  partHeaderValues,
  partMessageId,
  partsHeaderValues,
  partsMax,
} from '../parts.js';

/** Headers the message of a value in parts carries beside the application's (../parts.ts). */
const partsHeaderCount = 3;

/** A message of a send, encrypted and stored (by this send, when `created`), ready to publish. */
export interface OutgoingStored {
  readonly metadata: MessageMetadata;
  readonly storageKey: string;
  readonly created: boolean;
  /**
   * The sealed payload, when it is small enough to travel inside its publish (it is also packed in
   * the connector's database, under `storageKey`, for a recipient that fetches it all the same).
   */
  readonly inline?: InlinePayload;
  /** When its value travelled in parts (see ../parts.ts): their ciphertext bytes, all together. */
  readonly partsCiphertextBytes?: number;
}

/**
 * Plaintexts up to this size (one chunk) are sealed in memory, kept in the connector's database and
 * carried inside their publish instead of being fetched (a deviation from DESIGN §3 that issue 17
 * allows; docs/ARCHITECTURE.md); larger ones stream to storage and are fetched.
 */
export const inlinePlaintextBytesMax = transactionLimits.inlineCiphertextBytesMax - chunkTagBytes;

/** How much of a message's value may be read, and what it must add up to. */
export interface OutgoingLimit {
  /** Names the message in errors. */
  readonly label: string;
  readonly plaintextMax: number;
  /** The size the application declared, when it did: the value must be exactly that long. */
  readonly declared: number | undefined;
  /** The topic's messageBytesMax, for the error message. */
  readonly bytesMax: number;
}

export type OutgoingStoreOptions = Pick<
  ConnectorContext,
  'organization' | 'signer' | 'registry' | 'database' | 'storage' | 'logger' | 'lifecycle'
> & {
  /** Places escrowed chunks and key shares (escrow topics only, DESIGN §7; the connector always has one). */
  readonly placer?: EscrowPlacer;
  /**
   * Whether payloads of at most inlinePlaintextBytesMax travel inside their publish (default true).
   * Inline, their ciphertext is in every replica's blocks for good; false keeps every payload here
   * until a recipient fetches it (connector.yaml `producer.inlinePayloads`).
   */
  readonly inlinePayloads?: boolean;
  /**
   * Publishes one part of a large value (../parts.ts) and resolves once the ledger accepted it.
   * Without it, every value is sealed whole before it is published.
   */
  readonly publishPart?: (part: OutgoingStored) => Promise<void>;
  /** Values declared larger than this travel in parts of this many plaintext bytes (default 64 MiB). */
  readonly partBytes?: number;
};

export class OutgoingStore {
  private readonly sentEscrow: SentEscrowStore;
  /** Sent rows of concurrent sends commit together: one fsync for all that are ready at once. */
  private readonly commits: GroupCommit;

  constructor(private readonly options: OutgoingStoreOptions) {
    this.sentEscrow = new SentEscrowStore(options.database.db);
    this.commits = new GroupCommit(options.database);
  }

  /**
   * Encrypts and stores one message's payload, reading at most `limit.plaintextMax` bytes of it (and
   * exactly `limit.declared`, when declared), or finds it stored by an earlier attempt of the same
   * (topic, id). `created` says whether this call stored it.
   */
  async store(
    topic: string,
    partition: number,
    message: OutgoingMessage,
    limit: OutgoingLimit,
  ): Promise<OutgoingStored> {
    const { database, storage, registry } = this.options;
    const id = message.id ?? randomUUID();
    const recipients = [...message.to];
    const targets = recipients.map((orgId) => {
      const publicKey = registry.encryptionKey(orgId);
      if (publicKey === undefined)
        throw new LedgerbusError(ErrorCode.SchemaMismatch, `recipient ${orgId} is not in the network`);
      return { orgId, publicKey };
    });
    const bounded = (): Readable =>
      pipeline(
        message.value,
        new ByteLimit(limit.plaintextMax, (total) =>
          limit.declared === undefined
            ? messageTooLarge(limit.label, topic, limit.bytesMax, `more than ${limit.plaintextMax} bytes`)
            : new LedgerbusError(
                ErrorCode.SchemaMismatch,
                `message ${limit.label}: the value runs past the ${limit.declared} bytes declared (${total} so far)`,
              ),
        ),
        () => {},
      );
    const escrowPolicy = escrowPolicyOf(registry.topic(topic)?.policy);
    let existing = database.sent(topic, id);
    if (
      existing !== undefined &&
      escrowPolicy !== undefined &&
      this.sentEscrow.get(topic, id) === undefined
    ) {
      // Stored by an attempt that stopped before its chunks and shares were placed: its data key died
      // with it, so that ciphertext can never be escrowed. Start again (it was never published).
      await this.discardUnpublished([
        {
          metadata: metadataOfSent(existing, message, recipients),
          storageKey: existing.storage_key,
          created: true,
        },
      ]);
      existing = database.sent(topic, id);
    }
    if (existing !== undefined) {
      // A retry of a message already encrypted and stored: its value is read (within the bound) and
      // dropped, and the first attempt's metadata is published again, on the partition that attempt
      // chose (a keyless retry must not land on another partition, where the contract would accept
      // the id as a new message).
      await drain(bounded());
      return this.storedBefore(existing, message, recipients);
    }
    // An escrow topic's data key is derived from the secret escrowed for auditors, so that k of the
    // share holders can rebuild it without the sender (DESIGN §7).
    // A fresh secret for every encryption: the data key derives from it and chunk nonces are chunk
    // indexes, so a key must never encrypt a second payload (an attempt that failed and its retry
    // with another value would give holders the XOR of both). It is kept only with the sent row.
    const sharing =
      escrowPolicy === undefined ? undefined : splitSecret(escrowPolicy.threshold, escrowPolicy.shares);
    const contentType = message.contentType ?? 'application/octet-stream';
    const { publishPart } = this.options;
    if (
      sharing === undefined &&
      publishPart !== undefined &&
      limit.declared !== undefined &&
      limit.declared > this.partBytes
    ) {
      return this.storeInParts(
        { id, topic, partition, message, contentType, limit, declared: limit.declared },
        bounded(),
        publishPart,
      );
    }
    // A value that ends within the inline bound is sealed in memory; anything longer streams on.
    const inline = sharing === undefined && this.options.inlinePayloads !== false;
    const source = inline ? await readWhole(bounded(), inlinePlaintextBytesMax) : bounded();
    if (source instanceof Uint8Array) {
      return this.storeInline(
        { id, topic, partition, message, recipients, targets, contentType, limit },
        source,
      );
    }
    const sink = new PassThrough({ highWaterMark: 1024 * 1024 });
    const stored = storage.put(sink);
    const [encryption, storing] = await Promise.allSettled([
      encryptPayload({
        source,
        sink,
        ...this.sealing(id, targets, contentType),
        ...(sharing === undefined
          ? {}
          : {
              dataKey: escrowKeys(sharing.secret, {
                network: this.options.signer.domain.network,
                sender: this.options.organization,
                id,
              }).dataKey,
            }),
      }),
      stored,
    ]);
    // A failed encryption destroys the sink, which fails the put: it is awaited, so that the put has
    // removed its temporary file before the refusal reaches the caller (nothing of it outlives send).
    if (encryption.status === 'rejected') {
      if (storing.status === 'fulfilled') await storage.delete(storing.value.key);
      throw encryption.reason;
    }
    if (storing.status === 'rejected') throw storing.reason;
    const encrypted = encryption.value;
    const object = storing.value;
    const created: OutgoingStored = {
      metadata: metadataFor({
        id,
        topic,
        partition,
        message,
        recipients,
        size: object.size,
        contentRoot: encrypted.header.merkleRoot,
        contentType,
      }),
      storageKey: object.key,
      created: true,
    };
    if (limit.declared !== undefined && encrypted.header.plaintextBytes !== limit.declared) {
      stored.catch(() => undefined);
      await this.discardUnpublished([created]);
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `message ${limit.label}: the value ended after ${encrypted.header.plaintextBytes} of the ${limit.declared} bytes declared`,
      );
    }
    const header = encodeEnvelopeHeader(encrypted.header);
    const escrow =
      sharing === undefined || escrowPolicy === undefined
        ? undefined
        : await this.place(created, { topic, partition, id, policy: escrowPolicy, sharing, header });
    const sentRow = this.sentRow({ id, topic, partition, recipients }, header, object);
    // The secret is kept with the row, in one transaction, so that a retry publishes the very same
    // escrow metadata (its leaf must not change) and the sender can always read what it escrowed.
    await this.commits.run(() => {
      database.insertSent(sentRow);
      // Only with our own row: a concurrent send of the same id that inserted first keeps its escrow.
      const inserted = database.sent(topic, id)?.storage_key === object.key;
      if (inserted && escrow !== undefined && sharing !== undefined)
        this.sentEscrow.put(topic, id, sharing, escrow);
    });
    const row = database.sent(topic, id);
    assert(row !== undefined, 'a sent row exists once inserted');
    if (row.storage_key !== object.key) {
      // Another send of the same (topic, id) stored its payload first: this one is its retry.
      await this.discardUnpublished([created]);
      return this.storedBefore(row, message, recipients);
    }
    return escrow === undefined ? created : { ...created, metadata: { ...created.metadata, escrow } };
  }

  private get partBytes(): number {
    return this.options.partBytes ?? defaultPartBytes;
  }

  /**
   * A large value sealed and published part by part (../parts.ts): part i+1 is encrypted while
   * part i is published and fetched. Returns the message that binds the parts, with no payload of
   * its own, for the caller to publish after them. Every part is accepted before this returns; a
   * part stored and not yet published when something fails is deleted (published ones stay on
   * the ledger, which a retry does not reuse: it sends a new part set).
   */
  private async storeInParts(
    input: {
      id: string;
      topic: string;
      partition: number;
      message: OutgoingMessage;
      contentType: string;
      limit: OutgoingLimit;
      declared: number;
    },
    source: Readable,
    publishPart: (part: OutgoingStored) => Promise<void>,
  ): Promise<OutgoingStored> {
    const { topic, partition, message, limit, declared } = input;
    const headers = message.headers ?? {};
    if (Object.keys(headers).length + partsHeaderCount > transactionLimits.headerEntriesMax) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `message ${limit.label}: a value of ${declared} bytes travels in parts, which leaves room for ${transactionLimits.headerEntriesMax - partsHeaderCount} headers; it has ${Object.keys(headers).length}`,
      );
    }
    const count = Math.ceil(declared / this.partBytes);
    if (count > partsMax) {
      throw messageTooLarge(
        limit.label,
        topic,
        limit.bytesMax,
        `more than ${partsMax} parts of ${this.partBytes} bytes`,
      );
    }
    const set = newPartSet();
    const splitter = new PartSplitter(source, limit.label, declared);
    const published: Promise<void>[] = [];
    const contentRoots: Uint8Array[] = [];
    let ciphertextBytes = 0;
    let refused: { error: unknown } | undefined;
    try {
      for (let index = 0; index < count; index++) {
        // A part the ledger refused fails the send: no point sealing the rest.
        if (refused !== undefined) throw refused.error;
        const bytes = Math.min(this.partBytes, declared - index * this.partBytes);
        const part = await this.store(
          topic,
          partition,
          {
            id: partMessageId(set, index),
            to: message.to,
            key: message.key ?? null,
            contentType: 'application/octet-stream',
            headers: partHeaderValues(set, index),
            value: splitter.next(bytes),
            size: bytes,
          },
          {
            label: `${limit.label} (part ${index})`,
            plaintextMax: bytes,
            declared: bytes,
            bytesMax: limit.bytesMax,
          },
        );
        contentRoots.push(part.metadata.contentRoot);
        ciphertextBytes += part.metadata.size;
        const publishing = publishPart(part).catch(async (error: unknown) => {
          refused ??= { error };
          await this.discardUnpublished([part]);
          throw error;
        });
        // Awaited below; until then a refusal must not count as unhandled.
        publishing.catch(() => undefined);
        published.push(publishing);
      }
      await splitter.finish();
    } catch (error) {
      await splitter.close();
      await Promise.allSettled(published);
      throw error;
    }
    await Promise.all(published);
    const final = await this.store(
      topic,
      partition,
      {
        ...(message.key === undefined ? {} : { key: message.key }),
        id: input.id,
        to: message.to,
        contentType: input.contentType,
        headers: partsHeaderValues(headers, set, contentRoots),
        value: Readable.from([]),
        size: 0,
      },
      { label: limit.label, plaintextMax: 0, declared: 0, bytesMax: limit.bytesMax },
    );
    return { ...final, partsCiphertextBytes: ciphertextBytes };
  }

  /**
   * Seals a small plaintext in memory and records it with its sent row, in one transaction: the
   * ciphertext is packed in the database under its sha256 (no file, no fsync of its own), and the
   * message leaves with it inline.
   */
  private async storeInline(
    input: {
      id: string;
      topic: string;
      partition: number;
      message: OutgoingMessage;
      recipients: string[];
      targets: { orgId: string; publicKey: Uint8Array }[];
      contentType: string;
      limit: OutgoingLimit;
    },
    plaintext: Uint8Array,
  ): Promise<OutgoingStored> {
    const { database } = this.options;
    const { id, topic, partition, limit } = input;
    if (limit.declared !== undefined && plaintext.length !== limit.declared) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `message ${limit.label}: the value ended after ${plaintext.length} of the ${limit.declared} bytes declared`,
      );
    }
    const encrypted = await encryptPayloadToBytes(
      this.sealing(id, input.targets, input.contentType),
      plaintext,
    );
    const { ciphertext } = encrypted;
    const header = encodeEnvelopeHeader(encrypted.header);
    const ciphertextKey = sha256Hex(ciphertext);
    const key = await this.commits.run(() => {
      database.insertSent(
        this.sentRow({ id, topic, partition, recipients: input.recipients }, header, {
          key: ciphertextKey,
          size: ciphertext.length,
        }),
      );
      const row = database.sent(topic, id);
      assert(row !== undefined, 'a sent row exists once inserted');
      // Packed only with our own row: a concurrent send of the same id that inserted first keeps its own.
      return row.storage_key === ciphertextKey ? database.putPacked(ciphertext).key : undefined;
    });
    const row = database.sent(topic, id);
    assert(row !== undefined, 'a sent row exists once inserted');
    if (key === undefined) return this.storedBefore(row, input.message, input.recipients);
    return {
      metadata: metadataFor({
        id,
        topic,
        partition,
        message: input.message,
        recipients: input.recipients,
        size: ciphertext.length,
        contentRoot: encrypted.header.merkleRoot,
        contentType: input.contentType,
      }),
      storageKey: key,
      created: true,
      inline: { header, ciphertext },
    };
  }

  /** How this connector seals a payload for `targets`, streamed or held whole. */
  private sealing(
    id: string,
    targets: readonly { orgId: string; publicKey: Uint8Array }[],
    contentType: string,
  ): Omit<EncryptPayloadOptions, 'source' | 'sink'> {
    return {
      signer: this.options.signer,
      senderOrgId: this.options.organization,
      recipients: targets,
      payloadId: id,
      contentType,
      chunkBytes: sendChunkBytes,
    };
  }

  /** The sent row of a message whose sealed payload (`header`, ciphertext `stored`) is kept here. */
  private sentRow(
    message: { id: string; topic: string; partition: number; recipients: readonly string[] },
    header: Uint8Array,
    stored: { key: string; size: number },
  ): Parameters<ConnectorDatabase['insertSent']>[0] {
    return {
      id: message.id,
      topic: message.topic,
      partition: message.partition,
      group_id: partitionGroupId(message.topic, message.partition),
      header,
      storage_key: stored.key,
      size: stored.size,
      recipients: JSON.stringify(message.recipients),
      created_at: this.options.lifecycle.clock.now(),
    };
  }

  /**
   * A message stored by an earlier send of the same (topic, id), published again as it was first
   * stored: its metadata, its escrow, and its sealed payload inline if it was packed.
   */
  private storedBefore(row: SentRow, message: OutgoingMessage, recipients: string[]): OutgoingStored {
    // Once published, a retry gets the first acceptance back: its payload need not travel again.
    const packed = row.offset === null ? this.options.database.packed(row.storage_key) : undefined;
    return {
      metadata: this.withEscrow(row.topic, metadataOfSent(row, message, recipients)),
      storageKey: row.storage_key,
      created: false,
      ...(packed === undefined ? {} : { inline: { header: row.header, ciphertext: packed } }),
    };
  }

  /** Places the stored ciphertext's chunks and the key shares; on failure the ciphertext is deleted. */
  private async place(
    created: OutgoingStored,
    input: {
      topic: string;
      partition: number;
      id: string;
      policy: EscrowPolicy;
      sharing: FeldmanSharing;
      header: Uint8Array;
    },
  ): Promise<EscrowMetadata> {
    const { placer } = this.options;
    if (placer === undefined) {
      await this.discardUnpublished([created]);
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `topic ${input.topic} escrows its messages, and this store has no escrow placer`,
      );
    }
    try {
      const placed = await placer.placeTimed({
        topic: input.topic,
        partition: input.partition,
        group: partitionGroupId(input.topic, input.partition),
        id: input.id,
        policy: input.policy,
        secret: input.sharing,
        encodedHeader: input.header,
        storageKey: created.storageKey,
        ciphertextBytes: created.metadata.size,
      });
      // The split / distribution / seal times are what bench:escrow reports (the paper's Fig. 4).
      this.options.logger.info(
        {
          id: input.id,
          group: partitionGroupId(input.topic, input.partition),
          chunks: placed.chunks,
          splitMs: placed.splitMs,
          distributeMs: placed.distributeMs,
          sealMs: placed.sealMs,
        },
        'escrowed chunks and key shares placed',
      );
      return placed.metadata;
    } catch (error) {
      await this.discardUnpublished([created]);
      throw error;
    }
  }

  /** `metadata` with the escrow metadata stored for it, if it was escrowed. */
  private withEscrow(topic: string, metadata: MessageMetadata): MessageMetadata {
    const escrow = this.sentEscrow.get(topic, metadata.id)?.metadata;
    return escrow === undefined ? metadata : { ...metadata, escrow };
  }

  /**
   * Deletes what was stored for messages the ledger never accepted: their sent rows (only while
   * they have no offset) and their ciphertext (only while no row refers to it). A payload that
   * cannot be deleted is logged, not thrown: the refusal that led here is what the caller needs.
   */
  async discardUnpublished(entries: readonly OutgoingStored[]): Promise<void> {
    const { database } = this.options;
    for (const { metadata, storageKey } of entries) {
      // The row and a packed payload go together: a crash cannot leave a packed payload of no row.
      const unreferenced = database.transaction(() => {
        if (database.deleteUnpublished(metadata.topic, metadata.id, storageKey))
          this.sentEscrow.delete(metadata.topic, metadata.id);
        if (database.payloadReferenced(storageKey)) return false;
        database.deletePacked(storageKey);
        return true;
      });
      if (!unreferenced) continue;
      try {
        await this.options.storage.delete(storageKey);
      } catch (error) {
        this.options.logger.warn(
          { id: metadata.id, storageKey, error: describeError(error) },
          'could not delete the payload of a refused message',
        );
      }
    }
  }
}

/** The escrow policy of an escrow topic; undefined for a standard one. */
function escrowPolicyOf(
  policy: { availability?: string; escrow?: EscrowPolicy } | undefined,
): EscrowPolicy | undefined {
  return policy?.availability === 'escrow' ? policy.escrow : undefined;
}

/** The metadata a message stored earlier is published with again. */
function metadataOfSent(row: SentRow, message: OutgoingMessage, recipients: string[]): MessageMetadata {
  const header = decodeEnvelopeHeader(row.header);
  return metadataFor({
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    message,
    recipients,
    size: row.size,
    contentRoot: header.merkleRoot,
    contentType: header.contentType,
  });
}

function metadataFor(fields: {
  id: string;
  topic: string;
  partition: number;
  message: OutgoingMessage;
  recipients: string[];
  size: number;
  contentRoot: Uint8Array;
  contentType: string;
}): MessageMetadata {
  return {
    id: fields.id,
    topic: fields.topic,
    partition: fields.partition,
    key: fields.message.key ?? null,
    recipients: fields.recipients,
    size: fields.size,
    contentRoot: fields.contentRoot,
    contentType: fields.contentType,
    headers: { ...(fields.message.headers ?? {}) },
  };
}

/**
 * The whole of `stream` when it ends within `max` bytes; otherwise a stream of all of it (what was
 * read, then the rest), so that a large value streams on as if nothing had been read.
 */
async function readWhole(stream: Readable, max: number): Promise<Uint8Array | Readable> {
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let length = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return Buffer.concat(head, length);
    head.push(next.value);
    length += next.value.length;
    if (length > max) break;
  }
  async function* all(): AsyncGenerator<Buffer> {
    let done = false;
    try {
      yield* head;
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) {
          done = true;
          return;
        }
        yield next.value;
      }
    } finally {
      // A reader that stopped early (a failed encryption) releases the source, which destroys it.
      if (!done) await iterator.return?.();
    }
  }
  return Readable.from(all(), { objectMode: false });
}

/**
 * Cuts one value into consecutive parts of given lengths, read in turn from the same source: a part
 * ends exactly at its length, and what the source yielded past it starts the next one.
 */
class PartSplitter {
  private readonly iterator: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;
  private taken = 0;

  constructor(
    source: Readable,
    private readonly label: string,
    private readonly declared: number,
  ) {
    this.iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** The next `bytes` bytes of the value. */
  next(bytes: number): Readable {
    const parts = async function* (this: PartSplitter): AsyncGenerator<Buffer> {
      let remaining = bytes;
      while (remaining > 0) {
        let chunk = this.leftover ?? (await this.read());
        this.leftover = undefined;
        if (chunk.length > remaining) {
          this.leftover = chunk.subarray(remaining);
          chunk = chunk.subarray(0, remaining);
        }
        remaining -= chunk.length;
        this.taken += chunk.length;
        yield chunk;
      }
    }.bind(this);
    return Readable.from(parts(), { objectMode: false });
  }

  /** Resolves once the value ended right after the last part; its error otherwise. */
  async finish(): Promise<void> {
    if ((this.leftover?.length ?? 0) > 0 || !(await this.iterator.next()).done) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `message ${this.label}: the value runs past the ${this.declared} bytes declared`,
      );
    }
  }

  /** Releases the source (which destroys it). */
  async close(): Promise<void> {
    await this.iterator.return?.();
  }

  private async read(): Promise<Buffer> {
    const next = await this.iterator.next();
    if (next.done === true) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `message ${this.label}: the value ended after ${this.taken} of the ${this.declared} bytes declared`,
      );
    }
    return next.value;
  }
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads `stream` to its end, dropping the bytes; rejects with its error. */
function drain(stream: Readable): Promise<void> {
  return pipelineAsync(
    stream,
    new Writable({
      write(_chunk: Buffer, _encoding, callback) {
        callback();
      },
    }),
  );
}
