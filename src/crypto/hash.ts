import { createHash, hash as oneShotHash } from 'node:crypto';
import { assert } from '../errors.js';

export { bytesEqual, fromHex, toHex } from '../codec/bytes.js';

/** Length in bytes of every hash this module returns. */
export const hashBytes = 32;

const domainTypePattern = /^[a-z][a-z0-9-]*$/;
const domainPrefixes = new Map<string, Uint8Array>();
const signingPrefixes = new Map<string, Uint8Array>();

/**
 * What a network id (genesis `network`) may be: the genesis identifier pattern. It has no '/', so
 * "ledgerbus/v1/<network>/<type>" names exactly one (network, type) pair, and it can never be read
 * as a network-free "ledgerbus/v1/<type>" domain (types have no '/' either).
 */
export const networkIdPattern = /^[a-zA-Z0-9._-]{1,128}$/;

/**
 * SHA-256 of the concatenation of `parts`. Concatenation is ambiguous when part lengths vary, so
 * use it only where every part but the last has a fixed length; otherwise use `domainHash`.
 */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  // One part, the common case, needs no Hash object (which costs more than hashing a short input).
  if (parts.length === 1) return toUint8Array(oneShotHash('sha256', parts[0] as Uint8Array, 'buffer'));
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return toUint8Array(hash.digest());
}

/**
 * Domain-separated hash of something that is named, not signed — a block's identity, a request
 * digest, a key commitment: SHA-256 over
 *   uint16-BE(byteLength(domain)) || domain || payload,   with domain = "ledgerbus/v1/" + type.
 * The length prefix makes (domain, payload) unambiguous, so a hash of one type of object is never
 * the hash of another. `type` must match /^[a-z][a-z0-9-]*$/ (a constant in the caller; a bad one
 * is a bug, so it throws AssertionError). Signatures are over `signingHash`, which adds the network.
 */
export function domainHash(type: string, payload: Uint8Array): Uint8Array {
  return prefixedHash(domainPrefix(type), payload);
}

/**
 * The only thing ledgerbus ever signs: `domainHash`'s construction with
 *   domain = "ledgerbus/v1/" + network + "/" + type,
 * so a signature made for one type of object never verifies as another, and one made in one
 * network (genesis `network`) never verifies in another, even where both use the same keys. Use it
 * through `SigningDomain` (sign.ts), which fixes the network once. `network` must match
 * `networkIdPattern` and `type` the pattern of `domainHash`; a bad one is a bug: AssertionError.
 */
export function signingHash(network: string, type: string, payload: Uint8Array): Uint8Array {
  return prefixedHash(signingPrefix(network, type), payload);
}

/**
 * Up to this size a payload is copied behind its prefix and hashed in one call (`crypto.hash`):
 * building a Hash object costs more than that copy. Larger payloads stream through a Hash object
 * uncopied.
 */
const oneShotPayloadBytesMax = 4096;

/** SHA-256(prefix || parts...), for the fixed prefixes of domains and of Merkle leaves and nodes. */
export function prefixedHash(prefix: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  let payloadBytes = 0;
  for (const part of parts) payloadBytes += part.length;
  if (payloadBytes > oneShotPayloadBytesMax) {
    const hash = createHash('sha256');
    hash.update(prefix);
    for (const part of parts) hash.update(part);
    return toUint8Array(hash.digest());
  }
  const input = Buffer.allocUnsafe(prefix.length + payloadBytes);
  input.set(prefix, 0);
  let at = prefix.length;
  for (const part of parts) {
    input.set(part, at);
    at += part.length;
  }
  return toUint8Array(oneShotHash('sha256', input, 'buffer'));
}

function signingPrefix(network: string, type: string): Uint8Array {
  // Neither part can hold a '/', so the key names one (network, type) pair.
  const key = `${network}/${type}`;
  let prefix = signingPrefixes.get(key);
  if (prefix === undefined) {
    assert(networkIdPattern.test(network), `invalid network id "${network}"`);
    checkType(type);
    prefix = lengthPrefixed(`ledgerbus/v1/${key}`);
    // A process serves one network (tests, a few); the bound is only a backstop.
    if (signingPrefixes.size < 4096) signingPrefixes.set(key, prefix);
  }
  return prefix;
}

function domainPrefix(type: string): Uint8Array {
  let prefix = domainPrefixes.get(type);
  if (prefix === undefined) {
    checkType(type);
    prefix = lengthPrefixed(`ledgerbus/v1/${type}`);
    // Types are code constants, so the map stays small; the size check is only a backstop.
    if (domainPrefixes.size < 1024) domainPrefixes.set(type, prefix);
  }
  return prefix;
}

function checkType(type: string): void {
  assert(domainTypePattern.test(type) && type.length <= 200, `invalid signing domain type "${type}"`);
}

function lengthPrefixed(text: string): Uint8Array {
  const domain = new TextEncoder().encode(text);
  const prefix = new Uint8Array(2 + domain.length);
  new DataView(prefix.buffer).setUint16(0, domain.length);
  prefix.set(domain, 2);
  return prefix;
}

function toUint8Array(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
