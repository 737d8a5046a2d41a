/**
 * `npm run sim -- --seeds N [--seed S] [--replicas 4|7] [--crypto hmac|ed25519] [--jobs J]`: runs seeded
 * simulations and ends with one JSON line `{"seeds","violations","faultsInjected"}`.
 * `--protocol raft [--replicas 3|5]` runs the Raft core's simulator instead, with the same last line.
 * `--faults classic` leaves out the partition driver's faults (registry lag, epoch change, torn and
 * lost writes): such runs are byte-identical to the simulator's before it drove the real driver.
 * `--live` runs one long simulation and prints a running summary (the pre-network `npm start`).
 */
import { Command, InvalidArgumentError } from 'commander';
import { Worker } from 'node:worker_threads';
import { faultKinds, faultKindsOf, SimWorld } from './world.js';
import type { FaultKind, FaultSet, SimResult, SimSummary } from './world.js';
import type { SimCryptoKind } from './sim-crypto.js';
import { raftFaultKinds, runRaftSeed } from './raft/simulator.js';

function integer(name: string, min: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return parsed;
  };
}

/** The `sim` command, shared by `npm run sim` and `ledgerbus sim`. */
export function buildSimCommand(): Command {
  return new Command('sim')
    .description(
      'Run the deterministic simulator over many seeds: PBFT (faults, Byzantine replicas) or Raft (faults).',
    )
    .option('--seeds <n>', 'how many seeds to run', integer('--seeds', 1), 100)
    .option(
      '--seed <s>',
      'first seed (a failing seed replays exactly with --seeds 1 --seed S)',
      integer('--seed', 0),
      1,
    )
    .option('--protocol <name>', 'pbft (partitions) or raft (topic groups)', 'pbft')
    .option(
      '--replicas <n>',
      'replicas per group: 4 or 7 for PBFT (default 4), 3 or 5 for Raft (default 3)',
      integer('--replicas', 3),
    )
    .option('--crypto <kind>', 'hmac (fast, simulated signatures) or ed25519 (real)', 'hmac')
    .option(
      '--faults <set>',
      "PBFT: all, or classic (without the partition driver's registry lag, epoch change, torn and lost writes)",
      'all',
    )
    .option('--live', 'run one long simulation and print a running summary', false)
    .option('--verbose', 'print one line per seed', false)
    .option('--jobs <n>', 'worker threads to run seeds on', integer('--jobs', 1), 1)
    .option(
      '--require-every-fault',
      'fail (exit 1) if some fault kind was never injected: a run that claims to test a fault must inject it',
      false,
    )
    .action(
      (options: {
        seeds: number;
        seed: number;
        protocol: string;
        replicas?: number;
        crypto: string;
        faults: string;
        live: boolean;
        verbose: boolean;
        jobs: number;
        requireEveryFault: boolean;
      }) => {
        if (options.crypto !== 'hmac' && options.crypto !== 'ed25519') {
          throw new InvalidArgumentError('--crypto must be hmac or ed25519');
        }
        if (options.protocol === 'raft') {
          const nodes = options.replicas ?? 3;
          if (nodes !== 3 && nodes !== 5)
            throw new InvalidArgumentError('--replicas must be 3 or 5 for Raft');
          return runRaftSeedsCommand(
            options.seeds,
            options.seed,
            nodes,
            options.verbose,
            options.requireEveryFault,
          );
        }
        if (options.protocol !== 'pbft') throw new InvalidArgumentError('--protocol must be pbft or raft');
        if (options.faults !== 'all' && options.faults !== 'classic')
          throw new InvalidArgumentError('--faults must be all or classic');
        const replicas = options.replicas ?? 4;
        if (replicas < 4) throw new InvalidArgumentError('--replicas must be at least 4 for PBFT');
        if (options.live) return runLive(options.seed, replicas, options.crypto);
        return runSeeds(
          options.seeds,
          options.seed,
          replicas,
          options.crypto,
          options.verbose,
          options.jobs,
          {
            requireEveryFault: options.requireEveryFault,
            faults: options.faults,
          },
        );
      },
    );
}

/** Runs seeds on `jobs` worker threads; results are reported in seed order, so output is reproducible. */
async function runSeeds(
  count: number,
  first: number,
  replicas: number,
  crypto: SimCryptoKind,
  verbose: boolean,
  jobs: number,
  requirements: { readonly requireEveryFault: boolean; readonly faults: FaultSet },
): Promise<void> {
  const totals = Object.fromEntries(faultKinds.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const started = Date.now();
  const results = new Map<number, SimResult>();
  const workerUrl = new URL(
    import.meta.url.endsWith('.ts') ? './seed-worker.ts' : './seed-worker.js',
    import.meta.url,
  );
  const seeds = Array.from({ length: count }, (_, i) => first + i);
  let done = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, count) }, (_, job) => {
      const workerData = {
        seeds: seeds.filter((_, i) => i % jobs === job),
        replicas,
        crypto,
        faults: requirements.faults,
      };
      // Under tsx (npm run sim) the worker registers the TypeScript loader before loading its module.
      const worker = import.meta.url.endsWith('.ts')
        ? new Worker(
            `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(workerUrl.href)}); });`,
            { eval: true, workerData },
          )
        : new Worker(workerUrl, { workerData });
      return new Promise<void>((resolve, reject) => {
        worker.on('message', (result: SimResult) => {
          results.set(result.seed, result);
          done += 1;
          if (process.stderr.isTTY && !verbose && done % 25 === 0) {
            process.stderr.write(`\r${done}/${count} seeds`);
          }
        });
        worker.on('error', reject);
        worker.on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`seed worker exited with ${code}`)),
        );
      });
    }),
  );
  if (process.stderr.isTTY && !verbose) process.stderr.write('\n');
  let violations = 0;
  const failing: number[] = [];
  for (const seed of seeds) {
    const result = results.get(seed)!;
    for (const kind of faultKinds) totals[kind] += result.faults[kind];
    if (result.violations.length > 0) {
      violations += result.violations.length;
      failing.push(seed);
      process.stderr.write(`seed ${seed} (replicas ${replicas}): ${result.violations.join('; ')}\n`);
      process.stderr.write(
        `  replay: npm run sim -- --seeds 1 --seed ${seed} --replicas ${replicas} --crypto ${crypto}\n`,
      );
    }
    if (verbose) {
      process.stderr.write(
        `seed ${seed}: height ${result.height} acked ${result.acked}/${result.requests} view ${result.maxView} ticks ${result.ticks} trace ${result.trace}\n`,
      );
    }
  }
  const missing = faultKindsOf(requirements.faults).filter((kind) => totals[kind] === 0);
  process.stderr.write(
    `${count} seeds × ${replicas} replicas on ${jobs} thread(s) in ${((Date.now() - started) / 1000).toFixed(1)} s` +
      (missing.length > 0 ? `; fault kinds never injected: ${missing.join(', ')}` : '') +
      (failing.length > 0 ? `; failing seeds: ${failing.join(', ')}` : '') +
      '\n',
  );
  process.stdout.write(`${JSON.stringify({ seeds: count, violations, faultsInjected: totals })}\n`);
  if (violations > 0) process.exitCode = 1;
  failOnMissingFaults(requirements.requireEveryFault, missing);
}

