import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDevnetLayout } from '../cli/devnet-layout.js';
import { decodeWith, encodeWith } from '../codec/index.js';
import { encodeClientRequest } from '../consensus/pbft/messages.js';
import { transactionResultSchema } from '../contracts/results.js';
import type { TransactionResult } from '../contracts/results.js';
import { encodePublish } from '../contracts/transactions.js';
import { SigningDomain, generateSigningKey, loadSigningKey } from '../crypto/index.js';
import type { Signer } from '../crypto/index.js';
import { isLedgerbusError } from '../errors.js';
import type { Observation } from '../intelligence/observations.js';
import type { Block } from '../ledger/block.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  decodeRegistryResult,
  encodeRegistryEntry,
  signAdminTransaction,
} from '../registry/admin-transactions.js';
import { defaultAlertPolicy } from '../registry/alerts.js';
import type { AlertPolicy } from '../registry/alerts.js';
import { liveRegistryFromGenesis } from '../registry/live-registry.js';
import { SystemStateMachine } from '../registry/system-state.js';
import { createLogger } from '../runtime/logger.js';
import {
  AnomalyService,
  adminActor,
  blockObservations,
  chooseResponse,
  reachesLedger,
} from './anomaly-service.js';
import type { AnomalyServiceOptions } from './anomaly-service.js';
import { loadNodeConfig } from './config.js';
import { serveMetrics } from './metrics-server.js';

const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-anomaly-service-'));
const layout = ensureDevnetLayout({ directory, basePort: 26500 });
const genesis = layout.network.genesis;
const signing = SigningDomain.of(genesis.network);
const nodeSigner = (index: number): Signer =>
  signing.signer(loadSigningKey(join(directory, `org${index}`, 'keys', 'node.key')));
const connectorSigner = (index: number): Signer =>
  signing.signer(loadSigningKey(join(directory, `org${index}`, 'keys', 'connector.key')));
const silent = createLogger({ name: 'anomaly-test', level: 'silent' });

afterAll(() => rmSync(directory, { recursive: true, force: true }));

/**
 * node`index`'s anomaly service writing to a real __system state machine (the one every node runs):
 * `submit` applies the transaction as the Raft log would, at the next index.
 */
function network(
  index = 1,
  options: Partial<AnomalyServiceOptions> = {},
  unreachable = 0,
): { service: AnomalyService; system: SystemStateMachine; raised: string[] } {
  const system = new SystemStateMachine(genesis);
  const raised: string[] = [];
  let logIndex = 0;
  let failures = unreachable;
  const service = new AnomalyService({
    nodeId: `node${index}`,
    organization: `org${index}`,
    signer: nodeSigner(index),
    registry: liveRegistryFromGenesis(genesis),
    ledger: system,
    submit: (bytes) => {
      const transaction = decodeWith(adminTransactionSchema, bytes);
      if (transaction.action.kind === 'raiseAlert') raised.push(transaction.action.id);
      // The first `unreachable` submissions find no leader, as while __system elects one.
      if (failures-- > 0) return Promise.reject(new Error('__system has no leader yet; retry'));
      logIndex += 1;
      const result = decodeRegistryResult(
        system.apply(logIndex, encodeRegistryEntry({ type: 'admin', transaction })),
      );
      return Promise.resolve({ index: logIndex, result });
    },
    logger: silent,
    ...options,
  });
  return { service, system, raised };
}

const fetchRefused = (at: number, organization = 'org3'): Observation => ({
  kind: 'fetch',
  at,
  node: 'node1',
  organization,
  topic: 'demo',
  outcome: 'notRecipient',
  via: 'node1',
});
const rateLimited = (at: number, organization = 'org3'): Observation => ({
  kind: 'rateLimited',
  at,
  node: 'node1',
  organization,
  method: 'status',
  via: 'node1',
});

/** Lets the service's ledger writes (async, one at a time) run. */
async function settle(): Promise<void> {
  for (let round = 0; round < 20; round++) await new Promise((resolve) => setImmediate(resolve));
}

async function metricValue(service: AnomalyService, line: RegExp): Promise<number | undefined> {
  const text = await service.metrics.metrics();
  const match = line.exec(text);
  return match === null ? undefined : Number(match[1]);
}

