// The chaos and power-cut checker on known inputs: real partition databases written by the node's own
// PartitionDatabase (certified blocks whose results are real SDT transaction results), real
// deliveries as the test applications record them. A clean run has no problem; each known-bad input
// is caught as its own kind of problem.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeWith } from '../../src/codec/index.js';
import { transactionResultSchema } from '../../src/contracts/results.js';
import type { TransactionResult } from '../../src/contracts/results.js';
import { blockHash, encodeBlock } from '../../src/ledger/block.js';
import type { Block } from '../../src/ledger/block.js';
import { groupFileName } from '../../src/node/group-files.js';
import { PartitionDatabase } from '../../src/node/partition-database.js';
import { makeBlock, makeGroup } from '../ledger/fixtures.js';
import { checkDeliveries, checkLedgers, checkThroughput, countProblems } from './checker.js';
import type { AckedMessage, GroupSpec, HandedMessage, Problem, ReceivedMessage } from './checker.js';

const group = 'demo/0';
const testGroup = makeGroup({ n: 4, partitionId: group });
const spec: GroupSpec = {
  group,
  membership: (epoch) => (epoch === testGroup.membership.configEpoch ? testGroup.membership : undefined),
};
const nodes = [1, 2, 3, 4];
const t0 = 1_700_000_000_000;

let directory: string;
const partitionFile = (node: number, name: string): string =>
  join(directory, `node${node}`, 'partitions', groupFileName(name));

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-checker-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

const kinds = (problems: readonly Problem[]): string[] => problems.map((problem) => problem.kind).sort();

type Content =
  { readonly publish: readonly { id: string; offset: number }[] } | { readonly confirm: readonly string[] };

/** A certified block after `previous` whose results are real publish / confirmDelivery results. */
function block(contents: readonly Content[], previous?: Block, signerIndexes?: readonly number[]): Block {
  const height = (previous?.header.height ?? 0) + 1;
  const results = contents.map((content, index) => {
    const result: TransactionResult =
      'publish' in content
        ? {
            status: 'OK',
            type: 'publish',
            sender: 'org1',
            messagesRoot: new Uint8Array(32),
            messageCount: content.publish.length,
            messages: content.publish.map((message, messageIndex) => ({
              id: message.id,
              status: 'ACCEPTED',
              offset: message.offset,
              height,
              transactionIndex: index,
              messageIndex,
            })),
          }
        : {
            status: 'OK',
            type: 'confirmDelivery',
            recipient: 'org2',
            deliveries: content.confirm.map((id, deliveryIndex) => ({
              id,
              status: 'DELIVERED',
              height,
              transactionIndex: index,
              deliveryIndex,
            })),
          };
    return encodeWith(transactionResultSchema, result);
  });
  const transactions = contents.map((content) => new TextEncoder().encode(JSON.stringify(content)));
  return makeBlock({
    group: testGroup,
    ...(previous === undefined ? {} : { previous: previous.header }),
    transactions,
    results,
    ...(signerIndexes === undefined ? {} : { signerIndexes }),
  });
}

function chain(...contents: (readonly Content[])[]): Block[] {
  const blocks: Block[] = [];
  for (const content of contents) blocks.push(block(content, blocks.at(-1)));
  return blocks;
}

/** m0, m1, m2 published, each confirmed in a later block; m1's retry re-accepted at its offset. */
function cleanChain(): Block[] {
  return chain(
    [
      {
        publish: [
          { id: 'm0', offset: 0 },
          { id: 'm1', offset: 1 },
        ],
      },
    ],
    [{ publish: [{ id: 'm2', offset: 2 }] }, { confirm: ['m0', 'm1'] }],
    [{ publish: [{ id: 'm1', offset: 1 }] }, { confirm: ['m2'] }],
  );
}

/** Writes `blocks` as `node`'s replica, with the node's own partition database. */
function writeReplica(node: number, blocks: readonly Block[]): void {
  const database = PartitionDatabase.open(join(directory, `node${node}`), group);
  try {
    for (const each of blocks) database.commitBlock(each, new Map());
  } finally {
    database.close();
  }
}

function writeReplicas(blocks: readonly Block[], except: readonly number[] = []): void {
  for (const node of nodes) if (!except.includes(node)) writeReplica(node, blocks);
}

const ack = (id: string, offset: number, extra: Partial<AckedMessage> = {}): AckedMessage => ({
  id,
  topic: 'demo',
  recipient: 'org2',
  sha256: `sha-${id}`,
  partition: 0,
  offset,
  ackedAt: t0 + offset * 1_000,
  ...extra,
});
const acked = [ack('m0', 0), ack('m1', 1), ack('m2', 2)];

