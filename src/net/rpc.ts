/**
 * Requests, responses, one-way notifications and byte streams multiplexed over one FramedConnection.
 * Both ends are equal: either may serve methods and make requests.
 *
 * Streams and the connection. A stream's backpressure works by pausing the WHOLE connection when the
 * receiving consumer falls behind, which also holds back every other message on it. Run bulk streams
 * on a dedicated connection, never on the one that carries consensus or other latency-sensitive
 * traffic, so a slow consumer can never delay it.
 */
import { Buffer } from 'node:buffer';
import type { Readable } from 'node:stream';
import type { CborValue } from '../codec/index.js';
import { ErrorCode, LedgerbusError, assert, isLedgerbusError } from '../errors.js';
import type { FramedConnection } from './framed-connection.js';
import { decodeRpcMessage, encodeRpcMessage, errorMessageLengthMax } from './rpc-messages.js';
import type { RpcMessage } from './rpc-messages.js';
import { IncomingByteStream, RpcStreamReply, streamChunkBytesMax } from './rpc-stream.js';

/** Who is calling, as the link authenticated them. */
export interface RpcContext {
  readonly peerName: string;
  readonly peerPublicKey: Uint8Array;
}

export type RpcHandler = (
  body: CborValue,
  context: RpcContext,
) => Promise<CborValue | RpcStreamReply> | CborValue | RpcStreamReply;

export type RpcNotifyHandler = (body: CborValue, context: RpcContext) => void;

export interface RpcPeerOptions {
  /** How long `request` waits for the answer (for `requestStream`, for the head). Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Most requests in flight each way; past it we answer or fail with OVERLOADED. Default 1024. */
  readonly inFlightMax?: number;
  /**
   * Told about failures nobody else hears of: unexpected errors thrown by handlers (the caller only
   * gets INTERNAL), failing notification handlers, and protocol violations that closed the link.
   */
  readonly onError?: (error: unknown, context: { method?: string; channel?: string }) => void;
}

/** A byte stream answer: the sender's head value, then the bytes. */
export interface RpcStreamResponse {
  readonly head: CborValue;
  readonly stream: Readable;
}

const defaultRequestTimeoutMs = 30_000;
const defaultInFlightMax = 1024;
// Upper bound on the CBOR around a stream-data payload: map header, keys, type, id, byte string header.
const streamDataOverheadBytes = 64;
const binaryStreamDataTag = 0xff;
/** Tag byte and a 48-bit request id. */
const binaryStreamDataHeaderBytes = 7;

function encodeBinaryStreamData(id: number, piece: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(binaryStreamDataHeaderBytes + piece.length);
  frame[0] = binaryStreamDataTag;
  frame.writeUIntBE(id, 1, 6);
  frame.set(piece, binaryStreamDataHeaderBytes);
  return frame;
}
const knownErrorCodes = new Set<string>(Object.values(ErrorCode));

interface PendingRequest {
  readonly method: string;
  readonly expectsStream: boolean;
  readonly timer: NodeJS.Timeout;
  resolve(value: CborValue | RpcStreamResponse): void;
  reject(error: LedgerbusError): void;
}

/** A request from the peer that we are serving: its handler is running or its stream is being sent. */
interface ServedRequest {
  cancelled: boolean;
  source: Readable | undefined;
}

/**
 * One end of an RPC session over `connection`. Register handlers (`handle`, `onNotify`) right after
 * constructing it, in the same synchronous block: reading starts on the next microtask.
 */
export class RpcPeer {
  private readonly connection: FramedConnection;
  private readonly context: RpcContext;
  private readonly requestTimeoutMs: number;
  private readonly inFlightMax: number;
  private readonly onError: RpcPeerOptions['onError'];
  /** One per method this end serves, registered at setup. */
  private readonly handlers = new Map<string, RpcHandler>();
  private admission: ((method: string) => void) | undefined;
  /** One per channel this end listens on, registered at setup. */
  private readonly notifyHandlers = new Map<string, RpcNotifyHandler>();
  private nextRequestId = 0;
  /** Our requests awaiting an answer: at most `inFlightMax`, each leaving at its answer or timeout. */
  private readonly pending = new Map<number, PendingRequest>();
  /** The peer's requests being served: at most `inFlightMax` (more are refused OVERLOADED). */
  private readonly served = new Map<number, ServedRequest>();
  /** Streamed answers to our requests still being read: each leaves at its end, error or cancel. */
  private readonly incomingStreams = new Map<number, IncomingByteStream>();
  /**
   * Incoming streams whose consumer is full (a subset of `incomingStreams`); the connection reads
   * again once this is empty.
   */
  private readonly streamsHoldingConnection = new Set<number>();

