/**
 * The connector's local REST + WebSocket API: what an organization's applications (through the
 * `ledgerbus/client` SDK, curl, or any HTTP client) call. It is a thin transport over `ConnectorApi`
 * and `ConnectorAdminApi`:
 * authentication, request validation, error mapping and streaming live here; no message logic does.
 */
import type { ConnectorAlerts } from './alert-follower.js';
import { registerAlertRoutes } from './alert-routes.js';
import type { AuditApi } from './escrow/audit-types.js';
import { registerAuditRoutes } from './escrow/http-routes.js';
import type { CatalogClient } from './datashare/catalog-client.js';
import { registerCatalogRoutes } from './datashare/catalog-routes.js';
import { datasetUploadRoute, registerDatasetRoutes } from './datashare/dataset-routes.js';
import { registerJobRoutes } from './datashare/job-routes.js';
import type { DatasetsApi, JobsApi } from './datashare/jobs-api.js';
import { isConsolePath, isConsoleRoute, registerConsole } from './console/index.js';
import type { ConsoleOptions, SentMessagesSource } from './console/index.js';
import { datasetBodyBytesMax } from './openapi/datashare-schemas.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { fastify } from 'fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { ErrorCode, LedgerbusError, errorInfo, isLedgerbusError } from '../errors.js';
import type {
  AdminActionInput,
  ConnectorAdminApi,
  ConnectorApi,
  ConnectorEvent,
  MessageCandidate,
  OutgoingMessage,
  Readiness,
  ReceiptSource,
  ReceivedMessage,
} from './api-types.js';
import type { MetricsExposition } from './connector-metrics.js';
import { AmbiguousMessageIdError } from './message-location.js';
import { ByteLimit } from './byte-limit.js';
import { servableContentType } from './media-type.js';
import {
  batchBodyBytesMax,
  buildOpenApiDocument,
  jsonBodyBytesMax,
  receivedLimitDefault,
  receivedWaitMsMax,
  requestSchemas,
} from './openapi.js';

