// What a chaos or power-cut run must hold afterwards, read from the replicas' own files: the ledgers of
// every partition agree, verify and contain every acknowledged message at the offset its
// acknowledgement named; no delivery receipt precedes the commit of its message; every node's global
// ledger (the Raft layer) holds exactly the partitions' certified blocks.
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { ReceivedMessage as ConnectorReceivedMessage } from '../../src/connector/api-types.js';
import { bytesEqual } from '../../src/crypto/index.js';
import { decodeTransactionResult } from '../../src/contracts/results.js';
import { blockHash, decodeBlock, encodeBlock, verifyBlock } from '../../src/ledger/block.js';
import { groupFileName } from '../../src/node/group-files.js';
import { topicGroupId } from '../../src/registry/admin-transactions.js';
import type { Block, BlockHeader, GroupMembership } from '../../src/ledger/block.js';

export interface AckedMessage {
  readonly id: string;
  readonly topic: string;
  readonly recipient: string;
  readonly sha256: string;
  readonly partition: number;
  readonly offset: number;
}

/** What the checker reads of a recipient's `GET /v1/received` entries. */
export type ReceivedMessage = Pick<
  ConnectorReceivedMessage,
  'sequence' | 'id' | 'topic' | 'partition' | 'offset' | 'sha256'
>;

export interface GroupSpec {
  readonly group: string;
  readonly membership: (configEpoch: number) => GroupMembership | undefined;
}

export interface DeliveryFindings {
  delivered: number;
  lost: number;
  duplicated: number;
  hashMismatches: number;
  /** Two ids claimed one (partition, offset) between acknowledgements and deliveries. */
  offsetConflicts: number;
  problems: string[];
}

/** Every acknowledged message must be in its recipient's storage exactly once with its hash. */
export function checkDeliveries(
  acked: readonly AckedMessage[],
  receivedBy: ReadonlyMap<string, readonly ReceivedMessage[]>,
): DeliveryFindings {
  const findings: DeliveryFindings = {
    delivered: 0,
    lost: 0,
    duplicated: 0,
    hashMismatches: 0,
    offsetConflicts: 0,
    problems: [],
  };
  // A recipient's message is (topic, partition, id): ids are unique per partition only.
  const named = (message: { topic: string; partition: number; id: string }): string =>
    `${message.topic}/${message.partition}/${message.id}`;
  const byRecipient = new Map<string, Map<string, ReceivedMessage[]>>();
  for (const [recipient, entries] of receivedBy) {
    const byName = new Map<string, ReceivedMessage[]>();
    for (const entry of entries) byName.set(named(entry), [...(byName.get(named(entry)) ?? []), entry]);
    byRecipient.set(recipient, byName);
  }
  for (const message of acked) {
    const copies = byRecipient.get(message.recipient)?.get(named(message)) ?? [];
    if (copies.length === 0) {
      findings.lost += 1;
      findings.problems.push(
        `lost ${message.id} (acked at ${message.topic}/${message.partition}@${message.offset})`,
      );
      continue;
    }
    findings.delivered += 1;
    if (copies.length > 1) {
      findings.duplicated += 1;
      findings.problems.push(`${message.id} delivered ${copies.length} times`);
    }
    if (copies.some((copy) => copy.sha256 !== message.sha256)) {
      findings.hashMismatches += 1;
      findings.problems.push(`${message.id} received with another sha256`);
    }
  }
  const atOffset = new Map<string, string>();
  const claim = (topic: string, partition: number, offset: number, id: string): void => {
    const key = `${topic}/${partition}@${offset}`;
    const holder = atOffset.get(key);
    if (holder === undefined) atOffset.set(key, id);
    else if (holder !== id) {
      findings.offsetConflicts += 1;
      findings.problems.push(`${key} holds both ${holder} and ${id}`);
    }
  };
  for (const message of acked) claim(message.topic, message.partition, message.offset, message.id);
  for (const entries of receivedBy.values())
    for (const entry of entries) claim(entry.topic, entry.partition, entry.offset, entry.id);
  return findings;
}

