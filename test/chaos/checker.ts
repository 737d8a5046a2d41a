// What a chaos or power-cut run must hold afterwards. Every finding is a typed `Problem`, and the
// verdict is "no problems": nothing is only printed.
// - Deliveries, measured where a duplicate can show: what the recipients' applications were handed
//   (the test's own SDK consumers count every `eachMessage`). Each acknowledged message is handed to
//   its recipient's application exactly once, with the payload that was sent and at the offset its
//   acknowledgement named; everything a recipient's connector stored is handed on.
// - Ledgers, read from the replicas' own files: every replica of every partition has its file, it
//   reads, its rows are heights 1..n, its blocks verify, and the replicas agree; in each partition one
//   offset per id and one id per offset, every acknowledged message at the offset its acknowledgement
//   named, and no delivery receipt before the commit of its message.
// - Load: enough acknowledgements per minute and in every fault window, so a run that acknowledged
//   (next to) nothing cannot pass by having nothing to check.
// - The Raft layer: every node's global ledger holds exactly the partitions' certified blocks
//   (`globalLedgerLag`, which a run waits on).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { ReceivedMessage as ConnectorReceivedMessage } from '../../src/connector/api-types.js';
import { bytesEqual } from '../../src/crypto/index.js';
import { decodeTransactionResult } from '../../src/contracts/results.js';
import { blockHash, decodeBlock, encodeBlock, verifyBlock } from '../../src/ledger/block.js';
import { encodedBlockFromStored } from '../../src/ledger/stored-block.js';
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
  /** When the producer got the acknowledgement (ms since the epoch). */
  readonly ackedAt: number;
}

/** What the checker reads of a recipient's `GET /v1/received` entries. */
export type ReceivedMessage = Pick<
  ConnectorReceivedMessage,
  'sequence' | 'id' | 'topic' | 'partition' | 'offset' | 'sha256'
>;

/**
 * One `eachMessage` call of a recipient's application (the test's SDK consumer): what it was handed
 * (`sha256` of the value it got), by which incarnation of the consumer (a consumer that crashed is
 * replaced by the next incarnation, which resumes at the group's committed sequence), and whether the
 * SDK reported the commit of this message's sequence afterwards.
 */
export interface HandedMessage extends ReceivedMessage {
  readonly recipient: string;
  readonly incarnation: number;
  committed: boolean;
}

export interface GroupSpec {
  readonly group: string;
  readonly membership: (configEpoch: number) => GroupMembership | undefined;
}

/** A fault and its recovery time: the run must acknowledge messages within it. */
export interface FaultWindow {
  readonly fault: string;
  readonly start: number;
  readonly end: number;
}

/** Everything a check can find. Each is a failure of the run; `detail` says it in words. */
export type Problem = { readonly detail: string } &
  // deliveries: what the applications were handed
  (
    | {
        readonly kind: 'lost';
        readonly recipient: string;
        readonly group: string;
        readonly id: string;
        /** The recipient's connector stored it, but its application was never handed it. */
        readonly storedByConnector: boolean;
      }
    | {
        readonly kind: 'duplicateDelivery';
        readonly recipient: string;
        readonly group: string;
        readonly id: string;
        readonly sequences: readonly number[];
      }
    | {
        readonly kind: 'hashMismatch';
        readonly recipient: string;
        readonly group: string;
        readonly id: string;
      }
    /** Between acknowledgements and deliveries, two ids at one offset or two offsets for one id. */
    | {
        readonly kind: 'offsetConflict';
        readonly group: string;
        readonly offset: number;
        readonly id: string;
      }
    /** The recipient's connector stored a message its application was never handed. */
    | {
        readonly kind: 'storedNotHanded';
        readonly recipient: string;
        readonly group: string;
        readonly id: string;
        readonly sequence: number;
      }
    // partition files
    | { readonly kind: 'missingPartitionFile'; readonly node: number; readonly group: string }
    | { readonly kind: 'unreadablePartitionFile'; readonly node: number; readonly group: string }
    | {
        readonly kind: 'rowHeightMismatch';
        readonly node: number;
        readonly group: string;
        readonly row: number;
        readonly height: number;
      }
    | {
        readonly kind: 'badCertificate';
        readonly node: number;
        readonly group: string;
        readonly height: number;
      }
    /** A replica's block differs from the longest replica's at the same height. */
    | { readonly kind: 'replicaFork'; readonly node: number; readonly group: string; readonly height: number }
    // ledger contents
    | {
        readonly kind: 'ackedNotInLedger';
        readonly group: string;
        readonly id: string;
        readonly offset: number;
      }
    | {
        readonly kind: 'idAtTwoOffsets';
        readonly group: string;
        readonly id: string;
        readonly offsets: readonly number[];
      }
    | {
        readonly kind: 'twoIdsAtOffset';
        readonly group: string;
        readonly offset: number;
        readonly ids: readonly string[];
      }
    | {
        readonly kind: 'receiptBeforeCommit';
        readonly group: string;
        readonly id: string;
        readonly height: number;
      }
    // the Raft layer
    | { readonly kind: 'globalLedgerBehind' }
    // load
    | {
        readonly kind: 'tooFewAcks';
        readonly from: number;
        readonly to: number;
        readonly acks: number;
        readonly floor: number;
      }
    | {
        readonly kind: 'faultWindowStarved';
        readonly fault: string;
        readonly acks: number;
        readonly floor: number;
      }
  );

