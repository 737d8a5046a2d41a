/**
 * `npm run bench:publish`: committed messages/s and p50/p99 latency through the real 4-node ledgerbus
 * network (4 node processes, PBFT over pinned TLS, SQLite with fsync before every vote and ack), with
 * producer batching and 1 KiB messages — beside a 3-node NATS JetStream cluster (R3, file storage)
 * measured in the same run at the same message size and the same number of messages in flight.
 *
 * The ledgerbus producer is org1's client identity talking to node1 exactly as a connector does: it
 * keeps `concurrency` messages outstanding, groups them into signed batches (one Ed25519 signature per
 * batch, a Merkle root over the messages; each message still gets its own offset and proof), and a
 * message's latency runs from when it joined a batch to when its batch's acknowledgement — with block
 * header, certificate and inclusion proofs — arrived and was verified. What goes through consensus is
 * each message's metadata (id, recipients, size, content root: ~250 bytes), not the 1 KiB payload:
 * payloads stay in the organizations' storage (bench:datapath measures that path). JetStream
 * replicates the payload itself. The installed nats-server (2.9) cannot fsync before acks
 * (`sync_interval: always` needs ≥ 2.10), so JetStream here acks before its data is on disk; ledgerbus
 * fsyncs before every vote and every ack. Both facts favour JetStream's numbers.
 *
 * Options: --messages N (per setting, default 20000), --concurrency 64,256, --batch N (messages per
 * signed batch, default concurrency/4), --skip-jetstream, --message-bytes 256,1024,... (sizes to run,
 * each with every concurrency; default 1024), --percentiles 1,50,99.9 (also report these latency
 * percentiles, nearest rank, for both systems: what bench/report.ts draws its latency CDF from).
 * Without the last two, the output is what it always was. --cpu-prof DIR: every node writes a V8 CPU
 * profile into DIR/<node> (stopped with SIGTERM so the profile is flushed) and the bench prints where
 * the nodes' time went, by area. Every run reports CPU microseconds per committed message summed over
 * all processes (nodes, or nats-servers, plus this client), read from /proc.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeClientRequest } from '../src/consensus/pbft/messages.js';
import { decodeTransactionResult } from '../src/contracts/results.js';
import { encodePublish } from '../src/contracts/transactions.js';
import type { MessageMetadata } from '../src/contracts/transactions.js';
import { loadConnectorConfig } from '../src/connector/config.js';
import { loadSigningKey } from '../src/crypto/index.js';
import type { SigningKeyPair } from '../src/crypto/index.js';
import { RpcPeer, connectFramed } from '../src/net/index.js';
import { loadGenesisRegistry } from '../src/node/config.js';
import { blockEvidenceSchema, verifyAcceptance } from '../src/proofs/index.js';
import { proofTrustOf } from '../src/registry/trust.js';
import { startJetStreamCluster } from './lib/jetstream-cluster.js';
import type { JetStreamCluster } from './lib/jetstream-cluster.js';
import { measureJetStreamPublish } from './lib/jetstream-publish.js';
import type { JetStreamPublishResult } from './lib/jetstream-publish.js';
import { round, writeBenchResult } from './lib/results.js';
import { cpuPerMessage, sampleCpu } from './lib/cpu-usage.js';
import type { CpuPerMessage } from './lib/cpu-usage.js';
import { cpuBreakdown, monotonicMicros } from './lib/cpu-profile.js';
import type { CpuBreakdown, ProfileWindow } from './lib/cpu-profile.js';
import { ProcessNetwork } from '../test/support/process-network.js';
import { cleanUpOnSignals, sleep } from '../test/support/processes.js';
import { showHelpIfAsked } from './lib/help.js';

const defaultMessageBytes = 1024;

showHelpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '64,256' },
    batch: { type: 'string' },
    'skip-jetstream': { type: 'boolean', default: false },
    'message-bytes': { type: 'string' },
    percentiles: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
  strict: true,
});
const messages = Number(values.messages);
const concurrencies = values.concurrency.split(',').map(Number);
function numberList(name: string, text: string, valid: (value: number) => boolean): number[] {
  const list = text.split(',').map(Number);
  if (list.some((value) => !valid(value))) throw new Error(`--${name}: invalid list "${text}"`);
  return list;
}
// Run records name their size only when sizes were asked for, so default results keep their shape.
const sizesText = values['message-bytes'];
const sizesGiven = sizesText !== undefined;
const messageSizes =
  sizesText === undefined
    ? [defaultMessageBytes]
    : numberList('message-bytes', sizesText, (v) => Number.isInteger(v) && v >= 1);
const percentiles =
  values.percentiles === undefined
    ? undefined
    : numberList('percentiles', values.percentiles, (v) => v > 0 && v <= 100);

let cluster: JetStreamCluster | undefined;
const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-bench-publish-'));
// Only the four nodes run: the producer talks to node1 as a connector would.
const network = new ProcessNetwork(directory, 23400);
const nodeNames = network.names.filter((name) => name.startsWith('node'));

const profileDirectory = values['cpu-prof'];
const nodePids = (): Map<string, number> => new Map(nodeNames.map((name) => [name, network.pid(name)]));

async function cleanUp(): Promise<void> {
  await Promise.all(nodeNames.map((name) => network.kill(name, 'SIGKILL')));
  const running = cluster;
  cluster = undefined;
  await running?.stop();
  rmSync(directory, { recursive: true, force: true });
}
cleanUpOnSignals('stopping the nodes and the JetStream cluster', cleanUp);

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/**
 * Nearest rank, as lib/jetstream-publish.ts computes JetStream's: a CDF drawn from both systems must
 * use one definition (the p50/p99 above keep theirs, so default results do not move).
 */
