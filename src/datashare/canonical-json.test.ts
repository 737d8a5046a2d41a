import { describe, expect, it } from 'vitest';
import { AssertionError } from '../errors.js';
import { canonicalJson, canonicalJsonBytes } from './canonical-json.js';

describe('canonicalJson', () => {
  it('sorts object keys at every depth and keeps array order', () => {
    const value = { b: 1, a: [3, { z: null, y: 'x', Z: true }, 1], c: { e: -2.5, d: 'é' } };
    expect(canonicalJson(value)).toBe('{"a":[3,{"Z":true,"y":"x","z":null},1],"b":1,"c":{"d":"é","e":-2.5}}');
    expect(canonicalJson({ c: value.c, a: value.a, b: value.b })).toBe(canonicalJson(value));
  });

  it('writes strings and numbers as JSON does, -0 as 0', () => {
    expect(canonicalJson(['"\\\n\u0001', 1e21, 5e-324, -0, 0.1])).toBe(
      '["\\"\\\\\\n\\u0001",1e+21,5e-324,0,0.1]',
    );
    expect(canonicalJson(Object.create(null) as object)).toBe('{}');
  });

  it('encodes UTF-8', () => {
    expect(Array.from(canonicalJsonBytes({ k: 'é字' }))).toStrictEqual(
      Array.from(new TextEncoder().encode('{"k":"é字"}')),
    );
  });

  it.each([
    ['NaN', { a: Number.NaN }, /no NaN \(at \$\.a\)/],
    ['Infinity', [1, Infinity], /no Infinity \(at \$\[1\]\)/],
    ['undefined in an object', { a: { b: undefined } }, /cannot hold a undefined \(at \$\.a\.b\)/],
    ['undefined in an array', [undefined], /cannot hold a undefined/],
    // eslint-disable-next-line no-sparse-arrays -- a hole is what is tested
    ['a hole', [1, , 2], /cannot hold a undefined \(at \$\[1\]\)/],
    ['a function', { f: () => 1 }, /cannot hold a function/],
    ['a bigint', 1n, /cannot hold a bigint/],
    ['a symbol', Symbol('s'), /cannot hold a symbol/],
    ['a Date', { when: new Date(0) }, /plain objects only \(at \$\.when\)/],
    ['bytes', new Uint8Array(2), /plain objects only/],
  ])('rejects %s', (_name, value, message) => {
    expect(() => canonicalJson(value)).toThrow(AssertionError);
    expect(() => canonicalJson(value)).toThrow(message);
  });

  it('rejects a cycle but not a value shared twice', () => {
    const shared = { x: 1 };
    expect(canonicalJson([shared, shared])).toBe('[{"x":1},{"x":1}]');
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => canonicalJson(cycle)).toThrow(/cycle \(at \$\.self\)/);
  });
});
