import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { fromHex, toHex } from './hash.js';
import { generateSigningKey, loadSigningKey, saveSigningKey, signingKeyFromSeed } from './keys.js';
import { SigningDomain } from './sign.js';

const { sign, verify } = (() => {
  const domain = SigningDomain.of('keys-test');
  return { sign: domain.sign.bind(domain), verify: domain.verify.bind(domain) };
})();

let directory: string;
beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-keys-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

const posixOnly = process.platform === 'win32' ? it.skip : it;

describe('signing keys', () => {
  it('generates distinct 32-byte public keys', () => {
    const first = generateSigningKey();
    const second = generateSigningKey();
    expect(first.publicKey).toHaveLength(32);
    expect(first.privateKey.asymmetricKeyType).toBe('ed25519');
    expect(first.publicKey).not.toEqual(second.publicKey);
  });

  it('derives the RFC 8032 §7.1 TEST 1 public key from its seed', () => {
    const key = signingKeyFromSeed(
      fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'),
    );
    expect(toHex(key.publicKey)).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    expect(toHex(signingKeyFromSeed(new Uint8Array(32).fill(7)).publicKey)).toBe(
      toHex(signingKeyFromSeed(new Uint8Array(32).fill(7)).publicKey),
    );
  });

  it('rejects a seed of the wrong length as a caller bug', () => {
    expect(() => signingKeyFromSeed(new Uint8Array(31))).toThrow(/invariant violated/);
  });

  posixOnly('saves with mode 0600, leaves no temporary file, and loads the same key back', () => {
    const path = join(directory, 'node.key');
    const key = generateSigningKey();
    saveSigningKey(path, key);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(directory)).toEqual(['node.key']);
    const loaded = loadSigningKey(path);
    expect(loaded.publicKey).toEqual(key.publicKey);
    expect(
      verify(key.publicKey, 'test', new Uint8Array([1]), sign(loaded, 'test', new Uint8Array([1]))),
    ).toBe(true);
  });

  posixOnly('replaces an existing key file atomically', () => {
    const path = join(directory, 'node.key');
    saveSigningKey(path, generateSigningKey());
    const replacement = generateSigningKey();
    saveSigningKey(path, replacement);
    expect(loadSigningKey(path).publicKey).toEqual(replacement.publicKey);
    expect(readdirSync(directory)).toEqual(['node.key']);
  });

  posixOnly.each([0o644, 0o640, 0o604, 0o620, 0o602, 0o666])(
    'refuses a key file with mode %o, saying to chmod 600',
    (mode) => {
      const path = join(directory, 'node.key');
      saveSigningKey(path, generateSigningKey());
      chmodSync(path, mode);
      expect(() => loadSigningKey(path)).toThrow(
        expect.objectContaining({
          code: ErrorCode.KeyFilePermissions,
          message: expect.stringContaining(`chmod 600 ${path}`),
        }),
      );
    },
  );

  posixOnly('accepts a stricter mode than 0600', () => {
    const path = join(directory, 'node.key');
    saveSigningKey(path, generateSigningKey());
    chmodSync(path, 0o400);
    expect(loadSigningKey(path).publicKey).toHaveLength(32);
  });

  it('reports a missing file as KeyFileMissing', () => {
    expect(() => loadSigningKey(join(directory, 'absent.key'))).toThrow(
      expect.objectContaining({ code: ErrorCode.KeyFileMissing }),
    );
  });

  it.each([
    ['garbage', 'not a key at all'],
    ['an empty file', ''],
    [
      'a non-Ed25519 key',
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    ],
    [
      'a public key',
      generateSigningKey()
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString()
        .replace(/PRIVATE/g, 'PUBLIC'),
    ],
  ])('reports %s as KeyFileCorrupt', (_name, contents) => {
    const path = join(directory, 'node.key');
    writeFileSync(path, contents, { mode: 0o600 });
    expect(() => loadSigningKey(path)).toThrow(expect.objectContaining({ code: ErrorCode.KeyFileCorrupt }));
  });

  it('reports a directory as KeyFileCorrupt', () => {
    expect(() => loadSigningKey(directory)).toThrow(
      expect.objectContaining({ code: ErrorCode.KeyFileCorrupt }),
    );
  });
});
