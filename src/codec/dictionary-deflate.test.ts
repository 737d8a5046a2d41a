import { describe, expect, it } from 'vitest';
import { DictionaryDeflate, plainPacking } from './dictionary-deflate.js';

const text = (value: string): Uint8Array => new TextEncoder().encode(value);
const first = text('{"transactionIndex":0,"contentType":"application/octet-stream","id":"message-1"}');
const second = text('{"payloadRetentionMs":86400000,"recipients":["org2"],"confirmedAt":1796677854528}');

describe('DictionaryDeflate', () => {
  it('packs with its newest dictionary and still reads what an older one packed', () => {
    const before = new DictionaryDeflate([first], 16);
    const packedBefore = before.pack(first);
    expect(packedBefore.packing).toBe(1);
    const after = new DictionaryDeflate([first, second], 16);
    const packedAfter = after.pack(second);
    expect(packedAfter.packing).toBe(2);
    expect(packedAfter.bytes.length).toBeLessThan(second.length / 3);
    expect(after.unpack(packedBefore.bytes, packedBefore.packing)).toEqual(first);
    expect(after.unpack(packedAfter.bytes, packedAfter.packing)).toEqual(second);
    expect(() => before.unpack(packedAfter.bytes, packedAfter.packing)).toThrow(/packing 2/);
  });

  it('keeps a record as it is when it is short or would not shrink', () => {
    const deflate = new DictionaryDeflate([first], 16);
    const short = text('{"id":1}');
    expect(deflate.pack(short)).toEqual({ bytes: short, packing: plainPacking });
    const noise = Uint8Array.from({ length: 64 }, (_, index) => (index * 197 + 13) & 0xff);
    expect(deflate.pack(noise)).toEqual({ bytes: noise, packing: plainPacking });
  });
});
