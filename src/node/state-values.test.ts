import { describe, expect, it } from 'vitest';
import { plainPacking } from '../codec/dictionary-deflate.js';
import { sha256, toHex } from '../crypto/index.js';
import { dictionaryV1, stateValues } from './state-values.js';

describe('contract state values at rest', () => {
  // Another message's record: the dictionary's own with other numbers and id.
  const record = new Uint8Array(dictionaryV1);
  record.set(new TextEncoder().encode('soak-9'), dictionaryV1.indexOf('soak-0'));
  record[10] = 0x17;

  it('packs a message record to under a third of its size and unpacks it exactly', () => {
    const packed = stateValues.pack(record);
    expect(packed.packing).toBe(1);
    expect(packed.bytes.length).toBeLessThan(record.length / 3);
    expect(stateValues.unpack(packed.bytes, packed.packing)).toEqual(record);
  });

  it('keeps small values plain', () => {
    const small = record.subarray(0, 40);
    expect(stateValues.pack(small)).toEqual({ packing: plainPacking, bytes: small });
    expect(stateValues.unpack(small, plainPacking)).toBe(small);
  });

  it('refuses a packing it does not know and a damaged packed value', () => {
    expect(() => stateValues.unpack(record, 7)).toThrow(/packing 7/);
    expect(() => stateValues.unpack(new Uint8Array([0xff, 0xff]), 1)).toThrow();
  });

  it('keeps dictionary v1 byte for byte: stored values depend on it', () => {
    expect(toHex(sha256(dictionaryV1))).toMatchInlineSnapshot(
      `"95e6ed7ff3786fcbecf0657dd69837455949fda47e77cdbc7862f26f118ec886"`,
    );
  });
});
