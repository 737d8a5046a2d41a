import { Token, decode, encode, rfc8949EncodeOptions } from 'cborg';
import type { DecodeOptions, EncodeOptions } from 'cborg';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { bytesEqual } from './bytes.js';
import { decodeCanonicalFast } from './canonical-decoder.js';
import { encodeCanonicalFast } from './canonical-encoder.js';
import { compareTextKeys } from './key-order.js';

/**
 * The data model every signed or hashed ledgerbus object is built from. It is deliberately smaller
 * than CBOR: no floats, tags, undefined or non-string map keys, so that one value has exactly one
 * encoding and every implementation agrees on the bytes that get hashed and signed.
 *
 * TypeScript gives object literal types an implicit index signature but not interfaces, so a value
 * typed by an interface (or with optional fields) is not a CborValue: encode it with `encodeWith`
 * and its schema, which also validates it.
 */
export type CborValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly CborValue[]
  | { readonly [key: string]: CborValue };

/** Largest input decodeCanonical accepts unless the caller passes its own `maxBytes`. */
export const defaultDecodeBytesMax = 16 * 1024 * 1024;

/**
 * Deepest nesting of arrays/maps accepted in either direction. It keeps recursion (ours and cborg's)
 * far from the stack limit, so a hostile peer cannot turn a small input into a crash.
 */
export const nestingDepthMax = 64;

const strictDecodeOptions: DecodeOptions = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
};

type MapSorter = NonNullable<EncodeOptions['mapSorter']>;
const textKeyMapSorter: MapSorter = (e1, e2) => {
  const k1 = e1[0];
  const k2 = e2[0];
  if (
    k1 instanceof Token &&
    k2 instanceof Token &&
    typeof k1.value === 'string' &&
    typeof k2.value === 'string'
  ) {
    return compareTextKeys(k1.value, k2.value);
  }
  return rfc8949EncodeOptions.mapSorter!(e1, e2);
};

/** RFC 8949 deterministic encoding options, with the fast text-key sorter. */
export const canonicalEncodeOptions: EncodeOptions = { ...rfc8949EncodeOptions, mapSorter: textKeyMapSorter };

// Matches only unpaired surrogates (in `u` mode a valid pair is one code point), which UTF-8 cannot
// carry: encoding them would silently substitute U+FFFD and break the round trip.
const loneSurrogate = /\p{Surrogate}/u;

/**
 * Encodes `value` with RFC 8949 §4.2.1 core deterministic encoding (shortest heads, definite lengths,
 * map keys sorted bytewise by their encoding). Equal values always give identical bytes.
 *
 * Numbers must be safe integers (-0 is encoded as 0); strings must be well-formed Unicode; objects
 * must be plain objects or arrays at most `nestingDepthMax` deep. Anything else (floats, NaN,
 * undefined, bigint, Map, class instances, cycles) throws LedgerbusError(SchemaMismatch) naming the
 * offending path, because it would either be lossy or have no single canonical encoding.
 */
export function encodeCanonical(value: CborValue): Uint8Array {
  const fast = encodeCanonicalFast(value, nestingDepthMax);
  if (fast !== undefined) return fast;
  // Not in the data model: the validating path names the offending field and throws.
  checkEncodable(value, '', 0, new Set());
  return encode(value, canonicalEncodeOptions);
}

/**
 * Decodes bytes that must be exactly `encodeCanonical(result)`.
 *
 * Throws LedgerbusError with code Oversize when `bytes` is longer than `maxBytes` (default 16 MiB),
 * and MalformedEncoding for anything not canonical under the CborValue data model: trailing bytes,
 * indefinite lengths, non-shortest heads, unsorted or duplicate map keys, undefined/simple values,
 * floats (including NaN and Infinity), tags, non-string map keys, integers outside the safe range,
 * invalid UTF-8, nesting deeper than `nestingDepthMax`. Byte strings decode as fresh Uint8Arrays
 * that do not alias `bytes`.
 */
