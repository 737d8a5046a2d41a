// The web console (issue 19) over a real HTTP server in front of the in-memory connector: login and
// sessions (cookie flags, no token in any URL, expiry), CSRF and cross-origin refusals, escaping of
// everything a message carries, the views, the live socket, the sent-messages listing on a real
// connector database, and the browser script type-checked against the DOM.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { MemoryConnector } from '../../client/testing/memory-connector.js';
import type { OrganizationDescription, TopicDescription } from '../api-types.js';
import { ConnectorDatabase } from '../connector-database.js';
import { startHttpApi } from '../http-api.js';
import type { HttpApiServer } from '../http-api.js';
import { assetDirectory } from './assets.js';
import { escapeHtml } from './html.js';
import { sessionCookie } from './index.js';
import type { ConsoleOptions } from './index.js';
import { DatabaseSentMessages } from './sent-messages.js';
import type {
  SentMessageDetail,
  SentMessageSummary,
  SentMessagesSource,
  SentState,
} from './sent-messages.js';
import { SessionTable } from './sessions.js';

const token = 'console-test-token-0123456789abcdef';

/** The in-memory connector with what the console reads beside the application API. */
class ConsoleTestConnector extends MemoryConnector {
  /** States the test sets, by topic and id; ACCEPTED otherwise. */
  readonly states = new Map<string, SentState>();
  organizationList: OrganizationDescription[] = [
    { id: 'org1', roles: ['member', 'supervisor'], status: 'APPROVED', signingKeys: [], encryptionKey: '' },
    { id: 'org2', roles: ['member'], status: 'APPROVED', signingKeys: [], encryptionKey: '' },
  ];
  topicList: TopicDescription[] = [topicDescription('demo')];
  readonly sentMessages: SentMessagesSource = {
    page: ({ before, limit }) =>
      this.sent
        .map((record, index) => this.summary(index))
        .filter((row) => before === undefined || row.position < before)
        .reverse()
        .slice(0, limit),
    get: (topic, id) => {
      const index = this.sent.findIndex((record) => record.topic === topic && record.id === id);
      if (index < 0) return undefined;
      const detail: SentMessageDetail = { ...this.summary(index), height: index + 1, proof: 'cHJvb2Y=' };
      return detail;
    },
  };

  async organizations(): Promise<OrganizationDescription[]> {
    return this.organizationList;
  }

  async topics(): Promise<TopicDescription[]> {
    return this.topicList;
  }

  private summary(index: number): SentMessageSummary {
    const record = this.sent[index]!;
    const state = this.states.get(`${record.topic}/${record.id}`) ?? 'ACCEPTED';
    return {
      position: index + 1,
      id: record.id,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      recipients: record.to,
      deliveredTo: state === 'COMPLETED' ? record.to : [],
      state,
      createdAt: 1_700_000_000_000 + index,
      encryptedSize: record.size + 16,
    };
  }
}

function topicDescription(name: string): TopicDescription {
  return {
    name,
    owner: null,
    partitions: [
      { partition: 0, group: `${name}/0`, configEpoch: 0, replicas: ['node1', 'node2'], globalHeight: 7 },
    ],
    producers: ['org1'],
    consumers: ['org2'],
    policy: { messageBytesMax: 1024, ttlMs: 1000, payloadRetentionMs: 1000, availability: 'standard' },
    topicIndex: 1,
    raft: { voters: ['node1', 'node2'], learners: [], leader: 'node1' },
  };
}

let connector: ConsoleTestConnector;
let server: HttpApiServer;
let clock: number;

async function start(options: ConsoleOptions = {}): Promise<void> {
  server = await startHttpApi({
    api: connector,
    host: '127.0.0.1',
    port: 0,
    token,
    console: { now: () => clock, livePollMs: 50, ...options },
  });
}

beforeEach(async () => {
  clock = 1_800_000_000_000;
  connector = new ConsoleTestConnector('org1');
  await start();
});