/** The subset of a pino logger this server uses (a pino `Logger` satisfies it). */
export interface HttpApiLogger {
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

/**
 * What the server fronts. The administration half is optional in the type only because the
 * in-memory connector of the HTTP and SDK tests predates it; a connector without it answers the
 * admin routes with UNKNOWN_METHOD.
 */
export type HttpApiConnector = ConnectorApi &
  Partial<ConnectorAdminApi> & {
    latestSequence?(): number;
    /** `GET /metrics`; a connector without it answers UNKNOWN_METHOD there. */
    scrapeMetrics?(): Promise<MetricsExposition>;
    /** `GET /readyz`; a connector without it (the in-memory one) has nothing to wait for: always ready. */
    readiness?(): Promise<Readiness>;
    readonly audits?: AuditApi;
    readonly catalog?: CatalogClient;
    readonly alerts?: ConnectorAlerts;
    readonly datasets?: DatasetsApi;
    readonly jobs?: JobsApi;
    /** The messages this organization sent, for the web console; without it the console cannot list them. */
    readonly sentMessages?: SentMessagesSource;
  };

export interface HttpApiOptions {
  /** The connector; `latestSequence` (optional) lets consumers start "from now" without a scan. */
  readonly api: HttpApiConnector;
  readonly host: string;
  /** 0 picks a free port (see the result's `port`). */
  readonly port: number;
  /** The bearer token applications present. */
  readonly token: string;
  readonly logger?: HttpApiLogger;
  /** Largest streamed message body accepted by `POST /v1/topics/:topic/messages`; unlimited when absent. */
  readonly bodyBytesMax?: number;
  /** Largest dataset `POST /v1/datasets` accepts (streamed); default 2 GiB. */
  readonly datasetBytesMax?: number;
  /** On close, how long in-flight requests (long-polls, uploads) may finish before their sockets are cut. */
  readonly closeGraceMs?: number;
  /** How long a request with a JSON body may take to send all of it; default 30 s. */
  readonly bodyReceiveTimeoutMs?: number;
  /**
   * How long a streamed upload (`POST /v1/topics/:topic/messages`) may go without sending a byte;
   * default 60 s. There is no limit on its total time: a large payload legitimately takes long.
   */
  readonly uploadIdleTimeoutMs?: number;
  /** The web console at /console/ (console/index.ts): its session limits and live-update interval. */
  readonly console?: ConsoleOptions;
}

export interface HttpApiRoute {
  readonly method: string;
  /** Fastify form, e.g. `/v1/topics/:topic/messages`. */
  readonly path: string;
}

export interface HttpApiServer {
  readonly url: string;
  readonly port: number;
  /**
   * Every REST route the server registered (used to check the OpenAPI document covers them); the web
   * console's pages under /console/ are not part of the API and are not listed.
   */
  readonly routes: readonly HttpApiRoute[];
  close(): Promise<void>;
}

export interface WireError {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly retriable: boolean;
  /** ADMIN_REJECTED / MESSAGE_REJECTED: the contract's or registry's reason code (`details.reason`). */
  readonly reason?: string;
  /** AMBIGUOUS_MESSAGE_ID: the messages the id could mean, each with the path that names it. */
  readonly candidates?: readonly (MessageCandidate & { readonly path: string })[];
}

/** The REST status of `code`, from the one error table (errors.ts). */
export function httpStatusOf(code: ErrorCode): number {
  return errorInfo(code).httpStatus;
}

/**
 * The JSON error an application sees for `error`. Only LedgerbusErrors (expected failures with a
 * stable code) and Fastify's own request errors pass their message through; anything else may carry
 * internals (paths, SQL, stack-derived text), so it becomes a generic INTERNAL.
 */
export function toWireError(error: unknown): WireError {
  if (isLedgerbusError(error)) {
    return {
      status: httpStatusOf(error.code),
      code: error.code,
      message: error.message,
      retriable: error.retriable,
      ...(error.details?.reason === undefined ? {} : { reason: error.details.reason }),
      ...(error instanceof AmbiguousMessageIdError
        ? {
            candidates: error.candidates.map((candidate) => ({
              ...candidate,
              path: receivedPath(candidate.topic, candidate.partition, candidate.id),
            })),
          }
        : {}),
    };
  }
  const fastifyCode = fastifyErrorCode(error);
  if (fastifyCode !== undefined && error instanceof Error) {
    const code =
      fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? ErrorCode.Oversize
        : fastifyCode === 'FST_ERR_CTP_INVALID_JSON_BODY' || fastifyCode === 'FST_ERR_CTP_EMPTY_JSON_BODY'
          ? ErrorCode.MalformedEncoding
          : ErrorCode.SchemaMismatch;
    return { status: httpStatusOf(code), code, message: error.message, retriable: false };
  }
  return {
    status: 500,
    code: ErrorCode.Internal,
    message: 'internal error; the details are in the connector log',
    retriable: false,
  };
}

/** The `FST_*` code of a client-side (4xx) Fastify error, e.g. validation or body parsing. */
function fastifyErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  if (typeof statusCode !== 'number' || statusCode < 400 || statusCode >= 500) return undefined;
  return typeof code === 'string' && code.startsWith('FST_') ? code : 'FST_ERR_VALIDATION';
}

// /readyz is public like /healthz, for load balancers and orchestrators that hold no token; /metrics
// is not: its labels name topics and consumer groups, and the API may face a network.
const publicRoutes = new Set(['/healthz', '/readyz', '/v1/openapi.json']);
/** The one route whose message body is streamed (to encryption and storage) rather than parsed. */
const uploadRoute = '/v1/topics/:topic/messages';
/** Routes whose bodies stream for as long as they keep sending: a message, a dataset. */
const streamedRoutes = new Set([uploadRoute, datasetUploadRoute]);
const eventsRoute = '/v1/events';
/** A client that reads events slower than this much backlog is cut off rather than buffered for. */
const eventsBufferedBytesMax = 8 * 1024 * 1024;
/** Pings find dead event sockets (a laptop that slept, a dropped NAT entry) and free their listeners. */
const eventsPingIntervalMs = 30_000;
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const noopLogger: HttpApiLogger = { debug() {}, info() {}, warn() {}, error() {} };