export type ProblemKind = Problem['kind'];

/** How many problems of each kind (for a run's one-line report). */
export function countProblems(problems: readonly Problem[]): Partial<Record<ProblemKind, number>> {
  const counts: Partial<Record<ProblemKind, number>> = {};
  for (const problem of problems) counts[problem.kind] = (counts[problem.kind] ?? 0) + 1;
  return counts;
}

export interface DeliveryFindings {
  /** Acknowledged messages handed to their recipient's application (once or more). */
  delivered: number;
  /**
   * Second hand-outs of one stored message (same sequence) by a later consumer incarnation, after
   * the earlier hand-out's commit was never confirmed: the SDK's at-least-once contract, not a problem.
   */
  redelivered: number;
  problems: Problem[];
}

const groupOf = (message: { topic: string; partition: number }): string =>
  `${message.topic}/${message.partition}`;
/** A recipient's message is (topic, partition, id): ids are unique per partition only. */
const named = (recipient: string, message: { topic: string; partition: number; id: string }): string =>
  `${recipient} ${groupOf(message)} ${message.id}`;

/**
 * Every acknowledged message must have been handed to its recipient's application exactly once, with
 * its hash; acknowledgements and deliveries must agree on offsets; and everything in `stored` (each
 * recipient's connector's received messages, of the topics its application consumes) must have been
 * handed on. Every message handed more than once is a problem unless the copy is an at-least-once
 * redelivery: the same stored message (sequence), whose previous hand-out's commit the SDK never
 * confirmed, handed again by a later consumer incarnation.
 */
