/**
 * `npm run bench:scale`: does throughput grow with partitions? Runs 1, 2 and 4 partitions and
 * reports ratio = throughput at 4 ÷ (4 × throughput at 1); goal ≥ 0.8.
 *
 * The model (bench/lib/scale-*.ts) is a discrete-event simulation in VIRTUAL time:
 * - each partition is a PBFT group of 4 replicas, each the production partition driver
 *   (src/partition/driver.ts around a `PbftReplica` core; production tuning, batches of 1024) on its
 *   OWN simulated machine, as Kafka brokers are: adding partitions adds machines;
 * - a machine has one CPU: it handles one input at a time (the driver steps the core and carries out
 *   its Ready: persist, store, send, execute), in arrival order; the REAL time that takes, measured with
 *   performance.now() and including real Ed25519 signing and verification through node:crypto, is
 *   charged to that machine's virtual clock;
 * - every directed link has a one-way latency (default 0.5 ms) and a bandwidth (default 1 Gbit/s):
 *   a message waits for its link (FIFO), takes bytes·8 ÷ bandwidth to send, then `latency` to arrive;
 * - each partition has its own closed-loop clients (2 × batch requests outstanding), every request
 *   signed before anything is timed and sent to every replica; a request is done when its block is
 *   certified at some replica, whose reply then brings the client's next request;
 * - the global ledger is a 3-voter Raft group (`RaftNode` cores on 3 more machines, same model). Every
 *   50 virtual ms its leader fetches the newly certified blocks from one replica of each partition
 *   and proposes one entry per block (the fetch is served ahead of the replica's queued consensus
 *   input, as a block-store read would be, but its CPU cost is charged to the replica's machine);
 *   every member, applying an entry, re-verifies the block
 *   (chain, transactions root, and its 2f+1 = 3 Ed25519 certificate signatures) before appending it.
 *   Replication lag = apply time at the leader − first certification time of the block, also shown
 *   in parts (p50): certified at the fetch replica, fetched by the leader, replicated and applied.
 *   At the end, every member's ledger must hold each partition's chain (block count and a sha256
 *   digest chain of the block hashes, against those the partition certified) and all members the same
 *   sequence (else it throws).
 *
 * Memory: all 4 × P + 3 machines share this process's heap, so the bench's own storage is kept flat
 * (replicas drop blocks every ledger member holds, keeping a state-transfer tail; members keep per
 * partition a count, the head hash and a digest, and snapshot it every 16 entries so Raft compacts
 * its log). "heap MB" is heapUsed at the end of a run (live state only under `node --expose-gc`).
 * What still grows with partitions × requests is inside the cores and the application (PbftReplica's
 * committed/verified request tables and the simulator state machine's seen keys in each replica's
 * contract state), i.e. real per-replica state that separate machines would hold in separate heaps.
 *
 * Clock: by default a piece of work costs this process's CPU time (process.cpuUsage, microseconds),
 * which leaves out time the OS gave to other processes; `--clock wall` charges performance.now()
 * elapsed time instead. On a loaded shared machine wall time is badly perturbed: with a load average
 * of 10 on 2 cores, a descheduling of this process was charged to one Raft member as hundreds of ms
 * of work and cost the ledger its leader, and the longest run (4 partitions) is the most exposed.
 * Either way the cost per request grows somewhat with the number
 * of partitions although the simulated machines are independent (one heap, one set of CPU caches for
 * all of them; see "cpu ms/req"), so the ratio this reports is, if anything, pessimistic.
 *
 * Threads: the simulation runs on ONE thread, runs one after another. A simulated machine's cost is
 * real time measured while nothing else of ours runs; on a shared 2-core machine, worker threads
 * running other simulated machines (or other runs) alongside would slow each other down and inflate
 * exactly the numbers we measure. Real CPU time is charged to independent virtual CPUs instead, which
 * is what lets one thread stand in for 4 × P + 3 machines. A short warm-up run (not reported) comes
 * first, so the 1-partition run is not measured on cold code.
 *
 * Options: --requests N (per partition, default 20000), --partitions 1,2,4, --latency-ms 0.5,
 * --bandwidth-mbps 1000, --batch 1024, --clients N (per partition, default 2 × batch),
 * --payload-bytes 64, --fetch-interval-ms 50, --warmup N (requests, 0 for none), --clock wall|cpu,
 * --gc-stats, --help.
 */
import { parseArgs } from 'node:util';
import { SimKeyring } from '../src/sim/sim-crypto.js';
import { measureEd25519VerifyRate } from './lib/ed25519-rate.js';
import { machineInfo, round, writeBenchResult } from './lib/results.js';
import { presignRequests } from './lib/scale-partition.js';
import { runScale } from './lib/scale-run.js';
import type { RunOptions, RunResult } from './lib/scale-run.js';
import type { ClockKind } from './lib/scale-sim.js';

