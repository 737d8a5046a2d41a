/**
 * Runs against the PostgreSQL server of test/support/postgres-server.ts: the one
 * LEDGERBUS_TEST_POSTGRES_URL names, or else a throwaway server started for this file. Each run
 * creates its own randomly named database there and drops it at the end.
 */
import { PassThrough } from 'node:stream';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPostgres } from '../../../test/support/postgres-server.js';
import type { TestPostgres } from '../../../test/support/postgres-server.js';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { openPostgresStorage } from './postgres.js';
import { describeStorageContract } from './testing/contract-suite.js';
import { digestOf, generated, generatedDigest } from './testing/generated.js';

let server: TestPostgres;
let databaseName: string;
let databaseUrl: string;
const schema = 'payloads';

/** Chunk rows that belong to no object: what an unfinished put must never leave. */
async function orphanChunks(inSchema = schema): Promise<number> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const result = await client.query<{ orphans: number }>(
      `select count(*)::int as orphans from ${inSchema}.chunks c
        where not exists (select 1 from ${inSchema}.objects o where o.key = c.key)`,
    );
    return result.rows[0]?.orphans ?? -1;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  server = await startTestPostgres();
  ({ name: databaseName, url: databaseUrl } = await server.createDatabase('ledgerbus_test'));
});
afterAll(async () => {
  if (server === undefined) return; // it did not start: beforeAll has said why
  try {
    if (databaseName !== undefined) await server.dropDatabase(databaseName);
  } finally {
    await server.stop();
  }
});

describeStorageContract('postgres', {
  open: () => openPostgresStorage({ connectionString: databaseUrl, schema }),
  leftovers: () => orphanChunks(),
});

describe('postgres storage size', () => {
  it('reports what its tables take, growing with what it stores', async () => {
    const storage = await openPostgresStorage({ connectionString: databaseUrl, schema: 'sized' });
    try {
      const before = await storage.usage!();
      expect(before).toBeGreaterThan(0);
      await storage.put(generated(3 * 1024 * 1024, 4).stream);
      expect((await storage.usage!()) - before).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    } finally {
      await storage.close();
    }
  });
});

describe('postgres storage chunking', () => {
  it('reads objects written with another chunk size, from any offset', async () => {
    const small = await openPostgresStorage({
      connectionString: databaseUrl,
      schema: 'odd',
      chunkBytes: 1000,
    });
    const size = 10_007;
    const { key } = await small.put(generated(size, 5).stream);
    await small.close();
    const large = await openPostgresStorage({ connectionString: databaseUrl, schema: 'odd' });
    try {
      for (const start of [0, 999, 1000, 1001, 9999, 10_000, 10_006, size]) {
        expect(await digestOf(await large.get(key, { start })), `start ${start}`).toEqual(
          await generatedDigest(size, 5, start),
        );
      }
    } finally {
      await large.close();
    }
  });

  it('fails a put cleanly when its connection is dropped mid-stream', async () => {
    const storage = await openPostgresStorage({ connectionString: databaseUrl, schema: 'dropped' });
    try {
      const source = new PassThrough();
      const putting = storage.put(source).then(
        () => undefined,
        (error: unknown) => error,
      );
      source.write(Buffer.alloc(1024 * 1024 + 1, 7)); // one full chunk: the transaction has begun
      await new Promise((resolve) => setTimeout(resolve, 200));
      await server.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where datname = '${databaseName}' and pid <> pg_backend_pid()`,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      source.end(Buffer.alloc(1024 * 1024, 8));
      const error = await putting;
      expect(isLedgerbusError(error, ErrorCode.StorageUnavailable), String(error)).toBe(true);
      expect((error as { retriable?: boolean }).retriable).toBe(true);
      // The pool replaces the dead connection; nothing of the failed put is visible.
      const { key } = await storage.put(generated(10, 6).stream);
      expect(await storage.stat(key)).toEqual({ key, size: 10 });
      expect(await orphanChunks('dropped')).toBe(0);
    } finally {
      await storage.close();
    }
  });

  it('refuses a bad schema name or chunk size', async () => {
    for (const options of [
      { connectionString: databaseUrl, schema: 'x; drop table y' },
      { connectionString: databaseUrl, chunkBytes: 0 },
    ]) {
      const error = await openPostgresStorage(options).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(isLedgerbusError(error, ErrorCode.BadConfig)).toBe(true);
    }
  });

  it('reports an unreachable server as retriable STORAGE_UNAVAILABLE', async () => {
    const error = await openPostgresStorage({
      connectionString: 'postgres://postgres@127.0.0.1:1/none',
    }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(isLedgerbusError(error, ErrorCode.StorageUnavailable)).toBe(true);
    expect((error as { retriable?: boolean }).retriable).toBe(true);
  });
});
