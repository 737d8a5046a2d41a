import type { Pool } from 'pg';
import { Session } from './postgres-session.js';

export interface Tables {
  /** Quoted (and for tables schema-qualified) names, safe to splice into SQL. */
  readonly schema: string;
  readonly objects: string;
  readonly chunks: string;
}

export function tableNames(quotedSchema: string): Tables {
  return { schema: quotedSchema, objects: `${quotedSchema}.objects`, chunks: `${quotedSchema}.chunks` };
}

/**
 * Creates the schema and tables if missing. Under an advisory lock because concurrent
 * `create table if not exists` can still fail on the catalog's unique index when connectors start together.
 */
export async function ensureSchema(pool: Pool, schema: string, tables: Tables): Promise<void> {
  const session = await Session.open(pool);
  try {
    await session.query('begin');
    await session.query(`select pg_advisory_xact_lock(hashtext($1))`, [`ledgerbus.payloads.${schema}`]);
    const existed = await session.query<{ found: string | null }>(`select to_regclass($1)::text as found`, [
      tables.chunks,
    ]);
    await session.query(`create schema if not exists ${tables.schema}`);
    await session.query(
      `create table if not exists ${tables.objects} (
         key text primary key,
         size bigint not null check (size >= 0),
         chunk_bytes integer not null check (chunk_bytes > 0),
         created_at timestamptz not null default now())`,
    );
    await session.query(
      `create table if not exists ${tables.chunks} (
         key text not null,
         seq integer not null check (seq >= 0),
         bytes bytea not null,
         primary key (key, seq))`,
    );
    if ((existed.rows[0]?.found ?? null) === null) {
      // Payloads are ciphertext: compression would burn CPU for nothing, and uncompressed out-of-line
      // storage is what lets PostgreSQL read a chunk without decompressing it.
      await session.query(`alter table ${tables.chunks} alter column bytes set storage external`);
    }
    await session.query('commit');
  } finally {
    await session.release();
  }
}
