/**
 * The chunks other organizations placed here (DESIGN §7, holder side), on the connector's own
 * SQLite database. The bytes are in payload storage (content-addressed: the storage key is their
 * SHA-256); a row says which escrowed chunk they are.
 *
 * A row is keyed by the partition, the message id, the chunk index AND the sender: a message id is
 * unique within its partition only once the partition accepted it, while chunks are placed before
 * it is published, so another organization placing a chunk under the same id must not shadow (or
 * block) the real sender's. The same sender placing the same place again replaces the row: it
 * re-encrypted after a publish that failed, and the newest chunk is the one its master table names.
 */
import type Database from 'better-sqlite3';
import type { ConnectorDatabase } from '../connector-database.js';

/** One chunk kept here for another organization. */
export interface HeldChunkRow {
  /** Partition group id ("topic/partition"). */
  group_id: string;
  id: string;
  chunk_index: number;
  /** The organization that placed it (the message's sender). */
  sender: string;
  /** Lowercase hex SHA-256 of the chunk: also its storage key. */
  hash: string;
  size: number;
  storage_key: string;
  /** Connector clock (ms) when it was stored. */
  stored_at: number;
}

const tables = `
  CREATE TABLE IF NOT EXISTS escrow_chunks (
    group_id TEXT NOT NULL, id TEXT NOT NULL, chunk_index INTEGER NOT NULL, sender TEXT NOT NULL,
    hash TEXT NOT NULL, size INTEGER NOT NULL, storage_key TEXT NOT NULL, stored_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, id, chunk_index, sender)
  ) WITHOUT ROWID;
`;

export class HolderDatabase {
  private readonly db: Database.Database;

  constructor(database: Pick<ConnectorDatabase, 'db'>) {
    this.db = database.db;
    this.db.exec(tables);
  }

  /**
   * Records a stored chunk. Call only once its bytes are durable in storage. Idempotent: the same
   * chunk again changes nothing; another chunk for the same place replaces the row (see above).
   * Returns true if the row is new or changed.
   */
  recordChunk(row: HeldChunkRow): boolean {
    const result = this.db
      .prepare(
        `INSERT INTO escrow_chunks (group_id, id, chunk_index, sender, hash, size, storage_key, stored_at)
         VALUES (@group_id, @id, @chunk_index, @sender, @hash, @size, @storage_key, @stored_at)
         ON CONFLICT (group_id, id, chunk_index, sender) DO UPDATE SET
           hash = excluded.hash, size = excluded.size, storage_key = excluded.storage_key,
           stored_at = excluded.stored_at
         WHERE escrow_chunks.hash <> excluded.hash`,
      )
      .run(row);
    return result.changes > 0;
  }

  /** The chunk `chunkIndex` of message `id` of `sender` in `group`, if it was placed here. */
  chunk(group: string, id: string, chunkIndex: number, sender: string): HeldChunkRow | undefined {
    return this.db
      .prepare('SELECT * FROM escrow_chunks WHERE group_id = ? AND id = ? AND chunk_index = ? AND sender = ?')
      .get(group, id, chunkIndex, sender) as HeldChunkRow | undefined;
  }

  /** Every chunk of message `id` of `sender` in `group` held here, by chunk index. */
  chunksOf(group: string, id: string, sender: string): HeldChunkRow[] {
    return this.db
      .prepare(
        'SELECT * FROM escrow_chunks WHERE group_id = ? AND id = ? AND sender = ? ORDER BY chunk_index',
      )
      .all(group, id, sender) as HeldChunkRow[];
  }
}
