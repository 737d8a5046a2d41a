// The connector's database keys received messages (and failures) by partition and id, sent ones by
// topic and id; a file written by an older connector (keyed by id alone: layout 1) is migrated in
// place when it is opened, so a devnet resumed from its directory keeps everything it had.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Block } from '../ledger/block.js';
import { blockEvidence, compactMessageProofs, encodeAcceptanceProof } from '../proofs/index.js';
import type { MessageProof } from '../proofs/index.js';
import { batchChain } from '../proofs/testing/proof-chain.js';
import { receivedRow } from './testing/received-row.js';
import { ConnectorDatabase, payloadReferencedQuery } from './connector-database.js';
import { headerDictionaryV1 } from './packed-columns.js';

/** The tables exactly as connectors before layout 2 created them. */
const layout1 = `
  CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE sent (
    id TEXT PRIMARY KEY, topic TEXT NOT NULL, partition INTEGER NOT NULL, group_id TEXT NOT NULL,
    header BLOB NOT NULL, storage_key TEXT NOT NULL, size INTEGER NOT NULL, recipients TEXT NOT NULL,
    offset INTEGER, height INTEGER, proof BLOB, created_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'ACCEPTED', delivered_to TEXT NOT NULL DEFAULT '[]'
  ) WITHOUT ROWID;
  CREATE TABLE received (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, group_id TEXT NOT NULL, offset INTEGER NOT NULL, sender TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, storage_key TEXT NOT NULL, content_type TEXT NOT NULL,
    message_key BLOB, proof BLOB NOT NULL, received_at INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX received_topic ON received (topic, sequence);
  CREATE TABLE cursors (group_id TEXT PRIMARY KEY, next_offset INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE consumer_groups (
    consumer_group TEXT NOT NULL, topic TEXT NOT NULL, sequence INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic)
  ) WITHOUT ROWID;
  CREATE TABLE failures (
    id TEXT PRIMARY KEY, group_id TEXT NOT NULL, offset INTEGER NOT NULL, attempts INTEGER NOT NULL,
    code TEXT NOT NULL, reason TEXT NOT NULL, failed_at INTEGER NOT NULL
  ) WITHOUT ROWID;
`;

/** Real compact proofs of three messages of one 64-message publish. */
const [published] = batchChain(
  [64],
  Array.from({ length: 64 }, (_, index) => `b0-m${index}`),
) as [Block];
const proofs = (compactMessageProofs(blockEvidence(published, 0), [0, 1, 63]) as MessageProof[]).map(
  (proof) => encodeAcceptanceProof(proof),
);

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function directory(): string {
  const made = mkdtempSync(join(tmpdir(), 'ledgerbus-connector-db-'));
  directories.push(made);
  return made;
}

/** A layout-1 file with a message sent, three received (the newest deleted, as a high-water mark), a failure. */
function writeLayout1(path: string): void {
  const db = new Database(join(path, 'connector.sqlite'));
  db.exec(layout1);
  db.prepare(
    `INSERT INTO sent (id, topic, partition, group_id, header, storage_key, size, recipients, offset, height, proof, created_at, state, delivered_to)
     VALUES ('s1', 'demo', 0, 'demo/0', x'01', 'k1', 10, '["org2"]', 4, 7, x'02', 5, 'COMPLETED', '["org2"]')`,
  ).run();
  const insert = db.prepare(
    `INSERT INTO received (id, topic, partition, group_id, offset, sender, size, sha256, storage_key, content_type, message_key, proof, received_at, confirmed)
     VALUES (?, 'demo', 0, 'demo/0', ?, 'org3', 3, ?, ?, 'text/plain', NULL, x'03', 9, 1)`,
  );
  for (const [index, id] of ['r1', 'r2', 'r3'].entries())
    insert.run(id, index, 'b'.repeat(64), 'b'.repeat(64));
  db.prepare("DELETE FROM received WHERE id = 'r3'").run();
  db.prepare("INSERT INTO failures VALUES ('f1', 'demo/0', 8, 2, 'PAYLOAD_CORRUPT', 'bad', 11)").run();
  db.prepare("INSERT INTO cursors VALUES ('demo/0', 9)").run();
  db.prepare("INSERT INTO consumer_groups VALUES ('g', 'demo', 2)").run();
  db.prepare("INSERT INTO counters VALUES ('clientSeq', 12345)").run();
  db.close();
}

