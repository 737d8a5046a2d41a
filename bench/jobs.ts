/**
 * `npm run bench:jobs`: what running a compute-to-data job in its sandbox (issue 15, DESIGN §8)
 * costs beside the same query run directly on the owner's database, in the same run.
 *
 * 1. A --rows dataset (1,000,000 by default: id, region, year, status, amount) is generated as CSV
 *    and streamed through `DatasetStore.add`, as `ledgerbus dataset add` does; the load's time and
 *    this process's peak resident memory are reported (the file is never held whole).
 * 2. The issue's aggregate query, `SELECT region, COUNT(*), AVG(amount) FROM loans WHERE year >= 2023
 *    AND status = 'late' GROUP BY region`, parsed and compiled from its plan:
 *    - direct: the compiled SQL run in this process on the dataset's SQLite file (read-only, the
 *      QUANTILE aggregate registered, as the runner opens it) — open, prepare, all rows, close;
 *    - sandbox: the same job through `runSandboxed` (fork of the runner, IPC, the plan re-checked,
 *      the row limit, small-group suppression, the answer back), with no earlier filters;
 *    - sandbox with a warm spare: the same through `JobSandbox`, whose runner was forked before the
 *      job came (untimed: the bench waits for the spare between runs, as a connector whose jobs
 *      arrive apart would have one waiting);
 *    - sandbox with history: the same with one earlier, different filter, so the difference check
 *      scans the table once more (what a requester's second query costs);
 *    - sandbox start-up: a job answered from the key column's index (`WHERE id <= 20`), i.e. the
 *      fixed cost of a child process.
 *    --runs rounds of one run of each leg, after one untimed warm-up round (interleaved, so a
 *    shared machine's changing load falls on every leg alike); p50 and p95 (nearest rank).
 * 3. End to end: a job submitted through a devnet and answered to the requester
 *    (`measureThroughDevnet`), beside a round trip to the requester's connector (--no-devnet skips it).
 *
 * value = sandbox p50 (ms); referenceValue = direct p50 (ms); ratio = value ÷ referenceValue. The
 * issue's goal is an overhead under 2× the direct query plus one round trip. The machine's load
 * average before and after is printed in the header and kept in the results
 * (bench/results/jobs-latest.json and a timestamped copy), since a shared machine's numbers move.
 *
 * Options: --rows N (1000000), --runs N (5), --dir D (kept; default a temporary directory removed at
 * the end), --runtime tsx|dist (which build of the sandbox forks the runner: the TypeScript sources
 * through tsx, or dist/ after `npm run build`, as an installed connector runs), --json (no progress
 * lines: the table on stderr, the JSON line on stdout).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DatasetStore } from '../src/connector/datashare/dataset-store.js';
import { openDatasetReadOnly } from '../src/connector/datashare/job-database.js';
import * as sourceSandbox from '../src/connector/datashare/job-sandbox.js';
import type { SandboxJob } from '../src/connector/datashare/sandbox-job.js';
import { bigLoansCsv } from '../src/connector/datashare/testing/loans.js';
import { compileAggregate } from '../src/datashare/query/compile.js';
import { parseCondition } from '../src/datashare/query/parser.js';
import { planOf } from '../src/datashare/query/plan.js';
import { defaultDatasetPolicy } from '../src/datashare/types.js';
import type { AggregatePlan, JobOutput } from '../src/datashare/types.js';
import { startDevnet } from './lib/devnet.js';
import { round, writeBenchResult } from './lib/results.js';
import { showHelpIfAsked } from './lib/help.js';

const issueQuery =
  "SELECT region, COUNT(*), AVG(amount) FROM loans WHERE year >= 2023 AND status = 'late' GROUP BY region";
const earlierFilter = "year >= 2022 AND status = 'late'";
const startupQuery = 'SELECT COUNT(*) FROM loans WHERE id <= 20';
const repositoryRoot = resolve(import.meta.dirname, '..');

interface Options {
  readonly rows: number;
  readonly runs: number;
  readonly dir: string | undefined;
  readonly runtime: 'tsx' | 'dist';
  readonly json: boolean;
  /** Also time the job end to end through a devnet (--no-devnet leaves it out). */
  readonly devnet: boolean;
}

