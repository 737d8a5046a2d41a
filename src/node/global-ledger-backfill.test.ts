// Filling a global ledger after a snapshot install, on real SQLite files: a node whose topic state was
// restored from a peer's snapshot holds the partition's head but none of the blocks below it; the
// backfill fetches them, stores only what verifies and links up to the head, and refuses every lie a
// peer can tell. Also: a block the node's own partition database holds is kept there only once.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CborValue } from '../codec/index.js';
import { toHex } from '../codec/index.js';
import { blockHash, encodeBlock } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import { BlockStore } from '../ledger/block-store.js';
import {
  SystemHarness,
  blocksEntry,
  buildBlock,
  lie,
  lieKinds,
  partition,
  topic,
  validChain,
} from '../registry/testing/fixtures.js';
import { topicGroupId } from '../registry/admin-transactions.js';
import { TopicStateMachine } from '../registry/topic-state.js';
import { createLogger } from '../runtime/logger.js';
import { backfillTopic } from './global-ledger-backfill.js';
import type { BackfillSources } from './global-ledger-backfill.js';
import { GlobalLedgerDatabase } from './global-ledger-database.js';
import { groupFileName } from './group-files.js';

const chain = validChain(12);
const logger = createLogger({ name: 'test', level: 'silent' });
let directory: string;
const opened: GlobalLedgerDatabase[] = [];

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-backfill-'));
});
afterEach(() => {
  for (const ledger of opened.splice(0)) ledger.close();
  rmSync(directory, { recursive: true, force: true });
});

/** A node: its own data directory, global ledger and topic state machine. */
function nodeAt(name: string, system: SystemHarness) {
  const dataDirectory = join(directory, name);
  const ledger = GlobalLedgerDatabase.open(dataDirectory, topic);
  opened.push(ledger);
  const machine = new TopicStateMachine(system.machine.latest.topics.get(topic)!, system.reader, ledger);
  let index = 0;
  return {
    dataDirectory,
    ledger,
    machine,
    apply: (blocks: readonly Block[]) =>
      machine.apply(
        ++index,
        blocksEntry(
          partition,
          blocks.map((block) => encodeBlock(block)),
        ),
      ),
  };
}

/** A peer that answers `globalBlocks` (and nothing else) with what `serve` returns. */
function peer(serve: (from: number, count: number) => Uint8Array[]): BackfillSources {
  return {
    localBlocks: () => undefined,
    requestPeer: async (_node, method, body) => {
      if (method !== 'globalBlocks') throw new Error(`${method} is not served here`);
      const record = body as Record<string, CborValue>;
      return { blocks: serve(record['from'] as number, record['count'] as number) };
    },
    selfNodeId: 'n2',
    logger,
  };
}

function heights(ledger: GlobalLedgerDatabase): number[] {
  const held: number[] = [];
  for (let height = 1; height <= chain.length; height++)
    if (ledger.block(partition, height)) held.push(height);
  return held;
}

/** node2 restored from node1's snapshot at `height`: its head is there, its ledger empty. */
function restoredBehind(height: number) {
  const system = new SystemHarness();
  const leader = nodeAt('node1', system);
  leader.apply(chain.slice(0, height));
  const follower = nodeAt('node2', system);
  follower.machine.restore(1, leader.machine.snapshot());
  expect(follower.machine.head(partition)?.height).toBe(height);
  return { leader, follower };
}