describe('AnomalyService', () => {
  it('writes a refused-fetch burst to the ledger as a raiseAlert signed by the node, and counts it', async () => {
    const { service, system } = network(1);
    const start = Date.now();
    for (let attempt = 0; attempt < 4; attempt++) service.observe(fetchRefused(start + attempt * 1_000));
    await settle();
    const alerts = [...system.alerts()];
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ node: 'node1', subject: 'org3', rule: 'refused-fetches', index: 1 });
    expect(service.recentAlerts().map((alert) => alert.rule)).toEqual(['refused-fetches']);
    expect(
      await metricValue(service, /ledgerbus_observations_total\{kind="fetch",organization="org3"\} (\d+)/),
    ).toBe(4);
    expect(
      await metricValue(service, /ledgerbus_alerts_total\{rule="refused-fetches",severity="\w+"\} (\d+)/),
    ).toBe(1);
    expect(await metricValue(service, /ledgerbus_alerts_ledger_total\{outcome="OK"\} (\d+)/)).toBe(1);
  });

  it('asks for the policy floor on a flood, which the ledger then imposes, and suspends nobody', async () => {
    const { service, system } = network(3);
    const start = Date.now();
    for (let request = 0; request < 40; request++) service.observe(rateLimited(start + request));
    await settle();
    const [alert] = [...system.alerts()];
    expect(alert).toMatchObject({
      node: 'node3',
      subject: 'org3',
      rule: 'flood',
      response: { kind: 'rateLimit', requestsPerSecond: 20, durationMs: 300_000 },
    });
    expect(system.activeRateLimit('org3', Date.now())).toBe(20);
    expect(system.activeRateLimit('org1', Date.now())).toBeUndefined();
    expect(system.latest.organizations.get('org3')?.status).toBe('APPROVED');
  });

  it('keeps an alert below the policy minimum as an event on the node', async () => {
    const { service, system } = network(1);
    const supervisor = signAdminTransaction(
      {
        group: SYSTEM_GROUP,
        organization: 'org4',
        nonce: randomBytes(16),
        timestamp: Date.now(),
        action: { kind: 'setAlertPolicy', policy: { ...defaultAlertPolicy, ledgerSeverityMin: 'critical' } },
      },
      connectorSigner(4),
    );
    expect(
      decodeRegistryResult(system.apply(1, encodeRegistryEntry({ type: 'admin', transaction: supervisor }))),
    ).toEqual({ status: 'OK' });
    // Four refusals spread over four minutes: a warning, not critical.
    const start = Date.now();
    for (let attempt = 0; attempt < 4; attempt++) service.observe(fetchRefused(start + attempt * 80_000));
    await settle();
    expect(service.recentAlerts()).toHaveLength(1);
    expect(service.recentAlerts()[0]?.severity).toBe('warning');
    expect([...system.alerts()]).toHaveLength(0);
  });

  it('degrades to rules only when the detector throws, says so in an alert, and keeps detecting', async () => {
    const { service, system } = network(1);
    const start = Date.now();
    // A malformed observation (no recipients) makes the detector throw; the caller never sees it.
    expect(() =>
      service.observe({
        kind: 'publish',
        at: start,
        node: 'node1',
        organization: 'org2',
        topic: 'demo',
        bytes: 10,
      } as unknown as Observation),
    ).not.toThrow();
    expect(service.stats().detector.mode).toBe('rulesOnly');
    expect(await metricValue(service, /ledgerbus_detector_mode (\d+)/)).toBe(0);
    expect(service.recentAlerts().map((alert) => alert.rule)).toEqual(['detector-degraded']);
    for (let attempt = 0; attempt < 4; attempt++) service.observe(fetchRefused(start + attempt));
    await settle();
    expect([...system.alerts()].map((alert) => alert.rule)).toEqual(['detector-degraded', 'refused-fetches']);
  });

  it('degrades when the detector takes more than its time budget in a second', () => {
    let clock = 0;
    // Every read of the monotonic clock is 30 ms later: each detector call "takes" 30 ms.
    const { service } = network(1, { detectorBudgetMs: 100, monotonic: () => (clock += 30) });
    const start = Date.now();
    for (let index = 0; index < 3; index++) service.observe(rateLimited(start + index, 'org2'));
    expect(service.stats().detector.mode).toBe('full');
    service.observe(rateLimited(start + 3, 'org2'));
    expect(service.stats().detector.mode).toBe('rulesOnly');
    expect(service.recentAlerts().at(-1)?.summary).toMatch(/budget 100 ms/);
  });

  it('samples a flood of observations: counted in full, bounded in memory, never queued', async () => {
    const { service } = network(1, { bufferCapacity: 2_000, perSecondMax: 500 });
    const start = Date.now();
    for (let index = 0; index < 100_000; index++) service.observe(rateLimited(start + (index % 1_000)));
    const stats = service.stats();
    expect(stats.buffer.observed).toBe(100_000);
    expect(stats.buffer.held).toBeLessThanOrEqual(2_000);
    expect(stats.detector.observations).toBeLessThan(2_000);
    expect(
      await metricValue(
        service,
        /ledgerbus_observations_total\{kind="rateLimited",organization="org3"\} (\d+)/,
      ),
    ).toBe(100_000);
    expect(await metricValue(service, /ledgerbus_observations_shed_total (\d+)/)).toBeGreaterThan(98_000);
    // One flood alert (the detector's cooldown), not one per observation.
    expect(service.recentAlerts().filter((alert) => alert.rule === 'flood')).toHaveLength(1);
  });

  it('bounds the organization label: unregistered names share one', async () => {
    const { service } = network(1);
    const start = Date.now();
    for (let index = 0; index < 500; index++) service.observe(rateLimited(start, `made-up-${index}`));
    service.observe(rateLimited(start, 'org2'));
    service.observe({
      kind: 'unknownKey',
      at: start,
      node: 'node1',
      organization: '',
      key: 'aabbccddeeff0011',
    });
    const text = await service.metrics.metrics();
    const labels = new Set(
      [...text.matchAll(/ledgerbus_observations_total\{[^}]*organization="([^"]*)"/g)].map(
        (match) => match[1],
      ),
    );
    expect(labels).toEqual(new Set(['other', 'org2', 'unknown']));
  });

  it('writes at most its per-second share of alerts to the ledger and the rest later', async () => {
    let clock = 0;
    const { service, system } = network(1, { raisePerSecond: 1, monotonic: () => clock });
    const start = Date.now();
    for (const organization of ['org1', 'org2', 'org3']) {
      for (let request = 0; request < 40; request++)
        service.observe(rateLimited(start + request, organization));
    }
    await settle();
    expect(service.recentAlerts()).toHaveLength(3);
    // Burst 2 at one a second.
    expect([...system.alerts()]).toHaveLength(2);
    clock += 1_000;
    service.tick(Date.now());
    await settle();
    expect([...system.alerts()].map((alert) => alert.subject)).toEqual(['org1', 'org2', 'org3']);
  });

  it('submits again, with the same id, an alert the ledger could not be reached for', async () => {
    const { service, system, raised: ids } = network(1, {}, 2);
    const start = Date.now();
    for (let attempt = 0; attempt < 4; attempt++) service.observe(fetchRefused(start + attempt));
    await settle();
    expect([...system.alerts()]).toHaveLength(0);
    service.tick(Date.now());
    await settle();
    service.tick(Date.now());
    await settle();
    expect([...system.alerts()].map((alert) => alert.rule)).toEqual(['refused-fetches']);
    expect(new Set(ids).size).toBe(1);
    expect(ids).toHaveLength(3);
    expect(await metricValue(service, /ledgerbus_alerts_ledger_total\{outcome="ERROR"\} (\d+)/)).toBe(2);
  });

  it('reports what blocks show on the first replica of the partition only', () => {
    expect(network(1).service.reports('demo/0')).toBe(true);
    expect(network(2).service.reports('demo/0')).toBe(false);
    expect(network(1).service.reports('nosuch/0')).toBe(false);
  });
});

