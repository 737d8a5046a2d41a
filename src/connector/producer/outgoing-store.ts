/**
 * Steps 1–2 of a send: a message's payload encrypted for its recipients into storage, its size
 * bounded as it streams, and its row in the database; and the undoing of that for messages the
 * ledger never accepted.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { PassThrough, Writable, pipeline } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { MessageMetadata } from '../../contracts/transactions.js';
import { decodeEnvelopeHeader, encodeEnvelopeHeader, encryptPayload } from '../../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import type { OutgoingMessage } from '../api-types.js';
import { ByteLimit } from '../byte-limit.js';
import type { SentRow } from '../connector-database.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import { messageTooLarge, sendChunkBytes } from '../payload-size.js';
import { partitionGroupId } from '../../contracts/registry.js';

/** A message of a send, encrypted and stored (by this send, when `created`), ready to publish. */
export interface OutgoingStored {
  readonly metadata: MessageMetadata;
  readonly storageKey: string;
  readonly created: boolean;
}

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
>;

export class OutgoingStore {
  constructor(private readonly options: OutgoingStoreOptions) {}

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
    const existing = database.sent(topic, id);
    if (existing !== undefined) {
      // A retry of a message already encrypted and stored: its value is read (within the bound) and
      // dropped, and the first attempt's metadata is published again, on the partition that attempt
      // chose (a keyless retry must not land on another partition, where the contract would accept
      // the id as a new message).
      await drain(bounded());
      return {
        metadata: metadataOfSent(existing, message, recipients),
        storageKey: existing.storage_key,
        created: false,
      };
    }
    const contentType = message.contentType ?? 'application/octet-stream';
    const sink = new PassThrough({ highWaterMark: 1024 * 1024 });
    const stored = storage.put(sink);
    const [encryption, storing] = await Promise.allSettled([
      encryptPayload({
        source: bounded(),
        sink,
        signer: this.options.signer,
        senderOrgId: this.options.organization,
        recipients: targets,
        payloadId: id,
        contentType,
        chunkBytes: sendChunkBytes,
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
    database.insertSent({
      id,
      topic,
      partition,
      group_id: partitionGroupId(topic, partition),
      header: encodeEnvelopeHeader(encrypted.header),
      storage_key: object.key,
      size: object.size,
      recipients: JSON.stringify(recipients),
      created_at: this.options.lifecycle.clock.now(),
    });
    const row = database.sent(topic, id);
    assert(row !== undefined, 'a sent row exists once inserted');
    if (row.storage_key !== object.key) {
      // Another send of the same (topic, id) stored its payload first: this one is its retry.
      await this.discardUnpublished([created]);
      return {
        metadata: metadataOfSent(row, message, recipients),
        storageKey: row.storage_key,
        created: false,
      };
    }
    return created;
  }

  /**
   * Deletes what was stored for messages the ledger never accepted: their sent rows (only while
   * they have no offset) and their ciphertext (only while no row refers to it). A payload that
   * cannot be deleted is logged, not thrown: the refusal that led here is what the caller needs.
   */
  async discardUnpublished(entries: readonly OutgoingStored[]): Promise<void> {
    for (const { metadata, storageKey } of entries) {
      this.options.database.deleteUnpublished(metadata.topic, metadata.id, storageKey);
      if (this.options.database.sentReferences(storageKey)) continue;
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
