/**
 * The connector's own durable state (SQLite, WAL, synchronous=FULL): what it sent (envelope header,
 * storage key, recipients — what it re-checks a fetch against), what it received (exactly once per
 * message), consumer cursors per partition, consumer-group positions for applications, failures,
 * and the client-request sequence counter (PBFT de-duplicates by (client, seq), so a seq must never
 * be reused, even across restarts).
 *
 * A message id is unique only within its partition (that is what the SDT contract enforces), so a
 * received message — and a failure to receive one — is keyed by its partition's group id
 * ("topic/partition") AND its id: keyed by id alone, one sender's message would shadow another's.
 * A sent message is keyed by (topic, id): the id is the producer's idempotency key within a topic,
 * and a retry goes to the partition the first attempt chose, whatever a sticky partitioner says now.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { makeDirectoryDurableSync } from '../runtime/durable-directory.js';
import { partSetOfStorageKey } from './parts.js';
import { headerColumns, proofColumns } from './packed-columns.js';
import { joinProof, splitProof } from './proof-parts.js';

/** What a listing of sent messages shows of a row, with its place in the listing (`position`). */
export type SentListingRow = Pick<
  SentRow,
  'id' | 'topic' | 'partition' | 'offset' | 'recipients' | 'delivered_to' | 'state' | 'created_at' | 'size'
> & { readonly position: number };

export interface SentRow {
  id: string;
  topic: string;
  partition: number;
  group_id: string;
  header: Uint8Array;
  storage_key: string;
  size: number;
  recipients: string;
  offset: number | null;
  height: number | null;
  proof: Uint8Array | null;
  created_at: number;
  state: string;
  delivered_to: string;
}

export interface ReceivedRow {
  sequence: number;
  id: string;
  topic: string;
  partition: number;
  group_id: string;
  offset: number;
  sender: string;
  size: number;
  sha256: string;
  storage_key: string;
  content_type: string;
  message_key: Uint8Array | null;
  proof: Uint8Array;
  received_at: number;
  confirmed: number;
}

/**
 * A part of a large value (./parts.ts), kept aside until the message that binds its part set
 * arrives: it is never listed to applications itself.
 */
export interface ReceivedPartRow {
  group_id: string;
  id: string;
  sender: string;
  part_set: string;
  part_index: number;
  offset: number;
  size: number;
  storage_key: string;
  content_root: Uint8Array;
  proof: Uint8Array;
  received_at: number;
  confirmed: number;
}

/** What following a sent message's lifecycle needs of its row. */
export type OpenSentRow = Pick<
  SentRow,
  'topic' | 'id' | 'partition' | 'group_id' | 'created_at' | 'delivered_to'
>;
/** Where a scan of open sent messages stopped. */
export type OpenSentPosition = Pick<SentRow, 'created_at' | 'topic' | 'id'>;

/**
 * Whether a payload is referred to. Each check goes through an index on the key's first 16 hex digits
 * (64 bits of a SHA-256: a quarter of the key's size in the index) and compares the full key on the
 * row: without them every deletion scanned every row, and retention fell behind the traffic as
 * history grew. Exported for the test that reads its query plan.
 */
export const payloadReferencedQuery = `SELECT 1 AS one
  WHERE EXISTS (SELECT 1 FROM sent WHERE substr(storage_key, 1, 16) = substr(@key, 1, 16) AND storage_key = @key
      AND payload_deleted = 0)
    OR EXISTS (SELECT 1 FROM received WHERE substr(storage_key, 1, 16) = substr(@key, 1, 16) AND storage_key = @key)
    OR EXISTS (SELECT 1 FROM received_parts WHERE substr(storage_key, 1, 16) = substr(@key, 1, 16)
      AND storage_key = @key)`;

/** Rows as stored: a proof may be kept in two parts (see `keepProof`), header and proof packed. */
type StoredSentRow = SentRow & { proof_shared: number | null; header_packed: number; proof_packed: number };
type StoredReceivedRow = ReceivedRow & { proof_shared: number | null; proof_packed: number };

