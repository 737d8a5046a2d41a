/**
 * The value of a message received in parts (../parts.ts): its parts' plaintexts read in order from
 * the connector's storage (a PackedStorage, which finds a small last part packed in its database).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { PayloadStorage } from '../storage/index.js';

/** Where one part's plaintext is kept. */
export interface PartPlaintext {
  readonly storageKey: string;
  readonly size: number;
  /** The plaintext itself, for a part opened from its publish and not recorded yet. */
  readonly bytes?: Buffer;
}

/** The parts' plaintexts one after another, opened one at a time (never more than one file open). */
export function concatenatedParts(parts: readonly PartPlaintext[], storage: PayloadStorage): Readable {
  async function* all(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      if (part.bytes !== undefined) yield part.bytes;
      else yield* (await storage.get(part.storageKey)) as AsyncIterable<Buffer>;
    }
  }
  return Readable.from(all(), { objectMode: false });
}

/** The sha256 (hex) and length of the parts' plaintexts together. */
export async function hashParts(
  parts: readonly PartPlaintext[],
  storage: PayloadStorage,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of concatenatedParts(parts, storage) as AsyncIterable<Buffer>) {
    hash.update(piece);
    size += piece.length;
  }
  return { sha256: hash.digest('hex'), size };
}
