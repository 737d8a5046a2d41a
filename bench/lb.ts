/**
 * `npm run bench:lb`: how the connector's node balancer (DESIGN §9, src/connector/session/
 * node-balancer.ts) copes with one slow node, against round robin and least-loaded, in one run.
 *
 * A real network: 4 organizations × 2 nodes (`ledgerbus dev --nodes-per-org 2`: node1..node4 host the
 * partition, org1-node2.. forward), every node its own process. The clients are org1's connectors,
 * run in this process, one per leg (each its own data directory), whose link to node1 passes through
 * a fault proxy (test/chaos/fault-proxy.ts, the chaos harness's FaultLink; connector.yaml
 * `nodes: [{ id: node1, address: <proxy> }, org1-node2]`). node1 is the node made slow: one of org1's
 * two nodes (publishes) and one of the partition's four replicas (reads), so both kinds of request
 * can avoid it. The legs:
 *   healthy (adaptive)  its proxy adds nothing: the baseline;
 *   slow, <policy>      round-robin, least-loaded and adaptive, through a proxy that delays every
 *                       byte 100 ms each way (+200 ms a round trip).
 * --rounds rounds, each a read window then a publish window of every leg in turn (interleaved, so the
 * shared machine's changing load falls on every leg alike; reads and publishes apart, so neither
 * queues behind the other on 2 cores); a window is --warmup s, then --seconds s measured, with
 * requests arriving at random (Poisson, open loop) at --read-rate per second, each asking a sent
 * message's status (a `message` read, which any replica answers), or at --publish-rate per second,
 * each sending one 1 KiB message (publish: signed, ordered by PBFT, acknowledged with its proof). The
 * read rate stays under the per-node quota of an organization (1,000 requests/s by default), which
 * the balancer would otherwise meet rather than the slow node. Then the recovery: the adaptive leg reads for 5 s against the slow
 * node (its share in the last 2 s is printed), the delay is lifted under the same load, and node1's share of each second's reads is sampled until it is back to 5% two seconds in
 * a row (the time is the first of the two; at most --recovery-seconds).
 *
 * Printed: p50/p99 of each leg and node1's share of its requests, the ratios adaptive p99 ÷ healthy
 * p99 (goal ≤ 1.3) and adaptive p99 ÷ round-robin p99 (goal ≤ 0.25) for publishes and reads, and the
 * time to return traffic; the JSON line last, results in bench/results/lb-latest.json.
 *
 * Options: --base-port N (26720), --rounds N (2), --seconds N (6), --warmup N (2), --read-rate N
 * (300), --publish-rate N (10), --decay-ms N (3000: the balancer's time constant), --delay-ms N (100, each way), --recovery-seconds N (60), --dir D (kept).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { SeededRandom } from '../src/consensus/seeded-random.js';
import { Connector } from '../src/connector/connector.js';
import { loadConnectorConfig } from '../src/connector/config.js';
import type { BalancerPolicy, NodeStats } from '../src/connector/session/node-balancer.js';
import { openStorage } from '../src/connector/storage/index.js';
import { isLedgerbusError } from '../src/errors.js';
import { loadEncryptionKey } from '../src/crypto/envelope/index.js';
import { loadSigningKey } from '../src/crypto/index.js';
import { loadGenesisRegistry } from '../src/node/config.js';
import { liveRegistryFromGenesis } from '../src/registry/live-registry.js';
import { createLogger } from '../src/runtime/logger.js';
import { FaultLink } from '../test/chaos/fault-proxy.js';
import { ProcessNetwork } from '../test/support/process-network.js';
import { assertPortFree, sleep } from '../test/support/processes.js';
import { round, writeBenchResult } from './lib/results.js';
import { showHelpIfAsked } from './lib/help.js';

showHelpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    'base-port': { type: 'string', default: '26720' },
    seconds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    'publish-rate': { type: 'string', default: '10' },
    'read-rate': { type: 'string', default: '300' },
    'delay-ms': { type: 'string', default: '100' },
    'decay-ms': { type: 'string', default: '3000' },
    'recovery-seconds': { type: 'string', default: '60' },
    dir: { type: 'string' },
  },
});
const basePort = Number(args['base-port']);
const seconds = Number(args.seconds);
const warmupSeconds = Number(args.warmup);
const rounds = Number(args.rounds);
const publishRate = Number(args['publish-rate']);
const readRate = Number(args['read-rate']);
const delayMs = Number(args['delay-ms']);
const decayMs = Number(args['decay-ms']);
const recoverySeconds = Number(args['recovery-seconds']);
const slowNode = 'node1';

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Nearest-rank percentile of `values` (ms). */
function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Seeded uniform draws in [0, 1): every run makes the same choices. */
function seeded(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.uniform();
}

