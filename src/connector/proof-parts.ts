/**
 * Keeping acceptance proofs compactly (issue 18): the messages of one publish share most of their
 * compact (version 2) proofs — the certified header, its signatures, the batch's result leaf and its
 * path under the results root — and differ only in the message's own leaf, outcome and paths. A
 * connector stores the shared part once (keyed by its SHA-256) and each message's own part beside
 * its row; joining them gives back exactly the proof's bytes (canonical CBOR: a map's encoding does
 * not depend on how it was put together). Anything else — a version 1 proof, bytes that would not
 * come back identical — is kept whole.
 */
import { createHash } from 'node:crypto';
import { decodeCanonical, encodeCanonical } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';

/** The fields every message of a publish has in common (see compact-message-proof.ts). */
const sharedFields = ['header', 'signatures', 'batch', 'batchProof'] as const;

export interface SplitProof {
  /** The publish's part, stored once: canonical CBOR of a map of `sharedFields`. */
  readonly shared: Uint8Array;
  /** SHA-256 of `shared`, its key. */
  readonly sharedHash: Uint8Array;
  /** This message's part: canonical CBOR of the map's other fields. */
  readonly own: Uint8Array;
}

function isMap(value: CborValue): value is Record<string, CborValue> {
  return (
    typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && !Array.isArray(value)
  );
}

/** The proof in two parts, or undefined if it is to be kept whole. */
export function splitProof(proof: Uint8Array): SplitProof | undefined {
  let decoded: CborValue;
  try {
    decoded = decodeCanonical(proof);
  } catch {
    return undefined;
  }
  if (!isMap(decoded) || decoded['version'] !== 2) return undefined;
  if (!sharedFields.every((field) => field in decoded)) return undefined;
  const shared: Record<string, CborValue> = {};
  const own: Record<string, CborValue> = {};
  for (const [field, value] of Object.entries(decoded)) {
    if ((sharedFields as readonly string[]).includes(field)) shared[field] = value;
    else own[field] = value;
  }
  const split = {
    shared: encodeCanonical(shared),
    own: encodeCanonical(own),
  };
  // Only what comes back byte for byte is split: a receipt must carry the proof as it was issued.
  if (!Buffer.from(joinProof(split.shared, split.own)).equals(Buffer.from(proof))) return undefined;
  return { ...split, sharedHash: createHash('sha256').update(split.shared).digest() };
}

/** The proof whose parts `splitProof` returned. */
export function joinProof(shared: Uint8Array, own: Uint8Array): Uint8Array {
  const sharedMap = decodeCanonical(shared);
  const ownMap = decodeCanonical(own);
  if (!isMap(sharedMap) || !isMap(ownMap)) throw new TypeError('proof parts must be CBOR maps');
  return encodeCanonical({ ...sharedMap, ...ownMap });
}