describe('blockObservations', () => {
  const org3 = connectorSigner(3);
  function request(operation: Uint8Array, signer: Signer): Uint8Array {
    return encodeClientRequest({ group: 'demo/0', client: signer.publicKey, seq: 1, operation }, signer.sign);
  }
  function publish(id: string, signer: Signer = org3): Uint8Array {
    return encodePublish(
      {
        sender: 'org3',
        nonce: randomBytes(16),
        timestamp: 1_000,
        messages: [
          {
            id,
            topic: 'demo',
            partition: 0,
            key: null,
            recipients: ['org1', 'org2'],
            size: 4_096,
            contentRoot: new Uint8Array(32),
            contentType: 'text/plain',
            headers: {},
          },
        ],
      },
      signer,
    );
  }
  const result = (value: TransactionResult): Uint8Array => encodeWith(transactionResultSchema, value);
  const context = () => ({
    node: 'node1',
    topic: 'demo',
    organizationOfKey: (key: Uint8Array) =>
      liveRegistryFromGenesis(genesis).organizationBySigningKey(key)?.id,
    acceptedAt: new Map<string, number>(),
  });
  const accepted = (id: string, height: number, transactionIndex: number): TransactionResult => ({
    status: 'OK',
    type: 'publish',
    sender: 'org3',
    messagesRoot: new Uint8Array(32),
    messageCount: 1,
    messages: [{ id, status: 'ACCEPTED', offset: 0, height, transactionIndex, messageIndex: 0 }],
  });

  it('reads accepted messages, contract rejections by reason and unknown client keys out of a block', () => {
    const stranger = signing.signer(generateSigningKey());
    const block = {
      header: { partitionId: 'demo/0', height: 7, timestamp: 5_000 },
      certificate: { signatures: [] },
      transactions: [
        request(publish('m1'), org3),
        request(publish('m2'), org3),
        request(publish('m3'), org3),
        request(publish('m4'), stranger),
        // An epoch-closing nudge: nobody's request.
        request(new Uint8Array(0), nodeSigner(1)),
      ],
      results: [
        result(accepted('m1', 7, 0)),
        result({ status: 'REJECTED', reason: 'REPLAY' }),
        // A retry of a message accepted earlier points at the first acceptance: not a new publish.
        result(accepted('m3', 2, 0)),
        result({ status: 'REJECTED', reason: 'SIGNING_KEY_UNKNOWN' }),
        result({ status: 'REJECTED', reason: 'MALFORMED' }),
      ],
    } as unknown as Block;
    const seen = context();
    const observations = blockObservations(block, [], seen);
    expect(observations).toEqual([
      {
        kind: 'publish',
        at: 5_000,
        node: 'node1',
        organization: 'org3',
        topic: 'demo',
        bytes: 4_096,
        recipients: ['org1', 'org2'],
      },
      {
        kind: 'reject',
        at: 5_000,
        node: 'node1',
        organization: 'org3',
        topic: 'demo',
        reason: 'REPLAY',
        stage: 'contract',
      },
      {
        kind: 'unknownKey',
        at: 5_000,
        node: 'node1',
        organization: '',
        key: Buffer.from(stranger.publicKey.subarray(0, 8)).toString('hex'),
      },
      // The transaction names org3 as sender, but no organization holds the key that ordered it:
      // what the transaction says is the signer's word, so nobody is blamed.
      {
        kind: 'reject',
        at: 5_000,
        node: 'node1',
        organization: '',
        topic: 'demo',
        reason: 'SIGNING_KEY_UNKNOWN',
        stage: 'contract',
      },
    ]);
    expect(seen.acceptedAt.get('demo/0/m1')).toBe(5_000);
  });

  it('never blames the organization a badly signed transaction names, only the holder of its key', () => {
    const stranger = signing.signer(generateSigningKey());
    const org2 = connectorSigner(2);
    // Both publish "as org3" (the victim); neither holds org3's key.
    const block = {
      header: { partitionId: 'demo/0', height: 9, timestamp: 6_000 },
      certificate: { signatures: [] },
      transactions: [
        request(publish('forged1', stranger), stranger),
        request(publish('forged2', org2), org2),
      ],
      results: [
        result({ status: 'REJECTED', reason: 'BAD_SIGNATURE' }),
        result({ status: 'REJECTED', reason: 'BAD_SIGNATURE' }),
      ],
    } as unknown as Block;
    const observations = blockObservations(block, [], context());
    const rejects = observations.filter((observation) => observation.kind === 'reject');
    expect(rejects.map((observation) => observation.organization)).toEqual(['', 'org2']);
    expect(observations.some((observation) => observation.organization === 'org3')).toBe(false);
  });
});

