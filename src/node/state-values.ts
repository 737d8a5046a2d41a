/**
 * Contract state values at rest in a partition database. A message record is about 440 bytes of
 * CBOR, most of it the same map keys and strings in every record ("transactionIndex",
 * "payloadRetentionMs", "application/octet-stream"...); deflated against a preset dictionary made of
 * one such record it takes about 100. The dictionary is part of the stored format (a row's
 * `encoding` is its packing: 1 means "raw deflate with `dictionaryV1`", forever); a new one is
 * appended and the old one stays readable (the frozen hash in state-values.test.ts guards this).
 */
import { DictionaryDeflate } from '../codec/dictionary-deflate.js';

/** A closed message record of the SDT contract (state format sdt/6), as the contract encodes it. */
export const dictionaryV1 = Buffer.from(
  'rmZoZWlnaHQDZm9mZnNldBgsZnNlbmRlcmRvcmcxZnN0YXR1c2lDT01QTEVURURoY2xvc2VkQXQbAAABolJYZUBoZGVhZGxpbmUbAAABonZk5/xobWV0YWRhdGGpYmlkZnNvYWstMGNrZXn2ZHNpemUY2GV0b3BpY2RkZW1vZ2hlYWRlcnOgaXBhcnRpdGlvbgBqcmVjaXBpZW50c4Fkb3JnMmtjb250ZW50Um9vdFggbMfNrbDGzULBSw0XdeYG5d75T2UHfKFeOaj+G0T7hzdrY29udGVudFR5cGV4GGFwcGxpY2F0aW9uL29jdGV0LXN0cmVhbWphY2NlcHRlZEF0GwAAAaJSWGP8amRlbGl2ZXJpZXOBpWZoZWlnaHQFaXJlY2lwaWVudGRvcmcya2NvbmZpcm1lZEF0GwAAAaJSWGVAbWRlbGl2ZXJ5SW5kZXgAcHRyYW5zYWN0aW9uSW5kZXgAa2NvbmZpZ0Vwb2NoAGxjbG9zZWRIZWlnaHQFbG1lc3NhZ2VJbmRleABwdHJhbnNhY3Rpb25JbmRleABycGF5bG9hZFJldGVudGlvbk1zGgUmXAA=',
  'base64',
);

/**
 * Packs and unpacks contract state values; below 96 bytes a value gains less than the zlib call costs
 * (nonces, offsets, counters).
 */
export const stateValues = new DictionaryDeflate([dictionaryV1], 96);
