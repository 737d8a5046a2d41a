import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { Stats } from 'node:fs';
import {
  closeSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Buffer } from 'node:buffer';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';

/** An Ed25519 identity: the raw public key that goes into registries and certificates, and the private key. */
export interface SigningKeyPair {
  /** 32 raw bytes (RFC 8032 encoding). */
  readonly publicKey: Uint8Array;
  readonly privateKey: KeyObject;
}

export const publicKeyBytes = 32;
export const seedBytes = 32;

// DER header of a PKCS#8 Ed25519 private key (RFC 8410 §7); the 32-byte seed follows it.
const pkcs8Ed25519Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
// A PEM Ed25519 key is ~120 bytes; the bound keeps a wrong path (say, a log file) from being slurped.
const keyFileBytesMax = 64 * 1024;

/** A fresh random Ed25519 key pair. */
export function generateSigningKey(): SigningKeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  return fromPrivateKey(privateKey);
}

/**
 * The Ed25519 key pair whose RFC 8032 private key is `seed` (32 bytes): the same seed always gives
 * the same keys, which the simulator and tests rely on. Never derive production keys this way from
 * anything but a secret, uniformly random seed.
 */
export function signingKeyFromSeed(seed: Uint8Array): SigningKeyPair {
  assert(seed.length === seedBytes, `an Ed25519 seed is ${seedBytes} bytes, got ${seed.length}`);
  const der = Buffer.concat([pkcs8Ed25519Prefix, seed]);
  return fromPrivateKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

/**
 * Writes `key` to `path` as a PKCS#8 PEM file with mode 0600, atomically: it writes a temporary file
 * in the same directory, fsyncs it, renames it over `path`, then fsyncs the directory, so after a
 * crash `path` holds either the old key or the complete new one, never a torn file.
 */
export function saveSigningKey(path: string, key: SigningKeyPair): void {
  const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' });
  const directory = dirname(path);
  const temporary = join(directory, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    try {
      // The creation mode is filtered by the umask; set it explicitly so the result never depends on it.
      fchmodSync(fd, 0o600);
      writeFileSync(fd, pem);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    unlinkQuietly(temporary);
    throw error;
  }
  syncDirectory(directory);
}

/**
 * Reads an Ed25519 private key written by `saveSigningKey` (any PKCS#8 PEM Ed25519 key works).
 * Throws LedgerbusError with code KeyFileMissing if `path` does not exist, KeyFilePermissions if
 * group or others may read or write it (the message says to run `chmod 600 <path>`) or we may not
 * read it, and KeyFileCorrupt if it is not an Ed25519 private key.
 */
export function loadSigningKey(path: string): SigningKeyPair {
  return fromPrivateKey(loadPrivateKeyFile(path, 'ed25519'));
}

/**
 * Reads a PKCS#8 PEM private key of the given type with the checks every key file gets: KeyFileMissing,
 * KeyFilePermissions (group/other access; the message says `chmod 600 <path>`), KeyFileCorrupt (not
 * a PEM private key, or a key of another type).
 */
export function loadPrivateKeyFile(path: string, type: 'ed25519' | 'x25519'): KeyObject {
  const pem = readKeyFile(path);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new LedgerbusError(ErrorCode.KeyFileCorrupt, `${path} does not hold a PEM private key`, {
      cause: error,
    });
  }
  if (privateKey.asymmetricKeyType !== type) {
    throw new LedgerbusError(
      ErrorCode.KeyFileCorrupt,
      `${path} holds a ${privateKey.asymmetricKeyType ?? 'non-asymmetric'} key, expected an ${type === 'ed25519' ? 'Ed25519' : 'X25519'} key`,
    );
  }
  return privateKey;
}

function readKeyFile(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      throw new LedgerbusError(ErrorCode.KeyFileMissing, `key file ${path} does not exist`, { cause: error });
    }
    if (errorCode(error) === 'EACCES') {
      throw new LedgerbusError(
        ErrorCode.KeyFilePermissions,
        `key file ${path} is not readable by this user`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  try {
    // fstat on the open descriptor, so the file checked is the file read.
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      throw new LedgerbusError(ErrorCode.KeyFileCorrupt, `key file ${path} is not a regular file`);
    }
    assertOwnerOnly(stats, path, `key file ${path}`);
    if (stats.size > keyFileBytesMax) {
      throw new LedgerbusError(
        ErrorCode.KeyFileCorrupt,
        `key file ${path} is ${stats.size} bytes, too large`,
      );
    }
    const buffer = Buffer.alloc(stats.size);
    let filled = 0;
    while (filled < buffer.length) {
      const read = readSync(fd, buffer, filled, buffer.length - filled, filled);
      if (read === 0) break;
      filled += read;
    }
    return buffer.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/**
 * Throws KeyFilePermissions if group or others may read or write the file `stats` describes, with a
 * message that starts with `description` and says to run `chmod 600 <path>`. Every file holding a
 * secret (key files, connector.yaml with its API token) is checked this way before it is used. Take
 * `stats` from fstat on the descriptor you then read, so the file checked is the file read. Windows
 * has no POSIX permission bits, so nothing is checked there.
 */
export function assertOwnerOnly(stats: Stats, path: string, description: string): void {
  if (process.platform === 'win32' || (stats.mode & 0o066) === 0) return;
  throw new LedgerbusError(
    ErrorCode.KeyFilePermissions,
    `${description} can be read or written by other users; run \`chmod 600 ${path}\``,
  );
}

function fromPrivateKey(privateKey: KeyObject): SigningKeyPair {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  assert(typeof jwk.x === 'string', 'Ed25519 public JWK has an x coordinate');
  const publicKey = Uint8Array.from(Buffer.from(jwk.x, 'base64url'));
  assert(publicKey.length === publicKeyBytes, 'Ed25519 public key is 32 bytes');
  return Object.freeze({ publicKey, privateKey });
}

function syncDirectory(directory: string): void {
  // Directories cannot be opened for fsync on Windows; the rename is as durable as it gets there.
  if (process.platform === 'win32') return;
  const fd = openSync(directory, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Best effort: the temporary file may never have been created, and the original error matters more.
  }
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}
