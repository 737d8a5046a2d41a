import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeChain, makeGroup } from '../../test/ledger/fixtures.js';
import { groupFileName } from './group-files.js';
import { PartitionDatabase } from './partition-database.js';
import { dictionaryV1 } from './state-values.js';

const partitionId = 'demo/0';
const chain = makeChain(makeGroup({ n: 4, partitionId }), 2);
let directory: string;
const file = (): string => join(directory, 'partitions', groupFileName(partitionId));
const rows = (): { key: string; encoding: number; bytes: number }[] => {
  const db = new Database(file(), { readonly: true });
  try {
    return db
      .prepare('SELECT key, encoding, length(value) AS bytes FROM contract_state ORDER BY key')
      .all() as { key: string; encoding: number; bytes: number }[];
  } finally {
    db.close();
  }
};

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-partition-db-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

describe('PartitionDatabase contract state at rest', () => {
  const record = new Uint8Array(dictionaryV1);

  it('stores a message record packed and reads back the same bytes, across a reopen', () => {
    let db = PartitionDatabase.open(directory, partitionId);
    db.commitBlock(
      chain[0]!,
      new Map([
        ['sdt/6:demo/0/message/a', record],
        ['sdt/6:demo/0/meta', record.subarray(0, 20)],
      ]),
    );
    db.sync();
    db.close();
    expect(rows()).toEqual([
      { key: 'sdt/6:demo/0/message/a', encoding: 1, bytes: expect.any(Number) as number },
      { key: 'sdt/6:demo/0/meta', encoding: 0, bytes: 20 },
    ]);
    expect(rows()[0]!.bytes).toBeLessThan(record.length / 3);
    db = PartitionDatabase.open(directory, partitionId);
    expect(db.committedState.get('sdt/6:demo/0/message/a')).toEqual(record);
    expect(db.committedState.get('sdt/6:demo/0/meta')).toEqual(record.subarray(0, 20));
    db.close();
  });

  it('opens a file written before values were packed and reads its plain values', () => {
    mkdirSync(join(directory, 'partitions'), { recursive: true });
    const old = new Database(file());
    old.exec('CREATE TABLE contract_state (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID');
    old
      .prepare('INSERT INTO contract_state (key, value) VALUES (?, ?)')
      .run('sdt/6:demo/0/message/old', record);
    old.close();
    const db = PartitionDatabase.open(directory, partitionId);
    expect(db.committedState.get('sdt/6:demo/0/message/old')).toEqual(record);
    db.commitBlock(chain[0]!, new Map([['sdt/6:demo/0/message/new', record]]));
    expect(db.committedState.get('sdt/6:demo/0/message/new')).toEqual(record);
    db.close();
    expect(rows().map((row) => [row.key, row.encoding])).toEqual([
      ['sdt/6:demo/0/message/new', 1],
      ['sdt/6:demo/0/message/old', 0],
    ]);
  });

  it('reports a damaged packed value as corrupt storage', () => {
    const db = PartitionDatabase.open(directory, partitionId);
    db.commitBlock(chain[0]!, new Map([['sdt/6:demo/0/message/a', record]]));
    db.sync();
    const raw = new Database(file());
    raw.prepare("UPDATE contract_state SET value = x'ffff' WHERE key = ?").run('sdt/6:demo/0/message/a');
    raw.close();
    expect(() => db.committedState.get('sdt/6:demo/0/message/a')).toThrow(/STORAGE_CORRUPT|unreadable value/);
    db.close();
  });
});
