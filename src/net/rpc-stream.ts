import { Readable } from 'node:stream';
import type { CborValue } from '../codec/index.js';

/** What a handler returns to answer with a byte stream instead of a single value; see `rpcStream`. */
export class RpcStreamReply {
  readonly source: Readable;
  readonly head: CborValue;
  constructor(source: Readable, head: CborValue) {
    this.source = source;
    this.head = head;
  }
}

/**
 * Answers a `requestStream` call with `head` (a value the caller gets first, say a size or a
 * content hash) followed by the bytes of `source`. The source is read only as fast as the network
 * and the remote consumer take it, and is destroyed when the caller cancels or the connection closes.
 * `source` must yield Buffers or Uint8Arrays (or strings, sent as UTF-8).
 */
export function rpcStream(source: Readable, head: CborValue = null): RpcStreamReply {
  return new RpcStreamReply(source, head);
}

/** Largest data payload per stream frame: big enough to amortize framing, small enough to interleave. */
export const streamChunkBytesMax = 256 * 1024;

// How much a receiving stream buffers before it asks the connection to stop reading.
const incomingHighWaterMarkBytes = 1024 * 1024;

/**
 * The receiving end of a remote byte stream. It only relays: RpcPeer pushes the bytes, and the
 * callbacks tell RpcPeer when the consumer wants more (`wantMore`) or gave up (`abandoned`).
 */
export class IncomingByteStream extends Readable {
  private readonly wantMore: () => void;
  private readonly abandoned: (error: Error | null) => void;

  constructor(callbacks: { wantMore: () => void; abandoned: (error: Error | null) => void }) {
    super({ highWaterMark: incomingHighWaterMarkBytes });
    this.wantMore = callbacks.wantMore;
    this.abandoned = callbacks.abandoned;
  }

  override _read(): void {
    this.wantMore();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.abandoned(error);
    callback(error);
  }
}
