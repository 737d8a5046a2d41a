/**
 * Test payloads made on the fly: an AES-256-CTR keystream (fast, incompressible, reproducible from a
 * seed) emitted in deliberately uneven pieces so chunk boundaries fall everywhere. Nothing here ever
 * holds a whole payload: that is what lets the tests push 256 MiB and still measure memory.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

// Uneven on purpose: 1-byte and odd-sized pieces land in the middle of storage chunks.
const pieceSizes = [65_536, 1, 4_093, 100_000, 65_536, 17];

export interface Generated {
  readonly stream: Readable;
  /** The sha256 of everything emitted; throws if the stream was not read to the end. */
  sha256(): string;
}

export interface GenerateOptions {
  /** Errors the stream (with this error) once this many bytes were emitted. */
  readonly failAfter?: { readonly bytes: number; readonly error: Error };
}

export function generated(size: number, seed: number, options: GenerateOptions = {}): Generated {
  const cipher = createCipheriv('aes-256-ctr', seedKey(seed), Buffer.alloc(16));
  const zeros = Buffer.alloc(Math.max(...pieceSizes));
  const hash = createHash('sha256');
  let emitted = 0;
  let piece = 0;
  const stream = new Readable({
    read() {
      for (;;) {
        const failAfter = options.failAfter;
        if (failAfter !== undefined && emitted >= failAfter.bytes) {
          this.destroy(failAfter.error);
          return;
        }
        if (emitted >= size) {
          this.push(null);
          return;
        }
        let length = Math.min(pieceSizes[piece % pieceSizes.length] ?? 1, size - emitted);
        if (failAfter !== undefined) length = Math.min(length, Math.max(1, failAfter.bytes - emitted));
        piece += 1;
        const bytes = cipher.update(zeros.subarray(0, length));
        emitted += length;
        hash.update(bytes);
        if (!this.push(bytes)) return;
      }
    },
  });
  return {
    stream,
    sha256() {
      if (emitted !== size) throw new Error(`generated stream read ${emitted} of ${size} bytes`);
      return hash.digest('hex');
    },
  };
}

/** The sha256 and length of bytes `start..size` of the payload `generated(size, seed)`. */
export async function generatedDigest(
  size: number,
  seed: number,
  start = 0,
): Promise<{ sha256: string; size: number }> {
  const { stream } = generated(size, seed);
  let position = 0;
  const hash = createHash('sha256');
  await pipeline(stream, async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) {
      const skip = Math.max(0, Math.min(chunk.length, start - position));
      hash.update(chunk.subarray(skip));
      position += chunk.length;
    }
  });
  return { sha256: hash.digest('hex'), size: size - start };
}

/** Reads a stream to the end, hashing it (never buffering it). */
export async function digestOf(stream: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(stream, async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) {
      hash.update(chunk);
      size += chunk.length;
    }
  });
  return { sha256: hash.digest('hex'), size };
}

function seedKey(seed: number): Buffer {
  return createHash('sha256').update(`ledgerbus test payload ${seed}`).digest();
}
