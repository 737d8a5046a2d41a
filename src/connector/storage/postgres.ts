/**
 * Payloads in PostgreSQL, split into `chunks` rows of `chunkBytes` so neither side ever handles a whole
 * payload. A put inserts chunks under a temporary key inside one transaction while hashing; once the
 * hash is known it either renames them to the final key and inserts the `objects` row, or rolls back
 * because the content is already there. Until COMMIT nothing is visible, and a crashed connector's
 * transaction is rolled back by the server, so there is nothing to clean up at open.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { escapeIdentifier, Pool } from 'pg';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { guarded } from './failures.js';
import { Session } from './postgres-session.js';
import { checkExpected, ContentMeter } from './metering.js';
import { ensureSchema, tableNames } from './postgres-schema.js';
import type { Tables } from './postgres-schema.js';
import type { ByteRange, PayloadStorage, PutOptions, StoredObject } from './types.js';
import { checkKey, checkRangeStart, checkSizeMax } from './validation.js';

export interface PostgresStorageOptions {
  readonly connectionString: string;
  /** Defaults to `public`. */
  readonly schema?: string;
  /** Bytes per chunk row; defaults to 1 MiB. Each object records its own, so this may change later. */
  readonly chunkBytes?: number;
}

const chunkBytesDefault = 1024 * 1024;
// Chunks travel as single bind parameters and rows; past this, memory per chunk stops being small.
const chunkBytesMax = 64 * 1024 * 1024;
const poolSize = 8;
const connectTimeoutMs = 10_000;

