import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { MemoryConnector, generatedStream } from '../client/testing/memory-connector.js';
import type { ConnectorEvent, ReceivedMessage, SendResult } from './api-types.js';
import { startHttpApi, toWireError } from './http-api.js';
import type { HttpApiServer } from './http-api.js';
import { buildOpenApiDocument } from './openapi.js';

const token = 'test-token-0123456789abcdef';
const auth = { authorization: `Bearer ${token}` };

let connector: MemoryConnector;
let server: HttpApiServer;

beforeEach(async () => {
  connector = new MemoryConnector('org1');
  server = await startHttpApi({ api: connector, host: '127.0.0.1', port: 0, token });
});

afterEach(async () => {
  await server.close();
});

async function call(
  method: string,
  path: string,
  init: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...auth,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text.length === 0 ? undefined : (JSON.parse(text) as unknown),
    headers: response.headers,
  };
}

describe('authentication', () => {
  it('refuses requests without a token or with a wrong one', async () => {
    for (const headers of [
      { authorization: '' },
      { authorization: 'Bearer wrong-token' },
      { authorization: token },
    ]) {
      const response = await call('GET', '/v1/received', { headers });
      expect(response.status).toBe(401);
      expect(response.body).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect((await call('GET', '/v1/received')).status).toBe(200);
  });

  it('refuses unknown routes without a token before saying they do not exist', async () => {
    expect((await call('GET', '/v1/nope', { headers: { authorization: '' } })).status).toBe(401);
    const known = await call('GET', '/v1/nope');
    expect(known.status).toBe(404);
    expect(known.body).toMatchObject({ error: { code: 'UNKNOWN_METHOD' } });
  });

  it('serves /healthz and the OpenAPI document without a token', async () => {
    const health = await call('GET', '/healthz', { headers: { authorization: '' } });
    expect(health).toMatchObject({ status: 200, body: { status: 'ok', authenticated: false } });
    expect((await call('GET', '/healthz')).body).toEqual({
      status: 'ok',
      authenticated: true,
      organization: 'org1',
    });
    expect((await call('GET', '/v1/openapi.json', { headers: { authorization: '' } })).status).toBe(200);
  });

  it('serves /readyz without a token, and /metrics only with it', async () => {
    // The in-memory connector has no readiness check: nothing to wait for, always ready.
    const ready = await call('GET', '/readyz', { headers: { authorization: '' } });
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready' } });
    expect(ready.headers.get('cache-control')).toBe('no-store');
    const failing = [{ check: 'nodes', reason: 'no open connection to any of this organization’s nodes' }];
    Object.assign(connector, { readiness: async () => ({ ready: false, failing }) });
    expect(await call('GET', '/readyz', { headers: { authorization: '' } })).toMatchObject({
      status: 503,
      body: { status: 'not_ready', failing },
    });

    expect((await call('GET', '/metrics', { headers: { authorization: '' } })).status).toBe(401);
    // A connector that keeps no metrics says so, to an authenticated caller only.
    expect(await call('GET', '/metrics')).toMatchObject({
      status: 404,
      body: { error: { code: 'UNKNOWN_METHOD' } },
    });
    const text = '# HELP ledgerbus_up 1\n# TYPE ledgerbus_up gauge\nledgerbus_up 1\n';
    Object.assign(connector, {
      scrapeMetrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', text }),
    });
    const response = await fetch(`${server.url}/metrics`, { headers: auth });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await response.text()).toBe(text);
  });

  it('authenticates WebSockets by header or ?token=, and refuses others', async () => {
    const wsUrl = server.url.replace('http', 'ws');
    const opened = (socket: WebSocket): Promise<number> =>
      new Promise((resolve) => {
        socket.once('open', () => {
          socket.close();
          resolve(101);
        });
        socket.once('unexpected-response', (request, response: IncomingMessage) => {
          request.destroy();
          resolve(response.statusCode ?? 0);
        });
      });
    expect(await opened(new WebSocket(`${wsUrl}/v1/events`, { headers: auth }))).toBe(101);
    expect(await opened(new WebSocket(`${wsUrl}/v1/events?token=${token}`))).toBe(101);
    expect(await opened(new WebSocket(`${wsUrl}/v1/events?token=wrong`))).toBe(401);
    expect(await opened(new WebSocket(`${wsUrl}/v1/events`))).toBe(401);
  });
});

