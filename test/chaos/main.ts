// Chaos run on a real multi-process devnet, the way Jepsen tests Kafka and etcd: producers publish to a
// genesis topic and to a topic created (and grown) at runtime through the Raft layer, while a seeded
// schedule SIGKILLs and restarts nodes (the topic's Raft leader among them), pauses processes, restarts
// connectors, cuts, black-holes and slows the links between nodes through fault proxies, and runs the
// nodes on skewed clocks. The recipients' applications (SDK consumers in this process) consume
// throughout. Afterwards every acknowledged message must have been handed to its recipient's
// application exactly once with the right hash, the replicas' ledgers and global ledgers must agree
// and verify, and the run must have acknowledged enough per minute and in every fault window. Every
// problem the checks find fails the run.
// Usage: npm run chaos -- --minutes M [--seed S]
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { SeededRandom } from '../../src/consensus/seeded-random.js';
import type { TopicDescription } from '../../src/connector/api-types.js';
import { SigningDomain } from '../../src/crypto/index.js';
import type { GroupMembership } from '../../src/ledger/block.js';
import { loadGenesisRegistry } from '../../src/node/config.js';
import { ProcessNetwork } from '../support/process-network.js';
import { sleep, waitFor } from '../support/processes.js';
import { checkDeliveries, checkLedgers, checkThroughput, countProblems, globalLedgerLag } from './checker.js';
import type { AckedMessage, FaultWindow, GroupSpec, Problem } from './checker.js';
import { FaultNetwork } from './fault-proxy.js';
import { ApplicationConsumer, admin, drainApplications, json, produce } from './load.js';
import type { Producer } from './load.js';

const nodeCount = 4;
const nodes = Array.from({ length: nodeCount }, (_, index) => index + 1);
const deliveryTimeoutMs = 180_000;
/** Clocks stay within ±maxSkewMs of true time: pairwise under PBFT's 5 s proposal-timestamp policy. */
const maxSkewMs = 2_000;
const fakeTimeLibraries = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1',
  '/usr/lib/faketime/libfaketimeMT.so.1',
];
const runtimeTopic = 'chaos';
/**
 * A fault's window: from its start until this long after it healed. Producers time a request out
 * after 15 s, so a request stuck in a split recovers within about that; the run produces until the
 * last window ends.
 */
const recoveryMs = 20_000;
/**
 * Acknowledgement floors, well below what runs measure, so that a run which stalled or tested too
 * little fails. Measured with `npm run chaos:ci` (seed 1, 2 minutes, the recipients' applications
 * consuming) on a 2-CPU machine shared with other test runs (load average 10-30): 838 acks per
 * minute with the machine least busy, 258 and 242 with it busy, 141, 66 and 37 with it most busy;
 * the fewest acknowledged in one fault window was 249, 64 and 62 (36, 10 and 0 in the busiest runs,
 * the last during a 42 s stall). Each floor is about a quarter of the busy runs' figure.
 */
const ackFloorPerMinute = 60;
const ackFloorPerWindow = 15;

const usage = `usage: npm run chaos -- --minutes M [--seed S] [--keep]

Runs a 4-node devnet with its connectors under publish load and seeded faults, then checks that every
acknowledged message was handed to its recipient's application exactly once, that the ledgers agree
and verify, and that at least ${ackFloorPerMinute} messages per minute and ${ackFloorPerWindow} per fault window were
acknowledged. Prints one JSON line {"acked","ackedPerMinute","delivered",...,"problems":{kind: count},
"faults":{...}}; exits 1 if any check found a problem.

  --minutes M  how long to publish under faults (default 1)
  --seed S     seed of the fault schedule (default 1)
  --keep       keep the temporary network directory (logs, databases) afterwards

Needs libfaketime for the skewed clocks (Debian: apt-get install faketime).`;

interface Faults {
  nodeKill: number;
  raftLeaderKill: number;
  nodePause: number;
  connectorRestart: number;
  isolate: number;
  split: number;
  slowLinks: number;
  clockSkew: number;
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

/** Starts and restarts nodes, each time on a clock skewed by a seeded amount within policy. */
class Nodes {
  readonly skews = new Map<string, number>();

  constructor(
    private readonly net: ProcessNetwork,
    private readonly random: SeededRandom,
    private readonly faketime: string,
    private readonly faults: Faults,
  ) {}