const sentColumns =
  'id, topic, partition, group_id, header, storage_key, size, recipients, offset, height, proof, created_at, state, delivered_to';
const receivedColumns =
  'sequence, id, topic, partition, group_id, offset, sender, size, sha256, storage_key, content_type, message_key, proof, received_at, confirmed';

export interface FailureRow {
  id: string;
  group_id: string;
  code: string;
  reason: string;
  attempts: number;
}

/**
 * Layout versions (`PRAGMA user_version`): 0 is a new file, or one written before versions were
 * kept (layout 1: sent, received and failures keyed by message id alone); 2 keys them as above; 3
 * adds `packed_payloads` (small payloads kept in this file: a connector of layout 2 would not find
 * them, so it must refuse the file); 4 adds `received_parts` (parts of large values, whose message
 * a connector of layout 3 could not read); 5 keeps `sent` as a rowid table (a row of about 2 KB
 * fits its page there, where a WITHOUT ROWID table spilled each one to an overflow page of its own)
 * and stores the part of acceptance proofs a publish's messages share once, in `proof_parts`
 * (`proof_shared` names it; see proof-parts.ts), which a connector of layout 4 would not join, and
 * records when the sender may delete a closed message's payload (`retain_until`, `payload_deleted`);
 * 6 keeps envelope headers and proofs packed (packed-columns.ts; `header_packed` and `proof_packed`
 * say how), which a connector of layout 5 would hand out as stored.
 */
const schemaVersion = 6;
/** The layout that keys messages by (topic, id); anything older with a `received` table is layout 1. */
const keyedByTopicLayout = 2;

const tables = `
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS sent (
    id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, group_id TEXT NOT NULL,
    header BLOB NOT NULL, storage_key TEXT NOT NULL, size INTEGER NOT NULL, recipients TEXT NOT NULL,
    offset INTEGER, height INTEGER, proof BLOB, created_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'ACCEPTED', delivered_to TEXT NOT NULL DEFAULT '[]',
    proof_shared INTEGER, retain_until INTEGER, payload_deleted INTEGER NOT NULL DEFAULT 0,
    header_packed INTEGER NOT NULL DEFAULT 0, proof_packed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, id)
  );
  CREATE INDEX IF NOT EXISTS sent_retained ON sent (retain_until) WHERE retain_until IS NOT NULL AND payload_deleted = 0;
  CREATE TABLE IF NOT EXISTS proof_parts (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, bytes BLOB NOT NULL);
  CREATE TABLE IF NOT EXISTS received (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, group_id TEXT NOT NULL, offset INTEGER NOT NULL, sender TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, storage_key TEXT NOT NULL, content_type TEXT NOT NULL,
    message_key BLOB, proof BLOB NOT NULL, received_at INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0,
    proof_shared INTEGER, proof_packed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (group_id, id)
  );
  CREATE INDEX IF NOT EXISTS received_topic ON received (topic, sequence);
  CREATE INDEX IF NOT EXISTS sent_open ON sent (created_at) WHERE offset IS NOT NULL AND state = 'ACCEPTED';
  CREATE INDEX IF NOT EXISTS received_id ON received (id);
  CREATE INDEX IF NOT EXISTS sent_payload ON sent (substr(storage_key, 1, 16)) WHERE payload_deleted = 0;
  CREATE INDEX IF NOT EXISTS received_payload ON received (substr(storage_key, 1, 16));
  CREATE TABLE IF NOT EXISTS cursors (group_id TEXT PRIMARY KEY, next_offset INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS consumer_groups (
    consumer_group TEXT NOT NULL, topic TEXT NOT NULL, sequence INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS failures (
    id TEXT NOT NULL, group_id TEXT NOT NULL, offset INTEGER NOT NULL, attempts INTEGER NOT NULL,
    code TEXT NOT NULL, reason TEXT NOT NULL, failed_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, id)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS packed_payloads (key TEXT PRIMARY KEY, bytes BLOB NOT NULL);
  CREATE TABLE IF NOT EXISTS received_parts (
    group_id TEXT NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL, part_set TEXT NOT NULL,
    part_index INTEGER NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL, storage_key TEXT NOT NULL,
    content_root BLOB NOT NULL, proof BLOB NOT NULL, received_at INTEGER NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS received_parts_set ON received_parts (group_id, sender, part_set, part_index);
  CREATE INDEX IF NOT EXISTS received_parts_payload ON received_parts (substr(storage_key, 1, 16));
`;

