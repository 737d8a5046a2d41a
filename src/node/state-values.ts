/**
 * Contract state values at rest in a partition database. A message record is about 440 bytes of
 * CBOR, most of it the same map keys and strings in every record ("transactionIndex",
 * "payloadRetentionMs", "application/octet-stream"...); deflated against a preset dictionary made of
 * one such record it takes about 100. The dictionary is part of the stored format: encoding 1 means
 * "raw deflate with `dictionaryV1`", forever. A new dictionary gets a new encoding number and the
 * old one stays readable (the frozen hash in state-values.test.ts guards this).
 */
import { DictionaryDeflate } from '../codec/dictionary-deflate.js';

export const StateValueEncoding = { plain: 0, deflatedV1: 1 } as const;
export type StateValueEncoding = (typeof StateValueEncoding)[keyof typeof StateValueEncoding];

/** A closed message record of the SDT contract (state format sdt/6), as the contract encodes it. */
export const dictionaryV1 = Buffer.from(
  'rmZoZWlnaHQDZm9mZnNldBgsZnNlbmRlcmRvcmcxZnN0YXR1c2lDT01QTEVURURoY2xvc2VkQXQbAAABolJYZUBoZGVhZGxpbmUbAAABonZk5/xobWV0YWRhdGGpYmlkZnNvYWstMGNrZXn2ZHNpemUY2GV0b3BpY2RkZW1vZ2hlYWRlcnOgaXBhcnRpdGlvbgBqcmVjaXBpZW50c4Fkb3JnMmtjb250ZW50Um9vdFggbMfNrbDGzULBSw0XdeYG5d75T2UHfKFeOaj+G0T7hzdrY29udGVudFR5cGV4GGFwcGxpY2F0aW9uL29jdGV0LXN0cmVhbWphY2NlcHRlZEF0GwAAAaJSWGP8amRlbGl2ZXJpZXOBpWZoZWlnaHQFaXJlY2lwaWVudGRvcmcya2NvbmZpcm1lZEF0GwAAAaJSWGVAbWRlbGl2ZXJ5SW5kZXgAcHRyYW5zYWN0aW9uSW5kZXgAa2NvbmZpZ0Vwb2NoAGxjbG9zZWRIZWlnaHQFbG1lc3NhZ2VJbmRleABwdHJhbnNhY3Rpb25JbmRleABycGF5bG9hZFJldGVudGlvbk1zGgUmXAA=',
  'base64',
);

/** Below 96 bytes a value gains less than the zlib call costs (nonces, offsets, counters). */
const deflateV1 = new DictionaryDeflate(dictionaryV1, 96);

/** How to store `value`: deflated when that is smaller, else as it is. */
export function packStateValue(value: Uint8Array): {
  readonly encoding: StateValueEncoding;
  readonly bytes: Uint8Array;
} {
  const deflated = deflateV1.pack(value);
  return deflated === undefined
    ? { encoding: StateValueEncoding.plain, bytes: value }
    : { encoding: StateValueEncoding.deflatedV1, bytes: deflated };
}

/** The value a stored row holds. Throws for an encoding this build does not know, or damaged bytes. */
export function unpackStateValue(encoding: number, bytes: Uint8Array): Uint8Array {
  if (encoding === StateValueEncoding.plain) return bytes;
  if (encoding === StateValueEncoding.deflatedV1) return deflateV1.unpack(bytes);
  throw new Error(`contract state value encoding ${encoding} is unknown to this build`);
}
