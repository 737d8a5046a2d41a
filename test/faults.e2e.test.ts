// Faults on the real process tree: every node and connector is its own child process (as `ledgerbus
// dev` would start them), and the test SIGKILLs and restarts them while data moves. A 512 MiB transfer
// with bounded memory; a backup and then the primary killed with publishes in flight; the topic's Raft
// leader killed; the sender's and the recipient's nodes killed in the middle of a payload transfer.
// Exactly once is counted where a duplicate would show: each eachMessage call of an SDK consumer, and
// one offset per id and one id per offset in every replica's ledger.
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { checkLedgers, globalLedgerLag } from './chaos/checker.js';
import type { AckedMessage, GroupSpec } from './chaos/checker.js';
import type { TopicDescription } from '../src/connector/api-types.js';
import { SigningDomain } from '../src/crypto/index.js';
import type { GroupMembership } from '../src/ledger/block.js';
import { Ledgerbus } from '../src/client/index.js';
import { decodeBlock } from '../src/ledger/block.js';
import { encodedBlockFromStored } from '../src/ledger/stored-block.js';
import { loadGenesisRegistry } from '../src/node/config.js';
import type { GenesisRegistry } from '../src/registry/genesis.js';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  ProcessNetwork,
  RssSampler,
  hashBody,
  mb,
  writeDeterministicFile,
} from './support/process-network.js';
import { sleep, startCli, waitFor } from './support/processes.js';

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

/** The highest stored block of node<N>'s replica of demo/0 (or the one at `height`), read through a read-only handle. */
function partitionHead(
  nodeIndex: number,
  height?: number,
): { height: number; hash: string; view: number } | undefined {
  const db = new Database(net.partitionDatabase(nodeIndex), { readonly: true, fileMustExist: true });
  try {
    const row = (
      height === undefined
        ? db.prepare('SELECT height, hash, bytes FROM blocks ORDER BY height DESC LIMIT 1').get()
        : db.prepare('SELECT height, hash, bytes FROM blocks WHERE height = ?').get(height)
    ) as { height: number; hash: Buffer; bytes: Buffer } | undefined;
    if (row === undefined) return undefined;
    return {
      height: row.height,
      hash: row.hash.toString('hex'),
      view: decodeBlock(encodedBlockFromStored(row.bytes)).header.view,
    };
  } finally {
    db.close();
  }
}

const registry = (): GenesisRegistry => loadGenesisRegistry(join(net.directory, 'genesis.json'));

/** demo/0's replicas in replica order: replica v mod n is the primary of view v. */
function demoReplicas(): readonly string[] {
  const partition = registry().partition('demo/0');
  if (partition === undefined) throw new Error('genesis has no demo/0');
  return partition.replicas;
}

const sha256Hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * An application consuming `organization`'s topic demo through the SDK, as a user would: `handed`
 * counts each eachMessage call per message id (for ids starting with `prefix`), which is where a
 * duplicate delivery would show.
 */
async function applicationConsumer(
  organization: string,
  groupId: string,
  prefix: string,
): Promise<{ handed: Map<string, number>; stop: () => Promise<void> }> {
  const handed = new Map<string, number>();
  const consumer = new Ledgerbus({
    connector: net.connector(organization).url,
    token: net.connector(organization).token,
  }).consumer({
    groupId,
    maxWaitTimeInMs: 1_000,
    retry: { initialRetryTime: 100, maxRetryTime: 1_000 },
    // Counting needs ids only: a 64 MiB payload is not read into memory.
    maxBufferedValueBytes: 1024,
  });
  await consumer.subscribe({ topic: 'demo', fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (message.id.startsWith(prefix)) handed.set(message.id, (handed.get(message.id) ?? 0) + 1);
    },
  });
  return { handed, stop: () => consumer.stop() };
}

/**
 * Waits until `application` was handed every id of `ids`, then sends a marker and waits for it: the
 * marker is received after them all, so a redelivery (the group's cursor going back) is handed
 * before it. Returns how often each id of this test (the marker aside) was handed.
 */
