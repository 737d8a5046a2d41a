/**
 * The connector's web console (issue 19): its organization's network and messages in a browser, at
 * /console/ on the API's own address. It authenticates with the API token once, at a login form, and
 * then with a session cookie (HttpOnly, SameSite=Strict, Path=/console; Secure when served over TLS);
 * the token never appears in a URL. Every POST carries the session's CSRF token, and POSTs and the
 * live socket from another origin are refused. Pages are server-rendered and complete without
 * JavaScript; one small script keeps the messages view live over /console/events.
 *
 * It only reads: this connector's registry copy, node session and database, through `ConsoleConnector`.
 */
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ErrorCode, errorInfo, isLedgerbusError } from '../../errors.js';
import { loadAssets } from './assets.js';
import { html } from './html.js';
import type { SafeHtml } from './html.js';
import { renderPage } from './layout.js';
import { ConsoleFeed } from './feed.js';
import type { LiveUpdate } from './feed.js';
import { SessionTable } from './sessions.js';
import type { ConsoleSession, SessionLimits } from './sessions.js';
import type { ConsoleConnector, ConsoleLogger } from './source.js';
import { ConsolePageError } from './view.js';
import type { ViewContext } from './view.js';
import { renderLoginPage } from './views/login.js';
import { downloads, homePath, navigation, views } from './views/index.js';

export type { ConsoleConnector, ConsoleLogger } from './source.js';
export type { SentMessagesSource } from './sent-messages.js';
export { DatabaseSentMessages } from './sent-messages.js';

export const consolePrefix = '/console';
export const sessionCookie = 'ledgerbus_console';

/** Whether a route (Fastify's form) is the console's: it authenticates with its session, not the bearer token. */
export function isConsoleRoute(url: string): boolean {
  return url === consolePrefix || url.startsWith(`${consolePrefix}/`);
}

/**
 * Whether a request that matched no route is under /console/: the console's own not-found page
 * answers it (behind the session). Only for unmatched requests: a matched one is judged by its route.
 */
export function isConsolePath(url: string): boolean {
  return isConsoleRoute(url.split('?')[0] ?? '');
}

export interface ConsoleOptions extends SessionLimits {
  /** How often the live feed reads sent messages while a console watches; default 1 s. */
  readonly livePollMs?: number;
}

export interface RegisterConsoleOptions {
  readonly api: ConsoleConnector;
  /** The API's own constant-time check of a presented token. */
  readonly tokenMatches: (presented: string) => boolean;
  readonly logger: ConsoleLogger;
  readonly settings?: ConsoleOptions;
}

const htmlType = 'text/html; charset=utf-8';
/** Reachable without a session: the login form and what it is styled with. */
const publicRoutes = new Set(['/console/login', '/console/assets/:name']);
/** A login form is a token and a CSRF field: nothing near this size is legitimate. */
const formBodyBytesMax = 16 * 1024;
/** Live sockets at once, across sessions (each open messages tab holds one). */
const liveSocketsMax = 64;
/** A socket whose browser reads slower than this much backlog is closed; the page reconnects. */
const liveBufferedBytesMax = 1024 * 1024;
/** How often a live socket checks that its session still stands (and pings its browser). */
const liveCheckMs = 5_000;

/**
 * Every console response: no framing, no other origin's script or style, no caching of pages that
 * hold the organization's data, no Referer (console URLs name message ids) to another origin.
 */
const securityHeaders: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin rather than no-referrer: under no-referrer a browser sends `Origin: null` with a
  // form post, and the origin check below could no longer tell the console's own forms.
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** Notices the login page can show, chosen by key: nothing from the URL is echoed into the page. */
const loginNotices: ReadonlyMap<string, string> = new Map([
  ['logged-out', 'You are logged out.'],
  ['session-ended', 'Your session ended. Log in again.'],
]);

