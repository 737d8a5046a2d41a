// The node's /metrics, /healthz and /readyz on four real nodes run in this process (TLS links,
// SQLite, PBFT and Raft as in production; no connectors): what a publish through a node shows on
// every replica, a view change counted as it happens, readiness before and after the node is ready
// and when a partition fails, and `promtool check metrics` on what is served. Plus NodeMetrics on
// its own for what a real network cannot easily show (gauges disappearing, bounded labels).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevnetLayout } from '../cli/devnet-layout.js';
import type { DevnetLayout } from '../cli/devnet-layout.js';
import type { CborValue } from '../codec/index.js';
import { loadConnectorConfig } from '../connector/config.js';
import { defaultPbftTuning } from '../consensus/pbft/config.js';
import { encodeClientRequest } from '../consensus/pbft/messages.js';
import { decodeTransactionResult } from '../contracts/results.js';
import type { TransactionResult } from '../contracts/results.js';
import { encodePublish } from '../contracts/transactions.js';
import { SigningDomain, loadSigningKey } from '../crypto/index.js';
import type { Signer, SigningKeyPair } from '../crypto/index.js';
import { isLedgerbusError } from '../errors.js';
import { RpcPeer, connectFramed } from '../net/index.js';
import { blockEvidenceSchema } from '../proofs/index.js';
import { createLogger } from '../runtime/logger.js';
import { loadGenesisRegistry, loadNodeConfig } from './config.js';
import { groupFileName } from './group-files.js';
import { LedgerbusNode } from './node.js';
import { NodeMetrics } from './node-metrics.js';
import type { ReplicaState } from './node-metrics.js';
import { parseExposition, promtoolCheck, promtoolRequired, sampleValue } from '../testing/exposition.js';
import type { Sample } from '../testing/exposition.js';

const basePort = 26680;
const metricsPort = (nodeNumber: number): number => basePort + 50 + nodeNumber;
const group = 'demo/0';
const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-node-metrics-'));
let layout: DevnetLayout;
/** Running nodes by number (1..4); a stopped node is removed. */
const nodes = new Map<number, LedgerbusNode>();
const peers: RpcPeer[] = [];

// ---- the exposition format (src/testing/exposition.ts) ----

/** As sampleValue, but the sample must be there. */
function valueOf(
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const value = sampleValue(samples, name, labels);
  if (value === undefined) throw new Error(`no sample ${name} ${JSON.stringify(labels)}`);
  return value;
}

// ---- the network ----

