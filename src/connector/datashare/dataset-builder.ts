/**
 * Builds one dataset's SQLite file from a CSV or JSONL stream, in two steps, because a column's
 * type is known only once its last value has been seen:
 *
 * 1. Every row goes, as the text it arrived as, into a staging table of untyped columns — a file of
 *    its own next to the dataset (ATTACHed), inserted in transactions of `batchRows` with one
 *    prepared statement — while each column's type is folded from its values (type-inference.ts)
 *    and the source bytes are hashed. A JSONL key seen for the first time adds a staging column.
 * 2. The typed table `data` is created and filled from the staging table by one INSERT … SELECT
 *    that converts each column (integer, real, boolean as 0/1, text), the key column is indexed,
 *    and the staging file is deleted.
 *
 * Neither step holds more than a batch of rows in memory. The file written here is not the dataset
 * yet: DatasetStore fsyncs it and renames it into place, so it may skip SQLite's journal and syncs.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ColumnInfo, ColumnType } from '../../datashare/types.js';
import { readCsv } from './csv-source.js';
import { quoteIdentifier } from './job-database.js';
import { readJsonl } from './jsonl-source.js';
import {
  ColumnNamer,
  ColumnTypeInference,
  jsonCell,
  kindOfText,
  normaliseColumnName,
} from './type-inference.js';

export type DatasetFormat = 'csv' | 'jsonl';

/** Rows per staging transaction. */
export const batchRows = 10_000;

export interface BuiltDataset {
  readonly columns: readonly ColumnInfo[];
  readonly rowCount: number;
  /** SHA-256 of the source bytes exactly as received. */
  readonly contentHash: Uint8Array;
  /** The key column's normalised name, or null. */
  readonly keyColumn: string | null;
}

/** SQL declared type of each column type: booleans are 0/1 integers (the metadata says boolean). */
export const sqlTypeOf: Readonly<Record<ColumnType, string>> = {
  integer: 'INTEGER',
  real: 'REAL',
  boolean: 'INTEGER',
  text: 'TEXT',
};

/**
 * Builds `file` (a new, empty or absent file) from `source`, using `stagingFile` (deleted by the
 * caller afterwards, whatever happens) for step 1. Throws SCHEMA_MISMATCH, naming the line, for
 * input it cannot load.
 */
export async function buildDataset(
  file: string,
  stagingFile: string,
  source: Readable,
  options: { readonly format: DatasetFormat; readonly keyColumn?: string },
): Promise<BuiltDataset> {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.prepare('ATTACH DATABASE ? AS staging').run(stagingFile);
    db.pragma('staging.journal_mode = OFF');
    db.pragma('staging.synchronous = OFF');
    const staging = new StagingTable(db);
    const hash = createHash('sha256');
    const chunks = hashed(source, hash);
    if (options.format === 'csv') {
      await readCsv(chunks, {
        header: (headers) => {
          const namer = new ColumnNamer();
          for (const header of headers) staging.addColumn(named(() => namer.add(header)));
          checkKeyColumn(staging.names, options.keyColumn);
        },
        row: (_line, cells) =>
          staging.addRow(
            cells.map((cell) => (cell === '' ? null : cell)),
            cells.map(kindOfText),
          ),
      });
    } else {
      const namer = new ColumnNamer();
      // Raw JSON key → staging column index, in the order keys were first seen.
      const positions = new Map<string, number>();
      await readJsonl(chunks, {
        record: (_line, record) => {
          const cells: (string | null)[] = new Array<string | null>(staging.width).fill(null);
          const kinds: ReturnType<typeof kindOfText>[] = new Array<ReturnType<typeof kindOfText>>(
            staging.width,
          ).fill(null);
          for (const [key, value] of Object.entries(record)) {
            let position = positions.get(key);
            if (position === undefined) {
              position = staging.addColumn(named(() => namer.add(key)));
              positions.set(key, position);
            }
            const cell = jsonCell(value);
            cells[position] = cell.text;
            kinds[position] = cell.kind;
          }
          staging.addRow(cells, kinds);
        },
      });
      if (staging.width === 0)
        throw new LedgerbusError(
          ErrorCode.SchemaMismatch,
          'the JSONL file has no columns: it needs at least one line with a JSON object of column values',
        );
      checkKeyColumn(staging.names, options.keyColumn);
    }
    staging.flush();
    const columns = staging.names.map((name, i) => ({ name, type: staging.types[i]!.type }));
    const keyColumn = checkKeyColumn(staging.names, options.keyColumn);
    fillTypedTable(db, columns, keyColumn);
    db.exec('DETACH DATABASE staging');
    return { columns, rowCount: staging.rowCount, contentHash: new Uint8Array(hash.digest()), keyColumn };
  } finally {
    db.close();
  }
}

