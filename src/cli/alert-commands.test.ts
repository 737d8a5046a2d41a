// `ledgerbus alerts ...` as a user runs it against a connector's REST API: the alert routes
// (connector/alert-routes.ts) with the API's own error mapping, in front of real ConnectorAlerts and
// ConnectorAdmin talking over an RPC link to the node's real registry service, whose registry and
// alerts are a real __system state machine fed as Raft would feed it (only the Raft group itself is
// left out: each submitted transaction is applied at the next index). The CLI is parsed and run in
// this process, its output and exit status captured.
import { fastify } from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeWith } from '../codec/index.js';
import { ConnectorAdmin } from '../connector/admin.js';
import { ConnectorAlerts } from '../connector/alert-follower.js';
import { registerAlertRoutes } from '../connector/alert-routes.js';
import type { ConnectorEvent } from '../connector/api-types.js';
import { ConnectorEvents } from '../connector/events.js';
import { toWireError } from '../connector/http-api.js';
import { Lifecycle } from '../connector/lifecycle.js';
import { ErrorCode, errorInfo } from '../errors.js';
import type { AnomalyAlert } from '../intelligence/alert.js';
import { openRpcPair } from '../net/testing/rpc-pair.js';
import type { RpcPair } from '../net/testing/rpc-pair.js';
import { serveRegistry } from '../node/registry-service.js';
import type { RegistryHost } from '../node/registry-host.js';
import { nodeMethods } from '../protocol/client-methods.js';
import { TypedClient } from '../protocol/typed-rpc.js';
import {
  SystemHarness,
  adminEntry,
  connectorKey,
  freshNonce,
  nodeKey,
  nodeOwner,
  signing,
  testGenesis,
} from '../registry/testing/fixtures.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  decodeRegistryResult,
} from '../registry/admin-transactions.js';
import { raiseAlertTransaction } from '../registry/alerts.js';
import type { AlertResponse } from '../registry/alerts.js';
import { LiveRegistry, liveRegistryFromGenesis } from '../registry/live-registry.js';
import { RegistryView, genesisTopicEntries } from '../registry/registry-view.js';
import { createLogger } from '../runtime/logger.js';
import { main } from './main.js';

const token = 'alerts-cli-test-token';
const logger = createLogger({ name: 'test', level: 'silent' });
const harness = new SystemHarness();
const viewOf = (): RegistryView =>
  new RegistryView(harness.machine.latest, genesisTopicEntries(harness.machine.latest));
const nodeRegistry = new LiveRegistry(viewOf());
const pairs: RpcPair[] = [];
const servers: FastifyInstance[] = [];
const lifecycles: Lifecycle[] = [];
const loops: Promise<void>[] = [];

/** The node's side: its registry service over the real state machine, one entry per submission. */
const host: Pick<
  RegistryHost,
  'submitAdmin' | 'waitApplied' | 'groupStatus' | 'registry' | 'topicMachine' | 'system' | 'systemApplied'
> = {
  submitAdmin: (bytes) => {
    const transaction = decodeWith(adminTransactionSchema, bytes);
    const index = harness.applied() + 1;
    harness.submit(new Uint8Array()); // moves the harness's index on; the entry is applied at `index`
    const result = decodeRegistryResult(harness.machine.apply(index, adminEntry(transaction)));
    nodeRegistry.update(viewOf());
    return Promise.resolve({ index, group: SYSTEM_GROUP, result });
  },
  waitApplied: () => Promise.resolve(),
  groupStatus: () => [{ group: SYSTEM_GROUP, leader: 'n1', applied: harness.applied() }],
  registry: nodeRegistry as unknown as RegistryHost['registry'],
  topicMachine: () => undefined,
  system: harness.machine,
  get systemApplied() {
    return harness.applied();
  },
};

interface Party {
  readonly url: string;
  readonly alerts: ConnectorAlerts;
  readonly events: ConnectorEvent[];
  /** alertList calls answered so far (the follower's first one fixes where it starts). */
  readonly answered: () => number;
}
const parties = new Map<string, Party>();

