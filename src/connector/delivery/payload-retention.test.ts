// The sender's payload retention on a real connector database and payload folder, with a clock the
// test moves: nothing goes before a closed message's retention is over, then its payload goes —
// packed or in a file — unless another message still refers to the same content.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../runtime/logger.js';
import { ConnectorDatabase } from '../connector-database.js';
import { Lifecycle } from '../lifecycle.js';
import { openStorage } from '../storage/index.js';
import { PackedStorage } from '../storage/packed.js';
import type { PayloadStorage } from '../storage/types.js';
import { PayloadRetention } from './payload-retention.js';

let directory: string;
let database: ConnectorDatabase;
let storage: PayloadStorage;
let now = 0;
let retention: PayloadRetention;

beforeEach(async () => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-retention-'));
  database = new ConnectorDatabase(join(directory, 'data'));
  storage = new PackedStorage(
    await openStorage({ kind: 'filesystem', directory: join(directory, 'payloads') }),
    database,
  );
  retention = new PayloadRetention({
    database,
    storage,
    logger: createLogger({ name: 'test', level: 'silent' }),
    lifecycle: new Lifecycle(),
    now: () => now,
  });
});

afterEach(async () => {
  database.close();
  await storage.close();
  rmSync(directory, { recursive: true, force: true });
});

/** A sent, published message whose payload is `key`. */
function sent(id: string, key: string): void {
  database.insertSent({
    id,
    topic: 'demo',
    partition: 0,
    group_id: 'demo/0',
    header: new Uint8Array(400).fill(1),
    storage_key: key,
    size: 10,
    recipients: '["org2"]',
    created_at: 0,
  });
  database.markSent('demo', id, 0, 1, new Uint8Array([1, 2, 3]));
}

async function file(bytes: number): Promise<string> {
  return (await storage.put(Readable.from([Buffer.alloc(bytes, 7)]))).key;
}

const exists = async (key: string): Promise<boolean> => (await storage.stat(key)) !== undefined;

describe("the sender's payload retention", () => {
  it('deletes nothing before a closed message is past its retention, then its payload and header', async () => {
    const packed = database.putPacked(new Uint8Array([9, 9, 9])).key;
    const large = await file(10_000);
    sent('m1', packed);
    sent('m2', large);
    sent('open', await file(20_000));
    database.updateLifecycle('demo', 'm1', 'COMPLETED', ['org2'], 1_000);
    database.updateLifecycle('demo', 'm2', 'EXPIRED', [], 2_000);
    now = 999;
    expect(await retention.sweep()).toBe(0);
    expect([await exists(packed), await exists(large)]).toEqual([true, true]);
    now = 1_000;
    expect(await retention.sweep()).toBe(1);
    expect([await exists(packed), await exists(large)]).toEqual([false, true]);
    now = 5_000;
    expect(await retention.sweep()).toBe(1);
    expect(await exists(large)).toBe(false);
    expect(await retention.sweep()).toBe(0);
    // The rows stay for status and receipts; the header only serving the payload needed is gone.
    expect(database.sent('demo', 'm1')).toMatchObject({ state: 'COMPLETED', payload_deleted: 1 });
    expect(database.sent('demo', 'm1')?.header).toHaveLength(0);
    expect([...(database.sent('demo', 'm1')?.proof ?? [])]).toEqual([1, 2, 3]);
    expect(database.sent('demo', 'open')?.header).toHaveLength(400);
  });

  it('keeps content another message still refers to: a sent one still open, or a received one', async () => {
    const shared = await file(5_000);
    sent('closed', shared);
    sent('still-open', shared);
    database.updateLifecycle('demo', 'closed', 'COMPLETED', ['org2'], 10);
    now = 100;
    expect(await retention.sweep()).toBe(1);
    expect(await exists(shared)).toBe(true);
    database.updateLifecycle('demo', 'still-open', 'COMPLETED', ['org2'], 10);
    database.insertReceived({
      id: 'r1',
      topic: 'demo',
      partition: 0,
      group_id: 'demo/0',
      offset: 0,
      sender: 'org3',
      size: 5_000,
      sha256: 'a'.repeat(64),
      storage_key: shared,
      content_type: 'application/octet-stream',
      message_key: null,
      proof: new Uint8Array([1]),
      received_at: 0,
    });
    expect(await retention.sweep()).toBe(1);
    expect(await exists(shared)).toBe(true);
  });
});
