/**
 * The chunks other organizations placed here (DESIGN §7, holder side), on the connector's own
 * SQLite database. The bytes are in payload storage (content-addressed: the storage key is their
 * SHA-256); a row says which escrowed chunk they are.
 *
 * A row is keyed by the partition, the message id, the chunk index, the sender AND the chunk's hash:
 * a message id is unique within its partition only once the partition accepted it, while chunks are
 * placed before it is published, so another organization placing a chunk under the same id must not
 * shadow (or block) the real sender's; and the same sender may place one place twice (a send and its
 * concurrent retry each encrypt anew). No row is ever replaced: an auditor asks for a chunk by the
 * hash the accepted message's master table names, so a later placement cannot take its place.
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
    PRIMARY KEY (group_id, id, chunk_index, sender, hash)
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
   * chunk again changes nothing, and no row is replaced (see above). Returns true if the row is new.
   */
  recordChunk(row: HeldChunkRow): boolean {
    const result = this.db
      .prepare(
        `INSERT INTO escrow_chunks (group_id, id, chunk_index, sender, hash, size, storage_key, stored_at)
         VALUES (@group_id, @id, @chunk_index, @sender, @hash, @size, @storage_key, @stored_at)
         ON CONFLICT (group_id, id, chunk_index, sender, hash) DO NOTHING`,
      )
      .run(row);
    return result.changes > 0;
  }

  /**
   * The chunk `chunkIndex` of message `id` of `sender` in `group` with SHA-256 `hash` (lowercase
   * hex), if it was placed here; without `hash`, the latest placed at that place.
   */
  chunk(
    group: string,
    id: string,
    chunkIndex: number,
    sender: string,
    hash?: string,
  ): HeldChunkRow | undefined {
    return (
      hash === undefined
        ? this.db
            .prepare(
              'SELECT * FROM escrow_chunks WHERE group_id = ? AND id = ? AND chunk_index = ? AND sender = ? ORDER BY stored_at DESC LIMIT 1',
            )
            .get(group, id, chunkIndex, sender)
        : this.db
            .prepare(
              'SELECT * FROM escrow_chunks WHERE group_id = ? AND id = ? AND chunk_index = ? AND sender = ? AND hash = ?',
            )
            .get(group, id, chunkIndex, sender, hash)
    ) as HeldChunkRow | undefined;
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
