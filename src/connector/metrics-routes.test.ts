// GET /metrics and GET /readyz on real connectors (issue 19), on a whole network in the test
// process, every hop over real TLS: 4 nodes running the demo partition, org1 sending to org2 through
// its REST API. The counters must be exact — N sends are N acceptances, N completions at the sender
// and N receptions at the recipient, a retried id or a second watcher round adds nothing — and the
// scraped text must pass `promtool check metrics`. Readiness is 503 before the connector started,
// after its node stopped and once it stopped itself, 200 in between.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutConnector, startLayoutNode } from '../../test/support/in-process-node.js';
import { waitFor } from '../../test/support/processes.js';
import { ensureDevnetLayout } from '../cli/devnet-layout.js';
import type { DevnetLayout } from '../cli/devnet-layout.js';
import type { MessageStatus, SendResult } from './api-types.js';
import type { Connector } from './connector.js';
import { startHttpApi } from './http-api.js';
import type { HttpApiServer } from './http-api.js';
import {
  counterValue,
  parseExposition,
  promtoolCheck,
  promtoolRequired,
  sampleValue,
} from '../testing/exposition.js';
import type { Sample } from '../testing/exposition.js';

/** Nodes listen on base+1..4 (the devnet layout); the APIs here take free ports. */
const basePort = 26660;
const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-metrics-routes-'));
let layout: DevnetLayout;
type LedgerbusNode = Awaited<ReturnType<typeof startLayoutNode>>;
const nodes: LedgerbusNode[] = [];
const stoppedNodes = new Set<LedgerbusNode>();
const connectors = new Map<string, Connector>();
const stoppedConnectors = new Set<Connector>();
const apis = new Map<string, { server: HttpApiServer; token: string }>();

async function startConnector(organization: string, start: boolean): Promise<void> {
  const { connector, config } = await layoutConnector(join(layout.directory, organization, 'connector.yaml'));
  if (start) connector.start();
  connectors.set(organization, connector);
  const server = await startHttpApi({
    api: connector,
    host: '127.0.0.1',
    port: 0,
    token: config.api.token,
    closeGraceMs: 500,
  });
  apis.set(organization, { server, token: config.api.token });
}

beforeAll(async () => {
  layout = ensureDevnetLayout({ directory, basePort, messageBytesMax: 1024 * 1024 });
  for (const path of layout.nodeConfigs) nodes.push(await startLayoutNode(path));
  await startConnector('org1', true);
  await startConnector('org2', true);
  // Left unstarted: the readiness test starts it.
  await startConnector('org3', false);
}, 60_000);

afterAll(async () => {
  for (const { server } of apis.values()) await server.close();
  for (const connector of connectors.values()) if (!stoppedConnectors.has(connector)) await connector.stop();
  for (const node of nodes) if (!stoppedNodes.has(node)) await node.stop();
  rmSync(directory, { recursive: true, force: true });
}, 60_000);

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly headers: Headers;
}

