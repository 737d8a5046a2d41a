import type { Buffer } from 'node:buffer';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { encodeFrame, frameHeader } from './frames.js';
import type { FrameDecoder } from './frames.js';

/** Who is at the other end of an authenticated link. */
export interface AuthenticatedPeer {
  /** The peer's raw 32-byte Ed25519 key, proven by the TLS handshake. */
  readonly publicKey: Uint8Array;
  /** Server side: what `authorize` returned; client side: the name given to connectFramed. */
  readonly name: string;
}

// Below this size one copy into a single buffer is cheaper than two writes; above it the payload is
// written as is, so a large frame is never copied just to put 4 bytes in front of it.
const coalesceBytesMax = 64 * 1024;
// A peer that never answers our close must not keep the socket (and its buffers) forever.
const gracefulCloseMs = 5_000;

/**
 * An authenticated, framed, TLS 1.3 connection, made by `listenFramed` or `connectFramed`.
 *
 * Reading starts once a frame handler is set, and frames are handed over one at a time in order;
 * `pause()` takes effect between two frames, even inside one network read. While paused (or before a
 * handler exists) at most one socket read's worth of frames is held, then the socket stops reading,
 * so TCP flow control pushes back on the peer.
 */
export class FramedConnection {
  readonly peerPublicKey: Uint8Array;
  readonly peerName: string;
  private readonly socket: TLSSocket;
  private readonly decoder: FrameDecoder;
  private frameHandler: ((frame: Buffer) => void) | undefined;
  /** One per owner that asked (the RPC session, mostly); emptied at close. */
  private readonly closeHandlers: ((error?: Error) => void)[] = [];
  /**
   * Decoded frames not yet handed to the handler; `queueHead` is the next one. About one socket
   * read's worth: the socket stops reading while frames wait.
   */
  private queue: Buffer[];
  private queueHead = 0;
  private readingPaused = false;
  private delivering = false;
  private closeRequested = false;
  private socketClosed = false;
  private closeError: Error | undefined;

  /** Internal: made by link.ts once the peer is authenticated. `socket` must be paused. */
  constructor(
    socket: TLSSocket,
    decoder: FrameDecoder,
    peer: AuthenticatedPeer,
    framesAlreadyDecoded: Buffer[],
  ) {
    this.socket = socket;
    this.decoder = decoder;
    this.peerPublicKey = peer.publicKey;
    this.peerName = peer.name;
    this.queue = framesAlreadyDecoded;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    // Keep the first error: it is the reason for the close that follows.
    socket.on('error', (error) => {
      this.closeError ??= error;
    });
    socket.on('close', () => this.finishClose());
    if (socket.destroyed) queueMicrotask(() => this.finishClose());
    // The setup read may already have met a bad header after the frames handed in.
    const failure = decoder.failed;
    if (failure !== undefined) queueMicrotask(() => this.close(failure));
  }

  /** True once `close()` was called or the connection ended for any reason. */
  get closed(): boolean {
    return this.closeRequested || this.socketClosed;
  }

  /** Largest payload this side accepts; the peer is expected to use the same limit. */
  get frameBytesMax(): number {
    return this.decoder.frameBytesMax;
  }

  /**
   * Queues `payload` as one frame. Returns false when the socket's write buffer is full, as
   * `stream.write` does: the frame is still sent, but the caller should wait for `drained()`
   * before sending more. `payload` must not be modified afterwards (large payloads are not copied).
   * Throws LedgerbusError(ConnectionClosed) once the connection is closed and Oversize for a payload
   * above `frameBytesMax`, which the peer would refuse.
   */
  send(payload: Uint8Array): boolean {
    if (this.closed) {
      throw new LedgerbusError(ErrorCode.ConnectionClosed, `connection to ${this.peerName} is closed`, {
        retriable: true,
      });
    }
    if (payload.length > this.decoder.frameBytesMax) {
      throw new LedgerbusError(
        ErrorCode.Oversize,
        `a ${payload.length}-byte frame exceeds the ${this.decoder.frameBytesMax}-byte limit`,
      );
    }
    if (payload.length <= coalesceBytesMax) return this.socket.write(encodeFrame(payload));
    this.socket.cork();
    this.socket.write(frameHeader(payload.length));
    const writable = this.socket.write(payload);
    this.socket.uncork();
    return writable;
  }

  /** Resolves once the write buffer has room again; rejects with ConnectionClosed if it closes first. */
  drained(): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        new LedgerbusError(ErrorCode.ConnectionClosed, `connection to ${this.peerName} is closed`, {
          retriable: true,
        }),
      );
    }
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        this.socket.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        this.socket.off('drain', onDrain);
        reject(
          new LedgerbusError(ErrorCode.ConnectionClosed, `connection to ${this.peerName} closed`, {
            retriable: true,
          }),
        );
      };
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  /**
   * Sets the one consumer of incoming frames and starts reading. A frame is a view of received
   * memory; copy it to keep a small part of it for long. A second consumer would be a bug, so
   * setting another handler throws.
   */
  onFrame(handler: (frame: Buffer) => void): void {
    assert(this.frameHandler === undefined, 'a FramedConnection has one frame handler');
    this.frameHandler = handler;
    this.deliver();
  }

  /**
   * Calls `handler` once when the connection has closed, with the reason unless it was an orderly
   * close (either side's `close()` or the peer ending the stream). If already closed, calls it soon.
   */
  onClose(handler: (error?: Error) => void): void {
    if (this.socketClosed) {
      queueMicrotask(() => handler(this.closeError));
      return;
    }
    this.closeHandlers.push(handler);
  }

  /** Stops handing over frames (and soon reading from the network) until `resume()`. */
  pause(): void {
    this.readingPaused = true;
    this.socket.pause();
  }

  resume(): void {
    this.readingPaused = false;
    this.deliver();
  }

  /**
   * Without `error`: sends what is queued, then ends the connection (destroying it if the peer does
   * not close its side in time). With `error`: drops the connection at once, and the close handlers
   * receive `error`. No frames are handed over after either.
   */
  close(error?: Error): void {
    this.closeRequested = true;
    if (error !== undefined) {
      this.closeError ??= error;
      this.socket.destroy(error);
      return;
    }
    if (this.socketClosed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), gracefulCloseMs).unref();
  }

  private receive(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      // The stream has lost its framing (oversize header): nothing after this can be trusted.
      this.close(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    for (const frame of frames) this.queue.push(frame);
    this.deliver();
    // Frames that arrived in the same read as a bad header were whole: delivered above, then close.
    const failure = this.decoder.failed;
    if (failure !== undefined) this.close(failure);
  }

  private deliver(): void {
    // A handler that calls resume() would otherwise re-enter and reorder frames.
    if (this.delivering) return;
    this.delivering = true;
    try {
      while (
        this.frameHandler !== undefined &&
        !this.readingPaused &&
        !this.closed &&
        this.queueHead < this.queue.length
      ) {
        const frame = this.queue[this.queueHead]!;
        this.queueHead += 1;
        this.frameHandler(frame);
      }
    } finally {
      this.delivering = false;
      if (this.queueHead === this.queue.length) {
        this.queue = [];
        this.queueHead = 0;
      }
    }
    const ready = this.frameHandler !== undefined && !this.readingPaused && this.queue.length === 0;
    if (this.closed) return;
    if (ready) this.socket.resume();
    else this.socket.pause();
  }

  private finishClose(): void {
    if (this.socketClosed) return;
    this.socketClosed = true;
    this.queue = [];
    this.queueHead = 0;
    const handlers = this.closeHandlers.splice(0);
    for (const handler of handlers) handler(this.closeError);
  }
}
