import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { ErrorCode as ErrorCodeType } from '../errors.js';
import { decodeCanonical, encodeCanonical, nestingDepthMax } from './cbor.js';
import type { CborValue } from './cbor.js';
import { fromHex, toHex } from './bytes.js';

const { value: cborValue } = fc.letrec<{
  value: CborValue;
  array: CborValue[];
  map: Record<string, CborValue>;
}>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.uint8Array({ maxLength: 40 }),
    tie('array'),
    tie('map'),
  ),
  array: fc.array(tie('value'), { maxLength: 5 }),
  map: fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), tie('value'), { maxKeys: 5 }),
}));

/** A CBOR head written out by hand with an explicit argument width (0 = in the initial byte). */
function head(major: number, argument: number, width: 0 | 1 | 2 | 4 | 8): Uint8Array {
  if (width === 0) return Uint8Array.of((major << 5) | argument);
  const bytes = new Uint8Array(1 + width);
  bytes[0] = (major << 5) | { 1: 24, 2: 25, 4: 26, 8: 27 }[width];
  let rest = BigInt(argument);
  for (let index = width; index >= 1; index--) {
    bytes[index] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let index = 0; index < Math.min(a.length, b.length); index++) {
    if (a[index] !== b[index]) return (a[index] as number) - (b[index] as number);
  }
  return a.length - b.length;
}

function expectCode(action: () => unknown, code: ErrorCodeType): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(LedgerbusError);
  expect((thrown as LedgerbusError).code).toBe(code);
}

describe('encodeCanonical / decodeCanonical', () => {
  it('round-trips every CborValue, and re-encoding is stable', () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        const encoded = encodeCanonical(value);
        const decoded = decodeCanonical(encoded);
        expect(decoded).toEqual(value);
        expect(encodeCanonical(decoded)).toEqual(encoded);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes independently of map insertion order, sorting keys as RFC 8949 §4.2.1 requires', () => {
    expect(toHex(encodeCanonical({ b: 1, a: 2, aa: 3 }))).toBe(toHex(encodeCanonical({ aa: 3, a: 2, b: 1 })));
    // Shorter encoded keys first, then bytewise: "a", "b", "aa".
    expect(toHex(encodeCanonical({ aa: 3, b: 1, a: 2 }))).toBe('a3616102616201626161' + '03');
  });

  it('uses shortest heads (RFC 8949 §4.2.1 known values)', () => {
    const vectors: [CborValue, string][] = [
      [0, '00'],
      [23, '17'],
      [24, '1818'],
      [255, '18ff'],
      [256, '190100'],
      [65536, '1a00010000'],
      [4294967296, '1b0000000100000000'],
      [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
      [-1, '20'],
      [Number.MIN_SAFE_INTEGER, '3b001ffffffffffffe'],
      [null, 'f6'],
      [true, 'f5'],
      ['', '60'],
      [new Uint8Array([1, 2]), '420102'],
      [[1, [2]], '820181' + '02'],
    ];
    for (const [value, hex] of vectors) {
      expect(toHex(encodeCanonical(value))).toBe(hex);
      expect(decodeCanonical(fromHex(hex))).toEqual(value);
    }
  });

  it('encodes -0 as the integer 0', () => {
    expect(toHex(encodeCanonical(-0))).toBe('00');
  });

  it.each([
    ['float', 1.5, '(root)'],
    ['NaN', Number.NaN, '(root)'],
    ['Infinity', Number.POSITIVE_INFINITY, '(root)'],
    ['unsafe integer', 2 ** 53, '(root)'],
    ['undefined', undefined, '(root)'],
    ['bigint', 1n, '(root)'],
    ['nested float', { a: [1, 0.5] }, 'a[1]'],
    ['undefined field', { a: undefined }, 'a'],
    ['Map', new Map(), '(root)'],
    ['Date', new Date(0), '(root)'],
    ['lone surrogate', 'x\uD800', '(root)'],
    ['lone surrogate key', { '\uDC00': 1 }, '\uDC00'],
  ])('rejects a %s with SchemaMismatch naming the path', (_name, value, path) => {
    expectCode(() => encodeCanonical(value as CborValue), ErrorCode.SchemaMismatch);
    expect(() => encodeCanonical(value as CborValue)).toThrow(path);
  });

  it('rejects cycles and excessive nesting when encoding', () => {
    const cyclic: CborValue[] = [];
    cyclic.push(cyclic);
    expectCode(() => encodeCanonical(cyclic), ErrorCode.SchemaMismatch);
    let deep: CborValue = 1;
    for (let depth = 0; depth <= nestingDepthMax; depth++) deep = [deep];
    expectCode(() => encodeCanonical(deep), ErrorCode.SchemaMismatch);
  });

  it('decodes byte strings as fresh Uint8Arrays that do not alias the input', () => {
    const input = fromHex('420102');
    const decoded = decodeCanonical(input) as Uint8Array;
    expect(decoded.constructor).toBe(Uint8Array);
    input[1] = 9;
    expect(decoded).toEqual(new Uint8Array([1, 2]));
  });

  it('rejects input over maxBytes with Oversize, before decoding it', () => {
    const encoded = encodeCanonical(new Uint8Array(100));
    expectCode(() => decodeCanonical(encoded, { maxBytes: 101 }), ErrorCode.Oversize);
    expect(decodeCanonical(encoded, { maxBytes: 102 })).toEqual(new Uint8Array(100));
    expectCode(() => decodeCanonical(new Uint8Array(16 * 1024 * 1024 + 1)), ErrorCode.Oversize);
  });

  it('rejects absurd nesting with MalformedEncoding instead of overflowing the stack', () => {
    for (const depth of [nestingDepthMax + 1, 100_000]) {
      const bytes = new Uint8Array(depth + 1).fill(0x81);
      bytes[depth] = 0x01;
      expectCode(() => decodeCanonical(bytes), ErrorCode.MalformedEncoding);
    }
  });
});