function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number;
}

interface LedgerbusRun {
  readonly concurrency: number;
  readonly batch: number;
  readonly messagesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly messages: number;
  readonly seconds: number;
  readonly messageBytes?: number;
  readonly percentilesMs?: readonly { readonly p: number; readonly ms: number }[];
  readonly cpu: CpuPerMessage;
  readonly window: ProfileWindow;
}

/** Keeps `concurrency` messages outstanding in signed batches of `batch`; returns the rate and latencies. */
async function measureLedgerbus(
  peer: RpcPeer,
  key: SigningKeyPair,
  trust: ReturnType<typeof proofTrustOf>,
  options: { concurrency: number; batch: number; messages: number; messageBytes: number },
): Promise<LedgerbusRun> {
  const signer = trust.signing.signer(key);
  let seq = Date.now() * 1000;
  let nextId = 0;
  const latencies: number[] = [];
  const batchesInFlight = Math.max(1, Math.floor(options.concurrency / options.batch));
  const submitBatch = async (count: number): Promise<void> => {
    const started = performance.now();
    const batch: MessageMetadata[] = Array.from({ length: count }, () => ({
      id: `bench-${nextId++}-${randomBytes(4).toString('hex')}`,
      topic: 'demo',
      partition: 0,
      key: null,
      recipients: ['org2'],
      size: options.messageBytes,
      contentRoot: randomBytes(32),
      contentType: 'application/octet-stream',
      headers: {},
    }));
    const operation = encodePublish(
      { sender: 'org1', nonce: randomBytes(16), timestamp: Date.now(), messages: batch },
      signer,
    );
    const request = encodeClientRequest(
      { group: 'demo/0', client: signer.publicKey, seq: seq++, operation },
      signer.sign,
    );
    const answer = (await peer.request('publish', { group: 'demo/0', request })) as Record<string, unknown>;
    const evidence = blockEvidenceSchema.parse(answer['evidence'], 'evidence');
    const result = decodeTransactionResult(evidence.result);
    if (result.status !== 'OK' || result.type !== 'publish')
      throw new Error(`batch refused: ${JSON.stringify(result)}`);
    // What a connector does with every acknowledgement: check the proof of (here) its first message.
    verifyAcceptance({ block: evidence, messageIndex: 0 }, trust);
    const elapsed = performance.now() - started;
    for (let index = 0; index < count; index++) latencies.push(elapsed);
  };
  // Warm-up, not measured.
  await Promise.all(Array.from({ length: batchesInFlight }, () => submitBatch(Math.min(options.batch, 50))));
  latencies.length = 0;
  let remaining = options.messages;
  const cpuBefore = sampleCpu(nodePids());
  const fromMicros = monotonicMicros();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: batchesInFlight }, async () => {
      while (remaining > 0) {
        const count = Math.min(options.batch, remaining);
        remaining -= count;
        await submitBatch(count);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuPerMessage(cpuBefore, sampleCpu(nodePids()), options.messages, seconds);
  const window = { fromMicros, toMicros: monotonicMicros() };
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    concurrency: options.concurrency,
    batch: options.batch,
    messagesPerSecond: options.messages / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    messages: options.messages,
    seconds,
    ...(sizesGiven ? { messageBytes: options.messageBytes } : {}),
    ...(percentiles === undefined
      ? {}
      : { percentilesMs: percentiles.map((p) => ({ p, ms: nearestRank(sorted, p) })) }),
    cpu,
    window,
  };
}

