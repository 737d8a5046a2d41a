/**
 * HTTP to the connector's local API with Node's global fetch: authentication, timeouts, and turning
 * every failure into a `LedgerbusError` with the server's code and retriable flag, so applications
 * handle one error type whether the connector refused or the network failed.
 */
import { ErrorCode, LedgerbusError } from '../errors.js';

export interface TransportOptions {
  readonly connector: string | URL;
  readonly token: string;
  /** Limit for requests that do not stream a body (long-polls add their wait to it). */
  readonly requestTimeoutMs: number;
}

export type Query = Readonly<Record<string, string | number | undefined>>;

export interface RequestOptions {
  readonly query?: Query;
  /** Serialized as JSON with `Content-Type: application/json`. */
  readonly json?: unknown;
  /** A raw body (streamed uploads); takes precedence over `json`. */
  readonly body?: RequestInit['body'];
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Overrides the transport's limit; `null` for none (streams whose length is unknown in time). */
  readonly timeoutMs?: number | null;
}

const knownCodes = new Set<string>(Object.values(ErrorCode));

export class Transport {
  readonly base: URL;
  private readonly authorization: string;

  constructor(private readonly options: TransportOptions) {
    const base = new URL(options.connector);
    // Relative paths resolve below a base path only when it ends in '/'.
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base;
    this.authorization = `Bearer ${options.token}`;
  }

  get token(): string {
    return this.options.token;
  }

  url(path: string, query: Query = {}): URL {
    const url = new URL(path.replace(/^\//, ''), this.base);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url;
  }

  /**
   * Sends a request and returns the 2xx response, for bodies read as streams; otherwise throws the
   * server's error. The timeout and the caller's signal cover the response headers only.
   */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    return this.exchange(method, path, options, async (response) => response);
  }

  /** A request whose JSON answer is read within the timeout. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return this.exchange(method, path, options, async (response) => (await response.json()) as T);
  }

  /** A request whose whole body is read into memory within the timeout (if any). */
  async bytes(method: string, path: string, options: RequestOptions = {}): Promise<Buffer> {
    return this.exchange(method, path, options, async (response) =>
      Buffer.from(await response.arrayBuffer()),
    );
  }

  private async exchange<T>(
    method: string,
    path: string,
    options: RequestOptions,
    read: (response: Response) => Promise<T>,
  ): Promise<T> {
    const timeoutMs = options.timeoutMs === undefined ? this.options.requestTimeoutMs : options.timeoutMs;
    // One controller per request, tied to the caller's signal by a listener removed at the end:
    // AbortSignal.any() on Node 20 leaks when one of its inputs lives long (a consumer's stop signal).
    const controller = new AbortController();
    const callerSignal = options.signal;
    const onCallerAbort = (): void => controller.abort(callerSignal?.reason);
    if (callerSignal?.aborted === true) onCallerAbort();
    else callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
    const timer =
      timeoutMs === null
        ? undefined
        : setTimeout(
            () => controller.abort(new DOMException('the request timed out', 'TimeoutError')),
            timeoutMs,
          );
    const headers: Record<string, string> = { authorization: this.authorization, ...options.headers };
    let body: RequestInit['body'] = options.body;
    if (body === undefined && options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    const streamed = typeof body === 'object' && body !== null && 'getReader' in body;
    try {
      const response = await fetch(this.url(path, options.query), {
        method,
        headers,
        signal: controller.signal,
        ...(body === undefined ? {} : { body }),
        // Required by fetch for a streamed request body: the response may start before it ends.
        // redirect 'error' and window null keep undici from cloning (teeing) a streamed body,
        // whose unread branch would otherwise hold every chunk until the request ends.
        ...(streamed ? { duplex: 'half' as const, redirect: 'error' as const, window: null } : {}),
      });
      if (!response.ok) throw await errorFromResponse(response);
      return await read(response);
    } catch (error) {
      throw this.failure(error, method, path, callerSignal);
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    }
  }

  /** A fetch failure as a LedgerbusError; the caller's own abort passes through untouched. */
  private failure(error: unknown, method: string, path: string, callerSignal?: AbortSignal): unknown {
    if (callerSignal?.aborted === true) return callerSignal.reason;
    if (error instanceof LedgerbusError) return error;
    const name = error instanceof Error ? error.name : '';
    if (name === 'TimeoutError') {
      return new LedgerbusError(
        ErrorCode.Timeout,
        `${method} ${path}: the connector did not answer in time`,
        {
          retriable: true,
          cause: error,
        },
      );
    }
    // fetch reports "fetch failed" and hides the reason (ECONNREFUSED, reset...) in `cause`.
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new LedgerbusError(
      ErrorCode.ConnectionClosed,
      `${method} ${path}: cannot reach the connector at ${this.base.origin}: ${reason}`,
      { retriable: true, cause: error },
    );
  }
}

/**
 * The `{ error: { code, message, retriable, reason? } }` body of a non-2xx response as a
 * LedgerbusError; a refusal's `reason` code becomes its `details.reason`.
 */
export async function errorFromResponse(response: Response): Promise<LedgerbusError> {
  let text = '';
  try {
    text = await response.text();
  } catch {
    // The body is only the error's detail; the status still tells what happened.
  }
  let detail: { code?: unknown; message?: unknown; retriable?: unknown; reason?: unknown } = {};
  try {
    const parsed = JSON.parse(text) as { error?: typeof detail };
    if (typeof parsed.error === 'object' && parsed.error !== null) detail = parsed.error;
  } catch {
    // Not our JSON (a proxy's HTML page, Fastify's 503 while closing): fall back on the status.
  }
  const message =
    typeof detail.message === 'string' ? detail.message : `HTTP ${response.status} ${response.statusText}`;
  const retriable =
    typeof detail.retriable === 'boolean'
      ? detail.retriable
      : response.status >= 500 || response.status === 429;
  if (typeof detail.code === 'string') {
    if (knownCodes.has(detail.code)) {
      const details = typeof detail.reason === 'string' ? { details: { reason: detail.reason } } : {};
      return new LedgerbusError(detail.code as ErrorCode, message, { retriable, ...details });
    }
    return new LedgerbusError(ErrorCode.RemoteError, `${detail.code}: ${message}`, { retriable });
  }
  return new LedgerbusError(codeForStatus(response.status), message, { retriable });
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return ErrorCode.Unauthorized;
  if (status === 403) return ErrorCode.NotRecipient;
  if (status === 404) return ErrorCode.MessageNotFound;
  if (status === 429) return ErrorCode.Overloaded;
  if (status === 503) return ErrorCode.ConnectionClosed;
  if (status >= 400 && status < 500) return ErrorCode.SchemaMismatch;
  return ErrorCode.RemoteError;
}
