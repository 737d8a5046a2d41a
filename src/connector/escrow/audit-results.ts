/**
 * What this connector's audits rebuilt: one row per audit request that retrieved its message, naming
 * the plaintext in the (content-addressed) payload storage, so `audit fetch` answers again without
 * refetching and the plaintext stays retrievable after a restart.
 */
import type Database from 'better-sqlite3';

const table = `
  CREATE TABLE IF NOT EXISTS escrow_audit_results (
    request_id TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    fetched_at INTEGER NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    bad_shares TEXT NOT NULL DEFAULT '[]',
    bad_holders TEXT NOT NULL DEFAULT '[]',
    regeneration_ms INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS escrow_audit_results_id ON escrow_audit_results (id, fetched_at);
`;

export interface AuditResultRow {
  request_id: string;
  id: string;
  group_id: string;
  storage_key: string;
  size: number;
  sha256: string;
  fetched_at: number;
  chunks: number;
  bad_shares: string;
  bad_holders: string;
  regeneration_ms: number;
}

export class AuditResults {
  /** Creates the table if it is missing; `db` is the connector's database (`ConnectorDatabase.db`). */
  constructor(private readonly db: Database.Database) {
    db.exec(table);
  }

  /** Records a retrieval; a second one for the same request replaces the first (same plaintext). */
  put(row: AuditResultRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO escrow_audit_results
           (request_id, id, group_id, storage_key, size, sha256, fetched_at, chunks, bad_shares, bad_holders, regeneration_ms)
         VALUES (@request_id, @id, @group_id, @storage_key, @size, @sha256, @fetched_at, @chunks, @bad_shares, @bad_holders, @regeneration_ms)`,
      )
      .run(row);
  }

  byRequest(requestId: string): AuditResultRow | undefined {
    return this.db
      .prepare<[string], AuditResultRow>('SELECT * FROM escrow_audit_results WHERE request_id = ?')
      .get(requestId);
  }

  /** Retrievals of message `id`, newest first (an id may name messages of several partitions). */
  byMessage(id: string): AuditResultRow[] {
    return this.db
      .prepare<[string], AuditResultRow>(
        'SELECT * FROM escrow_audit_results WHERE id = ? ORDER BY fetched_at DESC, request_id',
      )
      .all(id);
  }
}
