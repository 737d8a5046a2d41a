/**
 * `npm run bench:soak` (issue 18): what a network keeps on disk and in memory as its history grows.
 *
 * A whole devnet runs as real processes (4 nodes, 4 connectors, TLS, fsync; topic "demo" on one
 * 4-replica partition). org1 sends `--messages` messages to org2 through the SDK, `--batch` per
 * `producer.send` and `--in-flight` sends at once; every `--large-every`-th message is a large one of
 * `--large-bytes` (streamed to the connector's payload files). org2's application lists what its
 * connector received (`GET /v1/received`, long-polled) and, with `--delete-received`, deletes each
 * message once seen (its retention: "recipients keep theirs until the application deletes them").
 * node4 is down for the whole run (`--no-catch-up` keeps it up).
 *
 * At 10%, 50% and 100% of the run — each once org2 has listed every message sent so far — it reports:
 * disk bytes per organization and per node by component (blocks, contract state, consensus
 * records, Raft log, global ledger blocks and index, connector records by table, packed payloads,
 * payload files, SQLite slack: free pages and WAL), the bytes per small message, and the resident
 * memory of every process. After the run: node4 is started and timed until it holds every block
 * (partition and global ledger) — verified state transfer in blocks/s — and then the whole network is
 * stopped and started again, its time to ready beside the fresh network's.
 *
 * Every message is counted at org2 by id: one lost or listed twice fails the run (exit 1, no result).
 *
 * Options: --messages N (100000), --message-bytes N (200), --batch N (256), --in-flight N (4),
 * --large-every N (10000; 0: no large messages), --large-bytes N (4194304), --delete-received,
 * --no-catch-up, --retention-ms MS (send on a topic "soak" of its own whose payloadRetentionMs is MS, so
 * the sender deletes payloads MS after their messages complete; with --delete-received both sides
 * delete as they go: the run at the retention limit), --stall-seconds N (120), --base-port N (27400), --keep DIR (keep the network's files
 * in DIR instead of a temporary folder that is removed), --profile-catch-up DIR (the laggard runs its
 * catch-up under --cpu-prof, profile written to DIR when it stops), --json-only.
 */
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { Ledgerbus } from '../src/client/index.js';
import type { Producer } from '../src/client/index.js';
import { groupFileName } from '../src/node/group-files.js';
import { topicGroupId } from '../src/registry/admin-transactions.js';
import { ProcessNetwork } from '../test/support/process-network.js';
import { readProcessMemory } from '../test/support/process-memory.js';
import { buildIsCurrent, cleanUpOnSignals, sleep, waitFor } from '../test/support/processes.js';
import { assertNetworkPortsFree } from './lib/devnet.js';
import {
  addFootprints,
  connectorComponents,
  connectorFootprint,
  nodeComponents,
  nodeFootprint,
  totalBytes,
} from './lib/footprint.js';
import type { Footprint } from './lib/footprint.js';
import { showHelpIfAsked } from './lib/help.js';
import { round, writeBenchResult } from './lib/results.js';

showHelpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    'message-bytes': { type: 'string', default: '200' },
    batch: { type: 'string', default: '256' },
    'in-flight': { type: 'string', default: '4' },
    'large-every': { type: 'string', default: '10000' },
    'large-bytes': { type: 'string', default: String(4 * 1024 * 1024) },
    'delete-received': { type: 'boolean', default: false },
    'no-catch-up': { type: 'boolean', default: false },
    'retention-ms': { type: 'string' },
    'stall-seconds': { type: 'string', default: '120' },
    'base-port': { type: 'string', default: '27400' },
    keep: { type: 'string' },
    'profile-catch-up': { type: 'string' },
    'json-only': { type: 'boolean', default: false },
  },
  strict: true,
});