describe('sending', () => {
  it('streams a 200 MiB body through POST /messages without buffering it', async () => {
    const size = 200 * 1024 * 1024;
    const expected = createHash('sha256');
    // "Not buffered" is measured in bytes, not in RSS or time: the bytes the client has written minus
    // the bytes the connector has read, taken at every chunk the client writes. Streaming keeps that
    // to what the buffers between the two can hold (stream high-water marks of ~64 KiB each, and the
    // kernel's loopback socket buffers, at most tcp_wmem + tcp_rmem maxima: 4 + 32 MiB on Linux by
    // default); a server that read the whole body before handing it on would have all 200 MiB in
    // flight. Unlike RSS, this does not depend on when the garbage collector runs or how loaded the
    // machine is.
    let written = 0;
    let read = 0;
    let inFlightMax = 0;
    const send = connector.send.bind(connector);
    connector.send = (topic, messages) =>
      send(
        topic,
        messages.map((message) => {
          const counted = new Transform({
            transform(chunk: Buffer, _encoding, callback) {
              read += chunk.length;
              callback(null, chunk);
            },
          });
          pipeline(message.value, counted).catch((error: unknown) => counted.destroy(error as Error));
          return { ...message, value: counted };
        }),
      );
    const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = httpRequest(
        `${server.url}/v1/topics/demo/messages?to=org2,org3&key=${encodeURIComponent(Buffer.from('k1').toString('base64'))}&id=big-1`,
        { method: 'POST', headers: { ...auth, 'content-type': 'video/mp4' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      request.on('error', reject);
      const tee = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          expected.update(chunk);
          written += chunk.length;
          inFlightMax = Math.max(inFlightMax, written - read);
          callback(null, chunk);
        },
      });
      pipeline(generatedStream(size, 7), tee, request).catch(reject);
    });
    expect(response.status).toBe(200);
    const result = JSON.parse(response.body) as SendResult;
    expect(result).toMatchObject({ id: 'big-1', topic: 'demo', size });
    const sent = connector.sent[0];
    expect(sent).toMatchObject({
      size,
      sha256: expected.digest('hex'),
      to: ['org2', 'org3'],
      contentType: 'video/mp4',
    });
    expect(Buffer.from(sent?.key ?? []).toString()).toBe('k1');
    expect(read).toBe(size);
    expect(inFlightMax, 'bytes written by the client but not yet read by the connector').toBeLessThan(
      64 * 1024 * 1024,
    );
  });

  it('takes metadata from headers and never parses the body, whatever its content type', async () => {
    const messageHeaders = Buffer.from(
      JSON.stringify({ trace: Buffer.from('abc').toString('base64') }),
    ).toString('base64');
    const response = await fetch(`${server.url}/v1/topics/demo/messages`, {
      method: 'POST',
      headers: {
        ...auth,
        'content-type': 'application/json',
        'ledgerbus-to': 'org2',
        'ledgerbus-headers': messageHeaders,
      },
      body: '{"not": "parsed"',
    });
    expect(response.status).toBe(200);
    expect(connector.sent[0]).toMatchObject({ to: ['org2'], contentType: 'application/json', size: 16 });
    expect(Buffer.from(connector.sent[0]?.headers?.['trace'] ?? []).toString()).toBe('abc');
  });

  it('requires recipients and a base64 key', async () => {
    const noRecipients = await fetch(`${server.url}/v1/topics/demo/messages`, {
      method: 'POST',
      headers: auth,
      body: 'x',
    });
    expect(noRecipients.status).toBe(400);
    expect(await noRecipients.json()).toMatchObject({ error: { code: 'SCHEMA_MISMATCH' } });
    const badKey = await fetch(`${server.url}/v1/topics/demo/messages?to=org2&key=***`, {
      method: 'POST',
      headers: auth,
      body: 'x',
    });
    expect(badKey.status).toBe(400);
  });

  it('enforces a configured body limit on streamed sends', async () => {
    const limited = await startHttpApi({
      api: connector,
      host: '127.0.0.1',
      port: 0,
      token,
      bodyBytesMax: 1024,
    });
    try {
      const declared = await fetch(`${limited.url}/v1/topics/demo/messages?to=org2`, {
        method: 'POST',
        headers: auth,
        body: Buffer.alloc(2048),
      });
      expect(declared.status).toBe(400);
      expect(await declared.json()).toMatchObject({ error: { code: 'OVERSIZE' } });
    } finally {
      await limited.close();
    }
  });

  it('sends a JSON batch of small messages in order', async () => {
    const response = await call('POST', '/v1/topics/demo/batch', {
      body: {
        messages: [
          {
            key: Buffer.from('a').toString('base64'),
            value: Buffer.from('one').toString('base64'),
            to: ['org2'],
          },
          {
            key: null,
            value: Buffer.from('two').toString('base64'),
            to: ['org2', 'org3'],
            id: 'm2',
            contentType: 'text/plain',
          },
        ],
      },
    });
    expect(response.status).toBe(200);
    const { results } = response.body as { results: SendResult[] };
    expect(results.map((result) => result.size)).toEqual([3, 3]);
    expect(results[1]?.id).toBe('m2');
    expect(connector.sent.map((record) => record.sha256)).toEqual(
      ['one', 'two'].map((text) => createHash('sha256').update(text).digest('hex')),
    );
  });

  it('validates batches: unknown fields, bad base64, too many messages, malformed JSON', async () => {
    const value = Buffer.from('x').toString('base64');
    const unknownField = await call('POST', '/v1/topics/demo/batch', {
      body: { messages: [{ value, to: ['org2'], tpo: 1 }] },
    });
    expect(unknownField).toMatchObject({ status: 400, body: { error: { code: 'SCHEMA_MISMATCH' } } });
    const badBase64 = await call('POST', '/v1/topics/demo/batch', {
      body: { messages: [{ value: 'a', to: ['org2'] }] },
    });
    expect(badBase64).toMatchObject({ status: 400, body: { error: { code: 'SCHEMA_MISMATCH' } } });
    const tooMany = await call('POST', '/v1/topics/demo/batch', {
      body: { messages: Array.from({ length: 1025 }, () => ({ value, to: ['org2'] })) },
    });
    expect(tooMany.status).toBe(400);
    const malformed = await fetch(`${server.url}/v1/topics/demo/batch`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{"messages": [',
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: 'MALFORMED_ENCODING' } });
    expect(connector.sent).toHaveLength(0);
  });
});

