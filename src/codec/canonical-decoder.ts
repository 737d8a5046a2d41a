/**
 * A direct strict decoder for the CborValue data model: it accepts exactly the bytes that are
 * `encodeCanonical(value)` of some value, and checks every canonical-form rule while it reads, in one
 * pass. It replaced cborg's token decoder followed by a walk of the value and a re-encode compared
 * byte for byte, which made decoding a tenth to a quarter of a replica's work per message. A
 * differential property test holds it to that older path (`decodeCanonicalReference`).
 */
import { ErrorCode, LedgerbusError } from '../errors.js';

/**
 * Structurally the CborValue of cbor.ts, spelled out here because cbor.ts imports this module and
 * the codebase admits no import cycles, type-only ones included.
 */
export type DecodedValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly DecodedValue[]
  | { readonly [key: string]: DecodedValue };

// ignoreBOM keeps a leading U+FEFF in the string, so the reader sees it and can refuse it itself (see
// `text`) instead of the decoder silently dropping it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// Short ASCII strings (map keys above all, and values such as topic names) recur in every message.
// Handing back the string made last time for the same bytes skips building it and, for a key, V8's
// lookup of its interned copy on every property store: together most of a decode. Strings are
// immutable and a hit compares every byte, so a stale or colliding slot can only cost a miss.
const recentTextSlots = 1024;
const recentTextBytesMax = 24;
const recentText: string[] = new Array<string>(recentTextSlots).fill('');

function holdsAscii(text: string, data: Uint8Array, start: number): boolean {
  for (let index = 0; index < text.length; index++) {
    if (text.charCodeAt(index) !== data[start + index]) return false;
  }
  return true;
}

const smallBytesMax = 64;

// Largest argument of a negative integer: -1 - n must stay a safe integer.
const negativeArgumentMax = Number.MAX_SAFE_INTEGER - 1;

class CanonicalReader {
  position = 0;

  constructor(
    private readonly data: Uint8Array,
    private readonly depthMax: number,
  ) {}

  /** The data item at `position`, which sits inside `depth` arrays or maps. */
  item(depth: number): DecodedValue {
    const data = this.data;
    if (this.position >= data.length) this.fail('input ends where a data item should start');
    const initial = data[this.position]!;
    const major = initial >> 5;
    const minor = initial & 0x1f;
    switch (major) {
      case 0:
        this.position++;
        return this.argument(minor);
      case 1: {
        this.position++;
        const argument = this.argument(minor);
        if (argument > negativeArgumentMax) this.fail('negative integer outside the safe range');
        return -1 - argument;
      }
      case 2: {
        this.position++;
        const length = this.length(minor);
        const start = this.position;
        this.position += length;
        if (length > smallBytesMax) return data.slice(start, this.position);
        // V8 keeps a typed array this small inside its object; allocating one and copying in a loop
        // costs half of `slice`, which always allocates a separate buffer.
        const copy = new Uint8Array(length);
        for (let index = 0; index < length; index++) copy[index] = data[start + index]!;
        return copy;
      }
      case 3:
        return this.text();
      case 4:
        return this.array(minor, depth);
      case 5:
        return this.map(minor, depth);
      case 6:
        return this.fail('tags are outside the data model');
      default:
        // Major type 7: only false, true and null are in the data model, never undefined, other
        // simple values, floats or a break.
        if (minor === 20 || minor === 21 || minor === 22) {
          this.position++;
          return minor === 22 ? null : minor === 21;
        }
        return this.fail(`simple value or float 0x${initial.toString(16)} is outside the data model`);
    }
  }

