import { createHash } from 'node:crypto';
import { assert } from '../errors.js';

export { bytesEqual, fromHex, toHex } from '../codec/bytes.js';

/** Length in bytes of every hash this module returns. */
export const hashBytes = 32;

const domainTypePattern = /^[a-z][a-z0-9-]*$/;
const domainPrefixes = new Map<string, Uint8Array>();

/**
 * SHA-256 of the concatenation of `parts`. Concatenation is ambiguous when part lengths vary, so
 * use it only where every part but the last has a fixed length; otherwise use `domainHash`.
 */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return toUint8Array(hash.digest());
}

/**
 * Domain-separated hash, the only thing ledgerbus ever signs: SHA-256 over
 *   uint16-BE(byteLength(domain)) || domain || payload,   with domain = "ledgerbus/v1/" + type.
 * The length prefix makes (domain, payload) unambiguous, so a signature made for one type of
 * object can never be replayed as another. `type` must match /^[a-z][a-z0-9-]*$/ (a constant in
 * the caller; a bad one is a bug, so it throws AssertionError).
 */
export function domainHash(type: string, payload: Uint8Array): Uint8Array {
  const hash = createHash('sha256');
  hash.update(domainPrefix(type));
  hash.update(payload);
  return toUint8Array(hash.digest());
}

function domainPrefix(type: string): Uint8Array {
  let prefix = domainPrefixes.get(type);
  if (prefix === undefined) {
    assert(domainTypePattern.test(type) && type.length <= 200, `invalid signing domain type "${type}"`);
    const domain = new TextEncoder().encode(`ledgerbus/v1/${type}`);
    prefix = new Uint8Array(2 + domain.length);
    new DataView(prefix.buffer).setUint16(0, domain.length);
    prefix.set(domain, 2);
    // Types are code constants, so the map stays small; the size check is only a backstop.
    if (domainPrefixes.size < 1024) domainPrefixes.set(type, prefix);
  }
  return prefix;
}

function toUint8Array(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