describe('receiving', () => {
  it('long-polls /v1/received and wakes when a message arrives', async () => {
    // Deliver only once the poll is parked in the connector, found nothing and waits: instead of
    // sleeping and hoping the request got there, the test waits for the call itself. The connector's
    // received() registers its waiter before it returns its promise, so by then the wait has begun.
    const waitMs = 20_000;
    let parked!: (waited: number | undefined) => void;
    const parkedPoll = new Promise<number | undefined>((resolve) => (parked = resolve));
    const received = connector.received.bind(connector);
    connector.received = (options) => {
      const answer = received(options);
      parked(options.waitMs);
      return answer;
    };
    const started = Date.now();
    const pending = call('GET', `/v1/received?topic=demo&after=0&waitMs=${waitMs}`);
    expect(await parkedPoll).toBe(waitMs);
    connector.deliver({ topic: 'other', value: Buffer.from('not this one') });
    connector.deliver({ topic: 'demo', value: Buffer.from('hello') });
    const response = await pending;
    // Woken, not timed out: a poll that ran to its end answers waitMs after it started at the
    // earliest, and it started after `started`. Not a speed threshold: any answer before the
    // poll's own deadline came from the delivery, however slow the machine.
    expect(Date.now() - started).toBeLessThan(waitMs);
    const { messages } = response.body as { messages: ReceivedMessage[] };
    expect(messages.map((message) => [message.topic, message.sequence])).toEqual([['demo', 2]]);
  });

  it('pages with after and limit, and bounds limit and waitMs', async () => {
    for (let index = 0; index < 5; index += 1)
      connector.deliver({ topic: 'demo', value: Buffer.from(`m${index}`) });
    const page = (await call('GET', '/v1/received?after=2&limit=2')).body as { messages: ReceivedMessage[] };
    expect(page.messages.map((message) => message.sequence)).toEqual([3, 4]);
    expect((await call('GET', '/v1/received?limit=1001')).status).toBe(400);
    expect((await call('GET', '/v1/received?waitMs=30001')).status).toBe(400);
    expect((await call('GET', '/v1/latest-sequence')).body).toEqual({ sequence: 5 });
  });

  it('returns one received message, or 404', async () => {
    const message = connector.deliver({ topic: 'demo', value: Buffer.from('hello') });
    expect((await call('GET', `/v1/received/${message.id}`)).body).toEqual(message);
    expect(await call('GET', '/v1/received/nope')).toMatchObject({
      status: 404,
      body: { error: { code: 'MESSAGE_NOT_FOUND' } },
    });
    // Ids are the application's own and may be longer than the router's default parameter limit.
    const long = connector.deliver({ topic: 'demo', value: Buffer.from('x'), id: 'i'.repeat(300) });
    expect((await call('GET', `/v1/received/${long.id}`)).body).toEqual(long);
    expect((await call('GET', `/v1/received/demo/0/${long.id}`)).body).toEqual(long);
  });

  it('names a received message by topic, partition and id; the id alone only when it is unique', async () => {
    // Ids are unique per partition: two senders may use one id on two topics (or partitions).
    const mine = connector.deliver({
      topic: 'demo',
      value: Buffer.from('demo one'),
      id: 'same',
      sender: 'org3',
    });
    const other = connector.deliver({
      topic: 'elsewhere',
      partition: 2,
      value: Buffer.from('other one'),
      id: 'same',
      sender: 'org4',
    });
    expect((await call('GET', '/v1/received/demo/0/same')).body).toEqual(mine);
    expect((await call('GET', '/v1/received/elsewhere/2/same')).body).toEqual(other);
    const payload = await fetch(`${server.url}/v1/received/elsewhere/2/same/payload`, { headers: auth });
    expect(await payload.text()).toBe('other one');
    expect(await call('GET', '/v1/received/elsewhere/0/same')).toMatchObject({
      status: 404,
      body: { error: { code: 'MESSAGE_NOT_FOUND' } },
    });
    expect((await call('GET', '/v1/received/demo/zero/same')).status).toBe(400);
    // Encoded slashes and the like stay inside the id segment.
    const odd = connector.deliver({ topic: 'demo', value: Buffer.from('odd'), id: 'a/b c' });
    expect((await call('GET', `/v1/received/demo/0/${encodeURIComponent(odd.id)}`)).body).toEqual(odd);

    for (const path of ['/v1/received/same', '/v1/received/same/payload']) {
      const ambiguous = await call('GET', path);
      expect(ambiguous.status).toBe(409);
      expect(ambiguous.body).toMatchObject({
        error: {
          code: 'AMBIGUOUS_MESSAGE_ID',
          retriable: false,
          candidates: [
            { topic: 'demo', partition: 0, id: 'same', sender: 'org3', path: '/v1/received/demo/0/same' },
            {
              topic: 'elsewhere',
              partition: 2,
              id: 'same',
              sender: 'org4',
              path: '/v1/received/elsewhere/2/same',
            },
          ],
        },
      });
    }
  });

  it('streams a payload download with its content type and length', async () => {
    const size = 32 * 1024 * 1024 + 3;
    const message = await connector.deliverGenerated({
      topic: 'demo',
      size,
      seed: 3,
      contentType: 'application/x-test',
    });
    const sha256 = message.sha256;
    const response = await fetch(`${server.url}/v1/received/${message.id}/payload`, { headers: auth });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-test');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-disposition')).toBe('attachment');
    expect(response.headers.get('content-length')).toBe(String(size));
    expect(response.headers.get('ledgerbus-sha256')).toBe(sha256);
    const hash = createHash('sha256');
    let received = 0;
    let chunks = 0;
    for await (const chunk of response.body ?? []) {
      hash.update(chunk);
      received += chunk.length;
      chunks += 1;
    }
    expect(received).toBe(size);
    expect(hash.digest('hex')).toBe(sha256);
    expect(chunks).toBeGreaterThan(1);
  });

  it('serves a recorded content type that is not a media type as application/octet-stream', async () => {
    for (const recorded of ['text/html\r\nSet-Cookie: a=b', 'html', 'text/plain\u0000', 'tëxt/plain']) {
      const message = connector.deliver({ topic: 'demo', value: Buffer.from('x'), contentType: recorded });
      const response = await fetch(`${server.url}/v1/received/demo/0/${message.id}/payload`, {
        headers: auth,
      });
      expect(response.status, JSON.stringify(recorded)).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/octet-stream');
      expect(response.headers.get('set-cookie')).toBeNull();
      expect(await response.text()).toBe('x');
    }
  });

  it('reads and commits consumer-group sequences', async () => {
    expect((await call('GET', '/v1/consumer-groups/g1/topics/demo')).body).toEqual({ sequence: 0 });
    expect((await call('PUT', '/v1/consumer-groups/g1/topics/demo', { body: { sequence: 7 } })).body).toEqual(
      { sequence: 7 },
    );
    expect((await call('GET', '/v1/consumer-groups/g1/topics/demo')).body).toEqual({ sequence: 7 });
    expect((await call('PUT', '/v1/consumer-groups/g1/topics/demo', { body: { sequence: -1 } })).status).toBe(
      400,
    );
  });
});