export interface LedgerFindings {
  /** Group → stored height on each node. */
  readonly heads: Record<string, number[]>;
  ledgerMismatches: number;
  badCertificates: number;
  /** An acknowledged message missing from the ledger, or another id at its acknowledged offset. */
  ackedNotInLedger: number;
  /** One message accepted twice, or one offset given to two messages. */
  ledgerDuplicates: number;
  receiptsBeforeCommit: number;
  problems: string[];
}

interface StoredLedger {
  readonly blocks: Block[];
  readonly hashes: string[];
}

/** `nodes[i]`'s partition file of `group` is `partitionFile(nodes[i], group)`. */
export function checkLedgers(
  nodes: readonly number[],
  partitionFile: (node: number, group: string) => string,
  groups: readonly GroupSpec[],
  acked: readonly AckedMessage[],
): LedgerFindings {
  const findings: LedgerFindings = {
    heads: {},
    ledgerMismatches: 0,
    badCertificates: 0,
    ackedNotInLedger: 0,
    ledgerDuplicates: 0,
    receiptsBeforeCommit: 0,
    problems: [],
  };
  for (const spec of groups) {
    const ledgers = nodes.map((node) =>
      readPartitionLedger(node, partitionFile(node, spec.group), spec, findings),
    );
    findings.heads[spec.group] = ledgers.map((ledger) => ledger.blocks.length);
    compareReplicas(nodes, spec.group, ledgers, findings);
    const longest = ledgers.reduce((a, b) => (b.blocks.length > a.blocks.length ? b : a));
    checkContents(spec.group, longest.blocks, acked, findings);
  }
  return findings;
}

function readPartitionLedger(
  node: number,
  path: string,
  spec: GroupSpec,
  findings: LedgerFindings,
): StoredLedger {
  const blocks: Block[] = [];
  const hashes: string[] = [];
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const rows = db.prepare('SELECT height, bytes FROM blocks ORDER BY height').all() as {
      height: number;
      bytes: Buffer;
    }[];
    let previous: BlockHeader | undefined;
    for (const row of rows) {
      const block = decodeBlock(row.bytes);
      if (block.header.height !== row.height || block.header.height !== blocks.length + 1)
        findings.problems.push(
          `node${node} ${spec.group}: row ${row.height} holds block ${block.header.height}`,
        );
      try {
        const membership = spec.membership(block.header.configEpoch);
        if (membership === undefined) throw new Error(`no membership for epoch ${block.header.configEpoch}`);
        verifyBlock(block, membership, previous);
      } catch (error) {
        findings.badCertificates += 1;
        findings.problems.push(`node${node} ${spec.group} block ${row.height}: ${String(error)}`);
      }
      blocks.push(block);
      hashes.push(Buffer.from(blockHash(block.header)).toString('hex'));
      previous = block.header;
    }
  } catch (error) {
    // A replica that never stored a block of a partition created late has no file yet.
    if (!/unable to open|does not exist|directory does not exist/i.test(String(error)))
      findings.problems.push(`node${node}: cannot read ${spec.group}: ${String(error)}`);
  } finally {
    db?.close();
  }
  return { blocks, hashes };
}

/** Byte-identical up to the lowest common height (certificates may hold other, equally valid signers). */
function compareReplicas(
  nodes: readonly number[],
  group: string,
  ledgers: readonly StoredLedger[],
  findings: LedgerFindings,
): void {
  const reference = ledgers[0];
  if (reference === undefined) return;
  const common = Math.min(...ledgers.map((ledger) => ledger.blocks.length));
  for (let height = 1; height <= common; height++) {
    const expected = reference.blocks[height - 1]!;
    const expectedBytes = encodeBlock(expected);
    ledgers.slice(1).forEach((ledger, offset) => {
      const block = ledger.blocks[height - 1]!;
      const same =
        bytesEqual(blockHash(block.header), blockHash(expected.header)) &&
        bytesEqual(encodeBlock({ ...block, certificate: expected.certificate }), expectedBytes);
      if (!same) {
        findings.ledgerMismatches += 1;
        findings.problems.push(
          `node${nodes[offset + 1]} ${group} differs from node${nodes[0]} at height ${height}`,
        );
      }
    });
  }
}

