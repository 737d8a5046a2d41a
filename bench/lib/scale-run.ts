/**
 * One run of `npm run bench:scale`: P partitions (each a PBFT group on its own machines, with its
 * own clients) and the Raft global ledger, in one simulated world, until every request is certified
 * at every replica and every ledger member holds every block. See bench/scale.ts.
 */
import { performance } from 'node:perf_hooks';
import { GCProfiler } from 'node:v8';
import type { SimKeyring } from '../../src/sim/sim-crypto.js';
import { GlobalLedger } from './scale-ledger.js';
import type { LedgerOptions } from './scale-ledger.js';
import { Partition } from './scale-partition.js';
import { World } from './scale-sim.js';
import type { ClockKind, LinkOptions, Machine } from './scale-sim.js';

export interface RunOptions {
  readonly link: LinkOptions;
  readonly clock: ClockKind;
  /** Profile garbage collection (v8.GCProfiler); it adds cost to the work it interrupts. */
  readonly gcStats: boolean;
  readonly replicas: number;
  readonly batchRequestsMax: number;
  readonly clients: number;
  readonly tickMs: number;
  readonly fetchReplica: number;
  readonly ledger: LedgerOptions;
  /** Virtual time after the clients start by which the run must be over (ms). */
  readonly virtualLimitMs: number;
  readonly label: string;
}

