// Faults on the real process tree: every node and connector is its own child process (as `ledgerbus
// dev` would start them), and the test SIGKILLs and restarts them while data moves. A 512 MiB transfer
// with bounded memory; a replica killed and restarted mid-publishing; the sender's and the
// recipient's nodes killed in the middle of a payload transfer. Delivery must stay exactly once.
import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { globalLedgerLag } from './chaos/checker.js';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  ProcessNetwork,
  RssSampler,
  cliEntry,
  hashBody,
  mb,
  sleep,
  tsxLoader,
  waitFor,
  writeDeterministicFile,
} from './support/process-network.js';

const MiB = 1024 * 1024;
const rssLimitBytes = 256 * 1000 * 1000;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-faults-'));
const net = new ProcessNetwork(join(dir, 'net'), 21400);

interface Received {
  sequence: number;
  id: string;
  sender: string;
  size: number;
  sha256: string;
}
interface SendResult {
  id: string;
  partition: number;
  offset: number;
  height: number;
}

/** On failure, prints the tail of these processes' logs (all of them when none are named). */
function showLogsOnFailure(...names: string[]): void {
  onTestFailed(() => {
    console.log(net.logTails(names.length === 0 ? net.names : names, 40));
  });
}

async function json<T>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Everything `organization` has received on topic demo, in sequence order. */
async function receivedAll(organization: string): Promise<Received[]> {
  const all: Received[] = [];
  for (let after = 0; ;) {
    const page = await json<{ messages: Received[] }>(
      await net.api(organization, `/v1/received?topic=demo&after=${after}&limit=1000`),
      `list received of ${organization}`,
    );
    if (page.messages.length === 0) return all;
    all.push(...page.messages);
    after = page.messages.at(-1)!.sequence;
  }
}

/** `organization`'s copy of message `id` of demo/0 (the devnet's demo topic has one partition). */
async function receivedOne(organization: string, id: string): Promise<Received | undefined> {
  const response = await net.api(organization, `/v1/received/demo/0/${encodeURIComponent(id)}`);
  if (response.status === 404) {
    await response.body?.cancel();
    return undefined;
  }
  return json<Received>(response, `received ${id}`);
}

/** Streams a file to org1's connector for org2 under `id` (the REST streamed send). */
async function sendFile(path: string, id: string): Promise<SendResult> {
  const response = await net.api('org1', `/v1/topics/demo/messages?to=org2&id=${encodeURIComponent(id)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(statSync(path).size) },
    body: Readable.toWeb(createReadStream(path)) as ReadableStream,
    duplex: 'half',
    // Without these, undici's fetch tees the body for a possible redirect and keeps every chunk.
    redirect: 'error',
    window: null,
  } as RequestInit);
  return json<SendResult>(response, `send ${id}`);
}

async function payloadDigest(organization: string, id: string): Promise<{ sha256: string; size: number }> {
  const response = await net.api(organization, `/v1/received/demo/0/${encodeURIComponent(id)}/payload`);
  if (!response.ok) throw new Error(`payload of ${id}: HTTP ${response.status} ${await response.text()}`);
  return hashBody(response);
}

/** The highest stored block of node<N>'s replica of demo/0 and its hash, read through a read-only handle. */
function partitionHead(nodeIndex: number, height?: number): { height: number; hash: string } | undefined {
  const db = new Database(net.partitionDatabase(nodeIndex), { readonly: true, fileMustExist: true });
  try {
    const row = (
      height === undefined
        ? db.prepare('SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1').get()
        : db.prepare('SELECT height, hash FROM blocks WHERE height = ?').get(height)
    ) as { height: number; hash: Buffer } | undefined;
    return row === undefined ? undefined : { height: row.height, hash: row.hash.toString('hex') };
  } finally {
    db.close();
  }
}

/** Resolves once `name`'s log mentions `needle` (checked every 20 ms). */
function logMentions(name: string, needle: string, timeoutMs: number): Promise<true> {
  return waitFor(
    `${name}'s log to mention ${needle}`,
    () => (net.log(name).includes(needle) || undefined) as true | undefined,
    timeoutMs,
    20,
  );
}

beforeAll(async () => {
  try {
    await net.startAll();
  } catch (error) {
    console.log(net.logTails(net.names, 40));
    throw error;
  }
}, 120_000);

