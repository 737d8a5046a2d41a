import { encode, rfc8949EncodeOptions } from 'cborg';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalEncodeOptions, encodeCanonical } from './cbor.js';
import { bytesEqual } from './bytes.js';

// The fast text-key sorter must order keys exactly as RFC 8949 §4.2.1 (cborg's reference sorter).
describe('canonical map key order', () => {
  it('matches cborg’s RFC 8949 sorter for any text keys, ASCII or not', () => {
    const key = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.string({ unit: 'binary', maxLength: 30 }),
      fc.constantFrom('a', 'b', 'aa', 'é', 'z'.repeat(24)),
    );
    const noSurrogates = (text: string): boolean => !/\p{Surrogate}/u.test(text);
    fc.assert(
      fc.property(fc.dictionary(key.filter(noSurrogates), fc.integer(), { maxKeys: 20 }), (map) => {
        const plain = Object.fromEntries(Object.entries(map));
        expect(bytesEqual(encode(plain, canonicalEncodeOptions), encode(plain, rfc8949EncodeOptions))).toBe(
          true,
        );
        expect(bytesEqual(encodeCanonical(plain), encode(plain, rfc8949EncodeOptions))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
