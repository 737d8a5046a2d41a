import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { headerBytesMax } from '../envelope/header.js';

/*
 * What an escrow topic escrows (DESIGN §7): the payload's envelope header, framed, followed by the
 * ciphertext exactly as the envelope wrote it,
 *
 *   uint32-BE(header length) || canonical CBOR header || ciphertext,
 *
 * cut into chunks of the topic's chunk size. An auditor who fetched every chunk and rebuilt the
 * data key thus needs nothing from the sender: the header carries the chunk hashes and the
 * sender's signature that `decryptPayload` checks. Everything here streams; nothing holds more
 * than one chunk (or the header) at a time.
 */

const lengthPrefixBytes = 4;

/** The bytes that precede the ciphertext: the header's length (uint32 big-endian) and the header. */
export function escrowBlobPrefix(encodedHeader: Uint8Array): Uint8Array {
  if (encodedHeader.length < 1 || encodedHeader.length > headerBytesMax) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `an escrowed envelope header must be 1 to ${headerBytesMax} bytes, got ${encodedHeader.length}`,
    );
  }
  const prefix = new Uint8Array(lengthPrefixBytes + encodedHeader.length);
  new DataView(prefix.buffer).setUint32(0, encodedHeader.length, false);
  prefix.set(encodedHeader, lengthPrefixBytes);
  return prefix;
}

/** Total bytes of the blob of a header of `encodedHeaderBytes` and a ciphertext of `ciphertextBytes`. */
export function escrowBlobBytes(encodedHeaderBytes: number, ciphertextBytes: number): number {
  assert(
    Number.isSafeInteger(encodedHeaderBytes) && encodedHeaderBytes >= 0,
    'a header length is a non-negative integer',
  );
  assert(
    Number.isSafeInteger(ciphertextBytes) && ciphertextBytes >= 0,
    'a ciphertext length is a non-negative integer',
  );
  return lengthPrefixBytes + encodedHeaderBytes + ciphertextBytes;
}

/** Chunks of a blob of `blobBytes`: ceil(blobBytes / chunkBytes). BadConfig on a bad size. */
export function chunkCountFor(blobBytes: number, chunkBytes: number): number {
  checkChunkBytes(chunkBytes);
  if (!Number.isSafeInteger(blobBytes) || blobBytes < 1) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `blobBytes must be a positive integer, got ${String(blobBytes)}`,
    );
  }
  return Math.ceil(blobBytes / chunkBytes);
}

/**
 * Reads the framed header off the front of `blob` and returns it with the rest of the blob (the
 * ciphertext) as a stream that continues the same iteration, so the ciphertext is never held whole.
 * The returned `ciphertext` can be iterated once; if it is not read to the end, call its
 * `return()` to release `blob`. Throws (rejects with) LedgerbusError(MalformedEncoding) if the
 * declared header length is 0 or above `headerBytesMax`, or the blob ends inside the header;
 * `blob` is released in those cases. The header is not decoded or checked here: pass it to
 * `decodeEnvelopeHeader` and `decryptPayload`, which do.
 */
export async function splitEscrowBlob(
  blob: AsyncIterable<Uint8Array>,
): Promise<{ header: Uint8Array; ciphertext: AsyncIterable<Uint8Array> }> {
  const source = blob[Symbol.asyncIterator]();
  let leftover: Uint8Array | undefined;
  const lengthBytes = new Uint8Array(lengthPrefixBytes);
  let header: Uint8Array | undefined;
  let filled = 0;
  try {
    // Fill the length prefix, then the header, from pieces cut anywhere.
    while (header === undefined || filled < header.length) {
      const next = await source.next();
      if (next.done === true) {
        throw new LedgerbusError(
          ErrorCode.MalformedEncoding,
          `escrowed blob ends inside its ${header === undefined ? 'header length' : 'envelope header'}`,
        );
      }
      let piece = asBytes(next.value);
      while (piece.length > 0) {
        if (header === undefined) {
          const take = Math.min(lengthPrefixBytes - filled, piece.length);
          lengthBytes.set(piece.subarray(0, take), filled);
          filled += take;
          piece = piece.subarray(take);
          if (filled < lengthPrefixBytes) continue;
          header = new Uint8Array(readHeaderLength(lengthBytes));
          filled = 0;
        } else if (filled < header.length) {
          const take = Math.min(header.length - filled, piece.length);
          header.set(piece.subarray(0, take), filled);
          filled += take;
          piece = piece.subarray(take);
        } else {
          leftover = piece;
          break;
        }
      }
    }
  } catch (error) {
    await source.return?.();
    throw error;
  }
  return { header, ciphertext: continueAfter(leftover, source) };
}

/**
 * Cuts `source` into pieces of exactly `chunkBytes` (the last one shorter; none for an empty
 * source). Each chunk is a fresh array the consumer may keep; at most one chunk is buffered.
 * Throws LedgerbusError(BadConfig) if `chunkBytes` is not a positive integer.
 */
export async function* cutChunks(
  source: AsyncIterable<Uint8Array>,
  chunkBytes: number,
): AsyncGenerator<Uint8Array> {
  checkChunkBytes(chunkBytes);
  let pending = new Uint8Array(chunkBytes);
  let filled = 0;
  for await (const piece of source) {
    const bytes = asBytes(piece);
    for (let offset = 0; offset < bytes.length;) {
      const take = Math.min(chunkBytes - filled, bytes.length - offset);
      pending.set(bytes.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === chunkBytes) {
        const chunk = pending;
        pending = new Uint8Array(chunkBytes);
        filled = 0;
        yield chunk;
      }
    }
  }
  if (filled > 0) yield pending.slice(0, filled);
}

function readHeaderLength(prefix: Uint8Array): number {
  const length = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength).getUint32(0, false);
  if (length < 1 || length > headerBytesMax) {
    throw new LedgerbusError(
      ErrorCode.MalformedEncoding,
      `escrowed blob declares a ${length}-byte envelope header; it must be 1 to ${headerBytesMax} bytes`,
    );
  }
  return length;
}

/** The rest of an iteration: `first` (if any), then whatever `source` still yields. */
function continueAfter(
  first: Uint8Array | undefined,
  source: AsyncIterator<Uint8Array>,
): AsyncIterableIterator<Uint8Array> {
  let head = first;
  // A hand-written iterator rather than a generator: a generator that was never started does not
  // run its cleanup on return(), and `source` must be released even if nobody reads the ciphertext.
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next(): Promise<IteratorResult<Uint8Array>> {
      if (head !== undefined) {
        const value = head;
        head = undefined;
        return { done: false, value };
      }
      const next = await source.next();
      return next.done === true
        ? { done: true, value: undefined }
        : { done: false, value: asBytes(next.value) };
    },
    async return(): Promise<IteratorResult<Uint8Array>> {
      head = undefined;
      await source.return?.();
      return { done: true, value: undefined };
    },
  };
}

function checkChunkBytes(chunkBytes: number): void {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `chunkBytes must be a positive integer, got ${String(chunkBytes)}`,
    );
  }
}

function asBytes(piece: unknown): Uint8Array {
  // A string here means the caller set an encoding on the stream: a bug, not bad input.
  assert(piece instanceof Uint8Array, 'escrow blob streams must yield bytes (no encoding set)');
  return piece;
}
