/**
 * The connector's payload storage as its parts see it: small payloads packed in the connector's
 * database (`ConnectorDatabase.putPacked`, written in the same transaction as the row that refers to
 * them, so they cost no file and no fsync of their own), everything else in the configured storage.
 * Both are content-addressed by sha256, so a key names the same bytes wherever they are kept.
 */
import { Readable } from 'node:stream';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ConnectorDatabase } from '../connector-database.js';
import { checkRangeStart } from './validation.js';
import type { ByteRange, PayloadStorage, PutOptions, StoredObject } from './types.js';

export class PackedStorage implements PayloadStorage {
  readonly kind: PayloadStorage['kind'];

  constructor(
    private readonly storage: PayloadStorage,
    private readonly database: Pick<ConnectorDatabase, 'packed' | 'deletePacked'>,
  ) {
    this.kind = storage.kind;
  }

  /** Streams go to the configured storage: only the connector's own small-payload paths pack. */
  put(source: Readable, options?: PutOptions): Promise<StoredObject> {
    return this.storage.put(source, options);
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const packed = this.database.packed(key);
    if (packed === undefined) return this.storage.get(key, range);
    return Readable.from([packed.subarray(checkRangeStart(range, packed.length))], { objectMode: false });
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const packed = this.database.packed(key);
    return packed === undefined ? this.storage.stat(key) : { key, size: packed.length };
  }

  async delete(key: string): Promise<boolean> {
    const packed = this.database.deletePacked(key);
    const stored = await this.storage.delete(key);
    return packed || stored;
  }

  /**
   * The configured storage's size. Packed payloads live in the connector's database and count
   * there, so they are left out here rather than counted twice.
   */
  async usage(): Promise<number> {
    if (this.storage.usage === undefined)
      throw new LedgerbusError(ErrorCode.StorageUnavailable, `${this.kind} storage does not report its size`);
    return this.storage.usage();
  }

  close(): Promise<void> {
    return this.storage.close();
  }
}
