/**
 * The datasets an organization shares by compute-to-data (DESIGN §8, issue 15: `ledgerbus dataset
 * add|list|remove`), kept by its connector. Each dataset is its own SQLite file,
 * `<directory>/<name>.sqlite`: the typed table `data` and a `meta` table describing it (columns and
 * their types, row count, the SHA-256 of the bytes loaded, the key column, the owner's policy). Its
 * rows never leave that file: jobs read it read-only in a child process (job-sandbox.ts) and return
 * only aggregates or model parameters.
 *
 * A dataset appears whole or not at all: it is built under a temporary name beginning with '.'
 * (which no dataset name can), fsynced, and linked into place — a link, not a rename, because it
 * refuses to replace an existing dataset — before the directory is fsynced. A crash midway leaves
 * only temporary files, which the next open removes; a failed load removes its own at once.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { datasetNamePattern } from '../../registry/catalog.js';
import { defaultDatasetPolicy, minGroupSizeFloor } from '../../datashare/types.js';
import type { ColumnInfo, ColumnType, DatasetPolicy } from '../../datashare/types.js';
import { fsyncDirectorySync, makeDirectoryDurableSync } from '../../runtime/durable-directory.js';
import { buildDataset } from './dataset-builder.js';
import type { DatasetFormat } from './dataset-builder.js';

export interface DatasetInfo {
  readonly name: string;
  readonly columns: readonly ColumnInfo[];
  readonly rowCount: number;
  /** SHA-256 of the source bytes as received. */
  readonly contentHash: Uint8Array;
  readonly keyColumn: string | null;
  readonly format: DatasetFormat;
  /** When it was loaded (ms since the epoch). */
  readonly loadedAt: number;
  /** Absolute path of its SQLite file. */
  readonly file: string;
  readonly policy: DatasetPolicy;
}

export interface AddDatasetOptions {
  readonly format: DatasetFormat;
  /** A column to index (as the file names it, or normalised). */
  readonly keyColumn?: string;
  /** The owner's policy; `defaultDatasetPolicy` when absent. */
  readonly policy?: DatasetPolicy;
}

/**
 * What identifies a dataset's content as loaded: the same name loaded again (even from the same
 * bytes) is another dataset, and what was learnt about the old one (difference-check history) no
 * longer applies.
 */
export function datasetKey(info: Pick<DatasetInfo, 'contentHash' | 'loadedAt'>): string {
  return `${Buffer.from(info.contentHash).toString('hex')}/${info.loadedAt}`;
}

export interface DatasetStoreOptions {
  /**
   * Told that dataset `name`'s rows changed — it was removed, or loaded anew — so that
   * what was kept about the old rows (the jobs' history) is dropped.
   */
  readonly onReplaced?: (name: string) => void;
}

/** `meta` layout version of a dataset file. */
const layoutVersion = 1;
const temporaryPrefix = '.';
const datasetSuffix = '.sqlite';

/** What the `meta` table holds under the key 'dataset' (JSON). */
interface StoredDescription {
  readonly layout: number;
  readonly name: string;
  readonly columns: readonly ColumnInfo[];
  readonly rowCount: number;
  readonly contentHash: string;
  readonly keyColumn: string | null;
  readonly format: DatasetFormat;
  readonly loadedAt: number;
}

export class DatasetStore {
  readonly directory: string;
  /** One per dataset file in the directory: the owner's loads and removals only. */
  private readonly datasets = new Map<string, DatasetInfo>();
  /**
   * Names being loaded now: a second load of one of them is refused, as if it existed. Each leaves
   * when its load ends.
   */
  private readonly loading = new Set<string>();
  private closed = false;

  /**
   * Opens (creating it if needed) the dataset directory, removes what interrupted loads left and
   * reads every dataset's description. A dataset file that cannot be read is STORAGE_CORRUPT.
   */
  constructor(
    directory: string,
    private readonly options: DatasetStoreOptions = {},
  ) {
    this.directory = resolve(directory);
    makeDirectoryDurableSync(this.directory, 0o700);
    for (const entry of readdirSync(this.directory)) {
      if (entry.startsWith(temporaryPrefix) && entry.includes('.loading')) {
        rmSync(join(this.directory, entry), { force: true });
        continue;
      }
      if (!entry.endsWith(datasetSuffix)) continue;
      const name = entry.slice(0, -datasetSuffix.length);
      if (!datasetNamePattern.test(name)) continue;
      this.datasets.set(name, readDescription(join(this.directory, entry), name));
    }
  }

