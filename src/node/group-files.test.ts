// Group file names and group storage failures (security issue 11, item 1): a file name derived from
// a group id must fit in 255 bytes whatever the id, distinct ids must never share a file, data
// directories written under the old names must keep their data, and a group whose storage fails
// must stop alone instead of passing the failure off as an outcome of the entry it was applying.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../errors.js';
import type { LedgerbusError } from '../errors.js';
import { GlobalLedgerDatabase } from './global-ledger-database.js';
import {
  groupFileName,
  groupFileSuffixes,
  isGroupStorageError,
  legacyGroupFileName,
  openGroupDatabase,
  writingGroup,
} from './group-files.js';
import { PartitionDatabase } from './partition-database.js';
import { RaftDatabase } from './raft-database.js';
import { RaftGroup } from './raft-group.js';
import type { ReplicatedStateMachine } from './raft-group.js';

let directory: string;
beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-group-files-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

/** Every character a group id can hold: topic names' (`[a-zA-Z0-9._-]`), `topic:` and `/<n>`. */
const groupIdCharacter = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/'.split(''),
);
const groupIds = fc.string({ unit: groupIdCharacter, minLength: 0, maxLength: 300 });
/** Anything at all, in case an id ever comes from a looser schema. */
const anyIds = fc.string({ unit: 'grapheme', maxLength: 300 });