export class ConnectorDatabase {
  readonly db: Database.Database;
  /**
   * Prepared once, run many times: preparing a statement on every call showed as a large share of a
   * busy connector's CPU. One per SQL text of this file (all constant): a few dozen.
   */
  private readonly statements = new Map<string, Database.Statement>();

  /**
   * Opens (or creates) `<directory>/connector.sqlite`. A file of layout 1 is migrated in place, in
   * one transaction, before anything else reads it: a crash midway leaves it at layout 1, and the
   * next open migrates it again.
   */
  constructor(directory: string) {
    makeDirectoryDurableSync(directory);
    this.db = new Database(join(directory, 'connector.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    try {
      this.db
        .transaction(() => {
          const version = this.db.pragma('user_version', { simple: true }) as number;
          if (version > schemaVersion) {
            throw new LedgerbusError(
              ErrorCode.StorageCorrupt,
              `connector.sqlite has layout ${version}, newer than this connector understands (${schemaVersion}): run a newer connector`,
            );
          }
          if (version < keyedByTopicLayout && this.tableExists('received')) this.migrateFromLayout1();
          else if (version < 5 && this.tableExists('sent')) this.migrateToLayout5();
          if (version < 6 && this.tableExists('sent')) this.migrateToLayout6();
          this.db.exec(tables);
          this.db.pragma(`user_version = ${schemaVersion}`);
        })
        .immediate();
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  private statement<P extends unknown[] = unknown[], R = unknown>(sql: string): Database.Statement<P, R> {
    let prepared = this.statements.get(sql);
    if (prepared === undefined) {
      prepared = this.db.prepare(sql);
      this.statements.set(sql, prepared);
    }
    return prepared as unknown as Database.Statement<P, R>;
  }

  /** Whether a transaction is open (SQLite may end one on its own after some errors). */
  get inTransaction(): boolean {
    return this.db.inTransaction;
  }

  /**
   * Runs `work` as one transaction: its writes commit together with one fsync instead of one each
   * (a batch's markSent, a page's markConfirmed). Nested calls join the outer transaction.
   */
  transaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  private tableExists(name: string): boolean {
    return (
      this.db
        .prepare<[string], { name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .get(name) !== undefined
    );
  }

  /**
   * Layout 1 → 2: the same columns under the new keys. Every row of layout 1 fits (an id unique
   * overall is unique per partition or topic); received sequences are kept, and so is the
   * AUTOINCREMENT high-water mark, so applications' consumer cursors stay valid.
   */
  private migrateFromLayout1(): void {
    const highWater =
      this.db.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'received'").get()
        ?.seq ?? 0;
    this.db.exec(`
      DROP INDEX IF EXISTS received_topic;
      ALTER TABLE sent RENAME TO sent_layout1;
      ALTER TABLE received RENAME TO received_layout1;
      ALTER TABLE failures RENAME TO failures_layout1;
    `);
    this.db.exec(tables);
    this.db.exec(`
      INSERT INTO sent (${sentColumns}) SELECT ${sentColumns} FROM sent_layout1;
      INSERT INTO received (${receivedColumns}) SELECT ${receivedColumns} FROM received_layout1;
      INSERT INTO failures SELECT id, group_id, offset, attempts, code, reason, failed_at FROM failures_layout1;
      DROP TABLE sent_layout1;
      DROP TABLE received_layout1;
      DROP TABLE failures_layout1;
    `);
    const raised = this.db
      .prepare("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'received'")
      .run(highWater);
    if (raised.changes === 0 && highWater > 0) {
      this.db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('received', ?)").run(highWater);
    }
  }

  /**
   * Layouts 2–4 → 5: `sent` copied into its rowid form (same columns, same keys), and `received`
   * given its `proof_shared` column. Rows written before keep their proofs whole.
   */
  private migrateToLayout5(): void {
    this.db.exec(`
      DROP INDEX IF EXISTS sent_open;
      ALTER TABLE sent RENAME TO sent_layout4;
    `);
    this.db.exec(tables);
    this.db.exec(`
      INSERT INTO sent (${sentColumns}) SELECT ${sentColumns} FROM sent_layout4;
      DROP TABLE sent_layout4;
    `);
    const receivedColumnNames = (
      this.db.prepare('PRAGMA table_info(received)').all() as { name: string }[]
    ).map((column) => column.name);
    if (!receivedColumnNames.includes('proof_shared'))
      this.db.exec('ALTER TABLE received ADD COLUMN proof_shared INTEGER');
  }

  /** Layout 5 → 6: the columns that say how a header or proof is packed; rows written before are plain. */
  private migrateToLayout6(): void {
    const columns = (table: string): string[] =>
      (this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map(
        (column) => column.name,
      );
    const sent = columns('sent');
    if (!sent.includes('header_packed'))
      this.db.exec('ALTER TABLE sent ADD COLUMN header_packed INTEGER NOT NULL DEFAULT 0');
    if (!sent.includes('proof_packed'))
      this.db.exec('ALTER TABLE sent ADD COLUMN proof_packed INTEGER NOT NULL DEFAULT 0');
    if (this.tableExists('received') && !columns('received').includes('proof_packed'))
      this.db.exec('ALTER TABLE received ADD COLUMN proof_packed INTEGER NOT NULL DEFAULT 0');
  }

  /**
   * The columns to store `proof` in: its own part, and the id of the shared part (stored here once),
   * or the whole proof and null when it does not split.
   */
  private keepProof(proof: Uint8Array): {
    proof: Uint8Array;
    proof_shared: number | null;
    proof_packed: number;
  } {
    const split = splitProof(proof);
    if (split === undefined) {
      const packed = proofColumns.pack(proof);
      return { proof: packed.bytes, proof_shared: null, proof_packed: packed.packing };
    }
    this.statement('INSERT INTO proof_parts (hash, bytes) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING').run(
      split.sharedHash,
      split.shared,
    );
    const { id } = this.statement<[Uint8Array], { id: number }>(
      'SELECT id FROM proof_parts WHERE hash = ?',
    ).get(split.sharedHash) as { id: number };
    const own = proofColumns.pack(split.own);
    return { proof: own.bytes, proof_shared: id, proof_packed: own.packing };
  }

  /** A stored row with its header and proof whole again (and without the storage columns). */
  private withProof<
    R extends {
      proof: Uint8Array | null;
      proof_shared?: number | null;
      proof_packed?: number;
      header?: Uint8Array;
      header_packed?: number;
    },
  >(row: R | undefined): Omit<R, 'proof_shared' | 'proof_packed' | 'header_packed'> | undefined {
    if (row === undefined) return undefined;
    const { proof_shared: shared, proof_packed: proofPacking, header_packed: headerPacking, ...stored } = row;
    let rest: typeof stored;
    try {
      rest = {
        ...stored,
        ...(stored.proof === null ? {} : { proof: proofColumns.unpack(stored.proof, proofPacking ?? 0) }),
        ...(stored.header === undefined
          ? {}
          : { header: headerColumns.unpack(stored.header, headerPacking ?? 0) }),
      };
    } catch (error) {
      throw new LedgerbusError(
        ErrorCode.StorageCorrupt,
        'connector.sqlite: a packed header or proof is damaged',
        {
          cause: error,
        },
      );
    }
    if (shared === null || shared === undefined || rest.proof === null) return rest;
    const part = this.statement<[number], { bytes: Uint8Array }>(
      'SELECT bytes FROM proof_parts WHERE id = ?',
    ).get(shared);
    if (part === undefined) {
      throw new LedgerbusError(ErrorCode.StorageCorrupt, `connector.sqlite: proof part ${shared} is missing`);
    }
    return { ...rest, proof: joinProof(part.bytes, rest.proof) };
  }

  /** Reserves `count` client-request sequence numbers durably; returns the first. */
  reserveSequence(count: number): number {
    return this.db.transaction(() => {
      const row = this.statement<[], { value: number }>(
        "SELECT value FROM counters WHERE name = 'clientSeq'",
      ).get();
      // Start from the clock so that a connector whose database was lost still never reuses a seq.
      const first = Math.max(row?.value ?? 0, Date.now() * 1000);
      this.statement(
        "INSERT INTO counters (name, value) VALUES ('clientSeq', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      ).run(first + count);
      return first;
    })();
  }

  insertSent(row: Omit<SentRow, 'offset' | 'height' | 'proof' | 'state' | 'delivered_to'>): void {
    this.statement(
      `INSERT INTO sent (id, topic, partition, group_id, header, header_packed, storage_key, size, recipients, created_at)
         VALUES (@id, @topic, @partition, @group_id, @header, @header_packed, @storage_key, @size, @recipients, @created_at)
         ON CONFLICT (topic, id) DO NOTHING`,
    ).run({ ...row, ...packedHeaderColumns(row.header) });
  }

  /**
   * Records where the ledger accepted a sent message and its proof. Returns true only the first time
   * (the row had no offset yet): a retry of an id accepted before, or the same id twice in one batch,
   * is recorded again but is not a new acceptance (what `ledgerbus_messages_accepted_total` counts).
   */
  markSent(topic: string, id: string, offset: number, height: number, proof: Uint8Array): boolean {
    const kept = this.keepProof(proof);
    const values = [offset, height, kept.proof, kept.proof_shared, kept.proof_packed, topic, id] as const;
    const first =
      this.statement(
        'UPDATE sent SET offset = ?, height = ?, proof = ?, proof_shared = ?, proof_packed = ? WHERE topic = ? AND id = ? AND offset IS NULL',
      ).run(...values).changes > 0;
    if (!first)
      this.statement(
        'UPDATE sent SET offset = ?, height = ?, proof = ?, proof_shared = ?, proof_packed = ? WHERE topic = ? AND id = ?',
      ).run(...values);
    return first;
  }

  /**
   * Forgets a sent message the network never accepted (its publish was refused); returns whether a
   * row went. A row with an offset is never removed: recipients may still fetch its payload.
   */
  deleteUnpublished(topic: string, id: string, storageKey: string): boolean {
    return (
      this.statement(
        'DELETE FROM sent WHERE topic = ? AND id = ? AND storage_key = ? AND offset IS NULL',
      ).run(topic, id, storageKey).changes > 0
    );
  }

  /**
   * Keeps a small payload in this file, content-addressed like the payload storage (its key is its
   * sha256), so that storing it costs no file and no fsync of its own: called inside the transaction
   * that records the message, it is durable with that row.
   */
  putPacked(bytes: Uint8Array): { key: string; size: number } {
    const key = createHash('sha256').update(bytes).digest('hex');
    this.statement('INSERT INTO packed_payloads (key, bytes) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(
      key,
      bytes,
    );
    return { key, size: bytes.length };
  }

  /** A packed payload's bytes, or undefined when `key` is not packed here. */
  packed(key: string): Buffer | undefined {
    return this.statement<[string], { bytes: Buffer }>('SELECT bytes FROM packed_payloads WHERE key = ?').get(
      key,
    )?.bytes;
  }

  /** Removes a packed payload; true if it was there. */
  deletePacked(key: string): boolean {
    return this.statement('DELETE FROM packed_payloads WHERE key = ?').run(key).changes > 0;
  }

  /**
   * Sent messages whose lifecycle is still open (accepted, not completed or expired), oldest first,
   * after `after` if given (a page of a scan that must not stall behind messages that stay open).
   * Proofs are left out: who follows lifecycles does not need them.
   */
  openSent(limit: number, after?: OpenSentPosition): OpenSentRow[] {
    const columns = 'topic, id, partition, group_id, created_at, delivered_to';
    return after === undefined
      ? this.statement<[number], OpenSentRow>(
          `SELECT ${columns} FROM sent WHERE offset IS NOT NULL AND state = 'ACCEPTED' ORDER BY created_at, topic, id LIMIT ?`,
        ).all(limit)
      : this.statement<[number, string, string, number], OpenSentRow>(
          `SELECT ${columns} FROM sent WHERE offset IS NOT NULL AND state = 'ACCEPTED'
             AND (created_at, topic, id) > (?, ?, ?) ORDER BY created_at, topic, id LIMIT ?`,
        ).all(after.created_at, after.topic, after.id, limit);
  }

  /**
   * Records a sent message's state and who confirmed it; `retainUntil` (for a closed message: the
   * time from which its payload may be deleted) is kept if given.
   */
  updateLifecycle(
    topic: string,
    id: string,
    state: string,
    deliveredTo: readonly string[],
    retainUntil?: number,
  ): void {
    this.statement(
      'UPDATE sent SET state = ?, delivered_to = ?, retain_until = COALESCE(?, retain_until) WHERE topic = ? AND id = ?',
    ).run(state, JSON.stringify(deliveredTo), retainUntil ?? null, topic, id);
  }

  /** Sent messages whose payload the sender may delete by `now` and still holds, oldest first. */
  retainedPayloads(now: number, limit: number): { topic: string; id: string; storage_key: string }[] {
    return this.statement<[number, number], { topic: string; id: string; storage_key: string }>(
      `SELECT topic, id, storage_key FROM sent
         WHERE retain_until IS NOT NULL AND payload_deleted = 0 AND retain_until <= ?
         ORDER BY retain_until LIMIT ?`,
    ).all(now, limit);
  }

  /**
   * Records that a sent message's payload is deleted (with its envelope header, which only serving
   * the payload needed); its proof, state and recipients stay, for receipts and status.
   */
  markPayloadDeleted(topic: string, id: string): void {
    this.statement(
      "UPDATE sent SET payload_deleted = 1, header = x'', header_packed = 0 WHERE topic = ? AND id = ?",
    ).run(topic, id);
  }

  /**
   * Sent rows for a listing, newest first: at most `limit`, below `before` (a `position`) when given.
   * Pages follow the rowid, which grows with every row stored, so a page costs `limit` steps down the
   * table's own b-tree, where ordering by `created_at` (no index of its own) would sort every row.
   * Rows copied by the layout-5 migration got their rowids in key order: among those, topic and id.
   */
  sentListing(before: number | undefined, limit: number): SentListingRow[] {
    const columns =
      'rowid AS position, id, topic, partition, offset, recipients, delivered_to, state, created_at, size';
    return before === undefined
      ? this.statement<[number], SentListingRow>(
          `SELECT ${columns} FROM sent ORDER BY rowid DESC LIMIT ?`,
        ).all(limit)
      : this.statement<[number, number], SentListingRow>(
          `SELECT ${columns} FROM sent WHERE rowid < ? ORDER BY rowid DESC LIMIT ?`,
        ).all(before, limit);
  }

  sent(topic: string, id: string): SentRow | undefined {
    return this.withProof(
      this.statement<[string, string], StoredSentRow>('SELECT * FROM sent WHERE topic = ? AND id = ?').get(
        topic,
        id,
      ),
    );
  }

  cursor(groupId: string): number {
    return (
      this.statement<[string], { next_offset: number }>(
        'SELECT next_offset FROM cursors WHERE group_id = ?',
      ).get(groupId)?.next_offset ?? 0
    );
  }

  setCursor(groupId: string, nextOffset: number): void {
    this.statement(
      'INSERT INTO cursors (group_id, next_offset) VALUES (?, ?) ON CONFLICT (group_id) DO UPDATE SET next_offset = excluded.next_offset',
    ).run(groupId, nextOffset);
  }

  /** The message `id` received on partition `groupId` ("topic/partition"). */
  received(groupId: string, id: string): ReceivedRow | undefined {
    return this.withProof(
      this.statement<[string, string], StoredReceivedRow>(
        'SELECT * FROM received WHERE group_id = ? AND id = ?',
      ).get(groupId, id),
    );
  }

  /** Every received message with this id, on any partition (of `topic` only, if given), oldest first. */
  receivedWithId(id: string, topic?: string): ReceivedRow[] {
    const rows =
      topic === undefined
        ? this.statement<[string], StoredReceivedRow>(
            'SELECT * FROM received WHERE id = ? ORDER BY sequence',
          ).all(id)
        : this.statement<[string, string], StoredReceivedRow>(
            'SELECT * FROM received WHERE id = ? AND topic = ? ORDER BY sequence',
          ).all(id, topic);
    return rows.map((row) => this.withProof(row) as ReceivedRow);
  }

  insertReceived(row: Omit<ReceivedRow, 'sequence' | 'confirmed'>): ReceivedRow {
    return this.recordReceived(row).row;
  }

  /** insertReceived, telling whether the message is new here (false: it was received before, kept as it was). */
  recordReceived(row: Omit<ReceivedRow, 'sequence' | 'confirmed'>): { row: ReceivedRow; inserted: boolean } {
    const inserted =
      this.statement(
        `INSERT INTO received (id, topic, partition, group_id, offset, sender, size, sha256, storage_key, content_type, message_key, proof, received_at, proof_shared, proof_packed)
         VALUES (@id, @topic, @partition, @group_id, @offset, @sender, @size, @sha256, @storage_key, @content_type, @message_key, @proof, @received_at, @proof_shared, @proof_packed)
         ON CONFLICT (group_id, id) DO NOTHING`,
      ).run({ ...row, ...this.keepProof(row.proof) }).changes > 0;
    return { row: this.received(row.group_id, row.id) as ReceivedRow, inserted };
  }

  /**
   * Forgets the received message `id` of `groupId` and its parts, in one transaction, and returns
   * the storage keys its payload used (for the caller to delete those no other row refers to); or
   * 'unconfirmed', changing nothing, while its delivery is not confirmed on-chain (its sender still
   * waits for that), or undefined if there is no such message.
   */
  deleteReceived(groupId: string, id: string): { storageKeys: string[] } | 'unconfirmed' | undefined {
    return this.transaction(() => {
      const row = this.statement<
        [string, string],
        { storage_key: string; sender: string; confirmed: number }
      >('SELECT storage_key, sender, confirmed FROM received WHERE group_id = ? AND id = ?').get(groupId, id);
      if (row === undefined) return undefined;
      if (row.confirmed === 0) return 'unconfirmed';
      const set = partSetOfStorageKey(row.storage_key);
      const storageKeys =
        set === undefined
          ? [row.storage_key]
          : this.receivedPartSet(groupId, row.sender, set).map((part) => part.storage_key);
      if (set !== undefined) {
        this.statement('DELETE FROM received_parts WHERE group_id = ? AND sender = ? AND part_set = ?').run(
          groupId,
          row.sender,
          set,
        );
      }
      this.statement('DELETE FROM received WHERE group_id = ? AND id = ?').run(groupId, id);
      return { storageKeys };
    });
  }

  /**
   * Whether any message sent (and still holding its payload) or received, or a part kept, refers to
   * the payload `storageKey`: an object still referred to is never deleted.
   */
  payloadReferenced(storageKey: string): boolean {
    return (
      this.statement<[{ key: string }], { one: number }>(payloadReferencedQuery).get({ key: storageKey }) !==
      undefined
    );
  }

  markConfirmed(groupId: string, id: string): void {
    this.statement('UPDATE received SET confirmed = 1 WHERE group_id = ? AND id = ?').run(groupId, id);
    this.statement('UPDATE received_parts SET confirmed = 1 WHERE group_id = ? AND id = ?').run(groupId, id);
  }

  /** The part `id` received on partition `groupId`, kept aside for its message. */
  receivedPart(groupId: string, id: string): ReceivedPartRow | undefined {
    return this.statement<[string, string], ReceivedPartRow>(
      'SELECT * FROM received_parts WHERE group_id = ? AND id = ?',
    ).get(groupId, id);
  }

  insertReceivedPart(row: Omit<ReceivedPartRow, 'confirmed'>): void {
    this.statement(
      `INSERT INTO received_parts (group_id, id, sender, part_set, part_index, offset, size, storage_key, content_root, proof, received_at)
         VALUES (@group_id, @id, @sender, @part_set, @part_index, @offset, @size, @storage_key, @content_root, @proof, @received_at)
         ON CONFLICT (group_id, id) DO NOTHING`,
    ).run(row);
  }

  /** The parts `sender` sent on `groupId` under `partSet`, by index (a repeated index comes twice). */
  receivedPartSet(groupId: string, sender: string, partSet: string): ReceivedPartRow[] {
    return this.statement<[string, string, string], ReceivedPartRow>(
      'SELECT * FROM received_parts WHERE group_id = ? AND sender = ? AND part_set = ? ORDER BY part_index, offset',
    ).all(groupId, sender, partSet);
  }

  receivedAfter(after: number, limit: number, topic?: string): ReceivedRow[] {
    const rows =
      topic === undefined
        ? this.statement<[number, number], StoredReceivedRow>(
            'SELECT * FROM received WHERE sequence > ? ORDER BY sequence LIMIT ?',
          ).all(after, limit)
        : this.statement<[string, number, number], StoredReceivedRow>(
            'SELECT * FROM received WHERE topic = ? AND sequence > ? ORDER BY sequence LIMIT ?',
          ).all(topic, after, limit);
    return rows.map((row) => this.withProof(row) as ReceivedRow);
  }

  lastSequence(): number {
    return (
      this.statement<[], { value: number | null }>('SELECT MAX(sequence) AS value FROM received').get()
        ?.value ?? 0
    );
  }

  consumerSequence(group: string, topic: string): number | undefined {
    return this.statement<[string, string], { sequence: number }>(
      'SELECT sequence FROM consumer_groups WHERE consumer_group = ? AND topic = ?',
    ).get(group, topic)?.sequence;
  }

  setConsumerSequence(group: string, topic: string, sequence: number): void {
    this.statement(
      'INSERT INTO consumer_groups (consumer_group, topic, sequence) VALUES (?, ?, ?) ON CONFLICT (consumer_group, topic) DO UPDATE SET sequence = excluded.sequence',
    ).run(group, topic, sequence);
  }

  /**
   * Each consumer group's backlog per topic it committed a position on: the received messages of
   * the topic still held here whose sequence is past the group's. Counted through the
   * (topic, sequence) index alone, so it costs about one index entry per message behind.
   */
  consumeLag(): { group: string; topic: string; messages: number }[] {
    return this.statement<[], { group: string; topic: string; messages: number }>(
      `SELECT g.consumer_group AS "group", g.topic AS topic,
         (SELECT COUNT(*) FROM received r WHERE r.topic = g.topic AND r.sequence > g.sequence) AS messages
         FROM consumer_groups g ORDER BY g.consumer_group, g.topic`,
    ).all();
  }

  /** Records a failed attempt; returns how many attempts failed so far. */
  recordFailure(id: string, groupId: string, offset: number, code: string, reason: string): number {
    this.statement(
      `INSERT INTO failures (id, group_id, offset, attempts, code, reason, failed_at) VALUES (?, ?, ?, 1, ?, ?, ?)
         ON CONFLICT (group_id, id) DO UPDATE SET attempts = attempts + 1, code = excluded.code, reason = excluded.reason, failed_at = excluded.failed_at`,
    ).run(id, groupId, offset, code, reason, Date.now());
    return (
      this.statement<[string, string], { attempts: number }>(
        'SELECT attempts FROM failures WHERE group_id = ? AND id = ?',
      ).get(groupId, id)?.attempts ?? 1
    );
  }

  failures(): FailureRow[] {
    return this.statement<[], FailureRow>(
      'SELECT id, group_id, code, reason, attempts FROM failures ORDER BY failed_at',
    ).all();
  }

  /** Whether the file is open (false once the connector stopped). */
  get open(): boolean {
    return this.db.open;
  }

  close(): void {
    this.db.close();
  }
}

function packedHeaderColumns(header: Uint8Array): { header: Uint8Array; header_packed: number } {
  const packed = headerColumns.pack(header);
  return { header: packed.bytes, header_packed: packed.packing };
}
