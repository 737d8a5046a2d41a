import { Buffer } from 'node:buffer';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';

/**
 * Wire framing: every message is a 4-byte big-endian payload length followed by the payload.
 * TCP and TLS deliver a byte stream, so the length prefix is what restores message boundaries.
 */
export const frameHeaderBytes = 4;

/** Largest payload accepted unless a connection is configured otherwise. */
export const defaultFrameBytesMax = 16 * 1024 * 1024;

// The header's length field is an unsigned 32-bit integer, so no configuration can exceed it.
const frameBytesLimit = 0xffff_ffff;

/** The 4-byte header announcing a payload of `payloadBytes`. */
export function frameHeader(payloadBytes: number): Buffer {
  assert(
    Number.isInteger(payloadBytes) && payloadBytes >= 0 && payloadBytes <= frameBytesLimit,
    `frame payload length ${payloadBytes} fits the 32-bit header`,
  );
  const header = Buffer.allocUnsafe(frameHeaderBytes);
  header.writeUInt32BE(payloadBytes, 0);
  return header;
}

/** Header and payload in one fresh buffer. Large payloads are better written as two buffers (see link.ts). */
export function encodeFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(frameHeaderBytes + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.set(payload, frameHeaderBytes);
  return frame;
}

/** Throws LedgerbusError(BadConfig) unless `frameBytesMax` is a usable payload limit. */
export function checkFrameBytesMax(frameBytesMax: number): void {
  if (!Number.isSafeInteger(frameBytesMax) || frameBytesMax < 0 || frameBytesMax > frameBytesLimit) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `frameBytesMax must be an integer between 0 and ${frameBytesLimit}, got ${frameBytesMax}`,
    );
  }
}

/**
 * Reassembles frames from arbitrarily split chunks of a byte stream.
 *
 * Chunks are kept as a list and each byte is copied at most once (only a frame that spans several
 * chunks is concatenated; a frame inside one chunk is a zero-copy view of it), so decoding is linear
 * in the input however the stream is split. A declared length above `frameBytesMax` throws
 * LedgerbusError(Oversize) as soon as its header is complete, before any of that payload is held.
 * After a throw the decoder is unusable: the stream has lost its framing.
 */
export class FrameDecoder {
  readonly frameBytesMax: number;
  /** Chunks holding the next frame's bytes only: at most `frameBytesMax` plus one chunk. */
  private readonly chunks: Buffer[] = [];
  /** Index of the first unconsumed chunk in `chunks`; shifting the array per frame would be quadratic. */
  private head = 0;
  private bufferedBytes = 0;
  /** Payload length of the frame being assembled, once its header has been read. */
  private payloadBytes: number | undefined;
  private failure: LedgerbusError | undefined;

  constructor(options: { frameBytesMax?: number } = {}) {
    this.frameBytesMax = options.frameBytesMax ?? defaultFrameBytesMax;
    checkFrameBytesMax(this.frameBytesMax);
  }

  /**
   * Bytes held toward the next frame: once that frame's 4-byte header has been read (and consumed),
   * only its payload bytes so far; before that, everything received and not yet returned.
   */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** Set once the stream lost its framing (an oversize header); every later push throws it. */
  get failed(): LedgerbusError | undefined {
    return this.failure;
  }

  /**
   * Adds `chunk` and returns every frame it completes, in order (possibly none). Throws
   * LedgerbusError(Oversize) at a header above the limit — unless frames completed before it in
   * this chunk, which are returned, with `failed` set.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failure !== undefined) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    const frames: Buffer[] = [];
    for (;;) {
      if (this.payloadBytes === undefined) {
        if (this.bufferedBytes < frameHeaderBytes) break;
        const length = this.take(frameHeaderBytes).readUInt32BE(0);
        if (length > this.frameBytesMax) {
          this.failure = new LedgerbusError(
            ErrorCode.Oversize,
            `peer announced a ${length}-byte frame; the limit is ${this.frameBytesMax}`,
          );
          this.chunks.length = 0;
          this.bufferedBytes = 0;
          // Frames completed before the bad header are whole and in order: hand them over, and
          // fail from the next push on (`failed` says so at once).
          if (frames.length === 0) throw this.failure;
          return frames;
        }
        this.payloadBytes = length;
      }
      if (this.bufferedBytes < this.payloadBytes) break;
      frames.push(this.take(this.payloadBytes));
      this.payloadBytes = undefined;
    }
    return frames;
  }

  /** Removes and returns the next `count` buffered bytes; the caller checked they are there. */
  private take(count: number): Buffer {
    this.bufferedBytes -= count;
    const first = this.chunks[this.head];
    if (count === 0) return Buffer.alloc(0);
    assert(first !== undefined, 'FrameDecoder.take has a chunk to read');
    if (first.length >= count) {
      this.consumeFront(first, count);
      return first.subarray(0, count);
    }
    const result = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[this.head];
      assert(chunk !== undefined, 'FrameDecoder.take has enough buffered bytes');
      const used = Math.min(chunk.length, count - filled);
      chunk.copy(result, filled, 0, used);
      filled += used;
      this.consumeFront(chunk, used);
    }
    return result;
  }

  private consumeFront(chunk: Buffer, used: number): void {
    if (used < chunk.length) {
      this.chunks[this.head] = chunk.subarray(used);
      return;
    }
    this.chunks[this.head] = EMPTY;
    this.head += 1;
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      // Compact now and then so a long run of tiny chunks does not grow the array forever.
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);