/** `organization`'s connector: its alerts and admin clients on a link to the node, and its REST routes. */
async function connector(organization: string): Promise<Party> {
  const pair = await openRpcPair();
  pairs.push(pair);
  serveRegistry(pair.server, organization, host as RegistryHost, logger);
  const typed = new TypedClient(nodeMethods, () => pair.client);
  let answered = 0;
  const session: Pick<TypedClient<typeof nodeMethods>, 'call'> = {
    call: async (method, request) => {
      const answer = await typed.call(method, request);
      if (method === 'alertList') answered++;
      return answer;
    },
  };
  const signer = signing.signer(connectorKey(organization));
  const lifecycle = new Lifecycle();
  lifecycles.push(lifecycle);
  const events = new ConnectorEvents(logger);
  const seen: ConnectorEvent[] = [];
  events.onEvent((event) => seen.push(event));
  const admin = new ConnectorAdmin({
    organization,
    signer,
    registry: liveRegistryFromGenesis(testGenesis()),
    node: session,
  });
  const alerts = new ConnectorAlerts({
    organization,
    signer,
    events,
    lifecycle,
    logger,
    session,
    admin,
    pollIntervalMs: 20,
  });
  const app = fastify({ logger: false, ajv: { customOptions: { removeAdditional: false } } });
  app.setErrorHandler((error: unknown, _request, reply) => {
    const { status, ...body } = toWireError(error);
    return reply.status(status).send({ error: body });
  });
  registerAlertRoutes(app, alerts);
  await app.listen({ host: '127.0.0.1', port: 0 });
  servers.push(app);
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  return { url, alerts, events: seen, answered: () => answered };
}

let sequence = 0;

/** Node `node` raises, as its detector would, an alert about `subject` (a `flood`, by default). */
function raise(
  node: string,
  subject: string,
  extra: Partial<AnomalyAlert> = {},
  response?: AlertResponse,
): string {
  sequence++;
  const id = `${node}-${sequence}`;
  const transaction = raiseAlertTransaction(
    {
      alert: {
        organization: subject,
        rule: 'flood',
        severity: 'warning',
        score: 412,
        threshold: 100,
        features: [{ name: 'requests', value: 412, contribution: 4.12 }],
        summary: `${subject} sent 412 requests in 10 s (limit 100)`,
        firstAt: 1_700_000_000_000,
        lastAt: 1_700_000_010_000,
        observations: 412,
        suggested: 'rateLimit',
        ...extra,
      },
      id,
      node,
      organization: nodeOwner(node),
      ...(response === undefined ? {} : { response }),
      nonce: freshNonce(),
      timestamp: Date.now(),
    },
    signing.signer(nodeKey(node)),
  );
  expect(harness.submit(adminEntry(transaction))).toBe('OK');
  nodeRegistry.update(viewOf());
  return id;
}

beforeAll(async () => {
  for (const organization of ['sup', 'beta']) {
    const party = await connector(organization);
    parties.set(organization, party);
    loops.push(party.alerts.run());
  }
  // Each follower starts from the index its first answer names: alerts raised before are not news.
  await vi.waitFor(() => {
    for (const party of parties.values()) expect(party.answered()).toBeGreaterThan(0);
  });
}, 30_000);

afterAll(async () => {
  for (const lifecycle of lifecycles) lifecycle.stop();
  await Promise.all(loops);
  for (const server of servers) await server.close();
  await Promise.all(pairs.map((pair) => pair.close()));
});