/** One request to `organization`'s API, with its token unless `token` says otherwise (null: none). */
async function call(
  organization: string,
  method: string,
  path: string,
  options: { body?: Uint8Array | object; token?: string | null } = {},
): Promise<Answer> {
  const api = apis.get(organization)!;
  const token = options.token === undefined ? api.token : options.token;
  const json = options.body !== undefined && !(options.body instanceof Uint8Array);
  const response = await fetch(`${api.server.url}${path}`, {
    method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(options.body === undefined
        ? {}
        : { 'content-type': json ? 'application/json' : 'application/octet-stream' }),
    },
    ...(options.body === undefined
      ? {}
      : { body: json ? JSON.stringify(options.body) : (options.body as Uint8Array) }),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

async function scrape(organization: string): Promise<{ text: string; samples: Sample[] }> {
  const answer = await call(organization, 'GET', '/metrics');
  expect(answer.status, answer.text).toBe(200);
  return { text: answer.text, samples: parseExposition(answer.text) };
}

const demo = { topic: 'demo' };

/** The counter `name` of `organization` now, minus its value in `before`. */
async function risen(
  organization: string,
  before: readonly Sample[],
  name: string,
  labels: Record<string, string> = demo,
): Promise<number> {
  const { samples } = await scrape(organization);
  return counterValue(samples, name, labels) - counterValue(before, name, labels);
}

async function send(id: string, value: Uint8Array): Promise<Answer> {
  return call('org1', 'POST', `/v1/topics/demo/messages?to=org2&id=${encodeURIComponent(id)}`, {
    body: value,
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('GET /metrics', () => {
  it('needs the API token', async () => {
    for (const token of [null, 'wrong-token']) {
      const refused = await call('org1', 'GET', '/metrics', { token });
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      expect(refused.text).not.toContain('ledgerbus_');
    }
    const served = await call('org1', 'GET', '/metrics');
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(served.text).toContain('# TYPE ledgerbus_messages_accepted_total counter');
  });
});

/** The sends of the counting test, kept for the tests after it. */
const sent: { id: string; value: Uint8Array; result: SendResult }[] = [];

describe('the message counters', () => {
  /** Values above 4 KiB are fetched by the recipient; smaller ones travel inside their publish. */
  const fetchedBytes = 16 * 1024;
  const inlineBytes = 1024;
  const count = 25;

  it('count N sends org1 → org2 exactly: N accepted, delivered and completed at org1, N received at org2', async () => {
    const org1Before = (await scrape('org1')).samples;
    const org2Before = (await scrape('org2')).samples;
    const run = randomBytes(4).toString('hex');
    const messages = Array.from({ length: count }, (_, index) => ({
      id: `metrics-${run}-${index}`,
      value: randomBytes(index % 2 === 0 ? inlineBytes : fetchedBytes),
    }));
    // All at once: concurrent sends share signed batches, and each message must still count once.
    const answers = await Promise.all(messages.map(({ id, value }) => send(id, value)));
    for (const [index, answer] of answers.entries()) {
      expect(answer.status, answer.text).toBe(200);
      sent.push({ ...messages[index]!, result: JSON.parse(answer.text) as SendResult });
    }
    // Accepted is counted as the send returns: no waiting.
    expect(await risen('org1', org1Before, 'ledgerbus_messages_accepted_total')).toBe(count);
    expect(
      (await scrape('org1')).samples.filter((sample) => sample.name === 'ledgerbus_messages_rejected_total'),
    ).toEqual([]);

    await waitFor(
      'every message COMPLETED on the ledger',
      async () => {
        for (const { id } of sent) {
          const status = await call('org1', 'GET', `/v1/topics/demo/messages/${id}/status`);
          if (status.status !== 200 || (JSON.parse(status.text) as MessageStatus).state !== 'COMPLETED')
            return undefined;
        }
        return true;
      },
      60_000,
      250,
    );
    // The delivery watcher records what the ledger says about once a second.
    await waitFor(
      'org1 to record every completion',
      async () =>
        (await risen('org1', org1Before, 'ledgerbus_messages_completed_total')) >= count ? true : undefined,
      30_000,
      100,
    );
    await waitFor(
      'org2 to count every message received',
      async () =>
        (await risen('org2', org2Before, 'ledgerbus_messages_received_total')) >= count ? true : undefined,
      30_000,
      100,
    );
    // More watcher and consumer rounds go by: nothing may be counted twice.
    await sleep(2_500);
    const org1 = (await scrape('org1')).samples;
    const org2 = (await scrape('org2')).samples;
    const rise = (now: readonly Sample[], before: readonly Sample[], name: string): number =>
      counterValue(now, name, demo) - counterValue(before, name, demo);
    expect(rise(org1, org1Before, 'ledgerbus_messages_accepted_total')).toBe(count);
    expect(rise(org1, org1Before, 'ledgerbus_messages_delivered_total')).toBe(count);
    expect(rise(org1, org1Before, 'ledgerbus_messages_completed_total')).toBe(count);
    expect(rise(org1, org1Before, 'ledgerbus_messages_expired_total')).toBe(0);
    expect(rise(org2, org2Before, 'ledgerbus_messages_received_total')).toBe(count);
    // org2 sent nothing, org1 received nothing.
    expect(rise(org2, org2Before, 'ledgerbus_messages_accepted_total')).toBe(0);
    expect(rise(org1, org1Before, 'ledgerbus_messages_received_total')).toBe(0);

    // The fetched payloads' ciphertext, as org1 served it and org2 took it in: exactly what was sent.
    const fetched = sent.filter(({ value }) => value.length === fetchedBytes);
    const ciphertext = fetched.reduce((total, { result }) => total + result.size, 0);
    const untyped = (now: readonly Sample[], before: readonly Sample[], name: string): number =>
      counterValue(now, name) - counterValue(before, name);
    expect(untyped(org1, org1Before, 'ledgerbus_payload_bytes_out_total')).toBe(ciphertext);
    expect(untyped(org2, org2Before, 'ledgerbus_payload_bytes_in_total')).toBe(ciphertext);
    expect(untyped(org2, org2Before, 'ledgerbus_payload_fetch_duration_seconds_count')).toBe(fetched.length);
    expect(untyped(org1, org1Before, 'ledgerbus_publish_duration_seconds_count')).toBe(count);
  }, 120_000);

  it('does not count a retried id the ledger accepted before, nor its replayed acknowledgement', async () => {
    const before = (await scrape('org1')).samples;
    const first = sent[0]!;
    const again = await send(first.id, first.value);
    expect(again.status, again.text).toBe(200);
    expect(JSON.parse(again.text)).toMatchObject({ id: first.id, offset: first.result.offset });
    expect(await risen('org1', before, 'ledgerbus_messages_accepted_total')).toBe(0);
    // It is a send that succeeded all the same.
    expect(await risen('org1', before, 'ledgerbus_publish_duration_seconds_count', {})).toBe(1);
  });

  it('counts a ledger refusal once, by its reason code, and not as an acceptance', async () => {
    const before = (await scrape('org1')).samples;
    const id = `taken-${randomBytes(4).toString('hex')}`;
    // org2 takes the id first: org1's message of that id is a MESSAGE_ID_CONFLICT on the ledger.
    const taken = await call('org2', 'POST', `/v1/topics/demo/messages?to=org1&id=${id}`, {
      body: randomBytes(100),
    });
    expect(taken.status, taken.text).toBe(200);
    const refused = await send(id, randomBytes(100));
    expect(refused.status).toBe(422);
    expect(JSON.parse(refused.text)).toMatchObject({
      error: { code: 'MESSAGE_REJECTED', reason: 'MESSAGE_ID_CONFLICT' },
    });
    const conflict = { topic: 'demo', reason: 'MESSAGE_ID_CONFLICT' };
    expect(await risen('org1', before, 'ledgerbus_messages_rejected_total', conflict)).toBe(1);
    expect(await risen('org1', before, 'ledgerbus_messages_accepted_total')).toBe(0);
    expect(await risen('org1', before, 'ledgerbus_publish_duration_seconds_count', {})).toBe(0);
  });
});

describe('the scrape-time gauges', () => {
  it('report a consumer group’s lag: the received messages of the topic past its committed sequence', async () => {
    const received = await connectors.get('org2')!.received({ topic: 'demo', after: 0, limit: 1000 });
    expect(received.length).toBeGreaterThanOrEqual(25);
    const lag = async (): Promise<number | undefined> =>
      sampleValue((await scrape('org2')).samples, 'ledgerbus_consume_lag_messages', {
        group: 'billing',
        topic: 'demo',
      });
    expect(await lag()).toBeUndefined();
    const commit = async (sequence: number): Promise<void> => {
      const answer = await call('org2', 'PUT', '/v1/consumer-groups/billing/topics/demo', {
        body: { sequence },
      });
      expect(answer.status, answer.text).toBe(200);
    };
    await commit(0);
    expect(await lag()).toBe(received.length);
    await commit(received[9]!.sequence);
    expect(await lag()).toBe(received.length - 10);
    await commit(received.at(-1)!.sequence);
    expect(await lag()).toBe(0);
  });

  it('report the database and payload storage sizes', async () => {
    const fetched = sent.filter(({ value }) => value.length > 4096);
    // The payload storage's size is walked at most every 10 s: it may take that long to show.
    const sizes = await waitFor(
      "org2's payload storage to hold what it fetched",
      async () => {
        const { samples } = await scrape('org2');
        const payloads = sampleValue(samples, 'ledgerbus_storage_bytes', { component: 'payloads' }) ?? 0;
        const database = sampleValue(samples, 'ledgerbus_storage_bytes', { component: 'database' }) ?? 0;
        return payloads >= fetched.reduce((total, { value }) => total + value.length, 0)
          ? { payloads, database }
          : undefined;
      },
      30_000,
      500,
    );
    expect(sizes.database).toBeGreaterThan(0);
  }, 40_000);

  it('scrape as text promtool finds nothing to say about', async (context) => {
    for (const organization of ['org1', 'org2']) {
      const { text } = await scrape(organization);
      const check = promtoolCheck(text);
      if (check === undefined) {
        if (promtoolRequired()) throw new Error('promtool is not installed, and CI=true requires it');
        context.skip();
        return;
      }
      expect(check, organization).toEqual({ status: 0, output: '' });
    }
  });
});

describe('GET /readyz', () => {
  interface ReadyBody {
    status: string;
    failing?: { check: string; reason: string }[];
  }
  const ready = async (organization: string): Promise<{ status: number; body: ReadyBody }> => {
    // Public: no token.
    const answer = await call(organization, 'GET', '/readyz', { token: null });
    return { status: answer.status, body: JSON.parse(answer.text) as ReadyBody };
  };
  const checks = (body: ReadyBody): string[] => (body.failing ?? []).map(({ check }) => check).sort();

  it('is 200 on a running connector, 503 naming what is missing before it started', async () => {
    expect(await ready('org1')).toEqual({ status: 200, body: { status: 'ready' } });
    const unstarted = await ready('org3');
    expect(unstarted.status).toBe(503);
    expect(unstarted.body.status).toBe('not_ready');
    expect(checks(unstarted.body)).toEqual(['nodes', 'started']);
    for (const { reason } of unstarted.body.failing ?? []) expect(reason).not.toMatch(/org3|127\.0\.0\.1|\//);
    connectors.get('org3')!.start();
    await waitFor(
      'org3 to be ready once started',
      async () => ((await ready('org3')).status === 200 ? true : undefined),
      15_000,
      100,
    );
    expect(await ready('org3')).toEqual({ status: 200, body: { status: 'ready' } });
  });

  it('is 503 once its node stopped, and once the connector stopped', async () => {
    // org3's only node is node3; the partition goes on with the other three.
    const node3 = nodes[2]!;
    await node3.stop();
    stoppedNodes.add(node3);
    const down = await waitFor(
      'org3 to see that it reaches no node',
      async () => {
        const answer = await ready('org3');
        return answer.status === 503 ? answer : undefined;
      },
      15_000,
      100,
    );
    expect(checks(down.body)).toEqual(['nodes']);
    expect(await ready('org1')).toEqual({ status: 200, body: { status: 'ready' } });
    const org3 = connectors.get('org3')!;
    await org3.stop();
    stoppedConnectors.add(org3);
    const stopped = await ready('org3');
    expect(stopped.status).toBe(503);
    expect(checks(stopped.body)).toEqual(['database', 'nodes', 'started', 'storage']);
  });
});