function parseOptions(): Options {
  showHelpIfAsked(import.meta.url);
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      runs: { type: 'string', default: '5' },
      dir: { type: 'string' },
      runtime: { type: 'string', default: 'tsx' },
      json: { type: 'boolean', default: false },
      devnet: { type: 'boolean', default: true },
    },
    strict: true,
  });
  const integer = (name: string, text: string, min: number): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min)
      throw new Error(`--${name} must be an integer of at least ${min}, not "${text}"`);
    return value;
  };
  const runtime = values.runtime;
  if (runtime !== 'tsx' && runtime !== 'dist') throw new Error('--runtime must be tsx or dist');
  return {
    rows: integer('rows', values.rows, 1000),
    runs: integer('runs', values.runs, 1),
    dir: values.dir,
    runtime,
    json: values.json,
    devnet: values.devnet,
  };
}

let quiet = false;

function progress(text: string): void {
  if (!quiet) process.stderr.write(`${text}\n`);
}

type SandboxModule = typeof sourceSandbox;

/** The sandbox from the sources (its runner forked through tsx) or from dist/ (plain node). */
async function sandboxModule(runtime: 'tsx' | 'dist'): Promise<SandboxModule> {
  if (runtime === 'tsx') return sourceSandbox;
  const built = join(repositoryRoot, 'dist', 'connector', 'datashare', 'job-sandbox.js');
  if (!existsSync(built))
    throw new Error(`${built} does not exist: run \`npm run build\` first, or use --runtime tsx`);
  return (await import(pathToFileURL(built).href)) as SandboxModule;
}

/** Nearest-rank percentile of ascending values. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

interface Timing {
  readonly label: string;
  readonly samplesMs: readonly number[];
  readonly p50Ms: number;
  readonly p95Ms: number;
}

interface Leg {
  readonly label: string;
  readonly once: () => Promise<unknown> | unknown;
  /** Untimed, before and after each of its runs. */
  readonly before?: () => Promise<void>;
  readonly after?: () => Promise<void>;
}

/**
 * Times every leg `runs` times, in rounds — one run of each leg per round, after one untimed
 * warm-up round (page cache, tsx's transform cache) — so that a shared machine's changing load
 * falls on all of them alike rather than on whichever leg ran during a busy minute.
 */
async function timeInRounds(legs: readonly Leg[], runs: number): Promise<Timing[]> {
  const samples = legs.map((): number[] => []);
  for (let round = 0; round <= runs; round++) {
    for (const [i, leg] of legs.entries()) {
      await leg.before?.();
      const started = performance.now();
      await leg.once();
      if (round > 0) samples[i]!.push(performance.now() - started);
      await leg.after?.();
    }
    if (round > 0)
      progress(
        `  round ${round}/${runs}: ${legs.map((leg, i) => `${samples[i]!.at(-1)!.toFixed(0)} ms`).join(', ')}`,
      );
  }
  return legs.map((leg, i) => {
    const sorted = [...samples[i]!].sort((a, b) => a - b);
    return {
      label: leg.label,
      samplesMs: samples[i]!,
      p50Ms: percentile(sorted, 50),
      p95Ms: percentile(sorted, 95),
    };
  });
}

/** Port base of the end-to-end leg's devnet (nodes base+1..4, connector APIs base+101..104). */
const devnetBasePort = 22600;

/**
 * The end-to-end leg: a devnet of real processes (bench/lib/devnet.ts), the same rows uploaded to
 * org2's connector (`POST /v1/datasets`) and published in the catalog, and the issue's query
 * submitted by org1 (`POST /v1/jobs` with `wait`), timed from submission to the result decrypted at
 * org1: org1 checks it against the catalog and seals it, the request, decision and result go through
 * PBFT, org2 opens, checks and runs it in its child process, and org1 fetches the sealed result
 * through the nodes. The same query again is the same released rows, so the difference check lets
 * every run through. Also the round trip of a trivial authenticated request to org1's connector.
 */