export function checkDeliveries(
  acked: readonly AckedMessage[],
  handed: readonly HandedMessage[],
  stored: ReadonlyMap<string, readonly ReceivedMessage[]> = new Map(),
): DeliveryFindings {
  const findings: DeliveryFindings = { delivered: 0, redelivered: 0, problems: [] };
  const copiesOf = new Map<string, HandedMessage[]>();
  for (const copy of handed) {
    const name = named(copy.recipient, copy);
    copiesOf.set(name, [...(copiesOf.get(name) ?? []), copy]);
  }
  const storedNames = new Set<string>();
  for (const [recipient, entries] of stored)
    for (const entry of entries) storedNames.add(named(recipient, entry));

  for (const copies of copiesOf.values()) {
    const first = copies[0]!;
    for (let index = 1; index < copies.length; index++) {
      const previous = copies[index - 1]!;
      const copy = copies[index]!;
      if (
        copy.sequence === previous.sequence &&
        !previous.committed &&
        copy.incarnation > previous.incarnation
      ) {
        findings.redelivered += 1;
        continue;
      }
      findings.problems.push({
        kind: 'duplicateDelivery',
        recipient: first.recipient,
        group: groupOf(first),
        id: first.id,
        sequences: copies.map((each) => each.sequence),
        detail:
          `${first.recipient} was handed ${groupOf(first)} ${first.id} ${copies.length} times ` +
          `(sequences ${copies.map((each) => `${each.sequence}${each.committed ? '' : ' uncommitted'} by #${each.incarnation}`).join(', ')})`,
      });
      break;
    }
  }

  for (const message of acked) {
    const name = named(message.recipient, message);
    const copies = copiesOf.get(name) ?? [];
    if (copies.length === 0) {
      const storedByConnector = storedNames.has(name);
      findings.problems.push({
        kind: 'lost',
        recipient: message.recipient,
        group: groupOf(message),
        id: message.id,
        storedByConnector,
        detail:
          `lost ${message.id}: acked at ${groupOf(message)}@${message.offset}, never handed to ` +
          `${message.recipient}'s application${storedByConnector ? ' (its connector stored it)' : ''}`,
      });
      continue;
    }
    findings.delivered += 1;
    if (copies.some((copy) => copy.sha256 !== message.sha256))
      findings.problems.push({
        kind: 'hashMismatch',
        recipient: message.recipient,
        group: groupOf(message),
        id: message.id,
        detail: `${message.recipient} was handed ${message.id} with another sha256 than was sent`,
      });
  }

  // One id per offset and one offset per id, across what producers and applications were told.
  const idAt = new Map<string, string>();
  const offsetOf = new Map<string, number>();
  const conflicts = new Set<string>();
  const claim = (message: { topic: string; partition: number; offset: number; id: string }): void => {
    const group = groupOf(message);
    const holder = idAt.get(`${group}@${message.offset}`);
    const offset = offsetOf.get(`${group} ${message.id}`);
    const conflict = `${group}@${message.offset} ${message.id}`;
    if (
      (holder !== undefined && holder !== message.id) ||
      (offset !== undefined && offset !== message.offset)
    ) {
      if (conflicts.has(conflict)) return; // the acknowledgement's and the delivery's claim
      conflicts.add(conflict);
      findings.problems.push({
        kind: 'offsetConflict',
        group,
        offset: message.offset,
        id: message.id,
        detail:
          `${message.id} at ${group}@${message.offset}, where ${holder ?? 'nothing'} was; ` +
          `${message.id} was at ${offset ?? 'no offset'}`,
      });
      return;
    }
    idAt.set(`${group}@${message.offset}`, message.id);
    offsetOf.set(`${group} ${message.id}`, message.offset);
  };
  for (const message of acked) claim(message);
  for (const copy of handed) claim(copy);

  const ackedNames = new Set(acked.map((message) => named(message.recipient, message)));
  for (const [recipient, entries] of stored) {
    for (const entry of entries) {
      const name = named(recipient, entry);
      // An acknowledged message that was not handed on is already `lost`.
      if (copiesOf.has(name) || ackedNames.has(name)) continue;
      findings.problems.push({
        kind: 'storedNotHanded',
        recipient,
        group: groupOf(entry),
        id: entry.id,
        sequence: entry.sequence,
        detail: `${recipient}'s connector stored ${groupOf(entry)} ${entry.id} (sequence ${entry.sequence}), its application was never handed it`,
      });
    }
  }
  return findings;
}

export interface LedgerFindings {
  /** Group → stored height on each node (0 for a file that is missing or unreadable). */
  readonly heads: Record<string, number[]>;
  problems: Problem[];
}

interface StoredLedger {
  readonly node: number;
  readonly blocks: Block[];
}

/**
 * `nodes[i]`'s partition file of `group` is `partitionFile(nodes[i], group)`; every node in `nodes`
 * is a replica of every group in `groups`, so each must have the file. Every acknowledged message
 * must be in the ledger of one of `groups`.
 */
