import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { defaultDatasetPolicy } from '../../datashare/types.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { DatasetStore, datasetKey } from './dataset-store.js';
import { JobDatabase } from './job-state-database.js';
import { loanColumns, loanRows, loansCsv } from './testing/loans.js';

const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
let directory: string;
let store: DatasetStore;

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-datasets-'));
  store = new DatasetStore(directory);
});
afterEach(() => {
  store.close();
  rmSync(directory, { recursive: true, force: true });
});

/** A source that yields `text` in small pieces, as a file or a socket would. */
function source(text: string | Buffer, pieceBytes = 4096): Readable {
  const bytes = Buffer.from(text);
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < bytes.length; offset += pieceBytes)
        yield bytes.subarray(offset, offset + pieceBytes);
    })(),
  );
}

function rowsOf(file: string, sql: string): Record<string, unknown>[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

async function rejection(promise: Promise<unknown>): Promise<LedgerbusError> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(LedgerbusError);
  return error as LedgerbusError;
}

/** The directory's entries besides the given dataset files: what a failed load must not leave. */
function strayFiles(...datasets: string[]): string[] {
  return readdirSync(directory).filter((entry) => !datasets.map((name) => `${name}.sqlite`).includes(entry));
}

describe('loading CSV', () => {
  const rows = loanRows(2000);
  const csv = loansCsv(rows);

  test('2000 rows with normalised names, inferred types, typed cells and the source hash', async () => {
    const info = await store.add('loans', source(csv), { format: 'csv', keyColumn: 'ID' });
    expect(info.columns).toEqual(loanColumns);
    expect(info.rowCount).toBe(2000);
    expect(Buffer.from(info.contentHash).toString('hex')).toBe(
      createHash('sha256').update(csv).digest('hex'),
    );
    expect(info.keyColumn).toBe('id');
    expect(info.file).toBe(join(directory, 'loans.sqlite'));
    expect(info.policy).toEqual(defaultDatasetPolicy);
    expect(statSync(info.file).mode & 0o777).toBe(0o600);

    // Declared SQL types, and what each cell holds.
    const declared = rowsOf(info.file, 'PRAGMA table_info(data)').map((c) => [c.name, c.type]);
    expect(declared).toEqual(
      loanColumns.map((c) => [
        c.name,
        { integer: 'INTEGER', real: 'REAL', boolean: 'INTEGER', text: 'TEXT' }[c.type],
      ]),
    );
    const stored = rowsOf(info.file, 'SELECT * FROM data ORDER BY rowid');
    expect(stored).toHaveLength(2000);
    rows.forEach((row, i) => {
      const cell = stored[i]!;
      expect(cell.id).toBe(row.id);
      expect(cell.region).toBe(row.region);
      expect(cell.year).toBe(row.year);
      expect(cell.loan_amount).toBe(row.amount);
      expect(cell.active).toBe(row.active === null ? null : row.active ? 1 : 0);
      expect(cell.x2).toBe(row.x2);
      expect(cell.y).toBe(row.y);
      expect(cell.zip).toBe(row.zip); // leading zeros kept: text
      expect(cell.c_2nd_note).toBe(row.note);
      expect(cell.col_13).toBeNull();
    });
    const typeofs = rowsOf(
      info.file,
      'SELECT DISTINCT typeof(id) AS a, typeof(loan_amount) AS b, typeof(zip) AS c FROM data',
    );
    expect(typeofs).toEqual([{ a: 'integer', b: 'real', c: 'text' }]);
    // The key column is indexed.
    expect(rowsOf(info.file, "SELECT name FROM sqlite_master WHERE type = 'index'")).toEqual([
      { name: 'data_key' },
    ]);
    expect(strayFiles('loans')).toEqual([]);
  });

  test('type inference: integers, reals, booleans, text, NULLs', async () => {
    const text = [
      'a,b,c,d,e,f,g,h',
      '1,1.5,true,x,,007,9007199254740993,-3',
      '2,2,FALSE,4,,0.5,1,+4',
      ' 3 , 1e3 , False ,,,,,',
    ].join('\n');
    const info = await store.add('mixed', source(text), { format: 'csv' });
    expect(info.columns.map((c) => c.type)).toEqual([
      'integer', // a
      'real', // b: an integer and reals mix to real
      'boolean', // c
      'text', // d: text and a number mix to text
      'text', // e: only NULLs
      'text', // f: leading zeros
      'real', // g: beyond the safe integers
      'integer', // h
    ]);
    const stored = rowsOf(info.file, 'SELECT * FROM data ORDER BY rowid');
    expect(stored).toEqual([
      { a: 1, b: 1.5, c: 1, d: 'x', e: null, f: '007', g: 9007199254740992, h: -3 },
      { a: 2, b: 2, c: 0, d: '4', e: null, f: '0.5', g: 1, h: 4 },
      { a: 3, b: 1000, c: 0, d: null, e: null, f: null, g: null, h: null },
    ]);
  });

  test('header names: lower case, _ for other characters, c_ before a digit, col_N when empty, de-duplicated', async () => {
    const info = await store.add('names', source('Name,name,NAME,9lives,"a b-c",,Ünïcode\n1,2,3,4,5,6,7\n'), {
      format: 'csv',
    });
    expect(info.columns.map((c) => c.name)).toEqual([
      'name',
      'name_2',
      'name_3',
      'c_9lives',
      'a_b_c',
      'col_6',
      '_n_code',
    ]);
  });

  test("removing or re-adding a dataset forgets its jobs' history: other rows, other results", async () => {
    const jobs = new JobDatabase({ db: new Database(':memory:') });
    store.close();
    store = new DatasetStore(directory, { onReplaced: (name) => jobs.clearReleased(name) });
    const remember = (key: string): void =>
      jobs.recordReleased({
        dataset: 'loans',
        dataset_key: key,
        group_id: 'datashare/0',
        job_id: 'j1',
        requester: 'org1',
        released: '{"where":null,"groupBy":[],"suppressed":[]}',
        executed_at: 1,
      });
    const first = await store.add('loans', source(csv), { format: 'csv' });
    remember(datasetKey(first));
    expect(jobs.releasedOn('loans', datasetKey(first))).toHaveLength(1);
    store.remove('loans');
    expect(jobs.releasedOn('loans', datasetKey(first))).toEqual([]);
    // Left behind (a crash before the clearing): the same bytes loaded again are still another dataset.
    remember(datasetKey(first));
    const second = await store.add('loans', source(csv), { format: 'csv' });
    expect(datasetKey(second)).not.toBe(datasetKey(first));
    expect(jobs.releasedOn('loans', datasetKey(first))).toEqual([]);
  });

  test('descriptions and policies survive reopening; remove and require', async () => {
    await store.add('loans', source(csv), { format: 'csv' });
    const strict = { ...defaultDatasetPolicy, minGroupSize: 50, allowedColumns: ['region', 'loan_amount'] };
    store.setPolicy('loans', strict);
    store.close();
    store = new DatasetStore(directory);
    const info = store.require('loans');
    expect(info.rowCount).toBe(2000);
    expect(info.columns).toEqual(loanColumns);
    expect(info.policy).toEqual(strict);
    expect(store.list().map((d) => d.name)).toEqual(['loans']);

    store.remove('loans');
    expect(store.get('loans')).toBeUndefined();
    expect(readdirSync(directory)).toEqual([]);
    let error: unknown;
    try {
      store.require('loans');
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: ErrorCode.DatasetNotFound });
    expect((error as Error).message).toContain('loans');
    expect((error as Error).message).toContain('ledgerbus dataset list');
  });

  test('a policy naming a column the dataset lacks is refused', async () => {
    await store.add('loans', source(csv), { format: 'csv' });
    expect(() => store.setPolicy('loans', { ...defaultDatasetPolicy, allowedColumns: ['salary'] })).toThrow(
      expect.objectContaining({ code: ErrorCode.SchemaMismatch }),
    );
  });
});