interface Summary {
  count: number;
  errors: number;
  p50: number;
  p99: number;
}

/** One way of choosing nodes, with its own connector (own data directory) and its own link to node1. */
interface Leg {
  readonly name: string;
  readonly policy: BalancerPolicy;
  readonly link: FaultLink;
  connector?: Connector;
  readonly latencies: { publish: number[]; read: number[] };
  readonly errors: { publish: number; read: number };
  /** Requests started on each node in the measured windows, per kind. */
  readonly requests: { publish: Map<string, number>; read: Map<string, number> };
}

const directory = args.dir ?? mkdtempSync(join(tmpdir(), 'ledgerbus-bench-lb-'));
const network = new ProcessNetwork(directory, basePort, 'tsx', 2);
const layout = network.layout;
const nodeNames = layout.network.nodes.map((node) => node.id);
for (const node of layout.network.nodes) {
  const colon = node.address.lastIndexOf(':');
  await assertPortFree(
    node.address.slice(0, colon),
    Number(node.address.slice(colon + 1)),
    node.id,
    'pick another --base-port',
  );
}
const node1 = layout.network.nodes.find((node) => node.id === slowNode)!;
const node1Port = Number(node1.address.slice(node1.address.lastIndexOf(':') + 1));
// The baseline's connector reaches node1 through a proxy too, so that the extra hop is no difference.
const healthyLink = new FaultLink(
  'connector-org1',
  slowNode,
  { host: '127.0.0.1', port: node1Port },
  seeded(1),
);
const slowLink = new FaultLink('connector-org1', slowNode, { host: '127.0.0.1', port: node1Port }, seeded(2));
await healthyLink.listen();
await slowLink.listen();
const config = loadConnectorConfig(layout.connectorConfigs[0]!);
const genesis = loadGenesisRegistry(config.genesis).genesis;

const legs: Leg[] = (
  [
    ['healthy (adaptive)', 'adaptive', healthyLink],
    ['slow, round-robin', 'round-robin', slowLink],
    ['slow, least-loaded', 'least-loaded', slowLink],
    ['slow, adaptive', 'adaptive', slowLink],
  ] as const
).map(([name, policy, link]) => ({
  name,
  policy,
  link,
  latencies: { publish: [], read: [] },
  errors: { publish: 0, read: 0 },
  requests: { publish: new Map(), read: new Map() },
}));

/**
 * org1's connector for `leg`, in this process. Each leg has a data directory of its own (a
 * connector owns its directory), all for the same organization and keys.
 */
async function startConnector(leg: Leg, index: number): Promise<Connector> {
  const dataDirectory = `${config.dataDirectory}-${index}`;
  const connector = new Connector({
    organization: config.organization,
    signingKey: loadSigningKey(config.keyFile),
    encryptionKey: loadEncryptionKey(config.encryptionKeyFile),
    registry: liveRegistryFromGenesis(genesis),
    storage: await openStorage({ kind: 'filesystem', directory: join(dataDirectory, 'payloads') }),
    dataDirectory,
    nodes: [{ id: slowNode, address: `127.0.0.1:${leg.link.port}` }, { id: 'org1-node2' }],
    balancer: { policy: leg.policy, decayMs },
    logger: createLogger({ name: `bench-lb-${index}`, level: 'error' }),
    random: seeded(100 + index),
  });
  connector.start();
  return connector;
}