describe('decodeCanonical rejects non-canonical input', () => {
  const malformed = ErrorCode.MalformedEncoding;
  const uint = fc.maxSafeInteger().filter((n) => n >= 0);

  /** Each case is rejected alone and embedded inside an otherwise canonical value. */
  function expectRejected(fragment: Uint8Array, neighbour: CborValue): void {
    expectCode(() => decodeCanonical(fragment), malformed);
    expectCode(() => decodeCanonical(concat(head(4, 2, 0), encodeCanonical(neighbour), fragment)), malformed);
    expectCode(() => decodeCanonical(concat(head(5, 1, 0), encodeCanonical('k'), fragment)), malformed);
  }

  function longerHeads(major: number, argument: number): Uint8Array[] {
    const shortest =
      argument < 24 ? 0 : argument < 2 ** 8 ? 1 : argument < 2 ** 16 ? 2 : argument < 2 ** 32 ? 4 : 8;
    return ([1, 2, 4, 8] as const)
      .filter((width) => width > shortest)
      .map((width) => head(major, argument, width));
  }

  it('non-shortest integer heads', () => {
    fc.assert(
      fc.property(uint, cborValue, (n, neighbour) => {
        for (const major of [0, 1]) {
          for (const encoded of longerHeads(major, n)) expectRejected(encoded, neighbour);
        }
      }),
    );
  });

  it('non-shortest length heads of strings, byte strings, arrays and maps', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 30 }),
        fc.uint8Array({ maxLength: 30 }),
        cborValue,
        (text, bytes, item) => {
          const utf8 = new TextEncoder().encode(text);
          for (const lengthHead of longerHeads(3, utf8.length))
            expectRejected(concat(lengthHead, utf8), item);
          for (const lengthHead of longerHeads(2, bytes.length))
            expectRejected(concat(lengthHead, bytes), item);
          for (const lengthHead of longerHeads(4, 1))
            expectRejected(concat(lengthHead, encodeCanonical(item)), item);
          const entry = concat(encodeCanonical('k'), encodeCanonical(item));
          for (const lengthHead of longerHeads(5, 1)) expectRejected(concat(lengthHead, entry), item);
        },
      ),
    );
  });

  it('unsorted map keys', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ maxLength: 8 }), { minLength: 2, maxLength: 6 }),
        cborValue,
        (keys, item) => {
          // RFC 8949 §4.2.1 order, computed independently: by encoded key bytes (length first for text).
          const canonicalOrder = [...keys].sort((a, b) =>
            compareBytes(encodeCanonical(a), encodeCanonical(b)),
          );
          const swapped = [...canonicalOrder];
          [swapped[0], swapped[1]] = [swapped[1] as string, swapped[0] as string];
          const entries = swapped.map((key) => concat(encodeCanonical(key), encodeCanonical(item)));
          expectRejected(concat(head(5, keys.length, 0), ...entries), item);
        },
      ),
    );
  });

  it('duplicate map keys', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 8 }), cborValue, cborValue, (key, first, second) => {
        const entry = (value: CborValue) => concat(encodeCanonical(key), encodeCanonical(value));
        expectRejected(concat(head(5, 2, 0), entry(first), entry(second)), first);
      }),
    );
  });

  it('indefinite lengths', () => {
    fc.assert(
      fc.property(cborValue, (item) => {
        const encodedItem = encodeCanonical(item);
        expectRejected(concat(Uint8Array.of(0x9f), encodedItem, Uint8Array.of(0xff)), item);
        expectRejected(
          concat(Uint8Array.of(0xbf), encodeCanonical('k'), encodedItem, Uint8Array.of(0xff)),
          item,
        );
        expectRejected(fromHex('5f4101ff'), item);
        expectRejected(fromHex('7f6161ff'), item);
        expectRejected(fromHex('ff'), item);
      }),
    );
  });

  it('floats, including integral ones, NaN and infinities, in every width', () => {
    const floats = fc.oneof(
      fc.double(),
      fc.integer().map((n) => n * 1.0),
      fc.constantFrom(NaN, Infinity, -Infinity, -0),
    );
    fc.assert(
      fc.property(floats, cborValue, (float, neighbour) => {
        const bytes = new Uint8Array(9);
        const view = new DataView(bytes.buffer);
        bytes[0] = 0xfb;
        view.setFloat64(1, float);
        expectRejected(bytes, neighbour);
        bytes[0] = 0xfa;
        view.setFloat32(1, float);
        expectRejected(bytes.subarray(0, 5), neighbour);
      }),
    );
    for (const half of ['f93c00', 'f90000', 'f97e00', 'f97c00', 'f9fc00'])
      expectRejected(fromHex(half), null);
  });

  it('undefined and other simple values', () => {
    for (const simple of ['f7', 'f0', 'f810', 'f8ff', 'f818']) expectRejected(fromHex(simple), 1);
  });

  it('tags', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), cborValue, (tag, content) => {
        const tagHead =
          tag < 24
            ? head(6, tag, 0)
            : tag < 256
              ? head(6, tag, 1)
              : tag < 65536
                ? head(6, tag, 2)
                : head(6, tag, 4);
        expectRejected(concat(tagHead, encodeCanonical(content)), content);
      }),
    );
  });

  it('non-string map keys', () => {
    for (const key of [1, new Uint8Array([1]), null, true, [1]] as CborValue[]) {
      expectRejected(concat(head(5, 1, 0), encodeCanonical(key), encodeCanonical(1)), key);
    }
  });

  it('integers outside the safe range', () => {
    expectRejected(fromHex('1b0020000000000000'), 1);
    expectRejected(fromHex('1bffffffffffffffff'), 1);
    expectRejected(fromHex('3b001fffffffffffff'), 1);
    expectRejected(fromHex('3bffffffffffffffff'), 1);
  });

  it('invalid UTF-8 in text strings', () => {
    for (const text of ['61ff', '62c328', '63eda080', '61c3']) expectRejected(fromHex(text), 1);
  });

  it('trailing bytes and truncation', () => {
    fc.assert(
      fc.property(cborValue, fc.uint8Array({ minLength: 1, maxLength: 8 }), (value, trailing) => {
        const encoded = encodeCanonical(value);
        expectCode(() => decodeCanonical(concat(encoded, trailing)), ErrorCode.MalformedEncoding);
        expectCode(
          () => decodeCanonical(encoded.subarray(0, encoded.length - 1)),
          ErrorCode.MalformedEncoding,
        );
      }),
    );
  });

  it('random bytes either decode to a value that re-encodes to exactly them, or throw LedgerbusError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        let decoded: CborValue;
        try {
          decoded = decodeCanonical(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(LedgerbusError);
          expect([ErrorCode.MalformedEncoding, ErrorCode.Oversize]).toContain((error as LedgerbusError).code);
          return;
        }
        expect(encodeCanonical(decoded)).toEqual(bytes);
      }),
      { numRuns: 5000 },
    );
  });

  it('single-byte corruptions of valid encodings either stay canonical or throw LedgerbusError', () => {
    fc.assert(
      fc.property(cborValue, fc.nat(), fc.integer({ min: 1, max: 255 }), (value, at, xor) => {
        const bytes = encodeCanonical(value).slice();
        const index = at % bytes.length;
        bytes[index] = (bytes[index] as number) ^ xor;
        try {
          expect(encodeCanonical(decodeCanonical(bytes))).toEqual(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(LedgerbusError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
