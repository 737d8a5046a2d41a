// The Raft layer's footprint on a real network in one test process (4 organizations, 4 nodes over
// pinned TLS, SQLite everywhere), with every Raft group taking a snapshot every 3 entries: logs are
// compacted, a restarted node resumes from its snapshot, a node that was down while the log was
// compacted installs a snapshot and fills its global ledger with verified blocks from its peers, and
// a replica keeps each block once (the global ledger refers to its partition database).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutConnector, startLayoutNode } from './support/in-process-node.js';
import { waitFor as poll } from './support/processes.js';
import { ensureDevnetLayout } from '../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../src/cli/devnet-layout.js';
import { toHex } from '../src/codec/index.js';
import type { Connector } from '../src/connector/connector.js';
import { blockHash } from '../src/ledger/block.js';
import { groupFileName } from '../src/node/group-files.js';
import type { LedgerbusNode } from '../src/node/node.js';
import { SYSTEM_GROUP, topicGroupId } from '../src/registry/admin-transactions.js';

const snapshotEvery = 3;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-raft-compaction-'));
const topic = 'demo';
const partition = 'demo/0';
let layout: DevnetLayout;
const nodes: (LedgerbusNode | undefined)[] = [];
const connectors = new Map<string, Connector>();

async function startNode(index: number): Promise<LedgerbusNode> {
  const node = await startLayoutNode(layout.nodeConfigs[index] as string, {
    raftSnapshotEvery: snapshotEvery,
  });
  nodes[index] = node;
  return node;
}

async function startConnector(organization: string): Promise<Connector> {
  const { connector } = await layoutConnector(
    layout.connectorConfigs[Number(organization.slice(3)) - 1] as string,
  );
  connector.start();
  connectors.set(organization, connector);
  return connector;
}

function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  return poll(what, probe, timeoutMs, 100);
}

function node(index: number): LedgerbusNode {
  const running = nodes[index];
  if (running === undefined) throw new Error(`node${index + 1} is not running`);
  return running;
}

/** Sends `count` messages from org1 to org2, one publish each (each its own block, mostly). */
async function sendMessages(count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const [result] = await connectors
      .get('org1')!
      .send(topic, [{ value: Readable.from([randomBytes(300)]), to: ['org2'] }]);
    ids.push(result!.id);
  }
  return ids;
}

/** What node `index` keeps of a Raft group on disk: its log's entries and its snapshot's index. */
function raftLog(
  index: number,
  group: string,
): { entries: number; firstEntry: number; snapshotIndex: number } {
  const file = join(dir, `org${index + 1}`, 'node-data', 'raft', groupFileName(group));
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const entries = db.prepare('SELECT COUNT(*) AS n, MIN(log_index) AS first FROM raft_entries').get() as {
      n: number;
      first: number | null;
    };
    const snapshot = db.prepare('SELECT log_index FROM raft_snapshot WHERE id = 0').get() as
      { log_index: number } | undefined;
    return { entries: entries.n, firstEntry: entries.first ?? 0, snapshotIndex: snapshot?.log_index ?? 0 };
  } finally {
    db.close();
  }
}

/** Rows of node `index`'s global ledger for the partition, and how many hold their block's bytes. */
function globalRows(index: number): { rows: number; whole: number; maxHeight: number } {
  const file = join(dir, `org${index + 1}`, 'node-data', 'global', groupFileName(topicGroupId(topic)));
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare(
        'SELECT COUNT(*) AS rows, COALESCE(SUM(length(bytes) > 0), 0) AS whole, COALESCE(MAX(height), 0) AS maxHeight FROM blocks WHERE partition = ?',
      )
      .get(partition) as { rows: number; whole: number; maxHeight: number };
  } finally {
    db.close();
  }
}

