import { createHash } from 'node:crypto';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { StoredObject } from './types.js';

/**
 * Hashes and counts bytes as they stream past, refusing the one that crosses `sizeMax` so an oversize
 * source is stopped as soon as it is known to be too big rather than after it was written out.
 */
export class ContentMeter {
  readonly #hash = createHash('sha256');
  readonly #sizeMax: number;
  #size = 0;

  constructor(sizeMax: number) {
    this.#sizeMax = sizeMax;
  }

  /** Accounts for `chunk` and returns it as bytes; throws OVERSIZE past the limit. */
  update(chunk: unknown): Buffer {
    const bytes = asBytes(chunk);
    this.#size += bytes.length;
    if (this.#size > this.#sizeMax) {
      throw new LedgerbusError(ErrorCode.Oversize, `payload exceeds the limit of ${this.#sizeMax} bytes`);
    }
    this.#hash.update(bytes);
    return bytes;
  }

  /** Call once, after the last chunk. */
  finish(): StoredObject {
    return { key: this.#hash.digest('hex'), size: this.#size };
  }
}

/** Payload streams carry bytes; a string has no single meaning as bytes, so it is refused. */
function asBytes(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new LedgerbusError(ErrorCode.SchemaMismatch, 'a payload stream must yield bytes (Buffer/Uint8Array)');
}

export function checkExpected(stored: StoredObject, expectedSha256: string | undefined): void {
  if (expectedSha256 !== undefined && stored.key !== expectedSha256) {
    throw new LedgerbusError(
      ErrorCode.HashMismatch,
      `content hashes to ${stored.key}, expected ${expectedSha256}`,
    );
  }
}