describe('status, receipts and errors', () => {
  it('serves status and receipt of a sent message', async () => {
    await call('POST', '/v1/topics/demo/batch', {
      body: { messages: [{ value: 'aGk=', to: ['org2'], id: 's1' }] },
    });
    expect((await call('GET', '/v1/topics/demo/messages/s1/status')).body).toMatchObject({
      id: 's1',
      state: 'ACCEPTED',
    });
    expect((await call('GET', '/v1/topics/demo/messages/s1/receipt')).body).toMatchObject({
      format: 'ledgerbus-receipt/v1',
      message: { id: 's1', recipients: ['org2'] },
    });
    // A partition, when given, is passed on (here: the message is on partition 0).
    expect((await call('GET', '/v1/topics/demo/messages/s1/status?partition=0')).status).toBe(200);
    expect((await call('GET', '/v1/topics/demo/messages/s1/status?partition=1')).status).toBe(404);
    expect((await call('GET', '/v1/topics/demo/messages/s1/receipt?partition=1&source=global')).status).toBe(
      404,
    );
    expect((await call('GET', '/v1/topics/demo/messages/s1/status?partition=-1')).status).toBe(400);
  });

  it('maps LedgerbusError codes to statuses and hides unexpected errors', async () => {
    connector.failNext('receipt', new LedgerbusError(ErrorCode.NotRecipient, 'org1 is not a recipient of x'));
    expect(await call('GET', '/v1/topics/demo/messages/x/receipt')).toMatchObject({
      status: 403,
      body: { error: { code: 'NOT_RECIPIENT', message: 'org1 is not a recipient of x', retriable: false } },
    });
    connector.failNext('status', new LedgerbusError(ErrorCode.Timeout, 'no answer', { retriable: true }));
    expect(await call('GET', '/v1/topics/demo/messages/x/status')).toMatchObject({
      status: 503,
      body: { error: { code: 'TIMEOUT', retriable: true } },
    });
    connector.failNext('send', new Error('SQLITE_BUSY at /var/lib/secret/path'));
    const hidden = await call('POST', '/v1/topics/demo/batch', {
      body: { messages: [{ value: 'aGk=', to: ['org2'] }] },
    });
    expect(hidden.status).toBe(500);
    expect(hidden.body).toMatchObject({ error: { code: 'INTERNAL' } });
    expect(JSON.stringify(hidden.body)).not.toContain('secret');
  });

  it('maps every code in the table', () => {
    const expected: [ErrorCode, number][] = [
      [ErrorCode.SchemaMismatch, 400],
      [ErrorCode.MalformedEncoding, 400],
      [ErrorCode.Oversize, 400],
      [ErrorCode.BadConfig, 400],
      [ErrorCode.Unauthorized, 401],
      [ErrorCode.NotRecipient, 403],
      [ErrorCode.NotApproved, 403],
      [ErrorCode.MessageNotFound, 404],
      [ErrorCode.PayloadNotFound, 404],
      [ErrorCode.TopicNotFound, 404],
      [ErrorCode.UnknownMethod, 404],
      [ErrorCode.AdminRejected, 409],
      [ErrorCode.AmbiguousMessageId, 409],
      [ErrorCode.MessageRejected, 422],
      [ErrorCode.Overloaded, 429],
      [ErrorCode.RateLimited, 429],
      [ErrorCode.Timeout, 503],
      [ErrorCode.ConnectionClosed, 503],
      [ErrorCode.StorageCorrupt, 500],
    ];
    for (const [code, status] of expected)
      expect(toWireError(new LedgerbusError(code, 'm')).status).toBe(status);
  });

  it('refuses a streamed send the connector rejects, with its code', async () => {
    connector.failNext('send', new LedgerbusError(ErrorCode.MessageRejected, 'TOPIC_CLOSED'));
    const response = await fetch(`${server.url}/v1/topics/demo/messages?to=org2`, {
      method: 'POST',
      headers: auth,
      body: Buffer.alloc(1024),
    });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({
      error: { code: 'MESSAGE_REJECTED', message: 'TOPIC_CLOSED' },
    });
  });
});

