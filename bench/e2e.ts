/**
 * `npm run bench:e2e` (issue 17): what an application sees end to end. The SDK producer on org1's
 * connector sends 1 KiB messages to org2, `--in-flight` callers each sending ONE message per
 * `producer.send()` (what applications do; batching them is the connector's business), and the SDK
 * consumer on org2's connector, subscribed before the first send, is handed them in `eachMessage`.
 * Reported: delivered messages/s (first send to last delivery), latency from `send` to `eachMessage`
 * (p50, p99), the send's own latency to its acknowledgement (p50, p99), and CPU µs per delivered
 * message summed over every process (4 nodes, 4 connectors, this client).
 *
 * The whole network runs: 4 node processes (PBFT over pinned TLS, SQLite with fsync before votes and
 * acks) and 4 connector processes (org1's encrypts and keeps the payload — a payload of at most
 * 4 KiB, as here, travels inside its publish — and org2's verifies, decrypts and stores it; the
 * consumer fetches each payload from org2's connector and commits once per page). In the same
 * run, a 3-node NATS JetStream cluster (R3 file stream) carries the same messages: publish-with-ack
 * with as many in flight, and a durable pull consumer (`consume()`, explicit acks) on a second
 * connection, latency from publish to the consumer being handed the message. The installed
 * nats-server (2.9) acks before fsync; ledgerbus fsyncs. Both settings are also run as a "newcomer"
 * would write it: 16 callers, one 200-byte message per send.
 *
 * Every payload carries its setting, index and send time (bench/lib/e2e-load.ts): a message lost,
 * handed out twice, or not one of ours fails the run (exit code 1, no result file).
 *
 * Options: --messages N (measured, per setting; default 5000), --in-flight N (64), --message-bytes N
 * (1024), --warmup N (messages sent first in each setting, not reported; 500), --newcomer-messages N
 * (1000; 0 skips the newcomer setting), --stall-seconds N (60: this long without a delivery is a
 * loss), --skip-jetstream, --json-only (no human lines on stdout, only the JSON line),
 * --base-port N (27800: nodes base+1.., connectors base+101.., JetStream base+50.., +60.., +70..),
 * --cpu-prof DIR (each node and connector writes a V8 CPU profile into DIR/<name>, and the result
 * says where each process's CPU went during the main setting, by area: `cpuBreakdownByProcess`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Ledgerbus } from '../src/client/index.js';
import type { Consumer, LedgerbusConfig } from '../src/client/index.js';
import { ProcessNetwork } from '../test/support/process-network.js';
import { cleanUpOnSignals } from '../test/support/processes.js';
import { assertNetworkPortsFree } from './lib/devnet.js';
import { areas, cpuBreakdown, monotonicMicros } from './lib/cpu-profile.js';
import type { Area, ProfileWindow } from './lib/cpu-profile.js';
import { Deliveries, runSetting, stampBytes } from './lib/e2e-load.js';
import type { SendOne, SettingResult } from './lib/e2e-load.js';
import { startJetStreamCluster } from './lib/jetstream-cluster.js';
import type { JetStreamCluster } from './lib/jetstream-cluster.js';
import { measureJetStreamEndToEnd } from './lib/jetstream-consume.js';
import type { JetStreamEndToEndResult } from './lib/jetstream-consume.js';
import { round, writeBenchResult } from './lib/results.js';
import { decodeWith } from '../src/codec/index.js';
import { publishResultLeafSchema } from '../src/contracts/results.js';
import { decodeAcceptanceProof, isCompactProof } from '../src/proofs/index.js';
import { showHelpIfAsked } from './lib/help.js';

const newcomerCallers = 16;
const newcomerBytes = 200;
const topic = 'demo';

showHelpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    'in-flight': { type: 'string', default: '64' },
    'message-bytes': { type: 'string', default: '1024' },
    warmup: { type: 'string', default: '500' },
    'newcomer-messages': { type: 'string', default: '1000' },
    'stall-seconds': { type: 'string', default: '60' },
    'skip-jetstream': { type: 'boolean', default: false },
    'json-only': { type: 'boolean', default: false },
    'base-port': { type: 'string', default: '27800' },
    'cpu-prof': { type: 'string' },
  },
  strict: true,
});

function integer(name: string, minimum: number): number {
  const value = Number(values[name as keyof typeof values]);
  if (!Number.isInteger(value) || value < minimum)
    throw new Error(`--${name} must be an integer ≥ ${minimum}`);
  return value;
}
const messages = integer('messages', 1);
const inFlight = integer('in-flight', 1);
const messageBytes = integer('message-bytes', stampBytes);
const warmup = integer('warmup', 0);
const newcomerMessages = integer('newcomer-messages', 0);
const stallMs = integer('stall-seconds', 1) * 1000;
const basePort = integer('base-port', 1024);

interface Setting {
  readonly name: 'main' | 'newcomer';
  readonly inFlight: number;
  readonly messageBytes: number;
  readonly messages: number;
}
const settings: Setting[] = [
  { name: 'main', inFlight, messageBytes, messages },
  ...(newcomerMessages > 0
    ? [
        {
          name: 'newcomer' as const,
          inFlight: newcomerCallers,
          messageBytes: newcomerBytes,
          messages: newcomerMessages,
        },
      ]
    : []),
];

const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-bench-e2e-'));
const network = new ProcessNetwork(directory, basePort);
let consumer: Consumer | undefined;
let cluster: JetStreamCluster | undefined;
let jetDirectory: string | undefined;

async function cleanUp(): Promise<void> {
  const running = consumer;
  consumer = undefined;
  await running?.stop().catch(() => undefined);
  await Promise.all(network.names.map((name) => network.kill(name, 'SIGKILL')));
  const jet = cluster;
  cluster = undefined;
  await jet?.stop();
  // Retries: a process killed a moment ago may still have had a file open in there.
  rmSync(directory, { recursive: true, force: true, maxRetries: 5 });
  if (jetDirectory !== undefined) rmSync(jetDirectory, { recursive: true, force: true, maxRetries: 5 });
}
cleanUpOnSignals('stopping the network and the JetStream cluster', cleanUp);

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function say(text: string): void {
  if (!values['json-only']) process.stdout.write(`${text}\n`);
}

function describe(system: string, setting: Setting, run: SettingResult): string {
  const label =
    setting.name === 'newcomer'
      ? `newcomer (${run.inFlight} callers × ${run.messageBytes} B)`
      : `${run.messageBytes} B, ${run.inFlight} in flight`;
  const cpu =
    run.cpu === undefined ? '' : `, CPU ${run.cpu.totalMicros} µs/msg (${run.cpu.coresBusy} cores busy)`;
  return (
    `${system.padEnd(9)} ${label}: ${round(run.deliveredPerSecond, 0)} delivered msg/s ` +
    `(${round(run.ackedPerSecond, 0)} acked/s), ` +
    `send→receive p50 ${round(run.endToEndP50Ms, 1)} ms p99 ${round(run.endToEndP99Ms, 1)} ms, ` +
    `send ack p50 ${round(run.sendP50Ms, 1)} ms p99 ${round(run.sendP99Ms, 1)} ms${cpu}`
  );
}

/** Where a ledgerbus message's time went: before the recipient's connector stored it, and after. */
function describeStored(run: SettingResult): string | undefined {
  if (run.storedP50Ms === undefined || run.storedP99Ms === undefined) return undefined;
  return `          send→stored by org2's connector p50 ${round(run.storedP50Ms, 1)} ms p99 ${round(run.storedP99Ms, 1)} ms (the rest is the consumer's)`;
}

