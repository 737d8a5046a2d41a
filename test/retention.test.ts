// Retention on a devnet of real processes: a recipient keeps what it received until its application
// deletes it (`DELETE /v1/received/...`, the SDK, the CLI), and a deletion takes the payload with
// it — a small one from the connector's database, a large one from its payload folder — while the
// ledger keeps the message's proofs. A sender deletes its copy of a payload once the message is
// closed and its topic's retention has passed, and still answers its status and receipt.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledgerbus } from '../src/client/index.js';
import { ProcessNetwork } from './support/process-network.js';
import { startCli, waitFor } from './support/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-retention-'));
const net = new ProcessNetwork(join(dir, 'net'), 26640);

beforeAll(async () => {
  await net.startAll();
}, 120_000);

afterAll(async () => {
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function send(id: string, bytes: number, topic = 'demo'): Promise<void> {
  const response = await net.api('org1', `/v1/topics/${topic}/messages?to=org2&id=${id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: randomBytes(bytes),
  });
  if (!response.ok) throw new Error(`send ${id}: ${response.status} ${await response.text()}`);
  await response.body?.cancel();
}

/** Waits until org1 sees org2's delivery of `id` confirmed on-chain. */
async function completed(id: string, topic = 'demo'): Promise<void> {
  await waitFor(
    `${id} to be COMPLETED`,
    async () => {
      const response = await net.api('org1', `/v1/topics/${topic}/messages/${id}/status`);
      const status = (await response.json()) as { state?: string };
      return status.state === 'COMPLETED' ? true : undefined;
    },
    60_000,
  );
}

/** What `organization`'s connector keeps of payloads: rows of its database, files of its payload folder. */
function payloadsAt(organization: string): { packed: number; files: number } {
  const db = new Database(join(net.directory, organization, 'connector-data', 'connector.sqlite'), {
    readonly: true,
  });
  try {
    const { n } = db.prepare('SELECT COUNT(*) AS n FROM packed_payloads').get() as { n: number };
    const files = readdirSync(join(net.directory, organization, 'payloads'), {
      recursive: true,
      withFileTypes: true,
    }).filter((entry) => entry.isFile()).length;
    return { packed: n, files };
  } finally {
    db.close();
  }
}

const org2Payloads = (): { packed: number; files: number } => payloadsAt('org2');

async function deleteReceived(id: string): Promise<Response> {
  return net.api('org2', `/v1/received/demo/0/${id}`, { method: 'DELETE' });
}

describe("a recipient's retention", () => {
  it('deletes a received message and its payload: a small one from the database, a large one from the payload folder', async () => {
    await send('small-1', 300);
    await send('large-1', 64 * 1024);
    await completed('small-1');
    await completed('large-1');
    const before = org2Payloads();
    expect(before.packed).toBeGreaterThanOrEqual(1);
    expect(before.files).toBeGreaterThanOrEqual(1);

    const deleted = await deleteReceived('small-1');
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({ id: 'small-1', topic: 'demo', partition: 0 });
    expect(org2Payloads()).toEqual({ packed: before.packed - 1, files: before.files });
    expect((await net.api('org2', '/v1/received/demo/0/small-1')).status).toBe(404);
    const listed = (await (await net.api('org2', '/v1/received?topic=demo&after=0&limit=100')).json()) as {
      messages: { id: string }[];
    };
    expect(listed.messages.map((message) => message.id)).toEqual(['large-1']);

    // The SDK's way, for the large one.
    const { url, token } = net.connector('org2');
    const sdk = new Ledgerbus({ connector: url, token });
    expect(await sdk.deleteReceived({ topic: 'demo', partition: 0, id: 'large-1' })).toEqual({
      id: 'large-1',
      topic: 'demo',
      partition: 0,
    });
    expect(org2Payloads()).toEqual({ packed: before.packed - 1, files: before.files - 1 });

    // Gone is gone: a second deletion is MESSAGE_NOT_FOUND, and changes nothing.
    const again = await deleteReceived('small-1');
    expect(again.status).toBe(404);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('MESSAGE_NOT_FOUND');

    // The ledger still proves the delivery: the sender's receipt shows org2.
    const receipt = (await (await net.api('org1', '/v1/topics/demo/messages/small-1/receipt')).json()) as {
      deliveredTo: string[];
    };
    expect(receipt.deliveredTo).toEqual(['org2']);
  }, 120_000);

  it('deletes from the command line, saying what it deleted', async () => {
    await send('cli-1', 200);
    await completed('cli-1');
    const cli = startCli('delete-received', [
      'delete-received',
      'cli-1',
      '--network',
      join(net.directory, 'network.json'),
      '--as',
      'org2',
      '--partition',
      '0',
      '--json',
    ]);
    await cli.exited;
    expect(cli.child.exitCode, cli.stderrTail).toBe(0);
    expect(cli.messages).toEqual([{ id: 'cli-1', topic: 'demo', partition: 0 }]);
    expect((await net.api('org2', '/v1/received/demo/0/cli-1')).status).toBe(404);
  }, 120_000);

  it("deletes the sender's copy of a payload once the message is completed and the topic's retention has passed", async () => {
    const created = await net.api('org1', '/v1/admin', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        kind: 'createTopic',
        name: 'short-lived',
        partitions: 1,
        producers: ['org1'],
        consumers: ['org2'],
        policy: { payloadRetentionMs: 1000 },
      }),
    });
    expect(created.status, await created.text()).toBe(200);
    await waitFor(
      'org1 to know the new topic',
      async () => ((await net.api('org1', '/v1/topics/short-lived')).ok ? true : undefined),
      60_000,
    );
    const before = payloadsAt('org1');
    await send('kept-small', 300, 'short-lived');
    await send('kept-large', 64 * 1024, 'short-lived');
    const held = payloadsAt('org1');
    expect(held).toEqual({ packed: before.packed + 1, files: before.files + 1 });
    await completed('kept-small', 'short-lived');
    await completed('kept-large', 'short-lived');
    // The watcher sees them close within a second, retention is 1 s, the sweep runs every 5 s.
    await waitFor(
      "org1's copies to be deleted",
      () => {
        const now = payloadsAt('org1');
        return now.packed === before.packed && now.files === before.files ? true : undefined;
      },
      30_000,
    );
    // Meanwhile the demo topic keeps its payloads for a day: its messages sent above are still there.
    expect(payloadsAt('org1').packed).toBeGreaterThan(0);
    // Status and receipt still answer; the recipient still has its copy.
    const status = (await (
      await net.api('org1', '/v1/topics/short-lived/messages/kept-small/status')
    ).json()) as {
      state: string;
    };
    expect(status.state).toBe('COMPLETED');
    const receipt = (await (
      await net.api('org1', '/v1/topics/short-lived/messages/kept-large/receipt')
    ).json()) as { deliveredTo: string[] };
    expect(receipt.deliveredTo).toEqual(['org2']);
    expect((await net.api('org2', '/v1/received/short-lived/0/kept-large/payload')).status).toBe(200);
  }, 120_000);
});