  start(name: string): void {
    const skewMs = this.random.int(-maxSkewMs, maxSkewMs);
    this.skews.set(name, skewMs);
    if (skewMs !== 0) this.faults.clockSkew += 1;
    this.net.start(name, {
      LD_PRELOAD: this.faketime,
      FAKETIME: `${skewMs >= 0 ? '+' : '-'}${(Math.abs(skewMs) / 1000).toFixed(3)}`,
      // Only the wall clock moves: timers (monotonic) stay true, as on a host whose NTP is off.
      DONT_FAKE_MONOTONIC: '1',
    });
  }

  async killAndRestart(name: string, downMs: number): Promise<void> {
    await this.net.kill(name, 'SIGKILL');
    // The restart happens even when the run ends meanwhile, so the node never stays down.
    await sleep(downMs);
    this.start(name);
  }
}

async function topicLeader(net: ProcessNetwork, topic: string): Promise<string | undefined> {
  for (const organization of ['org2', 'org4', 'org1', 'org3']) {
    try {
      const description = await json<TopicDescription>(
        await net.api(organization, `/v1/topics/${topic}`, { signal: AbortSignal.timeout(5_000) }),
        'describe',
      );
      if (description.raft.leader !== '') return description.raft.leader;
    } catch {
      // that connector or its node is down: ask another
    }
  }
  return undefined;
}

/** One fault at a time, so at most one node (f = 1 of a partition's 4 replicas) is down or cut off. */
async function injectFaults(
  net: ProcessNetwork,
  cluster: Nodes,
  links: FaultNetwork,
  random: SeededRandom,
  faults: Faults,
  windows: FaultWindow[],
  stop: () => boolean,
): Promise<void> {
  const wait = async (ms: number): Promise<void> => {
    const until = Date.now() + ms;
    while (!stop() && Date.now() < until) await sleep(Math.min(250, until - Date.now()));
  };
  for (;;) {
    await wait(random.int(3_000, 10_000));
    if (stop()) return;
    const kind = random.int(0, 6);
    const node = `node${random.int(1, nodeCount)}`;
    const start = Date.now();
    const fault = await injectFault(net, cluster, links, random, faults, kind, node);
    if (fault !== undefined) windows.push({ fault, start, end: Date.now() + recoveryMs });
  }
}

/** Injects one fault and heals it; returns what it was, or undefined if none was injected. */
async function injectFault(
  net: ProcessNetwork,
  cluster: Nodes,
  links: FaultNetwork,
  random: SeededRandom,
  faults: Faults,
  kind: number,
  node: string,
): Promise<string | undefined> {
  if (kind === 0) {
    const downMs = random.int(2_000, 8_000);
    const fault = `SIGKILL ${node}, restart after ${downMs} ms`;
    progress(`fault: ${fault}`);
    faults.nodeKill += 1;
    await cluster.killAndRestart(node, downMs);
    return fault;
  }
  if (kind === 1) {
    const leader = await topicLeader(net, runtimeTopic);
    if (leader === undefined) return undefined;
    const downMs = random.int(2_000, 8_000);
    const fault = `SIGKILL ${leader}, the Raft leader of topic ${runtimeTopic}; restart after ${downMs} ms`;
    progress(`fault: ${fault}`);
    faults.raftLeaderKill += 1;
    await cluster.killAndRestart(leader, downMs);
    return fault;
  }
  if (kind === 2) {
    const pausedMs = random.int(1_000, 6_000);
    const fault = `SIGSTOP ${node}, SIGCONT after ${pausedMs} ms`;
    progress(`fault: ${fault}`);
    faults.nodePause += 1;
    process.kill(net.pid(node), 'SIGSTOP');
    try {
      await sleep(pausedMs);
    } finally {
      process.kill(net.pid(node), 'SIGCONT');
    }
    return fault;
  }
  if (kind === 3) {
    const organization = `org${random.int(1, nodeCount)}`;
    const name = `connector-${organization}`;
    const fault = `SIGKILL and restart ${name}`;
    progress(`fault: ${fault}`);
    faults.connectorRestart += 1;
    await net.kill(name, 'SIGKILL');
    net.start(name);
    await net.waitHealthy(organization, 60_000).catch((error: unknown) => {
      progress(`${name} not healthy yet: ${String(error)}`);
    });
    return fault;
  }
  if (kind === 4) {
    const state = random.int(0, 1) === 0 ? 'cut' : 'blackhole';
    const forMs = random.int(3_000, 12_000);
    const fault = `${state} every link of ${node} for ${forMs} ms`;
    progress(`fault: ${fault}`);
    faults.isolate += 1;
    links.partition([node], state);
    await sleep(forMs);
    links.heal();
    return fault;
  }
  if (kind === 5) {
    const first = random.int(1, nodeCount);
    const second = ((first - 1 + random.int(1, nodeCount - 1)) % nodeCount) + 1;
    const side = [`node${first}`, `node${second}`];
    const forMs = random.int(3_000, 8_000);
    const fault = `split ${side.join('+')} from the others for ${forMs} ms (no quorum on either side)`;
    progress(`fault: ${fault}`);
    faults.split += 1;
    links.partition(side, 'cut');
    await sleep(forMs);
    links.heal();
    return fault;
  }
  const delayMs = random.int(20, 250);
  const jitterMs = random.int(0, 100);
  const forMs = random.int(5_000, 15_000);
  const fault = `delay every link of ${node} by ${delayMs}+${jitterMs} ms for ${forMs} ms`;
  progress(`fault: ${fault}`);
  faults.slowLinks += 1;
  links.slow([node], delayMs, jitterMs);
  await sleep(forMs);
  links.heal();
  return fault;
}

/** Points every node at its own proxy for each peer (node config `peers`). */
function routeThroughProxies(net: ProcessNetwork, links: FaultNetwork): void {
  net.layout.nodeConfigs.forEach((path, index) => {
    const config = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown>;
    config['peers'] = links.peersOf(`node${index + 1}`);
    writeFileSync(path, stringifyYaml(config));
  });
}

async function groupsToCheck(net: ProcessNetwork): Promise<{ specs: GroupSpec[]; runtimeGroups: string[] }> {
  const registry = loadGenesisRegistry(join(net.directory, 'genesis.json'));
  const specs: GroupSpec[] = [
    { group: 'demo/0', membership: (epoch) => registry.membership('demo/0', epoch) },
  ];
  const description = await waitFor(
    `a description of topic ${runtimeTopic}`,
    async () =>
      json<TopicDescription>(await net.api('org2', `/v1/topics/${runtimeTopic}`), `describe ${runtimeTopic}`),
    60_000,
    1_000,
  );
  for (const partition of description.partitions) {
    // No replica set changes during a run: each partition's one epoch is its replicas' genesis keys.
    const members = new Map<string, Uint8Array>();
    for (const id of partition.replicas) {
      const key = registry.node(id)?.publicKey;
      if (key !== undefined) members.set(id, key);
    }
    const membership: GroupMembership = {
      signing: SigningDomain.of(registry.network),
      partitionId: partition.group,
      configEpoch: partition.configEpoch,
      members,
    };
    specs.push({
      group: partition.group,
      membership: (epoch) => (epoch === partition.configEpoch ? membership : undefined),
    });
  }
  return { specs, runtimeGroups: description.partitions.map((partition) => partition.group) };
}

function findFakeTime(): string {
  const library = fakeTimeLibraries.find((path) => existsSync(path));
  if (library === undefined) {
    process.stderr.write('chaos: libfaketime not found; install it (Debian: apt-get install faketime)\n');
    process.exit(2);
  }
  return library;
}

async function main(): Promise<number> {
  const { minutes, seed, keep } = parseOptions();
  const faketime = findFakeTime();
  const random = new SeededRandom(seed);
  const jitter = new SeededRandom(seed ^ 0x5eed);
  const basePort = 23_400 + (seed % 100) * 10;
  const directory = mkdtempSync(join(tmpdir(), `ledgerbus-chaos-${seed}-`));
  const net = new ProcessNetwork(join(directory, 'net'), basePort);
  const links = new FaultNetwork(
    new Map(
      net.layout.network.nodes.map((node) => {
        const colon = node.address.lastIndexOf(':');
        return [node.id, { host: node.address.slice(0, colon), port: Number(node.address.slice(colon + 1)) }];
      }),
    ),
    () => jitter.nextUint32() / 2 ** 32,
  );
  let interrupted = false;
  const onSignal = (): void => {
    // The run's own cleanup stops the children; a second signal gives up on it.
    if (interrupted) process.exit(130);
    interrupted = true;
    progress('interrupted: stopping');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const faults: Faults = {
    nodeKill: 0,
    raftLeaderKill: 0,
    nodePause: 0,
    connectorRestart: 0,
    isolate: 0,
    split: 0,
    slowLinks: 0,
    clockSkew: 0,
  };
  const cluster = new Nodes(net, random, faketime, faults);
  const consumers: ApplicationConsumer[] = [];
  let keepDirectory = keep;
  try {
    progress(`seed ${seed}, ${minutes} min, base port ${basePort}, directory ${directory}`);
    await links.start();
    routeThroughProxies(net, links);
    for (const name of net.names) {
      if (name.startsWith('node')) cluster.start(name);
      else net.start(name);
    }
    await Promise.all(
      ['org1', 'org2', 'org3', 'org4'].map((organization) => net.waitHealthy(organization, 90_000)),
    );
    progress(`clocks skewed by ${[...cluster.skews].map(([name, ms]) => `${name} ${ms} ms`).join(', ')}`);
    const deadline = Date.now() + minutes * 60_000;
    const stop = (): boolean => interrupted || Date.now() >= deadline;
    await admin(
      net,
      'org1',
      {
        kind: 'createTopic',
        name: runtimeTopic,
        partitions: 2,
        producers: ['org1', 'org3'],
        consumers: ['org2', 'org4'],
      },
      () => interrupted,
    );
    progress(`topic ${runtimeTopic} created with 2 partitions: producing under faults`);

    const acked: AckedMessage[] = [];
    const prefix = `chaos-${seed}-${Date.now()}`;
    const producers: Producer[] = [
      { sender: 'org1', recipient: 'org2', topic: 'demo', keyed: false },
      { sender: 'org3', recipient: 'org4', topic: runtimeTopic, keyed: true },
      { sender: 'org1', recipient: 'org4', topic: runtimeTopic, keyed: true },
    ];
    // Each recipient's application consumes its topics from the start, through faults and all.
    for (const recipient of new Set(producers.map((producer) => producer.recipient))) {
      const topics = producers.filter((producer) => producer.recipient === recipient).map((p) => p.topic);
      consumers.push(new ApplicationConsumer(net, recipient, [...new Set(topics)]).start());
    }
    const ticker = setInterval(
      () =>
        progress(
          `acked ${acked.length}, handed to applications ${consumers.reduce((sum, consumer) => sum + consumer.handed.length, 0)}`,
        ),
      10_000,
    );
    const grow = (async (): Promise<void> => {
      // Halfway, the runtime topic grows to 3 partitions while faults go on (Kafka's --alter --partitions).
      while (!stop() && Date.now() < deadline - (minutes * 60_000) / 2) await sleep(500);
      if (stop()) return;
      progress(`topic ${runtimeTopic}: adding a third partition`);
      await admin(net, 'org1', { kind: 'addPartitions', topic: runtimeTopic, count: 3 }, () => interrupted);
      progress(`topic ${runtimeTopic} has 3 partitions`);
    })();
    // Producing goes on until the deadline and the last fault's window has ended.
    const windows: FaultWindow[] = [];
    let producingUntil = Number.POSITIVE_INFINITY;
    const producingStart = Date.now();
    const faulting = injectFaults(net, cluster, links, random, faults, windows, stop).then(() => {
      producingUntil = Math.max(deadline, ...windows.map((window) => window.end));
    });
    const [outcomes] = await Promise.all([
      Promise.all(
        producers.map((producer) =>
          produce(net, producer, prefix, acked, () => interrupted || Date.now() >= producingUntil),
        ),
      ),
      faulting,
      grow,
    ]);
    const producingEnd = Date.now();
    clearInterval(ticker);
    const unacked = outcomes.reduce((sum, outcome) => sum + outcome.unacked, 0);
    const attempts = outcomes.reduce((sum, outcome) => sum + outcome.attempts, 0);
    progress(`producing stopped: ${acked.length} acked, ${unacked} given up, ${attempts} attempts`);

    // Heal: every link up, every process running and none paused, whatever the schedule left behind.
    links.heal();
    for (const name of net.names) {
      if (net.running(name)) process.kill(net.pid(name), 'SIGCONT');
      else if (name.startsWith('node')) cluster.start(name);
      else net.start(name);
    }
    for (const organization of ['org1', 'org2', 'org3', 'org4']) await net.waitHealthy(organization, 90_000);

    const { handed, stored } = await drainApplications(
      net,
      consumers,
      acked,
      deliveryTimeoutMs,
      (pending) => progress(`waiting for delivery: ${pending} message(s) not handed to an application yet`),
      () => interrupted,
    );
    const deliveries = checkDeliveries(acked, handed, stored);

    // The Raft layer: every node's global ledgers catch up with the partitions' certified blocks.
    const { specs, runtimeGroups } = await groupsToCheck(net);
    const partitionFile = (node: number, group: string): string => net.partitionDatabase(node, group);
    let globalLag: string | undefined;
    await waitFor(
      'every global ledger to equal the partition ledgers',
      () => {
        globalLag =
          globalLedgerLag(nodes, partitionFile, 'demo', ['demo/0']) ??
          globalLedgerLag(nodes, partitionFile, runtimeTopic, runtimeGroups);
        return globalLag === undefined ? true : undefined;
      },
      120_000,
      1_000,
    ).catch(() => undefined);

    await net.stopAll();
    const ledgers = checkLedgers(nodes, partitionFile, specs, acked);
    const floors = {
      start: producingStart,
      end: producingEnd,
      minPerMinute: ackFloorPerMinute,
      windows,
      minPerWindow: ackFloorPerWindow,
    };
    const problems: Problem[] = [
      ...deliveries.problems,
      ...ledgers.problems,
      ...checkThroughput(acked, floors),
    ];
    if (globalLag !== undefined)
      problems.push({ kind: 'globalLedgerBehind', detail: `global ledger: ${globalLag}` });
    progress(
      `ledger heights ${Object.entries(ledgers.heads)
        .map(([group, heads]) => `${group} ${heads.join('/')}`)
        .join(', ')}`,
    );
    for (const consumer of consumers)
      for (const crash of consumer.crashes) progress(`application of ${consumer.recipient}: ${crash}`);
    for (const problem of problems.slice(0, 50)) progress(`PROBLEM ${problem.kind}: ${problem.detail}`);

    const ackedIn = (from: number, to: number): number =>
      acked.filter((message) => message.ackedAt >= from && message.ackedAt < to).length;
    const report = {
      seed,
      minutes,
      producedSeconds: Math.round((producingEnd - producingStart) / 1000),
      acked: acked.length,
      ackedPerMinute: Math.round((acked.length * 60_000) / (producingEnd - producingStart)),
      ackedEachMinute: Array.from(
        { length: Math.ceil((producingEnd - producingStart) / 60_000) },
        (_, minute) => ackedIn(producingStart + minute * 60_000, producingStart + (minute + 1) * 60_000),
      ),
      windowAcks: windows.map((window) => ackedIn(window.start, window.end + 1)),
      floors: { perMinute: ackFloorPerMinute, perWindow: ackFloorPerWindow, recoveryMs },
      delivered: deliveries.delivered,
      handed: handed.length,
      redelivered: deliveries.redelivered,
      consumerIncarnations: consumers.reduce((sum, consumer) => sum + consumer.incarnations, 0),
      unacked,
      problems: countProblems(problems),
      faults,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    const failed = problems.length > 0;
    if (failed) {
      keepDirectory = true;
      progress(`FAILED (seed ${seed}): ${problems.length} problem(s); logs kept in ${net.logs}`);
      process.stderr.write(`${net.logTails(net.names, 20)}\n`);
    }
    return failed || interrupted ? 1 : 0;
  } catch (error) {
    keepDirectory = true;
    progress(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.stderr.write(`${net.logTails(net.names, 20)}\n`);
    return 1;
  } finally {
    await Promise.all(consumers.map((consumer) => consumer.stop()));
    links.heal();
    // Paused children would ignore SIGTERM until continued.
    for (const name of net.names) if (net.running(name)) process.kill(net.pid(name), 'SIGCONT');
    await net.stopAll();
    links.close();
    if (!keepDirectory) rmSync(directory, { recursive: true, force: true });
  }
}

process.exitCode = await main();
