/**
 * A topic's global ledger on one node (DESIGN §2): every partition block the topic's Raft group
 * applied, after its certificate was re-verified, plus an index of where each message was accepted
 * and delivered.
 *
 * Each block is stored once per node: a block this node's own replica of the partition already
 * holds (same height, same header hash) is kept here as a reference — an empty `bytes` — and read
 * from the partition database, through a read-only connection of this file's own. Its certificate
 * there may carry another valid quorum of signatures than the copy the Raft group applied; either
 * proves the block. Blocks of partitions this node does not replicate are stored whole.
 *
 * Durability: the Raft log replays whatever was applied after its last snapshot, so the writes here
 * are idempotent and not fsynced one by one (synchronous=NORMAL); before the Raft group compacts its
 * log, `flush` makes everything written so far durable (a WAL checkpoint).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { bytesEqual } from '../codec/index.js';
import { decodeBlock } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import { encodedBlockFromStored, storedBlockBytes } from '../ledger/stored-block.js';
import type { GlobalLedgerSink } from '../registry/topic-state.js';
import type { BlockIndex } from '../registry/global-index.js';
import { topicGroupId } from '../registry/admin-transactions.js';
import { groupFileName, groupStorageError, openGroupDatabase, writingGroup } from './group-files.js';

/** What `bytes` holds for a block kept in the node's partition database. */
const inPartitionDatabase = new Uint8Array(0);

/** A missing run of heights of a partition, inclusive. */
export interface LedgerGap {
  readonly from: number;
  readonly to: number;
}

export interface AcceptedLocation {
  readonly partition: string;
  readonly id: string;
  readonly sender: string;
  readonly offset: number;
  readonly height: number;
  readonly transactionIndex: number;
  readonly messageIndex: number;
}

export interface DeliveredLocation {
  readonly recipient: string;
  readonly height: number;
  readonly transactionIndex: number;
  readonly deliveryIndex: number;
}

export class GlobalLedgerDatabase implements GlobalLedgerSink {
  private readonly statements;

  /**
   * Read-only connections to this node's partition databases, opened when first needed: one per
   * partition of the topic.
   */
  private readonly partitionReaders = new Map<
    string,
    { readonly db: Database.Database; readonly hash: Database.Statement; readonly bytes: Database.Statement }
  >();

  /** Per partition of the topic: every height from 1 to this one is held (what `firstGap` has checked). */
  private readonly contiguous = new Map<string, number>();

