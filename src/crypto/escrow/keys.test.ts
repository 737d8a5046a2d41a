import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { bytesEqual, encodeCanonical } from '../../codec/index.js';
import { splitSecret } from './feldman.js';
import { escrowKeys } from './keys.js';

const context = { network: 'escrow-testnet', sender: 'org-a', id: 'message-1' };

describe('escrowKeys', () => {
  const { secret } = splitSecret(2, 3);

  it('derives two distinct 32-byte keys, the same every time', () => {
    const keys = escrowKeys(secret, context);
    expect(keys.dataKey).toHaveLength(32);
    expect(keys.masterTableKey).toHaveLength(32);
    expect(bytesEqual(keys.dataKey, keys.masterTableKey)).toBe(false);
    const again = escrowKeys(Uint8Array.from(secret), { ...context });
    expect(again).toEqual(keys);
  });

  it('is HKDF-SHA256 (RFC 5869, empty salt) over the documented canonical info', () => {
    // Written out by hand with HMAC, so a change of the derivation or its info format shows here.
    const prk = createHmac('sha256', new Uint8Array(32)).update(secret).digest();
    const expand = (purpose: string) => {
      const info = encodeCanonical({ domain: 'ledgerbus/v1/escrow-key', purpose, ...context });
      return new Uint8Array(createHmac('sha256', prk).update(info).update(Uint8Array.of(1)).digest());
    };
    const keys = escrowKeys(secret, context);
    expect(keys.dataKey).toEqual(expand('data'));
    expect(keys.masterTableKey).toEqual(expand('master-table'));
  });

  it('gives other keys for another secret, network, sender or message', () => {
    const base = escrowKeys(secret, context);
    const variants = [
      escrowKeys(splitSecret(2, 3).secret, context),
      escrowKeys(secret, { ...context, network: 'other-net' }),
      escrowKeys(secret, { ...context, sender: 'org-b' }),
      escrowKeys(secret, { ...context, id: 'message-2' }),
    ];
    for (const keys of variants) {
      expect(bytesEqual(keys.dataKey, base.dataKey)).toBe(false);
      expect(bytesEqual(keys.masterTableKey, base.masterTableKey)).toBe(false);
    }
  });

  it('refuses a secret that is not a scalar, and a context too long for HKDF', () => {
    const codeOf = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return isLedgerbusError(error) ? error.code : 'other';
      }
      return undefined;
    };
    expect(codeOf(() => escrowKeys(new Uint8Array(32).fill(0xff), context))).toBe(ErrorCode.BadConfig);
    expect(codeOf(() => escrowKeys(secret.subarray(1), context))).toBe(ErrorCode.BadConfig);
    expect(codeOf(() => escrowKeys(secret, { ...context, id: 'x'.repeat(1024) }))).toBe(
      ErrorCode.SchemaMismatch,
    );
  });
});
