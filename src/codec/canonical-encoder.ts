/**
 * A direct RFC 8949 §4.2.1 deterministic encoder for the CborValue data model, producing exactly the
 * bytes cborg produces with `canonicalEncodeOptions` (a property test holds the two together) in one
 * pass, without cborg's token objects: encoding was most of the CPU a replica spends per message.
 *
 * It only encodes values that are valid in the data model; on anything else it returns undefined and
 * the caller falls back to the validating path, which reports the offending field.
 */
import { Buffer } from 'node:buffer';
import { compareTextKeys } from './key-order.js';

const initialBytes = 512;
// In `u` mode a valid surrogate pair is one code point, so this matches only unpaired surrogates.
const loneSurrogate = /\p{Surrogate}/u;

class Writer {
  buffer: Buffer = Buffer.allocUnsafe(initialBytes);
  length = 0;

  ensure(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  /** A major type with its argument in the shortest form. */
  head(major: number, argument: number): void {
    this.ensure(9);
    const type = major << 5;
    const buffer = this.buffer;
    if (argument < 24) {
      buffer[this.length++] = type | argument;
    } else if (argument < 0x100) {
      buffer[this.length++] = type | 24;
      buffer[this.length++] = argument;
    } else if (argument < 0x10000) {
      buffer[this.length++] = type | 25;
      buffer.writeUInt16BE(argument, this.length);
      this.length += 2;
    } else if (argument < 0x100000000) {
      buffer[this.length++] = type | 26;
      buffer.writeUInt32BE(argument, this.length);
      this.length += 4;
    } else {
      buffer[this.length++] = type | 27;
      buffer.writeUInt32BE(Math.floor(argument / 0x100000000), this.length);
      buffer.writeUInt32BE(argument % 0x100000000, this.length + 4);
      this.length += 8;
    }
  }

  bytes(bytes: Uint8Array): void {
    this.head(2, bytes.length);
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** False if the string holds an unpaired surrogate (UTF-8 cannot carry it). */
  text(text: string): boolean {
    let ascii = true;
    for (let index = 0; index < text.length; index++) {
      if (text.charCodeAt(index) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      this.head(3, text.length);
      this.ensure(text.length);
      // Short strings (ids, map keys) are most of them; a loop beats a call into the native writer.
      if (text.length <= 32) {
        const buffer = this.buffer;
        let at = this.length;
        for (let index = 0; index < text.length; index++) buffer[at++] = text.charCodeAt(index);
      } else {
        this.buffer.write(text, this.length, 'latin1');
      }
      this.length += text.length;
      return true;
    }
    if (loneSurrogate.test(text)) return false;
    const byteLength = Buffer.byteLength(text, 'utf8');
    this.head(3, byteLength);
    this.ensure(byteLength);
    this.buffer.write(text, this.length, 'utf8');
    this.length += byteLength;
    return true;
  }
}

/**
 * Objects of one shape (the same keys in the same insertion order: records built by one schema or
 * one literal) are encoded over and over; sorting their keys each time was a large share of an
 * encode. Shapes seen are remembered with their canonical order, looked up by the first key and
 * confirmed key by key, so a different shape can never reuse another's order. Bounded: maps with
 * many or long keys (rare, and possibly a peer's doing, e.g. header names) are sorted each time,
 * and when the table is full it starts over, so shapes seen first cannot keep the ones in use out.
 */
const shapesMax = 1024;
const shapeKeysMax = 32;
const shapeKeyCharsMax = 256;
/** Few shapes share a first key; past this many the next ones are not remembered under it. */
const shapesPerFirstKeyMax = 8;
const shapesByFirstKey = new Map<string, { readonly keys: readonly string[]; readonly sorted: string[] }[]>();
let shapeCount = 0;

function remembered(keys: readonly string[]): boolean {
  if (keys.length > shapeKeysMax) return false;
  let chars = 0;
  for (const key of keys) chars += key.length;
  return chars <= shapeKeyCharsMax;
}

function canonicalKeyOrder(keys: string[]): readonly string[] {
  const candidates = shapesByFirstKey.get(keys[0] as string);
  if (candidates !== undefined) {
    for (const shape of candidates) {
      if (shape.keys.length !== keys.length) continue;
      let same = true;
      for (let index = 1; index < keys.length; index++) {
        if (shape.keys[index] !== keys[index]) {
          same = false;
          break;
        }
      }
      if (same) return shape.sorted;
    }
  }
  const sorted = [...keys].sort(compareTextKeys);
  if (remembered(keys) && (candidates === undefined || candidates.length < shapesPerFirstKeyMax)) {
    if (shapeCount >= shapesMax) {
      shapesByFirstKey.clear();
      shapeCount = 0;
    }
    shapeCount += 1;
    const shape = { keys, sorted };
    const list = shapesByFirstKey.get(keys[0] as string);
    if (list === undefined) shapesByFirstKey.set(keys[0] as string, [shape]);
    else list.push(shape);
  }
  return sorted;
}

function encodeInto(writer: Writer, value: unknown, depth: number, depthMax: number): boolean {
  switch (typeof value) {
    case 'boolean':
      writer.ensure(1);
      writer.buffer[writer.length++] = value ? 0xf5 : 0xf4;
      return true;
    case 'number':
      if (!Number.isSafeInteger(value)) return false;
      if (value >= 0) writer.head(0, value);
      else writer.head(1, -1 - value);
      return true;
    case 'string':
      return writer.text(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) {
    writer.ensure(1);
    writer.buffer[writer.length++] = 0xf6;
    return true;
  }
  if (value instanceof Uint8Array) {
    writer.bytes(value);
    return true;
  }
  if (depth >= depthMax) return false;
  if (Array.isArray(value)) {
    writer.head(4, value.length);
    for (const item of value as unknown[]) if (!encodeInto(writer, item, depth + 1, depthMax)) return false;
    return true;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  const record = value as Record<string, unknown>;
  const inserted = Object.keys(record);
  const keys = inserted.length > 1 ? canonicalKeyOrder(inserted) : inserted;
  writer.head(5, keys.length);
  for (const key of keys) {
    if (!writer.text(key)) return false;
    if (!encodeInto(writer, record[key], depth + 1, depthMax)) return false;
  }
  return true;
}

/** The canonical encoding of `value`, or undefined if it is not in the data model. */
export function encodeCanonicalFast(value: unknown, depthMax: number): Uint8Array | undefined {
  // One scratch writer serves every encode (allocating a buffer per encode showed in profiles); an
  // encode that starts while it is in use (a getter that encodes) gets its own.
  const writer = idleWriter ?? new Writer();
  idleWriter = undefined;
  writer.length = 0;
  try {
    if (!encodeInto(writer, value, 0, depthMax)) return undefined;
    // A fresh, exactly sized array: never a view into the scratch buffer.
    const bytes = new Uint8Array(writer.length);
    bytes.set(writer.buffer.subarray(0, writer.length));
    return bytes;
  } finally {
    // A writer grown by a large value is let go rather than held for the life of the process.
    if (writer.buffer.length <= scratchBytesMax) idleWriter = writer;
  }
}

const scratchBytesMax = 1024 * 1024;
let idleWriter: Writer | undefined = new Writer();