export function decodeCanonical(bytes: Uint8Array, options: { maxBytes?: number } = {}): CborValue {
  const maxBytes = options.maxBytes ?? defaultDecodeBytesMax;
  if (bytes.length > maxBytes) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `CBOR input is ${bytes.length} bytes; the limit is ${maxBytes}`,
    );
  }
  return decodeCanonicalFast(bytes, nestingDepthMax);
}

/**
 * Decodes bytes that THIS process already accepted through decodeCanonical (for example requests a
 * consensus core validated before ordering them). It runs the same strict one-pass decoder, whose
 * checks cost next to nothing, but without the size cap: never use it on bytes straight from the
 * network.
 */
export function decodeValidated(bytes: Uint8Array): CborValue {
  return decodeCanonicalFast(bytes, nestingDepthMax);
}

/**
 * The decoder decodeCanonical used before the one-pass decoder: cborg's strict decode, a walk of the
 * value, then a re-encode compared byte for byte. Kept, unchanged, as the oracle the differential
 * tests hold decodeCanonical to.
 * @internal tests only; slow.
 */
export function decodeCanonicalReference(bytes: Uint8Array, options: { maxBytes?: number } = {}): CborValue {
  const maxBytes = options.maxBytes ?? defaultDecodeBytesMax;
  if (bytes.length > maxBytes) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `CBOR input is ${bytes.length} bytes; the limit is ${maxBytes}`,
    );
  }
  let decoded: unknown;
  try {
    decoded = decode(bytes, strictDecodeOptions);
  } catch (error) {
    // cborg reports every defect (and stack exhaustion on absurd nesting) as a plain Error.
    throw new LedgerbusError(ErrorCode.MalformedEncoding, `malformed CBOR: ${describe(error)}`, {
      cause: error,
    });
  }
  let value: CborValue;
  try {
    checkEncodable(decoded, '', 0, new Set());
    value = decoded as CborValue;
  } catch (error) {
    throw new LedgerbusError(ErrorCode.MalformedEncoding, `non-canonical CBOR: ${describe(error)}`, {
      cause: error,
    });
  }
  // Re-encoding is the one check that covers every canonical-form rule at once, including ones
  // cborg does not police on decode (map key order, UTF-8 that only decodes with replacements).
  if (
    !bytesEqual(encodeCanonicalFast(value, nestingDepthMax) ?? encode(value, canonicalEncodeOptions), bytes)
  ) {
    throw new LedgerbusError(
      ErrorCode.MalformedEncoding,
      'CBOR input is not in canonical (deterministic) form',
    );
  }
  return value;
}

function checkEncodable(value: unknown, path: string, depth: number, ancestors: Set<object>): void {
  switch (typeof value) {
    case 'boolean':
      return;
    case 'number':
      if (!Number.isSafeInteger(value)) reject(path, `${String(value)} is not a safe integer`);
      return;
    case 'string':
      if (loneSurrogate.test(value)) reject(path, 'string contains an unpaired surrogate');
      return;
    case 'object':
      break;
    default:
      reject(path, `${typeof value} is not encodable`);
  }
  if (value === null || value instanceof Uint8Array) return;
  if (depth >= nestingDepthMax) reject(path, `nesting deeper than ${nestingDepthMax}`);
  if (ancestors.has(value)) reject(path, 'circular reference');
  ancestors.add(value);
  if (Array.isArray(value)) {
    value.forEach((item: unknown, index) => checkEncodable(item, `${path}[${index}]`, depth + 1, ancestors));
  } else {
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) {
      reject(path, `${value.constructor?.name ?? 'object'} is not a plain object`);
    }
    for (const [key, item] of Object.entries(value)) {
      const itemPath = path === '' ? key : `${path}.${key}`;
      if (loneSurrogate.test(key)) reject(itemPath, 'map key contains an unpaired surrogate');
      checkEncodable(item, itemPath, depth + 1, ancestors);
    }
  }
  ancestors.delete(value);
}

function reject(path: string, reason: string): never {
  throw new LedgerbusError(ErrorCode.SchemaMismatch, `${path === '' ? '(root)' : path}: ${reason}`);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
