import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { headerBytesMax } from '../envelope/header.js';
import { chunkCountFor, cutChunks, escrowBlobBytes, escrowBlobPrefix, splitEscrowBlob } from './blob.js';

/** `data` cut at the given piece lengths (cycled); `state` says how far it was read, and if released. */
function pieces(data: Uint8Array, lengths: readonly number[]) {
  const state = { pulled: 0, released: false };
  async function* generate(): AsyncGenerator<Uint8Array> {
    try {
      for (let offset = 0, index = 0; offset < data.length; index++) {
        const length = Math.max(1, lengths[index % lengths.length] ?? 1);
        state.pulled += 1;
        yield data.slice(offset, offset + length);
        offset += length;
      }
    } finally {
      state.released = true;
    }
  }
  return { source: generate(), state };
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const piece of source) out.push(piece);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

async function codeOf(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    return isLedgerbusError(error) ? error.code : `other: ${String(error)}`;
  }
  return undefined;
}

describe('escrow blob framing', () => {
  it('prefixes the header with its length, big-endian', () => {
    const header = new Uint8Array(300).fill(7);
    const prefix = escrowBlobPrefix(header);
    expect([...prefix.subarray(0, 4)]).toEqual([0, 0, 1, 44]);
    expect(prefix.subarray(4)).toEqual(header);
    expect(escrowBlobBytes(300, 1000)).toBe(1304);
  });

  it('splits header and ciphertext back out, however the stream is cut (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.uint8Array({ maxLength: 600 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 6 }),
        async (header, ciphertext, lengths) => {
          const blob = concat([escrowBlobPrefix(header), ciphertext]);
          expect(blob.length).toBe(escrowBlobBytes(header.length, ciphertext.length));
          const { source, state } = pieces(blob, lengths);
          const split = await splitEscrowBlob(source);
          expect(split.header).toEqual(header);
          expect(concat(await collect(split.ciphertext))).toEqual(ciphertext);
          expect(state.released).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('reads only as far as the header before returning, and releases the source on return()', async () => {
    const header = new Uint8Array(10).fill(1);
    const blob = concat([escrowBlobPrefix(header), new Uint8Array(1000)]);
    const { source, state } = pieces(blob, [20]);
    const split = await splitEscrowBlob(source);
    expect(state.pulled).toBe(1);
    const iterator = split.ciphertext[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual(new Uint8Array(6));
    expect(state.pulled).toBe(1);
    await iterator.return?.();
    expect(state.released).toBe(true);
  });

  it('releases the source even if the ciphertext is never read', async () => {
    const { source, state } = pieces(concat([escrowBlobPrefix(Uint8Array.of(1)), new Uint8Array(50)]), [2]);
    const split = await splitEscrowBlob(source);
    // Only return() was called, no next(): a generator would skip its cleanup here.
    expect(state.released).toBe(false);
    await (split.ciphertext as AsyncIterableIterator<Uint8Array>).return?.();
    expect(state.released).toBe(true);
  });

  it('refuses a declared header length of 0 or above headerBytesMax, and a blob ending in the header', async () => {
    const lengthOf = (length: number) => {
      const prefix = new Uint8Array(8);
      new DataView(prefix.buffer).setUint32(0, length, false);
      return prefix;
    };
    for (const [bytes, reason] of [
      [lengthOf(headerBytesMax + 1), /declares a \d+-byte envelope header/],
      [lengthOf(0xffffffff), /declares a 4294967295-byte envelope header/],
      [lengthOf(0), /declares a 0-byte envelope header/],
      [concat([escrowBlobPrefix(new Uint8Array(100))]).subarray(0, 50), /ends inside its envelope header/],
      [Uint8Array.of(0, 0), /ends inside its header length/],
      [new Uint8Array(0), /ends inside its header length/],
    ] as const) {
      const { source, state } = pieces(bytes, [3]);
      const failure = await splitEscrowBlob(source).catch((error: unknown) => error);
      expect(isLedgerbusError(failure, ErrorCode.MalformedEncoding)).toBe(true);
      expect((failure as Error).message).toMatch(reason);
      expect(state.released).toBe(true);
    }
    // The framing side refuses an empty header too, so it never writes what the reader refuses.
    expect(await codeOf(async () => escrowBlobPrefix(new Uint8Array(0)))).toBe(ErrorCode.Oversize);
  });
});

describe('cutChunks', () => {
  it('cuts exact chunks, the last one shorter, however the source is cut (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 700 }),
        fc.integer({ min: 1, max: 120 }),
        fc.array(fc.integer({ min: 1, max: 250 }), { minLength: 1, maxLength: 6 }),
        async (data, chunkBytes, lengths) => {
          const chunks = await collect(cutChunks(pieces(data, lengths).source, chunkBytes));
          expect(concat(chunks)).toEqual(data);
          expect(chunks).toHaveLength(data.length === 0 ? 0 : chunkCountFor(data.length, chunkBytes));
          chunks.forEach((chunk, index) => {
            if (index < chunks.length - 1) expect(chunk.length).toBe(chunkBytes);
            else expect(chunk.length).toBeGreaterThan(0);
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('yields each chunk as soon as it is full, and chunks stay intact after later ones', async () => {
    const data = new Uint8Array(randomBytes(100));
    const { source, state } = pieces(data, [10]);
    const iterator = cutChunks(source, 25);
    const first = (await iterator.next()).value as Uint8Array;
    expect(state.pulled).toBe(3);
    const rest = await collect({ [Symbol.asyncIterator]: () => iterator });
    expect(first).toEqual(data.subarray(0, 25));
    expect(rest).toHaveLength(3);
  });

  it('counts chunks and refuses bad sizes', async () => {
    expect(chunkCountFor(1, 4096)).toBe(1);
    expect(chunkCountFor(4096, 4096)).toBe(1);
    expect(chunkCountFor(4097, 4096)).toBe(2);
    expect(await codeOf(async () => chunkCountFor(0, 4096))).toBe(ErrorCode.BadConfig);
    expect(await codeOf(async () => chunkCountFor(10, 0))).toBe(ErrorCode.BadConfig);
    expect(await codeOf(() => collect(cutChunks(pieces(new Uint8Array(3), [1]).source, 0.5)))).toBe(
      ErrorCode.BadConfig,
    );
  });
});