/** With --require-every-fault, a run that never injected some fault kind fails: it did not test it. */
function failOnMissingFaults(required: boolean, missing: readonly string[]): void {
  if (!required || missing.length === 0) return;
  process.stderr.write(`error: fault kinds never injected: ${missing.join(', ')} (run more seeds)\n`);
  process.exitCode = 1;
}

/** Raft seeds (one thread: a seed takes ~15 ms), with the same final JSON line as PBFT's. */
function runRaftSeedsCommand(
  count: number,
  first: number,
  nodes: 3 | 5,
  verbose: boolean,
  requireEveryFault: boolean,
): void {
  const started = Date.now();
  const totals: Record<string, number> = Object.fromEntries(raftFaultKinds.map((kind) => [kind, 0]));
  let violations = 0;
  const failing: number[] = [];
  for (let seed = first; seed < first + count; seed++) {
    const result = runRaftSeed(seed, { nodes });
    for (const [kind, value] of Object.entries(result.faults)) totals[kind] = (totals[kind] ?? 0) + value;
    if (result.violations.length > 0) {
      violations += result.violations.length;
      failing.push(seed);
      process.stderr.write(`seed ${seed} (raft, ${nodes} nodes): ${result.violations.join('; ')}\n`);
      process.stderr.write(
        `  replay: npm run sim -- --protocol raft --seeds 1 --seed ${seed} --replicas ${nodes}\n`,
      );
    }
    if (verbose) process.stderr.write(`seed ${seed}: committed ${result.committed} trace ${result.trace}\n`);
  }
  const missing = raftFaultKinds.filter((kind) => totals[kind] === 0);
  process.stderr.write(
    `${count} Raft seeds × ${nodes} nodes in ${((Date.now() - started) / 1000).toFixed(1)} s` +
      (missing.length > 0 ? `; fault kinds never injected: ${missing.join(', ')}` : '') +
      (failing.length > 0 ? `; failing seeds: ${failing.join(', ')}` : '') +
      '\n',
  );
  process.stdout.write(`${JSON.stringify({ seeds: count, violations, faultsInjected: totals })}\n`);
  if (violations > 0) process.exitCode = 1;
  failOnMissingFaults(requireEveryFault, missing);
}

/** Blocks the thread for a moment so a person can follow the live view (the simulation is synchronous). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function runLive(seed: number, replicas: number, crypto: SimCryptoKind): Promise<void> {
  process.stdout.write(
    `ledgerbus simulator: one ${replicas}-replica PBFT partition committing client requests while faults are injected.\n` +
      `Each round is one seed: a safety phase with faults, then a liveness phase after healing. Ctrl-C stops.\n`,
  );
  for (let current = seed; ; current++) {
    const world = new SimWorld({
      seed: current,
      replicas,
      crypto,
      safetyTicks: 1500,
      livenessTicks: 4000,
      requestsPerClient: 40,
      progressEveryTicks: 150,
      onProgress: (summary) => printSummary(summary),
    });
    const result = world.run();
    process.stdout.write(
      `seed ${current}: ${result.violations.length === 0 ? 'OK' : 'VIOLATION ' + result.violations.join('; ')} — ` +
        `${result.height} blocks, ${result.acked}/${result.requests} requests acknowledged, highest view ${result.maxView}\n\n`,
    );
    if (result.violations.length > 0) process.exitCode = 1;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

function printSummary(summary: SimSummary): void {
  const faults = Object.entries(summary.faults)
    .filter(([, count]) => count > 0)
    .map(([kind, count]) => `${kind}=${count}`)
    .join(' ');
  process.stdout.write(
    `  t=${String(summary.tick).padStart(5)} ${summary.phase.padEnd(8)} height=${String(summary.height).padStart(3)} ` +
      `acked=${summary.acked}/${summary.requests} views=[${summary.views.join(',')}]` +
      (summary.crashed.length > 0 ? ` crashed=[${summary.crashed.join(',')}]` : '') +
      (summary.byzantine.length > 0 ? ` byzantine=[${summary.byzantine.join(' ')}]` : '') +
      `\n      faults: ${faults || 'none yet'}\n`,
  );
  pause(250);
}