const hand = (
  message: AckedMessage,
  sequence: number,
  extra: Partial<Omit<HandedMessage, 'committed'>> & { committed?: boolean } = {},
): HandedMessage => ({
  recipient: message.recipient,
  incarnation: 0,
  committed: true,
  sequence,
  id: message.id,
  topic: message.topic,
  partition: message.partition,
  offset: message.offset,
  sha256: message.sha256,
  ...extra,
});
const row = (message: AckedMessage, sequence: number): ReceivedMessage => ({
  sequence,
  id: message.id,
  topic: message.topic,
  partition: message.partition,
  offset: message.offset,
  sha256: message.sha256,
});
const handedOnce = (): HandedMessage[] => acked.map((message, index) => hand(message, index + 1));
const storedAll = (): Map<string, ReceivedMessage[]> =>
  new Map([['org2', acked.map((message, index) => row(message, index + 1))]]);

describe('a clean run', () => {
  it('has no problem', () => {
    writeReplicas(cleanChain());
    const ledgers = checkLedgers(nodes, partitionFile, [spec], acked);
    expect(ledgers.problems).toEqual([]);
    expect(ledgers.heads[group]).toEqual([3, 3, 3, 3]);
    const deliveries = checkDeliveries(acked, handedOnce(), storedAll());
    expect(deliveries.problems).toEqual([]);
    expect(deliveries.delivered).toBe(3);
    expect(deliveries.redelivered).toBe(0);
  });

  it('may have a replica behind the others: a prefix of the longest ledger', () => {
    const blocks = cleanChain();
    writeReplicas(blocks, [2]);
    writeReplica(2, blocks.slice(0, 1));
    const ledgers = checkLedgers(nodes, partitionFile, [spec], acked);
    expect(ledgers.problems).toEqual([]);
    expect(ledgers.heads[group]).toEqual([3, 1, 3, 3]);
  });
});

describe('deliveries: what the applications were handed', () => {
  it('catches an acknowledged message never handed to the application', () => {
    const handed = handedOnce().filter((message) => message.id !== 'm1');
    const findings = checkDeliveries(acked, handed, storedAll());
    expect(kinds(findings.problems)).toEqual(['lost']);
    expect(findings.problems[0]).toMatchObject({ id: 'm1', storedByConnector: true });
    expect(findings.delivered).toBe(2);
  });

  it('catches a message handed twice, each time committed', () => {
    const handed = [...handedOnce(), hand(acked[1]!, 2)];
    expect(kinds(checkDeliveries(acked, handed, storedAll()).problems)).toEqual(['duplicateDelivery']);
  });

  it('catches a message stored twice by the connector and handed under both sequences', () => {
    // The first hand-out's commit was not confirmed and a new incarnation followed, but the second
    // copy is another stored row: not a redelivery of the same one.
    const handed = [...handedOnce(), hand(acked[1]!, 4, { incarnation: 1 })];
    handed[1]!.committed = false;
    expect(kinds(checkDeliveries(acked, handed, storedAll()).problems)).toEqual(['duplicateDelivery']);
  });

  it('catches a message handed again by the same consumer incarnation', () => {
    const handed = [...handedOnce(), hand(acked[1]!, 2)];
    handed[1]!.committed = false;
    expect(kinds(checkDeliveries(acked, handed, storedAll()).problems)).toEqual(['duplicateDelivery']);
  });

  it('catches a redelivery after a commit the SDK confirmed (the connector lost it)', () => {
    const handed = [...handedOnce(), hand(acked[1]!, 2, { incarnation: 1 })];
    expect(kinds(checkDeliveries(acked, handed, storedAll()).problems)).toEqual(['duplicateDelivery']);
  });

  it('accepts a redelivery by a new incarnation after a commit that was never confirmed', () => {
    const handed = [...handedOnce(), hand(acked[1]!, 2, { incarnation: 1 })];
    handed[1]!.committed = false;
    const findings = checkDeliveries(acked, handed, storedAll());
    expect(findings.problems).toEqual([]);
    expect(findings.redelivered).toBe(1);
  });

  it('catches a message handed with another payload than was sent', () => {
    const handed = handedOnce();
    handed[2] = hand(acked[2]!, 3, { sha256: 'sha-other' });
    expect(kinds(checkDeliveries(acked, handed, storedAll()).problems)).toEqual(['hashMismatch']);
  });

  it('catches a message handed at another offset than its acknowledgement named', () => {
    const handed = handedOnce();
    handed[2] = hand(acked[2]!, 3, { offset: 7 });
    expect(kinds(checkDeliveries(acked, handed, storedAll()).problems)).toEqual(['offsetConflict']);
  });

  it('catches two acknowledgements of one offset', () => {
    const twice = [...acked, ack('m3', 2)];
    const handed = [...handedOnce(), hand(twice[3]!, 4)];
    expect(kinds(checkDeliveries(twice, handed).problems)).toEqual(['offsetConflict']);
  });

  it('catches a message the connector stored but never handed to the application', () => {
    const stored = storedAll();
    stored.get('org2')!.push({ ...row(ack('unacked', 3), 4) });
    expect(kinds(checkDeliveries(acked, handedOnce(), stored).problems)).toEqual(['storedNotHanded']);
  });
});

