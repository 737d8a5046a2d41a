import { describe, expect, it } from 'vitest';
import { sha256, toHex } from '../crypto/index.js';
import { StateValueEncoding, dictionaryV1, packStateValue, unpackStateValue } from './state-values.js';

describe('packStateValue / unpackStateValue', () => {
  // Another message's record: the dictionary's own with other numbers and id.
  const record = new Uint8Array(dictionaryV1);
  record.set(new TextEncoder().encode('soak-9'), dictionaryV1.indexOf('soak-0'));
  record[10] = 0x17;

  it('packs a message record to under a third of its size and unpacks it exactly', () => {
    const packed = packStateValue(record);
    expect(packed.encoding).toBe(StateValueEncoding.deflatedV1);
    expect(packed.bytes.length).toBeLessThan(record.length / 3);
    expect(unpackStateValue(packed.encoding, packed.bytes)).toEqual(record);
  });

  it('keeps small values plain', () => {
    const small = record.subarray(0, 40);
    expect(packStateValue(small)).toEqual({ encoding: StateValueEncoding.plain, bytes: small });
    expect(unpackStateValue(StateValueEncoding.plain, small)).toBe(small);
  });

  it('refuses an encoding it does not know and a damaged packed value', () => {
    expect(() => unpackStateValue(7, record)).toThrow(/encoding 7/);
    expect(() => unpackStateValue(StateValueEncoding.deflatedV1, new Uint8Array([0xff, 0xff]))).toThrow();
  });

  it('keeps dictionary v1 byte for byte: stored values depend on it', () => {
    expect(toHex(sha256(dictionaryV1))).toMatchInlineSnapshot(
      `"95e6ed7ff3786fcbecf0657dd69837455949fda47e77cdbc7862f26f118ec886"`,
    );
  });
});