function integer(name: keyof typeof values, minimum: number): number {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < minimum)
    throw new Error(`--${name} must be an integer ≥ ${minimum}`);
  return value;
}
const messages = integer('messages', 10);
const messageBytes = integer('message-bytes', 1);
const batch = Math.min(integer('batch', 1), 1024);
const inFlight = integer('in-flight', 1);
const largeEvery = integer('large-every', 0);
const largeBytes = integer('large-bytes', 1);
const stallMs = integer('stall-seconds', 1) * 1000;
const basePort = integer('base-port', 1024);
const catchUp = !values['no-catch-up'];
const deleteReceived = values['delete-received'];
const retentionMs = values['retention-ms'] === undefined ? undefined : integer('retention-ms', 0);
const topic = retentionMs === undefined ? 'demo' : 'soak';
const partition = `${topic}/0`;
const laggard = 'node4';

if (!buildIsCurrent()) throw new Error('the build is older than the sources: run `npm run build` first');
const directory = values.keep ?? mkdtempSync(join(tmpdir(), 'ledgerbus-bench-soak-'));
mkdirSync(directory, { recursive: true });
const network = new ProcessNetwork(directory, basePort, 'dist');
const organizations = network.layout.network.organizations.map((organization) => organization.id);

async function cleanUp(): Promise<void> {
  await network.stopAll(5_000);
  if (values.keep === undefined) rmSync(directory, { recursive: true, force: true, maxRetries: 5 });
}
cleanUpOnSignals('stopping the soak network', cleanUp);

const progress = (text: string): void => void process.stderr.write(`${text}\n`);
const say = (text: string): void => {
  if (!values['json-only']) process.stdout.write(`${text}\n`);
};
const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

async function startNetwork(except: readonly string[] = []): Promise<number> {
  const started = performance.now();
  for (const name of network.names) if (!except.includes(name)) network.start(name);
  await Promise.all(organizations.map((organization) => network.waitHealthy(organization, 120_000)));
  return performance.now() - started;
}

// ---- what org2's application sees ----

class Receiver {
  readonly seen = new Set<string>();
  duplicates = 0;
  private after = 0;
  /** Listed, not deleted yet (with --delete-received): at most a round's listing plus the unconfirmed. */
  private toDelete: { partition: number; id: string }[] = [];
  private stopped = false;
  private failure: Error | undefined;
  private readonly loop: Promise<void>;

