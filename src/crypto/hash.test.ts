import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { bytesEqual, domainHash, fromHex, sha256, toHex } from './hash.js';

describe('hashing', () => {
  it('sha256 hashes the concatenation of its parts (FIPS 180-2 "abc")', () => {
    const abc = new TextEncoder().encode('abc');
    const expected = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    expect(toHex(sha256(abc))).toBe(expected);
    expect(toHex(sha256(abc.subarray(0, 1), abc.subarray(1)))).toBe(expected);
    expect(sha256(abc).constructor).toBe(Uint8Array);
  });

  // Sizes on both sides of where a payload stops being copied for a one-shot hash.
  it.each([3, 4096, 4097, 70_000])(
    'domainHash is SHA-256 of a length-prefixed domain then the payload (%i bytes)',
    (size) => {
      const payload = Uint8Array.from({ length: size }, (_, index) => index % 251);
      const domain = Buffer.from('ledgerbus/v1/block');
      const expected = createHash('sha256')
        .update(Uint8Array.of(0, domain.length))
        .update(domain)
        .update(payload)
        .digest();
      expect(toHex(domainHash('block', payload))).toBe(expected.toString('hex'));
    },
  );

  it('separates domains, even when type and payload shift bytes between them', () => {
    expect(domainHash('block', new Uint8Array())).not.toEqual(domainHash('batch', new Uint8Array()));
    expect(domainHash('ab', new TextEncoder().encode('c'))).not.toEqual(
      domainHash('a', new TextEncoder().encode('bc')),
    );
  });

  it.each(['', 'Block', '1block', 'block/x', 'a b', 'ü'])('rejects the malformed type %j', (type) => {
    expect(() => domainHash(type, new Uint8Array())).toThrow(/invariant violated/);
  });

  it('hex round-trips and rejects malformed hex', () => {
    fc.assert(
      fc.property(fc.uint8Array(), (bytes) => {
        expect(fromHex(toHex(bytes))).toEqual(bytes);
        expect(fromHex(toHex(bytes).toUpperCase())).toEqual(bytes);
      }),
    );
    for (const bad of ['0', 'zz', '0x00', '00 ', 'g0']) {
      expect(() => fromHex(bad)).toThrow(expect.objectContaining({ code: ErrorCode.MalformedEncoding }));
    }
  });

  it('bytesEqual compares contents, including of views', () => {
    const buffer = Uint8Array.of(9, 1, 2, 9);
    expect(bytesEqual(buffer.subarray(1, 3), Uint8Array.of(1, 2))).toBe(true);
    expect(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(bytesEqual(Uint8Array.of(1), Uint8Array.of(1, 0))).toBe(false);
    expect(bytesEqual(new Uint8Array(), new Uint8Array())).toBe(true);
  });
});