async function get(nodeNumber: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${metricsPort(nodeNumber)}${path}`);
  return { status: response.status, body: await response.text() };
}

async function scrapeText(nodeNumber: number): Promise<string> {
  const { status, body } = await get(nodeNumber, '/metrics');
  expect(status).toBe(200);
  return body;
}

async function scrape(nodeNumber: number): Promise<Sample[]> {
  return parseExposition(await scrapeText(nodeNumber));
}

function nodeOf(nodeNumber: number): LedgerbusNode {
  const node = nodes.get(nodeNumber);
  if (node === undefined) throw new Error(`node${nodeNumber} is not running`);
  return node;
}

function replicaHeight(nodeNumber: number): number {
  const replica = nodeOf(nodeNumber).replicas.get(group);
  if (replica === undefined) throw new Error(`node${nodeNumber} has no replica of ${group}`);
  return replica.height;
}

/** Node `nodeNumber` of the layout, built (not started) with its metrics on metricsPort(n). */
function buildNode(nodeNumber: number): LedgerbusNode {
  const config = loadNodeConfig(layout.nodeConfigs[nodeNumber - 1]!);
  return new LedgerbusNode({
    nodeId: config.nodeId,
    key: loadSigningKey(config.keyFile),
    registry: loadGenesisRegistry(config.genesis),
    dataDirectory: config.dataDirectory,
    metricsListen: { host: '127.0.0.1', port: metricsPort(nodeNumber) },
    logger: createLogger({ name: config.nodeId, level: 'silent' }),
  });
}

async function startNode(nodeNumber: number): Promise<LedgerbusNode> {
  const node = buildNode(nodeNumber);
  await node.start();
  nodes.set(nodeNumber, node);
  return node;
}

async function stopNode(nodeNumber: number): Promise<void> {
  await nodeOf(nodeNumber).stop();
  nodes.delete(nodeNumber);
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** org1's connector: its key, and a connection to node `nodeNumber` as that connector. */
let connectorKey: SigningKeyPair;
let signer: Signer;

async function connectorPeer(nodeNumber: number): Promise<RpcPeer> {
  const node = loadGenesisRegistry(join(directory, 'genesis.json')).node(`node${nodeNumber}`)!;
  const connection = await connectFramed({
    host: node.host,
    port: node.port,
    identity: connectorKey,
    expectedPublicKey: node.publicKey,
  });
  const peer = new RpcPeer(connection, { requestTimeoutMs: 60_000 });
  peers.push(peer);
  return peer;
}

/** A publish of one message from org1 to `recipient`, signed by org1's connector. */
function publishRequest(id: string, recipient = 'org2'): Uint8Array {
  const operation = encodePublish(
    {
      sender: 'org1',
      nonce: randomBytes(16),
      timestamp: Date.now(),
      messages: [
        {
          id,
          topic: 'demo',
          partition: 0,
          key: null,
          recipients: [recipient],
          size: 100,
          contentRoot: new Uint8Array(32).fill(7),
          contentType: 'text/plain',
          headers: {},
        },
      ],
    },
    signer,
  );
  return encodeClientRequest(
    { group, client: signer.publicKey, seq: Date.now() * 1000 + Math.floor(Math.random() * 1000), operation },
    signer.sign,
  );
}

/** Publishes through `peer` until it commits (retrying what the node calls retriable); the result. */
async function publish(peer: RpcPeer, id: string, recipient?: string): Promise<TransactionResult> {
  const answer = await until(
    `${id} committed`,
    async () => {
      try {
        return (await peer.request('publish', { group, request: publishRequest(id, recipient) })) as Record<
          string,
          CborValue
        >;
      } catch (error) {
        if (isLedgerbusError(error) && error.retriable) return undefined;
        throw error;
      }
    },
    60_000,
  );
  return decodeTransactionResult(blockEvidenceSchema.parse(answer['evidence'], 'evidence').result);
}

/** Waits until every running replica of demo/0 has stored the same height; returns it. */
function settledHeight(): Promise<number> {
  return until('the replicas of demo/0 to agree on a height', () => {
    const heights = [...nodes.keys()].map(replicaHeight);
    return heights.every((height) => height === heights[0]) ? heights[0] : undefined;
  });
}

beforeAll(() => {
  layout = ensureDevnetLayout({ directory, basePort });
  const config = loadConnectorConfig(layout.connectorConfigs[0]!);
  connectorKey = loadSigningKey(config.keyFile);
  signer = SigningDomain.of(layout.network.genesis.network).signer(connectorKey);
});

afterAll(async () => {
  for (const peer of peers) peer.close();
  for (const node of nodes.values()) await node.stop();
  rmSync(directory, { recursive: true, force: true });
});

describe('a node’s /healthz, /readyz and /metrics', () => {
  it('is not ready, and says why, until its listener is up, it knows a __system leader and its partitions are open', async () => {
    const first = buildNode(1);
    // Built, not started: no listener yet and alone, so no leader either.
    expect(first.readiness().ready).toBe(false);
    expect(first.readiness().reasons).toEqual(
      expect.arrayContaining(['the consensus listener is not up yet', 'no __system Raft leader known']),
    );
    await first.start();
    nodes.set(1, first);
    expect(await get(1, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    // One of four voters elects no one.
    const alone = await get(1, '/readyz');
    expect(alone.status).toBe(503);
    expect(alone.body).toBe('not ready:\n- no __system Raft leader known\n');
    expect((await get(1, '/nothing')).status).toBe(404);

    for (const nodeNumber of [2, 3, 4]) await startNode(nodeNumber);
    for (const nodeNumber of [1, 2, 3, 4]) {
      await until(`node${nodeNumber} ready`, async () => {
        const ready = await get(nodeNumber, '/readyz');
        return ready.status === 200 ? ready : undefined;
      });
      expect(await get(nodeNumber, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
      expect(await get(nodeNumber, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    }
  }, 60_000);

  it('counts each message accepted or refused once on every replica, and reads heights, views and leaders as they are', async () => {
    const n = 20;
    const before = new Map<number, Sample[]>();
    for (const nodeNumber of nodes.keys()) before.set(nodeNumber, await scrape(nodeNumber));
    const peer = await connectorPeer(1);
    for (let index = 0; index < n; index++) {
      const result = await publish(peer, `metrics-${index}`);
      expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
    }
    // A retry of an accepted message (a new transaction, the same message) is not a new acceptance.
    expect(await publish(peer, 'metrics-0')).toMatchObject({ messages: [{ status: 'ACCEPTED' }] });
    // A message the contract refuses is counted by its reason.
    expect(await publish(peer, 'metrics-refused', 'org99')).toMatchObject({
      messages: [{ status: 'REJECTED', reason: 'RECIPIENT_UNKNOWN' }],
    });
    const height = await settledHeight();

    let primaries = 0;
    let systemLeaders = 0;
    let topicLeaders = 0;
    for (const nodeNumber of nodes.keys()) {
      const earlier = before.get(nodeNumber)!;
      const delta = (samples: readonly Sample[], name: string, labels: Record<string, string>): number =>
        valueOf(samples, name, labels) - (sampleValue(earlier, name, labels) ?? 0);
      // Nothing commits meanwhile (nothing is sent), but check: the height must not move around the scrape.
      const samples = await scrape(nodeNumber);
      expect(replicaHeight(nodeNumber)).toBe(height);
      const replica = nodeOf(nodeNumber).replicas.get(group)!;
      const at = { partition: group };
      expect(delta(samples, 'ledgerbus_messages_accepted_total', at), `node${nodeNumber}`).toBe(n);
      expect(
        delta(samples, 'ledgerbus_messages_rejected_total', { ...at, reason: 'RECIPIENT_UNKNOWN' }),
        `node${nodeNumber}`,
      ).toBe(1);
      expect(valueOf(samples, 'ledgerbus_pbft_height', at)).toBe(height);
      expect(valueOf(samples, 'ledgerbus_pbft_view', at)).toBe(replica.view);
      // Fresh processes start in view 0: every view since (normally none) was counted.
      expect(valueOf(samples, 'ledgerbus_pbft_view_changes_total', at)).toBe(replica.view);
      primaries += valueOf(samples, 'ledgerbus_pbft_primary', at);
      systemLeaders += valueOf(samples, 'ledgerbus_raft_leader', { group: '__system' });
      topicLeaders += valueOf(samples, 'ledgerbus_raft_leader', { group: 'topic:demo' });
      expect(valueOf(samples, 'ledgerbus_raft_applied_index', { group: '__system' })).toBeGreaterThan(0);
      expect(valueOf(samples, 'ledgerbus_raft_term', { group: '__system' })).toBeGreaterThan(0);
      // Requests submitted at node1 only: its latency histogram has them, the others' none.
      expect(delta(samples, 'ledgerbus_pbft_commit_latency_seconds_count', at), `node${nodeNumber}`).toBe(
        nodeNumber === 1 ? n + 2 : 0,
      );
      expect(
        (sampleValue(samples, 'ledgerbus_client_requests_total', { method: 'publish', outcome: 'ok' }) ?? 0) -
          (sampleValue(earlier, 'ledgerbus_client_requests_total', { method: 'publish', outcome: 'ok' }) ??
            0),
        `node${nodeNumber}`,
      ).toBe(nodeNumber === 1 ? n + 2 : 0);
      for (const component of ['partitions', 'raft', 'global_ledger']) {
        expect(valueOf(samples, 'ledgerbus_storage_bytes', { component })).toBeGreaterThan(0);
      }
      expect(sampleValue(samples, 'ledgerbus_process_cpu_user_seconds_total')).toBeGreaterThan(0);
      expect(sampleValue(samples, 'process_cpu_user_seconds_total')).toBeUndefined();
    }
    expect(primaries).toBe(1);
    expect(systemLeaders).toBe(1);
    expect(topicLeaders).toBe(1);

    // The global ledger catches up with the partition, and the lag says so.
    for (const nodeNumber of nodes.keys()) {
      await until(`node${nodeNumber}'s global ledger at ${height}`, async () => {
        const samples = await scrape(nodeNumber);
        return valueOf(samples, 'ledgerbus_global_ledger_height', { partition: group }) === height &&
          valueOf(samples, 'ledgerbus_global_ledger_lag_blocks', { partition: group }) === 0
          ? true
          : undefined;
      });
    }
  }, 120_000);

  it('serves what promtool check metrics finds nothing to say about', async (context) => {
    for (const nodeNumber of nodes.keys()) {
      const checked = promtoolCheck(await scrapeText(nodeNumber));
      if (checked === undefined) {
        // CI installs promtool (.ci/run): there its absence is a failure, not a reason to skip.
        if (promtoolRequired()) throw new Error('promtool is not on PATH');
        context.skip();
      }
      expect({ node: nodeNumber, ...checked }).toEqual({ node: nodeNumber, status: 0, output: '' });
    }
  });

  it('counts a view change on every replica as it happens, and the restarted primary’s catching up', async () => {
    const primary = [...nodes.keys()].find((nodeNumber) => nodeOf(nodeNumber).replicas.get(group)!.isPrimary);
    expect(primary).toBeDefined();
    const heightBefore = replicaHeight(primary!);
    const viewAtStop = nodeOf(primary!).replicas.get(group)!.view;
    await stopNode(primary!);
    const others = [...nodes.keys()];
    const viewsBefore = new Map(
      others.map((nodeNumber) => [nodeNumber, nodeOf(nodeNumber).replicas.get(group)!.view]),
    );
    const peer = await connectorPeer(others[0]!);
    // Enough blocks for the others to pass a stable checkpoint (every 64 blocks): what it missed
    // below that checkpoint they no longer hold votes for, so it can only come by state transfer.
    const checkpointInterval = defaultPbftTuning.checkpointInterval;
    const missed = checkpointInterval - (heightBefore % checkpointInterval) + 2;
    for (let index = 0; index < missed; index++) {
      expect(await publish(peer, `after-view-change-${index}`)).toMatchObject({
        messages: [{ status: 'ACCEPTED' }],
      });
    }
    const height = await settledHeight();
    let primaries = 0;
    for (const nodeNumber of others) {
      const samples = await scrape(nodeNumber);
      const view = nodeOf(nodeNumber).replicas.get(group)!.view;
      expect(view).toBeGreaterThan(viewsBefore.get(nodeNumber)!);
      expect(valueOf(samples, 'ledgerbus_pbft_view', { partition: group })).toBe(view);
      // Fresh processes started in view 0: every view since was counted.
      expect(valueOf(samples, 'ledgerbus_pbft_view_changes_total', { partition: group })).toBe(view);
      primaries += valueOf(samples, 'ledgerbus_pbft_primary', { partition: group });
    }
    expect(primaries).toBe(1);

    // Restarted, the old primary catches up; its counters start afresh and count only what it stores now.
    await startNode(primary!);
    await until(`node${primary} ready`, async () =>
      (await get(primary!, '/readyz')).status === 200 ? true : undefined,
    );
    await until(`node${primary} at ${height}`, () => (replicaHeight(primary!) === height ? true : undefined));
    await until(`node${primary} in the others' view`, () =>
      nodeOf(primary!).replicas.get(group)!.view === nodeOf(others[0]!).replicas.get(group)!.view
        ? true
        : undefined,
    );
    const samples = await scrape(primary!);
    const view = nodeOf(primary!).replicas.get(group)!.view;
    expect(valueOf(samples, 'ledgerbus_messages_accepted_total', { partition: group })).toBe(missed);
    expect(valueOf(samples, 'ledgerbus_pbft_height', { partition: group })).toBe(height);
    // It restarts in the view it had persisted and counts each view it moves on to.
    expect(valueOf(samples, 'ledgerbus_pbft_view_changes_total', { partition: group })).toBe(
      view - viewAtStop,
    );
    const transferred = valueOf(samples, 'ledgerbus_pbft_state_transfer_blocks_total', { partition: group });
    const stable = height - (height % checkpointInterval);
    expect(stable).toBeGreaterThan(heightBefore);
    expect(transferred).toBeGreaterThanOrEqual(stable - heightBefore);
    expect(transferred).toBeLessThanOrEqual(height - heightBefore);
  }, 120_000);

  it('is not ready while a partition it replicates has failed, and says which', async () => {
    const failing = 4;
    const path = join(layout.directory, 'org4', 'node-data', 'partitions', groupFileName(group));
    // Another connection holds the write lock: the replica's next write fails (after SQLite's busy
    // timeout) as a disk error would, and the replica stops (crash-stop of this one replica).
    const locker = new Database(path);
    locker.exec('BEGIN IMMEDIATE');
    try {
      const peer = await connectorPeer(1);
      expect(await publish(peer, 'while-node4-fails')).toMatchObject({ messages: [{ status: 'ACCEPTED' }] });
      await until('node4’s replica to fail', () =>
        nodeOf(failing).replicas.get(group)!.failure === undefined ? undefined : true,
      );
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
    const readyz = await get(failing, '/readyz');
    expect(readyz.status).toBe(503);
    expect(readyz.body).toMatch(/^not ready:\n- partition demo\/0 failed: .*demo\/0.*\n$/);
    expect(await get(failing, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await get(1, '/readyz')).status).toBe(200);
  }, 60_000);
});