  /**
   * Loads `source` as the dataset `name`. Throws SCHEMA_MISMATCH for an invalid or taken name, an
   * unknown key column or input that cannot be loaded (naming its line); nothing is left behind.
   */
  async add(name: string, source: Readable, options: AddDatasetOptions): Promise<DatasetInfo> {
    this.checkOpen();
    if (!datasetNamePattern.test(name)) {
      source.destroy();
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `"${name}" is not a valid dataset name: a letter, then up to 127 letters, digits, _ or -`,
      );
    }
    if (this.datasets.has(name) || this.loading.has(name)) {
      source.destroy();
      throw exists(name);
    }
    const policy = options.policy ?? defaultDatasetPolicy;
    checkPolicy(policy, undefined);
    const suffix = randomBytes(6).toString('hex');
    const temporary = join(this.directory, `${temporaryPrefix}${name}.${suffix}.loading${datasetSuffix}`);
    const staging = join(
      this.directory,
      `${temporaryPrefix}${name}.${suffix}.loading-staging${datasetSuffix}`,
    );
    const file = join(this.directory, `${name}${datasetSuffix}`);
    this.loading.add(name);
    try {
      // Created first so that only their owner can read them: the rows are the organization's own.
      closeSync(openSync(temporary, 'wx', 0o600));
      closeSync(openSync(staging, 'wx', 0o600));
      const built = await buildDataset(temporary, staging, source, options);
      const info: DatasetInfo = {
        name,
        columns: built.columns,
        rowCount: built.rowCount,
        contentHash: built.contentHash,
        keyColumn: built.keyColumn,
        format: options.format,
        loadedAt: Date.now(),
        file,
        policy: checkPolicy(policy, built.columns),
      };
      writeDescription(temporary, info);
      fsyncFile(temporary);
      try {
        linkSync(temporary, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw exists(name);
        throw error;
      }
      unlinkSync(temporary);
      fsyncDirectorySync(this.directory);
      // History is keyed by content too (datasetKey), so a crash before this only leaves garbage.
      this.options.onReplaced?.(name);
      this.datasets.set(name, info);
      return info;
    } catch (error) {
      source.destroy();
      throw error;
    } finally {
      this.loading.delete(name);
      rmSync(temporary, { force: true });
      rmSync(staging, { force: true });
    }
  }

  /** Every dataset, by name. */
  list(): DatasetInfo[] {
    this.checkOpen();
    return [...this.datasets.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  get(name: string): DatasetInfo | undefined {
    this.checkOpen();
    return this.datasets.get(name);
  }

  /** The dataset `name`, or DATASET_NOT_FOUND. */
  require(name: string): DatasetInfo {
    const info = this.get(name);
    if (info === undefined)
      throw new LedgerbusError(
        ErrorCode.DatasetNotFound,
        `no dataset named "${name}" is loaded here: ledgerbus dataset list shows the loaded ones`,
      );
    return info;
  }

  /**
   * Removes the dataset's file. A job already running on it keeps reading its open file until it
   * ends (POSIX unlink semantics); no new job can start.
   */
  remove(name: string): void {
    const info = this.require(name);
    this.datasets.delete(name);
    rmSync(info.file, { force: true });
    fsyncDirectorySync(this.directory);
    this.options.onReplaced?.(name);
  }

  /** Replaces the dataset's policy (durably, in its file) and returns the new description. */
  setPolicy(name: string, policy: DatasetPolicy): DatasetInfo {
    const info = this.require(name);
    const updated: DatasetInfo = { ...info, policy: checkPolicy(policy, info.columns) };
    writeDescription(info.file, updated);
    this.datasets.set(name, updated);
    return updated;
  }

  close(): void {
    this.closed = true;
    this.datasets.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the dataset store is closed');
  }
}

function exists(name: string): LedgerbusError {
  return new LedgerbusError(
    ErrorCode.SchemaMismatch,
    `a dataset named "${name}" already exists: remove it first (ledgerbus dataset remove ${name}) or choose another name`,
  );
}

/** `policy` if it names only columns of the dataset and keeps the minimum group size floor. */
function checkPolicy(policy: DatasetPolicy, columns: readonly ColumnInfo[] | undefined): DatasetPolicy {
  if (columns !== undefined && policy.allowedColumns !== '*') {
    const names = new Set(columns.map((column) => column.name));
    const unknown = policy.allowedColumns.filter((column) => !names.has(column));
    if (unknown.length > 0)
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `the policy allows columns the dataset does not have (${unknown.join(', ')}); its columns are ${[...names].join(', ')}`,
      );
  }
  if (!Number.isInteger(policy.minGroupSize) || policy.minGroupSize < minGroupSizeFloor)
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `policy minGroupSize must be an integer of at least ${minGroupSizeFloor}, not ${policy.minGroupSize}`,
    );
  return policy;
}