async function handedCounts(
  application: Awaited<ReturnType<typeof applicationConsumer>>,
  ids: readonly string[],
  prefix: string,
  route: { sender: string; recipient: string } = { sender: 'org1', recipient: 'org2' },
): Promise<Map<string, number>> {
  await waitFor(
    'the application to be handed every acknowledged message',
    () => ids.every((id) => application.handed.has(id)) || undefined,
    120_000,
  );
  const marker = `${prefix}marker`;
  await json(
    await net.api(route.sender, `/v1/topics/demo/messages?to=${route.recipient}&id=${marker}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from('sent after every other message of this test'),
    }),
    `send ${marker}`,
  );
  await waitFor(
    'the application to be handed the marker',
    () => application.handed.has(marker) || undefined,
    60_000,
  );
  await application.stop();
  return new Map([...application.handed].filter(([id]) => id !== marker));
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
    const { child: cli } = startCli(
      'cli-send',
      [
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
    cli.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    cli.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
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

  // Which replica dies matters: a backup's death costs a vote, the primary's forces a view change with
  // requests of its batch in flight. Both must lose nothing and deliver each message once.
  for (const role of ['backup', 'primary'] as const) {
    it(`acknowledges all of 60 concurrent sends and hands each to the application once while the ${role} of demo/0 is SIGKILLed mid-request`, async () => {
      const total = 60;
      const prefix = `${role}-kill-`;
      // A network that has committed nothing yet is in view 0.
      const viewBefore = partitionHead(1)?.view ?? 0;
      const primary = demoReplicas()[viewBefore % demoReplicas().length]!;
      const victim = role === 'primary' ? primary : ['node4', 'node3'].find((node) => node !== primary)!;
      // Each organization has one node here: the sender and the recipient are two whose node lives,
      // as an organization with its only node down can neither publish nor fetch.
      const [sender, recipient] = ['org1', 'org2', 'org3', 'org4'].filter(
        (org) => org.slice(3) !== victim.slice(4),
      );
      const [reference] = [1, 2, 3, 4].filter((node) => `node${node}` !== victim);
      if (sender === undefined || recipient === undefined || reference === undefined)
        throw new Error('no route');
      showLogsOnFailure(victim, `node${sender.slice(3)}`, `connector-${sender}`, `connector-${recipient}`);

      const application = await applicationConsumer(recipient, `faults-${role}`, prefix);
      const acked: AckedMessage[] = [];
      let failedAttempts = 0;
      let inFlight = 0;
      const send = async (index: number): Promise<void> => {
        const id = `${prefix}${index}`;
        const body = Buffer.from(`message ${index} of ${total} (${role} killed)`);
        // Retried under the same id until acknowledged, as a producer does: the id makes it idempotent.
        for (let attempt = 1; ; attempt++) {
          inFlight += 1;
          try {
            const result = await json<SendResult>(
              await net.api(sender, `/v1/topics/demo/messages?to=${recipient}&id=${id}`, {
                method: 'POST',
                headers: { 'content-type': 'application/octet-stream' },
                body,
                signal: AbortSignal.timeout(20_000),
              }),
              `send ${id}`,
            );
            expect(result.id).toBe(id);
            acked.push({ ...result, topic: 'demo', recipient, sha256: sha256Hex(body), ackedAt: Date.now() });
            return;
          } catch (error) {
            failedAttempts += 1;
            if (attempt >= 10)
              throw new Error(`${id} not acknowledged after ${attempt} attempts`, { cause: error });
            await sleep(500);
          } finally {
            inFlight -= 1;
          }
        }
      };
      const workers = 4;
      const sending = Promise.all(
        Array.from({ length: workers }, async (_, worker) => {
          for (let index = worker; index < total; index += workers) await send(index);
        }),
      );
      await waitFor(
        '20 acknowledgements',
        () => (acked.length >= 20 && inFlight > 0) || undefined,
        60_000,
        1,
      );
      const inFlightAtKill = inFlight;
      const ackedAtKill = acked.length;
      await net.kill(victim, 'SIGKILL');
      await waitFor(
        `40 acknowledgements with ${victim} down`,
        () => acked.length >= 40 || undefined,
        120_000,
        10,
      );
      const ackedAtRestart = acked.length;
      net.start(victim);
      await sending;
      console.log(
        `${sender} → ${recipient}: ${role} ${victim} SIGKILLed with ${inFlightAtKill} sends in flight after ${ackedAtKill} acks, ` +
          `restarted after ${ackedAtRestart}: ${acked.length}/${total} acknowledged, ${failedAttempts} failed attempts`,
      );
      expect(inFlightAtKill).toBeGreaterThan(0);
      expect(acked.map((message) => message.id).sort()).toEqual(
        Array.from({ length: total }, (_, index) => `${prefix}${index}`).sort(),
      );

      // The application: each acknowledged message handed to eachMessage once, and nothing else.
      const handed = await handedCounts(
        application,
        acked.map((message) => message.id),
        prefix,
        { sender, recipient },
      );
      expect(
        [...handed].filter(([, count]) => count !== 1),
        'ids handed other than once',
      ).toEqual([]);
      expect([...handed.keys()].sort()).toEqual(acked.map((message) => message.id).sort());

      // The ledger: every acknowledged id at its acknowledged offset on every replica that has it,
      // one offset per id and one id per offset, the replicas byte-identical, the victim caught up.
      await waitFor(
        `${victim}'s ledger to reach node${reference}'s head`,
        () => {
          const head = partitionHead(reference);
          const replica = partitionHead(Number(victim.slice(4)), head?.height);
          return head !== undefined && replica?.hash === head.hash ? true : undefined;
        },
        60_000,
        500,
      );
      const ledgers = checkLedgers(
        [1, 2, 3, 4],
        (node, group) => net.partitionDatabase(node, group),
        [{ group: 'demo/0', membership: (epoch) => registry().membership('demo/0', epoch) }],
        acked,
      );
      expect(ledgers.problems).toEqual([]);
      if (role === 'primary') {
        // The kill forced a view change: blocks committed since were proposed in a later view.
        expect(partitionHead(reference)!.view).toBeGreaterThan(viewBefore);
      }
      // The victim's organization is whole again for the tests that follow.
      await net.waitHealthy(`org${victim.slice(4)}`);
    }, 300_000);
  }

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

    const acked: AckedMessage[] = [];
    const producing = (async () => {
      for (let index = 0; index < 80; index++) {
        const id = `ledger-kill-${index}`;
        const body = Buffer.from(`message ${index}`);
        try {
          const response = await net.api(
            'org1',
            `/v1/topics/${topic}/messages?to=org2&id=${id}&key=${encodeURIComponent(Buffer.from(`k${index}`).toString('base64'))}`,
            {
              method: 'POST',
              headers: { 'content-type': 'application/octet-stream' },
              body,
            },
          );
          const result = await json<SendResult>(response, `send ${id}`);
          acked.push({ ...result, topic, recipient: 'org2', sha256: sha256Hex(body), ackedAt: Date.now() });
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

    // And the partition ledgers hold what was acknowledged: each id at its acknowledged offset, once.
    const description = await json<TopicDescription>(
      await net.api('org2', `/v1/topics/${topic}`),
      'describe',
    );
    const genesis = registry();
    const groups: GroupSpec[] = description.partitions.map((partition) => {
      const members = new Map(partition.replicas.map((id) => [id, genesis.node(id)!.publicKey]));
      const membership: GroupMembership = {
        signing: SigningDomain.of(genesis.network),
        partitionId: partition.group,
        configEpoch: partition.configEpoch,
        members,
      };
      return {
        group: partition.group,
        membership: (epoch) => (epoch === partition.configEpoch ? membership : undefined),
      };
    });
    expect(groups.map((spec) => spec.group)).toEqual([`${topic}/0`, `${topic}/1`]);
    const ledgers = checkLedgers(
      [1, 2, 3, 4],
      (node, group) => net.partitionDatabase(node, group),
      groups,
      acked,
    );
    expect(ledgers.problems).toEqual([]);
    expect(new Set(acked.map((message) => message.partition))).toEqual(new Set([0, 1]));
  }, 300_000);

  for (const victim of ['node1', 'node2'] as const) {
    it(`delivers a 64 MiB payload exactly once when ${victim} is SIGKILLed mid-transfer`, async () => {
      showLogsOnFailure('connector-org1', 'node1', 'node2', 'connector-org2');
      const size = 64 * MiB;
      const file = join(dir, `${victim}.bin`);
      const expected = writeDeterministicFile(file, size, `faults/${victim}`);
      const id = `kill-${victim}-mid-transfer`;
      const application = await applicationConsumer('org2', `faults-mid-transfer-${victim}`, id);
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
      expect(await handedCounts(application, [id], id)).toEqual(new Map([[id, 1]]));
      if (victim === 'node2') await net.waitHealthy('org2');
      rmSync(file, { force: true });
    }, 180_000);
  }
});