export function checkLedgers(
  nodes: readonly number[],
  partitionFile: (node: number, group: string) => string,
  groups: readonly GroupSpec[],
  acked: readonly AckedMessage[],
): LedgerFindings {
  const findings: LedgerFindings = { heads: {}, problems: [] };
  for (const spec of groups) {
    const ledgers = nodes.map((node) =>
      readPartitionLedger(node, partitionFile(node, spec.group), spec, findings),
    );
    findings.heads[spec.group] = ledgers.map((ledger) => ledger.blocks.length);
    const longest = ledgers.reduce<StoredLedger | undefined>(
      (a, b) => (a === undefined || b.blocks.length > a.blocks.length ? b : a),
      undefined,
    );
    if (longest === undefined) continue;
    compareReplicas(spec.group, longest, ledgers, findings);
    checkContents(
      spec.group,
      longest.blocks,
      acked.filter((message) => groupOf(message) === spec.group),
      findings,
    );
  }
  const checked = new Set(groups.map((spec) => spec.group));
  for (const message of acked) {
    if (checked.has(groupOf(message))) continue;
    findings.problems.push({
      kind: 'ackedNotInLedger',
      group: groupOf(message),
      id: message.id,
      offset: message.offset,
      detail: `acked ${message.id} at ${groupOf(message)}@${message.offset}, a partition whose ledger was not checked`,
    });
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
  const where = `node${node} ${spec.group}`;
  if (!existsSync(path)) {
    findings.problems.push({
      kind: 'missingPartitionFile',
      node,
      group: spec.group,
      detail: `${where}: no partition file ${path}`,
    });
    return { node, blocks };
  }
  let db: Database.Database | undefined;
  let rows: { height: number; bytes: Buffer }[];
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    rows = db.prepare('SELECT height, bytes FROM blocks ORDER BY height').all() as typeof rows;
    let previous: BlockHeader | undefined;
    for (const row of rows) {
      const block = decodeBlock(encodedBlockFromStored(row.bytes));
      if (block.header.height !== row.height || row.height !== blocks.length + 1)
        findings.problems.push({
          kind: 'rowHeightMismatch',
          node,
          group: spec.group,
          row: row.height,
          height: block.header.height,
          detail: `${where}: row ${row.height} holds block ${block.header.height}, after ${blocks.length} rows`,
        });
      try {
        const membership = spec.membership(block.header.configEpoch);
        if (membership === undefined) throw new Error(`no membership for epoch ${block.header.configEpoch}`);
        verifyBlock(block, membership, previous);
      } catch (error) {
        findings.problems.push({
          kind: 'badCertificate',
          node,
          group: spec.group,
          height: row.height,
          detail: `${where} block ${row.height}: ${String(error)}`,
        });
      }
      blocks.push(block);
      previous = block.header;
    }
  } catch (error) {
    findings.problems.push({
      kind: 'unreadablePartitionFile',
      node,
      group: spec.group,
      detail: `${where}: cannot read ${path}: ${String(error)}`,
    });
    blocks.length = 0;
  } finally {
    db?.close();
  }
  return { node, blocks };
}

/**
 * Every replica's ledger must be a prefix of the longest one, byte for byte but for certificates
 * (they may hold other, equally valid signers).
 */
function compareReplicas(
  group: string,
  longest: StoredLedger,
  ledgers: readonly StoredLedger[],
  findings: LedgerFindings,
): void {
  for (const ledger of ledgers) {
    if (ledger === longest) continue;
    for (let index = 0; index < ledger.blocks.length; index++) {
      const expected = longest.blocks[index]!;
      const block = ledger.blocks[index]!;
      const same =
        bytesEqual(blockHash(block.header), blockHash(expected.header)) &&
        bytesEqual(encodeBlock({ ...block, certificate: expected.certificate }), encodeBlock(expected));
      if (!same) {
        findings.problems.push({
          kind: 'replicaFork',
          node: ledger.node,
          group,
          height: index + 1,
          detail: `node${ledger.node} ${group} differs from node${longest.node} at height ${index + 1}`,
        });
        break; // what follows a fork differs too
      }
    }
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
  const offsetOfId = new Map<string, number>();
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
          const offset = offsetOfId.get(message.id);
          if (holder !== undefined && holder !== message.id)
            findings.problems.push({
              kind: 'twoIdsAtOffset',
              group,
              offset: message.offset,
              ids: [holder, message.id],
              detail: `${group}: offset ${message.offset} holds ${holder}, then ${message.id} (height ${block.header.height})`,
            });
          if (offset !== undefined && offset !== message.offset)
            findings.problems.push({
              kind: 'idAtTwoOffsets',
              group,
              id: message.id,
              offsets: [offset, message.offset],
              detail: `${group}: ${message.id} accepted at offset ${offset}, then at ${message.offset} (height ${block.header.height})`,
            });
          if (holder === undefined) idAtOffset.set(message.offset, message.id);
          if (offset === undefined) offsetOfId.set(message.id, message.offset);
          if (!acceptedAt.has(message.id)) acceptedAt.set(message.id, block.header.height);
        }
      } else if (result.type === 'confirmDelivery') {
        for (const delivery of result.deliveries) {
          if (delivery.status !== 'DELIVERED') continue;
          const committed = acceptedAt.get(delivery.id);
          if (committed === undefined || committed >= block.header.height)
            findings.problems.push({
              kind: 'receiptBeforeCommit',
              group,
              id: delivery.id,
              height: block.header.height,
              detail: `${group}: receipt of ${delivery.id} at height ${block.header.height}, commit at ${committed}`,
            });
        }
      }
    }
  }
  for (const message of acked) {
    const holder = idAtOffset.get(message.offset);
    if (holder !== message.id)
      findings.problems.push({
        kind: 'ackedNotInLedger',
        group,
        id: message.id,
        offset: message.offset,
        detail: `${group}: acked ${message.id} at offset ${message.offset}, ledger holds ${holder}`,
      });
  }
}