export async function startHttpApi(options: HttpApiOptions): Promise<HttpApiServer> {
  const { api, token } = options;
  const logger = options.logger ?? noopLogger;
  if (token.length === 0) throw new LedgerbusError(ErrorCode.BadConfig, 'api.token: must not be empty');
  if (
    options.bodyBytesMax !== undefined &&
    !(Number.isSafeInteger(options.bodyBytesMax) && options.bodyBytesMax > 0)
  ) {
    throw new LedgerbusError(ErrorCode.BadConfig, 'bodyBytesMax: expected a positive integer');
  }
  const bodyReceiveTimeoutMs = positiveOption(options.bodyReceiveTimeoutMs, 30_000, 'bodyReceiveTimeoutMs');
  const uploadIdleTimeoutMs = positiveOption(options.uploadIdleTimeoutMs, 60_000, 'uploadIdleTimeoutMs');
  // Compare digests, not the strings: equal lengths make timingSafeEqual usable and hide the token length.
  const expectedDigest = createHash('sha256').update(token).digest();
  const tokenMatches = (presented: string): boolean =>
    timingSafeEqual(createHash('sha256').update(presented).digest(), expectedDigest);

  const app = fastify({
    logger: false,
    // HEAD twins of GET routes would be undocumented surface with no use here.
    exposeHeadRoutes: false,
    // Uploads of large payloads legitimately take long, so Node's whole-request timeout (which
    // cannot differ per route) is off; the hook below bounds bodies per route instead.
    requestTimeout: 0,
    // JSON bodies are small (an admin action, a sequence); the batch route raises its own limit.
    bodyLimit: jsonBodyBytesMax,
    // Message ids and group ids are the application's own; the router's default cut-off is 100 chars.
    routerOptions: { maxParamLength: 1024 },
    // Reject unknown fields instead of silently dropping them: a typo should not lose data. The
    // discriminator lets the admin body's `kind` pick its schema, so errors name the bad field.
    ajv: { customOptions: { removeAdditional: false, discriminator: true } },
  });

  // First, so that its onRequest hook (which marks upgrade requests, letting it destroy the socket of
  // a refused one) runs before authentication can refuse.
  await app.register(fastifyWebsocket, { options: { maxPayload: 64 * 1024 } });

  // A request that never finishes its body must not hold a connection (and what was read of it)
  // forever: a JSON body must arrive whole within bodyReceiveTimeoutMs, a streamed upload may not
  // pause longer than uploadIdleTimeoutMs. Requests without a body (GETs, WebSocket upgrades) are
  // left alone: a long-poll or an event stream is supposed to last.
  app.addHook('onRequest', async (request) => {
    const raw = request.raw;
    const hasBody =
      raw.headers['transfer-encoding'] !== undefined ||
      (raw.headers['content-length'] !== undefined && raw.headers['content-length'] !== '0');
    if (!hasBody || raw.complete) return;
    const cut = (): void => {
      if (!raw.complete)
        raw.destroy(new LedgerbusError(ErrorCode.Timeout, 'request body timed out', { retriable: false }));
    };
    if (streamedRoutes.has(request.routeOptions.url ?? '')) {
      // An idle timer on the socket: sending bytes resets it. Cleared once the body is read, or the
      // socket would be cut while the ledger commits the message.
      raw.setTimeout(uploadIdleTimeoutMs, cut);
      const clear = (): void => {
        raw.socket?.setTimeout(0);
      };
      raw.once('end', clear);
      raw.once('close', clear);
      return;
    }
    const timer = setTimeout(cut, bodyReceiveTimeoutMs);
    timer.unref();
    const clear = (): void => clearTimeout(timer);
    raw.once('end', clear);
    raw.once('close', clear);
  });

  const routes: HttpApiRoute[] = [];
  app.addHook('onRoute', (route) => {
    if (isConsoleRoute(route.url)) return;
    for (const method of [route.method].flat()) routes.push({ method, path: route.url });
  });

  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route !== undefined && publicRoutes.has(route)) return;
    // The console authenticates with its own session (console/index.ts), never with the bearer token;
    // an unmatched path under /console/ gets the console's not-found page, behind that session too.
    if (route === undefined ? isConsolePath(request.url) : isConsoleRoute(route)) return;
    const presented =
      bearerToken(request.headers.authorization) ??
      (route === eventsRoute ? queryToken(request.query) : undefined);
    if (presented === undefined) {
      throw new LedgerbusError(
        ErrorCode.Unauthorized,
        'missing API token: send "Authorization: Bearer <token>"',
      );
    }
    if (!tokenMatches(presented)) throw new LedgerbusError(ErrorCode.Unauthorized, 'wrong API token');
  });

  app.setErrorHandler((error: unknown, request, reply) => {
    const wire = toWireError(error);
    if (wire.code === ErrorCode.Internal && !isLedgerbusError(error)) {
      // The URL is left out on purpose: an events request may carry the token in its query.
      logger.error(
        { err: error, method: request.method, route: request.routeOptions.url },
        'API request failed',
      );
    } else if (wire.status >= 500) {
      logger.warn(
        { code: wire.code, message: wire.message, route: request.routeOptions.url },
        'API request failed',
      );
    }
    if (wire.code === ErrorCode.Unauthorized) void reply.header('www-authenticate', 'Bearer');
    // A refused upload may still be arriving: closing beats reading (and discarding) gigabytes of it.
    if (!request.raw.complete) void reply.header('connection', 'close');
    const { status, ...body } = wire;
    return reply.status(status).send({ error: body });
  });

  // Reached only past authentication, so probing for routes without the token learns nothing.
  app.setNotFoundHandler(async (request, reply) => {
    const message = `no route ${request.method} ${request.url.split('?')[0] ?? ''}`;
    return reply.status(404).send({ error: { code: ErrorCode.UnknownMethod, message, retriable: false } });
  });

  app.get('/healthz', async (request) => {
    const presented = bearerToken(request.headers.authorization);
    const authenticated = presented !== undefined && tokenMatches(presented);
    return authenticated
      ? { status: 'ok', authenticated, organization: api.organization }
      : { status: 'ok', authenticated };
  });

  // Ready means the connector can do its work now (Connector.readiness); live (/healthz) only that
  // the process answers. What failed is named, with no address, path or organization in it.
  app.get('/readyz', async (_request, reply) => {
    const readiness = api.readiness === undefined ? { ready: true, failing: [] } : await api.readiness();
    void reply.header('cache-control', 'no-store');
    return readiness.ready
      ? { status: 'ready' }
      : reply.status(503).send({ status: 'not_ready', failing: readiness.failing });
  });

  app.get('/metrics', async (_request, reply) => {
    if (api.scrapeMetrics === undefined) {
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'this connector does not serve metrics');
    }
    const exposition = await api.scrapeMetrics();
    return reply.type(exposition.contentType).header('cache-control', 'no-store').send(exposition.text);
  });

  let openApiJson: string | undefined;
  app.get('/v1/openapi.json', async (_request, reply) => {
    // Server URL '/': relative to wherever the document was fetched (the listen address may be 0.0.0.0).
    openApiJson ??= JSON.stringify(buildOpenApiDocument());
    return reply.type('application/json').send(openApiJson);
  });

  // ---- sending ----

  // Its own scope so that no parser (JSON included: a payload may well be JSON) touches the body.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    // Leave the body unread: the handler hands `request.raw` to the connector, which streams it.
    scope.addContentTypeParser('*', (_request: FastifyRequest, _payload: IncomingMessage, done) =>
      done(null),
    );
    scope.post<{ Params: { topic: string }; Querystring: Record<string, string | undefined> }>(
      uploadRoute,
      { schema: { params: requestSchemas.topicParams, querystring: requestSchemas.sendQuery } },
      async (request) => {
        const message = streamedMessage(request, options.bodyBytesMax);
        const [result] = await api.send(request.params.topic, [message]);
        return result;
      },
    );
  });

  app.post<{ Params: { topic: string }; Body: BatchBody }>(
    '/v1/topics/:topic/batch',
    {
      schema: { params: requestSchemas.topicParams, body: requestSchemas.batchBody },
      bodyLimit: batchBodyBytesMax,
    },
    async (request) => {
      const messages = request.body.messages.map((entry, index) => batchMessage(entry, `messages[${index}]`));
      return { results: await api.send(request.params.topic, messages) };
    },
  );

  app.get<{ Params: { topic: string; id: string }; Querystring: { partition?: number } }>(
    '/v1/topics/:topic/messages/:id/status',
    { schema: { params: requestSchemas.topicMessageParams, querystring: requestSchemas.statusQuery } },
    async (request) =>
      api.status(
        request.params.topic,
        request.params.id,
        request.query.partition === undefined ? {} : { partition: request.query.partition },
      ),
  );

  app.get<{
    Params: { topic: string; id: string };
    Querystring: { source?: ReceiptSource; partition?: number };
  }>(
    '/v1/topics/:topic/messages/:id/receipt',
    { schema: { params: requestSchemas.topicMessageParams, querystring: requestSchemas.receiptQuery } },
    async (request) =>
      api.receipt(request.params.topic, request.params.id, {
        ...(request.query.source === undefined ? {} : { source: request.query.source }),
        ...(request.query.partition === undefined ? {} : { partition: request.query.partition }),
      }),
  );

  // ---- receiving ----

  app.get<{ Querystring: { topic?: string; after: number; limit: number; waitMs: number } }>(
    '/v1/received',
    { schema: { querystring: requestSchemas.receivedQuery } },
    async (request) => {
      const { topic, after, limit, waitMs } = request.query;
      const messages = await api.received({
        ...(topic === undefined ? {} : { topic }),
        after,
        limit: limit ?? receivedLimitDefault,
        waitMs: Math.min(waitMs ?? 0, receivedWaitMsMax),
      });
      return { messages };
    },
  );

  app.get('/v1/latest-sequence', async () => ({ sequence: await latestSequence(api) }));

  // A received message is (topic, partition, id): ids are unique only within a partition.
  app.get<{ Params: ReceivedParams }>(
    '/v1/received/:topic/:partition/:id',
    { schema: { params: requestSchemas.receivedParams } },
    async (request) => receivedOrThrow(api, request.params.id, request.params),
  );

  app.get<{ Params: ReceivedParams }>(
    '/v1/received/:topic/:partition/:id/payload',
    { schema: { params: requestSchemas.receivedParams } },
    async (request, reply) =>
      servePayload(api, receivedOrThrow(api, request.params.id, request.params), reply),
  );

  // The id-only forms of before: they answer when exactly one received message has the id, and
  // refuse with AMBIGUOUS_MESSAGE_ID (409, listing the candidates' paths) when several do.
  app.get<{ Params: { id: string } }>(
    '/v1/received/:id',
    { schema: { params: requestSchemas.idParams } },
    async (request) => receivedOrThrow(api, request.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/received/:id/payload',
    { schema: { params: requestSchemas.idParams } },
    async (request, reply) => servePayload(api, receivedOrThrow(api, request.params.id), reply),
  );

  app.delete<{ Params: ReceivedParams }>(
    '/v1/received/:topic/:partition/:id',
    { schema: { params: requestSchemas.receivedParams } },
    async (request) =>
      api.deleteReceived(request.params.id, {
        topic: request.params.topic,
        partition: request.params.partition,
      }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/received/:id',
    { schema: { params: requestSchemas.idParams } },
    async (request) => api.deleteReceived(request.params.id),
  );

  app.get<{ Params: { groupId: string; topic: string } }>(
    '/v1/consumer-groups/:groupId/topics/:topic',
    { schema: { params: requestSchemas.consumerGroupParams } },
    async (request) => ({ sequence: api.committedSequence(request.params.groupId, request.params.topic) }),
  );

  app.put<{ Params: { groupId: string; topic: string }; Body: { sequence: number } }>(
    '/v1/consumer-groups/:groupId/topics/:topic',
    { schema: { params: requestSchemas.consumerGroupParams, body: requestSchemas.sequenceBody } },
    async (request) => {
      api.commitSequence(request.params.groupId, request.params.topic, request.body.sequence);
      return { sequence: request.body.sequence };
    },
  );

  // ---- administration ----

  app.post<{ Body: AdminActionInput }>(
    '/v1/admin',
    { schema: { body: requestSchemas.adminActionBody } },
    async (request) => adminOf(api, 'admin').call(api, request.body),
  );

  app.post<{ Body: { transaction: string } }>(
    '/v1/admin/transactions',
    { schema: { body: requestSchemas.adminTransactionBody } },
    async (request) =>
      adminOf(api, 'submitAdminTransaction').call(api, decodeBase64(request.body.transaction, 'transaction')),
  );

  app.get('/v1/organizations', async () => ({
    organizations: await adminOf(api, 'organizations').call(api),
  }));

  app.get('/v1/topics', async () => ({ topics: await adminOf(api, 'topics').call(api) }));

  app.get<{ Params: { topic: string } }>(
    '/v1/topics/:topic',
    { schema: { params: requestSchemas.topicParams } },
    async (request) => adminOf(api, 'describeTopic').call(api, request.params.topic),
  );

  registerAuditRoutes(app, api.audits);
  registerCatalogRoutes(app, api.catalog);
  registerAlertRoutes(app, api.alerts);
  await registerDatasetRoutes(app, api.datasets, {
    bodyBytesMax: options.datasetBytesMax ?? datasetBodyBytesMax,
  });
  registerJobRoutes(app, api.jobs);

  // ---- events ----

  app.get(eventsRoute, { websocket: true }, (socket) => serveEvents(socket, api, logger));

  // ---- the web console ----

  await registerConsole(app, {
    api,
    tokenMatches,
    logger,
    ...(options.console === undefined ? {} : { settings: options.console }),
  });

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  const closeGraceMs = options.closeGraceMs ?? 5_000;

  return {
    url,
    port,
    routes,
    async close(): Promise<void> {
      // Long-polls can wait 30 s and uploads longer; past the grace period their sockets are cut.
      const cut = setTimeout(() => app.server.closeAllConnections(), closeGraceMs);
      try {
        await app.close();
      } finally {
        clearTimeout(cut);
      }
    },
  };
}

interface BatchEntry {
  key?: string | null;
  value: string;
  to: string[];
  id?: string;
  contentType?: string;
  headers?: Record<string, string>;
}
interface BatchBody {
  messages: BatchEntry[];
}

function batchMessage(entry: BatchEntry, field: string): OutgoingMessage {
  const value = decodeBase64(entry.value, `${field}.value`);
  return {
    key: entry.key === undefined || entry.key === null ? null : decodeBase64(entry.key, `${field}.key`),
    // A byte-mode stream (not Readable.from's default object mode), like a request body.
    value: Readable.from([value], { objectMode: false }),
    // Known: the connector checks it against the topic's policy before encrypting anything.
    size: value.length,
    to: entry.to,
    ...(entry.id === undefined ? {} : { id: entry.id }),
    ...(entry.contentType === undefined ? {} : { contentType: entry.contentType }),
    ...(entry.headers === undefined ? {} : { headers: decodeHeaders(entry.headers, `${field}.headers`) }),
  };
}

function streamedMessage(
  request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>,
  bodyBytesMax: number | undefined,
): OutgoingMessage {
  const query = request.query;
  const header = (name: string): string | undefined => {
    const value = request.headers[name];
    return Array.isArray(value) ? value.join(',') : value;
  };
  const toList = query['to'] ?? header('ledgerbus-to');
  const to = (toList ?? '')
    .split(',')
    .map((organization) => organization.trim())
    .filter((organization) => organization.length > 0);
  if (to.length === 0) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      'to: name at least one recipient organization (?to=org2,org3)',
    );
  }
  const key = query['key'] ?? header('ledgerbus-key');
  const id = query['id'] ?? header('ledgerbus-id');
  const headers = header('ledgerbus-headers');
  const contentType = header('content-type');
  const raw = request.raw;
  const lengthHeader = raw.headers['content-length'];
  const declared = lengthHeader === undefined ? undefined : Number(lengthHeader);
  if (bodyBytesMax !== undefined && declared !== undefined && declared > bodyBytesMax) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `body of ${declared} bytes exceeds the limit of ${bodyBytesMax}`,
    );
  }
  // The connector reads the body through a stream of its own, which it may destroy when it refuses
  // the message: the request itself stays whole, so the refusal can still be answered on it.
  // Chunked uploads declare no length: bodyBytesMax is counted as the bytes flow.
  const value = raw.pipe(
    new ByteLimit(
      bodyBytesMax ?? Number.MAX_SAFE_INTEGER,
      () => new LedgerbusError(ErrorCode.Oversize, `body exceeds the limit of ${bodyBytesMax} bytes`),
    ),
  );
  raw.once('error', (error) => value.destroy(error));
  return {
    key: key === undefined ? null : decodeBase64(key, 'key'),
    value,
    // Node's parser holds the body to its Content-Length (a valid one: it refuses others).
    ...(declared === undefined ? {} : { size: declared }),
    to,
    ...(id === undefined || id.length === 0 ? {} : { id }),
    ...(contentType === undefined ? {} : { contentType }),
    ...(headers === undefined ? {} : { headers: decodeHeaderBlock(headers) }),
  };
}

