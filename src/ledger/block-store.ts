/**
 * Durable, append-only store of one partition's blocks in SQLite (DESIGN.md §6). Each block is kept
 * as its canonical encoding (deflated when that saves space: stored-block.ts) plus indexed columns; blocks are immutable once written (triggers refuse
 * UPDATE and DELETE). Every append commits with journal_mode=WAL and synchronous=FULL, so SQLite has
 * fsynced the block before append returns: a caller may acknowledge or vote right after.
 */
import Database from 'better-sqlite3';
import { bytesEqual, hashBytes, sha256 } from '../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { blockHash, decodeBlock, encodeBlock } from './block.js';
import type { Block, BlockHeader } from './block.js';
import { encodedBlockFromStored, storedBlockBytes } from './stored-block.js';

/** Most blocks one range() call returns, whatever limit the caller asks for. */
export const rangeBlocksMax = 1_000;

const SCHEMA_VERSION = '1';
const ZERO_HASH = new Uint8Array(hashBytes);

export interface BlockStoreHead {
  readonly height: number;
  readonly hash: Uint8Array;
  readonly header: BlockHeader;
}

interface BlockRow {
  height: number;
  hash: Uint8Array;
  bytes: Uint8Array;
}

export class BlockStore {
  readonly partitionId: string;
  private readonly db: Database.Database;
  private current: BlockStoreHead | undefined;
  private readonly statements: {
    readonly selectBlock: Database.Statement<[number], BlockRow>;
    readonly selectHead: Database.Statement<[], BlockRow>;
    readonly selectRange: Database.Statement<[number, number, number], BlockRow>;
    readonly countBlocks: Database.Statement<[], { count: number; lowest: number | null }>;
    readonly insertBlock: Database.Statement<[number, Uint8Array, Uint8Array, number, number, Uint8Array]>;
    readonly insertTransaction: Database.Statement<[Uint8Array, number, number]>;
    readonly selectTransaction: Database.Statement<[Uint8Array], { height: number; position: number }>;
  };
  private readonly appendInTransaction: (blocks: readonly Block[]) => BlockStoreHead | undefined;

