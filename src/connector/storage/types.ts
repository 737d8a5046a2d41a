import type { Readable } from 'node:stream';

export interface StoredObject {
  /** Lowercase hex sha256 of the content. */
  readonly key: string;
  readonly size: number;
}

export interface PutOptions {
  /** Lowercase hex sha256 the content must hash to; otherwise nothing is stored (HASH_MISMATCH). */
  readonly expectedSha256?: string;
  /** Largest number of bytes accepted; a longer source stores nothing (OVERSIZE). */
  readonly sizeMax?: number;
}

export interface ByteRange {
  /** First byte to return; `size` gives an empty stream, beyond it is INVALID_RANGE. */
  readonly start: number;
}

/**
 * Where a connector keeps payloads. Content-addressed, so a payload stored twice is stored once and a
 * key is proof of what the bytes are. Everything streams: no operation holds a whole payload in memory.
 */
export interface PayloadStorage {
  readonly kind: 'filesystem' | 'postgres';
  /**
   * Streams `source` into storage; the key is the sha256 of the bytes. If `expectedSha256` is given and
   * differs, nothing is stored and it throws HASH_MISMATCH. Storing the same content twice is a no-op
   * returning the same key. Durable (fsync / committed) before it resolves. `sizeMax` bounds the bytes
   * accepted (OVERSIZE, nothing stored). If `source` errors, nothing is stored and the error propagates.
   */
  put(source: Readable, options?: PutOptions): Promise<StoredObject>;
  /** Streams the object; PAYLOAD_NOT_FOUND if absent. Optional byte range for resuming. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  stat(key: string): Promise<StoredObject | undefined>;
  /** True if the object existed. */
  delete(key: string): Promise<boolean>;
  /**
   * Bytes the storage takes now (file sizes, or table sizes), for the `ledgerbus_storage_bytes`
   * metric. It may walk every object: callers reuse it for a while (connector-metrics.ts CachedSize).
   */
  usage?(): Promise<number>;
  close(): Promise<void>;
}