async function publishOne(connector: Connector, index: number): Promise<string> {
  const id = `lb-${Date.now().toString(36)}-${index}-${Math.floor(performance.now() * 1000).toString(36)}`;
  const payload = Buffer.alloc(1024, index % 251);
  await connector.send('demo', [{ id, value: Readable.from([payload]), size: payload.length, to: ['org2'] }]);
  return id;
}

function requestsByNode(connector: Connector): Map<string, number> {
  return new Map(connector.nodeStats().map((stats: NodeStats) => [stats.id, stats.requests]));
}

function addDeltas(into: Map<string, number>, before: Map<string, number>, after: Map<string, number>): void {
  for (const [id, count] of after) into.set(id, (into.get(id) ?? 0) + count - (before.get(id) ?? 0));
}

function sharesOf(counts: Map<string, number>): Record<string, number> {
  const total = [...counts.values()].reduce((sum, count) => sum + count, 0);
  return Object.fromEntries(
    nodeNames.map((id) => [id, total === 0 ? 0 : round((counts.get(id) ?? 0) / total, 4)]),
  );
}

/** Failed requests in the measured windows, by error code. */
const errorCodes = new Map<string, number>();

/** Ids of the messages published so far (readers ask for their status). */
const sentIds: string[] = [];

/**
 * Sends publishes or reads to `connector` until `stop()` says so; latencies recorded while
 * `recording()`. A read asks the status of any message published so far, at random.
 */
function load(
  connector: Connector,
  kind: 'publish' | 'read',
  recording: () => boolean,
  stop: () => boolean,
): { latencies: number[]; errors: number; done: Promise<void> } {
  const latencies: number[] = [];
  const result = { latencies, errors: 0, done: Promise.resolve() };
  const countError = (error: unknown): void => {
    result.errors += 1;
    const code = isLedgerbusError(error) ? error.code : 'other';
    errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1);
  };
  const random = seeded(7);
  let counter = 0;
  // Open loop (Poisson arrivals at a fixed rate), as clients arrive: a closed loop would slow down
  // with the node it waits for and hide the very tail this measures (coordinated omission).
  const rate = kind === 'publish' ? publishRate : readRate;
  const one = async (): Promise<void> => {
    const started = performance.now();
    try {
      if (kind === 'publish') sentIds.push(await publishOne(connector, counter++));
      else await connector.status('demo', sentIds[Math.floor(random() * sentIds.length)]!, { partition: 0 });
      if (recording()) latencies.push(performance.now() - started);
    } catch (error) {
      if (recording()) countError(error);
    }
  };
  result.done = (async () => {
    const inFlight = new Set<Promise<void>>();
    let next = performance.now();
    while (!stop()) {
      next += (-Math.log(1 - random()) * 1000) / rate;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      const request = one();
      inFlight.add(request);
      void request.finally(() => inFlight.delete(request));
    }
    await Promise.all(inFlight);
  })();
  return result;
}

/** One window of `kind` requests on `leg`'s connector: a warm-up, then --seconds measured. */
async function window(leg: Leg, kind: 'publish' | 'read'): Promise<void> {
  const connector = leg.connector!;
  let recording = false;
  let stopped = false;
  const running = load(
    connector,
    kind,
    () => recording,
    () => stopped,
  );
  await sleep(warmupSeconds * 1000);
  const before = requestsByNode(connector);
  recording = true;
  await sleep(seconds * 1000);
  recording = false;
  addDeltas(leg.requests[kind], before, requestsByNode(connector));
  stopped = true;
  await running.done;
  leg.latencies[kind].push(...running.latencies);
  leg.errors[kind] += running.errors;
}

function summarize(values: readonly number[], errors: number): Summary {
  return {
    count: values.length,
    errors,
    p50: round(percentile(values, 50), 1),
    p99: round(percentile(values, 99), 1),
  };
}

