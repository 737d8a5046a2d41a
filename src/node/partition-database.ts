/**
 * One partition replica's durable state in one SQLite file: the certified blocks (BlockStore), the
 * SDT contract's state, and the PBFT core's persist records. Keeping them in one database lets a
 * certified block and the contract writes of its execution commit in ONE transaction, so after a
 * crash the contract state is exactly at the last stored block, and replaying from there is
 * deterministic. WAL with synchronous=NORMAL, and `sync` makes every transaction so far durable: the
 * partition driver syncs before anything is sent, acknowledged or announced ("persist before send",
 * "store before acknowledge", DESIGN §6), so the blocks and votes of one step — the 64 blocks of a
 * state-transfer reply, or a pipelined window — share one fsync instead of taking one each. SQLite in
 * WAL mode is consistent at any cut with NORMAL; only the unsynced tail can be lost, which is the
 * contract `PartitionStorage` states and the simulator's storage models.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import type { ContractState } from '../contracts/state.js';
import type { PersistOp, PersistRecord } from '../consensus/pbft/types.js';
import { BlockStore } from '../ledger/block-store.js';
import type { Block } from '../ledger/block.js';
import type { PartitionStorage, StateWrites } from '../partition/storage.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { groupStorageError, openGroupDatabase, writingGroup } from './group-files.js';
import { stateValues } from './state-values.js';

/** The node's `PartitionStorage` (src/partition/storage.ts): every transaction is fsynced at commit. */
export class PartitionDatabase implements PartitionStorage {
  readonly blocks: BlockStore;
  private readonly db: Database.Database;
  private readonly statements: {
    getState: Database.Statement<[string], { value: Uint8Array; encoding: number }>;
    putState: Database.Statement<[string, Uint8Array, number]>;
    deleteState: Database.Statement<[string]>;
    putRecord: Database.Statement<[string, number, Uint8Array]>;
    truncateRecords: Database.Statement<[number]>;
    allRecords: Database.Statement<[], { key: string; seq: number; bytes: Uint8Array }>;
    markSynced: Database.Statement<[]>;
  };
  /** Whether a transaction was committed since the last `sync`. */
  private unsynced = false;
  private readonly applyPersistInTransaction: (ops: readonly PersistOp[]) => void;
  private readonly commitBlockInTransaction: (block: Block, writes: StateWrites) => void;

  private constructor(
    db: Database.Database,
    private readonly partitionId: string,
  ) {
    this.db = db;
    this.blocks = BlockStore.attach(db, { partitionId });
    db.exec(`
      CREATE TABLE IF NOT EXISTS contract_state (key TEXT PRIMARY KEY, value BLOB NOT NULL, encoding INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS pbft_records (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, bytes BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS consensus_epoch (id INTEGER PRIMARY KEY CHECK (id = 0), epoch INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS sync_marker (id INTEGER PRIMARY KEY CHECK (id = 0), syncs INTEGER NOT NULL);
    `);
    // Files from before values were packed (state-values.ts) gain the column; their rows read as plain.
    const columns = db.prepare('PRAGMA table_info(contract_state)').all() as { name: string }[];
    if (!columns.some((column) => column.name === 'encoding'))
      db.exec('ALTER TABLE contract_state ADD COLUMN encoding INTEGER NOT NULL DEFAULT 0');
    this.statements = {
      getState: db.prepare('SELECT value, encoding FROM contract_state WHERE key = ?'),
      putState: db.prepare(
        'INSERT INTO contract_state (key, value, encoding) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, encoding = excluded.encoding',
      ),
      deleteState: db.prepare('DELETE FROM contract_state WHERE key = ?'),
      putRecord: db.prepare(
        'INSERT INTO pbft_records (key, seq, bytes) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET seq = excluded.seq, bytes = excluded.bytes',
      ),
      truncateRecords: db.prepare('DELETE FROM pbft_records WHERE seq > 0 AND seq < ?'),
      allRecords: db.prepare('SELECT key, seq, bytes FROM pbft_records'),
      markSynced: db.prepare(
        'INSERT INTO sync_marker (id, syncs) VALUES (0, 1) ON CONFLICT (id) DO UPDATE SET syncs = syncs + 1',
      ),
    };
    this.applyPersistInTransaction = db.transaction((ops: readonly PersistOp[]) => {
      for (const op of ops) {
        if (op.op === 'put') this.statements.putRecord.run(op.record.key, op.record.seq, op.record.bytes);
        else this.statements.truncateRecords.run(op.belowSeq);
      }
    });
    this.commitBlockInTransaction = db.transaction((block: Block, writes: StateWrites) => {
      this.blocks.append(block);
      // Sorted so every replica issues the same writes in the same order (easier to compare files).
      for (const key of [...writes.keys()].sort()) {
        const value = writes.get(key);
        if (value === undefined) this.statements.deleteState.run(key);
        else {
          const packed = stateValues.pack(value);
          this.statements.putState.run(key, packed.bytes, packed.packing);
        }
      }
    });
  }