afterAll(async () => {
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('faults on a devnet of real processes', () => {
  it('moves 512 MiB org1 → org2 with equal sha256, every process under 256 MB RSS', async () => {
    showLogsOnFailure('connector-org1', 'node1', 'node2', 'connector-org2');
    const size = 512 * MiB;
    const file = join(dir, 'big.bin');
    const generatedAt = Date.now();
    const expected = writeDeterministicFile(file, size, 'faults/512MiB');
    console.log(`generated ${mb(size)} MiB in ${Date.now() - generatedAt} ms`);

    const pids = new Map<string, number>(net.names.map((name) => [name, net.pid(name)]));
    const sampler = new RssSampler(() => pids, 100);
    const startedAt = Date.now();
    let ackedAt = NaN;
    let deliveredAt = NaN;
    let id = '';
    // The CLI streams the file to org1's connector (its memory counts too: it is part of the transfer).
    const cli = spawn(
      process.execPath,
      [
        '--import',
        tsxLoader,
        cliEntry,
        'send',
        '--network',
        join(net.directory, 'network.json'),
        '--as',
        'org1',
        '--topic',
        'demo',
        '--to',
        'org2',
        '--file',
        file,
        '--json',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    pids.set('cli-send', cli.pid!);
    let stdout = '';
    let stderr = '';
    cli.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    cli.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((done) => cli.once('exit', (code) => done(code)));
    let peaks: Map<string, number> | undefined;
    try {
      const status = await exited;
      pids.delete('cli-send');
      expect(status, `ledgerbus send failed:\n${stderr}`).toBe(0);
      ackedAt = Date.now();
      id = (JSON.parse(stdout) as SendResult).id;
      await waitFor('org2 to receive the 512 MiB message', () => receivedOne('org2', id), 200_000, 250);
      deliveredAt = Date.now();
      expect(await payloadDigest('org2', id)).toEqual({ sha256: expected, size });
    } finally {
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
      peaks = sampler.stop();
      const seconds = (deliveredAt - startedAt) / 1000;
      console.log(
        `512 MiB org1 → org2: ${(size / 1e6 / seconds).toFixed(1)} MB/s = ${(size / MiB / seconds).toFixed(1)} MiB/s ` +
          `end to end (${seconds.toFixed(1)} s: CLI send+encrypt+store+commit ${((ackedAt - startedAt) / 1000).toFixed(1)} s, ` +
          `fetch+verify+decrypt+store ${((deliveredAt - ackedAt) / 1000).toFixed(1)} s)`,
      );
      console.log(
        `peak RSS (MB, ${sampler.samples} samples every 100 ms): ` +
          [...peaks].map(([name, bytes]) => `${name} ${(bytes / 1e6).toFixed(0)}`).join(', '),
      );
    }
    expect(await receivedOne('org2', id)).toMatchObject({ id, sender: 'org1', size, sha256: expected });
    if (peaks === undefined) throw new Error('no RSS figures');
    expect([...peaks.keys()].sort()).toEqual([...net.names, 'cli-send'].sort());
    const over = [...peaks]
      .filter(([, bytes]) => bytes >= rssLimitBytes)
      .map(([name, bytes]) => `${name}: ${(bytes / 1e6).toFixed(0)} MB`);
    expect(over, 'processes whose peak RSS reached 256 MB').toEqual([]);
    rmSync(file, { force: true });
  }, 240_000);

  it('delivers every acknowledged message exactly once while a replica is SIGKILLed and restarted', async () => {
    showLogsOnFailure('node3', 'node1', 'connector-org1', 'connector-org2');
    const total = 60;
    const acked: string[] = [];
    const refused: string[] = [];
    for (let index = 0; index < total; index++) {
      if (index === 20) await net.kill('node3', 'SIGKILL');
      if (index === 40) net.start('node3');
      const id = `replica-kill-${index}`;
      try {
        const response = await net.api('org1', `/v1/topics/demo/messages?to=org2&id=${id}`, {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream' },
          body: Buffer.from(`message ${index} of ${total}`),
        });
        const result = await json<SendResult>(response, `send ${id}`);
        if (result.id === id) acked.push(id);
        else refused.push(`${id}: acknowledged as ${result.id}`);
      } catch (error) {
        refused.push(`${id}: ${String(error)}`);
      }
    }
    console.log(`node3 killed at message 20, restarted at 40: ${acked.length}/${total} acknowledged`);
    if (refused.length > 0) console.log(`not acknowledged:\n${refused.join('\n')}`);
    expect(acked.length).toBeGreaterThan(0);

    const mine = (messages: Received[]): Received[] =>
      messages.filter((m) => m.id.startsWith('replica-kill-'));
    await waitFor(
      'org2 to receive every acknowledged message',
      async () => {
        const have = new Set(mine(await receivedAll('org2')).map((m) => m.id));
        return acked.every((id) => have.has(id)) || undefined;
      },
      60_000,
    );
    await sleep(1_000); // a duplicate, if any, would arrive now
    const delivered = mine(await receivedAll('org2'));
    const counts = new Map<string, number>();
    for (const message of delivered) counts.set(message.id, (counts.get(message.id) ?? 0) + 1);
    expect([...counts].filter(([, count]) => count > 1)).toEqual([]);
    expect(delivered.length).toBe(acked.length);
    expect(new Set(delivered.map((m) => m.id))).toEqual(new Set(acked));

    // node3 catches up: its ledger reaches node1's head, with the same block there.
    const heads = await waitFor(
      "node3's ledger to reach node1's head",
      () => {
        const reference = partitionHead(1);
        const replica = reference === undefined ? undefined : partitionHead(3, reference.height);
        return reference !== undefined && replica !== undefined ? { reference, replica } : undefined;
      },
      60_000,
      500,
    );
    expect(heads.replica.hash).toBe(heads.reference.hash);
    expect(net.running('node3')).toBe(true);
    console.log(`node3 recovered to height ${heads.reference.height} (node1's head)`);
  }, 180_000);

  it("keeps the global ledger equal to the union of the partition ledgers when the topic's Raft leader is SIGKILLed", async () => {
    showLogsOnFailure('node1', 'node2', 'node3', 'node4');
    const topic = 'ledger-kill';
    await json(
      await net.api('org1', '/v1/admin', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          kind: 'createTopic',
          name: topic,
          partitions: 2,
          producers: ['org1'],
          consumers: ['org2'],
        }),
      }),
      'create topic',
    );
    const leaderOf = async (organization: string): Promise<string | undefined> => {
      const response = await net.api(organization, `/v1/topics/${topic}`);
      if (!response.ok) return void (await response.body?.cancel());
      const described = (await response.json()) as { raft: { leader: string } };
      return described.raft.leader === '' ? undefined : described.raft.leader;
    };
    const leader = await waitFor('a leader of the topic group', () => leaderOf('org1'), 60_000);

    const acked: string[] = [];
    const producing = (async () => {
      for (let index = 0; index < 80; index++) {
        const id = `ledger-kill-${index}`;
        try {
          const response = await net.api(
            'org1',
            `/v1/topics/${topic}/messages?to=org2&id=${id}&key=${encodeURIComponent(Buffer.from(`k${index}`).toString('base64'))}`,
            {
              method: 'POST',
              headers: { 'content-type': 'application/octet-stream' },
              body: Buffer.from(`message ${index}`),
            },
          );
          await json<SendResult>(response, `send ${id}`);
          acked.push(id);
        } catch {
          // The leader may be org1's own node: its producer stops with it, and what was acked counts.
          break;
        }
      }
    })();
    await waitFor('acknowledged messages', () => (acked.length >= 20 ? true : undefined), 30_000);
    await net.kill(leader, 'SIGKILL');
    await producing;
    const survivor = ['org1', 'org2', 'org3', 'org4'].find(
      (organization) => `node${organization.slice(3)}` !== leader,
    )!;
    const newLeader = await waitFor(
      'a new leader',
      async () => {
        const current = await leaderOf(survivor);
        return current !== undefined && current !== leader ? current : undefined;
      },
      60_000,
    );
    net.start(leader);
    console.log(
      `topic leader ${leader} SIGKILLed; ${newLeader} leads; ${acked.length} messages acknowledged`,
    );

    // Every node's global ledger (read from its files) must equal each partition's ledger.
    const check = (): string | undefined =>
      globalLedgerLag([1, 2, 3, 4], (index, group) => net.partitionDatabase(index, group), topic, [
        `${topic}/0`,
        `${topic}/1`,
      ]);
    let last: string | undefined;
    await waitFor(
      'every global ledger to equal the partition ledgers',
      () => {
        last = check();
        return last === undefined ? true : undefined;
      },
      90_000,
      500,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; last: ${last}`);
    });
  }, 300_000);

  for (const victim of ['node1', 'node2'] as const) {
    it(`delivers a 64 MiB payload exactly once when ${victim} is SIGKILLed mid-transfer`, async () => {
      showLogsOnFailure('connector-org1', 'node1', 'node2', 'connector-org2');
      const size = 64 * MiB;
      const file = join(dir, `${victim}.bin`);
      const expected = writeDeterministicFile(file, size, `faults/${victim}`);
      const id = `kill-${victim}-mid-transfer`;
      const ack = await sendFile(file, id);
      expect(ack.id).toBe(id);
      const ackedAt = Date.now();
      // node1 (the sender's node) logs when it starts serving org1's ciphertext for org2.
      await logMentions('node1', `"id":"${id}"`, 30_000);
      await sleep(150);
      const atKill = await receivedOne('org2', id);
      await net.kill(victim, 'SIGKILL');
      const killedAt = Date.now();
      console.log(
        `${victim} SIGKILLed ${killedAt - ackedAt} ms after the ack; org2 had ${atKill === undefined ? 'not yet' : 'already'} stored the payload`,
      );
      expect(atKill, 'the kill came after the transfer was complete').toBeUndefined();
      await sleep(1_500);
      net.start(victim);

      const received = await waitFor(`org2 to receive ${id}`, () => receivedOne('org2', id), 120_000, 250);
      const retries = net
        .log('connector-org2')
        .split('\n')
        .filter((line) => line.includes(id) && line.includes('payload fetch failed'));
      console.log(
        `${id} delivered ${Date.now() - killedAt} ms after the kill; org2's connector logged ` +
          `${retries.length} failed fetch attempt(s)${retries.length > 0 ? `, first: ${retries[0]}` : ''}`,
      );
      expect(received).toMatchObject({ id, sender: 'org1', size, sha256: expected });
      expect(await payloadDigest('org2', id)).toEqual({ sha256: expected, size });
      await sleep(1_000);
      expect((await receivedAll('org2')).filter((message) => message.id === id)).toHaveLength(1);
      if (victim === 'node2') await net.waitHealthy('org2');
      rmSync(file, { force: true });
    }, 180_000);
  }
});