/**
 * With the delay lifted under read load: seconds until node1 takes at least 5% of a one-second
 * window's reads two seconds in a row (undefined if not within --recovery-seconds), and the shares.
 */
async function recovery(
  connector: Connector,
): Promise<{ seconds?: number; samples: number[]; before: number; estimateMs: number }> {
  let stopped = false;
  const running = load(
    connector,
    'read',
    () => false,
    () => stopped,
  );
  // Reading against the slow node long enough that the balancer has settled on avoiding it (the leg
  // was idle while the others ran, and its estimates decayed meanwhile).
  await sleep(3000);
  const settled = requestsByNode(connector);
  await sleep(2000);
  const last = new Map<string, number>();
  addDeltas(last, settled, requestsByNode(connector));
  const beforeShare = sharesOf(last)[slowNode] ?? 0;
  const estimateMs =
    connector.nodeStats().find((stats) => stats.id === slowNode)?.latencyMs['message'] ?? Number.NaN;
  slowLink.delay(0);
  const started = performance.now();
  const samples: number[] = [];
  let returned: number | undefined;
  let firstBack: number | undefined;
  let before = requestsByNode(connector);
  while (performance.now() - started < recoverySeconds * 1000) {
    await sleep(1000);
    const after = requestsByNode(connector);
    const window = new Map<string, number>();
    addDeltas(window, before, after);
    before = after;
    const share = sharesOf(window)[slowNode] ?? 0;
    samples.push(share);
    // Two seconds in a row, so that one probe's luck is not taken for a return.
    if (share >= returnShare) {
      if (firstBack !== undefined) {
        returned = round(firstBack, 1);
        break;
      }
      firstBack = (performance.now() - started) / 1000;
    } else {
      firstBack = undefined;
    }
  }
  stopped = true;
  await running.done;
  return {
    ...(returned === undefined ? {} : { seconds: returned }),
    samples,
    before: beforeShare,
    estimateMs: round(estimateMs, 1),
  };
}

const returnShare = 0.05;
const load1 = loadavg()[0]!;
log(
  `bench:lb — 4 organizations × 2 nodes in ${directory}; ${readRate} reads/s, ${publishRate} publishes/s; ${slowNode} slowed by ${delayMs} ms each way; decay ${decayMs} ms; ${rounds} rounds of ${warmupSeconds}+${seconds} s windows; load average ${load1.toFixed(2)}`,
);
let recovered: Awaited<ReturnType<typeof recovery>>;
try {
  // Only the nodes: the clients are this process's connectors for org1; nobody needs to receive.
  for (const name of nodeNames) network.start(name);
  slowLink.delay(delayMs);
  for (const [index, leg] of legs.entries()) leg.connector = await startConnector(leg, index);
  const first = legs[0]!.connector!;
  const readyBy = Date.now() + 120_000;
  for (;;) {
    try {
      sentIds.push(await publishOne(first, 0));
      break;
    } catch (error) {
      if (Date.now() > readyBy) throw error;
      await sleep(500);
    }
  }
  for (let index = 1; index < 20; index++) sentIds.push(await publishOne(first, index));
  log('network ready');
  // Interleaved, so that the shared machine's changing load falls on every leg alike.
  for (let roundIndex = 0; roundIndex < rounds; roundIndex++) {
    for (const kind of ['read', 'publish'] as const) {
      for (const leg of legs) await window(leg, kind);
    }
    log(`round ${roundIndex + 1} of ${rounds} done`);
  }
  const adaptiveLeg = legs[3]!;
  recovered = await recovery(adaptiveLeg.connector!);
  log(
    `recovery: ${slowNode} had ${round(recovered.before * 100, 2)}% of the reads in the 2 s before it healed (its read estimate ${recovered.estimateMs} ms); back to ≥ ${returnShare * 100}% after ${recovered.seconds ?? `more than ${recoverySeconds}`} s (its share per second: ${recovered.samples.join(', ')})`,
  );
} finally {
  for (const leg of legs) await leg.connector?.stop();
  healthyLink.close();
  slowLink.close();
  await network.stopAll(5_000);
  if (args.dir === undefined) rmSync(directory, { recursive: true, force: true });
}

