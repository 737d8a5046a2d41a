// Concurrent sends' rows commit together (one transaction, one fsync), and one that fails is undone alone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectorDatabase } from './connector-database.js';
import { GroupCommit } from './group-commit.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function sentRow(id: string): Parameters<ConnectorDatabase['insertSent']>[0] {
  return {
    id,
    topic: 'demo',
    partition: 0,
    group_id: 'demo/0',
    header: new Uint8Array([1]),
    storage_key: `key-${id}`,
    size: 1,
    recipients: '["org2"]',
    created_at: 1,
  };
}

describe('GroupCommit', () => {
  it('commits the writes queued in one turn in one transaction; a write that throws is undone alone', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-group-commit-'));
    directories.push(directory);
    const database = new ConnectorDatabase(directory);
    let commits = 0;
    const counting = {
      transaction: <T>(work: () => T): T => {
        if (!database.db.inTransaction) commits += 1;
        return database.transaction(work);
      },
      get inTransaction(): boolean {
        return database.inTransaction;
      },
    };
    const group = new GroupCommit(counting);
    const outcomes = await Promise.allSettled([
      group.run(() => database.insertSent(sentRow('a'))),
      group.run(() => {
        database.insertSent(sentRow('b'));
        throw new Error('refused after writing');
      }),
      group.run(() => {
        database.insertSent(sentRow('c'));
        return 'c done';
      }),
    ]);
    expect(commits).toBe(1);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toEqual(new Error('refused after writing'));
    expect((outcomes[2] as PromiseFulfilledResult<string>).value).toBe('c done');
    expect(['a', 'b', 'c'].map((id) => database.sent('demo', id)?.storage_key)).toEqual([
      'key-a',
      undefined,
      'key-c',
    ]);
    // A later turn is a group of its own.
    await group.run(() => database.insertSent(sentRow('d')));
    expect(commits).toBe(2);
    database.close();
  });
});