function positiveOption(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (!(Number.isSafeInteger(value) && value > 0))
    throw new LedgerbusError(ErrorCode.BadConfig, `${field}: expected a positive integer`);
  return value;
}

function decodeBase64(text: string, field: string): Buffer {
  if (!base64Pattern.test(text))
    throw new LedgerbusError(ErrorCode.SchemaMismatch, `${field}: expected base64`);
  return Buffer.from(text, 'base64');
}

function decodeHeaders(headers: Readonly<Record<string, string>>, field: string): Record<string, Uint8Array> {
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [name, decodeBase64(value, `${field}.${name}`)]),
  );
}

/** `Ledgerbus-Headers`: base64 of a JSON object whose values are base64 (names may be any Unicode). */
function decodeHeaderBlock(block: string): Record<string, Uint8Array> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeBase64(block, 'Ledgerbus-Headers').toString('utf8'));
  } catch (error) {
    if (isLedgerbusError(error)) throw error;
    throw new LedgerbusError(
      ErrorCode.MalformedEncoding,
      'Ledgerbus-Headers: expected base64 of a JSON object',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new LedgerbusError(ErrorCode.SchemaMismatch, 'Ledgerbus-Headers: expected a JSON object');
  }
  const entries = Object.entries(parsed);
  for (const [name, value] of entries) {
    if (typeof value !== 'string') {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `Ledgerbus-Headers.${name}: expected a base64 string`,
      );
    }
  }
  return decodeHeaders(Object.fromEntries(entries) as Record<string, string>, 'Ledgerbus-Headers');
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

