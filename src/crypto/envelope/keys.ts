import { Buffer } from 'node:buffer';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { assert } from '../../errors.js';
import { loadPrivateKeyFile, saveSigningKey } from '../keys.js';

/**
 * An organization's X25519 encryption key (DESIGN §4): the raw public key that the registry
 * publishes and senders wrap data keys to, and the private key that unwraps them.
 */
export interface EncryptionKeyPair {
  /** 32 raw bytes (RFC 7748 u-coordinate). */
  readonly publicKey: Uint8Array;
  readonly privateKey: KeyObject;
}

export const encryptionPublicKeyBytes = 32;

// DER header of a PKCS#8 X25519 private key (RFC 8410 §7); the 32-byte private scalar follows it.
const pkcs8X25519Prefix = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** A fresh random X25519 key pair. */
export function generateEncryptionKey(): EncryptionKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  return encryptionKeyFromPrivateKey(privateKey);
}

/**
 * The X25519 key pair whose raw RFC 7748 private key is `privateBytes` (32 bytes). For tests and
 * interop only: production keys come from `generateEncryptionKey`.
 */
export function encryptionKeyFromPrivateBytes(privateBytes: Uint8Array): EncryptionKeyPair {
  assert(privateBytes.length === 32, `an X25519 private key is 32 bytes, got ${privateBytes.length}`);
  const der = Buffer.concat([pkcs8X25519Prefix, privateBytes]);
  return encryptionKeyFromPrivateKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

/** Wraps an X25519 private KeyObject; a key of any other type is a caller bug. */
export function encryptionKeyFromPrivateKey(privateKey: KeyObject): EncryptionKeyPair {
  assert(privateKey.asymmetricKeyType === 'x25519', 'an encryption key must be an X25519 private key');
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  assert(typeof jwk.x === 'string', 'X25519 public JWK has an x coordinate');
  const publicKey = Uint8Array.from(Buffer.from(jwk.x, 'base64url'));
  assert(publicKey.length === encryptionPublicKeyBytes, 'X25519 public key is 32 bytes');
  return Object.freeze({ publicKey, privateKey });
}

/** The raw 32-byte private scalar, which the HPKE library imports. Never log or persist it raw. */
export function encryptionPrivateBytes(key: EncryptionKeyPair): Uint8Array {
  const jwk = key.privateKey.export({ format: 'jwk' });
  assert(typeof jwk.d === 'string', 'X25519 private JWK has a d component');
  return Uint8Array.from(Buffer.from(jwk.d, 'base64url'));
}

/**
 * Writes `key` to `path` as a PKCS#8 PEM file with mode 0600, atomically (temporary file, fsync,
 * rename, directory fsync), exactly as signing keys are written: `saveSigningKey` only exports the
 * PKCS#8 PEM of the private key, whatever its curve.
 */
export function saveEncryptionKey(path: string, key: EncryptionKeyPair): void {
  assert(key.privateKey.asymmetricKeyType === 'x25519', 'an encryption key must be an X25519 private key');
  saveSigningKey(path, key);
}

/**
 * Reads an X25519 private key written by `saveEncryptionKey` (any PKCS#8 PEM X25519 key works).
 * Throws LedgerbusError with code KeyFileMissing if `path` does not exist, KeyFilePermissions if
 * group or others may read or write it (the message says to run `chmod 600 <path>`) or we may not
 * read it, and KeyFileCorrupt if it is not an X25519 private key.
 */
export function loadEncryptionKey(path: string): EncryptionKeyPair {
  return encryptionKeyFromPrivateKey(loadPrivateKeyFile(path, 'x25519'));
}
