// The connector's metrics on their own: what each family exposes and when (series at zero for the
// topics the organization uses, lag and sizes read at scrape time), the database answers the
// counters rely on to count each message once, the cached payload-storage size, and the exposition
// linted by promtool. The counts of a real network's traffic are in metrics-routes.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { receivedRow } from './testing/received-row.js';
import { ConnectorDatabase } from './connector-database.js';
import { CachedSize, ConnectorMetrics, fileBytes } from './connector-metrics.js';
import {
  counterValue,
  parseExposition,
  promtoolCheck,
  promtoolRequired,
  sampleValue,
} from '../testing/exposition.js';

const directories: string[] = [];
const databases: ConnectorDatabase[] = [];
afterEach(() => {
  for (const database of databases.splice(0)) database.close();
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function database(): ConnectorDatabase {
  const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-metrics-'));
  directories.push(directory);
  const opened = new ConnectorDatabase(directory);
  databases.push(opened);
  return opened;
}

async function scrape(metrics: ConnectorMetrics): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition((await metrics.exposition()).text);
}

describe('ConnectorMetrics', () => {
  it('counts by topic and reason, and shows the topics the organization uses at zero before any message', async () => {
    const metrics = new ConnectorMetrics({
      topics: () => ({ produced: ['demo', 'invoices'], consumed: ['demo'] }),
    });
    let samples = await scrape(metrics);
    for (const name of ['accepted', 'delivered', 'completed', 'expired'])
      for (const topic of ['demo', 'invoices'])
        expect(sampleValue(samples, `ledgerbus_messages_${name}_total`, { topic }), `${name} ${topic}`).toBe(
          0,
        );
    expect(sampleValue(samples, 'ledgerbus_messages_received_total', { topic: 'demo' })).toBe(0);
    expect(sampleValue(samples, 'ledgerbus_messages_received_total', { topic: 'invoices' })).toBeUndefined();
    expect(samples.filter((sample) => sample.name === 'ledgerbus_messages_rejected_total')).toEqual([]);

    for (let index = 0; index < 3; index++) metrics.messageAccepted('demo');
    metrics.messageAccepted('invoices');
    metrics.messageRejected('demo', 'MESSAGE_ID_CONFLICT');
    metrics.messageRejected('demo', 'MESSAGE_ID_CONFLICT');
    metrics.messageRejected('demo', 'NOT_PRODUCER');
    metrics.messageDelivered('demo');
    metrics.messageCompleted('demo');
    metrics.messageExpired('invoices');
    metrics.messageReceived('demo');
    metrics.payloadBytesOut(100);
    metrics.payloadBytesOut(0);
    metrics.payloadBytesIn(42);
    metrics.observePublish(0.02);
    metrics.observePayloadFetch(3);
    samples = await scrape(metrics);
    expect(sampleValue(samples, 'ledgerbus_messages_accepted_total', { topic: 'demo' })).toBe(3);
    expect(sampleValue(samples, 'ledgerbus_messages_accepted_total', { topic: 'invoices' })).toBe(1);
    expect(
      sampleValue(samples, 'ledgerbus_messages_rejected_total', {
        topic: 'demo',
        reason: 'MESSAGE_ID_CONFLICT',
      }),
    ).toBe(2);
    expect(
      sampleValue(samples, 'ledgerbus_messages_rejected_total', { topic: 'demo', reason: 'NOT_PRODUCER' }),
    ).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_messages_delivered_total', { topic: 'demo' })).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_messages_completed_total', { topic: 'demo' })).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_messages_expired_total', { topic: 'invoices' })).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_messages_received_total', { topic: 'demo' })).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_payload_bytes_out_total')).toBe(100);
    expect(sampleValue(samples, 'ledgerbus_payload_bytes_in_total')).toBe(42);
    expect(sampleValue(samples, 'ledgerbus_publish_duration_seconds_count')).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_publish_duration_seconds_bucket', { le: '0.025' })).toBe(1);
    expect(sampleValue(samples, 'ledgerbus_publish_duration_seconds_bucket', { le: '0.01' })).toBe(0);
    expect(sampleValue(samples, 'ledgerbus_payload_fetch_duration_seconds_sum')).toBe(3);
    // The process's own metrics come along, under the same prefix.
    expect(sampleValue(samples, 'ledgerbus_process_cpu_seconds_total')).toBeGreaterThan(0);
    // Nothing but ledgerbus_ names.
    expect(samples.filter((sample) => !sample.name.startsWith('ledgerbus_'))).toEqual([]);
  });

  it('keeps each connector’s counts apart: one registry per connector, never the global one', async () => {
    const first = new ConnectorMetrics();
    const second = new ConnectorMetrics();
    first.messageAccepted('demo');
    expect(counterValue(await scrape(first), 'ledgerbus_messages_accepted_total', { topic: 'demo' })).toBe(1);
    expect(counterValue(await scrape(second), 'ledgerbus_messages_accepted_total', { topic: 'demo' })).toBe(
      0,
    );
    const { register } = await import('prom-client');
    expect(await register.getMetricsAsJSON()).toEqual([]);
  });

  it('reads consumer lag and storage sizes at each scrape, leaving out what is gone or unknown', async () => {
    let lag = [
      { group: 'billing', topic: 'demo', messages: 4 },
      { group: 'audit', topic: 'demo', messages: 0 },
    ];
    let sizes: Record<string, number> = { database: 4096, payloads: 10 };
    const metrics = new ConnectorMetrics({ consumeLag: () => lag, storageBytes: async () => sizes });
    let samples = await scrape(metrics);
    expect(sampleValue(samples, 'ledgerbus_consume_lag_messages', { group: 'billing', topic: 'demo' })).toBe(
      4,
    );
    expect(sampleValue(samples, 'ledgerbus_consume_lag_messages', { group: 'audit', topic: 'demo' })).toBe(0);
    expect(sampleValue(samples, 'ledgerbus_storage_bytes', { component: 'database' })).toBe(4096);
    expect(sampleValue(samples, 'ledgerbus_storage_bytes', { component: 'payloads' })).toBe(10);
    lag = [{ group: 'billing', topic: 'demo', messages: 1 }];
    sizes = { database: 8192 };
    samples = await scrape(metrics);
    expect(sampleValue(samples, 'ledgerbus_consume_lag_messages', { group: 'billing', topic: 'demo' })).toBe(
      1,
    );
    expect(
      sampleValue(samples, 'ledgerbus_consume_lag_messages', { group: 'audit', topic: 'demo' }),
    ).toBeUndefined();
    expect(sampleValue(samples, 'ledgerbus_storage_bytes', { component: 'database' })).toBe(8192);
    expect(sampleValue(samples, 'ledgerbus_storage_bytes', { component: 'payloads' })).toBeUndefined();
  });

  it('passes promtool check metrics with every family populated, odd label values included', async (context) => {
    const metrics = new ConnectorMetrics({
      topics: () => ({ produced: ['demo'], consumed: ['demo'] }),
      consumeLag: () => [{ group: 'a "quoted" \\ group\nwith a newline', topic: 'demo', messages: 2 }],
      storageBytes: async () => ({ database: 1, payloads: 2 }),
    });
    metrics.messageAccepted('demo');
    metrics.messageRejected('demo', 'MESSAGE_ID_CONFLICT');
    metrics.payloadBytesIn(1);
    metrics.payloadBytesOut(1);
    metrics.observePublish(0.1);
    metrics.observePayloadFetch(0.1);
    const { text } = await metrics.exposition();
    expect(
      sampleValue(parseExposition(text), 'ledgerbus_consume_lag_messages', {
        group: 'a "quoted" \\ group\nwith a newline',
        topic: 'demo',
      }),
    ).toBe(2);
    const check = promtoolCheck(text);
    if (check === undefined) {
      if (promtoolRequired()) throw new Error('promtool is not installed, and CI=true requires it');
      context.skip();
      return;
    }
    expect(check).toEqual({ status: 0, output: '' });
  });
});