describe('loading JSONL', () => {
  test('one object per line; columns are the union of the keys in order of appearance; JSON types', async () => {
    const lines: string[] = [];
    for (let i = 1; i <= 100; i++) {
      const record: Record<string, unknown> = {
        id: i,
        region: i % 2 === 0 ? 'north' : 'south',
        score: i / 4,
      };
      if (i % 3 === 0) record.flag = i % 2 === 0;
      if (i >= 50) record['Late Key'] = `v${i}`;
      if (i === 60) record.nested = { a: [1, 2] };
      if (i === 70) record.code = '0042'; // a JSON string stays text
      lines.push(JSON.stringify(i % 5 === 0 ? Object.fromEntries(Object.entries(record).reverse()) : record));
      if (i === 10) lines.push('   ');
    }
    const text = `${lines.join('\n')}\n`;
    const info = await store.add('events', source(text, 100), { format: 'jsonl', keyColumn: 'id' });
    expect(info.rowCount).toBe(100);
    expect(info.format).toBe('jsonl');
    // Line 5 (reversed keys) is where score comes before region and id: union order is first seen.
    expect(info.columns).toEqual([
      { name: 'id', type: 'integer' },
      { name: 'region', type: 'text' },
      { name: 'score', type: 'real' },
      { name: 'flag', type: 'boolean' },
      { name: 'late_key', type: 'text' },
      { name: 'nested', type: 'text' },
      { name: 'code', type: 'text' },
    ]);
    const stored = rowsOf(info.file, 'SELECT * FROM data ORDER BY id');
    expect(stored[0]).toEqual({
      id: 1,
      region: 'south',
      score: 0.25,
      flag: null,
      late_key: null,
      nested: null,
      code: null,
    });
    expect(stored[59]).toMatchObject({ id: 60, flag: 1, late_key: 'v60', nested: '{"a":[1,2]}' });
    expect(stored[69]).toMatchObject({ id: 70, code: '0042' });
    expect(Buffer.from(info.contentHash).toString('hex')).toBe(
      createHash('sha256').update(text).digest('hex'),
    );
  });

  test('a malformed line is SCHEMA_MISMATCH naming its line number, and nothing is left', async () => {
    const text = ['{"a":1}', '{"a":2}', '{"a":3', '{"a":4}'].join('\n');
    const error = await rejection(store.add('broken', source(text), { format: 'jsonl' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('line 3');
    const notObject = await rejection(store.add('broken', source('{"a":1}\n[1,2]\n'), { format: 'jsonl' }));
    expect(notObject.message).toContain('line 2');
    expect(strayFiles()).toEqual([]);
    expect(store.list()).toEqual([]);
  });
});

describe('bad input', () => {
  const csv = loansCsv(loanRows(300));

  test('an invalid name is SCHEMA_MISMATCH', async () => {
    for (const name of ['1loans', 'lo ans', '../loans', '', 'x'.repeat(129)]) {
      const error = await rejection(store.add(name, source(csv), { format: 'csv' }));
      expect(error.code).toBe(ErrorCode.SchemaMismatch);
    }
    expect(strayFiles()).toEqual([]);
  });

  test('an existing name is SCHEMA_MISMATCH telling to remove it first; the dataset is untouched', async () => {
    const first = await store.add('loans', source(csv), { format: 'csv' });
    const error = await rejection(store.add('loans', source('a\n1\n'), { format: 'csv' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('ledgerbus dataset remove loans');
    expect(store.require('loans')).toEqual(first);
    expect(rowsOf(first.file, 'SELECT COUNT(*) AS n FROM data')).toEqual([{ n: 300 }]);
    // Two loads of one name at once: the second is refused while the first runs.
    const [a, b] = await Promise.allSettled([
      store.add('twice', source(csv, 64), { format: 'csv' }),
      store.add('twice', source(csv, 64), { format: 'csv' }),
    ]);
    expect(a.status).toBe('fulfilled');
    expect(b).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.SchemaMismatch } });
    expect(strayFiles('loans', 'twice')).toEqual([]);
  });

  test('an unknown key column is SCHEMA_MISMATCH naming the columns', async () => {
    const error = await rejection(store.add('loans', source(csv), { format: 'csv', keyColumn: 'loan_id' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('loan_id');
    expect(error.message).toContain('region');
    const jsonl = await rejection(
      store.add('events', source('{"a":1}\n'), { format: 'jsonl', keyColumn: 'b' }),
    );
    expect(jsonl.code).toBe(ErrorCode.SchemaMismatch);
    expect(strayFiles()).toEqual([]);
  });

  test('a ragged CSV row is SCHEMA_MISMATCH naming its line; so is an unclosed quote', async () => {
    const lines = csv.split('\r\n');
    lines[150] = lines[150]!.split(',').slice(0, 5).join(',');
    const error = await rejection(store.add('loans', source(lines.join('\r\n')), { format: 'csv' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('line 151');
    const quote = await rejection(store.add('loans', source('a,b\n1,2\n3,"4\n'), { format: 'csv' }));
    expect(quote.code).toBe(ErrorCode.SchemaMismatch);
    const empty = await rejection(store.add('loans', source(''), { format: 'csv' }));
    expect(empty.code).toBe(ErrorCode.SchemaMismatch);
    expect(strayFiles()).toEqual([]);
    expect(store.list()).toEqual([]);
  });

  test('a source that fails midway leaves no file, and the name stays free', async () => {
    const failing = Readable.from(
      (function* () {
        yield Buffer.from(csv);
        yield Buffer.from(csv.split('\r\n').slice(1).join('\r\n'));
        throw new Error('the upload was cut off');
      })(),
    );
    await expect(store.add('loans', failing, { format: 'csv' })).rejects.toThrow('the upload was cut off');
    expect(strayFiles()).toEqual([]);
    expect(store.get('loans')).toBeUndefined();
    await store.add('loans', source(csv), { format: 'csv' });
    expect(store.require('loans').rowCount).toBe(300);
  });

  test('a process killed in the middle of a load leaves no dataset, and the next open cleans up', async () => {
    await store.add('loans', source(csv), { format: 'csv' });
    const worker = spawn(
      process.execPath,
      [
        '--import',
        tsxLoader,
        join(import.meta.dirname, 'testing', 'load-worker.ts'),
        directory,
        'big',
        '5000000',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const said: string[] = [];
    const exited = new Promise<void>((resolve) => worker.on('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      worker.stdout.setEncoding('utf8').on('data', (text: string) => {
        said.push(text.trim());
        resolve();
      });
      worker.on('exit', () => reject(new Error(`the loader exited before it began: ${said.join(' ')}`)));
    });
    // Let it write some of the rows.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    worker.kill('SIGKILL');
    await exited;
    expect(said).toEqual(['loading']);
    expect(readdirSync(directory).some((entry) => entry.startsWith('.big.'))).toBe(true);
    store.close();
    store = new DatasetStore(directory);
    expect(store.list().map((d) => d.name)).toEqual(['loans']);
    expect(readdirSync(directory)).toEqual(['loans.sqlite']);
  });

  test('what an interrupted load left is removed when the store opens; datasets stay', async () => {
    await store.add('loans', source(csv), { format: 'csv' });
    store.close();
    writeFileSync(join(directory, '.other.0123456789ab.loading.sqlite'), 'half a dataset');
    writeFileSync(join(directory, '.other.0123456789ab.loading-staging.sqlite'), 'half a staging table');
    store = new DatasetStore(directory);
    expect(readdirSync(directory)).toEqual(['loans.sqlite']);
    expect(store.list().map((d) => d.name)).toEqual(['loans']);
  });
});
