import { Buffer } from 'node:buffer';
import { createPublicKey, sign as signDigest, verify as verifyDigest } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { networkIdPattern, signingHash } from './hash.js';
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
 * Where a signature is valid: one network (genesis `network`). Every signature ledgerbus makes or
 * checks goes through one of these, over `signingHash(network, type, payload)`
 * ("ledgerbus/v1/<network>/<type>"), so a signature made in one network never verifies in another
 * whose parties use the same keys — an organization with one key in a test and a production
 * consortium, an operator who reuses a node key.
 *
 * There is deliberately no free `sign`/`verify`: a signature cannot be made or checked without
 * naming its network. Create the domain where the network is known (genesis, the registry, the
 * trust bundle) and pass it — or a `Signer` bound to it — to what signs and verifies.
 */
export class SigningDomain {
  private constructor(readonly network: string) {}

  /**
   * The domain of network `network`. Throws LedgerbusError(BadConfig) unless it is a genesis network
   * id: 1 to 128 letters, digits, '.', '_' or '-'.
   */
  static of(network: string): SigningDomain {
    if (typeof network !== 'string' || !networkIdPattern.test(network)) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `network id ${JSON.stringify(network)} is not a genesis network id (1 to 128 letters, digits, '.', '_' or '-')`,
      );
    }
    return new SigningDomain(network);
  }

  /** Ed25519 signature (64 bytes) by `key` over `signingHash(network, type, payload)`. */
  sign(key: SigningKeyPair, type: string, payload: Uint8Array): Uint8Array {
    const signature = signDigest(null, signingHash(this.network, type, payload), key.privateKey);
    return new Uint8Array(signature.buffer, signature.byteOffset, signature.byteLength);
  }

  /**
   * True only if `signature` is a valid Ed25519 signature by `publicKey` (32 raw bytes) over
   * `signingHash(network, type, payload)` of this network. Returns false, never throws, for
   * wrong-length keys or signatures, keys that are not curve points, and bad signatures — among them
   * every signature made in another network. An invalid `type` is a caller bug and throws.
   */
  verify(publicKey: Uint8Array, type: string, payload: Uint8Array, signature: Uint8Array): boolean {
    const digest = signingHash(this.network, type, payload);
    if (publicKey.length !== publicKeyBytes || signature.length !== signatureBytes) return false;
    const keyObject = publicKeyObject(publicKey);
    if (keyObject === undefined) return false;
    try {
      return verifyDigest(null, digest, keyObject, signature);
    } catch {
      return false;
    }
  }

  /** `key`, bound to this network: what signing functions take instead of a bare key. */
  signer(key: SigningKeyPair): Signer {
    return Object.freeze({
      domain: this,
      publicKey: key.publicKey,
      sign: (type: string, payload: Uint8Array) => this.sign(key, type, payload),
    });
  }
}

/** A signing key bound to the network its signatures are for (see `SigningDomain.signer`). */
export interface Signer {
  readonly domain: SigningDomain;
  readonly publicKey: Uint8Array;
  /** Signs `payload` in the domain of `type` of this signer's network. */
  sign(type: string, payload: Uint8Array): Uint8Array;
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
