/**
 * One Raft group's durable state in one SQLite file: the hard state, the log after the snapshot and
 * the latest snapshot, with exactly the semantics of the in-memory model (`applyRaftPersist` in
 * src/raft-group/storage.ts): the node's `RaftGroupStorage`. WAL with synchronous=FULL, and every batch
 * of persist ops in ONE transaction: when `persist` returns the batch is fsynced, which is what
 * "persist before send" needs (a vote or an appended entry must be durable before anyone hears of it),
 * so `sync` has nothing left to do.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { asBuffer, decodeWith, encodeWith } from '../codec/index.js';
import { membershipSchema } from '../consensus/raft/messages.js';
import type {
  HardState,
  Membership,
  RaftEntry,
  RaftPersistOp,
  RaftRestore,
  RaftSnapshot,
} from '../consensus/raft/types.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import type { RaftGroupStorage } from '../raft-group/storage.js';
import { groupStorageError, openGroupDatabase, writingGroup } from './group-files.js';

interface HardStateRow {
  term: number;
  voted_for: string | null;
  commit_index: number;
}
interface EntryRow {
  log_index: number;
  term: number;
  type: string;
  data: Uint8Array;
  config: Uint8Array | null;
}
interface SnapshotRow {
  log_index: number;
  term: number;
  membership: Uint8Array;
  data: Uint8Array;
}

function corrupt(what: string, cause?: unknown): LedgerbusError {
  return new LedgerbusError(ErrorCode.StorageCorrupt, `raft database: ${what}`, { cause });
}

// Canonical CBOR through the wire schema, so a stored configuration is checked like a received one.
function encodeMembership(membership: Membership): Buffer {
  return asBuffer(encodeWith(membershipSchema, membership));
}

function decodeMembership(bytes: Uint8Array, where: string): Membership {
  try {
    return decodeWith(membershipSchema, bytes);
  } catch (error) {
    throw corrupt(`${where}: unreadable configuration`, error);
  }
}

export class RaftDatabase implements RaftGroupStorage {
  private readonly db: Database.Database;
  private readonly statements: {
    getHardState: Database.Statement<[], HardStateRow>;
    putHardState: Database.Statement<[number, string | null, number]>;
    getSnapshot: Database.Statement<[], SnapshotRow>;
    putSnapshot: Database.Statement<[number, number, Buffer, Buffer]>;
    allEntries: Database.Statement<[], EntryRow>;
    lastEntryIndex: Database.Statement<[], { last: number | null }>;
    putEntry: Database.Statement<[number, number, string, Buffer, Buffer | null]>;
    deleteEntriesFrom: Database.Statement<[number]>;
    deleteEntriesUpTo: Database.Statement<[number]>;
  };
  private readonly persistInTransaction: (ops: readonly RaftPersistOp[]) => void;

  private constructor(
    db: Database.Database,
    private readonly groupId: string,
  ) {
    this.db = db;
    // Single-row tables are pinned to id 0 so an upsert replaces the row.
    db.exec(`
      CREATE TABLE IF NOT EXISTS raft_hard_state (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        term INTEGER NOT NULL,
        voted_for TEXT,
        commit_index INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS raft_entries (
        log_index INTEGER PRIMARY KEY,
        term INTEGER NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        config BLOB
      );
      CREATE TABLE IF NOT EXISTS raft_snapshot (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        log_index INTEGER NOT NULL,
        term INTEGER NOT NULL,
        membership BLOB NOT NULL,
        data BLOB NOT NULL
      );
    `);
    this.statements = {
      getHardState: db.prepare('SELECT term, voted_for, commit_index FROM raft_hard_state WHERE id = 0'),
      putHardState: db.prepare(
        `INSERT INTO raft_hard_state (id, term, voted_for, commit_index) VALUES (0, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET term = excluded.term, voted_for = excluded.voted_for,
           commit_index = excluded.commit_index`,
      ),
      getSnapshot: db.prepare('SELECT log_index, term, membership, data FROM raft_snapshot WHERE id = 0'),
      putSnapshot: db.prepare(
        `INSERT INTO raft_snapshot (id, log_index, term, membership, data) VALUES (0, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET log_index = excluded.log_index, term = excluded.term,
           membership = excluded.membership, data = excluded.data`,
      ),
      allEntries: db.prepare(
        'SELECT log_index, term, type, data, config FROM raft_entries ORDER BY log_index',
      ),
      lastEntryIndex: db.prepare('SELECT MAX(log_index) AS last FROM raft_entries'),
      putEntry: db.prepare(
        'INSERT INTO raft_entries (log_index, term, type, data, config) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteEntriesFrom: db.prepare('DELETE FROM raft_entries WHERE log_index >= ?'),
      deleteEntriesUpTo: db.prepare('DELETE FROM raft_entries WHERE log_index <= ?'),
    };
    this.persistInTransaction = db.transaction((ops: readonly RaftPersistOp[]) => {
      for (const op of ops) this.apply(op);
    });
  }

  /**
   * Opens (creating) `<dataDirectory>/raft/<groupFileName(groupId)>`, adopting a legacy-named file.
   * Throws a group storage error naming the group if it cannot.
   */
  static open(dataDirectory: string, groupId: string): RaftDatabase {
    const what = 'raft database';
    const db = openGroupDatabase({ directory: join(dataDirectory, 'raft'), groupId, what });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      return new RaftDatabase(db, groupId);
    } catch (error) {
      db.close();
      throw groupStorageError(`open the ${what}`, groupId, error);
    }
  }

  /**
   * What the core needs to restart, or undefined when nothing was ever persisted (a fresh server
   * then starts from its initial configuration). Throws LedgerbusError(StorageCorrupt) if the stored
   * log does not follow the snapshot or a row is unreadable.
   */
  restore(): RaftRestore | undefined {
    const hardRow = this.statements.getHardState.get();
    const snapshotRow = this.statements.getSnapshot.get();
    const rows = this.statements.allEntries.all();
    if (hardRow === undefined && snapshotRow === undefined && rows.length === 0) return undefined;
    const hardState: HardState =
      hardRow === undefined
        ? { term: 0, votedFor: null, commit: 0 }
        : { term: hardRow.term, votedFor: hardRow.voted_for, commit: hardRow.commit_index };
    let snapshot: RaftSnapshot | undefined;
    if (snapshotRow !== undefined) {
      snapshot = {
        index: snapshotRow.log_index,
        term: snapshotRow.term,
        membership: decodeMembership(snapshotRow.membership, 'snapshot'),
        data: new Uint8Array(snapshotRow.data),
      };
    }
    let expected = (snapshot?.index ?? 0) + 1;
    const entries = rows.map((row): RaftEntry => {
      if (row.log_index !== expected) throw corrupt(`entry ${row.log_index} where ${expected} was expected`);
      expected++;
      const data = new Uint8Array(row.data);
      if (row.type === 'normal' && row.config === null)
        return { index: row.log_index, term: row.term, type: 'normal', data };
      if (row.type === 'config' && row.config !== null) {
        const config = decodeMembership(row.config, `entry ${row.log_index}`);
        return { index: row.log_index, term: row.term, type: 'config', data, config };
      }
      throw corrupt(`entry ${row.log_index}: type ${row.type} does not match its configuration`);
    });
    return { hardState, entries, ...(snapshot === undefined ? {} : { snapshot }) };
  }

  /**
   * Applies a batch of persist ops, in order, in one durable (fsynced) transaction: all or nothing.
   * A failed write throws a group storage error; the caller must then stop the group (its core
   * believes the batch durable).
   */
  persist(ops: readonly RaftPersistOp[]): void {
    if (ops.length === 0) return;
    writingGroup('the raft database', this.groupId, () => this.persistInTransaction(ops));
  }

  /** Every `persist` transaction is already fsynced (synchronous=FULL): nothing is left to sync. */
  sync(): void {}

  close(): void {
    this.db.close();
  }

  private apply(op: RaftPersistOp): void {
    switch (op.op) {
      case 'hardState':
        this.statements.putHardState.run(op.hardState.term, op.hardState.votedFor, op.hardState.commit);
        return;
      case 'snapshot': {
        const s = op.snapshot;
        this.statements.putSnapshot.run(s.index, s.term, encodeMembership(s.membership), asBuffer(s.data));
        this.statements.deleteEntriesUpTo.run(s.index);
        return;
      }
      case 'truncate':
        this.statements.deleteEntriesFrom.run(op.fromIndex);
        return;
      case 'append': {
        const first = op.entries[0];
        if (first === undefined) return;
        const last =
          this.statements.lastEntryIndex.get()?.last ?? this.statements.getSnapshot.get()?.log_index ?? 0;
        // The core only ever appends right after the stored log; anything else is a bug, not bad input.
        assert(first.index === last + 1, `raft append at ${first.index} after ${last}`);
        for (const entry of op.entries) {
          this.statements.putEntry.run(
            entry.index,
            entry.term,
            entry.type,
            asBuffer(entry.data),
            entry.config === undefined ? null : encodeMembership(entry.config),
          );
        }
        return;
      }
    }
  }
}
