/**
 * The PBFT test cluster runs on the production partition driver: what its tests read (history,
 * ledger, persist records, a restart) comes from the driver and its memory disk, not from a second host.
 */
import { describe, expect, it } from 'vitest';
import { Cluster } from './cluster.js';

function clusterWithBlocks(blocks: number, label: string): Cluster {
  const cluster = new Cluster({ replicas: 4, label });
  const client = cluster.client(0);
  for (let height = 1; height <= blocks; height++) {
    cluster.request(client.request());
    cluster.tickUntil(
      () => cluster.nodes.every((node) => node.ledger.length === height),
      50,
      `block ${height}`,
    );
  }
  return cluster;
}

describe('the test cluster on the partition driver', () => {
  it('records the executed steps the driver takes itself, after the step that committed the batch', () => {
    const cluster = clusterWithBlocks(2, 'cluster-executed');
    for (const node of cluster.nodes) {
      const committedAt = new Map<number, number>();
      const executedAt = new Map<number, number>();
      node.history.forEach(({ input, ready }, position) => {
        for (const batch of ready.commit) committedAt.set(batch.seq, position);
        if (input.kind === 'executed') executedAt.set(input.seq, position);
      });
      expect([...committedAt.keys()]).toEqual([1, 2]);
      for (const [seq, position] of committedAt) expect(executedAt.get(seq)).toBeGreaterThan(position);
      // Only inputs from outside are kept for a replay.
      expect(node.inputs.some((input) => input.kind === 'executed')).toBe(false);
    }
  });

  it('keeps the ledger and persist records on the driver’s disk, and restarts from it', () => {
    const cluster = clusterWithBlocks(5, 'cluster-restart');
    const node = cluster.node(2);
    const stored = node.storage.blocks.range(1, 5);
    expect(node.ledger.map((entry) => entry.block.header)).toEqual(stored.map((block) => block.header));
    expect([...node.persisted.keys()]).toEqual(node.storage.records().map((record) => record.key));
    cluster.crash(2);
    cluster.restart(2);
    // The new core is rebuilt from the disk alone: its head and its stable checkpoint (K = 4).
    expect(node.core).toMatchObject({ lastExecuted: 5, stable: 4, view: 0 });
    expect(node.inputs).toEqual([]);
    cluster.request(cluster.client(1).request());
    cluster.tickUntil(() => cluster.nodes.every((entry) => entry.ledger.length === 6), 50, 'block 6');
    cluster.checkAgreement();
  });
});
