// DESIGN §2: "PBFT batches name the __system index they were executed against, so all replicas of a
// partition decide with the same registry." The primary names the registry indexes its driver last
// reported; they are agreed on with the proposal and land in the certified header. A backup refuses
// a proposal staler than `registryLagMax` behind its own registry.
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { Cluster } from '../../partition/testing/cluster.js';
import type { RegistryIndexes } from './types.js';

function tickWith(cluster: Cluster, registries: readonly RegistryIndexes[]): void {
  cluster.ticks += 1;
  cluster.nodes.forEach((node, index) => {
    if (!node.crashed) cluster.step(index, { kind: 'tick', now: cluster.now, registry: registries[index]! });
  });
  cluster.deliverAll();
}

describe('registry indexes in proposals', () => {
  it('the primary names its registry indexes and every replica certifies a header that carries them', () => {
    const cluster = new Cluster({ replicas: 4, label: 'registry-names' });
    const registry = { system: 12, topic: 5 };
    tickWith(cluster, [registry, registry, registry, registry]);
    cluster.request(cluster.client(0).request());
    for (let i = 0; i < 20 && !cluster.nodes.every((node) => node.ledger.length === 1); i++) {
      tickWith(cluster, [registry, registry, registry, registry]);
    }
    for (const node of cluster.nodes) {
      expect(node.ledger[0]!.block.header).toMatchObject({ systemIndex: 12, topicIndex: 5 });
      expect(node.executions[0]!.proposal).toMatchObject({ systemIndex: 12, topicIndex: 5 });
    }
  });

  it('backups refuse a proposal naming a registry staler than registryLagMax, so nothing commits', () => {
    const cluster = new Cluster({ replicas: 4, label: 'registry-stale', tuning: { registryLagMax: 8 } });
    const stale = { system: 3, topic: 0 };
    const current = { system: 30, topic: 0 };
    tickWith(cluster, [stale, current, current, current]);
    cluster.request(cluster.client(0).request());
    for (let i = 0; i < 5; i++) tickWith(cluster, [stale, current, current, current]);
    expect(cluster.nodes.every((node) => node.ledger.length === 0)).toBe(true);
    for (const backup of [1, 2, 3])
      expect(cluster.node(backup).rejectedCodes()).toContain(ErrorCode.WrongDigest);
  });

  it('a proposal within the allowed lag commits', () => {
    const cluster = new Cluster({ replicas: 4, label: 'registry-lag', tuning: { registryLagMax: 8 } });
    const primary = { system: 25, topic: 2 };
    const backups = { system: 30, topic: 4 };
    tickWith(cluster, [primary, backups, backups, backups]);
    cluster.request(cluster.client(0).request());
    for (let i = 0; i < 20 && !cluster.nodes.every((node) => node.ledger.length === 1); i++) {
      tickWith(cluster, [primary, backups, backups, backups]);
    }
    expect(cluster.nodes.map((node) => node.ledger[0]?.block.header.systemIndex)).toEqual([25, 25, 25, 25]);
  });

  it('a primary that names no registry is refused by backups that have one', () => {
    const cluster = new Cluster({ replicas: 4, label: 'registry-missing' });
    const current = { system: 1, topic: 1 };
    cluster.ticks += 1;
    cluster.step(0, { kind: 'tick', now: cluster.now });
    for (const index of [1, 2, 3]) cluster.step(index, { kind: 'tick', now: cluster.now, registry: current });
    cluster.deliverAll();
    cluster.request(cluster.client(0).request());
    cluster.tick(3);
    expect(cluster.nodes.every((node) => node.ledger.length === 0)).toBe(true);
  });
});
