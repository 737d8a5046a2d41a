// Several nodes per organization (issue 16, DESIGN §9) on the real process tree: a devnet with two
// nodes per organization (`ledgerbus dev --nodes-per-org 2`), org1's connector configured with both
// of its nodes. One of them is SIGKILLed while org1 publishes: every publish still succeeds, through
// the other node, and the connector ejects the dead one (its log says so).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { loadConnectorConfig } from '../src/connector/config.js';
import { ProcessNetwork } from './support/process-network.js';
import { waitFor } from './support/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-lb-'));
const net = new ProcessNetwork(join(dir, 'net'), 26520, 'tsx', 2);

interface SendResult {
  readonly id: string;
  readonly offset: number;
}

async function send(id: string): Promise<SendResult> {
  const response = await net.api('org1', `/v1/topics/demo/messages?to=org2&id=${encodeURIComponent(id)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: `payload of ${id}`,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`send ${id}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as SendResult;
}

beforeAll(async () => {
  // Every node, and the connector of org1 only: nobody needs to receive for publishes to succeed.
  for (const name of net.names.filter((candidate) => !candidate.startsWith('connector-'))) net.start(name);
  net.start('connector-org1');
  await net.waitHealthy('org1', 120_000);
}, 150_000);

afterAll(async () => {
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('several nodes per organization', () => {
  it('lays out two nodes per organization, the first ones hosting the partition, the connector using both', () => {
    const { nodes, genesis } = net.layout.network;
    expect(nodes.map((node) => node.id)).toEqual([
      'node1',
      'node2',
      'node3',
      'node4',
      'org1-node2',
      'org2-node2',
      'org3-node2',
      'org4-node2',
    ]);
    expect(nodes.map((node) => Number(node.address.split(':')[1]) - 26520)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(genesis.topics.find((topic) => topic.name === 'demo')?.partitions[0]?.replicas).toEqual([
      'node1',
      'node2',
      'node3',
      'node4',
    ]);
    expect(loadConnectorConfig(net.layout.connectorConfigs[0]!).nodes).toEqual([
      { id: 'node1' },
      { id: 'org1-node2' },
    ]);
  });

  it('keeps publishing through the other node when one of the organization’s nodes dies, and ejects it', async () => {
    onTestFailed(() => console.log(net.logTails(['connector-org1', 'org1-node2', 'node2'], 40)));
    for (let index = 0; index < 3; index++) await send(`before-${index}`);
    // node1 is org1's first node and a replica of demo/0: org1-node2 forwards its publishes to a
    // live replica, and the partition keeps its quorum with three of four.
    await net.kill('node1');
    const results: SendResult[] = [];
    for (let index = 0; index < 10; index++) results.push(await send(`after-${index}`));
    expect(new Set(results.map((result) => result.offset)).size).toBe(10);
    await waitFor(
      'the connector to eject node1',
      () => (/node ejected after consecutive failures/.test(net.log('connector-org1')) ? true : undefined),
      30_000,
    );
    const ejected = net
      .log('connector-org1')
      .split('\n')
      .filter((line) => line.includes('node ejected'))
      .map((line) => (JSON.parse(line) as { node: string }).node);
    expect(new Set(ejected)).toEqual(new Set(['node1']));
  }, 180_000);
});