  constructor() {
    this.loop = this.run().catch((error: unknown) => {
      this.failure = error instanceof Error ? error : new Error(String(error));
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const response = await network.api(
        'org2',
        `/v1/received?topic=${topic}&after=${this.after}&limit=1000&waitMs=1000`,
      );
      if (!response.ok) throw new Error(`GET /v1/received: ${response.status} ${await response.text()}`);
      const body = (await response.json()) as {
        messages: { id: string; sequence: number; partition: number }[];
      };
      for (const message of body.messages) {
        if (this.seen.has(message.id)) this.duplicates++;
        else this.seen.add(message.id);
        this.after = Math.max(this.after, message.sequence);
        if (deleteReceived) this.toDelete.push({ partition: message.partition, id: message.id });
      }
      if (deleteReceived) await this.deleteConfirmed();
    }
  }

  /**
   * Deletes what was listed, as an application would once done with it; a message whose delivery
   * is not confirmed on-chain yet (409 MESSAGE_NOT_CONFIRMED, retriable) is tried again next round.
   */
  private async deleteConfirmed(): Promise<void> {
    const waiting: { partition: number; id: string }[] = [];
    for (const message of this.toDelete) {
      const response = await network.api('org2', `/v1/received/${topic}/${message.partition}/${message.id}`, {
        method: 'DELETE',
      });
      if (response.status === 409) {
        waiting.push(message);
        await response.body?.cancel();
      } else if (!response.ok) {
        throw new Error(`DELETE received ${message.id}: ${response.status} ${await response.text()}`);
      } else {
        await response.body?.cancel();
      }
    }
    this.toDelete = waiting;
  }

  /** Resolves once `count` distinct messages were listed; rejects after `stallMs` without progress. */
  async waitFor(count: number): Promise<void> {
    let last = this.seen.size;
    let lastProgress = performance.now();
    while (this.seen.size < count) {
      if (this.failure !== undefined) throw this.failure;
      if (this.seen.size > last) {
        last = this.seen.size;
        lastProgress = performance.now();
      } else if (performance.now() - lastProgress > stallMs) {
        throw new Error(
          `org2 listed ${this.seen.size} of ${count} messages and nothing more for ${stallMs} ms`,
        );
      }
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (this.failure !== undefined) throw this.failure;
  }
}

// ---- measurements ----

interface Checkpoint {
  readonly messages: number;
  readonly seconds: number;
  readonly sendRatePerSecond: number;
  /** By organization: node and connector footprints (bytes by component). */
  readonly organizations: Record<string, { node: Footprint; connector: Footprint; totalBytes: number }>;
  /** org1's connector's bytes per message, payload files left out (they hold the large messages). */
  readonly senderBytesPerSmallMessage: number;
  /** org2's connector's bytes per message, payload files left out. */
  readonly recipientBytesPerSmallMessage: number;
  /** The biggest node's bytes per message. */
  readonly nodeBytesPerMessage: number;
  readonly rssBytes: Record<string, number>;
}

function footprints(): Checkpoint['organizations'] {
  const result: Checkpoint['organizations'] = {};
  for (const organization of organizations) {
    const folder = join(directory, organization);
    const node = nodeFootprint(join(folder, 'node-data'));
    const connector = connectorFootprint(join(folder, 'connector-data'), join(folder, 'payloads'));
    result[organization] = { node, connector, totalBytes: totalBytes(addFootprints(node, connector)) };
  }
  return result;
}

function rss(): Record<string, number> {
  const result: Record<string, number> = {};
  for (const name of network.names) {
    if (!network.running(name)) continue;
    const memory = readProcessMemory(network.pid(name));
    if (memory !== undefined) result[name] = memory.rssBytes;
  }
  return result;
}

function checkpoint(count: number, seconds: number): Checkpoint {
  const byOrganization = footprints();
  const org1 = byOrganization.org1!;
  const smallMessages = count - (largeEvery > 0 ? Math.floor(count / largeEvery) : 0);
  const nodeBytes = Math.max(...Object.values(byOrganization).map((entry) => totalBytes(entry.node)));
  return {
    messages: count,
    seconds: round(seconds, 1),
    sendRatePerSecond: round(count / seconds, 0),
    organizations: byOrganization,
    senderBytesPerSmallMessage: round(
      (totalBytes(org1.connector) - org1.connector.payloadFiles) / smallMessages,
      0,
    ),
    recipientBytesPerSmallMessage: round(
      (totalBytes(byOrganization.org2!.connector) - byOrganization.org2!.connector.payloadFiles) /
        smallMessages,
      0,
    ),
    nodeBytesPerMessage: round(nodeBytes / count, 0),
    rssBytes: rss(),
  };
}

function describe(point: Checkpoint): string[] {
  const lines = [
    `${point.messages} messages after ${point.seconds} s (${point.sendRatePerSecond} msg/s): org1's connector keeps ` +
      `${point.senderBytesPerSmallMessage} B per small message and org2's ${point.recipientBytesPerSmallMessage} B ` +
      `(payload files aside), the largest node ${point.nodeBytesPerMessage} B per message`,
  ];
  for (const [organization, entry] of Object.entries(point.organizations)) {
    const parts = [...nodeComponents, 'sqliteSlack' as const]
      .filter((name) => entry.node[name] > 0)
      .map((name) => `${name} ${mib(entry.node[name])}`);
    const connector = [...connectorComponents, 'sqliteSlack' as const]
      .filter((name) => entry.connector[name] > 0)
      .map((name) => `${name} ${mib(entry.connector[name])}`);
    lines.push(`  ${organization}: ${mib(entry.totalBytes)} — node: ${parts.join(', ')}`);
    lines.push(`  ${' '.repeat(organization.length)}   connector: ${connector.join(', ')}`);
  }
  lines.push(
    `  RSS: ${Object.entries(point.rssBytes)
      .map(([name, bytes]) => `${name} ${mib(bytes)}`)
      .join(', ')}`,
  );
  return lines;
}

/**
 * The heights node `index` holds of the partition, without a hole: in its replica and in its global
 * ledger (a ledger filled after a snapshot install has its head before the blocks below it).
 */
function heightsOf(index: number): { partition: number; global: number } {
  const data = join(directory, `org${index}`, 'node-data');
  const max = (file: string, sql: string): number => {
    try {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        return (db.prepare(sql).get(partition) as { height: number | null } | undefined)?.height ?? 0;
      } finally {
        db.close();
      }
    } catch {
      return 0;
    }
  };
  return {
    partition: max(
      join(data, 'partitions', groupFileName(partition)),
      'SELECT MAX(height) AS height FROM blocks WHERE ? IS NOT NULL',
    ),
    global: max(
      join(data, 'global', groupFileName(topicGroupId(topic))),
      'SELECT CASE WHEN COUNT(*) = MAX(height) THEN MAX(height) ELSE 0 END AS height FROM blocks WHERE partition = ?',
    ),
  };
}

async function measureCatchUp(): Promise<Record<string, number>> {
  const target = heightsOf(1);
  const before = heightsOf(4);
  progress(`starting ${laggard}: it holds ${before.partition} of ${target.partition} blocks ...`);
  const started = performance.now();
  const profileDirectory = values['profile-catch-up'];
  network.start(
    laggard,
    {},
    profileDirectory === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDirectory}`],
  );
  let partitionMs: number | undefined;
  for (;;) {
    const now = heightsOf(4);
    const elapsed = performance.now() - started;
    if (partitionMs === undefined && now.partition >= target.partition) partitionMs = elapsed;
    if (now.partition >= target.partition && now.global >= target.global) {
      const blocks = target.partition - before.partition + (target.global - before.global);
      return {
        blocks: target.partition - before.partition,
        globalLedgerBlocks: target.global - before.global,
        partitionSeconds: round((partitionMs ?? elapsed) / 1000, 2),
        seconds: round(elapsed / 1000, 2),
        blocksPerSecond: round(blocks / (elapsed / 1000), 0),
      };
    }
    if (elapsed > 30 * 60_000)
      throw new Error(`${laggard} did not catch up in 30 minutes: ${JSON.stringify(now)}`);
    await sleep(100);
  }
}

// ---- the run ----

function valueOf(index: number): Buffer {
  const large = largeEvery > 0 && (index + 1) % largeEvery === 0;
  const bytes = Buffer.alloc(large ? largeBytes : messageBytes, index % 251);
  bytes.write(`soak-${index}`);
  return bytes;
}

async function sendAll(
  producer: Producer,
  marks: readonly number[],
  receiver: Receiver,
): Promise<Checkpoint[]> {
  const points: Checkpoint[] = [];
  const started = performance.now();
  let next = 0;
  let sent = 0;
  let lastReport = performance.now();
  for (const mark of marks) {
    const sender = async (): Promise<void> => {
      for (;;) {
        const from = next;
        if (from >= mark) return;
        const count = Math.min(batch, mark - from);
        next = from + count;
        const batchMessages = [];
        for (let index = from; index < from + count; index++) {
          batchMessages.push({ id: `soak-${index}`, value: valueOf(index), to: ['org2'] });
        }
        const results = await producer.send({ topic, messages: batchMessages });
        if (results.length !== count) throw new Error(`a send of ${count} answered ${results.length}`);
        sent += count;
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now();
          progress(`  ${sent} sent, ${receiver.seen.size} listed by org2`);
        }
      }
    };
    await Promise.all(Array.from({ length: inFlight }, sender));
    await receiver.waitFor(mark);
    const point = checkpoint(mark, (performance.now() - started) / 1000);
    for (const line of describe(point)) say(line);
    points.push(point);
  }
  return points;
}

/** The topic of a run with --retention-ms: org1 to org2, one partition, the given retention. */
async function createRetentionTopic(payloadRetentionMs: number): Promise<void> {
  const created = await network.api('org1', '/v1/admin', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'createTopic',
      name: topic,
      partitions: 1,
      producers: ['org1'],
      consumers: ['org2'],
      policy: { payloadRetentionMs },
    }),
  });
  if (!created.ok) throw new Error(`creating topic ${topic}: ${created.status} ${await created.text()}`);
  for (const organization of ['org1', 'org2'])
    await waitFor(
      `${organization} to know topic ${topic}`,
      async () => ((await network.api(organization, `/v1/topics/${topic}`)).ok ? true : undefined),
      60_000,
    );
}

async function main(): Promise<void> {
  await assertNetworkPortsFree(network, 'pick another --base-port');
  progress(`starting 4 nodes and 4 connectors in ${directory} ...`);
  const freshStartMs = await startNetwork();
  say(`fresh network ready in ${round(freshStartMs / 1000, 2)} s`);
  if (retentionMs !== undefined) await createRetentionTopic(retentionMs);
  if (catchUp) await network.kill(laggard, 'SIGKILL');
  const { url, token } = network.connector('org1');
  const producer = new Ledgerbus({ connector: url, token }).producer();
  await producer.connect();
  const receiver = new Receiver();
  const marks = [...new Set([0.1, 0.5, 1].map((share) => Math.max(1, Math.round(messages * share))))];
  progress(
    `sending ${messages} messages of ${messageBytes} B (${batch} per send, ${inFlight} in flight) ...`,
  );
  const points = await sendAll(producer, marks, receiver);
  await sleep(2000);
  await receiver.stop();
  await producer.disconnect();
  if (receiver.duplicates > 0 || receiver.seen.size !== messages)
    throw new Error(
      `org2 listed ${receiver.seen.size} distinct messages of ${messages}, ${receiver.duplicates} twice`,
    );

  const catchUpResult = catchUp ? await measureCatchUp() : undefined;
  if (catchUpResult !== undefined)
    say(
      `${laggard}, down for the whole run, caught up ${catchUpResult.blocks} partition blocks and ` +
        `${catchUpResult.globalLedgerBlocks} global-ledger blocks in ${catchUpResult.seconds} s ` +
        `(${catchUpResult.blocksPerSecond} blocks/s; the partition alone in ${catchUpResult.partitionSeconds} s)`,
    );
  progress('restarting the whole network ...');
  await network.stopAll(10_000);
  const restartMs = await startNetwork();
  const afterRestartRss = rss();
  say(
    `restart with the whole history: ready in ${round(restartMs / 1000, 2)} s ` +
      `(fresh network: ${round(freshStartMs / 1000, 2)} s, ${round(restartMs / freshStartMs, 2)}×)`,
  );
  await network.stopAll(10_000);

  const first = points[0]!;
  const last = points.at(-1)!;
  const rssGrowth: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(last.rssBytes)) {
    const base = first.rssBytes[name];
    if (base !== undefined) rssGrowth[name] = round(bytes / base, 2);
  }
  say(`RSS at 100% ÷ RSS at 10%: ${JSON.stringify(rssGrowth)}`);
  writeBenchResult({
    name: 'soak',
    value: last.senderBytesPerSmallMessage,
    unit: "bytes per small message at the sender's connector",
    reference: "the goal of issue 18: 2 KB per small message at the sender's connector",
    referenceValue: 2048,
    ratio: round(last.senderBytesPerSmallMessage / 2048, 3),
    summary: {
      messages,
      messageBytes,
      nodeBytesPerMessage: last.nodeBytesPerMessage,
      recipientBytesPerSmallMessage: last.recipientBytesPerSmallMessage,
      maxRssGrowth: Math.max(...Object.values(rssGrowth)),
      restartRatio: round(restartMs / freshStartMs, 2),
      ...(catchUpResult === undefined ? {} : { catchUpBlocksPerSecond: catchUpResult.blocksPerSecond }),
      runSeconds: last.seconds,
    },
    details: {
      options: {
        messages,
        messageBytes,
        batch,
        inFlight,
        largeEvery,
        largeBytes,
        deleteReceived,
        catchUp,
        ...(retentionMs === undefined ? {} : { retentionMs }),
      },
      checkpoints: points,
      rssGrowth,
      freshStartSeconds: round(freshStartMs / 1000, 2),
      restartSeconds: round(restartMs / 1000, 2),
      afterRestartRss,
      catchUp: catchUpResult,
    },
  });
}

main().then(
  () => cleanUp(),
  async (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    console.error(network.logTails(network.names, 15));
    await cleanUp();
    process.exit(1);
  },
);