describe('what the counters rely on in the connector database', () => {
  const proof = new Uint8Array([1]);

  it('markSent says true only for the first acceptance of a sent message', () => {
    const db = database();
    db.insertSent({
      id: 'm1',
      topic: 'demo',
      partition: 0,
      group_id: 'demo/0',
      header: new Uint8Array([1, 2, 3]),
      storage_key: 'a'.repeat(64),
      size: 3,
      recipients: '["org2"]',
      created_at: 1,
    });
    expect(db.markSent('demo', 'm1', 7, 3, proof)).toBe(true);
    // A retry of the id (or the same id twice in a batch) is recorded again, but is not new.
    expect(db.markSent('demo', 'm1', 7, 3, new Uint8Array([2]))).toBe(false);
    expect(db.sent('demo', 'm1')).toMatchObject({ offset: 7, height: 3 });
    expect([...(db.sent('demo', 'm1')?.proof ?? [])]).toEqual([2]);
    expect(db.markSent('demo', 'unknown', 1, 1, proof)).toBe(false);
  });

  it('recordReceived says whether the message is new here', () => {
    const db = database();
    expect(db.recordReceived(receivedRow('r1', 'demo')).inserted).toBe(true);
    const again = db.recordReceived({ ...receivedRow('r1', 'demo'), received_at: 99 });
    expect(again.inserted).toBe(false);
    expect(again.row.received_at).toBe(1);
  });

  it('consumeLag counts, per group and topic, the messages held past the group’s committed sequence', () => {
    const db = database();
    for (let index = 0; index < 5; index++) db.insertReceived(receivedRow(`d${index}`, 'demo'));
    for (let index = 0; index < 2; index++) db.insertReceived(receivedRow(`i${index}`, 'invoices'));
    expect(db.consumeLag()).toEqual([]);
    db.setConsumerSequence('billing', 'demo', 2);
    db.setConsumerSequence('billing', 'invoices', 0);
    db.setConsumerSequence('audit', 'demo', db.lastSequence());
    expect(db.consumeLag()).toEqual([
      { group: 'audit', topic: 'demo', messages: 0 },
      { group: 'billing', topic: 'demo', messages: 3 },
      { group: 'billing', topic: 'invoices', messages: 2 },
    ]);
    // Counted through the (topic, sequence) index, not by reading the rows.
    const plan = db.db
      .prepare('EXPLAIN QUERY PLAN SELECT COUNT(*) FROM received r WHERE r.topic = ? AND r.sequence > ?')
      .all('demo', 0) as { detail: string }[];
    expect(plan.map((step) => step.detail).join('\n')).toContain('COVERING INDEX received_topic');
  });
});