  private constructor(
    private readonly db: Database.Database,
    private readonly groupId: string,
    private readonly dataDirectory: string,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS blocks (
        partition TEXT NOT NULL, height INTEGER NOT NULL, raft_index INTEGER NOT NULL, bytes BLOB NOT NULL,
        PRIMARY KEY (partition, height)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS accepted (
        partition TEXT NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL, offset INTEGER NOT NULL,
        height INTEGER NOT NULL, transaction_index INTEGER NOT NULL, message_index INTEGER NOT NULL,
        PRIMARY KEY (partition, id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS accepted_by_id ON accepted (id);
      CREATE TABLE IF NOT EXISTS delivered (
        partition TEXT NOT NULL, id TEXT NOT NULL, recipient TEXT NOT NULL, height INTEGER NOT NULL,
        transaction_index INTEGER NOT NULL, delivery_index INTEGER NOT NULL,
        PRIMARY KEY (partition, id, recipient)) WITHOUT ROWID;
    `);
    this.statements = {
      block: db.prepare(
        'INSERT OR REPLACE INTO blocks (partition, height, raft_index, bytes) VALUES (?, ?, ?, ?)',
      ),
      accepted: db.prepare(
        'INSERT OR REPLACE INTO accepted (partition, id, sender, offset, height, transaction_index, message_index) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      delivered: db.prepare(
        'INSERT OR REPLACE INTO delivered (partition, id, recipient, height, transaction_index, delivery_index) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      getBlock: db.prepare('SELECT bytes FROM blocks WHERE partition = ? AND height = ?'),
      // The lowest height whose successor is missing, from `after` on: where the first gap starts.
      gapAfter: db.prepare(
        `SELECT b.height AS height FROM blocks b WHERE b.partition = ? AND b.height >= ? AND NOT EXISTS
           (SELECT 1 FROM blocks c WHERE c.partition = b.partition AND c.height = b.height + 1)
         ORDER BY b.height LIMIT 1`,
      ),
      nextHeld: db.prepare('SELECT MIN(height) AS height FROM blocks WHERE partition = ? AND height > ?'),
      // One seek at the end of the partition's primary-key range, however many blocks it holds.
      maxHeight: db.prepare('SELECT MAX(height) AS height FROM blocks WHERE partition = ?'),
      heights: db.prepare(
        'SELECT partition, MAX(height) AS height, COUNT(*) AS count FROM blocks GROUP BY partition',
      ),
      range: db.prepare(
        'SELECT height, bytes FROM blocks WHERE partition = ? AND height >= ? ORDER BY height LIMIT ?',
      ),
      findAccepted: db.prepare('SELECT * FROM accepted WHERE id = ? ORDER BY partition'),
      findDelivered: db.prepare(
        'SELECT recipient, height, transaction_index, delivery_index FROM delivered WHERE partition = ? AND id = ? ORDER BY recipient',
      ),
    };
  }

  /**
   * Opens (creating) `<dataDirectory>/global/<groupFileName(topicGroupId(topic))>`, adopting the
   * legacy `<topic>.sqlite`. Throws a group storage error naming the topic's group if it cannot.
   */
  static open(dataDirectory: string, topic: string): GlobalLedgerDatabase {
    const groupId = topicGroupId(topic);
    const what = 'global ledger';
    const directory = join(dataDirectory, 'global');
    const db = openGroupDatabase({ directory, groupId, legacyId: topic, what });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      return new GlobalLedgerDatabase(db, groupId, dataDirectory);
    } catch (error) {
      db.close();
      throw groupStorageError(`open the ${what}`, groupId, error);
    }
  }

  append(entry: {
    readonly partition: string;
    readonly block: Block;
    readonly bytes: Uint8Array;
    readonly hash: Uint8Array;
    readonly index: BlockIndex;
    readonly raftIndex: number;
  }): void {
    const { partition, block, index, raftIndex } = entry;
    const height = block.header.height;
    const local = this.partitionReader(partition)?.hash.get(height) as { hash: Uint8Array } | undefined;
    const bytes =
      local !== undefined && bytesEqual(local.hash, entry.hash)
        ? inPartitionDatabase
        : storedBlockBytes(entry.bytes);
    // A failed write must not pass for a deterministic outcome: as a group storage error it stops
    // the topic group on this node (the Raft log still holds the entry, so a reopen applies it).
    writingGroup('the global ledger', this.groupId, () =>
      this.db.transaction(() => {
        this.statements.block.run(partition, height, raftIndex, bytes);
        for (const message of index.accepted) {
          this.statements.accepted.run(
            partition,
            message.id,
            message.sender,
            message.offset,
            height,
            message.transactionIndex,
            message.messageIndex,
          );
        }
        for (const delivery of index.delivered) {
          this.statements.delivered.run(
            partition,
            delivery.id,
            delivery.recipient,
            height,
            delivery.transactionIndex,
            delivery.deliveryIndex,
          );
        }
      })(),
    );
  }

  block(partition: string, height: number): Block | undefined {
    const row = this.statements.getBlock.get(partition, height) as { bytes: Uint8Array } | undefined;
    return row === undefined ? undefined : decodeBlock(this.resolve(partition, height, row.bytes));
  }

  /** Encoded blocks of a partition from `fromHeight`, at most `limit`. */
  blocksFrom(partition: string, fromHeight: number, limit: number): Uint8Array[] {
    return (
      this.statements.range.all(partition, fromHeight, limit) as { bytes: Uint8Array; height: number }[]
    ).map((row) => this.resolve(partition, row.height, row.bytes));
  }

  /**
   * The first run of heights in [1, upTo] this ledger lacks (a snapshot installed from the leader
   * moves the partition's head past blocks this node never applied), or undefined if none.
   */
  firstGap(partition: string, upTo: number): LedgerGap | undefined {
    if (upTo < 1) return undefined;
    // Rows are never deleted, so a run found complete once stays complete: start after it.
    let before = this.contiguous.get(partition) ?? 0;
    if (before === 0 && this.statements.getBlock.get(partition, 1) !== undefined) before = 1;
    if (before > 0) {
      before = (this.statements.gapAfter.get(partition, before) as { height: number }).height;
      this.contiguous.set(partition, before);
    }
    if (before >= upTo) return undefined;
    const next = (this.statements.nextHeld.get(partition, before) as { height: number | null }).height;
    return { from: before + 1, to: Math.min(upTo, (next ?? upTo + 1) - 1) };
  }

  /**
   * Makes every write so far durable: a checkpoint fsyncs the WAL, copies it into the database and
   * fsyncs that. PASSIVE, so a reader (an operator's tool) never blocks the node here; false if it
   * kept the checkpoint from completing — the caller keeps its Raft log and tries again later.
   */
  flush(): boolean {
    const [result] = this.db.pragma('wal_checkpoint(PASSIVE)') as {
      busy: number;
      log: number;
      checkpointed: number;
    }[];
    return result !== undefined && result.busy === 0 && result.checkpointed === result.log;
  }

  /** A stored block's bytes: its own, or its replica's copy in the partition database. */
  private resolve(partition: string, height: number, bytes: Uint8Array): Uint8Array {
    if (bytes.length > 0) return encodedBlockFromStored(bytes);
    const row = this.partitionReader(partition)?.bytes.get(height) as { bytes: Uint8Array } | undefined;
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.StorageCorrupt,
        `the global ledger of ${this.groupId} keeps ${partition}@${height} in this node's partition database, which no longer holds it`,
      );
    }
    return encodedBlockFromStored(row.bytes);
  }

  private partitionReader(partition: string) {
    const open = this.partitionReaders.get(partition);
    if (open !== undefined) return open;
    const path = join(this.dataDirectory, 'partitions', groupFileName(partition));
    // Not a replica here (yet): its blocks are stored whole until the file exists.
    if (!existsSync(path)) return undefined;
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      const reader = {
        db,
        hash: db.prepare('SELECT hash FROM blocks WHERE height = ?'),
        bytes: db.prepare('SELECT bytes FROM blocks WHERE height = ?'),
      };
      this.partitionReaders.set(partition, reader);
      return reader;
    } catch {
      // A file still being created, or not a block store (yet): store whole this time.
      db?.close();
      return undefined;
    }
  }

