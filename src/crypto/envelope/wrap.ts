import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import type { webcrypto } from 'node:crypto';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { encodeCanonical } from '../../codec/cbor.js';
import { encapsulatedKeyBytes, wrappedKeyBytes } from './header.js';
import type { EnvelopeRecipient } from './header.js';
import { encryptionPrivateBytes, encryptionPublicKeyBytes } from './keys.js';
import type { EncryptionKeyPair } from './keys.js';

/*
 * Data-key wrapping with HPKE (RFC 9180) in base mode, suite DHKEM(X25519, HKDF-SHA256) /
 * HKDF-SHA256 / AES-256-GCM, through @hpke/core, which runs on the platform's WebCrypto (X25519,
 * HKDF and AES-GCM are all native in Node 20). The HPKE `info` binds the wrapped key to this
 * payload, its sender and its recipient, so a wrapped key cannot be replayed into another envelope
 * or to another org, even before the header signature is checked.
 */

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/**
 * Importing a key into WebCrypto cost as much as the HPKE operation itself, once per payload: the
 * connector's own private key is imported once per key pair, and recipients' public keys (a
 * network has a handful) once each, in a bounded map.
 */
const importedPrivateKeys = new WeakMap<EncryptionKeyPair, Promise<webcrypto.CryptoKey>>();
const importedPublicKeys = new Map<string, Promise<webcrypto.CryptoKey>>();
const importedPublicKeysMax = 1024;

function importedPrivateKey(key: EncryptionKeyPair): Promise<webcrypto.CryptoKey> {
  let imported = importedPrivateKeys.get(key);
  if (imported === undefined) {
    imported = suite.kem.deserializePrivateKey(encryptionPrivateBytes(key));
    importedPrivateKeys.set(key, imported);
    // A key that failed to import is not remembered as failed.
    imported.catch(() => importedPrivateKeys.delete(key));
  }
  return imported;
}

function importedPublicKey(publicKey: Uint8Array): Promise<webcrypto.CryptoKey> {
  const cacheKey = Buffer.from(publicKey).toString('hex');
  let imported = importedPublicKeys.get(cacheKey);
  if (imported === undefined) {
    imported = suite.kem.deserializePublicKey(publicKey);
    if (importedPublicKeys.size >= importedPublicKeysMax) importedPublicKeys.clear();
    importedPublicKeys.set(cacheKey, imported);
    imported.catch(() => importedPublicKeys.delete(cacheKey));
  }
  return imported;
}

/** Length of the data key every envelope uses (AES-256). */
export const dataKeyBytes = 32;

/** Who a data key is wrapped for, and what it is wrapped to. */
export interface WrapTarget {
  readonly orgId: string;
  /** The org's raw 32-byte X25519 public key, as published in the registry. */
  readonly publicKey: Uint8Array;
}

function keyInfo(payloadId: string, senderOrgId: string, recipientOrgId: string): Uint8Array {
  return encodeCanonical({ domain: 'ledgerbus/v1/envelope-key', payloadId, senderOrgId, recipientOrgId });
}

/**
 * HPKE-seals `dataKey` to `target.publicKey`. Throws LedgerbusError(SchemaMismatch) naming the
 * recipient if its public key is not a usable X25519 key (wrong length, or a low-order point that
 * HPKE rejects).
 */
export async function wrapDataKey(
  dataKey: Uint8Array,
  context: { payloadId: string; senderOrgId: string },
  target: WrapTarget,
): Promise<EnvelopeRecipient> {
  assert(dataKey.length === dataKeyBytes, `a data key is ${dataKeyBytes} bytes`);
  if (!(target.publicKey instanceof Uint8Array) || target.publicKey.length !== encryptionPublicKeyBytes) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `recipient ${target.orgId}: public key must be ${encryptionPublicKeyBytes} raw X25519 bytes`,
    );
  }
  let sealed: { ct: ArrayBuffer; enc: ArrayBuffer };
  try {
    const recipientPublicKey = await importedPublicKey(target.publicKey);
    sealed = await suite.seal(
      { recipientPublicKey, info: keyInfo(context.payloadId, context.senderOrgId, target.orgId) },
      dataKey,
    );
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `recipient ${target.orgId}: cannot wrap the data key to this public key`,
      { cause: error },
    );
  }
  const encapsulatedKey = new Uint8Array(sealed.enc);
  const wrappedKey = new Uint8Array(sealed.ct);
  assert(encapsulatedKey.length === encapsulatedKeyBytes, 'HPKE X25519 enc is 32 bytes');
  assert(wrappedKey.length === wrappedKeyBytes, 'HPKE-sealed data key is 48 bytes');
  return { orgId: target.orgId, encapsulatedKey, wrappedKey };
}

/**
 * Opens the data key wrapped for `recipient` with `recipientKey`. Throws LedgerbusError(BadSignature)
 * if it does not authenticate: a wrong private key, or a tampered encapsulated or wrapped key.
 */
export async function unwrapDataKey(
  context: { payloadId: string; senderOrgId: string },
  recipient: EnvelopeRecipient,
  recipientKey: EncryptionKeyPair,
): Promise<Uint8Array> {
  let opened: ArrayBuffer;
  try {
    const privateKey = await importedPrivateKey(recipientKey);
    opened = await suite.open(
      {
        recipientKey: privateKey,
        enc: recipient.encapsulatedKey,
        info: keyInfo(context.payloadId, context.senderOrgId, recipient.orgId),
      },
      recipient.wrappedKey,
    );
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the data key of payload ${context.payloadId} wrapped for org ${recipient.orgId} does not open with this key`,
      { cause: error },
    );
  }
  const dataKey = new Uint8Array(opened);
  if (dataKey.length !== dataKeyBytes) {
    throw new LedgerbusError(ErrorCode.BadSignature, `the wrapped data key is not ${dataKeyBytes} bytes`);
  }
  return dataKey;
}
