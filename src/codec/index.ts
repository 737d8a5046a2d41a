export {
  decodeCanonical,
  decodeValidated,
  defaultDecodeBytesMax,
  encodeCanonical,
  nestingDepthMax,
} from './cbor.js';
export type { CborValue } from './cbor.js';
export { asBuffer, bytesEqual, fromHex, toHex } from './bytes.js';
export { decodeWith, encodeWith, fieldPath, schemaMismatch, t } from './schema.js';
export type { Infer, InferRecord, OptionalSchema, Schema } from './schema.js';
