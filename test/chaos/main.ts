// Chaos run on a real multi-process devnet: producers publish under steady load while a seeded schedule
// SIGKILLs, pauses and restarts processes; afterwards every acknowledged message must have reached its
// recipient exactly once with the right hash, and the replicas' ledgers must agree and verify.
// Usage: npm run chaos -- --minutes M [--seed S]
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SeededRandom } from '../../src/consensus/seeded-random.js';
import { bytesEqual } from '../../src/crypto/index.js';
import { blockHash, decodeBlock, encodeBlock, verifyBlock } from '../../src/ledger/block.js';
import type { Block, BlockHeader } from '../../src/ledger/block.js';
import { loadGenesisRegistry } from '../../src/node/config.js';
import { ProcessNetwork, sleep } from '../support/process-network.js';

const usage = `usage: npm run chaos -- --minutes M [--seed S] [--keep]

  --minutes M  how long to publish under faults (default 1)
  --seed S     seed of the fault schedule (default 1)
  --keep       keep the temporary network directory (logs, databases) afterwards`;

const group = 'demo/0';
const nodeCount = 4;
const sendTimeoutMs = 15_000;
const sendAttempts = 8;
const deliveryTimeoutMs = 120_000;

interface Acked {
  readonly id: string;
  readonly recipient: string;
  readonly sha256: string;
  readonly partition: number;
  readonly offset: number;
}
interface Received {
  readonly sequence: number;
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly sha256: string;
}
interface Faults {
  nodeKill: number;
  nodePause: number;
  connectorRestart: number;
}

