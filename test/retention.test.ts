// Retention on a devnet of real processes: a recipient keeps what it received until its application
// deletes it (`DELETE /v1/received/...`, the SDK, the CLI), and a deletion takes the payload with
// it — a small one from the connector's database, a large one from its payload folder — while the
// ledger keeps the message's proofs.
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

async function send(id: string, bytes: number): Promise<void> {
  const response = await net.api('org1', `/v1/topics/demo/messages?to=org2&id=${id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: randomBytes(bytes),
  });
  if (!response.ok) throw new Error(`send ${id}: ${response.status} ${await response.text()}`);
  await response.body?.cancel();
}

/** Waits until org1 sees org2's delivery of `id` confirmed on-chain. */
async function completed(id: string): Promise<void> {
  await waitFor(
    `${id} to be COMPLETED`,
    async () => {
      const response = await net.api('org1', `/v1/topics/demo/messages/${id}/status`);
      const status = (await response.json()) as { state?: string };
      return status.state === 'COMPLETED' ? true : undefined;
    },
    60_000,
  );
}

/** What org2's connector keeps of payloads: rows of its database, files of its payload folder. */
function org2Payloads(): { packed: number; files: number } {
  const db = new Database(join(net.directory, 'org2', 'connector-data', 'connector.sqlite'), {
    readonly: true,
  });
  try {
    const { n } = db.prepare('SELECT COUNT(*) AS n FROM packed_payloads').get() as { n: number };
    const files = readdirSync(join(net.directory, 'org2', 'payloads'), {
      recursive: true,
      withFileTypes: true,
    }).filter((entry) => entry.isFile()).length;
    return { packed: n, files };
  } finally {
    db.close();
  }
}

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
});