/** Offsets, acknowledgements and receipts as the certified results record them. */
function checkContents(
  group: string,
  blocks: readonly Block[],
  acked: readonly AckedMessage[],
  findings: LedgerFindings,
): void {
  const idAtOffset = new Map<number, string>();
  const acceptedAt = new Map<string, number>();
  for (const block of blocks) {
    for (const bytes of block.results) {
      const result = decodeTransactionResult(bytes);
      if (result.status !== 'OK') continue;
      if (result.type === 'publish') {
        for (const message of result.messages) {
          if (message.status !== 'ACCEPTED') continue;
          // A retried id gets the first acceptance again (same offset, possibly in the same block):
          // not a second message. Another offset for the id, or another id at the offset, is.
          const holder = idAtOffset.get(message.offset);
          if (holder === message.id) continue;
          if (holder !== undefined || acceptedAt.has(message.id)) {
            findings.ledgerDuplicates += 1;
            findings.problems.push(`${group}: ${message.id} at offset ${message.offset} (held by ${holder})`);
          }
          idAtOffset.set(message.offset, message.id);
          acceptedAt.set(message.id, block.header.height);
        }
      } else {
        for (const delivery of result.deliveries) {
          if (delivery.status !== 'DELIVERED') continue;
          const committed = acceptedAt.get(delivery.id);
          if (committed === undefined || committed >= block.header.height) {
            findings.receiptsBeforeCommit += 1;
            findings.problems.push(
              `${group}: receipt of ${delivery.id} at height ${block.header.height}, commit at ${committed}`,
            );
          }
        }
      }
    }
  }
  for (const message of acked) {
    if (`${message.topic}/${message.partition}` !== group) continue;
    const holder = idAtOffset.get(message.offset);
    if (holder !== message.id) {
      findings.ackedNotInLedger += 1;
      findings.problems.push(
        `${group}: acked ${message.id} at offset ${message.offset}, ledger holds ${holder}`,
      );
    }
  }
}

/**
 * The Raft layer's copy: each node's global ledger of `topic` must hold, for every partition, exactly
 * the blocks of the partition's longest replica ledger. Returns what still differs, or undefined.
 */
export function globalLedgerLag(
  nodes: readonly number[],
  partitionFile: (node: number, group: string) => string,
  topic: string,
  groups: readonly string[],
): string | undefined {
  const globalFile = (node: number): string =>
    join(dirname(dirname(partitionFile(node, `${topic}/0`))), 'global', groupFileName(topicGroupId(topic)));
  for (const group of groups) {
    const partitionLedgers = nodes.map((node) =>
      readHashes(partitionFile(node, group), 'SELECT hash FROM blocks ORDER BY height'),
    );
    const longest = partitionLedgers.reduce((a, b) => (b.length > a.length ? b : a));
    if (partitionLedgers.some((ledger) => ledger.some((hash, index) => hash !== longest[index])))
      return `replicas of ${group} disagree`;
    for (const node of nodes) {
      const global = readHashes(
        globalFile(node),
        'SELECT bytes FROM blocks WHERE partition = ? ORDER BY height',
        group,
      );
      if (global.length < longest.length)
        return `node${node} global ${group} at ${global.length}/${longest.length}`;
      if (global.some((hash, index) => hash !== longest[index])) return `node${node} global ${group} differs`;
    }
  }
  return undefined;
}

function readHashes(path: string, sql: string, ...parameters: string[]): string[] {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch {
    return [];
  }
  try {
    return (db.prepare(sql).all(...parameters) as { hash?: Buffer; bytes?: Buffer }[]).map((row) =>
      Buffer.from(row.hash ?? blockHash(decodeBlock(row.bytes!).header)).toString('hex'),
    );
  } catch {
    return []; // the node has not created its table yet
  } finally {
    db.close();
  }
}