describe('groupFileName', () => {
  it('is a readable prefix of the id and a hash of all of it, and never changes (a change would orphan data)', () => {
    // Pinned: every existing data directory is named by these.
    expect(groupFileName('demo/0')).toBe('demo_0-8c7d82cd41065bebbafd8f5632cc39c8.sqlite');
    expect(groupFileName('topic:orders')).toBe('topic_orders-f2e9b47b905df4bc2733f266dcd1ce1c.sqlite');
    expect(groupFileName('__system')).toBe('__system-9b321bf8937e22dbcffcbef0a8dfcff2.sqlite');
  });

  it('fits in a file name with any SQLite suffix, in portable characters, for any id', () => {
    fc.assert(
      fc.property(fc.oneof(groupIds, anyIds), (id) => {
        const name = groupFileName(id);
        expect(name).toMatch(/^[A-Za-z0-9._-]*-[0-9a-f]{32}\.sqlite$/);
        for (const suffix of ['', ...groupFileSuffixes]) {
          expect(Buffer.byteLength(name + suffix)).toBeLessThanOrEqual(255);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('gives distinct ids distinct names, also ids that differ only past the readable prefix or in case', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.oneof(groupIds, anyIds), { minLength: 2, maxLength: 40 }), (ids) => {
        expect(new Set(ids.map(groupFileName)).size).toBe(ids.length);
        // Case-insensitive file systems (macOS, Windows) must not merge two ids either.
        expect(new Set(ids.map((id) => groupFileName(id).toLowerCase())).size).toBe(ids.length);
      }),
      { numRuns: 300 },
    );
    const long = 'p'.repeat(249);
    expect(groupFileName(`${long}/0`)).not.toBe(groupFileName(`${long}/1`));
    expect(groupFileName('topic:a')).not.toBe(groupFileName('topic/a'));
  });

  it('is what a 249-character topic needs, where the legacy name could not exist', () => {
    const topic = 't'.repeat(249);
    for (const id of [`topic:${topic}`, `${topic}/1023`]) {
      expect(Buffer.byteLength(legacyGroupFileName(id))).toBeGreaterThan(255);
      expect(Buffer.byteLength(`${groupFileName(id)}-journal`)).toBeLessThan(255);
    }
  });
});

/** Copies `from` (a database and its companions) to `to`, as a node that stopped would leave it. */
function copyDatabaseFiles(from: string, to: string): void {
  mkdirSync(join(to, '..'), { recursive: true });
  for (const suffix of ['', ...groupFileSuffixes]) {
    if (existsSync(from + suffix)) copyFileSync(from + suffix, to + suffix);
  }
}

describe('a data directory written under the legacy names', () => {
  it('keeps a raft database whose last writes are still in its WAL: the files are renamed at open', () => {
    const groupId = 'topic:orders';
    const writer = RaftDatabase.open(join(directory, 'writer'), groupId);
    writer.persist([
      { op: 'hardState', hardState: { term: 3, votedFor: 'n2', commit: 2 } },
      {
        op: 'append',
        entries: [
          { index: 1, term: 3, type: 'normal', data: new Uint8Array([1]) },
          { index: 2, term: 3, type: 'normal', data: new Uint8Array([2]) },
        ],
      },
    ]);
    // Copied while open: the transactions are in the WAL, not yet checkpointed into the database.
    const legacy = join(directory, 'node', 'raft', legacyGroupFileName(groupId));
    copyDatabaseFiles(join(directory, 'writer', 'raft', groupFileName(groupId)), legacy);
    const expected = writer.restore();
    writer.close();
    expect(existsSync(`${legacy}-wal`)).toBe(true);

    const upgraded = RaftDatabase.open(join(directory, 'node'), groupId);
    try {
      expect(upgraded.restore()).toEqual(expected);
      expect(expected?.entries).toHaveLength(2);
    } finally {
      upgraded.close();
    }
    expect(existsSync(legacy)).toBe(false);
    expect(existsSync(`${legacy}-wal`)).toBe(false);
    expect(existsSync(join(directory, 'node', 'raft', groupFileName(groupId)))).toBe(true);
  });

  it('keeps a partition database, and a global ledger, which was named after its topic', () => {
    const partition = PartitionDatabase.open(join(directory, 'writer'), 'orders/0');
    partition.persist([{ op: 'put', record: { key: 'view', seq: 0, bytes: new Uint8Array([7]) } }]);
    copyDatabaseFiles(
      join(directory, 'writer', 'partitions', groupFileName('orders/0')),
      join(directory, 'node', 'partitions', legacyGroupFileName('orders/0')),
    );
    partition.close();
    const reopened = PartitionDatabase.open(join(directory, 'node'), 'orders/0');
    expect(reopened.records()).toEqual([{ key: 'view', seq: 0, bytes: new Uint8Array([7]) }]);
    reopened.close();

    // The legacy global ledger file is `<topic>.sqlite`; a marker table shows which file is open.
    const legacyLedger = join(directory, 'node', 'global', legacyGroupFileName('orders'));
    mkdirSync(join(directory, 'node', 'global'), { recursive: true });
    const old = new Database(legacyLedger);
    old.exec("CREATE TABLE marker (value TEXT); INSERT INTO marker VALUES ('written before the upgrade')");
    old.close();
    GlobalLedgerDatabase.open(join(directory, 'node'), 'orders').close();
    const adopted = new Database(join(directory, 'node', 'global', groupFileName('topic:orders')), {
      readonly: true,
    });
    expect(adopted.prepare('SELECT value FROM marker').pluck().get()).toBe('written before the upgrade');
    adopted.close();
    expect(existsSync(legacyLedger)).toBe(false);
  });

  it('finishes a rename that stopped after moving the WAL, and leaves a legacy file alone once the new one exists', () => {
    const folder = join(directory, 'raft');
    const writer = RaftDatabase.open(join(directory, 'writer'), 'g');
    writer.persist([{ op: 'hardState', hardState: { term: 9, votedFor: null, commit: 0 } }]);
    const legacy = join(folder, legacyGroupFileName('g'));
    const path = join(folder, groupFileName('g'));
    copyDatabaseFiles(join(directory, 'writer', 'raft', groupFileName('g')), legacy);
    writer.close();
    // Interrupted: the WAL already has its new name, the database not yet.
    renameSync(`${legacy}-wal`, `${path}-wal`);
    const resumed = RaftDatabase.open(directory, 'g');
    expect(resumed.restore()?.hardState.term).toBe(9);
    resumed.close();

    // A stale legacy file beside the adopted one is not taken over a second time.
    const stale = new Database(legacy);
    stale.exec('CREATE TABLE stale (x)');
    stale.close();
    const again = RaftDatabase.open(directory, 'g');
    expect(again.restore()?.hardState.term).toBe(9);
    again.close();
    expect(existsSync(legacy)).toBe(true);
  });
});

/** Numbers written to its own SQLite table as entries apply, as the global ledger writes blocks. */
class TableMachine implements ReplicatedStateMachine {
  readonly db: Database.Database;

  constructor(path: string) {
    // A short busy timeout: the test holds the write lock from another connection.
    this.db = new Database(path, { timeout: 100 });
    this.db.exec('CREATE TABLE IF NOT EXISTS applied (log_index INTEGER PRIMARY KEY, value INTEGER)');
  }

  apply(index: number, data: Uint8Array): Uint8Array {
    if (data.length === 0) return new Uint8Array(0);
    writingGroup('the table', 'topic:t', () =>
      this.db.prepare('INSERT OR REPLACE INTO applied VALUES (?, ?)').run(index, data[0]),
    );
    return new Uint8Array([data[0]!]);
  }

  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }

  restore(): void {}

  values(): number[] {
    return this.db.prepare('SELECT value FROM applied ORDER BY log_index').pluck().all() as number[];
  }
}

/** A single-voter group (it elects itself), reporting a storage failure into `failures`. */
function soloGroup(machine: ReplicatedStateMachine, failures: LedgerbusError[]): RaftGroup {
  const group = new RaftGroup({
    groupId: 'topic:t',
    selfNodeId: 'n1',
    voters: ['n1'],
    learners: [],
    dataDirectory: directory,
    stateMachine: machine,
    sendTo: () => {},
    electionTicks: 4,
    heartbeatTicks: 1,
    commitTimeoutMs: 10_000,
    onStorageFailure: (error) => failures.push(error),
  });
  for (let tick = 0; tick < 40 && !group.isLeader; tick++) group.tick();
  expect(group.isLeader).toBe(true);
  return group;
}

/** Holds the write lock of the database at `path` from another connection until released. */
function lockWrites(path: string): () => void {
  const locker = new Database(path);
  locker.exec('BEGIN IMMEDIATE');
  return () => {
    locker.exec('ROLLBACK');
    locker.close();
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    return isLedgerbusError(error) ? error.code : String(error);
  }
}

describe('a failure of a group’s storage', () => {
  it('to open is a retriable STORAGE_UNAVAILABLE that names the group', () => {
    // SQLite cannot open a directory as its database.
    mkdirSync(join(directory, 'raft', groupFileName('topic:blocked')), { recursive: true });
    let failure: unknown;
    try {
      RaftDatabase.open(directory, 'topic:blocked');
    } catch (error) {
      failure = error;
    }
    expect(isGroupStorageError(failure)).toBe(true);
    expect((failure as LedgerbusError).retriable).toBe(true);
    expect((failure as Error).message).toContain('cannot open the raft database of group topic:blocked');
    // The same through the shared opener, for any kind of group file.
    expect(() =>
      openGroupDatabase({ directory: join(directory, 'raft'), groupId: 'topic:blocked', what: 'x' }),
    ).toThrow(/cannot open the x of group topic:blocked/);
  });

  it('to write its raft log stops that group alone; reopened, it has everything it persisted', async () => {
    const failures: LedgerbusError[] = [];
    const machine = new TableMachine(join(directory, 'table.sqlite'));
    const group = soloGroup(machine, failures);
    expect(await codeOf(group.propose(new Uint8Array([1])))).toBe('OK');

    const release = lockWrites(join(directory, 'raft', groupFileName('topic:t')));
    try {
      // The append cannot be made durable: the proposal fails, the group stops, nothing throws out.
      expect(await codeOf(group.propose(new Uint8Array([2])))).toBe(ErrorCode.StorageUnavailable);
      expect(failures).toHaveLength(1);
      expect(group.failure?.message).toContain('topic:t');
      expect(() => group.tick()).not.toThrow();
      expect(await codeOf(group.propose(new Uint8Array([3])))).toBe(ErrorCode.StorageUnavailable);
    } finally {
      release();
    }
    machine.db.close();

    const fresh = new TableMachine(join(directory, 'table.sqlite'));
    const reopened = soloGroup(fresh, failures);
    expect(fresh.values()).toEqual([1]);
    expect(await codeOf(reopened.propose(new Uint8Array([4])))).toBe('OK');
    expect(fresh.values()).toEqual([1, 4]);
    reopened.close();
    fresh.db.close();
    expect(failures).toHaveLength(1);
  }, 30_000);

  it('while its state machine applies an entry leaves the entry unapplied and stops the group; a reopen applies it', async () => {
    const failures: LedgerbusError[] = [];
    const machine = new TableMachine(join(directory, 'table.sqlite'));
    const group = soloGroup(machine, failures);
    expect(await codeOf(group.propose(new Uint8Array([1])))).toBe('OK');
    const appliedBefore = group.appliedIndex;

    const release = lockWrites(join(directory, 'table.sqlite'));
    try {
      expect(await codeOf(group.propose(new Uint8Array([2])))).toBe(ErrorCode.StorageUnavailable);
    } finally {
      release();
    }
    // Not carried on past the entry as if it had been applied (other replicas did apply it).
    expect(group.appliedIndex).toBe(appliedBefore);
    expect(failures.map((failure) => failure.code)).toEqual([ErrorCode.StorageUnavailable]);
    machine.db.close();

    // The entry is in the durable log: the reopened group applies it.
    const fresh = new TableMachine(join(directory, 'table.sqlite'));
    const reopened = soloGroup(fresh, failures);
    expect(fresh.values()).toEqual([1, 2]);
    reopened.close();
    fresh.db.close();
  });
});