describe('CachedSize', () => {
  it('reads again only once stale: after 10 s, and after 20 times what the last reading took', async () => {
    let now = 0;
    let reads = 0;
    let readMs = 0;
    const size = new CachedSize(
      async () => {
        reads++;
        now += readMs;
        return reads * 100;
      },
      () => now,
    );
    expect(await size.get()).toBe(100);
    now += 9_999;
    expect(await size.get()).toBe(100);
    now += 1;
    readMs = 1_000; // a slow walk: the next one waits 20 s
    expect(await size.get()).toBe(200);
    now += 19_999;
    expect(await size.get()).toBe(200);
    now += 1;
    expect(await size.get()).toBe(300);
    expect(reads).toBe(3);
  });

  it('shares one reading between scrapes that come together, and forgets a value it failed to read', async () => {
    let now = 0;
    let release: (value: number) => void = () => undefined;
    let fail = false;
    let reads = 0;
    const size = new CachedSize(
      () => {
        reads++;
        if (fail) return Promise.reject(new Error('gone'));
        return new Promise<number>((resolve) => (release = resolve));
      },
      () => now,
    );
    const both = Promise.all([size.get(), size.get()]);
    release(5);
    expect(await both).toEqual([5, 5]);
    expect(reads).toBe(1);
    now += 10_000;
    fail = true;
    expect(await size.get()).toBeUndefined();
  });

  it('fileBytes sums the files that exist', async () => {
    const db = database();
    const file = db.db.name;
    const total = await fileBytes([file, `${file}-wal`, `${file}-shm`, join(file, '..', 'absent')]);
    expect(total).toBeGreaterThan(0);
  });
});