afterEach(async () => {
  await server.close();
});

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly headers: Headers;
  readonly location: string | null;
}

/** Every URL and Location seen, to check that the token never appears in one. */
const urlsSeen: string[] = [];

async function request(
  method: string,
  path: string,
  options: { cookie?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<Answer> {
  urlsSeen.push(path);
  const response = await fetch(`${server.url}${path}`, {
    method,
    redirect: 'manual',
    headers: {
      ...(options.cookie === undefined ? {} : { cookie: `${sessionCookie}=${options.cookie}` }),
      ...(options.form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
      ...options.headers,
    },
    ...(options.form === undefined ? {} : { body: new URLSearchParams(options.form).toString() }),
  });
  const location = response.headers.get('location');
  if (location !== null) urlsSeen.push(location);
  return { status: response.status, text: await response.text(), headers: response.headers, location };
}

/** Logs in; the session id from the cookie. */
async function login(): Promise<string> {
  const answer = await request('POST', '/console/login', { form: { token } });
  expect(answer.status).toBe(303);
  const cookie = answer.headers.getSetCookie().find((line) => line.startsWith(`${sessionCookie}=`));
  expect(cookie).toBeDefined();
  return cookie!.slice(sessionCookie.length + 1).split(';')[0]!;
}

/** The CSRF token a page's logout form carries. */
function csrfOf(page: string): string {
  const match = /name="_csrf"\s+value="([^"]+)"/.exec(page);
  expect(match).not.toBeNull();
  return match![1]!;
}

describe('console login', () => {
  it('sends every page to the login page without a session', async () => {
    for (const path of [
      '/console',
      '/console/',
      '/console/network',
      '/console/messages',
      '/console/messages/sent/demo/x',
    ]) {
      const answer = await request('GET', path);
      expect(answer.status, path).toBe(303);
      expect(answer.location, path).toBe('/console/login');
    }
    // The bearer token is the REST API's: it opens no console page.
    const bearer = await request('GET', '/console/network', {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(bearer.location).toBe('/console/login');
  });

  it('serves a login form with a labelled password field, posted', async () => {
    const answer = await request('GET', '/console/login');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toContain('text/html');
    expect(answer.text).toMatch(/<form class="login" method="post" action="\/console\/login">/);
    expect(answer.text).toMatch(/<label for="token">API token<\/label>/);
    expect(answer.text).toMatch(/<input\s+id="token"\s+name="token"\s+type="password"/);
    expect(answer.text).toContain('<main id="main"');
  });

  it('answers a wrong token with 401 and the login page, and nothing else', async () => {
    for (const form of [{ token: 'not-the-token' }, { token: '' }, {}] as Record<string, string>[]) {
      const answer = await request('POST', '/console/login', { form });
      expect(answer.status).toBe(401);
      expect(answer.text).toContain('role="alert"');
      expect(answer.text).toMatch(/not this connector’s API token|Enter the API token/);
      expect(answer.text).not.toContain('not-the-token');
      expect(answer.headers.getSetCookie()).toEqual([]);
      expect(answer.location).toBeNull();
    }
  });

  it('sets an HttpOnly, SameSite=Strict session cookie on /console for the right token, and no token in any URL', async () => {
    urlsSeen.length = 0;
    const answer = await request('POST', '/console/login', { form: { token } });
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/console/network');
    const [cookie, ...others] = answer.headers.getSetCookie();
    expect(others).toEqual([]);
    const attributes = cookie!.split(';').map((part) => part.trim().toLowerCase());
    expect(attributes[0]).toMatch(new RegExp(`^${sessionCookie}=[a-z0-9_-]{43}$`));
    expect(attributes).toContain('httponly');
    expect(attributes).toContain('samesite=strict');
    expect(attributes).toContain('path=/console');
    // Plain HTTP here: Secure would make the browser drop it.
    expect(attributes).not.toContain('secure');
    const session = cookie!.slice(sessionCookie.length + 1).split(';')[0]!;
    expect(session).not.toContain(token);
    const network = await request('GET', '/console/network', { cookie: session });
    expect(network.status).toBe(200);
    expect(network.text).not.toContain(token);
    const messages = await request('GET', '/console/messages', { cookie: session });
    expect(messages.text).not.toContain(token);
    expect(urlsSeen.length).toBeGreaterThan(2);
    for (const url of urlsSeen) expect(url).not.toContain(token);
  });

  it('gives a new session id at every login, and the session cookie opens no REST route', async () => {
    const first = await login();
    const second = await request('POST', '/console/login', { form: { token }, cookie: first });
    const renewed = second.headers.getSetCookie()[0]!;
    expect(renewed).not.toContain(first);
    // The session that was replaced is gone.
    expect((await request('GET', '/console/network', { cookie: first })).status).toBe(303);
    const rest = await request('GET', '/v1/received', { cookie: first });
    expect(rest.status).toBe(401);
  });

  it('refuses a login posted from another site', async () => {
    for (const headers of [
      { origin: 'http://attacker.example' },
      { 'sec-fetch-site': 'cross-site' },
    ] as Record<string, string>[]) {
      const answer = await request('POST', '/console/login', { form: { token }, headers });
      expect(answer.status).toBe(403);
      expect(answer.headers.getSetCookie()).toEqual([]);
    }
    const origin = new URL(server.url).origin;
    const same = await request('POST', '/console/login', { form: { token }, headers: { origin } });
    expect(same.status).toBe(303);
  });

  it('is not part of the REST API: its routes are left out of the list the OpenAPI document covers', () => {
    expect(server.routes.length).toBeGreaterThan(10);
    expect(server.routes.filter((route) => route.path.startsWith('/console'))).toEqual([]);
  });

  it('sends the pages with headers that keep them out of frames, caches and other origins', async () => {
    const session = await login();
    const answer = await request('GET', '/console/network', { cookie: session });
    expect(answer.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(answer.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('x-frame-options')).toBe('DENY');
    expect(answer.headers.get('referrer-policy')).toBe('same-origin');
  });
});

describe('CSRF', () => {
  it('refuses a POST without the session’s token with 403, and changes nothing', async () => {
    const session = await login();
    const otherSession = await login();
    const otherToken = csrfOf((await request('GET', '/console/network', { cookie: otherSession })).text);
    for (const form of [{}, { _csrf: '' }, { _csrf: 'forged' }, { _csrf: otherToken }] as Record<
      string,
      string
    >[]) {
      const answer = await request('POST', '/console/logout', { cookie: session, form });
      expect(answer.status, JSON.stringify(form)).toBe(403);
      expect(answer.text).toContain('security token');
    }
    const refusedHeader = await request('POST', '/console/logout', {
      cookie: session,
      headers: { 'x-csrf-token': otherToken },
    });
    expect(refusedHeader.status).toBe(403);
    expect((await request('GET', '/console/network', { cookie: session })).status).toBe(200);
  });

  it('logs out with the token: the session ends and its cookie is cleared', async () => {
    const session = await login();
    const page = await request('GET', '/console/network', { cookie: session });
    const answer = await request('POST', '/console/logout', {
      cookie: session,
      form: { _csrf: csrfOf(page.text) },
    });
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/console/login?notice=logged-out');
    const cleared = answer.headers.getSetCookie()[0]!.toLowerCase();
    expect(cleared).toMatch(new RegExp(`^${sessionCookie}=;`));
    expect(cleared).toContain('expires=thu, 01 jan 1970');
    expect(cleared).toContain('path=/console');
    expect((await request('GET', '/console/network', { cookie: session })).location).toBe(
      '/console/login?notice=session-ended',
    );
    expect((await request('GET', '/console/login?notice=logged-out')).text).toContain('You are logged out.');
    // Notices are chosen by key, never echoed: not even an object's own properties.
    for (const notice of ['constructor', '__proto__', '<script>'])
      expect((await request('GET', `/console/login?notice=${encodeURIComponent(notice)}`)).text).not.toMatch(
        /role="status"|native code|<script>/,
      );
  });

  it('takes the token from the X-CSRF-Token header too', async () => {
    const session = await login();
    const page = await request('GET', '/console/messages', { cookie: session });
    const answer = await request('POST', '/console/logout', {
      cookie: session,
      headers: { 'x-csrf-token': csrfOf(page.text) },
    });
    expect(answer.status).toBe(303);
  });
});

describe('sessions', () => {
  it('end after 30 idle minutes, and after 12 hours however used', async () => {
    const idle = await login();
    clock += 29 * 60_000;
    expect((await request('GET', '/console/network', { cookie: idle })).status).toBe(200);
    clock += 29 * 60_000;
    expect((await request('GET', '/console/network', { cookie: idle })).status).toBe(200);
    clock += 30 * 60_000;
    const ended = await request('GET', '/console/network', { cookie: idle });
    expect(ended.status).toBe(303);
    expect(ended.location).toBe('/console/login?notice=session-ended');

    const busy = await login();
    for (let minutes = 0; minutes < 12 * 60 - 20; minutes += 20) {
      clock += 20 * 60_000;
      expect((await request('GET', '/console/network', { cookie: busy })).status, `${minutes}`).toBe(200);
    }
    // 12 hours after login, 20 minutes after its last use: ended by its lifetime, not by idleness.
    clock += 20 * 60_000;
    expect((await request('GET', '/console/network', { cookie: busy })).status).toBe(303);
  });

  it('are held to a bound, the least recently used ending first', () => {
    let now = 0;
    const table = new SessionTable({ sessionsMax: 3, now: () => now });
    const ids = [1, 2, 3].map(() => {
      now += 1;
      return table.create().id;
    });
    now += 1;
    table.find(ids[0]);
    now += 1;
    const fourth = table.create().id;
    expect(table.size).toBe(3);
    expect(table.find(ids[1])).toBeUndefined();
    for (const id of [ids[0], ids[2], fourth]) expect(table.find(id)).toBeDefined();
    expect(new Set(ids).size).toBe(3);
    expect(table.find(undefined)).toBeUndefined();
    expect(table.find('')).toBeUndefined();
    expect(table.find(`${ids[0]!}x`)).toBeUndefined();
  });
});

describe('escaping', () => {
  const hostile = '<script>alert("x")</script>';
  const hostileId = '<img src=x onerror=alert(1)>"\'&';

  it('renders ids, topics, senders and organization names inert on every view', async () => {
    connector.organizationList = [
      ...connector.organizationList,
      { id: hostile, roles: [hostile], status: 'PENDING', signingKeys: [], encryptionKey: '' },
    ];
    connector.topicList = [topicDescription(hostile)];
    connector.deliver({ topic: hostile, id: hostileId, sender: hostile, value: Buffer.from('x') });
    await connector.send(hostile, [
      {
        id: hostileId,
        to: [hostile],
        value: (await import('node:stream')).Readable.from([Buffer.from('y')]),
      },
    ]);
    const session = await login();
    const pages = [
      await request('GET', '/console/network', { cookie: session }),
      await request('GET', '/console/messages', { cookie: session }),
      await request(
        'GET',
        `/console/messages/sent/${encodeURIComponent(hostile)}/${encodeURIComponent(hostileId)}`,
        { cookie: session },
      ),
      await request(
        'GET',
        `/console/messages/received/${encodeURIComponent(hostile)}/0/${encodeURIComponent(hostileId)}`,
        { cookie: session },
      ),
    ];
    for (const page of pages) {
      expect(page.status).toBe(200);
      expect(page.text).not.toContain('<script>alert');
      expect(page.text).not.toContain('<img src=x');
      expect(page.text).toContain(escapeHtml(hostile));
      // The only script a page loads is the console's own.
      for (const tag of page.text.match(/<script[^>]*>/g) ?? [])
        expect(tag).toBe('<script type="module" src="/console/assets/live.js">');
    }
    expect(pages[1]!.text).toContain(escapeHtml(hostileId));
    // Links name the message with each segment percent-encoded.
    expect(pages[1]!.text).toContain(
      `href="/console/messages/sent/${escapeHtml(encodeURIComponent(hostile))}/`,
    );
    // A missing message's page says so, escaped too.
    const missing = await request('GET', `/console/messages/sent/demo/${encodeURIComponent(hostile)}`, {
      cookie: session,
    });
    expect(missing.status).toBe(404);
    expect(missing.text).not.toContain('<script>alert');
    expect(missing.text).toContain(escapeHtml(hostile));
  });
});

describe('views', () => {
  it('show the network: readiness, organizations, nodes, topics and partitions', async () => {
    const session = await login();
    const page = (await request('GET', '/console/network', { cookie: session })).text;
    expect(page).toContain('Ready');
    expect(page).toMatch(/<caption>\s*Organizations in the registry/);
    expect(page).toMatch(/<th scope="row">\s*org1 <span class="tag">this organization<\/span>/);
    expect(page).toContain('data-organization="org2"');
    expect(page).toContain('data-topic="demo"');
    expect(page).toMatch(/<th scope="row">demo\/0<\/th>/);
    expect(page).toMatch(/<th scope="row">node1<\/th>/);
    expect(page).toMatch(/<th scope="col" class="numeric">Height<\/th>/);
    expect(page).toContain('aria-current="page"');
  });

  it('list sent and received messages newest first, a page at a time', async () => {
    const { Readable } = await import('node:stream');
    for (let index = 1; index <= 30; index++) {
      await connector.send('demo', [
        { id: `out-${index}`, to: ['org2'], value: Readable.from([Buffer.from('x')]) },
      ]);
      connector.deliver({ topic: 'demo', id: `in-${index}`, value: Buffer.from('y') });
    }
    connector.states.set('demo/out-30', 'COMPLETED');
    const session = await login();
    const first = (await request('GET', '/console/messages', { cookie: session })).text;
    const sentIds = [...first.matchAll(/data-topic="demo" data-id="(out-\d+)"/g)].map((match) => match[1]);
    expect(sentIds).toEqual(Array.from({ length: 25 }, (_, index) => `out-${30 - index}`));
    const receivedIds = [...first.matchAll(/data-partition="0" data-id="(in-\d+)"/g)].map(
      (match) => match[1],
    );
    expect(receivedIds).toEqual(Array.from({ length: 25 }, (_, index) => `in-${30 - index}`));
    expect(first).toContain('data-state="COMPLETED"');
    const older = /href="(\/console\/messages\?sentBefore=\d+)"/.exec(first)![1]!;
    const second = (await request('GET', older.replaceAll('&amp;', '&'), { cookie: session })).text;
    expect([...second.matchAll(/data-topic="demo" data-id="(out-\d+)"/g)].map((match) => match[1])).toEqual([
      'out-5',
      'out-4',
      'out-3',
      'out-2',
      'out-1',
    ]);
    expect(second).toContain('data-first-page="false"');
    const bad = await request('GET', '/console/messages?sentBefore=abc', { cookie: session });
    expect(bad.status).toBe(400);
  });

  it('show one message with its proof, and serve its receipt as a download', async () => {
    const { Readable } = await import('node:stream');
    await connector.send('demo', [{ id: 'one', to: ['org2'], value: Readable.from([Buffer.from('x')]) }]);
    const received = connector.deliver({ topic: 'demo', id: 'two', value: Buffer.from('y') });
    const session = await login();
    const sent = (await request('GET', '/console/messages/sent/demo/one', { cookie: session })).text;
    expect(sent).toContain('&quot;proof&quot;: &quot;cHJvb2Y=&quot;');
    expect(sent).toContain('href="/console/messages/sent/demo/one/receipt"');
    const receipt = await request('GET', '/console/messages/sent/demo/one/receipt', { cookie: session });
    expect(receipt.status).toBe(200);
    expect(receipt.headers.get('content-disposition')).toBe('attachment; filename="receipt-demo-0-one.json"');
    expect(JSON.parse(receipt.text)).toMatchObject({
      format: 'ledgerbus-receipt/v1',
      message: { id: 'one' },
    });
    const page = (await request('GET', '/console/messages/received/demo/0/two', { cookie: session })).text;
    // The same JSON GET /v1/received/{topic}/{partition}/{id} returns.
    expect(page).toContain(escapeHtml(JSON.stringify(received, null, 2)));
    // Not a message of this organization: nothing to show.
    expect((await request('GET', '/console/messages/received/demo/0/one', { cookie: session })).status).toBe(
      404,
    );
    expect(
      (await request('GET', '/console/messages/sent/demo/two/receipt', { cookie: session })).status,
    ).toBe(404);
    const unknown = await request('GET', '/console/nope', { cookie: session });
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('There is no such console page.');
    expect((await request('GET', '/console/nope')).location).toBe('/console/login');
    // A path that only looks like the console's reaches no REST route without the bearer token.
    for (const path of [
      '/console/../v1/received',
      '/console/%2e%2e/v1/received',
      '/console%2F..%2Fv1/received',
    ])
      expect((await request('GET', path)).status, path).not.toBe(200);
  });

  it('serve the stylesheet, the script and the icon without a session', async () => {
    for (const [name, type] of [
      ['console.css', 'text/css'],
      ['live.js', 'text/javascript'],
      ['favicon.svg', 'image/svg+xml'],
    ] as const) {
      const answer = await request('GET', `/console/assets/${name}`);
      expect(answer.status, name).toBe(200);
      expect(answer.headers.get('content-type')).toContain(type);
    }
    expect((await request('GET', '/console/assets/other.js')).status).toBe(404);
  });
});

describe('live updates', () => {
  function open(session: string | undefined, headers: Record<string, string> = {}): WebSocket {
    return new WebSocket(`${server.url.replace('http', 'ws')}/console/events`, {
      headers: { ...(session === undefined ? {} : { cookie: `${sessionCookie}=${session}` }), ...headers },
    });
  }

  it('need a session and this origin', async () => {
    for (const [session, headers, status] of [
      [undefined, {}, 401],
      ['forged', {}, 401],
      [await login(), { origin: 'http://attacker.example' }, 403],
    ] as const) {
      const socket = open(session, headers);
      socket.on('error', () => undefined);
      const refused = await new Promise<number>((resolve) =>
        socket.once('unexpected-response', (request, response) => {
          resolve(response.statusCode ?? 0);
          request.destroy();
        }),
      );
      expect(refused).toBe(status);
    }
  });

  it('push new rows and state changes, and close when the session ends', async () => {
    const { Readable } = await import('node:stream');
    await connector.send('demo', [{ id: 'before', to: ['org2'], value: Readable.from([Buffer.from('x')]) }]);
    const session = await login();
    const socket = open(session);
    const updates: { type: string; message: { id: string; state?: string; href: string } }[] = [];
    socket.on('message', (data) => updates.push(JSON.parse(String(data)) as (typeof updates)[number]));
    await new Promise((resolve) => socket.once('open', resolve));
    const until = async (what: string, test: () => boolean): Promise<void> => {
      const deadline = Date.now() + 5_000;
      while (!test()) {
        if (Date.now() > deadline) throw new Error(`no ${what}: ${JSON.stringify(updates)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await until('snapshot', () => updates.some((update) => update.message.id === 'before'));
    await connector.send('demo', [{ id: 'after', to: ['org2'], value: Readable.from([Buffer.from('x')]) }]);
    await until('new sent row', () =>
      updates.some((update) => update.type === 'sent' && update.message.id === 'after'),
    );
    connector.states.set('demo/before', 'COMPLETED');
    await until('state change', () =>
      updates.some((update) => update.message.id === 'before' && update.message.state === 'COMPLETED'),
    );
    connector.deliver({ topic: 'demo', id: 'incoming', value: Buffer.from('y') });
    await until('received row', () =>
      updates.some(
        (update) =>
          update.type === 'received' && update.message.href === '/console/messages/received/demo/0/incoming',
      ),
    );
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    const page = await request('GET', '/console/messages', { cookie: session });
    await request('POST', '/console/logout', { cookie: session, form: { _csrf: csrfOf(page.text) } });
    expect(await closed).toBe(1008);
  });
});

describe('the sent-messages listing on a connector database', () => {
  let directory: string;
  let database: ConnectorDatabase;

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), 'ledgerbus-console-sent-'));
    database = new ConnectorDatabase(directory);
  });

  afterEach(() => {
    database.close();
    rmSync(directory, { recursive: true, force: true });
  });

  function insert(id: string, createdAt: number): void {
    database.insertSent({
      id,
      topic: 'demo',
      partition: 0,
      group_id: 'demo/0',
      header: new Uint8Array([1, 2, 3]),
      storage_key: `${id}-key`,
      size: 10,
      recipients: JSON.stringify(['org2', 'org3']),
      created_at: createdAt,
    });
  }

  it('pages newest first, skips the parts of large values, and names each state', () => {
    for (let index = 1; index <= 7; index++) insert(`m${index}`, index);
    insert(`part-${'a'.repeat(32)}-0`, 8);
    insert(`part-${'a'.repeat(32)}-1`, 9);
    insert('m8', 10);
    database.markSent('demo', 'm1', 0, 1, new Uint8Array([9, 9]));
    database.markSent('demo', 'm2', 1, 1, new Uint8Array([9, 9]));
    database.markSent('demo', 'm3', 2, 2, new Uint8Array([9, 9]));
    database.markSent('demo', 'm4', 3, 2, new Uint8Array([9, 9]));
    database.updateLifecycle('demo', 'm2', 'ACCEPTED', ['org2']);
    database.updateLifecycle('demo', 'm3', 'COMPLETED', ['org2', 'org3']);
    database.updateLifecycle('demo', 'm4', 'EXPIRED', []);
    const source = new DatabaseSentMessages(database);
    const first = source.page({ limit: 3 });
    expect(first.map((row) => row.id)).toEqual(['m8', 'm7', 'm6']);
    const second = source.page({ limit: 3, before: first.at(-1)!.position });
    expect(second.map((row) => row.id)).toEqual(['m5', 'm4', 'm3']);
    const rest = source.page({ limit: 3, before: second.at(-1)!.position });
    expect(rest.map((row) => [row.id, row.state])).toEqual([
      ['m2', 'DELIVERED'],
      ['m1', 'ACCEPTED'],
    ]);
    expect(second.map((row) => row.state)).toEqual(['PUBLISHING', 'EXPIRED', 'COMPLETED']);
    expect(rest[0]).toMatchObject({
      recipients: ['org2', 'org3'],
      deliveredTo: ['org2'],
      offset: 1,
      encryptedSize: 10,
    });
    expect(source.get('demo', 'm3')).toMatchObject({
      id: 'm3',
      height: 2,
      proof: Buffer.from([9, 9]).toString('base64'),
    });
    expect(source.get('demo', `part-${'a'.repeat(32)}-0`)).toBeUndefined();
    expect(source.get('demo', 'none')).toBeUndefined();
    // Parts skipped, the page is still full.
    expect(source.page({ limit: 2, before: 11 }).map((row) => row.id)).toEqual(['m8', 'm7']);
  });
});

describe('the browser script', () => {
  it('type-checks against the DOM with strict options', () => {
    const file = join(assetDirectory, 'live.js');
    const program = ts.createProgram([file], {
      allowJs: true,
      checkJs: true,
      noEmit: true,
      strict: true,
      noUncheckedIndexedAccess: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
      types: [],
      skipLibCheck: true,
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    expect(diagnostics).toEqual([]);
  });
});
