/**
 * Calling and serving the methods of a method table (see client-methods.ts) over an RpcPeer: the
 * caller's request is typed, the answer parsed by its schema; the handler's request parsed by its
 * schema, its answer typed. A shape that does not fit is SCHEMA_MISMATCH where it is received, its
 * message naming the method and the field.
 */
import type { CborValue } from '../codec/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import type { RpcContext, RpcPeer, RpcStreamResponse } from '../net/index.js';
import type { RpcStreamReply } from '../net/index.js';
import type {
  HeadOf,
  RequestOf,
  ResponseOf,
  StreamMethod,
  StreamNames,
  UnaryMethod,
  UnaryNames,
} from './client-methods.js';

/**
 * Parses `value` with `schema`, reporting a mismatch as SCHEMA_MISMATCH prefixed with `what`
 * (e.g. "poll answer"). Other errors pass through.
 */
export function parseAs<T>(
  schema: { parse(value: unknown, path: string): T },
  value: unknown,
  what: string,
): T {
  try {
    return schema.parse(value, '');
  } catch (error) {
    if (isLedgerbusError(error, ErrorCode.SchemaMismatch)) {
      throw new LedgerbusError(ErrorCode.SchemaMismatch, `${what}: ${error.message}`);
    }
    throw error;
  }
}

/** The typed calls of `table` on `peer` (or on whatever peer `peerFor` gives, each call). */
export class TypedClient<
  Table extends Record<string, UnaryMethod<unknown, unknown> | StreamMethod<unknown, unknown>>,
> {
  constructor(
    private readonly table: Table,
    private readonly peerFor: () => RpcPeer | Promise<RpcPeer>,
  ) {}

  /** Sends `request` as `method` and returns its answer, parsed (SCHEMA_MISMATCH if it does not fit). */
  async call<M extends UnaryNames<Table> & string>(
    method: M,
    request: RequestOf<Table[M]>,
  ): Promise<ResponseOf<Table[M]>> {
    const definition = this.table[method] as UnaryMethod<unknown, ResponseOf<Table[M]>>;
    const answer = await (await this.peerFor()).request(method, request as CborValue);
    return parseAs(definition.response, answer, `${method} answer`);
  }

  /** Asks for the stream `method`; its head is parsed, the bytes are the caller's to read. */
  async stream<M extends StreamNames<Table> & string>(
    method: M,
    request: RequestOf<Table[M]>,
  ): Promise<{ head: HeadOf<Table[M]>; stream: RpcStreamResponse['stream'] }> {
    const definition = this.table[method] as StreamMethod<unknown, HeadOf<Table[M]>>;
    const { head, stream } = await (await this.peerFor()).requestStream(method, request as CborValue);
    try {
      return { head: parseAs(definition.head, head, `${method} head`), stream };
    } catch (error) {
      stream.destroy();
      throw error;
    }
  }
}

/** Serves `method` of `table` on `peer`: the handler gets the request parsed, and answers typed. */
export function handleUnary<Table, M extends UnaryNames<Table> & string>(
  peer: RpcPeer,
  table: Table,
  method: M,
  handler: (
    request: RequestOf<Table[M]>,
    context: RpcContext,
  ) => ResponseOf<Table[M]> | Promise<ResponseOf<Table[M]>>,
): void {
  const definition = table[method] as UnaryMethod<RequestOf<Table[M]>, unknown>;
  peer.handle(method, (body, context) => {
    const request = parseAs(definition.request, body, `${method} request`);
    return handler(request, context) as CborValue | Promise<CborValue>;
  });
}

/** Serves the stream `method` of `table` on `peer`: the handler gets the request parsed. */
export function handleStream<Table, M extends StreamNames<Table> & string>(
  peer: RpcPeer,
  table: Table,
  method: M,
  handler: (request: RequestOf<Table[M]>, context: RpcContext) => RpcStreamReply | Promise<RpcStreamReply>,
): void {
  const definition = table[method] as StreamMethod<RequestOf<Table[M]>, unknown>;
  peer.handle(method, (body, context) =>
    handler(parseAs(definition.request, body, `${method} request`), context),
  );
}
