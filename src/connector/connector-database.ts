/**
 * The connector's own durable state (SQLite, WAL, synchronous=FULL): what it sent (envelope header,
 * storage key, recipients — what it re-checks a fetch against), what it received (exactly once per
 * message id), consumer cursors per partition, consumer-group positions for applications, failures,
 * and the client-request sequence counter (PBFT de-duplicates by (client, seq), so a seq must never
 * be reused, even across restarts).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

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

export class ConnectorDatabase {
  readonly db: Database.Database;

  constructor(directory: string) {
    mkdirSync(directory, { recursive: true });
    this.db = new Database(join(directory, 'connector.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS sent (
        id TEXT PRIMARY KEY, topic TEXT NOT NULL, partition INTEGER NOT NULL, group_id TEXT NOT NULL,
        header BLOB NOT NULL, storage_key TEXT NOT NULL, size INTEGER NOT NULL, recipients TEXT NOT NULL,
        offset INTEGER, height INTEGER, proof BLOB, created_at INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'ACCEPTED', delivered_to TEXT NOT NULL DEFAULT '[]'
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS received (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
        partition INTEGER NOT NULL, group_id TEXT NOT NULL, offset INTEGER NOT NULL, sender TEXT NOT NULL,
        size INTEGER NOT NULL, sha256 TEXT NOT NULL, storage_key TEXT NOT NULL, content_type TEXT NOT NULL,
        message_key BLOB, proof BLOB NOT NULL, received_at INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS received_topic ON received (topic, sequence);
      CREATE TABLE IF NOT EXISTS cursors (group_id TEXT PRIMARY KEY, next_offset INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS consumer_groups (
        consumer_group TEXT NOT NULL, topic TEXT NOT NULL, sequence INTEGER NOT NULL,
        PRIMARY KEY (consumer_group, topic)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS failures (
        id TEXT PRIMARY KEY, group_id TEXT NOT NULL, offset INTEGER NOT NULL, attempts INTEGER NOT NULL,
        code TEXT NOT NULL, reason TEXT NOT NULL, failed_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
  }

  /** Reserves `count` client-request sequence numbers durably; returns the first. */
  reserveSequence(count: number): number {
    return this.db.transaction(() => {
      const row = this.db
        .prepare<[], { value: number }>("SELECT value FROM counters WHERE name = 'clientSeq'")
        .get();
      // Start from the clock so that a connector whose database was lost still never reuses a seq.
      const first = Math.max(row?.value ?? 0, Date.now() * 1000);
      this.db
        .prepare(
          "INSERT INTO counters (name, value) VALUES ('clientSeq', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .run(first + count);
      return first;
    })();
  }

  insertSent(row: Omit<SentRow, 'offset' | 'height' | 'proof' | 'state' | 'delivered_to'>): void {
    this.db
      .prepare(
        `INSERT INTO sent (id, topic, partition, group_id, header, storage_key, size, recipients, created_at)
         VALUES (@id, @topic, @partition, @group_id, @header, @storage_key, @size, @recipients, @created_at)
         ON CONFLICT (id) DO NOTHING`,
      )
      .run(row);
  }

  markSent(id: string, offset: number, height: number, proof: Uint8Array): void {
    this.db
      .prepare('UPDATE sent SET offset = ?, height = ?, proof = ? WHERE id = ?')
      .run(offset, height, proof, id);
  }

  /** Sent messages whose lifecycle is still open (accepted, not completed or expired). */
  openSent(limit: number): SentRow[] {
    return this.db
      .prepare<[number], SentRow>(
        "SELECT * FROM sent WHERE offset IS NOT NULL AND state = 'ACCEPTED' ORDER BY created_at LIMIT ?",
      )
      .all(limit);
  }

  updateLifecycle(id: string, state: string, deliveredTo: readonly string[]): void {
    this.db
      .prepare('UPDATE sent SET state = ?, delivered_to = ? WHERE id = ?')
      .run(state, JSON.stringify(deliveredTo), id);
  }

  sent(id: string): SentRow | undefined {
    return this.db.prepare<[string], SentRow>('SELECT * FROM sent WHERE id = ?').get(id);
  }

  cursor(groupId: string): number {
    return (
      this.db
        .prepare<[string], { next_offset: number }>('SELECT next_offset FROM cursors WHERE group_id = ?')
        .get(groupId)?.next_offset ?? 0
    );
  }

  setCursor(groupId: string, nextOffset: number): void {
    this.db
      .prepare(
        'INSERT INTO cursors (group_id, next_offset) VALUES (?, ?) ON CONFLICT (group_id) DO UPDATE SET next_offset = excluded.next_offset',
      )
      .run(groupId, nextOffset);
  }

  received(id: string): ReceivedRow | undefined {
    return this.db.prepare<[string], ReceivedRow>('SELECT * FROM received WHERE id = ?').get(id);
  }

  insertReceived(row: Omit<ReceivedRow, 'sequence' | 'confirmed'>): ReceivedRow {
    this.db
      .prepare(
        `INSERT INTO received (id, topic, partition, group_id, offset, sender, size, sha256, storage_key, content_type, message_key, proof, received_at)
         VALUES (@id, @topic, @partition, @group_id, @offset, @sender, @size, @sha256, @storage_key, @content_type, @message_key, @proof, @received_at)
         ON CONFLICT (id) DO NOTHING`,
      )
      .run(row);
    return this.received(row.id) as ReceivedRow;
  }

  markConfirmed(id: string): void {
    this.db.prepare('UPDATE received SET confirmed = 1 WHERE id = ?').run(id);
  }

  receivedAfter(after: number, limit: number, topic?: string): ReceivedRow[] {
    return topic === undefined
      ? this.db
          .prepare<[number, number], ReceivedRow>(
            'SELECT * FROM received WHERE sequence > ? ORDER BY sequence LIMIT ?',
          )
          .all(after, limit)
      : this.db
          .prepare<[string, number, number], ReceivedRow>(
            'SELECT * FROM received WHERE topic = ? AND sequence > ? ORDER BY sequence LIMIT ?',
          )
          .all(topic, after, limit);
  }

  lastSequence(): number {
    return (
      this.db.prepare<[], { value: number | null }>('SELECT MAX(sequence) AS value FROM received').get()
        ?.value ?? 0
    );
  }

  consumerSequence(group: string, topic: string): number | undefined {
    return this.db
      .prepare<[string, string], { sequence: number }>(
        'SELECT sequence FROM consumer_groups WHERE consumer_group = ? AND topic = ?',
      )
      .get(group, topic)?.sequence;
  }

  setConsumerSequence(group: string, topic: string, sequence: number): void {
    this.db
      .prepare(
        'INSERT INTO consumer_groups (consumer_group, topic, sequence) VALUES (?, ?, ?) ON CONFLICT (consumer_group, topic) DO UPDATE SET sequence = excluded.sequence',
      )
      .run(group, topic, sequence);
  }

  /** Records a failed attempt; returns how many attempts failed so far. */
  recordFailure(id: string, groupId: string, offset: number, code: string, reason: string): number {
    this.db
      .prepare(
        `INSERT INTO failures (id, group_id, offset, attempts, code, reason, failed_at) VALUES (?, ?, ?, 1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET attempts = attempts + 1, code = excluded.code, reason = excluded.reason, failed_at = excluded.failed_at`,
      )
      .run(id, groupId, offset, code, reason, Date.now());
    return (
      this.db.prepare<[string], { attempts: number }>('SELECT attempts FROM failures WHERE id = ?').get(id)
        ?.attempts ?? 1
    );
  }

  failures(): { id: string; code: string; reason: string; attempts: number }[] {
    return this.db
      .prepare<[], { id: string; code: string; reason: string; attempts: number }>(
        'SELECT id, code, reason, attempts FROM failures',
      )
      .all();
  }

  close(): void {
    this.db.close();
  }
}
