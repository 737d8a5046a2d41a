/**
 * The value of a message received in parts (../parts.ts): its parts' plaintexts read in order, each
 * from this connector's database (a small last part, packed) or its storage.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ConnectorDatabase } from '../connector-database.js';
import type { PayloadStorage } from '../storage/index.js';

/** Where one part's plaintext is kept. */
export interface PartPlaintext {
  readonly storageKey: string;
  readonly size: number;
  /** The plaintext itself, for a part opened from its publish and not recorded yet. */
  readonly bytes?: Buffer;
}

/** The parts' plaintexts one after another, opened one at a time (never more than one file open). */
export function concatenatedParts(
  parts: readonly PartPlaintext[],
  database: ConnectorDatabase,
  storage: PayloadStorage,
): Readable {
  async function* all(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      const packed = part.bytes ?? database.packed(part.storageKey);
      if (packed !== undefined) {
        yield packed;
        continue;
      }
      yield* (await storage.get(part.storageKey)) as AsyncIterable<Buffer>;
    }
  }
  return Readable.from(all(), { objectMode: false });
}

/** The sha256 (hex) and length of the parts' plaintexts together. */
export async function hashParts(
  parts: readonly PartPlaintext[],
  database: ConnectorDatabase,
  storage: PayloadStorage,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of concatenatedParts(parts, database, storage) as AsyncIterable<Buffer>) {
    hash.update(piece);
    size += piece.length;
  }
  return { sha256: hash.digest('hex'), size };
}