describe('filling the global ledger below a restored head', () => {
  it('fetches the blocks below the head, verifies them and stores them up to the head itself', async () => {
    const { leader, follower } = restoredBehind(10);
    expect(follower.ledger.firstGap(partition, 10)).toEqual({ from: 1, to: 10 });
    const sources = peer((from, count) => leader.ledger.blocksFrom(partition, from, count));
    let stored = 0;
    for (let pass = 0; pass < 5; pass++)
      stored += await backfillTopic(topic, follower.machine, follower.ledger, ['n1'], sources);
    expect(stored).toBe(10);
    expect(heights(follower.ledger)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(follower.ledger.firstGap(partition, 10)).toBeUndefined();
    for (let height = 1; height <= 10; height++) {
      expect(toHex(blockHash(follower.ledger.block(partition, height)!.header))).toBe(
        toHex(blockHash(chain[height - 1]!.header)),
      );
    }
  });

  it('fills a hole that ends below blocks applied after the snapshot', async () => {
    const { leader, follower } = restoredBehind(6);
    follower.apply(chain.slice(6, 9));
    expect(follower.ledger.firstGap(partition, 9)).toEqual({ from: 1, to: 6 });
    await backfillTopic(
      topic,
      follower.machine,
      follower.ledger,
      ['n1'],
      peer((from, count) => leader.ledger.blocksFrom(partition, from, count)),
    );
    expect(heights(follower.ledger)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it.each(lieKinds)('stores nothing of a run in which a peer serves a block with %s', async (kind) => {
    const { leader, follower } = restoredBehind(6);
    const honest = peer((from, count) => leader.ledger.blocksFrom(partition, from, count));
    const lying = peer((from, count) =>
      leader.ledger
        .blocksFrom(partition, from, count)
        .map((bytes, i) => (from + i === 3 ? lie(kind, 3, chain[1]!.header) : bytes)),
    );
    expect(await backfillTopic(topic, follower.machine, follower.ledger, ['n1'], lying)).toBe(0);
    expect(heights(follower.ledger)).toEqual([]);
    expect(await backfillTopic(topic, follower.machine, follower.ledger, ['n1'], honest)).toBe(6);
    expect(heights(follower.ledger)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('stores nothing of a certified chain that does not lead to the head (another fork)', async () => {
    const { follower } = restoredBehind(4);
    // Certified by the same replicas, linked among themselves, but not the partition's blocks.
    const fork: Block[] = [];
    for (let height = 1; height <= 4; height++) {
      const previous = fork.at(-1)?.header;
      fork.push(
        buildBlock({
          height,
          ...(previous === undefined ? {} : { previous }),
          transactions: [new TextEncoder().encode(`fork ${height}`)],
        }),
      );
    }
    const sources = peer((from, count) =>
      fork.slice(from - 1, from - 1 + count).map((block) => encodeBlock(block)),
    );
    expect(await backfillTopic(topic, follower.machine, follower.ledger, ['n1'], sources)).toBe(0);
    expect(heights(follower.ledger)).toEqual([]);
  });

  it('fills a hole larger than one fetch from the top down, each run anchored to the one above', async () => {
    const long = validChain(150);
    const system = new SystemHarness();
    const leader = nodeAt('node1', system);
    leader.apply(long.slice(0, 60));
    leader.apply(long.slice(60, 120));
    leader.apply(long.slice(120));
    const follower = nodeAt('node2', system);
    follower.machine.restore(3, leader.machine.snapshot());
    const sources = peer((from, count) => leader.ledger.blocksFrom(partition, from, count));
    const runs: number[] = [];
    for (let pass = 0; pass < 4; pass++)
      runs.push(await backfillTopic(topic, follower.machine, follower.ledger, ['n1'], sources));
    expect(runs).toEqual([64, 64, 22, 0]);
    expect(follower.ledger.firstGap(partition, 150)).toBeUndefined();
  });
});

describe('a block kept once per node', () => {
  it('is stored by reference when the node replicates the partition, and read back from there', () => {
    const system = new SystemHarness();
    const dataDirectory = join(directory, 'replica');
    // The node's replica of the partition, holding blocks 1..4 (as PBFT committed them).
    mkdirSync(join(dataDirectory, 'partitions'), { recursive: true });
    const partitionFile = join(dataDirectory, 'partitions', groupFileName(partition));
    const store = BlockStore.open(partitionFile, { partitionId: partition });
    store.appendMany(chain.slice(0, 4));
    const node = nodeAt('replica', system);
    expect(node.dataDirectory).toBe(dataDirectory);
    node.apply(chain.slice(0, 6));
    store.close();
    const raw = new Database(join(dataDirectory, 'global', groupFileName(topicGroupId(topic))), {
      readonly: true,
    });
    const rows = raw.prepare('SELECT height, length(bytes) AS bytes FROM blocks ORDER BY height').all() as {
      height: number;
      bytes: number;
    }[];
    raw.close();
    // 1..4 are in the partition database, so kept there only; 5 and 6 are not, so kept whole.
    expect(rows.map((row) => [row.height, row.bytes > 0])).toEqual([
      [1, false],
      [2, false],
      [3, false],
      [4, false],
      [5, true],
      [6, true],
    ]);
    for (let height = 1; height <= 6; height++) {
      expect(toHex(blockHash(node.ledger.block(partition, height)!.header))).toBe(
        toHex(blockHash(chain[height - 1]!.header)),
      );
    }
    expect(node.ledger.blocksFrom(partition, 1, 10).map((bytes) => bytes.length)).toEqual(
      chain.slice(0, 6).map((block) => encodeBlock(block).length),
    );
  });
});