  /**
   * Opens (creating) `<dataDirectory>/partitions/<groupFileName(partitionId)>`, adopting a
   * legacy-named file. Throws a group storage error naming the partition if it cannot.
   */
  static open(dataDirectory: string, partitionId: string): PartitionDatabase {
    const what = 'partition database';
    const directory = join(dataDirectory, 'partitions');
    const db = openGroupDatabase({ directory, groupId: partitionId, what });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      return new PartitionDatabase(db, partitionId);
    } catch (error) {
      db.close();
      throw groupStorageError(`open the ${what}`, partitionId, error);
    }
  }

  /** The contract state as of the last stored block (reads only; writes go through commitBlock). */
  readonly committedState: Pick<ContractState, 'get'> = {
    get: (key) => {
      const row = this.statements.getState.get(key);
      if (row === undefined) return undefined;
      try {
        return new Uint8Array(stateValues.unpack(row.value, row.encoding));
      } catch (error) {
        throw new LedgerbusError(
          ErrorCode.StorageCorrupt,
          `the contract state of ${this.partitionId} holds an unreadable value at ${key}`,
          { cause: error },
        );
      }
    },
  };

  /**
   * Makes `epoch` the group epoch whose consensus records this file holds. Records of another epoch
   * (views, votes of the old replica set) mean nothing to the new one and are dropped; blocks and
   * contract state continue.
   */
  startEpoch(epoch: number): void {
    this.unsynced = true;
    writingGroup('the partition database', this.partitionId, () =>
      this.db.transaction(() => {
        const row = this.db.prepare('SELECT epoch FROM consensus_epoch WHERE id = 0').get() as
          { epoch: number } | undefined;
        if (row?.epoch === epoch) return;
        if (row !== undefined) this.db.prepare('DELETE FROM pbft_records').run();
        this.db.prepare('INSERT OR REPLACE INTO consensus_epoch (id, epoch) VALUES (0, ?)').run(epoch);
      })(),
    );
  }

  /**
   * Applies PBFT persist ops durably (one fsynced transaction). A failed write throws a group
   * storage error; the replica must then stop (its core believes the ops durable).
   */
  persist(ops: readonly PersistOp[]): void {
    if (ops.length === 0) return;
    this.unsynced = true;
    writingGroup('the partition database', this.partitionId, () => this.applyPersistInTransaction(ops));
  }

  records(): PersistRecord[] {
    return this.statements.allRecords
      .all()
      .map((row) => ({ key: row.key, seq: row.seq, bytes: new Uint8Array(row.bytes) }));
  }

  /**
   * Stores a certified block and its execution's contract writes atomically (durable at the next
   * `sync`). A failed write throws a group storage error (the block store's view of its head is
   * reloaded first).
   */
  commitBlock(block: Block, writes: StateWrites): void {
    this.unsynced = true;
    try {
      writingGroup('the partition database', this.partitionId, () =>
        this.commitBlockInTransaction(block, writes),
      );
    } catch (error) {
      this.blocks.reloadHead();
      throw error;
    }
  }

  /**
   * Makes every transaction committed so far durable. One small write committed with
   * synchronous=FULL fsyncs the WAL — SQLite's own way, so a newly created WAL's directory entry is
   * synced too — and with it every earlier frame, which NORMAL left unsynced.
   */
  sync(): void {
    if (!this.unsynced) return;
    writingGroup('the partition database', this.partitionId, () => {
      this.db.pragma('synchronous = FULL');
      try {
        this.statements.markSynced.run();
      } finally {
        this.db.pragma('synchronous = NORMAL');
      }
    });
    this.unsynced = false;
  }

  close(): void {
    this.db.close();
  }
}