describe('adminActor', () => {
  const named = (kind: string) => ({ organization: 'org4', action: { kind } });
  it('blames the organization an admin transaction names only once the registry authenticated it', () => {
    for (const outcome of [
      'BAD_SIGNATURE',
      'SIGNING_KEY_UNKNOWN',
      'ORGANIZATION_UNKNOWN',
      'REPLAY',
      'WRONG_GROUP',
    ])
      expect(adminActor(named('ackAlert'), outcome)).toBe('');
    expect(adminActor(named('ackAlert'), 'OK')).toBe('org4');
    // Refused after authentication: the organization's own doing.
    expect(adminActor(named('ackAlert'), 'NOT_ALLOWED')).toBe('org4');
    expect(adminActor(named('ackAlert'), 'ALERT_UNKNOWN')).toBe('org4');
    // A registration is signed by the keys it brings: its name is its own only once registered.
    expect(adminActor(named('registerOrganization'), 'ALREADY_EXISTS')).toBe('');
    expect(adminActor(named('registerOrganization'), 'OK')).toBe('org4');
  });
});

describe('chooseResponse and the ledger minimum', () => {
  const registered = { registered: true, supervisor: false };
  const flood = { organization: 'org3', rule: 'flood', suggested: 'rateLimit' } as const;
  it('asks for no more than the policy allows', () => {
    expect(chooseResponse(flood, defaultAlertPolicy, registered)).toEqual({
      kind: 'rateLimit',
      requestsPerSecond: 20,
      durationMs: 300_000,
    });
    const noRateLimit: AlertPolicy = { ledgerSeverityMin: 'warning', proposeSuspension: false };
    expect(chooseResponse(flood, noRateLimit, registered)).toBeUndefined();
    const suspend = { organization: 'org3', rule: 'replay-burst', suggested: 'proposeSuspension' } as const;
    expect(chooseResponse(suspend, defaultAlertPolicy, registered)).toEqual({ kind: 'proposeSuspension' });
    expect(chooseResponse(suspend, noRateLimit, registered)).toBeUndefined();
    // A supervisor or an unregistered subject: the ledger would refuse any response.
    expect(chooseResponse(flood, defaultAlertPolicy, { registered: true, supervisor: true })).toBeUndefined();
    expect(chooseResponse({ ...flood, organization: '' }, defaultAlertPolicy, registered)).toBeUndefined();
  });

  it('puts an alert on the ledger at or above the policy severity only', () => {
    expect(reachesLedger({ severity: 'info' }, defaultAlertPolicy)).toBe(false);
    expect(reachesLedger({ severity: 'warning' }, defaultAlertPolicy)).toBe(true);
    expect(
      reachesLedger({ severity: 'warning' }, { ...defaultAlertPolicy, ledgerSeverityMin: 'critical' }),
    ).toBe(false);
  });
});