describe('NodeMetrics', () => {
  const replica = (groupId: string, height: number): ReplicaState => ({
    partition: { groupId },
    height,
    view: 0,
    isPrimary: false,
  });

  it('drops the gauges of partitions and groups the node no longer hosts', async () => {
    let replicas = [replica('a/0', 5), replica('b/0', 7)];
    let groups = [{ group: '__system', leader: true, applied: 3, term: 2 }];
    const metrics = new NodeMetrics({
      registry: new Registry(),
      dataDirectory: join(directory, 'nowhere'),
      source: {
        replicas: () => replicas,
        raftGroups: () => groups,
        globalLedgers: () => [],
        isOrganization: () => true,
      },
    });
    let samples = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(samples, 'ledgerbus_pbft_height', { partition: 'b/0' })).toBe(7);
    replicas = [replica('a/0', 6)];
    groups = [];
    samples = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(samples, 'ledgerbus_pbft_height', { partition: 'a/0' })).toBe(6);
    expect(sampleValue(samples, 'ledgerbus_pbft_height', { partition: 'b/0' })).toBeUndefined();
    expect(sampleValue(samples, 'ledgerbus_raft_leader', { group: '__system' })).toBeUndefined();
    // A data directory that does not exist holds no bytes.
    expect(sampleValue(samples, 'ledgerbus_storage_bytes', { component: 'raft' })).toBe(0);
  });

  it('gives at most 64 registered organizations a label of their own', async () => {
    const metrics = new NodeMetrics({
      registry: new Registry(),
      dataDirectory: directory,
      source: {
        replicas: () => [],
        raftGroups: () => [],
        globalLedgers: () => [],
        isOrganization: (id) => id.startsWith('org'),
      },
    });
    for (let index = 0; index < 70; index++) metrics.rateLimited(`org${index}`);
    metrics.rateLimited('stranger');
    metrics.rateLimited('org0');
    const samples = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(samples, 'ledgerbus_rate_limited_total', { organization: 'org0' })).toBe(2);
    expect(sampleValue(samples, 'ledgerbus_rate_limited_total', { organization: 'org63' })).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_rate_limited_total', { organization: 'org64' })).toBeUndefined();
    expect(sampleValue(samples, 'ledgerbus_rate_limited_total', { organization: 'other' })).toBe(7);
  });
});