function queryToken(query: unknown): string | undefined {
  const value =
    typeof query === 'object' && query !== null ? (query as Record<string, unknown>)['token'] : undefined;
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** One administration method of the connector, or UNKNOWN_METHOD when it does not serve them. */
function adminOf<K extends keyof ConnectorAdminApi>(api: HttpApiConnector, method: K): ConnectorAdminApi[K] {
  const implementation = api[method];
  if (implementation === undefined) {
    throw new LedgerbusError(
      ErrorCode.UnknownMethod,
      `this connector does not serve administration (${method})`,
    );
  }
  return implementation as ConnectorAdminApi[K];
}

interface ReceivedParams {
  topic: string;
  partition: number;
  id: string;
}

/** Where `GET /v1/received/{topic}/{partition}/{id}` names this message (path segments encoded). */
export function receivedPath(topic: string, partition: number, id: string): string {
  return `/v1/received/${encodeURIComponent(topic)}/${partition}/${encodeURIComponent(id)}`;
}

function receivedOrThrow(
  api: ConnectorApi,
  id: string,
  at?: { topic: string; partition: number },
): ReceivedMessage {
  const message =
    at === undefined
      ? api.receivedMessage(id)
      : api.receivedMessage(id, { topic: at.topic, partition: at.partition });
  if (message === undefined) {
    const where = at === undefined ? '' : ` on ${at.topic}/${at.partition}`;
    throw new LedgerbusError(ErrorCode.MessageNotFound, `no received message ${id}${where}`);
  }
  return message;
}

async function servePayload(
  api: ConnectorApi,
  message: ReceivedMessage,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const payload = await api.payload(message.id, { topic: message.topic, partition: message.partition });
  // The content type is the sender's: served only if it is a media type, and never rendered or
  // sniffed by a browser that fetches it (a sender could otherwise serve HTML or script into the
  // recipient's origin). Content-Length lets clients show progress and detect a truncated stream.
  return reply
    .type(servableContentType(message.contentType))
    .header('x-content-type-options', 'nosniff')
    .header('content-disposition', 'attachment')
    .header('content-length', String(message.size))
    .header('ledgerbus-sha256', message.sha256)
    .send(payload);
}

/**
 * Where "now" is in the received sequence. A connector that knows it answers directly; otherwise
 * the pages are walked here, next to the data, rather than by every client over HTTP.
 */
async function latestSequence(api: HttpApiOptions['api']): Promise<number> {
  if (typeof api.latestSequence === 'function') return api.latestSequence();
  let after = 0;
  for (;;) {
    const page = await api.received({ after, limit: 1000 });
    const last = page.at(-1);
    if (last === undefined) return after;
    after = last.sequence;
  }
}

function serveEvents(socket: WebSocket, api: ConnectorApi, logger: HttpApiLogger): void {
  let alive = true;
  const unsubscribe = api.onEvent((event: ConnectorEvent) => {
    if (socket.readyState !== socket.OPEN) return;
    if (socket.bufferedAmount > eventsBufferedBytesMax) {
      // 1013 "try again later": the client reconnects, and the connector never buffers without bound.
      logger.warn(
        { bufferedAmount: socket.bufferedAmount },
        'closing an events socket that reads too slowly',
      );
      socket.close(1013, 'events backlog too large');
      return;
    }
    socket.send(JSON.stringify(event));
  });
  const ping = setInterval(() => {
    if (!alive) {
      socket.terminate();
      return;
    }
    alive = false;
    socket.ping();
  }, eventsPingIntervalMs);
  ping.unref();
  socket.on('pong', () => {
    alive = true;
  });
  socket.on('error', (error) => logger.debug({ err: error }, 'events socket error'));
  socket.on('close', () => {
    clearInterval(ping);
    unsubscribe();
  });
}