  private constructor(db: Database.Database, partitionId: string) {
    this.db = db;
    this.partitionId = partitionId;
    this.statements = {
      selectBlock: db.prepare('SELECT height, hash, bytes FROM blocks WHERE height = ?'),
      selectHead: db.prepare('SELECT height, hash, bytes FROM blocks ORDER BY height DESC LIMIT 1'),
      selectRange: db.prepare(
        'SELECT height, hash, bytes FROM blocks WHERE height >= ? AND height <= ? ORDER BY height LIMIT ?',
      ),
      countBlocks: db.prepare('SELECT COUNT(*) AS count, MIN(height) AS lowest FROM blocks'),
      insertBlock: db.prepare(
        'INSERT INTO blocks (height, hash, previous_hash, config_epoch, timestamp, bytes) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertTransaction: db.prepare('INSERT INTO transactions (tx_hash, height, position) VALUES (?, ?, ?)'),
      selectTransaction: db.prepare(
        'SELECT height, position FROM transactions WHERE tx_hash = ? ORDER BY height, position LIMIT 1',
      ),
    };
    this.appendInTransaction = db.transaction((blocks: readonly Block[]) => {
      let head = this.current;
      for (const block of blocks) head = this.appendOne(block, head);
      return head;
    });
    this.current = this.loadHead();
  }

  /**
   * Opens (creating if needed) the store at `path` for `options.partitionId`. Checks on open that the
   * stored blocks are heights 1..head without gaps, that the head decodes, is stored under its own
   * hash and links to the block before it: throws StorageCorrupt otherwise, BadConfig if the file
   * belongs to another partition.
   */
  static open(path: string, options: { partitionId: string }): BlockStore {
    if (options.partitionId.length === 0) {
      throw new LedgerbusError(ErrorCode.BadConfig, 'options.partitionId must not be empty');
    }
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      // FULL: the WAL is fsynced at every commit, so a committed block survives a crash or power loss.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.transaction(() => createSchema(db, options.partitionId))();
      return new BlockStore(db, options.partitionId);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /**
   * Uses an already open database (the caller owns it and its pragmas), so that the caller can write
   * blocks and its own tables in ONE transaction: `appendMany` nests as a savepoint inside the
   * caller's `db.transaction`. The caller must call `reloadHead()` if its outer transaction rolls back.
   */
  static attach(db: Database.Database, options: { partitionId: string }): BlockStore {
    if (options.partitionId.length === 0) {
      throw new LedgerbusError(ErrorCode.BadConfig, 'options.partitionId must not be empty');
    }
    db.transaction(() => createSchema(db, options.partitionId))();
    return new BlockStore(db, options.partitionId);
  }

  /** Re-reads the head from the database (after an enclosing transaction rolled back). */
  reloadHead(): void {
    this.current = this.loadHead();
  }

  /**
   * Appends the next block durably: returns only after the SQLite transaction committed with
   * synchronous=FULL (the WAL fsynced), so the caller may acknowledge the block right after. Accepts
   * a block already stored at its height again as a no-op when its header and contents are the same
   * (its certificate may hold another valid set of signatures; the stored one is kept). Throws
   * ConflictingBlock for different contents at a stored height (the store is unchanged), BrokenChain
   * for a gap or a previousHash that is not the head's hash, WrongGroup for another partition's
   * block, SchemaMismatch/Oversize for a malformed block. Does NOT verify certificates or Merkle roots:
   * the caller verifies with verifyBlock and the group membership first.
   */
  append(block: Block): void {
    this.appendMany([block]);
  }

  /** As append, for consecutive blocks in ascending height, in one transaction: all or nothing. */
  appendMany(blocks: readonly Block[]): void {
    if (blocks.length === 0) return;
    const head = this.appendInTransaction(blocks);
    // Only after COMMIT returned: a failed transaction must leave the cached head untouched.
    this.current = head;
  }

  /** The block at `height`, or undefined if none is stored. Throws StorageCorrupt if unreadable. */
  get(height: number): Block | undefined {
    if (!Number.isSafeInteger(height) || height < 1) return undefined;
    const row = this.statements.selectBlock.get(height);
    return row === undefined ? undefined : decodeRow(row);
  }

  /** The highest stored block's height, hash and header, or undefined for an empty store. */
  head(): BlockStoreHead | undefined {
    return this.current;
  }

  /**
   * Stored blocks with fromHeight <= height <= toHeightInclusive, ascending, at most
   * min(limit, rangeBlocksMax). Heights must be safe non-negative integers (SchemaMismatch otherwise),
   * since they may come from a peer's request.
   */
  range(fromHeight: number, toHeightInclusive: number, limit: number = rangeBlocksMax): Block[] {
    for (const [name, value] of [
      ['fromHeight', fromHeight],
      ['toHeightInclusive', toHeightInclusive],
      ['limit', limit],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new LedgerbusError(
          ErrorCode.SchemaMismatch,
          `${name} must be a non-negative integer, got ${value}`,
        );
      }
    }
    const rows = this.statements.selectRange.all(
      fromHeight,
      toHeightInclusive,
      Math.min(limit, rangeBlocksMax),
    );
    return rows.map(decodeRow);
  }

  /**
   * Where a transaction was first stored: the lowest height and, within that block, its index, found
   * by sha256(transaction). Undefined if no stored block holds it.
   */
  findTransaction(txHash: Uint8Array): { height: number; index: number } | undefined {
    const row = this.statements.selectTransaction.get(txHash);
    return row === undefined ? undefined : { height: row.height, index: row.position };
  }

  /** Closes the database. Everything appended is already durable; the store is unusable afterwards. */
  close(): void {
    this.db.close();
  }

  private appendOne(block: Block, head: BlockStoreHead | undefined): BlockStoreHead | undefined {
    const header = block.header;
    if (header.partitionId !== this.partitionId) {
      throw new LedgerbusError(
        ErrorCode.WrongGroup,
        `block of ${header.partitionId} cannot be stored in the store of ${this.partitionId}`,
      );
    }
    const hash = blockHash(header);
    const headHeight = head?.height ?? 0;
    if (header.height >= 1 && header.height <= headHeight) {
      this.checkSameAsStored(block, hash);
      return head;
    }
    if (header.height !== headHeight + 1) {
      throw new LedgerbusError(
        ErrorCode.BrokenChain,
        `block ${header.height} cannot be appended: the store's head is at height ${headHeight}`,
        // A gap can close once the missing blocks arrive (state transfer), so trying later may help.
        { retriable: header.height > headHeight + 1 },
      );
    }
    const expectedPrevious = head?.hash ?? ZERO_HASH;
    if (!bytesEqual(header.previousHash, expectedPrevious)) {
      throw new LedgerbusError(
        ErrorCode.BrokenChain,
        `block ${header.height} does not link to the stored block ${headHeight}`,
      );
    }
    this.statements.insertBlock.run(
      header.height,
      hash,
      header.previousHash,
      header.configEpoch,
      header.timestamp,
      storedBlockBytes(encodeBlock(block)),
    );
    block.transactions.forEach((transaction, index) => {
      this.statements.insertTransaction.run(sha256(transaction), header.height, index);
    });
    return { height: header.height, hash, header };
  }

  private checkSameAsStored(block: Block, hash: Uint8Array): void {
    const height = block.header.height;
    const row = this.statements.selectBlock.get(height);
    if (row === undefined) {
      throw new LedgerbusError(ErrorCode.StorageCorrupt, `block ${height} is below the head but missing`);
    }
    if (bytesEqual(row.hash, hash)) {
      // Same header; the contents are the same when the encodings agree once the stored certificate is
      // put in place of the new one (two certificates may legitimately hold different signer sets).
      const stored = decodeRow(row);
      const candidate = encodeBlock({ ...block, certificate: stored.certificate });
      if (bytesEqual(candidate, encodedBlockFromStored(row.bytes))) return;
    }
    throw new LedgerbusError(
      ErrorCode.ConflictingBlock,
      `a different block is already stored at height ${height} of ${this.partitionId}`,
    );
  }

  private loadHead(): BlockStoreHead | undefined {
    const row = this.statements.selectHead.get();
    const { count, lowest } = this.statements.countBlocks.get() ?? { count: 0, lowest: null };
    if (row === undefined) return undefined;
    if (lowest !== 1 || count !== row.height) {
      throw corrupt(
        `holds ${count} blocks from height ${lowest} to ${row.height}; expected 1..${row.height}`,
      );
    }
    const block = decodeRow(row);
    const hash = blockHash(block.header);
    if (block.header.height !== row.height || !bytesEqual(hash, row.hash)) {
      throw corrupt(`head block ${row.height} does not match its stored height and hash`);
    }
    if (row.height > 1) {
      const previous = this.statements.selectBlock.get(row.height - 1);
      if (previous === undefined || !bytesEqual(previous.hash, block.header.previousHash)) {
        throw corrupt(`head block ${row.height} does not link to block ${row.height - 1}`);
      }
    } else if (!bytesEqual(block.header.previousHash, ZERO_HASH)) {
      throw corrupt('block 1 has a non-zero previousHash');
    }
    if (block.header.partitionId !== this.partitionId) {
      throw corrupt(`head block belongs to ${block.header.partitionId}`);
    }
    return { height: row.height, hash, header: block.header };
  }
}

function createSchema(db: Database.Database, partitionId: string): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (
      key TEXT PRIMARY KEY,
      value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS blocks (
      height INTEGER PRIMARY KEY CHECK (height >= 1),
      hash BLOB NOT NULL,
      previous_hash BLOB NOT NULL,
      config_epoch INTEGER NOT NULL,
      timestamp INTEGER NOT NULL,
      bytes BLOB NOT NULL
    );
    CREATE TABLE IF NOT EXISTS transactions (
      tx_hash BLOB NOT NULL,
      height INTEGER NOT NULL REFERENCES blocks (height),
      position INTEGER NOT NULL,
      PRIMARY KEY (tx_hash, height, position)
    ) WITHOUT ROWID;
    CREATE TRIGGER IF NOT EXISTS blocks_immutable_update BEFORE UPDATE ON blocks
      BEGIN SELECT RAISE(ABORT, 'blocks are immutable'); END;
    CREATE TRIGGER IF NOT EXISTS blocks_immutable_delete BEFORE DELETE ON blocks
      BEGIN SELECT RAISE(ABORT, 'blocks are immutable'); END;
  `);
  const read = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
  const write = db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?)');
  const version = read.get('schemaVersion');
  if (version === undefined) {
    write.run('schemaVersion', SCHEMA_VERSION);
    write.run('partitionId', partitionId);
    return;
  }
  if (version.value !== SCHEMA_VERSION) {
    throw corrupt(`has schema version ${version.value}; this build reads version ${SCHEMA_VERSION}`);
  }
  const stored = read.get('partitionId')?.value;
  if (stored !== partitionId) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `options.partitionId is ${JSON.stringify(partitionId)} but the store holds ${JSON.stringify(stored)}`,
    );
  }
}

function decodeRow(row: BlockRow): Block {
  let block: Block;
  try {
    block = decodeBlock(encodedBlockFromStored(row.bytes));
  } catch (error) {
    throw corrupt(`block ${row.height} does not decode`, error);
  }
  if (block.header.height !== row.height) {
    throw corrupt(`row ${row.height} holds block ${block.header.height}`);
  }
  return block;
}

function corrupt(what: string, cause?: unknown): LedgerbusError {
  return new LedgerbusError(ErrorCode.StorageCorrupt, `block store ${what}`, { cause });
}