/** Waits until node `index`'s global ledger has replicated every block node1's replica holds. */
async function globalLedgerCaughtUp(index: number): Promise<number> {
  return waitFor(`node${index + 1}'s global ledger to reach the partition's height`, () => {
    const height = node(0).replicas.get(partition)?.height ?? 0;
    const head = node(index).registryHost.topicMachine(topic)?.head(partition)?.height ?? 0;
    return height > 0 && head >= height ? height : undefined;
  });
}

/** Every block 1..height of node `index`'s global ledger has the hash of node1's replica's block. */
function expectSameBlocks(index: number, height: number): void {
  const ledger = node(index).registryHost.globalLedger(topic)!;
  const replica = node(0).replicas.get(partition)!;
  for (let h = 1; h <= height; h++) {
    const block = ledger.block(partition, h);
    expect(block, `node${index + 1} ${partition}@${h}`).toBeDefined();
    expect(toHex(blockHash(block!.header))).toBe(toHex(blockHash(replica.database.blocks.get(h)!.header)));
  }
}

beforeAll(async () => {
  layout = ensureDevnetLayout({ directory: dir, organizations: 4, basePort: 26620 });
  // node4 stays down while the others compact their logs.
  for (let index = 0; index < 3; index++) await startNode(index);
  for (const organization of ['org1', 'org2']) await startConnector(organization);
}, 60_000);

afterAll(async () => {
  for (const each of connectors.values()) await each.stop();
  for (const each of nodes) await each?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('Raft log compaction', () => {
  it('keeps at most a few entries of each group on disk, and a restarted node resumes from its snapshot', async () => {
    // Spread over several replication rounds, so the topic group commits many entries.
    for (let round = 0; round < 8; round++) {
      await sendMessages(4);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const height = await globalLedgerCaughtUp(0);
    for (let index = 0; index < 3; index++) {
      const log = raftLog(index, topicGroupId(topic));
      expect(log.snapshotIndex, `node${index + 1} took a snapshot`).toBeGreaterThan(snapshotEvery);
      // Whatever was applied since the last snapshot, plus what a follower has not applied yet.
      expect(log.entries, `node${index + 1}'s topic log`).toBeLessThanOrEqual(2 * snapshotEvery + 2);
      expect(raftLog(index, SYSTEM_GROUP).entries).toBeLessThanOrEqual(2 * snapshotEvery + 2);
    }

    await node(0).stop();
    nodes[0] = undefined;
    const restarted = await startNode(0);
    // Restored from the snapshot plus the log after it: the head is where it was, and every block
    // below it is still in the global ledger.
    expect(restarted.registryHost.topicMachine(topic)?.head(partition)?.height).toBeGreaterThanOrEqual(
      height,
    );
    expectSameBlocks(0, height);
    await sendMessages(3);
    const after = await globalLedgerCaughtUp(0);
    expect(after).toBeGreaterThan(height);
  }, 180_000);

  it('a node down while the logs were compacted installs a snapshot and fills its global ledger', async () => {
    const height = node(0).replicas.get(partition)!.height;
    await startNode(3);
    await globalLedgerCaughtUp(3);
    // It caught up by a snapshot: its log never held the entries before the snapshot it installed.
    const log = raftLog(3, topicGroupId(topic));
    expect(log.snapshotIndex).toBeGreaterThan(snapshotEvery);
    expect(log.firstEntry === 0 || log.firstEntry > log.snapshotIndex).toBe(true);
    // ... and yet every block is there, the ones below the snapshot's head fetched and verified.
    await waitFor("node4's global ledger to hold every block", () => {
      const rows = globalRows(3);
      return rows.rows >= height && rows.rows === rows.maxHeight ? true : undefined;
    });
    expectSameBlocks(3, height);
  }, 180_000);

  it('a replica keeps each block once: its global ledger refers to its partition database', () => {
    for (let index = 0; index < 3; index++) {
      const rows = globalRows(index);
      expect(rows.rows).toBeGreaterThan(0);
      expect(rows.whole, `node${index + 1}: blocks stored twice`).toBe(0);
    }
  });
});