  constructor(connection: FramedConnection, options: RpcPeerOptions = {}) {
    this.connection = connection;
    this.context = { peerName: connection.peerName, peerPublicKey: connection.peerPublicKey };
    this.requestTimeoutMs = options.requestTimeoutMs ?? defaultRequestTimeoutMs;
    this.inFlightMax = options.inFlightMax ?? defaultInFlightMax;
    this.onError = options.onError;
    if (!(this.requestTimeoutMs > 0) || !Number.isSafeInteger(this.inFlightMax) || this.inFlightMax < 1) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        'requestTimeoutMs must be positive and inFlightMax a positive integer',
      );
    }
    connection.onClose((error) => this.connectionClosed(error));
    // Reading starts after the current task, so handlers registered right after construction see
    // even the frames that arrived together with the connection.
    queueMicrotask(() => connection.onFrame((frame) => this.receive(frame)));
  }

  get peerName(): string {
    return this.connection.peerName;
  }

  get closed(): boolean {
    return this.connection.closed;
  }

  /** Closes the underlying connection; everything in flight fails with CONNECTION_CLOSED. */
  close(): void {
    this.connection.close();
  }

  /** Runs `handler` once the underlying connection has closed (for any reason). */
  onClose(handler: (error?: Error) => void): void {
    this.connection.onClose(handler);
  }

  /**
   * Serves `method`. A LedgerbusError thrown by `handler` reaches the caller with its code,
   * message and retriable flag; any other error reaches it as INTERNAL, and `onError` gets the
   * original. Registering a method twice is a bug.
   */
  handle(method: string, handler: RpcHandler): void {
    assert(!this.handlers.has(method), `method ${method} has one handler`);
    this.handlers.set(method, handler);
  }

  /**
   * Runs `check` before every incoming request, before its handler is even looked up; a
   * LedgerbusError it throws is the request's answer (a quota, say, refuses cheaply this way).
   */
  admit(check: (method: string) => void): void {
    assert(this.admission === undefined, 'one admission check per peer');
    this.admission = check;
  }

  /** Receives notifications sent on `channel`; notifications on channels nobody listens to are dropped. */
  onNotify(channel: string, handler: RpcNotifyHandler): void {
    assert(!this.notifyHandlers.has(channel), `channel ${channel} has one handler`);
    this.notifyHandlers.set(channel, handler);
  }

  /**
   * Sends a one-way message on `channel`. Returns false when the connection's write buffer is full
   * (the message is still sent). Throws CONNECTION_CLOSED once closed.
   */
  notify(channel: string, body: CborValue): boolean {
    return this.send({ type: 'notify', channel, body });
  }

  /**
   * Calls `method` and resolves with its answer. Rejects with the handler's error code, or
   * UNKNOWN_METHOD, TIMEOUT (retriable), CONNECTION_CLOSED (retriable) or OVERLOADED (retriable,
   * when `inFlightMax` requests are already waiting on either side).
   */
  request(method: string, body: CborValue): Promise<CborValue> {
    return this.call(method, body, false) as Promise<CborValue>;
  }

  /**
   * Calls a method whose handler answers with `rpcStream`, and resolves with the head once it
   * arrives. The stream ends when the sender's source ends; if the source fails, or the connection
   * closes, it is destroyed with a LedgerbusError carrying the code (bytes not yet read are dropped,
   * as by any destroyed stream: a failed stream is incomplete anyway). Destroying it early tells the
   * sender to stop. The timeout applies to the head only: the consumer sets the pace afterwards.
   */
  requestStream(method: string, body: CborValue): Promise<RpcStreamResponse> {
    return this.call(method, body, true) as Promise<RpcStreamResponse>;
  }

  private call(
    method: string,
    body: CborValue,
    expectsStream: boolean,
  ): Promise<CborValue | RpcStreamResponse> {
    if (this.connection.closed) return Promise.reject(this.closedError());
    if (this.pending.size >= this.inFlightMax) {
      return Promise.reject(
        new LedgerbusError(
          ErrorCode.Overloaded,
          `${this.inFlightMax} requests to ${this.peerName} are already in flight`,
          { retriable: true },
        ),
      );
    }
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      try {
        this.send({ type: 'request', id, method, body, stream: expectsStream });
      } catch (error) {
        reject(error);
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.sendQuietly({ type: 'cancel', id });
        reject(
          new LedgerbusError(
            ErrorCode.Timeout,
            `${method} on ${this.peerName} did not answer within ${this.requestTimeoutMs} ms`,
            { retriable: true },
          ),
        );
      }, this.requestTimeoutMs);
      this.pending.set(id, { method, expectsStream, timer, resolve, reject });
    });
  }

  private receive(frame: Buffer): void {
    // Bulk bytes skip CBOR: decoding (and the canonical re-encoding check) would copy every payload
    // byte several times per hop. No CBOR message starts with 0xFF (a lone "break"), so the tag is
    // unambiguous.
    if (frame[0] === binaryStreamDataTag) {
      if (frame.length < binaryStreamDataHeaderBytes) {
        this.protocolViolation(
          new LedgerbusError(ErrorCode.MalformedEncoding, 'truncated stream-data frame'),
        );
        return;
      }
      this.streamData(frame.readUIntBE(1, 6), frame.subarray(binaryStreamDataHeaderBytes));
      return;
    }
    let message: RpcMessage;
    try {
      message = decodeRpcMessage(frame, this.connection.frameBytesMax);
    } catch (error) {
      this.protocolViolation(error as LedgerbusError);
      return;
    }
    switch (message.type) {
      case 'request':
        this.serve(message);
        return;
      case 'response':
        this.settle(message.id, (request) => {
          if (request.expectsStream) {
            request.reject(this.notAStream(request.method, 'answered with a value, not a stream'));
          } else {
            request.resolve(message.body);
          }
        });
        return;
      case 'stream-head':
        this.settle(message.id, (request) => {
          if (!request.expectsStream) {
            this.sendQuietly({ type: 'cancel', id: message.id });
            request.reject(this.notAStream(request.method, 'answered with a stream; use requestStream'));
          } else {
            request.resolve({ head: message.head, stream: this.openIncomingStream(message.id) });
          }
        });
        return;
      case 'stream-data':
        this.streamData(message.id, message.bytes);
        return;
      case 'stream-end':
        this.streamEnd(message.id);
        return;
      case 'error':
        this.remoteError(message);
        return;
      case 'notify':
        this.notified(message.channel, message.body);
        return;
      case 'cancel':
        this.cancelServed(message.id);
        return;
    }
  }

  // ---- serving the peer's requests ----

  private serve(request: Extract<RpcMessage, { type: 'request' }>): void {
    const { id, method } = request;
    if (this.served.has(id)) {
      this.protocolViolation(new LedgerbusError(ErrorCode.Replay, `peer reused request id ${id}`));
      return;
    }
    if (this.served.size >= this.inFlightMax) {
      const error = new LedgerbusError(
        ErrorCode.Overloaded,
        `${this.inFlightMax} requests already in flight`,
        {
          retriable: true,
        },
      );
      this.sendError(id, error);
      return;
    }
    if (this.admission !== undefined) {
      try {
        this.admission(method);
      } catch (error) {
        this.sendError(id, this.wireError(error, method));
        return;
      }
    }
    const handler = this.handlers.get(method);
    if (handler === undefined) {
      this.sendError(id, new LedgerbusError(ErrorCode.UnknownMethod, `unknown method ${method}`));
      return;
    }
    const served: ServedRequest = { cancelled: false, source: undefined };
    this.served.set(id, served);
    void this.runHandler(id, request, handler, served);
  }

  private async runHandler(
    id: number,
    request: Extract<RpcMessage, { type: 'request' }>,
    handler: RpcHandler,
    served: ServedRequest,
  ): Promise<void> {
    let result: CborValue | RpcStreamReply;
    try {
      result = await handler(request.body, this.context);
    } catch (error) {
      this.finishServed(id, served);
      if (!served.cancelled) this.sendError(id, this.wireError(error, request.method));
      return;
    }
    if (served.cancelled) {
      if (result instanceof RpcStreamReply) result.source.destroy();
      this.finishServed(id, served);
      return;
    }
    if (result instanceof RpcStreamReply) {
      if (!request.stream) {
        result.source.destroy();
        this.finishServed(id, served);
        this.sendError(id, this.notAStream(request.method, 'answers with a stream; use requestStream'));
        return;
      }
      served.source = result.source;
      if (this.sendAnswer(id, { type: 'stream-head', id, head: result.head }, request.method)) {
        await this.sendStream(id, served, result.source, request.method);
      } else {
        result.source.destroy();
      }
      this.finishServed(id, served);
      return;
    }
    this.finishServed(id, served);
    if (request.stream) {
      this.sendError(id, this.notAStream(request.method, 'answers with a value; use request'));
      return;
    }
    this.sendAnswer(id, { type: 'response', id, body: result }, request.method);
  }

  /**
   * Sends `source` as data frames of at most 256 KiB, reading the next chunk only once the
   * connection has room, so the source is pulled no faster than the peer consumes.
   */
  private async sendStream(
    id: number,
    served: ServedRequest,
    source: Readable,
    method: string,
  ): Promise<void> {
    // A connection configured with small frames gets smaller pieces rather than oversize frames.
    const pieceBytesMax = Math.max(
      1,
      Math.min(streamChunkBytesMax, this.connection.frameBytesMax - streamDataOverheadBytes),
    );
    try {
      for await (const chunk of source) {
        if (served.cancelled) return;
        const bytes = chunkBytes(chunk);
        for (let offset = 0; offset < bytes.length; offset += pieceBytesMax) {
          const piece = bytes.subarray(offset, offset + pieceBytesMax);
          if (!this.connection.send(encodeBinaryStreamData(id, piece))) await this.connection.drained();
          if (served.cancelled) return;
        }
      }
      if (!served.cancelled) this.send({ type: 'stream-end', id });
    } catch (error) {
      // Cancelled or disconnected: the destroyed source or the closed connection is why we are here.
      if (served.cancelled || this.connection.closed) return;
      this.sendQuietly(this.errorMessage(id, this.wireError(error, method)));
    } finally {
      source.destroy();
    }
  }

  private cancelServed(id: number): void {
    const served = this.served.get(id);
    if (served === undefined) return; // Already finished: the cancel crossed our answer.
    served.cancelled = true;
    served.source?.destroy();
  }

  private finishServed(id: number, served: ServedRequest): void {
    if (this.served.get(id) === served) this.served.delete(id);
  }

  /** Sends an answer, turning a failure to send it (say, too large) into an error answer. */
  private sendAnswer(id: number, message: RpcMessage, method: string): boolean {
    try {
      this.send(message);
      return true;
    } catch (error) {
      if (!this.connection.closed) this.sendError(id, this.wireError(error, method, true));
      return false;
    }
  }

  private sendError(id: number, error: LedgerbusError): void {
    this.sendQuietly(this.errorMessage(id, error));
  }

  private errorMessage(id: number, error: LedgerbusError): RpcMessage {
    return {
      type: 'error',
      id,
      code: error.code,
      message: error.message.slice(0, errorMessageLengthMax),
      retriable: error.retriable,
    };
  }

  /**
   * What the caller is told about `error`. A LedgerbusError is a deliberate answer and goes as is;
   * anything else is a bug or an unexpected failure on our side: the caller gets INTERNAL without
   * details (they may be sensitive) and onError gets the original. A result that cannot be encoded
   * is our bug too, except one that is merely too large (`ownAnswer`).
   */
  private wireError(error: unknown, method: string, ownAnswer = false): LedgerbusError {
    if (isLedgerbusError(error) && (!ownAnswer || error.code === ErrorCode.Oversize)) return error;
    this.onError?.(error, { method });
    return new LedgerbusError(
      ErrorCode.Internal,
      `${method} failed on an internal error; see the serving node's log`,
    );
  }

  // ---- our requests' answers and streams ----

  private settle(id: number, settle: (request: PendingRequest) => void): void {
    const request = this.pending.get(id);
    // Unknown ids are answers to requests that already timed out.
    if (request === undefined) return;
    this.pending.delete(id);
    clearTimeout(request.timer);
    settle(request);
  }

  private remoteError(message: Extract<RpcMessage, { type: 'error' }>): void {
    const known = knownErrorCodes.has(message.code);
    const error = new LedgerbusError(
      known ? (message.code as ErrorCode) : ErrorCode.RemoteError,
      known ? message.message : `${message.code}: ${message.message}`,
      { retriable: message.retriable },
    );
    const stream = this.incomingStreams.get(message.id);
    if (stream !== undefined) {
      this.forgetIncomingStream(message.id);
      stream.destroy(error);
      return;
    }
    this.settle(message.id, (request) => request.reject(error));
  }

  private openIncomingStream(id: number): IncomingByteStream {
    const stream = new IncomingByteStream({
      wantMore: () => this.releaseConnection(id),
      abandoned: () => {
        // Still registered means the sender has not finished: tell it to stop reading its source.
        if (this.incomingStreams.get(id) !== stream) return;
        this.forgetIncomingStream(id);
        this.sendQuietly({ type: 'cancel', id });
      },
    });
    this.incomingStreams.set(id, stream);
    return stream;
  }

  private streamData(id: number, bytes: Uint8Array): void {
    const stream = this.incomingStreams.get(id);
    if (stream === undefined) return; // Sent before our cancel reached the sender.
    if (!stream.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) {
      this.streamsHoldingConnection.add(id);
      this.connection.pause();
    }
  }

  private streamEnd(id: number): void {
    const stream = this.incomingStreams.get(id);
    if (stream === undefined) return;
    this.forgetIncomingStream(id);
    stream.push(null);
  }

  private forgetIncomingStream(id: number): void {
    this.incomingStreams.delete(id);
    this.releaseConnection(id);
  }

  private releaseConnection(id: number): void {
    if (this.streamsHoldingConnection.delete(id) && this.streamsHoldingConnection.size === 0) {
      if (!this.connection.closed) this.connection.resume();
    }
  }

  // ---- notifications, errors, closing ----

  private notified(channel: string, body: CborValue): void {
    const handler = this.notifyHandlers.get(channel);
    if (handler === undefined) return;
    try {
      handler(body, this.context);
    } catch (error) {
      this.onError?.(error, { channel });
    }
  }

  private protocolViolation(error: LedgerbusError): void {
    this.onError?.(error, {});
    this.connection.close(error);
  }

  private connectionClosed(cause: Error | undefined): void {
    const error = this.closedError(cause);
    const requests = [...this.pending.values()];
    this.pending.clear();
    for (const request of requests) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    const streams = [...this.incomingStreams.values()];
    this.incomingStreams.clear();
    this.streamsHoldingConnection.clear();
    for (const stream of streams) stream.destroy(error);
    for (const served of this.served.values()) {
      served.cancelled = true;
      served.source?.destroy();
    }
    this.served.clear();
  }

  private closedError(cause?: Error): LedgerbusError {
    const reason = cause === undefined ? '' : `: ${cause.message}`;
    return new LedgerbusError(ErrorCode.ConnectionClosed, `connection to ${this.peerName} closed${reason}`, {
      retriable: true,
      cause,
    });
  }

  private notAStream(method: string, problem: string): LedgerbusError {
    return new LedgerbusError(ErrorCode.SchemaMismatch, `${method} ${problem}`);
  }

  private send(message: RpcMessage): boolean {
    return this.connection.send(encodeRpcMessage(message));
  }

  /** For messages whose loss the peer will notice anyway (the connection closing tells it more). */
  private sendQuietly(message: RpcMessage): void {
    if (this.connection.closed) return;
    try {
      this.send(message);
    } catch (error) {
      this.onError?.(error, {});
    }
  }
}

function chunkBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new LedgerbusError(ErrorCode.SchemaMismatch, 'a streamed source must yield bytes or strings');
}
