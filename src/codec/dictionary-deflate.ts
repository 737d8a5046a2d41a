/**
 * Raw deflate against a preset dictionary, for small records kept at rest that repeat the same CBOR
 * map keys and strings one record after another (message records, envelope headers, proofs): zlib
 * alone gains little on 400 bytes, with a dictionary made of one such record it gains 2–4×. The
 * dictionary becomes part of the stored format, so each user freezes its dictionaries and tests
 * their hashes.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

export class DictionaryDeflate {
  /**
   * @param dictionary a typical record, frozen forever for what it encodes
   * @param minBytes below this a record is not worth the zlib call
   */
  constructor(
    private readonly dictionary: Uint8Array,
    private readonly minBytes: number,
  ) {}

  /** The deflated bytes, or undefined when they would not be smaller (keep the record as it is). */
  pack(record: Uint8Array): Uint8Array | undefined {
    if (record.length < this.minBytes) return undefined;
    const deflated = deflateRawSync(record, { level: 1, dictionary: this.dictionary });
    return deflated.length < record.length ? deflated : undefined;
  }

  /** The record `pack` deflated. Throws (zlib's error) on damaged bytes. */
  unpack(deflated: Uint8Array): Uint8Array {
    return new Uint8Array(inflateRawSync(deflated, { dictionary: this.dictionary }));
  }
}