function progress(message: string): void {
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function parseOptions(): { minutes: number; seed: number; keep: boolean } {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const minutes = Number(values.minutes);
  const seed = Number(values.seed);
  if (!(minutes > 0) || !Number.isInteger(seed) || seed < 0) {
    process.stderr.write(`${usage}\n`);
    process.exit(2);
  }
  return { minutes, seed, keep: values.keep };
}

async function json<T>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

async function receivedAll(net: ProcessNetwork, organization: string): Promise<Received[]> {
  const all: Received[] = [];
  for (let after = 0; ;) {
    const page = await json<{ messages: Received[] }>(
      await net.api(organization, `/v1/received?topic=demo&after=${after}&limit=1000`, {
        signal: AbortSignal.timeout(sendTimeoutMs),
      }),
      `list received of ${organization}`,
    );
    const last = page.messages.at(-1);
    if (last === undefined) return all;
    all.push(...page.messages);
    after = last.sequence;
  }
}

/**
 * Publishes until `stop()` says so. An id counts only once the connector acknowledged it; a failed
 * attempt is retried under the same id, which the connector must treat idempotently.
 */
async function produce(
  net: ProcessNetwork,
  sender: string,
  recipient: string,
  prefix: string,
  acked: Acked[],
  stop: () => boolean,
): Promise<{ attempts: number; unacked: number }> {
  let attempts = 0;
  let unacked = 0;
  for (let index = 0; !stop(); index++) {
    const id = `${prefix}-${sender}-${index}`;
    const payload = randomBytes(16 + (randomBytes(2).readUInt16BE(0) % 1008));
    const sha256 = createHash('sha256').update(payload).digest('hex');
    let done = false;
    for (let attempt = 0; attempt < sendAttempts && !done; attempt++) {
      attempts += 1;
      try {
        const result = await json<{ id: string; partition: number; offset: number }>(
          await net.api(sender, `/v1/topics/demo/messages?to=${recipient}&id=${encodeURIComponent(id)}`, {
            method: 'POST',
            headers: { 'content-type': 'application/octet-stream' },
            body: payload,
            signal: AbortSignal.timeout(sendTimeoutMs),
          }),
          `send ${id}`,
        );
        if (result.id !== id) throw new Error(`${id} acknowledged as ${result.id}`);
        acked.push({ id, recipient, sha256, partition: result.partition, offset: result.offset });
        done = true;
      } catch {
        // The connector or its node may be down or paused right now; the same id is retried.
        await sleep(1_000);
      }
    }
    if (!done) unacked += 1;
  }
  return { attempts, unacked };
}

/** Runs one fault at a time, so at most one node (f = 1 of the 4 replicas) is ever down or paused. */
async function injectFaults(
  net: ProcessNetwork,
  random: SeededRandom,
  faults: Faults,
  stop: () => boolean,
): Promise<void> {
  const pause = async (ms: number): Promise<void> => {
    const until = Date.now() + ms;
    while (!stop() && Date.now() < until) await sleep(Math.min(250, until - Date.now()));
  };
  for (;;) {
    await pause(random.int(5_000, 15_000));
    if (stop()) return;
    const kind = random.int(0, 2);
    const index = random.int(1, nodeCount);
    if (kind === 0) {
      const name = `node${index}`;
      const downMs = random.int(2_000, 8_000);
      progress(`fault: SIGKILL ${name}, restart after ${downMs} ms`);
      faults.nodeKill += 1;
      await net.kill(name, 'SIGKILL');
      // The restart happens even when the run ends meanwhile, so the node never stays down.
      await sleep(downMs);
      net.start(name);
    } else if (kind === 1) {
      const name = `node${index}`;
      const pausedMs = random.int(1_000, 5_000);
      progress(`fault: SIGSTOP ${name}, SIGCONT after ${pausedMs} ms`);
      faults.nodePause += 1;
      process.kill(net.pid(name), 'SIGSTOP');
      try {
        await sleep(pausedMs);
      } finally {
        process.kill(net.pid(name), 'SIGCONT');
      }
    } else {
      const name = `connector-org${index}`;
      progress(`fault: restart ${name}`);
      faults.connectorRestart += 1;
      await net.kill(name, 'SIGKILL');
      net.start(name);
      await net.waitHealthy(`org${index}`, 60_000).catch((error: unknown) => {
        progress(`${name} not healthy yet: ${String(error)}`);
      });
    }
  }
}

interface LedgerReport {
  readonly heads: number[];
  readonly ledgerMismatches: number;
  readonly badCertificates: number;
  readonly problems: string[];
}

/** Reads every replica's stored blocks (read-only) and checks agreement and certificates. */
function checkLedgers(net: ProcessNetwork): LedgerReport {
  const registry = loadGenesisRegistry(join(net.directory, 'genesis.json'));
  const problems: string[] = [];
  let badCertificates = 0;
  const ledgers: Block[][] = [];
  for (let node = 1; node <= nodeCount; node++) {
    const blocks: Block[] = [];
    let db: Database.Database | undefined;
    try {
      db = new Database(net.partitionDatabase(node, group), { readonly: true, fileMustExist: true });
      const rows = db.prepare('SELECT height, bytes FROM blocks ORDER BY height').all() as {
        height: number;
        bytes: Buffer;
      }[];
      let previous: BlockHeader | undefined;
      for (const row of rows) {
        const block = decodeBlock(row.bytes);
        if (block.header.height !== row.height || block.header.height !== blocks.length + 1)
          problems.push(`node${node}: row ${row.height} holds block ${block.header.height}`);
        try {
          const membership = registry.membership(group, block.header.configEpoch);
          if (membership === undefined)
            throw new Error(`no membership for epoch ${block.header.configEpoch}`);
          verifyBlock(block, membership, previous);
        } catch (error) {
          badCertificates += 1;
          problems.push(`node${node} block ${row.height}: ${String(error)}`);
        }
        blocks.push(block);
        previous = block.header;
      }
    } catch (error) {
      problems.push(`node${node}: cannot read ${group}: ${String(error)}`);
    } finally {
      db?.close();
    }
    ledgers.push(blocks);
  }
  const heads = ledgers.map((blocks) => blocks.length);
  const common = Math.min(...heads);
  let ledgerMismatches = 0;
  const reference = ledgers[0] ?? [];
  for (let height = 1; height <= common; height++) {
    const expected = reference[height - 1];
    if (expected === undefined) continue;
    const expectedHash = blockHash(expected.header);
    const expectedBytes = encodeBlock(expected);
    ledgers.slice(1).forEach((blocks, offset) => {
      const block = blocks[height - 1];
      if (block === undefined) return;
      // Two replicas may keep different, equally valid signer sets in a certificate: compare the
      // contents with the certificate swapped for the reference's.
      const same =
        bytesEqual(blockHash(block.header), expectedHash) &&
        bytesEqual(encodeBlock({ ...block, certificate: expected.certificate }), expectedBytes);
      if (!same) {
        ledgerMismatches += 1;
        problems.push(`node${offset + 2} differs from node1 at height ${height}`);
      }
    });
  }
  return { heads, ledgerMismatches, badCertificates, problems };
}

async function main(): Promise<number> {
  const { minutes, seed, keep } = parseOptions();
  const random = new SeededRandom(seed);
  const basePort = 23_400 + (seed % 100) * 10;
  const directory = mkdtempSync(join(tmpdir(), `ledgerbus-chaos-${seed}-`));
  const net = new ProcessNetwork(join(directory, 'net'), basePort);
  let interrupted = false;
  const onSignal = (): void => {
    // The run's own cleanup stops the children; a second signal gives up on it.
    if (interrupted) process.exit(130);
    interrupted = true;
    progress('interrupted: stopping');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const faults: Faults = { nodeKill: 0, nodePause: 0, connectorRestart: 0 };
  let keepDirectory = keep;
  try {
    progress(`seed ${seed}, ${minutes} min, base port ${basePort}, directory ${directory}`);
    await net.startAll();
    progress('network healthy: producing under faults');
    const deadline = Date.now() + minutes * 60_000;
    const stop = (): boolean => interrupted || Date.now() >= deadline;
    const acked: Acked[] = [];
    const prefix = `chaos-${seed}-${Date.now()}`;
    const ticker = setInterval(() => progress(`acked ${acked.length}`), 10_000);
    const [first, second] = await Promise.all([
      produce(net, 'org1', 'org2', prefix, acked, stop),
      produce(net, 'org3', 'org4', prefix, acked, stop),
      injectFaults(net, random, faults, stop),
    ]);
    clearInterval(ticker);
    progress(
      `producing stopped: ${acked.length} acked, ${first.unacked + second.unacked} given up, ` +
        `${first.attempts + second.attempts} attempts`,
    );

    // Heal: every process running and none paused, whatever the schedule left behind.
    for (const name of net.names) {
      if (net.running(name)) process.kill(net.pid(name), 'SIGCONT');
      else net.start(name);
    }
    for (const organization of ['org1', 'org2', 'org3', 'org4']) await net.waitHealthy(organization, 90_000);

    const recipients = [...new Set(acked.map((message) => message.recipient))];
    const receivedBy = new Map<string, Received[]>();
    const missing = (): number =>
      acked.filter(
        (message) => !(receivedBy.get(message.recipient) ?? []).some((entry) => entry.id === message.id),
      ).length;
    const waitUntil = Date.now() + deliveryTimeoutMs;
    for (;;) {
      for (const recipient of recipients)
        receivedBy.set(
          recipient,
          await receivedAll(net, recipient).catch(() => receivedBy.get(recipient) ?? []),
        );
      const left = missing();
      if (left === 0 || interrupted || Date.now() > waitUntil) break;
      progress(`waiting for delivery: ${left} acked message(s) not received yet`);
      await sleep(2_000);
    }
    await sleep(2_000); // a duplicate, if any, would arrive now
    for (const recipient of recipients) receivedBy.set(recipient, await receivedAll(net, recipient));

    let delivered = 0;
    let lost = 0;
    let duplicated = 0;
    let hashMismatches = 0;
    const problems: string[] = [];
    for (const message of acked) {
      const copies = (receivedBy.get(message.recipient) ?? []).filter((entry) => entry.id === message.id);
      if (copies.length === 0) {
        lost += 1;
        problems.push(`lost ${message.id} (acked at ${message.partition}/${message.offset})`);
        continue;
      }
      delivered += 1;
      if (copies.length > 1) {
        duplicated += 1;
        problems.push(`${message.id} delivered ${copies.length} times`);
      }
      if (copies.some((copy) => copy.sha256 !== message.sha256)) {
        hashMismatches += 1;
        problems.push(`${message.id} received with another sha256`);
      }
    }
    // One value per (partition, offset): acknowledgements and deliveries must name one id each.
    const atOffset = new Map<string, string>();
    let offsetConflicts = 0;
    const claim = (partition: number, offset: number, id: string): void => {
      const key = `${partition}/${offset}`;
      const holder = atOffset.get(key);
      if (holder === undefined) atOffset.set(key, id);
      else if (holder !== id) {
        offsetConflicts += 1;
        problems.push(`offset ${key} holds both ${holder} and ${id}`);
      }
    };
    for (const message of acked) claim(message.partition, message.offset, message.id);
    for (const entries of receivedBy.values())
      for (const entry of entries) claim(entry.partition, entry.offset, entry.id);

    // Let restarted replicas catch up a little, then read their files with every process stopped.
    await sleep(3_000);
    await net.stopAll();
    const ledgers = checkLedgers(net);
    problems.push(...ledgers.problems);
    progress(`ledger heights ${ledgers.heads.join(', ')}`);
    for (const problem of problems.slice(0, 50)) progress(`PROBLEM: ${problem}`);

    const report = {
      seed,
      minutes,
      acked: acked.length,
      delivered,
      lost,
      duplicated,
      hashMismatches,
      offsetConflicts,
      ledgerMismatches: ledgers.ledgerMismatches,
      badCertificates: ledgers.badCertificates,
      faults,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    const failed =
      lost +
        duplicated +
        hashMismatches +
        offsetConflicts +
        ledgers.ledgerMismatches +
        ledgers.badCertificates >
      0;
    if (failed) {
      keepDirectory = true;
      progress(`FAILED (seed ${seed}); logs kept in ${net.logs}`);
      process.stderr.write(`${net.logTails(net.names, 20)}\n`);
    }
    return failed || interrupted ? 1 : 0;
  } catch (error) {
    keepDirectory = true;
    progress(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.stderr.write(`${net.logTails(net.names, 20)}\n`);
    return 1;
  } finally {
    // Paused children would ignore SIGTERM until continued.
    for (const name of net.names) if (net.running(name)) process.kill(net.pid(name), 'SIGCONT');
    await net.stopAll();
    if (!keepDirectory) rmSync(directory, { recursive: true, force: true });
  }
}

process.exitCode = await main();
