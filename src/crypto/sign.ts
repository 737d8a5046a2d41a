import { Buffer } from 'node:buffer';
import { createPublicKey, sign as signDigest, verify as verifyDigest } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { domainHash } from './hash.js';
import { publicKeyBytes } from './keys.js';
import type { SigningKeyPair } from './keys.js';

export const signatureBytes = 64;

// DER header of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the 32 raw key bytes follow it.
const spkiEd25519Prefix = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Building a KeyObject costs about as much as a verification, and a replica checks signatures from
 * the same few dozen keys over and over, so parsed keys are kept. The bound caps memory when peers
 * present many keys; on overflow the oldest entry goes (insertion order), which is cheap and good
 * enough for a working set far below the bound.
 */
const publicKeyCacheEntriesMax = 4096;
const publicKeyCache = new Map<string, KeyObject>();

/**
 * Ed25519 signature (64 bytes) over `domainHash(type, payload)`, so a signature for one type of
 * object never verifies as another.
 */
export function sign(key: SigningKeyPair, type: string, payload: Uint8Array): Uint8Array {
  const signature = signDigest(null, domainHash(type, payload), key.privateKey);
  return new Uint8Array(signature.buffer, signature.byteOffset, signature.byteLength);
}

/**
 * True only if `signature` is a valid Ed25519 signature by `publicKey` (32 raw bytes) over
 * `domainHash(type, payload)`. Returns false, never throws, for wrong-length keys or signatures,
 * keys that are not curve points, and bad signatures. An invalid `type` is a caller bug and throws.
 */
export function verify(
  publicKey: Uint8Array,
  type: string,
  payload: Uint8Array,
  signature: Uint8Array,
): boolean {
  const digest = domainHash(type, payload);
  if (publicKey.length !== publicKeyBytes || signature.length !== signatureBytes) return false;
  const keyObject = publicKeyObject(publicKey);
  if (keyObject === undefined) return false;
  try {
    return verifyDigest(null, digest, keyObject, signature);
  } catch {
    return false;
  }
}

function publicKeyObject(publicKey: Uint8Array): KeyObject | undefined {
  const cacheKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString(
    'latin1',
  );
  let keyObject = publicKeyCache.get(cacheKey);
  if (keyObject === undefined) {
    try {
      keyObject = createPublicKey({
        key: Buffer.concat([spkiEd25519Prefix, publicKey]),
        format: 'der',
        type: 'spki',
      });
    } catch {
      return undefined;
    }
    if (publicKeyCache.size >= publicKeyCacheEntriesMax) {
      const oldest = publicKeyCache.keys().next();
      if (oldest.done !== true) publicKeyCache.delete(oldest.value);
    }
    publicKeyCache.set(cacheKey, keyObject);
  }
  return keyObject;
}