/** Step 2: the typed table, filled from staging in one statement, and the key column's index. */
function fillTypedTable(
  db: Database.Database,
  columns: readonly ColumnInfo[],
  keyColumn: string | null,
): void {
  // Number() is what the type inference accepted a real by; SQLite's own text-to-real conversion
  // is not promised to round the same way.
  db.function('lb_real', { deterministic: true }, (text: unknown) =>
    typeof text === 'string' ? Number(text) : null,
  );
  const definitions = columns.map((column) => `${quoteIdentifier(column.name)} ${sqlTypeOf[column.type]}`);
  const conversions = columns.map((column, i) => {
    const cell = `c${i}`;
    switch (column.type) {
      case 'integer':
        return `CAST(${cell} AS INTEGER)`;
      case 'real':
        return `lb_real(${cell})`;
      case 'boolean':
        return `CASE WHEN ${cell} IS NULL THEN NULL WHEN lower(${cell}) = 'true' THEN 1 ELSE 0 END`;
      case 'text':
        return cell;
    }
  });
  db.exec(`CREATE TABLE main.data (${definitions.join(', ')})`);
  db.exec(`INSERT INTO main.data SELECT ${conversions.join(', ')} FROM staging.rows ORDER BY rowid`);
  if (keyColumn !== null) db.exec(`CREATE INDEX main.data_key ON data (${quoteIdentifier(keyColumn)})`);
}

/** The untyped staging table of step 1, written in batches. */
class StagingTable {
  // One per column: the namer stops at `catalogLimits.columnsMax`.
  readonly names: string[] = [];
  readonly types: ColumnTypeInference[] = [];
  rowCount = 0;
  private insert: Database.Statement<unknown[]> | undefined;
  /** Rows not yet inserted: flushed at `batchRows`. */
  private batch: (string | null)[][] = [];
  private readonly insertBatch: (rows: (string | null)[][]) => void;

  constructor(private readonly db: Database.Database) {
    this.insertBatch = db.transaction((rows: (string | null)[][]) => {
      const insert = this.insert!;
      for (const row of rows) insert.run(row);
    });
  }

  get width(): number {
    return this.names.length;
  }

  /** Adds a column (existing rows hold NULL in it); returns its position. */
  addColumn(name: string): number {
    this.flush();
    const position = this.names.length;
    if (position === 0) this.db.exec('CREATE TABLE staging.rows (c0)');
    else this.db.exec(`ALTER TABLE staging.rows ADD COLUMN c${position}`);
    this.names.push(name);
    this.types.push(new ColumnTypeInference());
    const placeholders = this.names.map(() => '?').join(', ');
    this.insert = this.db.prepare(`INSERT INTO staging.rows VALUES (${placeholders})`);
    return position;
  }

  addRow(cells: (string | null)[], kinds: readonly ReturnType<typeof kindOfText>[]): void {
    for (let i = 0; i < kinds.length; i++) this.types[i]!.add(kinds[i]!);
    this.batch.push(cells);
    this.rowCount += 1;
    if (this.batch.length >= batchRows) this.flush();
  }

  flush(): void {
    if (this.batch.length === 0) return;
    this.insertBatch(this.batch);
    this.batch = [];
  }
}

/** The key column's normalised name (given as written in the file or normalised), or null. */
function checkKeyColumn(names: readonly string[], keyColumn: string | undefined): string | null {
  if (keyColumn === undefined) return null;
  if (names.includes(keyColumn)) return keyColumn;
  const normalised = normaliseColumnName(keyColumn);
  if (names.includes(normalised)) return normalised;
  throw new LedgerbusError(
    ErrorCode.SchemaMismatch,
    `key column "${keyColumn}" is not a column of the dataset; its columns are ${names.join(', ')}`,
  );
}

function named(name: () => string): string {
  try {
    return name();
  } catch (error) {
    throw new LedgerbusError(ErrorCode.SchemaMismatch, (error as Error).message);
  }
}

/** `source`'s chunks as bytes, each added to `hash` as it passes. */
async function* hashed(source: Readable, hash: ReturnType<typeof createHash>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    hash.update(bytes);
    yield bytes;
  }
}