async function startNetwork(): Promise<{
  peer: RpcPeer;
  key: SigningKeyPair;
  trust: ReturnType<typeof proofTrustOf>;
}> {
  for (const name of nodeNames)
    network.start(
      name,
      {},
      profileDirectory === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(profileDirectory, name)}`],
    );
  const connectorConfig = loadConnectorConfig(network.layout.connectorConfigs[0] as string);
  const key = loadSigningKey(connectorConfig.keyFile);
  const registry = loadGenesisRegistry(connectorConfig.genesis);
  const node1 = registry.node('node1');
  if (node1 === undefined) throw new Error('node1 missing from the devnet genesis');
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const connection = await connectFramed({
        host: node1.host,
        port: node1.port,
        identity: key,
        expectedPublicKey: node1.publicKey,
        timeoutMs: 2_000,
      });
      const peer = new RpcPeer(connection, { requestTimeoutMs: 60_000 });
      const status = (await peer.request('status', {})) as { peers: string[] };
      if (status.peers.length === 3) return { peer, key, trust: proofTrustOf(registry) };
      peer.close();
    } catch {
      // not up yet
    }
    if (Date.now() > deadline)
      throw new Error(`the network did not start:\n${network.logTails(nodeNames, 20)}`);
    await sleep(300);
  }
}

/** Where the nodes' CPU went, by area, per committed message, in the measured window of the last run. */
function profileBreakdown(directory: string, runs: readonly LedgerbusRun[]): CpuBreakdown {
  const run = runs.at(-1) as LedgerbusRun;
  const breakdown = cpuBreakdown(
    nodeNames.map((name) => join(directory, name)),
    run.window,
    nodeNames.map((name) => run.cpu.byProcessMicros[name] ?? 0),
  );
  process.stdout.write(`node1 top self time (wall ms in the window):\n`);
  for (const entry of breakdown.topSelf) process.stdout.write(`  ${entry.ms} ms  ${entry.name}\n`);
  process.stdout.write(`nodes' CPU per committed message, by area (profile shares × /proc CPU):\n`);
  for (const [area, micros] of Object.entries(breakdown.byAreaMicros).sort((a, b) => b[1] - a[1]))
    process.stdout.write(`  ${area.padEnd(20)} ${micros} µs\n`);
  return breakdown;
}

