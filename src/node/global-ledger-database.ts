/**
 * A topic's global ledger on one node (DESIGN §2): every partition block the topic's Raft group
 * applied, after its certificate was re-verified, plus an index of where each message was accepted
 * and delivered. The Raft log is the durable source — a restart replays it — so every write here is
 * idempotent and this file needs no fsync of its own.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { decodeBlock } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import type { GlobalLedgerSink } from '../registry/topic-state.js';
import type { BlockIndex } from '../registry/global-index.js';
import { topicGroupId } from '../registry/admin-transactions.js';
import { groupStorageError, openGroupDatabase, writingGroup } from './group-files.js';

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

  private constructor(
    private readonly db: Database.Database,
    private readonly groupId: string,
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
      heights: db.prepare(
        'SELECT partition, MAX(height) AS height, COUNT(*) AS count FROM blocks GROUP BY partition',
      ),
      range: db.prepare(
        'SELECT bytes FROM blocks WHERE partition = ? AND height >= ? ORDER BY height LIMIT ?',
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
      return new GlobalLedgerDatabase(db, groupId);
    } catch (error) {
      db.close();
      throw groupStorageError(`open the ${what}`, groupId, error);
    }
  }

  append(entry: {
    readonly partition: string;
    readonly block: Block;
    readonly bytes: Uint8Array;
    readonly index: BlockIndex;
    readonly raftIndex: number;
  }): void {
    const { partition, block, bytes, index, raftIndex } = entry;
    const height = block.header.height;
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
    return row === undefined ? undefined : decodeBlock(row.bytes);
  }

  /** Encoded blocks of a partition from `fromHeight`, at most `limit`. */
  blocksFrom(partition: string, fromHeight: number, limit: number): Uint8Array[] {
    return (this.statements.range.all(partition, fromHeight, limit) as { bytes: Uint8Array }[]).map(
      (row) => row.bytes,
    );
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
    this.db.close();
  }
}