  /**
   * The highest height held of `partition` (0 for none): cheap enough for every metrics scrape,
   * unlike `heads`, which counts every block. Holes a snapshot left below it may still be filling.
   */
  height(partition: string): number {
    return (this.statements.maxHeight.get(partition) as { height: number | null }).height ?? 0;
  }

  /** Per partition: the highest replicated height and how many blocks are held. */
  heads(): Map<string, { height: number; count: number }> {
    const rows = this.statements.heights.all() as { partition: string; height: number; count: number }[];
    return new Map(rows.map((row) => [row.partition, { height: row.height, count: row.count }]));
  }

  /** Where message `id` was accepted (one row per partition that accepted an id so named). */
  findAccepted(id: string): AcceptedLocation[] {
    return (
      this.statements.findAccepted.all(id) as {
        partition: string;
        id: string;
        sender: string;
        offset: number;
        height: number;
        transaction_index: number;
        message_index: number;
      }[]
    ).map((row) => ({
      partition: row.partition,
      id: row.id,
      sender: row.sender,
      offset: row.offset,
      height: row.height,
      transactionIndex: row.transaction_index,
      messageIndex: row.message_index,
    }));
  }

  findDelivered(partition: string, id: string): DeliveredLocation[] {
    return (
      this.statements.findDelivered.all(partition, id) as {
        recipient: string;
        height: number;
        transaction_index: number;
        delivery_index: number;
      }[]
    ).map((row) => ({
      recipient: row.recipient,
      height: row.height,
      transactionIndex: row.transaction_index,
      deliveryIndex: row.delivery_index,
    }));
  }

  close(): void {
    for (const reader of this.partitionReaders.values()) reader.db.close();
    this.partitionReaders.clear();
    this.db.close();
  }
}