export interface ThroughputFloors {
  /** Producing started and stopped (ms since the epoch). */
  readonly start: number;
  readonly end: number;
  /** Acknowledgements at least, per minute of the run (each minute, prorated for a shorter run). */
  readonly minPerMinute: number;
  readonly windows: readonly FaultWindow[];
  /** Acknowledgements at least, within each fault window. */
  readonly minPerWindow: number;
}

/**
 * A run that acknowledged too little tested too little: every minute of it (the run cut in
 * round(minutes) equal parts, at least one) must hold `minPerMinute` acknowledgements, prorated, and
 * every fault window `minPerWindow`.
 */
export function checkThroughput(acked: readonly AckedMessage[], floors: ThroughputFloors): Problem[] {
  const problems: Problem[] = [];
  const count = (from: number, to: number): number =>
    acked.filter((message) => message.ackedAt >= from && message.ackedAt < to).length;
  const duration = floors.end - floors.start;
  const parts = Math.max(1, Math.round(duration / 60_000));
  for (let part = 0; part < parts; part++) {
    const from = floors.start + (duration * part) / parts;
    const to = part === parts - 1 ? floors.end + 1 : floors.start + (duration * (part + 1)) / parts;
    const floor = Math.ceil((floors.minPerMinute * (duration / parts)) / 60_000);
    const acks = count(from, to);
    if (acks < floor)
      problems.push({
        kind: 'tooFewAcks',
        from,
        to,
        acks,
        floor,
        detail: `${acks} acknowledgements from +${Math.round((from - floors.start) / 1000)} s to +${Math.round((to - floors.start) / 1000)} s, fewer than ${floor}`,
      });
  }
  for (const window of floors.windows) {
    const acks = count(window.start, window.end + 1);
    if (acks < floors.minPerWindow)
      problems.push({
        kind: 'faultWindowStarved',
        fault: window.fault,
        acks,
        floor: floors.minPerWindow,
        detail: `${acks} acknowledgements during and ${Math.round((window.end - window.start) / 1000)} s around "${window.fault}", fewer than ${floors.minPerWindow}`,
      });
  }
  return problems;
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
      const global = readGlobalHashes(globalFile(node), partitionFile(node, group), group);
      if (global.length < longest.length)
        return `node${node} global ${group} at ${global.length}/${longest.length}`;
      if (global.some((hash, index) => hash !== longest[index])) return `node${node} global ${group} differs`;
    }
  }
  return undefined;
}

/**
 * The hashes of a partition's blocks in a node's global ledger, by height. A block the node's own
 * replica holds is kept there only (its row's bytes are empty): its hash is read from the partition
 * database, so a reference to a block the replica does not hold shows up as a missing hash.
 */
function readGlobalHashes(globalPath: string, partitionPath: string, group: string): string[] {
  let db: Database.Database;
  try {
    db = new Database(globalPath, { readonly: true, fileMustExist: true });
  } catch {
    return [];
  }
  let replica: Database.Database | undefined;
  try {
    const rows = db
      .prepare('SELECT height, bytes FROM blocks WHERE partition = ? ORDER BY height')
      .all(group) as { height: number; bytes: Buffer }[];
    return rows.map((row) => {
      if (row.bytes.length > 0)
        return Buffer.from(blockHash(decodeBlock(encodedBlockFromStored(row.bytes)).header)).toString('hex');
      replica ??= new Database(partitionPath, { readonly: true, fileMustExist: true });
      const held = replica.prepare('SELECT hash FROM blocks WHERE height = ?').get(row.height) as
        { hash: Buffer } | undefined;
      return held === undefined ? `missing ${row.height}` : held.hash.toString('hex');
    });
  } catch {
    return [];
  } finally {
    db.close();
    replica?.close();
  }
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
      Buffer.from(row.hash ?? blockHash(decodeBlock(encodedBlockFromStored(row.bytes!)).header)).toString(
        'hex',
      ),
    );
  } catch {
    return []; // the node has not created its table yet
  } finally {
    db.close();
  }
}
