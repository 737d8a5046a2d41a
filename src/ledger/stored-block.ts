/**
 * A block at rest: its canonical encoding, deflated when that saves space. Half of a block of small
 * messages is text and repeated CBOR map keys (ids, content types, field names of every message and
 * envelope header), so deflate halves it; hashes and signatures are over the header, never over
 * these bytes, so nothing a verifier checks changes. A deflated blob starts with the byte 0x00, which
 * no canonical block encoding can (a block is a CBOR map: its first byte is 0xa0–0xbf), so a
 * database may hold both forms and every row says which it is.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

const DEFLATED = 0x00;
/** Level 1: within 1 % of level 6's ratio on blocks of small messages, at a third more speed. */
const deflateLevel = 1;
/** A block this small gains nothing worth the marker and the inflate on every read. */
const deflateFromBytes = 256;

/** The bytes to store for a block's canonical encoding. */
export function storedBlockBytes(encoded: Uint8Array): Uint8Array {
  if (encoded.length < deflateFromBytes) return encoded;
  const deflated = deflateRawSync(encoded, { level: deflateLevel });
  if (deflated.length + 1 >= encoded.length) return encoded;
  const stored = new Uint8Array(deflated.length + 1);
  stored[0] = DEFLATED;
  stored.set(deflated, 1);
  return stored;
}

/**
 * The canonical encoding of a stored block. Throws (zlib's error) if a deflated blob is damaged; the
 * caller reports it as corrupt storage.
 */
export function encodedBlockFromStored(stored: Uint8Array): Uint8Array {
  if (stored.length === 0 || stored[0] !== DEFLATED) return stored;
  return new Uint8Array(inflateRawSync(stored.subarray(1)));
}
