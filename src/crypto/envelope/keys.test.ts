import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { fromHex, toHex } from '../hash.js';
import { generateSigningKey, saveSigningKey } from '../keys.js';
import {
  encryptionKeyFromPrivateBytes,
  encryptionPrivateBytes,
  generateEncryptionKey,
  loadEncryptionKey,
  saveEncryptionKey,
} from './keys.js';

let directory: string;
beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-envelope-keys-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

const posixOnly = process.platform === 'win32' ? it.skip : it;

describe('encryption keys', () => {
  it('generates distinct X25519 key pairs with 32-byte public keys', () => {
    const first = generateEncryptionKey();
    const second = generateEncryptionKey();
    expect(first.publicKey).toHaveLength(32);
    expect(first.privateKey.asymmetricKeyType).toBe('x25519');
    expect(first.publicKey).not.toEqual(second.publicKey);
  });

  it("derives RFC 7748 §6.1 Alice's public key from her private key", () => {
    const alice = encryptionKeyFromPrivateBytes(
      fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
    );
    expect(toHex(alice.publicKey)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(toHex(encryptionPrivateBytes(alice))).toBe(
      '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
    );
  });

  posixOnly('saves with mode 0600 and loads the same key', () => {
    const key = generateEncryptionKey();
    const path = join(directory, 'org.x25519.pem');
    saveEncryptionKey(path, key);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const loaded = loadEncryptionKey(path);
    expect(loaded.publicKey).toEqual(key.publicKey);
    expect(encryptionPrivateBytes(loaded)).toEqual(encryptionPrivateBytes(key));
  });

  posixOnly('refuses a key file others can read, saying how to fix it', () => {
    const path = join(directory, 'open.pem');
    saveEncryptionKey(path, generateEncryptionKey());
    chmodSync(path, 0o644);
    expect(() => loadEncryptionKey(path)).toThrow(
      expect.objectContaining({ code: ErrorCode.KeyFilePermissions }),
    );
    expect(() => loadEncryptionKey(path)).toThrow(/chmod 600/);
  });

  it('refuses a missing file, garbage and a signing key', () => {
    expect(() => loadEncryptionKey(join(directory, 'none.pem'))).toThrow(
      expect.objectContaining({ code: ErrorCode.KeyFileMissing }),
    );
    const garbage = join(directory, 'garbage.pem');
    writeFileSync(garbage, 'not a key', { mode: 0o600 });
    expect(() => loadEncryptionKey(garbage)).toThrow(
      expect.objectContaining({ code: ErrorCode.KeyFileCorrupt }),
    );
    const signing = join(directory, 'signing.pem');
    saveSigningKey(signing, generateSigningKey());
    expect(() => loadEncryptionKey(signing)).toThrow(
      expect.objectContaining({ code: ErrorCode.KeyFileCorrupt }),
    );
  });
});