  /** Reads the argument after an initial byte whose low five bits are `minor`, shortest form only. */
  private argument(minor: number): number {
    if (minor < 24) return minor;
    const data = this.data;
    const at = this.position;
    let value: number;
    switch (minor) {
      case 24:
        this.need(1);
        value = data[at]!;
        if (value < 24) this.fail('argument not in its shortest form');
        this.position += 1;
        return value;
      case 25:
        this.need(2);
        value = (data[at]! << 8) | data[at + 1]!;
        if (value < 0x100) this.fail('argument not in its shortest form');
        this.position += 2;
        return value;
      case 26:
        this.need(4);
        value = data[at]! * 0x1000000 + ((data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!);
        if (value < 0x10000) this.fail('argument not in its shortest form');
        this.position += 4;
        return value;
      case 27: {
        this.need(8);
        const high = data[at]! * 0x1000000 + ((data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!);
        const low =
          data[at + 4]! * 0x1000000 + ((data[at + 5]! << 16) | (data[at + 6]! << 8) | data[at + 7]!);
        if (high === 0) this.fail('argument not in its shortest form');
        // Above 2^53 - 1 a Number can no longer hold it exactly.
        if (high > 0x1fffff) this.fail('integer outside the safe range');
        this.position += 8;
        return high * 0x100000000 + low;
      }
      default:
        // 28 to 30 are reserved; 31 is an indefinite length or a break.
        return this.fail(
          minor === 31 ? 'indefinite length or break' : `reserved additional information ${minor}`,
        );
    }
  }

  /** A string's length, checked to fit in what is left of the input before anything is allocated. */
  private length(minor: number): number {
    const length = this.argument(minor);
    if (length > this.data.length - this.position) this.fail('length runs past the end of the input');
    return length;
  }

  private text(): string {
    const data = this.data;
    this.position++;
    const length = this.length(data[this.position - 1]! & 0x1f);
    const start = this.position;
    const end = start + length;
    this.position = end;
    if (length <= recentTextBytesMax) {
      let hash = length;
      let index = start;
      for (; index < end; index++) {
        const byte = data[index]!;
        if (byte > 0x7f) break;
        hash = Math.imul(hash ^ byte, 0x01000193);
      }
      if (index === end) {
        const slot = (hash ^ (hash >>> 16)) & (recentTextSlots - 1);
        const recent = recentText[slot]!;
        if (recent.length === length && holdsAscii(recent, data, start)) return recent;
        let text = '';
        for (let at = start; at < end; at++) text += String.fromCharCode(data[at]!);
        recentText[slot] = text;
        return text;
      }
    }
    // The older decoder dropped a leading byte order mark, so the re-encoded bytes never matched and
    // such strings were refused. Refusing them here keeps every replica agreeing on what is valid.
    if (length >= 3 && data[start] === 0xef && data[start + 1] === 0xbb && data[start + 2] === 0xbf) {
      this.position = start;
      this.fail('text string starts with a byte order mark');
    }
    try {
      return strictUtf8.decode(data.subarray(start, end));
    } catch {
      this.position = start;
      return this.fail('text string is not valid UTF-8');
    }
  }

  private array(minor: number, depth: number): DecodedValue[] {
    if (depth >= this.depthMax) this.fail(`nesting deeper than ${this.depthMax}`);
    this.position++;
    const count = this.argument(minor);
    // Every item takes at least one byte: a count beyond that cannot be honest, and must not
    // make us allocate or loop.
    if (count > this.data.length - this.position) this.fail('array runs past the end of the input');
    const items: DecodedValue[] = [];
    for (let index = 0; index < count; index++) items.push(this.item(depth + 1));
    return items;
  }

  private map(minor: number, depth: number): { [key: string]: DecodedValue } {
    if (depth >= this.depthMax) this.fail(`nesting deeper than ${this.depthMax}`);
    this.position++;
    const count = this.argument(minor);
    if (count > (this.data.length - this.position) / 2) this.fail('map runs past the end of the input');
    const data = this.data;
    const record: { [key: string]: DecodedValue } = {};
    let previousStart = 0;
    let previousEnd = 0;
    for (let index = 0; index < count; index++) {
      const keyStart = this.position;
      if (keyStart >= data.length || data[keyStart]! >> 5 !== 3) this.fail('map key is not a text string');
      const key = this.text();
      const keyEnd = this.position;
      // RFC 8949 §4.2.1 orders keys by their encoded bytes; comparing them where they lie in the
      // input is that order itself (compareTextKeys on the strings agrees), and equality is a repeat.
      if (index > 0 && compareRanges(data, previousStart, previousEnd, keyStart, keyEnd) >= 0) {
        this.position = keyStart;
        this.fail('map keys are not in strictly increasing canonical order');
      }
      previousStart = keyStart;
      previousEnd = keyEnd;
      const value = this.item(depth + 1);
      if (key === '__proto__') {
        // An assignment would call Object.prototype's setter and change the prototype instead of
        // storing the entry; an own property round-trips through the encoder like any other key.
        Object.defineProperty(record, key, { value, configurable: true, enumerable: true, writable: true });
      } else {
        record[key] = value;
      }
    }
    return record;
  }

  private need(bytes: number): void {
    if (this.data.length - this.position < bytes) this.fail('input ends inside a head');
  }

  fail(reason: string): never {
    throw new LedgerbusError(
      ErrorCode.MalformedEncoding,
      `malformed CBOR at byte ${this.position}: ${reason}`,
    );
  }
}

/** Bytewise lexicographic order of data[aStart, aEnd) and data[bStart, bEnd). */
function compareRanges(data: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const aLength = aEnd - aStart;
  const bLength = bEnd - bStart;
  const common = aLength < bLength ? aLength : bLength;
  for (let offset = 0; offset < common; offset++) {
    const difference = data[aStart + offset]! - data[bStart + offset]!;
    if (difference !== 0) return difference;
  }
  return aLength - bLength;
}

/**
 * The value `bytes` canonically encodes, arrays and maps nested at most `depthMax` deep (the
 * outermost container is at depth 0, so `depthMax` containers may nest). Throws
 * LedgerbusError(MalformedEncoding) naming the offset and the defect for anything else. Byte strings
 * are fresh Uint8Arrays; maps are plain objects.
 */
export function decodeCanonicalFast(bytes: Uint8Array, depthMax: number): DecodedValue {
  // A Buffer's `slice` returns a view of the same memory: read through a plain Uint8Array so byte
  // strings are always copies.
  const data =
    bytes.constructor === Uint8Array
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new CanonicalReader(data, depthMax);
  const value = reader.item(0);
  if (reader.position !== data.length) reader.fail('trailing bytes after the data item');
  return value;
}