describe('partition files', () => {
  it('catches a replica with no partition file', () => {
    writeReplicas(cleanChain(), [4]);
    const ledgers = checkLedgers(nodes, partitionFile, [spec], acked);
    expect(kinds(ledgers.problems)).toEqual(['missingPartitionFile']);
    expect(ledgers.problems[0]).toMatchObject({ node: 4, group });
  });

  it('catches a partition file that does not read', () => {
    writeReplicas(cleanChain(), [2]);
    mkdirSync(join(directory, 'node2', 'partitions'), { recursive: true });
    writeFileSync(partitionFile(2, group), Buffer.alloc(8192, 0x5a));
    const ledgers = checkLedgers(nodes, partitionFile, [spec], acked);
    expect(kinds(ledgers.problems)).toEqual(['unreadablePartitionFile']);
    expect(ledgers.problems[0]).toMatchObject({ node: 2 });
  });

  it('catches a row that holds the block of another height', () => {
    const blocks = cleanChain();
    writeReplicas(blocks, [3]);
    writeReplica(3, blocks.slice(0, 2));
    // Behind the block store's back: row 3 holds block 2 again.
    const db = new Database(partitionFile(3, group));
    const second = blocks[1]!;
    db.prepare(
      'INSERT INTO blocks (height, hash, previous_hash, config_epoch, timestamp, bytes) VALUES (3, ?, ?, ?, ?, ?)',
    ).run(
      blockHash(second.header),
      second.header.previousHash,
      second.header.configEpoch,
      second.header.timestamp,
      encodeBlock(second),
    );
    db.close();
    const problems = checkLedgers(nodes, partitionFile, [spec], acked).problems;
    expect(problems.filter((problem) => problem.kind === 'rowHeightMismatch')).toMatchObject([
      { node: 3, row: 3, height: 2 },
    ]);
  });

  it('catches a block whose certificate does not verify', () => {
    const blocks = cleanChain();
    writeReplicas(blocks, [2]);
    // One signature of four: under the quorum of three.
    const weak = { ...blocks[1]!, certificate: block([], blocks[0], [0]).certificate };
    writeReplica(2, [blocks[0]!, { ...weak, header: blocks[1]!.header }, blocks[2]!]);
    const ledgers = checkLedgers(nodes, partitionFile, [spec], acked);
    expect(kinds(ledgers.problems)).toEqual(['badCertificate']);
    expect(ledgers.problems[0]).toMatchObject({ node: 2, height: 2 });
  });

  it('catches a forked replica: another certified block at the same height', () => {
    const blocks = cleanChain();
    writeReplicas(blocks, [3]);
    const fork = block([{ publish: [{ id: 'm2', offset: 2 }] }], blocks[0]);
    writeReplica(3, [blocks[0]!, fork]);
    const ledgers = checkLedgers(nodes, partitionFile, [spec], acked);
    expect(kinds(ledgers.problems)).toEqual(['replicaFork']);
    expect(ledgers.problems[0]).toMatchObject({ node: 3, height: 2 });
  });

  it('catches a fork above the height of the shortest replica', () => {
    const blocks = cleanChain();
    writeReplica(1, blocks.slice(0, 1));
    writeReplica(2, blocks);
    writeReplica(3, blocks);
    writeReplica(4, [...blocks.slice(0, 2), block([{ publish: [{ id: 'm1', offset: 1 }] }], blocks[1])]);
    const ledgers = checkLedgers(nodes, partitionFile, [spec], acked);
    expect(kinds(ledgers.problems)).toEqual(['replicaFork']);
    expect(ledgers.problems[0]).toMatchObject({ height: 3 });
  });
});

