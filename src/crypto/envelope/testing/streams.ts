import { Buffer } from 'node:buffer';
import { Readable, Writable } from 'node:stream';
import { isLedgerbusError } from '../../../errors.js';
import type { LedgerbusError } from '../../../errors.js';
import { decryptPayload, encryptPayload } from '../envelope.js';
import type { DecryptPayloadOptions, EncryptPayloadOptions } from '../envelope.js';
import type { EnvelopeHeader } from '../header.js';

/*
 * Test helpers (not part of the public API): in-memory sinks and sources with arbitrary piece
 * boundaries, and collectors that keep what a failing stream released before its error.
 */

/** A Writable that keeps everything written to it. */
export class MemorySink extends Writable {
  readonly pieces: Buffer[] = [];
  constructor(highWaterMark = 16 * 1024) {
    super({ highWaterMark });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.pieces.push(chunk);
    callback();
  }
  bytes(): Buffer {
    return Buffer.concat(this.pieces);
  }
}

/** A byte stream of `data` cut at the given piece lengths (cycled), so chunk boundaries fall anywhere. */
export function piecewise(data: Uint8Array, pieceLengths: readonly number[] = [data.length || 1]): Readable {
  const pieces: Buffer[] = [];
  let offset = 0;
  for (let index = 0; offset < data.length; index++) {
    const length = Math.max(1, pieceLengths[index % pieceLengths.length] ?? 1);
    pieces.push(Buffer.from(data.subarray(offset, offset + length)));
    offset += length;
  }
  return Readable.from(pieces, { objectMode: false });
}

export async function encryptToMemory(
  options: Omit<EncryptPayloadOptions, 'sink' | 'source'> & { plaintext: Uint8Array; pieces?: number[] },
): Promise<{ header: EnvelopeHeader; ciphertext: Buffer }> {
  const sink = new MemorySink();
  const { plaintext, pieces, ...rest } = options;
  const { header } = await encryptPayload({ ...rest, source: piecewise(plaintext, pieces), sink });
  return { header, ciphertext: sink.bytes() };
}

/** Everything the stream released, and the error it ended with (if any). */
export async function drain(stream: Readable): Promise<{ output: Buffer; error: unknown }> {
  const pieces: Buffer[] = [];
  try {
    for await (const piece of stream) pieces.push(piece as Buffer);
    return { output: Buffer.concat(pieces), error: undefined };
  } catch (error) {
    return { output: Buffer.concat(pieces), error };
  }
}

/** Omit over each member of a union (a plain Omit would merge the recipient-key and data-key forms). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export async function decryptFromMemory(
  options: DistributiveOmit<DecryptPayloadOptions, 'ciphertext'> & {
    ciphertext: Uint8Array;
    pieces?: number[];
  },
): Promise<{ output: Buffer; error: LedgerbusError | undefined }> {
  const { ciphertext, pieces, ...rest } = options;
  const { output, error } = await drain(
    decryptPayload({ ...rest, ciphertext: piecewise(ciphertext, pieces) }),
  );
  if (error !== undefined && !isLedgerbusError(error)) throw error;
  return { output, error };
}