describe('connector database keys', () => {
  it('keeps one received message per partition and id, so equal ids on two topics are both stored', () => {
    const db = new ConnectorDatabase(directory());
    const first = db.insertReceived(receivedRow('dup-1', 'org1-side', { sender: 'org1' }));
    const second = db.insertReceived(receivedRow('dup-1', 'demo', { sender: 'org3' }));
    expect(second.sequence).not.toBe(first.sequence);
    expect(db.received('demo/0', 'dup-1')?.sender).toBe('org3');
    expect(db.received('org1-side/0', 'dup-1')?.sender).toBe('org1');
    expect(db.receivedWithId('dup-1').map((row) => row.topic)).toEqual(['org1-side', 'demo']);
    expect(db.receivedWithId('dup-1', 'demo')).toHaveLength(1);
    // The same message again (a redelivery) is still stored once.
    expect(db.insertReceived(receivedRow('dup-1', 'demo', { sender: 'org3' })).sequence).toBe(
      second.sequence,
    );
    db.markConfirmed('demo/0', 'dup-1');
    expect(db.received('demo/0', 'dup-1')?.confirmed).toBe(1);
    expect(db.received('org1-side/0', 'dup-1')?.confirmed).toBe(0);
    expect(db.recordFailure('x', 'demo/0', 1, 'OVERSIZE', 'big')).toBe(1);
    expect(db.recordFailure('x', 'other/0', 1, 'OVERSIZE', 'big')).toBe(1);
    expect(db.recordFailure('x', 'demo/0', 1, 'OVERSIZE', 'big')).toBe(2);
    db.close();
  });

  it("keys a sender's own messages by topic and id, and forgets only those never accepted", () => {
    const db = new ConnectorDatabase(directory());
    const row = {
      id: 'm',
      topic: 'a',
      partition: 0,
      group_id: 'a/0',
      header: new Uint8Array([1]),
      storage_key: 'k-a',
      size: 1,
      recipients: '["org2"]',
      created_at: 1,
    };
    db.insertSent(row);
    db.insertSent({ ...row, topic: 'b', group_id: 'b/1', partition: 1, storage_key: 'k-b' });
    expect(db.sent('a', 'm')?.storage_key).toBe('k-a');
    expect(db.sent('b', 'm')?.group_id).toBe('b/1');
    db.markSent('a', 'm', 3, 4, new Uint8Array([9]));
    expect(db.deleteUnpublished('a', 'm', 'k-a')).toBe(false);
    expect(db.deleteUnpublished('b', 'm', 'other-key')).toBe(false);
    expect(db.deleteUnpublished('b', 'm', 'k-b')).toBe(true);
    expect(db.sent('b', 'm')).toBeUndefined();
    expect(db.payloadReferenced('k-a')).toBe(true);
    expect(db.payloadReferenced('k-b')).toBe(false);
    db.close();
  });
});

