import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { encodeCanonical } from './cbor.js';
import { decodeWith, encodeWith, t } from './schema.js';
import type { Infer } from './schema.js';

const header = t.record({
  height: t.uint(),
  previous: t.bytes({ length: 4 }),
  proposer: t.string({ minLength: 1, maxLength: 8 }),
  memo: t.optional(t.string()),
  parent: t.nullable(t.uint()),
});
const block = t.record({
  version: t.literal(1),
  kind: t.oneOf('data', 'config'),
  header,
  votes: t.array(t.record({ signer: t.uint({ max: 6 }), ok: t.bool() }), { maxItems: 3 }),
  offsets: t.dict(t.int({ min: -5 }), { maxEntries: 2 }),
});
type Block = Infer<typeof block>;

const validBlock = {
  version: 1,
  kind: 'data',
  header: { height: 7, previous: new Uint8Array(4), proposer: 'n1', parent: null },
  votes: [{ signer: 2, ok: true }],
  offsets: { a: -5 },
} as const;

function mismatch(bytes: Uint8Array): string {
  try {
    decodeWith(block, bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(LedgerbusError);
    expect((error as LedgerbusError).code).toBe(ErrorCode.SchemaMismatch);
    return (error as LedgerbusError).message;
  }
  throw new Error('expected a SchemaMismatch');
}

function withField(path: readonly string[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(validBlock) as unknown as Record<string, unknown>;
  let target = copy;
  for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
  const last = path[path.length - 1] as string;
  if (value === undefined) delete target[last];
  else target[last] = value;
  return copy;
}

describe('schema', () => {
  it('infers types, with optional fields as `key?:`', () => {
    expectTypeOf<Block['header']['memo']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<Block['header']['parent']>().toEqualTypeOf<number | null>();
    expectTypeOf<Block['kind']>().toEqualTypeOf<'data' | 'config'>();
    expectTypeOf<Block['version']>().toEqualTypeOf<1>();
    expectTypeOf<Block['votes']>().toEqualTypeOf<
      readonly { readonly signer: number; readonly ok: boolean }[]
    >();
    // An absent optional field type-checks.
    const withoutMemo: Block['header'] = {
      height: 1,
      previous: new Uint8Array(4),
      proposer: 'x',
      parent: null,
    };
    expect(withoutMemo.memo).toBeUndefined();
  });

  it('round-trips a valid value, leaving absent optional fields absent', () => {
    const decoded = decodeWith(block, encodeCanonical(validBlock));
    expect(decoded).toEqual(validBlock);
    expect(Object.hasOwn(decoded.header, 'memo')).toBe(false);
    const withMemo = withField(['header', 'memo'], 'hello');
    expect(decodeWith(block, encodeCanonical(withMemo as never)).header.memo).toBe('hello');
  });

  it('rejects a missing field, naming its path', () => {
    expect(mismatch(encodeCanonical(withField(['header', 'height'], undefined) as never))).toMatch(
      /^header\.height: missing field/,
    );
    expect(mismatch(encodeCanonical(withField(['votes'], undefined) as never))).toMatch(
      /^votes: missing field/,
    );
  });

  it('rejects an unknown field, naming its path', () => {
    expect(mismatch(encodeCanonical(withField(['header', 'extra'], 1) as never))).toMatch(
      /^header\.extra: unknown field/,
    );
    expect(mismatch(encodeCanonical(withField(['extra'], null) as never))).toMatch(/^extra: unknown field/);
  });

  it.each<[string[], unknown, RegExp]>([
    [['header', 'height'], 'x', /^header\.height: expected unsigned integer, got string/],
    [['header', 'height'], -1, /^header\.height: expected unsigned integer/],
    [['header', 'previous'], new Uint8Array(3), /^header\.previous: expected exactly 4 bytes, got 3/],
    [['header', 'previous'], 'abcd', /^header\.previous: expected byte string/],
    [['header', 'proposer'], '', /^header\.proposer: expected at least 1 characters/],
    [['header', 'proposer'], '123456789', /^header\.proposer: expected at most 8 characters/],
    [['header', 'memo'], null, /^header\.memo: expected string, got null/],
    [['header', 'parent'], true, /^header\.parent: expected unsigned integer, got boolean/],
    [['version'], 2, /^version: expected 1, got integer 2/],
    [['kind'], 'other', /^kind: expected one of "data", "config"/],
    [['votes'], [1], /^votes\[0\]: expected map with fields signer, ok, got integer 1/],
    [['votes'], [{ signer: 7, ok: true }], /^votes\[0\]\.signer: .*maximum 6/],
    [['votes'], [{ signer: 1, ok: 1 }], /^votes\[0\]\.ok: expected boolean/],
    [['votes'], [{}, {}, {}, {}], /^votes: expected at most 3 items, got 4/],
    [['offsets'], { a: -6 }, /^offsets\.a: .*minimum -5/],
    [['offsets'], { a: 1, b: 2, c: 3 }, /^offsets: expected at most 2 entries/],
    [['header'], [], /^header: expected map with fields/],
  ])('rejects a wrong type at %j with SchemaMismatch naming the path', (path, value, message) => {
    expect(mismatch(encodeCanonical(withField(path, value) as never))).toMatch(message);
  });

  it('names the root when the whole value is the wrong type', () => {
    expect(mismatch(encodeCanonical('block'))).toMatch(/^\(root\): expected map/);
  });

  it('passes through MalformedEncoding and Oversize from the decoder', () => {
    const bytes = encodeCanonical(validBlock);
    expect(() => decodeWith(block, bytes.subarray(1))).toThrow(
      expect.objectContaining({ code: ErrorCode.MalformedEncoding }),
    );
    expect(() => decodeWith(block, bytes, { maxBytes: 10 })).toThrow(
      expect.objectContaining({ code: ErrorCode.Oversize }),
    );
  });

  it('variant picks the record schema by its tag', () => {
    const message = t.variant('type', {
      ping: t.record({ type: t.literal('ping'), nonce: t.uint() }),
      text: t.record({ type: t.literal('text'), body: t.string() }),
    });
    expectTypeOf<Infer<typeof message>>().toEqualTypeOf<
      { readonly type: 'ping'; readonly nonce: number } | { readonly type: 'text'; readonly body: string }
    >();
    expect(decodeWith(message, encodeCanonical({ type: 'ping', nonce: 3 }))).toEqual({
      type: 'ping',
      nonce: 3,
    });
    expect(() => decodeWith(message, encodeCanonical({ type: 'ping', body: 'x' }))).toThrow(
      /^body: unknown field/,
    );
    expect(() => decodeWith(message, encodeCanonical({ type: 'pong' }))).toThrow(
      /^type: expected one of ping, text/,
    );
    expect(() => decodeWith(message, encodeCanonical({}))).toThrow(
      /^type: expected one of ping, text, got nothing/,
    );
  });

  it('refine adds a semantic check at the value path', () => {
    const range = t.refine(t.record({ from: t.uint(), to: t.uint() }), (r) =>
      r.from <= r.to ? undefined : 'from > to',
    );
    expect(() => decodeWith(t.record({ range }), encodeCanonical({ range: { from: 2, to: 1 } }))).toThrow(
      /^range: from > to/,
    );
  });

  it('encodeWith validates and drops optional fields set to undefined', () => {
    const value = { ...validBlock, header: { ...validBlock.header, memo: undefined } };
    expect(encodeWith(block, value)).toEqual(encodeCanonical(validBlock));
    expect(() => encodeWith(block, { ...validBlock, kind: 'nope' } as never)).toThrow(
      /^kind: expected one of/,
    );
  });

  it('every failure on arbitrary bytes is a LedgerbusError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        try {
          decodeWith(block, bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(LedgerbusError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
