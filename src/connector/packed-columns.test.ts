import { describe, expect, it } from 'vitest';
import { sha256, toHex } from '../crypto/index.js';
import { plainPacking } from '../codec/dictionary-deflate.js';
import { headerColumns, headerDictionaryV1, proofColumns, proofDictionaryV1 } from './packed-columns.js';

describe('packed header and proof columns', () => {
  it('packs a header and a proof to under three quarters and unpacks them exactly', () => {
    const header = new Uint8Array(headerDictionaryV1);
    header.set(new TextEncoder().encode('soak-9'), headerDictionaryV1.indexOf('soak-7'));
    const packedHeader = headerColumns.pack(header);
    const packedProof = proofColumns.pack(proofDictionaryV1);
    expect([packedHeader.packing, packedProof.packing]).toEqual([1, 1]);
    expect(packedHeader.bytes.length).toBeLessThan(header.length * 0.75);
    expect(headerColumns.unpack(packedHeader.bytes, packedHeader.packing)).toEqual(header);
    expect(proofColumns.unpack(packedProof.bytes, packedProof.packing)).toEqual(
      new Uint8Array(proofDictionaryV1),
    );
  });

  it('keeps small columns plain, and refuses an unknown packing or damaged bytes', () => {
    const tiny = new Uint8Array([1]);
    expect(proofColumns.pack(tiny)).toEqual({ bytes: tiny, packing: plainPacking });
    expect(headerColumns.unpack(tiny, plainPacking)).toBe(tiny);
    expect(() => proofColumns.unpack(tiny, 9)).toThrow(/packing 9/);
    expect(() => headerColumns.unpack(new Uint8Array([0xff, 0xff]), 1)).toThrow();
  });

  it('keeps the dictionaries byte for byte: stored columns depend on them', () => {
    expect([toHex(sha256(headerDictionaryV1)), toHex(sha256(proofDictionaryV1))]).toMatchInlineSnapshot(`
      [
        "9dd354b7d75e458d16768a652e3d8dd258879ad27536dd5169d0ccc24f492dd1",
        "e19e91a851da782cac2be4f1e254fb09dd14601e839a811c50efb81e101dcbf2",
      ]
    `);
  });
});
