/**
 * Raw deflate against a preset dictionary, for small records kept at rest that repeat the same CBOR
 * map keys and strings one record after another (message records, envelope headers, proofs): zlib
 * alone gains little on 400 bytes, with a dictionary made of one such record it gains 2–4×.
 *
 * The dictionaries become part of the stored format, so a stored record carries its `packing`: 0 is
 * the record as it is, n is deflated against the n-th dictionary. A new dictionary is appended (new
 * records use it) and the earlier ones stay readable; each user freezes its dictionaries' hashes in a
 * test.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

/** `packing` 0: the record is stored as it is. */
export const plainPacking = 0;

export interface PackedRecord {
  readonly bytes: Uint8Array;
  /** `plainPacking`, or the 1-based number of the dictionary `bytes` were deflated against. */
  readonly packing: number;
}

export class DictionaryDeflate {
  /**
   * @param dictionaries typical records, frozen forever, oldest first: the last one packs
   * @param minBytes below this a record is not worth the zlib call
   */
  constructor(
    private readonly dictionaries: readonly Uint8Array[],
    private readonly minBytes: number,
  ) {}

  /** The record deflated against the newest dictionary, or as it is when that would not be smaller. */
  pack(record: Uint8Array): PackedRecord {
    if (record.length >= this.minBytes) {
      const packing = this.dictionaries.length;
      const deflated = deflateRawSync(record, { level: 1, dictionary: this.dictionaries[packing - 1]! });
      if (deflated.length < record.length) return { bytes: deflated, packing };
    }
    return { bytes: record, packing: plainPacking };
  }

  /** The record `pack` stored. Throws for a packing this build does not know, or damaged bytes. */
  unpack(bytes: Uint8Array, packing: number): Uint8Array {
    if (packing === plainPacking) return bytes;
    const dictionary = this.dictionaries[packing - 1];
    if (!Number.isInteger(packing) || dictionary === undefined)
      throw new Error(`packing ${packing} is unknown to this build`);
    return new Uint8Array(inflateRawSync(bytes, { dictionary }));
  }
}