export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface RunResult {
  readonly partitions: number;
  readonly requests: number;
  /** Virtual seconds from the clients' start to the last request acknowledged. */
  readonly virtualSeconds: number;
  readonly throughput: number;
  readonly perPartitionThroughput: readonly number[];
  readonly wallSeconds: number;
  readonly blocks: number;
  readonly averageBatch: number;
  readonly lagMs: Percentiles;
  /** The lag in parts (see GlobalLedger.lagParts). */
  readonly lagPartsMs: {
    readonly fetchReplica: Percentiles;
    readonly fetch: Percentiles;
    readonly replicate: Percentiles;
  };
  /** CPU busy ÷ the whole simulated time, over the partitions' machines and over the ledger's. */
  readonly partitionCpu: { readonly mean: number; readonly max: number };
  readonly ledgerCpu: { readonly mean: number; readonly max: number };
  /** CPU time charged to the partitions' machines per request, summed over the 4 replicas (ms). */
  readonly cpuMsPerRequest: number;
  /** With gcStats: collections during the run, their wall ms, and the largest heap after one. */
  readonly gc: { readonly count: number; readonly ms: number; readonly heapUsedMaxBytes: number };
  /**
   * process.memoryUsage().heapUsed when the run ends (live state plus garbage not yet collected, or
   * only live state under `node --expose-gc`), and
   * the blocks the partitions' replicas still hold in memory then: both should not grow with the
   * number of partitions beyond each partition's bounded share.
   */
  readonly heapUsedBytes: number;
  readonly storedBlocks: number;
  readonly leaderElectedAtMs: number;
  readonly network: { readonly messages: number; readonly bytes: number };
  readonly pbftMessages: number;
  readonly pbftRejected: Record<string, number>;
  readonly ledger: {
    readonly verifiedBlocks: number;
    readonly duplicates: number;
    readonly uncheckedDuplicates: number;
    readonly snapshots: number;
    readonly snapshotsInstalled: number;
    readonly proposals: number;
    readonly refusedProposals: number;
    readonly fetches: number;
    readonly leaderChanges: number;
    readonly messages: number;
    readonly messageBytes: number;
    readonly rejected: Record<string, number>;
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0, mean: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return {
    p50: rank(0.5),
    p99: rank(0.99),
    max: sorted.at(-1)!,
    mean: sorted.reduce((sum, value) => sum + value, 0) / sorted.length,
  };
}

function utilisation(machines: readonly Machine[], durationMs: number): { mean: number; max: number } {
  const shares = machines.map((machine) => machine.busyMs / durationMs);
  return { mean: shares.reduce((sum, share) => sum + share, 0) / shares.length, max: Math.max(...shares) };
}

/** Runs partitions 0..requestsByPartition.length-1, each with its own pre-signed requests. */
export function runScale(
  keyring: SimKeyring,
  requestsByPartition: readonly (readonly Uint8Array[])[],
  options: RunOptions,
): RunResult {
  const world = new World(options.link, options.clock);
  const gc = options.gcStats ? new GCProfiler() : undefined;
  gc?.start();
  const partitions = requestsByPartition.map(
    (requests, index) =>
      new Partition(
        world,
        keyring,
        {
          index,
          replicas: options.replicas,
          batchRequestsMax: options.batchRequestsMax,
          clients: options.clients,
          tickMs: options.tickMs,
          fetchReplica: options.fetchReplica,
        },
        requests,
      ),
  );
  const ledger = new GlobalLedger(world, partitions, options.ledger);
  const wallStart = performance.now();
  const events = world.events;

  // Elect the ledger's leader first, so its election is not counted as replication lag.
  ledger.start();
  while (!ledger.hasLeader()) {
    if (!events.runNext() || events.now > 60_000) throw new Error(`no ledger leader (${ledger.describe()})`);
  }
  const clientsAt = events.now;
  for (const partition of partitions) partition.start(clientsAt);

  const total = partitions.reduce((sum, partition) => sum + partition.totalRequests, 0);
  let lastProgress = performance.now();
  let steps = 0;
  while (!(partitions.every((partition) => partition.done) && ledger.caughtUp())) {
    if (!events.runNext()) throw new Error(`${options.label}: no more events`);
    if (events.now - clientsAt > options.virtualLimitMs) {
      throw new Error(
        `${options.label}: not done after ${options.virtualLimitMs} virtual ms: ` +
          `${partitions.map((partition) => `${partition.groupId} ${partition.describe()}`).join('; ')}; ` +
          `ledger ${ledger.describe()}`,
      );
    }
    if (++steps % 1024 === 0 && performance.now() - lastProgress >= 3000) {
      lastProgress = performance.now();
      const acknowledged = partitions.reduce((sum, partition) => sum + partition.acknowledged, 0);
      progress(
        `  ${options.label}: ${acknowledged}/${total} acknowledged at virtual ${(events.now / 1000).toFixed(2)} s, ` +
          `ledger ${ledger.describe()}`,
      );
    }
  }
  const wallSeconds = (performance.now() - wallStart) / 1000;
  const simulatedMs = events.now;
  // Under `node --expose-gc`, collect first (untimed) so that this is the run's live state.
  (globalThis as { gc?: () => void }).gc?.();
  const heapUsedBytes = process.memoryUsage().heapUsed;
  const gcStats = gc?.stop().statistics ?? [];
  for (const partition of partitions) partition.checkAgreement();
  ledger.check();

  const endAt = Math.max(...partitions.map((partition) => partition.lastAckAt));
  const durationMs = endAt - clientsAt;
  const blocks = partitions.reduce((sum, partition) => sum + partition.height, 0);
  const pbftRejected = new Map<string, number>();
  for (const partition of partitions) {
    for (const [code, count] of partition.rejected)
      pbftRejected.set(code, (pbftRejected.get(code) ?? 0) + count);
  }
  return {
    partitions: partitions.length,
    requests: total,
    virtualSeconds: durationMs / 1000,
    throughput: total / (durationMs / 1000),
    perPartitionThroughput: partitions.map(
      (partition) => partition.totalRequests / ((partition.lastAckAt - partition.startedAt) / 1000),
    ),
    wallSeconds,
    blocks,
    averageBatch: total / blocks,
    lagMs: percentiles(ledger.lagsMs),
    lagPartsMs: {
      fetchReplica: percentiles(ledger.lagParts.fetchReplica),
      fetch: percentiles(ledger.lagParts.fetch),
      replicate: percentiles(ledger.lagParts.replicate),
    },
    partitionCpu: utilisation(
      partitions.flatMap((partition) => partition.machines),
      simulatedMs,
    ),
    ledgerCpu: utilisation(ledger.machines, simulatedMs),
    cpuMsPerRequest:
      partitions
        .flatMap((partition) => partition.machines)
        .reduce((sum, machine) => sum + machine.busyMs, 0) / total,
    gc: {
      count: gcStats.length,
      ms: gcStats.reduce((sum, entry) => sum + entry.cost, 0) / 1000,
      heapUsedMaxBytes: Math.max(0, ...gcStats.map((entry) => entry.afterGC.heapStatistics.usedHeapSize)),
    },
    heapUsedBytes,
    storedBlocks: partitions.reduce((sum, partition) => sum + partition.storedBlocks, 0),
    leaderElectedAtMs: clientsAt,
    network: { messages: world.network.messages, bytes: world.network.bytes },
    pbftMessages: partitions.reduce((sum, partition) => sum + partition.messages, 0),
    pbftRejected: Object.fromEntries(pbftRejected),
    ledger: {
      verifiedBlocks: ledger.verifiedBlocks,
      duplicates: ledger.duplicates,
      uncheckedDuplicates: ledger.uncheckedDuplicates,
      snapshots: ledger.snapshots,
      snapshotsInstalled: ledger.snapshotsInstalled,
      proposals: ledger.proposals,
      refusedProposals: ledger.refusedProposals,
      fetches: ledger.fetches,
      leaderChanges: ledger.leaderChanges,
      messages: ledger.messages,
      messageBytes: ledger.messageBytes,
      rejected: Object.fromEntries(ledger.rejected),
    },
  };
}