async function measureThroughDevnet(
  options: Options,
  directory: string,
): Promise<{ job: Timing; roundTrip: Timing }> {
  progress(`starting a devnet (base port ${devnetBasePort}) for the end-to-end leg`);
  const devnet = await startDevnet({
    directory: join(directory, 'devnet'),
    basePort: devnetBasePort,
    readyTimeoutMs: 180_000,
    runtime: options.runtime,
  });
  try {
    const org1 = devnet.connector('org1');
    const org2 = devnet.connector('org2');
    const call = async (
      target: { url: string; token: string },
      path: string,
      init: RequestInit = {},
    ): Promise<unknown> => {
      const response = await fetch(`${target.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${target.token}`, ...(init.headers ?? {}) },
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${path}: ${response.status} ${text}`);
      return JSON.parse(text) as unknown;
    };
    progress(`  uploading ${options.rows} rows to org2's connector and publishing them`);
    await call(org2, '/v1/datasets?name=loans&format=csv&keyColumn=id', {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: Readable.toWeb(Readable.from(bigLoansCsv(options.rows))) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    await call(org2, '/v1/catalog', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        dataset: 'loans',
        domain: 'finance',
        title: 'Loans (bench:jobs)',
        description: 'synthetic loans by region, year and status',
        tags: ['loans'],
      }),
    });
    for (const deadline = Date.now() + 30_000; ;) {
      const seen = await call(org1, '/v1/catalog/org2/loans').catch(() => undefined);
      if (seen !== undefined) break;
      if (Date.now() > deadline) throw new Error("org1's node never showed org2/loans");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const submit = async (): Promise<void> => {
      const answer = (await call(org1, '/v1/jobs', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          datasets: ['org2/loans'],
          spec: { kind: 'aggregate', query: issueQuery },
          wait: true,
        }),
      })) as { state?: string; output?: JobOutput };
      if (answer.state !== 'COMPLETED' || answer.output?.kind !== 'aggregate')
        throw new Error(`the job did not complete: ${JSON.stringify(answer)}`);
    };
    const [job, roundTrip] = await timeInRounds(
      [
        { label: 'end to end (job submit --wait through the devnet)', once: submit },
        { label: 'round trip (GET /v1/jobs at org1)', once: () => call(org1, '/v1/jobs') },
      ],
      options.runs,
    );
    return { job: job!, roundTrip: roundTrip! };
  } finally {
    await devnet.stop();
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  quiet = options.json;
  const directory =
    options.dir === undefined ? mkdtempSync(join(tmpdir(), 'ledgerbus-bench-jobs-')) : resolve(options.dir);
  mkdirSync(directory, { recursive: true });
  const loadBefore = loadavg();
  const header =
    `bench:jobs — ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ` +
    `load average ${loadBefore.map((v) => v.toFixed(2)).join(' / ')} (1/5/15 min), runtime ${options.runtime}`;
  process.stderr.write(`${header}\n`);
  const store = new DatasetStore(join(directory, 'datasets'));
  try {
    const { runSandboxed, JobSandbox } = await sandboxModule(options.runtime);
    progress(`loading ${options.rows} rows through DatasetStore.add into ${directory}`);
    const rssBeforeKiB = process.resourceUsage().maxRSS;
    const loadStarted = performance.now();
    const dataset =
      store.get('loans') ??
      (await store.add('loans', Readable.from(bigLoansCsv(options.rows)), {
        format: 'csv',
        keyColumn: 'id',
      }));
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const loadPeakRssMiB = process.resourceUsage().maxRSS / 1024;
    progress(
      `  ${dataset.rowCount} rows in ${loadSeconds.toFixed(1)} s (${(dataset.rowCount / loadSeconds).toFixed(0)} rows/s); ` +
        `peak resident ${loadPeakRssMiB.toFixed(0)} MiB (before the load ${(rssBeforeKiB / 1024).toFixed(0)} MiB)`,
    );
    if (dataset.rowCount !== options.rows)
      throw new Error(
        `${directory} already holds a dataset of ${dataset.rowCount} rows, not ${options.rows}`,
      );

    const plan = planOf({ kind: 'aggregate', dataset: 'loans', query: issueQuery }) as AggregatePlan;
    const compiled = compileAggregate(plan, dataset.columns);
    const job: SandboxJob = {
      datasetFile: dataset.file,
      plan,
      columns: dataset.columns,
      policy: defaultDatasetPolicy,
      history: [],
    };

    progress(`the issue's query, ${options.runs} rounds after one warm-up round:`);
    let directRows: unknown[] = [];
    let output: JobOutput | undefined;
    const startupPlan = planOf({ kind: 'aggregate', dataset: 'loans', query: startupQuery });
    const warmSandbox = new JobSandbox(job.policy.memoryBytesMax);
    let timings: Timing[];
    try {
      progress(`  legs: direct, sandbox, warm spare, with history, start-up`);
      timings = await timeInRounds(
        [
          {
            label: 'direct (same SQL, in process)',
            once: () => {
              // Opened for each query, as the runner opens it: its page cache starts cold both ways.
              const db = openDatasetReadOnly(dataset.file);
              try {
                directRows = db
                  .prepare(compiled.sql)
                  .raw(true)
                  .all(...compiled.params);
              } finally {
                db.close();
              }
            },
          },
          {
            label: 'sandbox (runSandboxed)',
            once: async () => {
              output = (await runSandboxed(job)).output;
            },
          },
          {
            label: 'sandbox with a warm spare (JobSandbox)',
            once: () => warmSandbox.run(job),
            before: () => warmSandbox.warm(),
            // The next spare starts after the job: let it, before the next leg is timed.
            after: () => new Promise((resolve) => setImmediate(resolve)).then(() => warmSandbox.warm()),
          },
          {
            label: 'sandbox, one earlier filter (difference check)',
            once: () =>
              runSandboxed({
                ...job,
                history: [{ where: parseCondition(earlierFilter), groupBy: [], suppressed: [] }],
              }),
          },
          {
            label: 'sandbox start-up (an indexed 20-row job)',
            once: () => runSandboxed({ ...job, plan: startupPlan }),
          },
        ],
        options.runs,
      );
    } finally {
      warmSandbox.close();
    }
    const [direct, sandbox, warm, withHistory, startup] = timings as [Timing, Timing, Timing, Timing, Timing];
    // The sandbox must have answered what the direct query found (no group is small here).
    if (
      output?.kind !== 'aggregate' ||
      JSON.stringify(output.rows) !== JSON.stringify(directRows.map((row) => (row as unknown[]).slice(0, -1)))
    )
      throw new Error(
        `the sandbox answered ${JSON.stringify(output)}, the direct query ${JSON.stringify(directRows)}`,
      );
    const endToEnd = options.devnet ? await measureThroughDevnet(options, directory) : undefined;
    const loadAfter = loadavg();

    const table = [
      '',
      header,
      `load after: ${loadAfter.map((v) => v.toFixed(2)).join(' / ')}`,
      `dataset: ${dataset.rowCount} rows, loaded in ${loadSeconds.toFixed(1)} s, peak resident ${loadPeakRssMiB.toFixed(0)} MiB`,
      `query: ${issueQuery}`,
      ...[direct, sandbox, warm, withHistory, startup].map(
        (t) =>
          `  ${t.label.padEnd(48)} p50 ${t.p50Ms.toFixed(1).padStart(8)} ms   p95 ${t.p95Ms.toFixed(1).padStart(8)} ms`,
      ),
      `  sandbox ÷ direct (p50): ${(sandbox.p50Ms / direct.p50Ms).toFixed(2)}; sandbox − direct: ${(sandbox.p50Ms - direct.p50Ms).toFixed(0)} ms`,
      `  warm spare ÷ direct (p50): ${(warm.p50Ms / direct.p50Ms).toFixed(2)}; warm spare − direct: ${(warm.p50Ms - direct.p50Ms).toFixed(0)} ms`,
      endToEnd === undefined
        ? '  end to end through a devnet: not measured (--no-devnet)'
        : `  end to end through a devnet: p50 ${endToEnd.job.p50Ms.toFixed(1)} ms, p95 ${endToEnd.job.p95Ms.toFixed(1)} ms; ` +
          `round trip p50 ${endToEnd.roundTrip.p50Ms.toFixed(1)} ms; goal < 2 × direct + one round trip = ` +
          `${(2 * direct.p50Ms + endToEnd.roundTrip.p50Ms).toFixed(0)} ms; end to end ÷ direct ${(endToEnd.job.p50Ms / direct.p50Ms).toFixed(2)}`,
      '',
    ].join('\n');
    process.stderr.write(table);

    const rounded = (t: Timing): Record<string, unknown> => ({
      label: t.label,
      p50Ms: round(t.p50Ms, 1),
      p95Ms: round(t.p95Ms, 1),
      samplesMs: t.samplesMs.map((v) => round(v, 1)),
    });
    writeBenchResult({
      name: 'jobs',
      value: round(sandbox.p50Ms, 1),
      unit: 'ms (p50 aggregate job turnaround in the sandbox)',
      reference: `the same compiled SQL run directly in process on the dataset's SQLite file, same run, ${options.rows} rows`,
      referenceValue: round(direct.p50Ms, 1),
      ratio: round(sandbox.p50Ms / direct.p50Ms, 3),
      summary: {
        rows: dataset.rowCount,
        runtime: options.runtime,
        directP50Ms: round(direct.p50Ms, 1),
        directP95Ms: round(direct.p95Ms, 1),
        sandboxP50Ms: round(sandbox.p50Ms, 1),
        sandboxP95Ms: round(sandbox.p95Ms, 1),
        warmSpareP50Ms: round(warm.p50Ms, 1),
        warmSpareRatio: round(warm.p50Ms / direct.p50Ms, 3),
        sandboxWithHistoryP50Ms: round(withHistory.p50Ms, 1),
        startupP50Ms: round(startup.p50Ms, 1),
        loadSeconds: round(loadSeconds, 2),
        ...(endToEnd === undefined
          ? {}
          : {
              endToEndP50Ms: round(endToEnd.job.p50Ms, 1),
              roundTripP50Ms: round(endToEnd.roundTrip.p50Ms, 1),
              endToEndRatio: round(endToEnd.job.p50Ms / direct.p50Ms, 3),
            }),
      },
      details: {
        options: { ...options, dir: options.dir ?? null },
        query: issueQuery,
        compiledSql: compiled.sql,
        earlierFilter,
        loadAverageBefore: loadBefore.map((v) => round(v, 2)),
        loadAverageAfter: loadAfter.map((v) => round(v, 2)),
        load: {
          rows: dataset.rowCount,
          seconds: round(loadSeconds, 3),
          rowsPerSecond: round(dataset.rowCount / loadSeconds, 0),
          peakResidentMiB: round(loadPeakRssMiB, 1),
          residentBeforeMiB: round(rssBeforeKiB / 1024, 1),
        },
        direct: rounded(direct),
        sandbox: rounded(sandbox),
        warmSpare: rounded(warm),
        sandboxWithHistory: rounded(withHistory),
        startup: rounded(startup),
        endToEnd: endToEnd === undefined ? null : rounded(endToEnd.job),
        roundTrip: endToEnd === undefined ? null : rounded(endToEnd.roundTrip),
      },
    });
  } finally {
    store.close();
    if (options.dir === undefined) rmSync(directory, { recursive: true, force: true });
  }
}

await main();
