// The direct encoder must produce exactly cborg's RFC 8949 deterministic bytes for every value of the
// data model, and refuse (so the validating path reports) everything outside it.
import { encode } from 'cborg';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalEncodeOptions, encodeCanonical, nestingDepthMax } from './cbor.js';
import { encodeCanonicalFast } from './canonical-encoder.js';
import { isLedgerbusError } from '../errors.js';

const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.integer({ min: -300, max: 70_000 }),
    fc.constantFrom(23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -24, -25, -(2 ** 32), -0),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.uint8Array({ maxLength: 300 }),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 6 }),
    fc.dictionary(
      fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 4 })),
      tie('node'),
      {
        maxKeys: 6,
      },
    ),
  ),
})).node;

describe('direct canonical encoder', () => {
  it('gives byte-identical output to cborg with the canonical options (property)', () => {
    fc.assert(
      fc.property(value, (input) => {
        const expected = encode(input, canonicalEncodeOptions);
        expect(Buffer.from(encodeCanonicalFast(input, nestingDepthMax)!)).toEqual(Buffer.from(expected));
      }),
      { numRuns: 2000 },
    );
  });

  it('handles long strings, large byte strings and big maps past the initial buffer', () => {
    const input = {
      text: 'x'.repeat(70_000),
      bytes: new Uint8Array(200_000).fill(7),
      map: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i])),
    };
    expect(Buffer.from(encodeCanonicalFast(input, nestingDepthMax)!)).toEqual(
      Buffer.from(encode(input, canonicalEncodeOptions)),
    );
  });

  it('refuses what is outside the data model, and encodeCanonical still names the field', () => {
    for (const bad of [
      1.5,
      Number.NaN,
      undefined,
      2n ** 60n,
      new Map(),
      { nested: { deep: 0.1 } },
      ['\uD800'],
      { '\uDC00': 1 },
    ]) {
      expect(encodeCanonicalFast(bad, nestingDepthMax)).toBeUndefined();
    }
    try {
      encodeCanonical({ nested: { deep: 0.1 } } as never);
      expect.unreachable();
    } catch (error) {
      expect(isLedgerbusError(error) && error.code).toBe('SCHEMA_MISMATCH');
      expect((error as Error).message).toMatch(/nested\.deep/);
    }
    let deep: unknown = 1;
    for (let i = 0; i <= nestingDepthMax; i++) deep = [deep];
    expect(encodeCanonicalFast(deep, nestingDepthMax)).toBeUndefined();
  });

  it('keeps each object shape in its own key order, however many shapes share a first key or a length', () => {
    // The encoder remembers the sorted keys of shapes it has seen: shapes that differ only after the
    // first key, or only in insertion order, must each get their own canonical order.
    const shapes = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 2, maxLength: 6 });
    fc.assert(
      fc.property(shapes, shapes, fc.boolean(), (restA, restB, shuffle) => {
        const first = 'a';
        const a = Object.fromEntries([[first, 0], ...restA.filter((k) => k !== first).map((k, i) => [k, i])]);
        const keysB = restB.filter((k) => k !== first);
        const b = Object.fromEntries([
          [first, 1],
          ...(shuffle ? keysB.reverse() : keysB).map((k, i) => [k, i]),
        ]);
        for (const input of [a, b, a, b]) {
          expect(Buffer.from(encodeCanonicalFast(input, nestingDepthMax)!)).toEqual(
            Buffer.from(encode(input, canonicalEncodeOptions)),
          );
        }
      }),
      { numRuns: 3000 },
    );
    const x = { id: 1, zz: 2, b: 3 };
    const y = { id: 1, b: 3, zz: 2 };
    const z = { id: 1, zz: 2, c: 3 };
    for (const input of [x, y, z, x, z, y])
      expect(Buffer.from(encodeCanonicalFast(input, nestingDepthMax)!)).toEqual(
        Buffer.from(encode(input, canonicalEncodeOptions)),
      );
  });
});