function describeCpuByProcess(run: SettingResult): string {
  const entries = Object.entries(run.cpu?.byProcessMicros ?? {}).sort((a, b) => b[1] - a[1]);
  return `          CPU µs/msg by process: ${entries.map(([name, micros]) => `${name} ${micros}`).join(', ')}`;
}

/** With --cpu-prof: the main setting's window, and where each process's CPU went in it. */
let mainWindow: ProfileWindow | undefined;
let breakdownByProcess: Record<string, Record<Area, number>> | undefined;

/**
 * Each process's CPU µs per message (from /proc) split by area in the shares of its own profile's
 * busy samples (lib/cpu-profile.ts). The bench client is not profiled, so it is not in here.
 */
function profileBreakdown(
  profiles: string,
  window: ProfileWindow,
  run: SettingResult,
): Record<string, Record<Area, number>> {
  const byProcess: Record<string, Record<Area, number>> = {};
  for (const name of network.names) {
    const micros = run.cpu?.byProcessMicros[name];
    if (micros === undefined) continue;
    byProcess[name] = { ...cpuBreakdown([join(profiles, name)], window, [micros]).byAreaMicros };
  }
  return byProcess;
}

function describeBreakdown(byProcess: Record<string, Record<Area, number>>): string[] {
  const names = Object.keys(byProcess);
  const cell = (text: string): string => text.padStart(15);
  return [
    '          CPU µs/msg by area (main setting, profiled processes):',
    `          ${'area'.padEnd(20)}${names.map(cell).join('')}`,
    ...areas.map(
      (area) =>
        `          ${area.padEnd(20)}${names.map((name) => cell(String(Math.round(byProcess[name]?.[area] ?? 0)))).join('')}`,
    ),
  ];
}