const results = legs.map((leg) => ({
  name: leg.name,
  policy: leg.policy,
  publish: summarize(leg.latencies.publish, leg.errors.publish),
  read: summarize(leg.latencies.read, leg.errors.read),
  publishShares: sharesOf(leg.requests.publish),
  readShares: sharesOf(leg.requests.read),
}));
const [healthy, roundRobin, leastLoaded, adaptive] = results as [
  (typeof results)[number],
  (typeof results)[number],
  (typeof results)[number],
  (typeof results)[number],
];
const ratio = (a: number, b: number): number => round(a / b, 3);
const ratios = {
  publishVsHealthy: ratio(adaptive.publish.p99, healthy.publish.p99),
  publishVsRoundRobin: ratio(adaptive.publish.p99, roundRobin.publish.p99),
  readVsHealthy: ratio(adaptive.read.p99, healthy.read.p99),
  readVsRoundRobin: ratio(adaptive.read.p99, roundRobin.read.p99),
};
const cell = (value: number | string, width: number): string => String(value).padStart(width);
const table = [
  '',
  `leg                      publish p50     p99  ${slowNode}%    read p50     p99  ${slowNode}%   (ms; ${slowNode}% = its share of the requests)`,
  ...results.map(
    (result) =>
      `${result.name.padEnd(22)} ${cell(result.publish.p50, 13)} ${cell(result.publish.p99, 7)} ${cell(round((result.publishShares[slowNode] ?? 0) * 100, 1), 6)} ${cell(result.read.p50, 11)} ${cell(result.read.p99, 7)} ${cell(round((result.readShares[slowNode] ?? 0) * 100, 1), 6)}`,
  ),
  '',
  `adaptive p99 ÷ healthy p99:      publish ${ratios.publishVsHealthy} · read ${ratios.readVsHealthy}   (goal ≤ 1.3)`,
  `adaptive p99 ÷ round-robin p99:  publish ${ratios.publishVsRoundRobin} · read ${ratios.readVsRoundRobin}   (goal ≤ 0.25)`,
  `least-loaded p99 ÷ round-robin:  publish ${ratio(leastLoaded.publish.p99, roundRobin.publish.p99)} · read ${ratio(leastLoaded.read.p99, roundRobin.read.p99)}`,
  `traffic back to ${slowNode} after it healed (≥ ${returnShare * 100}% of reads): ${recovered.seconds === undefined ? `not within ${recoverySeconds} s` : `${recovered.seconds} s`}`,
  `errors (publish+read): ${results.map((result) => `${result.name} ${result.publish.errors}+${result.read.errors}`).join(', ')}${errorCodes.size === 0 ? '' : ` — ${[...errorCodes].map(([code, count]) => `${code} ×${count}`).join(', ')}`}`,
  '',
];
log(table.join('\n'));
writeBenchResult({
  name: 'lb',
  value: adaptive.read.p99,
  unit: 'ms (adaptive p99 of reads with one slow node)',
  reference: 'round-robin p99 of reads with the same slow node, same run',
  referenceValue: roundRobin.read.p99,
  ratio: ratios.readVsRoundRobin,
  summary: {
    ...ratios,
    healthyPublishP99: healthy.publish.p99,
    healthyReadP99: healthy.read.p99,
    recoverySeconds: recovered.seconds ?? -1,
    readGoalsMet: ratios.readVsHealthy <= 1.3 && ratios.readVsRoundRobin <= 0.25,
    publishGoalsMet: ratios.publishVsHealthy <= 1.3 && ratios.publishVsRoundRobin <= 0.25,
  },
  details: {
    delayMsEachWay: delayMs,
    decayMs,
    publishRate,
    readRate,
    rounds,
    seconds,
    warmupSeconds,
    loadAverageBefore: load1,
    loadAverageAfter: loadavg()[0],
    legs: results,
    errorCodes: Object.fromEntries(errorCodes),
    recovery: recovered,
  },
});
