import { ErrorCode, LedgerbusError } from '../errors.js';
import { decodeCanonical, encodeCanonical } from './cbor.js';
import type { CborValue } from './cbor.js';

/**
 * A validator that turns an untrusted decoded value into a typed one. `parse` returns a value of
 * type T or throws LedgerbusError(SchemaMismatch) whose message starts with `path` (the location
 * of the offending field, e.g. "header.height" or "transactions[3].nonce"; "" is the root).
 */
export interface Schema<T> {
  readonly description: string;
  parse(value: unknown, path: string): T;
}

/** A schema whose field may be absent from a record; see `t.optional`. */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Fields = Record<string, Schema<unknown>>;
type OptionalKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends OptionalSchema<unknown> ? K : never;
}[keyof F];
type RequiredKeys<F extends Fields> = Exclude<keyof F, OptionalKeys<F>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The type a `t.record(fields)` schema produces: optional fields become `key?:`. */
export type InferRecord<F extends Fields> = Simplify<
  { readonly [K in RequiredKeys<F>]: Infer<F[K]> } & {
    readonly [K in OptionalKeys<F>]?: F[K] extends OptionalSchema<infer U> ? U : never;
  }
>;

type Literal = string | number;

/**
 * The error every schema throws. Exported so that hand-written schemas report failures in the
 * same "<path>: <reason>" form.
 */
export function schemaMismatch(path: string, reason: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.SchemaMismatch, `${displayPath(path)}: ${reason}`);
}

/** Path of a record field below `path`, in the form schema error messages use. */
export function fieldPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function displayPath(path: string): string {
  return path === '' ? '(root)' : path;
}

function expected(description: string, value: unknown, path: string): LedgerbusError {
  return schemaMismatch(path, `expected ${description}, got ${kindOf(value)}`);
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Uint8Array) return 'byte string';
  if (typeof value === 'number') return Number.isInteger(value) ? `integer ${value}` : `number ${value}`;
  if (typeof value === 'object') return 'map';
  return typeof value;
}

function isPlainMap(value: unknown): value is Readonly<Record<string, unknown>> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

function integer(description: string, min: number, max: number): Schema<number> {
  return {
    description,
    parse(value, path) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw expected(description, value, path);
      if (value < min) throw schemaMismatch(path, `expected ${description}, got ${value} (minimum ${min})`);
      if (value > max) throw schemaMismatch(path, `expected ${description}, got ${value} (maximum ${max})`);
      return value;
    },
  };
}

function lengthCheck(path: string, what: string, length: number, min: number, max: number): void {
  if (length < min || length > max) {
    const bound = min === max ? `exactly ${min}` : length < min ? `at least ${min}` : `at most ${max}`;
    throw schemaMismatch(path, `expected ${bound} ${what}, got ${length}`);
  }
}

/**
 * Schema combinators. Records are exact (missing and unknown fields are both rejected) and every
 * collection has a size bound, so a schema also bounds what a peer can make us allocate.
 */