describe('migrating a layout-1 database in place', () => {
  it('keeps every row, the sequence high-water mark, cursors and counters, and takes the new keys', () => {
    const path = directory();
    writeLayout1(path);
    const db = new ConnectorDatabase(path);
    expect(db.db.pragma('user_version', { simple: true })).toBe(6);
    expect(db.sent('demo', 's1')).toMatchObject({ group_id: 'demo/0', offset: 4, state: 'COMPLETED' });
    expect(db.received('demo/0', 'r1')).toMatchObject({ sequence: 1, sender: 'org3', confirmed: 1 });
    expect(db.received('demo/0', 'r2')?.sequence).toBe(2);
    expect(db.failures()).toEqual([
      { id: 'f1', group_id: 'demo/0', code: 'PAYLOAD_CORRUPT', reason: 'bad', attempts: 2 },
    ]);
    expect(db.cursor('demo/0')).toBe(9);
    expect(db.consumerSequence('g', 'demo')).toBe(2);
    expect(db.reserveSequence(1)).toBeGreaterThanOrEqual(12345);
    // Sequence 3 was handed out once (its row is gone): applications' cursors never see it reused.
    expect(db.insertReceived(receivedRow('r1', 'other')).sequence).toBe(4);
    expect(db.receivedWithId('r1')).toHaveLength(2);
    expect(db.receivedAfter(0, 10, 'demo').map((row) => row.id)).toEqual(['r1', 'r2']);
    db.close();
    // Opening again finds the current layout and changes nothing.
    const again = new ConnectorDatabase(path);
    expect(again.receivedAfter(0, 10).map((row) => row.sequence)).toEqual([1, 2, 4]);
    again.close();
  });

  it('migrates all or nothing: a failure midway leaves layout 1 as it was', () => {
    const path = directory();
    writeLayout1(path);
    // A layout-1 file that cannot be migrated: a leftover table in the way of the rename.
    const raw = new Database(join(path, 'connector.sqlite'));
    raw.exec('CREATE TABLE failures_layout1 (x INTEGER)');
    raw.close();
    expect(() => new ConnectorDatabase(path)).toThrow();
    const after = new Database(join(path, 'connector.sqlite'), { readonly: true });
    expect(after.pragma('user_version', { simple: true })).toBe(0);
    const tables = after
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all()
      .map((table) => table.name);
    expect(tables).toContain('received');
    expect(tables).not.toContain('received_layout1');
    expect(after.prepare('SELECT COUNT(*) AS n FROM received').get()).toEqual({ n: 2 });
    after.close();
  });

  it('takes a layout-2 file to layout 6 by adding the packed payloads and the received parts, its rows untouched', () => {
    const path = directory();
    const first = new ConnectorDatabase(path);
    first.insertSent({
      id: 's1',
      topic: 'demo',
      partition: 0,
      group_id: 'demo/0',
      header: new Uint8Array([1]),
      storage_key: 'k1',
      size: 10,
      recipients: '["org2"]',
      created_at: 5,
    });
    first.insertReceived(receivedRow('r1', 'demo'));
    first.close();
    // What a layout-2 connector left: no packed payloads, user_version 2.
    const raw = new Database(join(path, 'connector.sqlite'));
    raw.exec('DROP TABLE packed_payloads');
    raw.exec('DROP TABLE received_parts');
    raw.pragma('user_version = 2');
    raw.close();
    const db = new ConnectorDatabase(path);
    expect(db.db.pragma('user_version', { simple: true })).toBe(6);
    expect(db.sent('demo', 's1')).toMatchObject({ storage_key: 'k1', size: 10 });
    expect(db.received('demo/0', 'r1')?.sequence).toBe(1);
    const packed = db.putPacked(new Uint8Array([7, 8, 9]));
    expect(packed.size).toBe(3);
    expect([...(db.packed(packed.key) ?? [])]).toEqual([7, 8, 9]);
    expect(db.deletePacked(packed.key)).toBe(true);
    expect(db.packed(packed.key)).toBeUndefined();
    const part = {
      group_id: 'demo/0',
      id: 'p0',
      sender: 'org1',
      part_set: 'set',
      part_index: 0,
      offset: 7,
      size: 5,
      storage_key: 'k2',
      content_root: new Uint8Array(32),
      proof: new Uint8Array([1]),
      received_at: 9,
    };
    db.insertReceivedPart(part);
    expect(
      db
        .receivedPartSet('demo/0', 'org1', 'set')
        .map((row) => [row.id, row.part_index, row.storage_key, row.confirmed]),
    ).toEqual([['p0', 0, 'k2', 0]]);
    expect(db.receivedPartSet('demo/0', 'org3', 'set')).toEqual([]);
    db.close();
  });

  it('takes a layout-4 file to layout 6: sent rows copied whole, proofs written before still read back', () => {
    const path = directory();
    const raw = new Database(join(path, 'connector.sqlite'));
    raw.exec(
      layout1
        .replace('id TEXT PRIMARY KEY, topic TEXT NOT NULL', 'id TEXT NOT NULL, topic TEXT NOT NULL')
        .replace(
          "delivered_to TEXT NOT NULL DEFAULT '[]'\n  ) WITHOUT ROWID;",
          "delivered_to TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (topic, id)\n  ) WITHOUT ROWID;",
        ),
    );
    raw.exec("CREATE INDEX sent_open ON sent (created_at) WHERE offset IS NOT NULL AND state = 'ACCEPTED'");
    const proof = proofs[0]!;
    raw
      .prepare(
        `INSERT INTO sent (id, topic, partition, group_id, header, storage_key, size, recipients, offset, height, proof, created_at)
       VALUES ('s1', 'demo', 0, 'demo/0', x'01', 'k1', 10, '["org2"]', 3, 1, ?, 5)`,
      )
      .run(proof);
    raw.pragma('user_version = 4');
    raw.close();
    const db = new ConnectorDatabase(path);
    expect(db.db.pragma('user_version', { simple: true })).toBe(6);
    expect(Buffer.from(db.sent('demo', 's1')!.proof!).equals(Buffer.from(proof))).toBe(true);
    expect(db.openSent(10).map((row) => row.id)).toEqual(['s1']);
    const withoutRowid = db.db
      .prepare<[], { sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'sent'")
      .get()!.sql;
    expect(withoutRowid).not.toMatch(/WITHOUT ROWID/);
    db.close();
  });

  it("keeps the part of a publish's proofs its messages share once, and gives every proof back whole", () => {
    const db = new ConnectorDatabase(directory());
    proofs.forEach((proof, index) => {
      db.insertSent({
        id: `s${index}`,
        topic: 'demo',
        partition: 0,
        group_id: 'demo/0',
        header: new Uint8Array([1]),
        storage_key: `k${index}`,
        size: 10,
        recipients: '["org2"]',
        created_at: index,
      });
      db.markSent('demo', `s${index}`, index, 1, proof);
      db.insertReceived(receivedRow(`r${index}`, 'demo', { proof }));
    });
    expect(db.db.prepare('SELECT COUNT(*) AS n FROM proof_parts').get()).toEqual({ n: 1 });
    const stored = db.db.prepare('SELECT SUM(length(proof)) AS bytes FROM sent').get() as { bytes: number };
    const whole = proofs.reduce((sum, proof) => sum + proof.length, 0);
    expect(stored.bytes).toBeLessThan(whole / 2);
    proofs.forEach((proof, index) => {
      expect(Buffer.from(db.sent('demo', `s${index}`)!.proof!).equals(Buffer.from(proof))).toBe(true);
      expect(Buffer.from(db.received('demo/0', `r${index}`)!.proof).equals(Buffer.from(proof))).toBe(true);
    });
    expect(
      db
        .receivedAfter(0, 10)
        .map((row) => Buffer.from(row.proof).equals(Buffer.from(proofs[row.sequence - 1]!))),
    ).toEqual([true, true, true]);
    db.close();
  });

  it('keeps envelope headers and proofs packed, and hands them back byte for byte', () => {
    const db = new ConnectorDatabase(directory());
    const header = new Uint8Array(headerDictionaryV1);
    header.set(new TextEncoder().encode('soak-9'), headerDictionaryV1.indexOf('soak-7'));
    db.insertSent({
      id: 's1',
      topic: 'demo',
      partition: 0,
      group_id: 'demo/0',
      header,
      storage_key: 'k1',
      size: 10,
      recipients: '["org2"]',
      created_at: 1,
    });
    db.markSent('demo', 's1', 0, 1, proofs[0]!);
    const row = db.db
      .prepare("SELECT header, header_packed, proof_packed FROM sent WHERE id = 's1'")
      .get() as { header: Buffer; header_packed: number; proof_packed: number };
    expect([row.header_packed, row.proof_packed]).toEqual([1, 1]);
    expect(row.header.length).toBeLessThan(header.length * 0.75);
    const sent = db.sent('demo', 's1')!;
    expect(Buffer.from(sent.header).equals(Buffer.from(header))).toBe(true);
    expect(Buffer.from(sent.proof!).equals(Buffer.from(proofs[0]!))).toBe(true);
    db.db.prepare("UPDATE sent SET header = x'ffff' WHERE id = 's1'").run();
    expect(() => db.sent('demo', 's1')).toThrow(/damaged/);
    db.close();
  });

  it('takes a layout-5 file to layout 6: its plain headers and proofs read back unchanged', () => {
    const path = directory();
    const before = new ConnectorDatabase(path);
    before.close();
    const raw = new Database(join(path, 'connector.sqlite'));
    raw.exec(`ALTER TABLE sent DROP COLUMN header_packed; ALTER TABLE sent DROP COLUMN proof_packed;
      ALTER TABLE received DROP COLUMN proof_packed`);
    raw
      .prepare(
        `INSERT INTO sent (id, topic, partition, group_id, header, storage_key, size, recipients, offset, height, proof, created_at)
       VALUES ('s1', 'demo', 0, 'demo/0', ?, 'k1', 10, '["org2"]', 3, 1, ?, 5)`,
      )
      .run(headerDictionaryV1, proofs[0]!);
    raw.pragma('user_version = 5');
    raw.close();
    const db = new ConnectorDatabase(path);
    expect(db.db.pragma('user_version', { simple: true })).toBe(6);
    const sent = db.sent('demo', 's1')!;
    expect(Buffer.from(sent.header).equals(headerDictionaryV1)).toBe(true);
    expect(Buffer.from(sent.proof!).equals(Buffer.from(proofs[0]!))).toBe(true);
    db.insertReceived(receivedRow('r1', 'demo', { proof: proofs[1]! }));
    expect(Buffer.from(db.received('demo/0', 'r1')!.proof).equals(Buffer.from(proofs[1]!))).toBe(true);
    db.close();
  });

  it('looks up whether a payload is referred to by index, not by scanning every sent or received row', () => {
    const db = new ConnectorDatabase(directory());
    const key = 'ab'.repeat(32);
    db.insertSent({
      id: 's1',
      topic: 'demo',
      partition: 0,
      group_id: 'demo/0',
      header: new Uint8Array([1]),
      storage_key: key,
      size: 10,
      recipients: '["org2"]',
      created_at: 1,
    });
    expect(db.payloadReferenced(key)).toBe(true);
    expect(db.payloadReferenced('cd'.repeat(32))).toBe(false);
    const plan = (
      db.db.prepare(`EXPLAIN QUERY PLAN ${payloadReferencedQuery}`).all({ key }) as { detail: string }[]
    ).map((row) => row.detail);
    expect(plan.filter((detail) => /^SCAN (sent|received|received_parts)\b/.test(detail))).toEqual([]);
    expect(
      plan.filter((detail) => /USING INDEX (sent|received|received_parts)_payload/.test(detail)),
    ).toHaveLength(3);
    db.close();
  });

  it('deletes a received message only once its delivery is confirmed, and says which payloads it used', () => {
    const db = new ConnectorDatabase(directory());
    db.insertReceived(receivedRow('r1', 'demo', { storage_key: 'k1' }));
    expect(db.deleteReceived('demo/0', 'r1')).toBe('unconfirmed');
    expect(db.received('demo/0', 'r1')).toBeDefined();
    db.markConfirmed('demo/0', 'r1');
    expect(db.payloadReferenced('k1')).toBe(true);
    expect(db.deleteReceived('demo/0', 'r1')).toEqual({ storageKeys: ['k1'] });
    expect(db.received('demo/0', 'r1')).toBeUndefined();
    expect(db.payloadReferenced('k1')).toBe(false);
    expect(db.deleteReceived('demo/0', 'r1')).toBeUndefined();
    db.close();
  });

  it('refuses a file of a newer layout instead of guessing', () => {
    const path = directory();
    const raw = new Database(join(path, 'connector.sqlite'));
    raw.pragma('user_version = 99');
    raw.close();
    expect(() => new ConnectorDatabase(path)).toThrow(/layout 99/);
  });
});
