import type { Buffer } from 'node:buffer';
import { decodeWith, encodeCanonical, t } from '../codec/index.js';
import type { CborValue, Infer, Schema } from '../codec/index.js';

/**
 * The messages RpcPeer exchanges, one canonical CBOR map per frame, told apart by `type`.
 *
 * Request ids are chosen by the side that sends the request, so "response", "error",
 * "stream-head", "stream-data" and "stream-end" name one of OUR requests, while "request" and
 * "cancel" name one of the PEER's: the two directions never collide.
 */

// Bodies were already checked by decodeCanonical, which accepts nothing outside the CborValue model.
const anyValue: Schema<CborValue> = {
  description: 'any value',
  parse: (value) => value as CborValue,
};

const requestId = t.uint();
const nameSchema = t.string({ minLength: 1, maxLength: 256 });
/** Error messages are for people; the bound keeps a peer from making us hold a novel. */
export const errorMessageLengthMax = 4096;

const messageSchema = t.variant('type', {
  request: t.record({
    type: t.literal('request'),
    id: requestId,
    method: nameSchema,
    body: anyValue,
    /** True when the caller used requestStream and expects "stream-head" instead of "response". */
    stream: t.bool(),
  }),
  response: t.record({ type: t.literal('response'), id: requestId, body: anyValue }),
  /** The failure of a request, or of a stream after its head. */
  error: t.record({
    type: t.literal('error'),
    id: requestId,
    code: t.string({ minLength: 1, maxLength: 64 }),
    message: t.string({ maxLength: errorMessageLengthMax }),
    retriable: t.bool(),
  }),
  notify: t.record({ type: t.literal('notify'), channel: nameSchema, body: anyValue }),
  'stream-head': t.record({ type: t.literal('stream-head'), id: requestId, head: anyValue }),
  'stream-data': t.record({ type: t.literal('stream-data'), id: requestId, bytes: t.bytes() }),
  'stream-end': t.record({ type: t.literal('stream-end'), id: requestId }),
  /** The caller no longer wants the answer: stop the stream, drop the result. */
  cancel: t.record({ type: t.literal('cancel'), id: requestId }),
});

export type RpcMessage = Infer<typeof messageSchema>;

/**
 * Decodes one frame. Throws LedgerbusError (MalformedEncoding, SchemaMismatch or Oversize) for
 * anything that is not exactly one well-formed message: the peer is then broken or hostile.
 */
export function decodeRpcMessage(frame: Buffer, frameBytesMax: number): RpcMessage {
  return decodeWith(messageSchema, frame, { maxBytes: frameBytesMax });
}

/** Encodes one message; throws LedgerbusError(SchemaMismatch) if a body is not a CborValue. */
export function encodeRpcMessage(message: RpcMessage): Uint8Array {
  return encodeCanonical(message as CborValue);
}