async function measureLedgerbus(): Promise<Map<Setting['name'], SettingResult>> {
  await assertNetworkPortsFree(network, 'pick another --base-port');
  progress('starting 4 ledgerbus nodes and 4 connectors ...');
  try {
    const profiles = values['cpu-prof'];
    await network.startAll(90_000, (name) =>
      profiles === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(profiles, name)}`],
    );
  } catch (error) {
    throw new Error(`the network did not start: ${String(error)}\n${network.logTails(network.names, 20)}`, {
      cause: error,
    });
  }
  const connectorOf = (organization: string): LedgerbusConfig => {
    const { url, token } = network.connector(organization);
    return { connector: url, token };
  };
  const sender = new Ledgerbus(connectorOf('org1'));
  const receiver = new Ledgerbus(connectorOf('org2'));
  const producer = sender.producer();
  await producer.connect();
  const deliveries = new Deliveries();
  consumer = receiver.consumer({ groupId: 'bench-e2e' });
  consumer.on('crash', (error) =>
    deliveries.fail(error instanceof Error ? error : new Error(`the consumer crashed: ${String(error)}`)),
  );
  consumer.on('retry', ({ error, attempt }) => progress(`consumer retry ${attempt}: ${String(error)}`));
  await consumer.connect();
  // Subscribed before anything is sent: "from now" then means every message of this run.
  await consumer.subscribe({ topic });
  await consumer.run({
    eachMessage: async ({ message }) =>
      deliveries.receive(message.value, performance.now(), message.id, message.receivedAt),
  });
  const send: SendOne = async (payload, id) => {
    const [result] = await producer.send({ topic, messages: [{ id, value: payload, to: ['org2'] }] });
    if (result?.id !== id) throw new Error(`send of ${id} answered ${JSON.stringify(result)}`);
    publishSizes.push(messagesInPublish(result.proof));
  };
  const cpuOf = new Map(network.names.map((name) => [name, network.pid(name)]));
  const runs = new Map<Setting['name'], SettingResult>();
  for (const [position, setting] of settings.entries()) {
    const common = { inFlight: setting.inFlight, messageBytes: setting.messageBytes, stallMs };
    if (warmup > 0) {
      progress(`ledgerbus ${setting.name}: warm-up, ${warmup} messages ...`);
      await runSetting(deliveries, send, { ...common, phase: 2 * position, messages: warmup });
    }
    progress(
      `ledgerbus ${setting.name}: ${setting.messages} messages of ${setting.messageBytes} B, ${setting.inFlight} in flight ...`,
    );
    publishSizes.length = 0;
    const fromMicros = monotonicMicros();
    const run = await runSetting(deliveries, send, {
      ...common,
      phase: 2 * position + 1,
      messages: setting.messages,
      cpuOf,
    });
    if (setting.name === 'main') mainWindow = { fromMicros, toMicros: monotonicMicros() };
    runs.set(setting.name, run);
    batching.set(setting.name, publishStats(publishSizes));
    say(describe('ledgerbus', setting, run));
    say(`          ${describePublishes(batching.get(setting.name) as PublishStats)}`);
    const stored = describeStored(run);
    if (stored !== undefined) say(stored);
    say(describeCpuByProcess(run));
  }
  // A redelivery after the last message would show up here as a duplicate.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const running = consumer;
  consumer = undefined;
  await running.stop();
  await producer.disconnect();
  const problems = deliveries.problems();
  if (problems.length > 0) throw new Error(`ledgerbus: ${problems.join('; ')}`);
  // The JetStream cluster gets the machine to itself. SIGTERM lets a profiled process write its profile.
  const signal = values['cpu-prof'] === undefined ? 'SIGKILL' : 'SIGTERM';
  await Promise.all(network.names.map((name) => network.kill(name, signal)));
  const profiles = values['cpu-prof'];
  const main = runs.get('main');
  if (profiles !== undefined && mainWindow !== undefined && main !== undefined) {
    breakdownByProcess = profileBreakdown(profiles, mainWindow, main);
    for (const line of describeBreakdown(breakdownByProcess)) say(line);
  }
  return runs;
}

/** How many messages shared each acknowledged message's publish, per measured setting. */
const batching = new Map<Setting['name'], PublishStats>();
const publishSizes: number[] = [];

interface PublishStats {
  /** Messages per publish transaction, averaged over the publishes (not over the messages). */
  readonly meanPerPublish: number;
  readonly max: number;
  /** Publish transactions per message: 1 without coalescing. */
  readonly publishesPerMessage: number;
}

/** The message count of the publish a SendResult's compact proof shows; 1 for a version-1 proof. */
function messagesInPublish(proof: string): number {
  const decoded = decodeAcceptanceProof(Buffer.from(proof, 'base64'));
  return isCompactProof(decoded) ? decodeWith(publishResultLeafSchema, decoded.batch).messageCount : 1;
}

/** Each message reports its publish's size: a publish of k messages is reported k times. */
function publishStats(sizes: readonly number[]): PublishStats {
  const publishes = sizes.reduce((sum, size) => sum + 1 / size, 0);
  return {
    meanPerPublish: round(sizes.length / Math.max(publishes, 1e-9), 1),
    max: sizes.reduce((max, size) => Math.max(max, size), 0),
    publishesPerMessage: round(publishes / Math.max(sizes.length, 1), 3),
  };
}

function describePublishes(stats: PublishStats): string {
  return `messages per publish: mean ${stats.meanPerPublish}, max ${stats.max} (${stats.publishesPerMessage} publishes per message)`;
}

async function measureJetStream(): Promise<Map<Setting['name'], JetStreamEndToEndResult>> {
  progress('starting a 3-node JetStream cluster ...');
  jetDirectory = mkdtempSync(join(tmpdir(), 'ledgerbus-bench-e2e-jetstream-'));
  cluster = await startJetStreamCluster({
    directory: jetDirectory,
    basePort: basePort + 50,
    clusterBasePort: basePort + 60,
    monitorBasePort: basePort + 70,
  });
  const cpuOf = new Map(cluster.pids.map((pid, index) => [`nats-server n${index + 1}`, pid]));
  const runs = new Map<Setting['name'], JetStreamEndToEndResult>();
  for (const setting of settings) {
    progress(
      `jetstream ${setting.name}: ${setting.messages} messages of ${setting.messageBytes} B, ${setting.inFlight} in flight (after ${warmup} warm-up) ...`,
    );
    const run = await measureJetStreamEndToEnd({
      urls: cluster.urls,
      inFlight: setting.inFlight,
      messages: setting.messages,
      messageBytes: setting.messageBytes,
      warmupMessages: warmup,
      stallMs,
      cpuOf,
    });
    runs.set(setting.name, run);
    say(describe('jetstream', setting, run));
    say(describeCpuByProcess(run));
  }
  return runs;
}

async function main(): Promise<void> {
  const ledgerbus = await measureLedgerbus();
  const jetstream = values['skip-jetstream'] ? undefined : await measureJetStream();
  const version = cluster?.version ?? '';
  const headline = ledgerbus.get('main') as SettingResult;
  const peer = jetstream?.get('main');
  const newcomer = ledgerbus.get('newcomer');
  const jetNewcomer = jetstream?.get('newcomer');
  writeBenchResult({
    name: 'e2e',
    value: round(headline.deliveredPerSecond, 0),
    unit: 'delivered messages/s',
    reference:
      peer === undefined
        ? 'none (JetStream skipped)'
        : `NATS JetStream ${version} 3-node R3 file stream, publish-with-ack → durable pull consumer, same messages and in-flight, same run (acks before fsync)`,
    referenceValue: round(peer?.deliveredPerSecond ?? 0, 0),
    ratio: peer === undefined ? 0 : round(headline.deliveredPerSecond / peer.deliveredPerSecond, 3),
    summary: {
      inFlight,
      messageBytes,
      p50Ms: round(headline.endToEndP50Ms, 1),
      p99Ms: round(headline.endToEndP99Ms, 1),
      storedP50Ms: round(headline.storedP50Ms ?? 0, 1),
      storedP99Ms: round(headline.storedP99Ms ?? 0, 1),
      sendP50Ms: round(headline.sendP50Ms, 1),
      sendP99Ms: round(headline.sendP99Ms, 1),
      jetstreamP50Ms: round(peer?.endToEndP50Ms ?? 0, 1),
      jetstreamP99Ms: round(peer?.endToEndP99Ms ?? 0, 1),
      cpuMicrosPerMessage: headline.cpu?.totalMicros ?? 0,
      messagesPerPublish: batching.get('main')?.meanPerPublish ?? 0,
      jetstreamCpuMicrosPerMessage: peer?.cpu?.totalMicros ?? 0,
      ...(newcomer === undefined
        ? {}
        : {
            newcomerMessagesPerSecond: round(newcomer.deliveredPerSecond, 0),
            newcomerSendP50Ms: round(newcomer.sendP50Ms, 1),
          }),
      ...(jetNewcomer === undefined
        ? {}
        : {
            jetstreamNewcomerMessagesPerSecond: round(jetNewcomer.deliveredPerSecond, 0),
            jetstreamNewcomerSendP50Ms: round(jetNewcomer.sendP50Ms, 1),
          }),
    },
    details: {
      warmupMessages: warmup,
      settings,
      ledgerbus: Object.fromEntries(ledgerbus),
      messagesPerPublish: Object.fromEntries(batching),
      ...(breakdownByProcess === undefined ? {} : { cpuBreakdownByProcess: breakdownByProcess }),
      ...(jetstream === undefined ? {} : { jetstream: Object.fromEntries(jetstream), natsServer: version }),
    },
  });
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  process.stderr.write(
    `bench:e2e failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