export async function registerConsole(app: FastifyInstance, options: RegisterConsoleOptions): Promise<void> {
  const { api, tokenMatches, logger } = options;
  const { settings = {} } = options;
  const sessions = new SessionTable(settings);
  const feed = new ConsoleFeed({
    api,
    logger,
    ...(settings.livePollMs === undefined ? {} : { pollMs: settings.livePollMs }),
  });
  const assets = loadAssets(logger);
  /** The session of each request that has one, set by the guard below. */
  const current = new WeakMap<FastifyRequest, { readonly id: string; readonly session: ConsoleSession }>();
  /** Open live sockets and the session each belongs to (logout closes them). */
  const liveSockets = new Map<WebSocket, string>();

  /** A page of the console's own (an error, not found), with the navigation when logged in. */
  const page = (request: FastifyRequest, title: string, body: SafeHtml): string => {
    const entry = current.get(request);
    return renderPage({
      title,
      organization: api.organization,
      body,
      ...(entry === undefined
        ? {}
        : { navigation: { entries: navigation }, csrfToken: entry.session.csrfToken }),
    });
  };

  await app.register(
    async (scope) => {
      await scope.register(fastifyCookie);
      await scope.register(fastifyFormbody, { bodyLimit: formBodyBytesMax });

      scope.addHook('onRequest', async (request, reply) => {
        void reply.headers(securityHeaders);
        // Cookies are SameSite=Strict already; a browser also names the page a request comes from,
        // and anything that changes state or streams data must come from this origin.
        if ((request.method === 'POST' || isUpgrade(request)) && !fromThisOrigin(request)) {
          throw new ConsolePageError(403, 'Refused: this request came from another site.');
        }
        const route = request.routeOptions.url;
        if (route !== undefined && publicRoutes.has(route)) return;
        const id = request.cookies[sessionCookie];
        const session = sessions.find(id);
        if (id === undefined || session === undefined) {
          if (isUpgrade(request)) throw new ConsolePageError(401, 'Log in to the console first.');
          const notice = id === undefined ? '' : '?notice=session-ended';
          return reply.redirect(`${consolePrefix}/login${notice}`, 303);
        }
        current.set(request, { id, session });
        return undefined;
      });

      // After the body is parsed: the CSRF token may be a form field.
      scope.addHook('preHandler', async (request) => {
        if (request.method !== 'POST' || request.routeOptions.url === `${consolePrefix}/login`) return;
        const entry = current.get(request);
        if (entry === undefined || !sessions.csrfMatches(entry.session, csrfTokenOf(request))) {
          throw new ConsolePageError(
            403,
            'Refused: this form is missing its security token. Reload the page and try again.',
          );
        }
      });

      scope.setErrorHandler((error: unknown, request, reply) => {
        const { status, message } = describeFailure(error);
        if (status >= 500)
          logger.error({ err: error, route: request.routeOptions.url }, 'console request failed');
        return reply
          .status(status)
          .type(htmlType)
          .send(
            page(
              request,
              status === 404 ? 'Not found' : 'Something went wrong',
              html`<p class="message error" role="alert">${message}</p>`,
            ),
          );
      });

      scope.setNotFoundHandler(async (request, reply) =>
        reply
          .status(404)
          .type(htmlType)
          .send(
            page(
              request,
              'Not found',
              html`<p class="message error" role="alert">There is no such console page.</p>`,
            ),
          ),
      );

      scope.get('/', async (_request, reply) => reply.redirect(`${consolePrefix}${homePath}`, 303));

      scope.get<{ Querystring: { notice?: string } }>('/login', async (request, reply) => {
        // Already logged in: straight to the console.
        if (sessions.find(request.cookies[sessionCookie]) !== undefined)
          return reply.redirect(`${consolePrefix}${homePath}`, 303);
        const notice =
          typeof request.query.notice === 'string' ? loginNotices.get(request.query.notice) : undefined;
        return reply
          .type(htmlType)
          .send(
            renderLoginPage({ organization: api.organization, ...(notice === undefined ? {} : { notice }) }),
          );
      });

      scope.post('/login', async (request, reply) => {
        const token = formField(request.body, 'token');
        if (token === undefined || !tokenMatches(token)) {
          logger.warn({ route: '/console/login' }, 'console login refused: wrong API token');
          return reply
            .status(401)
            .type(htmlType)
            .send(
              renderLoginPage({
                organization: api.organization,
                error:
                  token === undefined ? 'Enter the API token.' : 'That is not this connector’s API token.',
              }),
            );
        }
        // A new id at every login: an id planted in the browser before it logged in is worth nothing.
        sessions.delete(request.cookies[sessionCookie]);
        const { id } = sessions.create();
        void reply.setCookie(sessionCookie, id, cookieOptions(request));
        return reply.redirect(`${consolePrefix}${homePath}`, 303);
      });

      scope.post('/logout', async (request, reply) => {
        const entry = current.get(request);
        if (entry !== undefined) {
          sessions.delete(entry.id);
          for (const [socket, id] of liveSockets) if (id === entry.id) socket.close(1008, 'session ended');
        }
        void reply.clearCookie(sessionCookie, cookieOptions(request));
        return reply.redirect(`${consolePrefix}/login?notice=logged-out`, 303);
      });

      for (const view of views) {
        scope.get(view.path, async (request, reply) => {
          const entry = current.get(request);
          const rendered = await view.render(viewContext(api, request));
          return reply.type(htmlType).send(
            renderPage({
              title: rendered.title,
              organization: api.organization,
              body: rendered.body,
              navigation: { entries: navigation, current: view.section.path },
              ...(entry === undefined ? {} : { csrfToken: entry.session.csrfToken }),
              ...(rendered.scripts === undefined ? {} : { scripts: rendered.scripts }),
            }),
          );
        });
      }

      for (const download of downloads) {
        scope.get(download.path, async (request, reply) => {
          const { fileName, json } = await download.load(viewContext(api, request));
          return reply
            .type('application/json; charset=utf-8')
            .header('content-disposition', `attachment; filename="${fileName}"`)
            .send(JSON.stringify(json, null, 2));
        });
      }

      scope.get('/events', { websocket: true }, (socket, request) => {
        const entry = current.get(request);
        if (entry === undefined) {
          socket.close(1008, 'session ended');
          return;
        }
        // 1013 "try again later": the page reconnects, and the sockets held stay bounded.
        if (liveSockets.size >= liveSocketsMax) {
          socket.close(1013, 'too many console connections');
          return;
        }
        serveLive(socket, entry.id);
      });

      scope.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
        const asset = assets.get(request.params.name);
        if (asset === undefined) throw new ConsolePageError(404, 'There is no such file.');
        // Revalidated rather than cached for good: a new version of the connector may change them.
        return reply.type(asset.contentType).header('cache-control', 'no-cache').send(asset.body);
      });

      scope.addHook('onClose', async () => {
        feed.close();
      });
    },
    { prefix: consolePrefix },
  );

  function serveLive(socket: WebSocket, sessionId: string): void {
    liveSockets.set(socket, sessionId);
    let closed = false;
    let unsubscribe: (() => void) | undefined;
    let alive = true;
    const send = (update: LiveUpdate): void => {
      if (socket.readyState !== socket.OPEN) return;
      if (socket.bufferedAmount > liveBufferedBytesMax) {
        socket.close(1013, 'updates backlog too large');
        return;
      }
      socket.send(JSON.stringify(update));
    };
    feed.subscribe(send).then(
      (off) => {
        if (closed) off();
        else unsubscribe = off;
      },
      (error: unknown) => logger.debug({ err: error }, 'console feed: subscribing failed'),
    );
    let ticks = 0;
    const check = setInterval(() => {
      // Not a use of the session: a tab left open must not keep it alive forever.
      if (sessions.find(sessionId, false) === undefined) {
        socket.close(1008, 'session ended');
        return;
      }
      // Every 30 s, a ping: a browser gone without a close (a laptop asleep) frees its socket.
      if (++ticks % 6 !== 0) return;
      if (!alive) {
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    }, liveCheckMs);
    check.unref();
    socket.on('pong', () => {
      alive = true;
    });
    socket.on('error', (error) => logger.debug({ err: error }, 'console live socket error'));
    socket.on('close', () => {
      closed = true;
      clearInterval(check);
      unsubscribe?.();
      liveSockets.delete(socket);
    });
  }
}