export const t = {
  /** Safe integer ≥ `min` (default 0) and ≤ `max` (default Number.MAX_SAFE_INTEGER). */
  uint(opts: { min?: number; max?: number } = {}): Schema<number> {
    return integer('unsigned integer', Math.max(0, opts.min ?? 0), opts.max ?? Number.MAX_SAFE_INTEGER);
  },

  /** Safe integer within [`min`, `max`] (defaults: the safe integer range). */
  int(opts: { min?: number; max?: number } = {}): Schema<number> {
    return integer('integer', opts.min ?? Number.MIN_SAFE_INTEGER, opts.max ?? Number.MAX_SAFE_INTEGER);
  },

  bool(): Schema<boolean> {
    return {
      description: 'boolean',
      parse(value, path) {
        if (typeof value !== 'boolean') throw expected('boolean', value, path);
        return value;
      },
    };
  },

  /** Text string; lengths count UTF-16 code units (`string.length`). `pattern` must match if given. */
  string(opts: { minLength?: number; maxLength?: number; pattern?: RegExp } = {}): Schema<string> {
    const min = opts.minLength ?? 0;
    const max = opts.maxLength ?? Number.MAX_SAFE_INTEGER;
    return {
      description: 'string',
      parse(value, path) {
        if (typeof value !== 'string') throw expected('string', value, path);
        lengthCheck(path, 'characters', value.length, min, max);
        if (opts.pattern !== undefined && !opts.pattern.test(value)) {
          throw schemaMismatch(path, `expected string matching ${String(opts.pattern)}`);
        }
        return value;
      },
    };
  },

  /** Byte string, of exactly `length` bytes if given, otherwise within [`minLength`, `maxLength`]. */
  bytes(opts: { length?: number; minLength?: number; maxLength?: number } = {}): Schema<Uint8Array> {
    const min = opts.length ?? opts.minLength ?? 0;
    const max = opts.length ?? opts.maxLength ?? Number.MAX_SAFE_INTEGER;
    return {
      description: 'byte string',
      parse(value, path) {
        if (!(value instanceof Uint8Array)) throw expected('byte string', value, path);
        lengthCheck(path, 'bytes', value.length, min, max);
        return value;
      },
    };
  },

  /** Exactly the value `literal` (compared with ===). */
  literal<const V extends Literal>(literal: V): Schema<V> {
    const description = JSON.stringify(literal);
    return {
      description,
      parse(value, path) {
        if (value !== literal) throw expected(description, value, path);
        return literal;
      },
    };
  },

  /** One of the given literal values, e.g. `t.oneOf('node', 'connector')`. */
  oneOf<const V extends readonly Literal[]>(...literals: V): Schema<V[number]> {
    const description = `one of ${literals.map((literal) => JSON.stringify(literal)).join(', ')}`;
    return {
      description,
      parse(value, path) {
        const index = literals.indexOf(value as Literal);
        if (index === -1) throw expected(description, value, path);
        return literals[index] as V[number];
      },
    };
  },

  /** Array of at most `maxItems` (and at least `minItems`, default 0) items, each checked by `item`. */
  array<T>(item: Schema<T>, opts: { maxItems: number; minItems?: number }): Schema<readonly T[]> {
    const description = `array of ${item.description}`;
    return {
      description,
      parse(value, path) {
        if (!Array.isArray(value)) throw expected(description, value, path);
        lengthCheck(path, 'items', value.length, opts.minItems ?? 0, opts.maxItems);
        return value.map((element: unknown, index) => item.parse(element, `${path}[${index}]`));
      },
    };
  },

  /**
   * Map with exactly these fields: a missing required field and any field not listed are both
   * rejected. Fields wrapped in `t.optional` may be absent, and are then absent from the result.
   */
  record<F extends Fields>(fields: F): Schema<InferRecord<F>> {
    const keys = Object.keys(fields);
    const description = `map with fields ${keys.join(', ')}`;
    return {
      description,
      parse(value, path) {
        if (!isPlainMap(value)) throw expected(description, value, path);
        for (const key of Object.keys(value)) {
          if (!Object.hasOwn(fields, key)) throw schemaMismatch(fieldPath(path, key), 'unknown field');
        }
        const result: Record<string, unknown> = {};
        for (const key of keys) {
          const field = fields[key] as Schema<unknown> | OptionalSchema<unknown>;
          const present = Object.hasOwn(value, key) && value[key] !== undefined;
          if (!present) {
            if ('optional' in field && field.optional) continue;
            throw schemaMismatch(fieldPath(path, key), `missing field (expected ${field.description})`);
          }
          result[key] = field.parse(value[key], fieldPath(path, key));
        }
        return result as InferRecord<F>;
      },
    };
  },

  /**
   * String-keyed map of at most `maxEntries` entries whose values all match `value`; `key`
   * (default: any string) constrains the keys.
   */
  dict<T>(
    value: Schema<T>,
    opts: { maxEntries: number; key?: Schema<string> },
  ): Schema<Readonly<Record<string, T>>> {
    const description = `map of ${value.description}`;
    return {
      description,
      parse(input, path) {
        if (!isPlainMap(input)) throw expected(description, input, path);
        const entries = Object.entries(input);
        lengthCheck(path, 'entries', entries.length, 0, opts.maxEntries);
        const result: Record<string, T> = {};
        for (const [key, item] of entries) {
          opts.key?.parse(key, fieldPath(path, key));
          // defineProperty, not assignment: a "__proto__" key must stay an ordinary own property.
          Object.defineProperty(result, key, {
            value: value.parse(item, fieldPath(path, key)),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return result;
      },
    };
  },

  /** Marks a record field that may be absent. Outside a record it accepts `undefined`. */
  optional<T>(schema: Schema<T>): OptionalSchema<T> {
    return {
      description: `optional ${schema.description}`,
      optional: true,
      parse(value, path) {
        return value === undefined ? undefined : schema.parse(value, path);
      },
    };
  },

  /** `null` or a value matching `schema`. */
  nullable<T>(schema: Schema<T>): Schema<T | null> {
    return {
      description: `${schema.description} or null`,
      parse(value, path) {
        return value === null ? null : schema.parse(value, path);
      },
    };
  },

  /**
   * Union of record schemas told apart by the string field `tag`, e.g.
   * `t.variant('type', { prepare: prepareSchema, commit: commitSchema })`. Each variant schema
   * should itself declare `tag` (typically as `t.literal`), since records are exact.
   */
  variant<const K extends string, V extends Record<string, Schema<unknown>>>(
    tag: K,
    variants: V,
  ): Schema<Infer<V[keyof V]>> {
    const names = Object.keys(variants);
    const description = `map whose ${tag} is one of ${names.join(', ')}`;
    return {
      description,
      parse(value, path) {
        if (!isPlainMap(value)) throw expected(description, value, path);
        const name = Object.hasOwn(value, tag) ? value[tag] : undefined;
        if (typeof name !== 'string' || !Object.hasOwn(variants, name)) {
          throw expected(`one of ${names.join(', ')}`, name, fieldPath(path, tag));
        }
        return (variants[name] as Schema<unknown>).parse(value, path) as Infer<V[keyof V]>;
      },
    };
  },

  /**
   * `schema` plus a cross-field or semantic check: `check` returns a reason string to reject the
   * value, or undefined to accept it.
   */
  refine<T>(schema: Schema<T>, check: (value: T) => string | undefined): Schema<T> {
    return {
      description: schema.description,
      parse(value, path) {
        const parsed = schema.parse(value, path);
        const reason = check(parsed);
        if (reason !== undefined) throw schemaMismatch(path, reason);
        return parsed;
      },
    };
  },
};

/**
 * decodeCanonical followed by `schema.parse`. Every failure is a LedgerbusError: Oversize when
 * `bytes` exceeds `maxBytes` (default 16 MiB), MalformedEncoding when the bytes are not canonical
 * CBOR, SchemaMismatch (naming the field path) when the value does not fit the schema.
 */
export function decodeWith<T>(schema: Schema<T>, bytes: Uint8Array, options?: { maxBytes?: number }): T {
  return schema.parse(decodeCanonical(bytes, options), '');
}

/**
 * Checks `value` against `schema` and encodes what the schema returns, so optional fields set to
 * `undefined` are simply left out. Throws LedgerbusError(SchemaMismatch) naming the field if `value`
 * does not fit, which keeps us from signing anything a peer would then refuse to decode. The schema
 * must produce CborValues (all `t` combinators do).
 */
export function encodeWith<T>(schema: Schema<T>, value: T): Uint8Array {
  return encodeCanonical(schema.parse(value, '') as CborValue);
}