/** Writes `info`'s description and policy into `file`'s meta table (durably). */
function writeDescription(file: string, info: DatasetInfo): void {
  const description: StoredDescription = {
    layout: layoutVersion,
    name: info.name,
    columns: info.columns,
    rowCount: info.rowCount,
    contentHash: Buffer.from(info.contentHash).toString('hex'),
    keyColumn: info.keyColumn,
    format: info.format,
    loadedAt: info.loadedAt,
  };
  const db = new Database(file);
  try {
    db.pragma('synchronous = FULL');
    // A running job holds a read lock for as long as its query runs.
    db.pragma('busy_timeout = 60000');
    db.transaction(() => {
      db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
      const put = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
      put.run('dataset', JSON.stringify(description));
      put.run('policy', JSON.stringify(info.policy));
    }).immediate();
  } finally {
    db.close();
  }
}

function readDescription(file: string, name: string): DatasetInfo {
  const corrupt = (why: string): LedgerbusError =>
    new LedgerbusError(
      ErrorCode.StorageCorrupt,
      `dataset file ${file} ${why}: remove it and load the dataset again (ledgerbus dataset add ${name})`,
    );
  let rows: { key: string; value: string }[];
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      rows = db.prepare<[], { key: string; value: string }>('SELECT key, value FROM meta').all();
    } finally {
      db.close();
    }
  } catch (error) {
    throw corrupt(`cannot be read (${(error as Error).message})`);
  }
  const values = new Map(rows.map((row) => [row.key, row.value]));
  let description: StoredDescription;
  let policy: DatasetPolicy;
  try {
    description = JSON.parse(values.get('dataset') ?? 'null') as StoredDescription;
    policy = JSON.parse(values.get('policy') ?? 'null') as DatasetPolicy;
  } catch {
    throw corrupt('has an unreadable description');
  }
  if (description === null || policy === null || typeof description !== 'object')
    throw corrupt('has no description');
  if (description.layout !== layoutVersion)
    throw corrupt(`has layout ${String(description.layout)}, not ${layoutVersion}`);
  if (description.name !== name) throw corrupt(`describes the dataset "${description.name}"`);
  const types: readonly ColumnType[] = ['integer', 'real', 'text', 'boolean'];
  if (
    !Array.isArray(description.columns) ||
    !description.columns.every((column) => typeof column.name === 'string' && types.includes(column.type))
  )
    throw corrupt('has an unreadable column list');
  return {
    name,
    columns: description.columns,
    rowCount: description.rowCount,
    contentHash: new Uint8Array(Buffer.from(description.contentHash, 'hex')),
    keyColumn: description.keyColumn,
    format: description.format,
    loadedAt: description.loadedAt,
    file,
    policy,
  };
}

function fsyncFile(path: string): void {
  const descriptor = openSync(path, 'r+');
  try {
    fsyncSync(descriptor);
  } finally {
    closeSync(descriptor);
  }
}
