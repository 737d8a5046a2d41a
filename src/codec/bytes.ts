import { Buffer } from 'node:buffer';
import { ErrorCode, LedgerbusError } from '../errors.js';

const hexPattern = /^(?:[0-9a-fA-F]{2})*$/;

/** Lower-case hexadecimal rendering of `bytes`, two characters per byte. */
export function toHex(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('hex');
}

/**
 * Parses hexadecimal (either case, no prefix, even length) into a fresh Uint8Array. Throws
 * LedgerbusError(MalformedEncoding) on anything else, because Buffer.from would silently truncate.
 */
export function fromHex(hex: string): Uint8Array {
  if (!hexPattern.test(hex)) {
    throw new LedgerbusError(ErrorCode.MalformedEncoding, 'expected an even-length hexadecimal string');
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** True when both arrays hold the same bytes. Not constant-time: use it only on public data. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && asBuffer(a).equals(b);
}

/** A Buffer view over the same memory (no copy), for Node APIs that are faster on Buffers. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