const usage = `Usage: npm run bench:scale -- [options]

  --requests N            requests per partition (default 20000)
  --partitions LIST       partition counts to run (default 1,2,4; ratio needs 1 and 4)
  --latency-ms MS         one-way latency of every link (default 0.5)
  --bandwidth-mbps MBPS   bandwidth of every link in Mbit/s (default 1000)
  --batch N               PBFT batch size (default 1024)
  --clients N             outstanding requests per partition (default 2 × batch)
  --payload-bytes N       request payload size (default 64)
  --fetch-interval-ms MS  global ledger fetch interval in virtual ms (default 50)
  --warmup N              requests of an unreported 1-partition warm-up run (default 2000; 0 = none)
  --clock cpu|wall        how work is timed: process CPU time (default) or performance.now()
  --gc-stats              profile garbage collection (adds cost to the work it interrupts)
  --help                  this text
`;

interface Options {
  readonly requests: number;
  readonly partitionCounts: readonly number[];
  readonly latencyMs: number;
  readonly bandwidthMbps: number;
  readonly batch: number;
  readonly clients: number;
  readonly payloadBytes: number;
  readonly fetchIntervalMs: number;
  readonly warmup: number;
  readonly clock: ClockKind;
  readonly gcStats: boolean;
}

function parseOptions(): Options | undefined {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '20000' },
      partitions: { type: 'string', default: '1,2,4' },
      'latency-ms': { type: 'string', default: '0.5' },
      'bandwidth-mbps': { type: 'string', default: '1000' },
      batch: { type: 'string', default: '1024' },
      clients: { type: 'string' },
      'payload-bytes': { type: 'string', default: '64' },
      'fetch-interval-ms': { type: 'string', default: '50' },
      warmup: { type: 'string', default: '2000' },
      clock: { type: 'string', default: 'cpu' },
      'gc-stats': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  const integer = (name: string, text: string, min: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
    return value;
  };
  const positive = (name: string, text: string, allowZero = false): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
      throw new Error(`--${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
    }
    return value;
  };
  const batch = integer('batch', values.batch, 1);
  const clock = values.clock;
  if (clock !== 'wall' && clock !== 'cpu') throw new Error('--clock must be wall or cpu');
  const partitionCounts = [
    ...new Set(values.partitions.split(',').map((part) => integer('partitions', part, 1))),
  ].sort((a, b) => a - b);
  return {
    requests: integer('requests', values.requests, 1),
    partitionCounts,
    latencyMs: positive('latency-ms', values['latency-ms'], true),
    bandwidthMbps: positive('bandwidth-mbps', values['bandwidth-mbps']),
    batch,
    clients: values.clients === undefined ? 2 * batch : integer('clients', values.clients, 1),
    payloadBytes: integer('payload-bytes', values['payload-bytes'], 1),
    fetchIntervalMs: positive('fetch-interval-ms', values['fetch-interval-ms']),
    warmup: integer('warmup', values.warmup, 0),
    clock,
    gcStats: values['gc-stats'],
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function runOptions(options: Options, label: string): RunOptions {
  return {
    link: { latencyMs: options.latencyMs, bandwidthBitsPerSecond: options.bandwidthMbps * 1e6 },
    clock: options.clock,
    gcStats: options.gcStats,
    replicas: 4,
    batchRequestsMax: options.batch,
    clients: options.clients,
    tickMs: 10,
    // A backup: the primary does the most work of the group.
    fetchReplica: 1,
    ledger: {
      members: 3,
      tickMs: 10,
      electionTicks: 10,
      heartbeatTicks: 2,
      fetchIntervalMs: options.fetchIntervalMs,
      fetchBlocksMax: 64,
      // Small enough to compact within a default run (about 25 blocks per partition); the log keeps
      // one more interval, so a follower a few entries behind still gets entries, not a snapshot.
      snapshotEntries: 16,
    },
    virtualLimitMs: 3_600_000,
    label,
  };
}

function formatRow(result: RunResult): string {
  return [
    String(result.partitions).padStart(10),
    String(result.requests).padStart(9),
    result.throughput.toFixed(0).padStart(12),
    (result.throughput / result.partitions).toFixed(0).padStart(14),
    result.virtualSeconds.toFixed(2).padStart(10),
    result.wallSeconds.toFixed(1).padStart(7),
    result.averageBatch.toFixed(0).padStart(6),
    result.lagMs.p50.toFixed(1).padStart(8),
    result.lagMs.p99.toFixed(1).padStart(8),
    result.lagMs.max.toFixed(1).padStart(8),
    (100 * result.partitionCpu.max).toFixed(0).padStart(8),
    (100 * result.ledgerCpu.max).toFixed(1).padStart(8),
    result.cpuMsPerRequest.toFixed(3).padStart(9),
    result.lagPartsMs.fetchReplica.p50.toFixed(1).padStart(8),
    result.lagPartsMs.fetch.p50.toFixed(1).padStart(8),
    result.lagPartsMs.replicate.p50.toFixed(1).padStart(8),
    (result.heapUsedBytes / 2 ** 20).toFixed(0).padStart(7),
    ...(result.gc.count > 0
      ? [String(result.gc.count).padStart(5), result.gc.ms.toFixed(0).padStart(7)]
      : []),
  ].join(' ');
}

const header = [
  'partitions'.padStart(10),
  'requests'.padStart(9),
  'msgs/s'.padStart(12),
  'per partition'.padStart(14),
  'virtual s'.padStart(10),
  'wall s'.padStart(7),
  'batch'.padStart(6),
  'lag p50'.padStart(8),
  'lag p99'.padStart(8),
  'lag max'.padStart(8),
  'cpu% P'.padStart(8),
  'cpu% L'.padStart(8),
  'cpu ms/req'.padStart(9),
  'lag: r→'.padStart(8),
  'fetch'.padStart(8),
  'raft'.padStart(8),
  'heap MB'.padStart(7),
].join(' ');
const gcHeader = ['GCs'.padStart(5), 'GC ms'.padStart(7)].join(' ');

function main(): void {
  const options = parseOptions();
  if (options === undefined) return;
  const maxPartitions = Math.max(...options.partitionCounts);
  const keyring = new SimKeyring('ed25519');
  progress(
    `scale bench: pre-signing ${options.requests} requests for each of ${maxPartitions} partitions ` +
      `(${options.clients} clients each)`,
  );
  const requestsByPartition = Array.from({ length: maxPartitions }, (_, p) =>
    presignRequests(keyring, p, options.requests, options.clients, options.payloadBytes),
  );
  const verifyRate = measureEd25519VerifyRate(1000).verifiesPerSecond;
  progress(`scale bench: ${Math.round(verifyRate)} Ed25519 verify/s on one thread`);

  if (options.warmup > 0) {
    progress(`warm-up: 1 partition, ${options.warmup} requests (not reported)`);
    const warmupRequests = presignRequests(keyring, 0, options.warmup, options.clients, options.payloadBytes);
    runScale(keyring, [warmupRequests], runOptions(options, 'warm-up'));
  }

  const results: RunResult[] = [];
  process.stdout.write(
    `PBFT partitions (4 machines each) + 3-member Raft global ledger; links ${options.latencyMs} ms, ` +
      `${options.bandwidthMbps} Mbit/s; real Ed25519; virtual time\n${header}` +
      `${options.gcStats ? ` ${gcHeader}` : ''}\n`,
  );
  for (const count of options.partitionCounts) {
    progress(`${count} partition(s): ${count * options.requests} requests`);
    const result = runScale(keyring, requestsByPartition.slice(0, count), runOptions(options, `P=${count}`));
    results.push(result);
    process.stdout.write(`${formatRow(result)}\n`);
  }

  const one = results.find((result) => result.partitions === 1);
  const four = results.find((result) => result.partitions === 4);
  const headline = four ?? results.at(-1)!;
  const base = one ?? results[0]!;
  const reference = headline.partitions * (base.throughput / base.partitions);
  const ratio = headline.throughput / reference;
  process.stdout.write(
    `ratio = throughput at ${headline.partitions} ÷ (${headline.partitions} × throughput at ${base.partitions}) = ` +
      `${ratio.toFixed(3)} (goal ≥ 0.8)\n`,
  );
  const byCount = (result: RunResult): string => `p${result.partitions}`;
  writeBenchResult({
    name: 'scale',
    value: round(headline.throughput, 1),
    unit: 'messages/s',
    reference: `${headline.partitions} × throughput at ${base.partitions} partition${base.partitions === 1 ? '' : 's'}`,
    referenceValue: round(reference, 1),
    ratio: round(ratio),
    summary: {
      ...Object.fromEntries(
        results.map((result) => [`${byCount(result)}Throughput`, round(result.throughput, 1)]),
      ),
      lagP50Ms: round(headline.lagMs.p50, 2),
      lagP99Ms: round(headline.lagMs.p99, 2),
      latencyMs: options.latencyMs,
      bandwidthMbps: options.bandwidthMbps,
    },
    details: {
      machine: machineInfo(),
      options,
      ed25519VerifiesPerSecond: round(verifyRate, 1),
      model: {
        replicasPerPartition: 4,
        ledgerMembers: 3,
        tickMs: 10,
        threads: 'one; real CPU time charged to per-machine virtual clocks',
      },
      runs: results,
    },
  });
}

main();