function viewContext(api: ConsoleConnector, request: FastifyRequest): ViewContext {
  return { api, params: stringRecord(request.params), query: stringRecord(request.query) };
}

/** Only the string values of a parsed query or params object (a repeated query key is ignored). */
function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
  );
}

function formField(body: unknown, name: string): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const value = (body as Record<string, unknown>)[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** The CSRF token a POST carries: the `_csrf` form field, or the `X-CSRF-Token` header for scripts. */
function csrfTokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers['x-csrf-token'];
  return typeof header === 'string' ? header : formField(request.body, '_csrf');
}

function cookieOptions(request: FastifyRequest): {
  path: string;
  httpOnly: true;
  sameSite: 'strict';
  secure: boolean;
} {
  // Secure whenever the API is reached over TLS: a cookie set over https must never travel in clear.
  return { path: consolePrefix, httpOnly: true, sameSite: 'strict', secure: request.protocol === 'https' };
}

function isUpgrade(request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket';
}

/**
 * Whether the browser says the request comes from a page of this origin. Requests without the
 * headers (curl, or an old browser's same-origin GET) pass: CSRF needs a browser, and browsers send
 * them on POSTs and WebSocket handshakes.
 */
function fromThisOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  return origin === `${request.protocol}://${request.headers.host ?? ''}`;
}

/** The status and sentence a failure is shown with: its own words only for expected failures. */
function describeFailure(error: unknown): { status: number; message: string } {
  if (error instanceof ConsolePageError) return { status: error.status, message: error.message };
  if (isLedgerbusError(error))
    return { status: errorInfo(error.code).httpStatus, message: `${error.code}: ${error.message}` };
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500 && error instanceof Error)
    return { status: statusCode, message: error.message };
  return {
    status: 500,
    message: `${ErrorCode.Internal}: an internal error; the details are in the connector log.`,
  };
}