describe('ledger contents', () => {
  it('catches an acknowledged message missing from the ledger', () => {
    writeReplicas(cleanChain());
    const lost = [...acked, ack('m3', 3)];
    const problems = checkLedgers(nodes, partitionFile, [spec], lost).problems;
    expect(kinds(problems)).toEqual(['ackedNotInLedger']);
    expect(problems[0]).toMatchObject({ id: 'm3', offset: 3 });
  });

  it('catches an acknowledgement of a partition whose ledger is not checked', () => {
    writeReplicas(cleanChain());
    const elsewhere = [...acked, ack('m9', 0, { topic: 'chaos' })];
    const problems = checkLedgers(nodes, partitionFile, [spec], elsewhere).problems;
    expect(kinds(problems)).toEqual(['ackedNotInLedger']);
    expect(problems[0]).toMatchObject({ group: 'chaos/0' });
  });

  it('catches one id accepted at two offsets', () => {
    writeReplicas(
      chain(
        [
          {
            publish: [
              { id: 'm0', offset: 0 },
              { id: 'm1', offset: 1 },
            ],
          },
        ],
        [
          {
            publish: [
              { id: 'm2', offset: 2 },
              { id: 'm1', offset: 3 },
            ],
          },
        ],
      ),
    );
    expect(kinds(checkLedgers(nodes, partitionFile, [spec], acked).problems)).toEqual(['idAtTwoOffsets']);
  });

  it('catches two ids accepted at one offset', () => {
    writeReplicas(
      chain(
        [
          {
            publish: [
              { id: 'm0', offset: 0 },
              { id: 'm1', offset: 1 },
            ],
          },
        ],
        [
          {
            publish: [
              { id: 'm2', offset: 2 },
              { id: 'x', offset: 1 },
            ],
          },
        ],
      ),
    );
    expect(kinds(checkLedgers(nodes, partitionFile, [spec], acked).problems)).toEqual(['twoIdsAtOffset']);
  });

  it('catches a delivery receipt in the block that commits its message, or before', () => {
    writeReplicas(
      chain(
        [
          {
            publish: [
              { id: 'm0', offset: 0 },
              { id: 'm1', offset: 1 },
            ],
          },
          { confirm: ['m0'] },
        ],
        [{ confirm: ['m2'] }],
        [{ publish: [{ id: 'm2', offset: 2 }] }],
      ),
    );
    const problems = checkLedgers(nodes, partitionFile, [spec], acked).problems;
    expect(kinds(problems)).toEqual(['receiptBeforeCommit', 'receiptBeforeCommit']);
  });
});

describe('load', () => {
  const perSecond = (from: number, to: number): AckedMessage[] =>
    Array.from({ length: (to - from) / 1_000 }, (_, index) =>
      ack(`a${index}`, index, { ackedAt: from + index * 1_000 }),
    );
  const floors = { start: t0, end: t0 + 120_000, minPerMinute: 30, minPerWindow: 5 };

  it('passes a run that acknowledged steadily, through its faults', () => {
    const windows = [{ fault: 'split', start: t0 + 10_000, end: t0 + 40_000 }];
    expect(checkThroughput(perSecond(t0, t0 + 120_000), { ...floors, windows })).toEqual([]);
  });

  it('catches a run that acknowledged nothing', () => {
    expect(kinds(checkThroughput([], { ...floors, windows: [] }))).toEqual(['tooFewAcks', 'tooFewAcks']);
  });

  it('catches a minute with too few acknowledgements', () => {
    const problems = checkThroughput(perSecond(t0, t0 + 60_000), { ...floors, windows: [] });
    expect(problems).toMatchObject([{ kind: 'tooFewAcks', acks: 0, floor: 30 }]);
  });

  it('catches a fault window with too few acknowledgements', () => {
    const acks = [...perSecond(t0, t0 + 30_000), ...perSecond(t0 + 62_000, t0 + 120_000)];
    const windows = [
      { fault: 'split', start: t0 + 20_000, end: t0 + 40_000 },
      { fault: 'stall', start: t0 + 30_000, end: t0 + 60_000 },
    ];
    const problems = checkThroughput(acks, { ...floors, windows });
    expect(problems).toMatchObject([{ kind: 'faultWindowStarved', fault: 'stall', acks: 0 }]);
  });
});

it('counts problems by kind', () => {
  const problems: Problem[] = [
    { kind: 'lost', recipient: 'org2', group, id: 'a', storedByConnector: false, detail: '' },
    { kind: 'lost', recipient: 'org2', group, id: 'b', storedByConnector: false, detail: '' },
    { kind: 'globalLedgerBehind', detail: '' },
  ];
  expect(countProblems(problems)).toEqual({ lost: 2, globalLedgerBehind: 1 });
});