describe('events', () => {
  it('pushes each connector event as a JSON text frame, and unsubscribes on close', async () => {
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}/v1/events`, { headers: auth });
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const frames: ConnectorEvent[] = [];
    const got = new Promise<void>((resolve) =>
      socket.on('message', (data, isBinary) => {
        expect(isBinary).toBe(false);
        frames.push(JSON.parse(String(data)) as ConnectorEvent);
        if (frames.length === 2) resolve();
      }),
    );
    connector.emit({
      type: 'delivery.confirmed',
      id: 'm1',
      topic: 'demo',
      partition: 0,
      recipient: 'org2',
      height: 9,
    });
    connector.emit({
      type: 'message.failed',
      id: 'm2',
      topic: 'demo',
      partition: 0,
      code: 'HASH_MISMATCH',
      reason: 'bad',
    });
    await got;
    expect(frames.map((frame) => frame.type)).toEqual(['delivery.confirmed', 'message.failed']);
    expect(connector.listenerCount).toBe(1);
    socket.close();
    await new Promise((resolve) => socket.once('close', resolve));
    // The server unsubscribes when it sees the close, which may come a little after the client's:
    // poll for it with a deadline far beyond any scheduling delay (it was 0.5 s, short on a loaded VM).
    const deadline = Date.now() + 10_000;
    while (connector.listenerCount > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(connector.listenerCount).toBe(0);
  });
});

describe('OpenAPI', () => {
  it('documents every registered route', async () => {
    const document = (await call('GET', '/v1/openapi.json')).body as ReturnType<typeof buildOpenApiDocument>;
    expect(document.openapi).toBe('3.1.0');
    expect(server.routes.length).toBeGreaterThan(10);
    const missing = server.routes.filter((route) => {
      const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      return document.paths[path]?.[route.method.toLowerCase()] === undefined;
    });
    expect(missing).toEqual([]);
    // And nothing documented is missing from the server.
    const registered = new Set(
      server.routes.map((route) => `${route.method} ${route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`),
    );
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const method of Object.keys(operations))
        expect(registered).toContain(`${method.toUpperCase()} ${path}`);
    }
    for (const schema of ['SendResult', 'ReceivedMessage', 'MessageStatus', 'ReceiptBundle', 'Error']) {
      expect(document.components.schemas[schema]).toBeDefined();
    }
    expect(document.components.securitySchemes['bearerAuth']).toEqual({ type: 'http', scheme: 'bearer' });
  });

  it('resolves every $ref', () => {
    const document = buildOpenApiDocument();
    const refs = JSON.stringify(document).match(/"#\/components\/schemas\/([A-Za-z]+)"/g) ?? [];
    for (const ref of refs) {
      const name = ref.slice('"#/components/schemas/'.length, -1);
      expect(document.components.schemas[name], name).toBeDefined();
    }
  });
});
