/**
 * Contract state values at rest in a partition database. A message record is about 440 bytes of
 * CBOR, most of it the same map keys and strings in every record ("transactionIndex",
 * "payloadRetentionMs", "application/octet-stream"...); deflated against a preset dictionary made of
 * one such record it takes about 100. The dictionary is part of the stored format: encoding 1 means
 * "raw deflate with `dictionaryV1`", forever. A new dictionary gets a new encoding number and the
 * old one stays readable (the frozen hash in state-values.test.ts guards this).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

export const StateValueEncoding = { plain: 0, deflatedV1: 1 } as const;
export type StateValueEncoding = (typeof StateValueEncoding)[keyof typeof StateValueEncoding];

/** A closed message record of the SDT contract (state format sdt/6), as the contract encodes it. */
export const dictionaryV1 = Buffer.from(
  'rmZoZWlnaHQDZm9mZnNldBgsZnNlbmRlcmRvcmcxZnN0YXR1c2lDT01QTEVURURoY2xvc2VkQXQbAAABolJYZUBoZGVhZGxpbmUbAAABonZk5/xobWV0YWRhdGGpYmlkZnNvYWstMGNrZXn2ZHNpemUY2GV0b3BpY2RkZW1vZ2hlYWRlcnOgaXBhcnRpdGlvbgBqcmVjaXBpZW50c4Fkb3JnMmtjb250ZW50Um9vdFggbMfNrbDGzULBSw0XdeYG5d75T2UHfKFeOaj+G0T7hzdrY29udGVudFR5cGV4GGFwcGxpY2F0aW9uL29jdGV0LXN0cmVhbWphY2NlcHRlZEF0GwAAAaJSWGP8amRlbGl2ZXJpZXOBpWZoZWlnaHQFaXJlY2lwaWVudGRvcmcya2NvbmZpcm1lZEF0GwAAAaJSWGVAbWRlbGl2ZXJ5SW5kZXgAcHRyYW5zYWN0aW9uSW5kZXgAa2NvbmZpZ0Vwb2NoAGxjbG9zZWRIZWlnaHQFbG1lc3NhZ2VJbmRleABwdHJhbnNhY3Rpb25JbmRleABycGF5bG9hZFJldGVudGlvbk1zGgUmXAA=',
  'base64',
);

/** Below this a value gains less than the zlib call costs (nonces, offsets, counters). */
const packFromBytes = 96;

/** How to store `value`: deflated when that is smaller, else as it is. */
export function packStateValue(value: Uint8Array): {
  readonly encoding: StateValueEncoding;
  readonly bytes: Uint8Array;
} {
  if (value.length < packFromBytes) return { encoding: StateValueEncoding.plain, bytes: value };
  const deflated = deflateRawSync(value, { level: 1, dictionary: dictionaryV1 });
  return deflated.length < value.length
    ? { encoding: StateValueEncoding.deflatedV1, bytes: deflated }
    : { encoding: StateValueEncoding.plain, bytes: value };
}

/** The value a stored row holds. Throws for an encoding this build does not know, or damaged bytes. */
export function unpackStateValue(encoding: number, bytes: Uint8Array): Uint8Array {
  if (encoding === StateValueEncoding.plain) return bytes;
  if (encoding === StateValueEncoding.deflatedV1)
    return new Uint8Array(inflateRawSync(bytes, { dictionary: dictionaryV1 }));
  throw new Error(`contract state value encoding ${encoding} is unknown to this build`);
}