/** Runs `ledgerbus ...args` in this process; its stdout, stderr and exit status. */
async function ledgerbus(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const before = process.exitCode;
  try {
    await main(['node', 'ledgerbus', ...args]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  const status = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { status, stdout, stderr };
}

const as = (organization: string): string[] => [
  '--connector',
  parties.get(organization)!.url,
  '--token',
  token,
];

describe('ledgerbus alerts', () => {
  it('lists alerts newest first, all for a supervisor and its own for a member; announces new ones', async () => {
    const aboutBeta = raise('n1', 'beta');
    const aboutAlpha = raise('n2', 'alpha', { rule: 'tampering', severity: 'critical' });

    const all = await ledgerbus('alerts', 'list', ...as('sup'), '--json');
    expect(all.status, all.stderr).toBe(0);
    const listed = JSON.parse(all.stdout) as { alerts: { id: string; subject: string }[] };
    expect(listed.alerts.map((alert) => alert.id).slice(0, 2)).toEqual([aboutAlpha, aboutBeta]);

    const own = await ledgerbus('alerts', 'list', ...as('beta'), '--json');
    expect(
      (JSON.parse(own.stdout) as { alerts: { subject: string }[] }).alerts.every((a) => a.subject === 'beta'),
    ).toBe(true);
    const text = await ledgerbus('alerts', 'list', '--org', 'beta', ...as('sup'));
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^ID +RAISED +SUBJECT +RULE +SEVERITY +SCORE +RESPONSE +NODES +STATE\n/);
    expect(text.stdout).toContain(`${aboutBeta} `);
    expect(text.stdout).not.toContain(aboutAlpha);
    expect(text.stdout).toContain('  beta sent 412 requests in 10 s (limit 100)');

    const forbidden = await ledgerbus('alerts', 'list', '--org', 'alpha', ...as('beta'));
    expect(forbidden.status).toBe(2);
    expect(forbidden.stderr).toContain(`error ${ErrorCode.Forbidden}: `);

    const recent = await ledgerbus('alerts', 'list', '--since', '1m', ...as('sup'), '--json');
    expect((JSON.parse(recent.stdout) as { alerts: unknown[] }).alerts.length).toBeGreaterThanOrEqual(2);
    const future = await ledgerbus('alerts', 'list', '--since', '2999-01-01T00:00:00Z', ...as('sup'));
    expect(future.stdout).toBe('no alerts\n');

    // The followers announce what each may see, once.
    await vi.waitFor(() => {
      const ids = (party: string): string[] =>
        parties.get(party)!.events.flatMap((event) => (event.type === 'alert' ? [event.alert.id] : []));
      expect(ids('sup')).toEqual([aboutBeta, aboutAlpha]);
      expect(ids('beta')).toEqual([aboutBeta]);
    });
  });

  it('acknowledges (supervisors only), lifting the quota; --suspend confirms a proposed suspension', async () => {
    const limited = raise(
      'n1',
      'beta',
      { rule: 'replay-burst' },
      { kind: 'rateLimit', requestsPerSecond: 25, durationMs: 60_000 },
    );
    expect(harness.machine.activeRateLimit('beta', Date.now())).toBe(25);

    const refused = await ledgerbus('alerts', 'ack', limited, ...as('beta'));
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain(`error ${ErrorCode.AdminRejected}: NOT_ALLOWED`);

    const acked = await ledgerbus('alerts', 'ack', limited, '--note', 'known batch job', ...as('sup'));
    expect(acked.status, acked.stderr).toBe(0);
    expect(acked.stdout).toMatch(
      new RegExp(`^acknowledged alert ${limited} about beta \\(__system index \\d+\\)\\n$`),
    );
    expect(harness.machine.alert(limited)?.ack).toMatchObject({ by: 'sup', note: 'known batch job' });
    expect(harness.machine.activeRateLimit('beta', Date.now())).toBeUndefined();

    const again = await ledgerbus('alerts', 'ack', limited, ...as('sup'));
    expect(again.stderr).toContain('ALREADY_EXISTS');

    const unknown = await ledgerbus('alerts', 'ack', 'no-such-alert', ...as('sup'));
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain(`error ${ErrorCode.AlertNotFound}: `);
    expect(unknown.stderr).toContain(`what to do: ${errorInfo(ErrorCode.AlertNotFound).remedy}`);

    const proposal = raise(
      'n1',
      'alpha',
      { rule: 'credential-misuse', severity: 'critical' },
      { kind: 'proposeSuspension' },
    );
    expect(harness.machine.latest.organizations.get('alpha')?.status).toBe('APPROVED');
    const suspended = await ledgerbus('alerts', 'ack', proposal, '--suspend', ...as('sup'), '--json');
    expect(suspended.status, suspended.stderr).toBe(0);
    expect(JSON.parse(suspended.stdout)).toMatchObject({
      id: proposal,
      subject: 'alpha',
      suspended: { organization: 'alpha' },
    });
    expect(harness.machine.latest.organizations.get('alpha')?.status).toBe('SUSPENDED');
  });

  it('shows and sets the policy, changing only what is named', async () => {
    const shown = await ledgerbus('alerts', 'policy', ...as('beta'));
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toBe(
      [
        'ledger severity    warning and above go on the ledger',
        'rate limit         down to 20/s for at most 5m',
        'propose suspension allowed (a supervisor decides)',
        '',
      ].join('\n'),
    );

    const set = await ledgerbus(
      'alerts',
      'policy',
      'set',
      '--rate-limit-max-duration',
      '90s',
      '--no-propose-suspension',
      ...as('sup'),
      '--json',
    );
    expect(set.status, set.stderr).toBe(0);
    expect(harness.machine.alertPolicy()).toEqual({
      ledgerSeverityMin: 'warning',
      rateLimit: { requestsPerSecondMin: 20, durationMsMax: 90_000 },
      proposeSuspension: false,
    });
    expect((await ledgerbus('alerts', 'policy', 'set', '--no-rate-limit', ...as('sup'))).status).toBe(0);
    expect(harness.machine.alertPolicy().rateLimit).toBeUndefined();

    const member = await ledgerbus('alerts', 'policy', 'set', '--ledger-severity', 'info', ...as('beta'));
    expect(member.stderr).toContain('NOT_ALLOWED');
    const nothing = await ledgerbus('alerts', 'policy', 'set', ...as('sup'));
    expect(nothing.stderr).toContain(`error ${ErrorCode.BadConfig}: nothing to change`);
    const contradiction = await ledgerbus(
      'alerts',
      'policy',
      'set',
      '--no-rate-limit',
      '--rate-limit-min',
      '5',
      ...as('sup'),
    );
    expect(contradiction.stderr).toContain('contradict');
    const badDuration = await ledgerbus(
      'alerts',
      'policy',
      'set',
      '--rate-limit-max-duration',
      'soon',
      ...as('sup'),
    );
    expect(badDuration.stderr).toContain(`error ${ErrorCode.SchemaMismatch}: `);
  });

  // Last: it suspends beta.
  it('still suspends with --suspend when the alert was acknowledged already (a retried ack --suspend)', async () => {
    const alert = raise('n3', 'beta', { rule: 'credential-misuse', severity: 'critical' });
    // (n3: alpha's n1 was suspended above.) As if an earlier `ack --suspend` recorded the acknowledgement and then lost its suspension.
    expect((await ledgerbus('alerts', 'ack', alert, ...as('sup'))).status).toBe(0);
    expect(harness.machine.latest.organizations.get('beta')?.status).toBe('APPROVED');
    const retried = await ledgerbus('alerts', 'ack', alert, '--suspend', ...as('sup'), '--json');
    expect(retried.status, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({
      id: alert,
      subject: 'beta',
      suspended: { organization: 'beta' },
    });
    expect(harness.machine.latest.organizations.get('beta')?.status).toBe('SUSPENDED');
    // Without --suspend, acknowledging twice is still refused.
    expect((await ledgerbus('alerts', 'ack', alert, ...as('sup'))).stderr).toContain('ALREADY_EXISTS');
  });
});