async function main(): Promise<void> {
  progress('starting 4 ledgerbus nodes ...');
  const connection = await startNetwork();
  const ledgerbus: LedgerbusRun[] = [];
  const sizeLabel = (bytes: number): string => (sizesGiven ? `${bytes} B ` : '');
  for (const messageBytes of messageSizes) {
    for (const concurrency of concurrencies) {
      const batch =
        values.batch === undefined ? Math.max(1, Math.floor(concurrency / 4)) : Number(values.batch);
      progress(
        `ledgerbus: ${messages} messages${sizesGiven ? ` of ${messageBytes} B` : ''}, ${concurrency} in flight, batches of ${batch} ...`,
      );
      const run = await measureLedgerbus(connection.peer, connection.key, connection.trust, {
        concurrency,
        batch,
        messages,
        messageBytes,
      });
      ledgerbus.push(run);
      process.stdout.write(
        `ledgerbus  ${sizeLabel(messageBytes)}c=${concurrency} batch=${batch}: ${round(run.messagesPerSecond, 0)} msg/s, p50 ${round(run.p50Ms, 1)} ms, p99 ${round(run.p99Ms, 1)} ms, CPU ${run.cpu.totalMicros} µs/msg (${run.cpu.coresBusy} cores busy)\n`,
      );
    }
  }
  connection.peer.close();
  // SIGTERM lets each node stop cleanly, which is when Node writes its CPU profile.
  await Promise.all(
    nodeNames.map((name) => network.kill(name, profileDirectory === undefined ? 'SIGKILL' : 'SIGTERM')),
  );
  const breakdown =
    profileDirectory === undefined ? undefined : profileBreakdown(profileDirectory, ledgerbus);
  const jetstream: (JetStreamPublishResult & { concurrency: number; messageBytes?: number })[] = [];
  if (!values['skip-jetstream']) {
    progress('starting a 3-node JetStream cluster ...');
    const jetDirectory = mkdtempSync(join(tmpdir(), 'ledgerbus-bench-jetstream-'));
    cluster = await startJetStreamCluster({ directory: jetDirectory });
    try {
      for (const messageBytes of messageSizes) {
        for (const concurrency of concurrencies) {
          const run = await measureJetStreamPublish({
            urls: cluster.urls,
            messageBytes,
            messages,
            concurrency,
            ...(percentiles === undefined ? {} : { percentiles }),
            cpuOf: new Map(cluster.pids.map((pid, index) => [`nats-server n${index + 1}`, pid])),
          });
          jetstream.push({ ...run, concurrency, ...(sizesGiven ? { messageBytes } : {}) });
          process.stdout.write(
            `jetstream  ${sizeLabel(messageBytes)}c=${concurrency}: ${round(run.messagesPerSecond, 0)} msg/s, p50 ${round(run.p50Ms, 1)} ms, p99 ${round(run.p99Ms, 1)} ms (nats-server ${cluster.version}, lazy fsync), CPU ${run.cpu?.totalMicros ?? '?'} µs/msg (${run.cpu?.coresBusy ?? '?'} cores busy)\n`,
          );
        }
      }
    } finally {
      await cluster.stop();
      rmSync(jetDirectory, { recursive: true, force: true });
    }
  }
  const headline = ledgerbus.at(-1) as LedgerbusRun;
  const peer = jetstream.find(
    (run) => run.concurrency === headline.concurrency && run.messageBytes === headline.messageBytes,
  );
  writeBenchResult({
    name: 'publish',
    value: round(headline.messagesPerSecond, 0),
    unit: 'messages/s',
    reference:
      peer === undefined
        ? 'none (JetStream skipped)'
        : `NATS JetStream ${cluster?.version ?? ''} 3-node R3 file stream, publish-with-ack, same size and concurrency, same run (acks before fsync)`,
    referenceValue: round(peer?.messagesPerSecond ?? 0, 0),
    ratio: peer === undefined ? 0 : round(headline.messagesPerSecond / peer.messagesPerSecond, 3),
    summary: {
      concurrency: headline.concurrency,
      batch: headline.batch,
      p50Ms: round(headline.p50Ms, 1),
      p99Ms: round(headline.p99Ms, 1),
      jetstreamP50Ms: round(peer?.p50Ms ?? 0, 1),
      jetstreamP99Ms: round(peer?.p99Ms ?? 0, 1),
      cpuMicrosPerMessage: headline.cpu.totalMicros,
      jetstreamCpuMicrosPerMessage: peer?.cpu?.totalMicros ?? 0,
    },
    details: {
      messageBytes: sizesGiven ? messageSizes : defaultMessageBytes,
      messages,
      ...(percentiles === undefined ? {} : { percentiles }),
      ...(breakdown === undefined ? {} : { cpuBreakdownMicros: breakdown.byAreaMicros }),
      ledgerbus,
      jetstream,
    },
  });
}

try {
  await main();
} finally {
  await cleanUp();
}
process.exit(0);