describe('the metrics endpoint', () => {
  it('serves the registry at /metrics only, and refuses a taken port with BAD_CONFIG', async () => {
    const { service } = network(1);
    service.observe(rateLimited(Date.now()));
    const server = await serveMetrics(service.metrics, '127.0.0.1', 0);
    try {
      const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
      expect(text).toMatch(/ledgerbus_observations_total\{kind="rateLimited",organization="org3"\} 1/);
      expect(text).toMatch(/# TYPE ledgerbus_alerts_total counter/);
      expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
      let caught: unknown;
      try {
        await serveMetrics(service.metrics, '127.0.0.1', server.port);
      } catch (error) {
        caught = error;
      }
      expect(isLedgerbusError(caught, 'BAD_CONFIG')).toBe(true);
      expect((caught as Error).message).toMatch(/already in use.*metrics\.listen/);
    } finally {
      await server.close();
    }
  });

  it('is configured in node.yaml as metrics.listen host:port', () => {
    const path = join(directory, 'metrics-node.yaml');
    writeFileSync(
      path,
      'nodeId: node1\nkeyFile: k\ndataDirectory: d\ngenesis: g\nmetrics:\n  listen: 127.0.0.1:9464\n',
    );
    expect(loadNodeConfig(path).metrics).toEqual({ listen: '127.0.0.1:9464' });
    writeFileSync(
      path,
      'nodeId: node1\nkeyFile: k\ndataDirectory: d\ngenesis: g\nmetrics:\n  listen: nowhere\n',
    );
    expect(() => loadNodeConfig(path)).toThrow(/metrics/);
  });
});