export async function openPostgresStorage(options: PostgresStorageOptions): Promise<PayloadStorage> {
  const chunkBytes = options.chunkBytes ?? chunkBytesDefault;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > chunkBytesMax) {
    throw new LedgerbusError(ErrorCode.BadConfig, `chunkBytes must be an integer in 1..${chunkBytesMax}`);
  }
  const schema = options.schema ?? 'public';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new LedgerbusError(ErrorCode.BadConfig, `schema must be a lowercase SQL identifier, got ${schema}`);
  }
  // A bounded connect wait: an unreachable server becomes a retriable STORAGE_UNAVAILABLE, not a hang.
  const pool = new Pool({
    connectionString: options.connectionString,
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
  });
  // An idle connection dropped by the server is simply replaced by the pool; without a listener the
  // 'error' event would crash the process. Queries in flight still see their own errors.
  pool.on('error', () => undefined);
  try {
    const tables = tableNames(escapeIdentifier(schema));
    await guarded('create its tables', () => ensureSchema(pool, schema, tables));
    return new PostgresStorage(pool, tables, chunkBytes);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

class PostgresStorage implements PayloadStorage {
  readonly kind = 'postgres';
  readonly #pool: Pool;
  readonly #tables: Tables;
  readonly #chunkBytes: number;
  #closed = false;

  constructor(pool: Pool, tables: Tables, chunkBytes: number) {
    this.#pool = pool;
    this.#tables = tables;
    this.#chunkBytes = chunkBytes;
  }

  async put(source: Readable, options: PutOptions = {}): Promise<StoredObject> {
    this.#checkOpen();
    const expected =
      options.expectedSha256 === undefined ? undefined : checkKey(options.expectedSha256, 'expectedSha256');
    const meter = new ContentMeter(checkSizeMax(options.sizeMax));
    const { objects, chunks } = this.#tables;
    const chunkBytes = this.#chunkBytes;
    // Not a valid payload key, so no caller can ever name (or collide with) rows mid-put.
    const temporaryKey = `tmp:${randomUUID()}`;
    const session = await Session.open(this.#pool);
    try {
      await guarded('begin', async () => {
        await session.query('begin');
        // Durable at COMMIT whatever the server or role default says.
        await session.query('set local synchronous_commit = on');
      });
      // One reusable chunk buffer: pg copies a Buffer parameter into the wire message, so once an
      // insert has been awaited the buffer is free to refill.
      const pending = Buffer.allocUnsafe(chunkBytes);
      let filled = 0;
      let seq = 0;
      const insertChunk = async (bytes: Buffer): Promise<void> => {
        await guarded('insert a chunk', () =>
          session.query(`insert into ${chunks} (key, seq, bytes) values ($1, $2, $3)`, [
            temporaryKey,
            seq,
            bytes,
          ]),
        );
        seq += 1;
      };
      await pipeline(source, async (incoming: AsyncIterable<unknown>) => {
        for await (const chunk of incoming) {
          const bytes = meter.update(chunk);
          for (let offset = 0; offset < bytes.length;) {
            const copied = bytes.copy(pending, filled, offset);
            filled += copied;
            offset += copied;
            if (filled === chunkBytes) {
              await insertChunk(pending);
              filled = 0;
            }
          }
        }
      });
      if (filled > 0) await insertChunk(pending.subarray(0, filled));
      const stored = meter.finish();
      checkExpected(stored, expected);
      // ON CONFLICT waits for a concurrent put of the same content to finish, so exactly one wins.
      const inserted = await guarded('record the object', () =>
        session.query(
          `insert into ${objects} (key, size, chunk_bytes) values ($1, $2, $3) on conflict (key) do nothing`,
          [stored.key, stored.size, chunkBytes],
        ),
      );
      // Already present: release() rolls back, discarding our copy of the chunks.
      if (inserted.rowCount === 0) return stored;
      await guarded('commit', async () => {
        await session.query(`update ${chunks} set key = $1 where key = $2`, [stored.key, temporaryKey]);
        await session.query('commit');
      });
      return stored;
    } finally {
      await session.release();
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    this.#checkOpen();
    checkKey(key);
    const found = await this.#find(key);
    if (found === undefined) throw notFound(key);
    const start = checkRangeStart(range, found.size);
    return chunkStream(this.#pool, this.#tables.chunks, key, found, start);
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    this.#checkOpen();
    checkKey(key);
    const found = await this.#find(key);
    return found === undefined ? undefined : { key, size: found.size };
  }

  async delete(key: string): Promise<boolean> {
    this.#checkOpen();
    checkKey(key);
    const { objects, chunks } = this.#tables;
    // One statement, so one implicit transaction: never an object row without its chunks.
    const result = await guarded('delete the object', () =>
      this.#pool.query<{ deleted: number }>(
        `with gone as (delete from ${objects} where key = $1 returning key),
              chunks_gone as (delete from ${chunks} where key = $1)
         select count(*)::int as deleted from gone`,
        [key],
      ),
    );
    return result.rows[0]?.deleted === 1;
  }

  /** Both tables with their indexes and TOAST (where the chunks' bytes are): what the server keeps for us. */
  async usage(): Promise<number> {
    this.#checkOpen();
    const { objects, chunks } = this.#tables;
    const result = await guarded('measure its tables', () =>
      this.#pool.query<{ bytes: string }>(
        'select (pg_total_relation_size($1::regclass) + pg_total_relation_size($2::regclass))::text as bytes',
        [objects, chunks],
      ),
    );
    return Number(result.rows[0]?.bytes ?? 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await guarded('close', () => this.#pool.end());
  }

  async #find(key: string): Promise<ObjectRow | undefined> {
    const result = await guarded('look up the object', () =>
      this.#pool.query<{ size: string; chunk_bytes: number }>(
        `select size, chunk_bytes from ${this.#tables.objects} where key = $1`,
        [key],
      ),
    );
    const row = result.rows[0];
    return row === undefined ? undefined : { size: Number(row.size), chunkBytes: row.chunk_bytes };
  }

  #checkOpen(): void {
    if (this.#closed)
      throw new LedgerbusError(ErrorCode.StorageUnavailable, 'payload storage is closed', {
        retriable: false,
      });
  }
}

interface ObjectRow {
  readonly size: number;
  readonly chunkBytes: number;
}

/**
 * Fetches one chunk per read: Readable.from asks for the next only once the consumer has drained what
 * was pushed (a chunk is larger than the high-water mark), so at most about one chunk is in memory.
 */
function chunkStream(pool: Pool, chunks: string, key: string, object: ObjectRow, start: number): Readable {
  const { size, chunkBytes } = object;
  const seqEnd = Math.ceil(size / chunkBytes);
  const firstSeq = Math.floor(start / chunkBytes);
  async function* fetch(): AsyncGenerator<Buffer> {
    for (let seq = firstSeq; seq < seqEnd; seq += 1) {
      const result = await guarded('read a chunk', () =>
        pool.query<{ bytes: Buffer }>(`select bytes from ${chunks} where key = $1 and seq = $2`, [key, seq]),
      );
      const bytes = result.rows[0]?.bytes;
      if (bytes === undefined) {
        throw new LedgerbusError(ErrorCode.PayloadNotFound, `payload ${key} was deleted while being read`);
      }
      const expectedLength = Math.min(chunkBytes, size - seq * chunkBytes);
      if (bytes.length !== expectedLength) {
        throw new LedgerbusError(
          ErrorCode.StorageCorrupt,
          `chunk ${seq} of ${key} has ${bytes.length} bytes, expected ${expectedLength}`,
        );
      }
      yield seq === firstSeq ? bytes.subarray(start - seq * chunkBytes) : bytes;
    }
  }
  return Readable.from(fetch(), { objectMode: false });
}

function notFound(key: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.PayloadNotFound, `no payload stored under ${key}`);
}
