/**
 * `npm run bench:report`: runs the project's benchmarks and writes bench/REPORT.md with SVG charts in
 * bench/report/, each ledgerbus figure beside its same-run peer or limit.
 *
 * Every bench runs as its own child process, exactly as `npm run bench:X` would run it (only with
 * options), so the report measures the benches as they are and a crash in one cannot leave state in
 * another. A bench prints its headline JSON, with its timestamp, as the last stdout line
 * (lib/results.ts); the report opens the timestamped file that names, never `<name>-latest.json`,
 * which another bench run on this shared machine could have replaced meanwhile.
 *
 * Benches, in order: publish (ledgerbus vs NATS JetStream across message sizes, with latency
 * percentiles and CPU µs per committed message summed over every process; run with --cpu-prof into
 * a temporary directory so that it also says where the nodes' CPU went, by area), e2e (the
 * application path, SDK producer → connectors → SDK consumer, beside a JetStream producer and pull
 * consumer), scale (1, 2, 4 partitions beside the linear ideal), datapath (one payload org1 → org2
 * beside a single encrypted hop over TCP and TLS), pbft (a table: throughput beside the Ed25519
 * bound), blockstore (durable block appends beside the disk's fsync rate), envelope (payload
 * encryption and decryption beside the bare primitives), escrow (escrow topics beside standard ones,
 * audit regeneration, placement; its section is built in lib/escrow-section.ts). Nothing in the
 * report is typed in by hand: every number comes from the JSON of this run. Result files written
 * before a bench measured CPU still render: what they lack is left out.
 *
 * --quick is for development and smoke checks: small counts, and output to a temporary directory
 * unless --out is given, so it never replaces the committed report.
 */
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { natsServerVersion } from './lib/jetstream-cluster.js';
import { formatBytes, parseByteSize } from './lib/payload.js';
import { areas } from './lib/cpu-profile.js';
import { escrowSection } from './lib/escrow-section.js';
import { soakSection } from './lib/soak-section.js';
import { machineInfo, resultsDirectory } from './lib/results.js';
import type { SettingResult } from './lib/e2e-load.js';
import { barChart, formatNumber, lineChart, palette } from './lib/svg-chart.js';
import {
  cleanUpOnSignals,
  isRunning,
  repositoryRoot as root,
  startTypeScript,
  waitForExit,
} from '../test/support/processes.js';

const usage = `Usage: npm run bench:report -- [options]

Runs bench:publish, bench:e2e, bench:scale, bench:datapath, bench:pbft, bench:blockstore,
bench:envelope, bench:escrow and bench:soak as child processes and writes REPORT.md plus SVG charts
(report/*.svg) into the output directory. bench:publish runs with --cpu-prof (its nodes are
profiled, into a temporary directory removed afterwards) for the CPU-per-message breakdown.

  --quick               small counts (a smoke check, ~2 min); writes to a temporary directory
                        unless --out is given
  --out DIR             where REPORT.md and report/ go (default: bench/)
  --skip LIST           benches to leave out:
                        publish,e2e,scale,datapath,pbft,blockstore,envelope,escrow,soak
  --skip-jetstream      publish and e2e without their NATS JetStream peer
  --messages N          publish: messages per size (default 30000; quick 2000)
  --sizes LIST          publish: message sizes in bytes (default 256,1024,4096,16384)
  --concurrency N       publish: messages in flight (default 256)
  --cdf-bytes N         publish: size whose latency CDF is drawn (default 1024, must be in --sizes)
  --e2e-messages N      e2e: measured messages of the main setting (default 3000; quick 300)
  --e2e-in-flight N     e2e: callers sending one message each at a time (default 64)
  --e2e-newcomer-messages N
                        e2e: messages of the 16 callers × 200 B setting (default 1000; quick 100;
                        0 leaves it out)
  --e2e-profile-messages N
                        e2e: messages of a second, profiled run of the main setting that says where
                        each process's CPU goes (default 1500; quick 200; 0 leaves it out)
  --scale-requests N    scale: requests per partition (default 20000; quick 2000)
  --datapath-bytes SIZE datapath: payload size (default 1GiB; quick 64MiB)
  --pbft-requests N     pbft: requests per group size (default 20000; quick 2000)
  --blockstore-blocks N blockstore: single appends (default 200; quick 50), 10× as many batched
  --envelope-bytes SIZE envelope: payload size (default 64MiB; quick 16MiB)
  --escrow-small N      escrow: small sends per topic (default 2000; quick 200)
  --escrow-sizes LIST   escrow: file sizes (default 5MiB,10MiB,25MiB,50MiB; quick 5MiB)
  --escrow-chunks LIST  escrow: chunks per file (default 10,50,100,200; quick 10,200)
  --soak-messages N     soak: messages of 200 B (default 100000; quick 2000); bench:soak alone takes
                        larger runs (the issue's 1,000,000: about an hour)
  --soak-result FILE    soak: render its section from this bench:soak result file (such a larger
                        run, bench/results/soak-*.json) instead of running it
  --help                this text

Progress goes to stderr; the last stdout line is the path of REPORT.md.
`;

const benchNames = [
  'publish',
  'e2e',
  'scale',
  'datapath',
  'pbft',
  'blockstore',
  'envelope',
  'escrow',
  'soak',
] as const;
type BenchName = (typeof benchNames)[number];

/** Percentiles the latency CDF is drawn through: dense in the tail, where the systems differ most. */
const cdfPercentiles = [
  1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5, 99.9,
];

interface Options {
  readonly quick: boolean;
  readonly out: string;
  readonly skip: ReadonlySet<BenchName>;
  readonly skipJetstream: boolean;
  readonly messages: number;
  readonly sizes: readonly number[];
  readonly concurrency: number;
  readonly cdfBytes: number;
  /** bench:e2e's --messages, --in-flight, --newcomer-messages and (quick) --warmup. */
  readonly e2e: readonly string[];
  /** The profiled bench:e2e run's arguments (without --cpu-prof); undefined leaves it out. */
  readonly e2eProfile: readonly string[] | undefined;
  readonly scaleRequests: number;
  readonly datapathBytes: number;
  readonly pbftRequests: number;
  readonly blockstoreBlocks: number;
  readonly envelopeBytes: number;
  /** bench:escrow's --small, --sizes and --chunks. */
  readonly escrow: readonly string[];
  readonly soakMessages: number;
  readonly soakResult: string | undefined;
}

function parseOptions(): Options | undefined {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      skip: { type: 'string', default: '' },
      'skip-jetstream': { type: 'boolean', default: false },
      messages: { type: 'string' },
      sizes: { type: 'string', default: '256,1024,4096,16384' },
      concurrency: { type: 'string', default: '256' },
      'cdf-bytes': { type: 'string', default: '1024' },
      'e2e-messages': { type: 'string' },
      'e2e-in-flight': { type: 'string', default: '64' },
      'e2e-newcomer-messages': { type: 'string' },
      'e2e-profile-messages': { type: 'string' },
      'scale-requests': { type: 'string' },
      'datapath-bytes': { type: 'string' },
      'pbft-requests': { type: 'string' },
      'blockstore-blocks': { type: 'string' },
      'envelope-bytes': { type: 'string' },
      'escrow-small': { type: 'string' },
      'escrow-sizes': { type: 'string' },
      'escrow-chunks': { type: 'string' },
      'soak-messages': { type: 'string' },
      'soak-result': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  const quick = values.quick;
  const integer = (name: string, text: string, minimum = 1): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < minimum)
      throw new Error(`--${name} must be an integer ≥ ${minimum}`);
    return value;
  };
  const skip = new Set<BenchName>();
  for (const part of values.skip.split(',').filter((p) => p !== '')) {
    const name = benchNames.find((candidate) => candidate === part);
    if (name === undefined) throw new Error(`--skip takes ${benchNames.join(',')}; not "${part}"`);
    skip.add(name);
  }
  const sizes = values.sizes.split(',').map((part) => integer('sizes', part));
  const cdfBytes = integer('cdf-bytes', values['cdf-bytes']);
  if (!sizes.includes(cdfBytes)) throw new Error(`--cdf-bytes ${cdfBytes} must be one of --sizes`);
  return {
    quick,
    out: resolve(
      values.out ?? (quick ? join(tmpdir(), 'ledgerbus-bench-report-quick') : import.meta.dirname),
    ),
    skip,
    skipJetstream: values['skip-jetstream'],
    messages: integer('messages', values.messages ?? (quick ? '2000' : '30000')),
    sizes,
    concurrency: integer('concurrency', values.concurrency),
    cdfBytes,
    e2e: [
      ...['--messages', String(integer('e2e-messages', values['e2e-messages'] ?? (quick ? '300' : '3000')))],
      ...['--in-flight', String(integer('e2e-in-flight', values['e2e-in-flight']))],
      ...[
        '--newcomer-messages',
        String(
          integer('e2e-newcomer-messages', values['e2e-newcomer-messages'] ?? (quick ? '100' : '1000'), 0),
        ),
      ],
      // bench:e2e's 500 warm-up messages would outnumber the quick run's measured ones.
      ...(quick ? ['--warmup', '50'] : []),
      ...(values['skip-jetstream'] ? ['--skip-jetstream'] : []),
    ],
    e2eProfile: ((profiled: number) =>
      profiled === 0
        ? undefined
        : [
            ...['--messages', String(profiled)],
            ...['--in-flight', String(integer('e2e-in-flight', values['e2e-in-flight']))],
            ...['--newcomer-messages', '0', '--skip-jetstream'],
            ...(quick ? ['--warmup', '50'] : []),
          ])(integer('e2e-profile-messages', values['e2e-profile-messages'] ?? (quick ? '200' : '1500'), 0)),
    scaleRequests: integer('scale-requests', values['scale-requests'] ?? (quick ? '2000' : '20000')),
    datapathBytes: parseByteSize(values['datapath-bytes'] ?? (quick ? '64MiB' : '1GiB')),
    pbftRequests: integer('pbft-requests', values['pbft-requests'] ?? (quick ? '2000' : '20000')),
    blockstoreBlocks: integer('blockstore-blocks', values['blockstore-blocks'] ?? (quick ? '50' : '200')),
    envelopeBytes: parseByteSize(values['envelope-bytes'] ?? (quick ? '16MiB' : '64MiB')),
    escrow: [
      ...['--small', String(integer('escrow-small', values['escrow-small'] ?? (quick ? '200' : '2000')))],
      ...['--sizes', values['escrow-sizes'] ?? (quick ? '5MiB' : '5MiB,10MiB,25MiB,50MiB')],
      ...['--chunks', values['escrow-chunks'] ?? (quick ? '10,200' : '10,50,100,200')],
    ],
    soakMessages: integer('soak-messages', values['soak-messages'] ?? (quick ? '2000' : '100000')),
    soakResult: values['soak-result'],
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

// ---- reading the benches' JSON without `any` ----

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(value: unknown, what: string): Json {
  if (!isRecord(value)) throw new Error(`bench result: ${what} is not an object`);
  return value;
}

function list(value: unknown, what: string): Json[] {
  if (!Array.isArray(value)) throw new Error(`bench result: ${what} is not an array`);
  return value.map((item, index) => record(item, `${what}[${index}]`));
}

function num(object: Json, key: string, what: string): number {
  const value = object[key];
  if (typeof value !== 'number') throw new Error(`bench result: ${what}.${key} is not a number`);
  return value;
}

function str(object: Json, key: string, what: string): string {
  const value = object[key];
  if (typeof value !== 'string') throw new Error(`bench result: ${what}.${key} is not a string`);
  return value;
}

interface Percentile {
  readonly p: number;
  readonly ms: number;
}

function percentiles(object: Json, what: string): Percentile[] {
  return list(object['percentilesMs'], `${what}.percentilesMs`).map((entry) => ({
    p: num(entry, 'p', what),
    ms: num(entry, 'ms', what),
  }));
}

/** CPU time a run's processes used per message, as lib/cpu-usage.ts measures it from /proc. */
interface RunCpu {
  readonly totalMicros: number;
  readonly byProcessMicros: Readonly<Record<string, number>>;
  readonly coresBusy: number;
}

/** The name lib/cpu-usage.ts gives the bench's own process; every other entry is a server. */
const benchClient = 'bench client';

/** A run's `cpu`, or undefined where the run has none (a result from before CPU was measured). */
function runCpu(entry: Json, what: string): RunCpu | undefined {
  if (entry['cpu'] === undefined) return undefined;
  const cpu = record(entry['cpu'], `${what}.cpu`);
  const byProcess = record(cpu['byProcessMicros'], `${what}.cpu.byProcessMicros`);
  return {
    totalMicros: num(cpu, 'totalMicros', `${what}.cpu`),
    byProcessMicros: Object.fromEntries(
      Object.keys(byProcess).map((name) => [name, num(byProcess, name, `${what}.cpu.byProcessMicros`)]),
    ),
    coresBusy: num(cpu, 'coresBusy', `${what}.cpu`),
  };
}

/** µs per message of the servers (nodes, connectors or nats-servers) and of the bench client. */
function cpuSplit(cpu: RunCpu): { servers: number; client: number } {
  let servers = 0;
  for (const [name, micros] of Object.entries(cpu.byProcessMicros))
    if (name !== benchClient) servers += micros;
  return { servers, client: cpu.byProcessMicros[benchClient] ?? 0 };
}

// ---- running a bench ----

let running: ChildProcess | undefined;
/** Where bench:publish's nodes write their CPU profiles; removed once read, or on a signal. */
let profileDirectory: string | undefined;

function removeProfiles(): void {
  if (profileDirectory !== undefined) rmSync(profileDirectory, { recursive: true, force: true });
  profileDirectory = undefined;
}

// The bench's own handler stops its clusters and removes its temp directories: pass the signal on.
cleanUpOnSignals('stopping', async (signal) => {
  const child = running;
  if (child !== undefined && isRunning(child)) {
    child.kill(signal);
    await waitForExit(child);
  }
  removeProfiles();
});

interface BenchRun {
  readonly record: Json;
  readonly file: string;
  readonly seconds: number;
}

/** A bench that printed nothing for this long after it started is stuck, not busy (see runBench). */
const benchSilenceMs = 90_000;
const benchAttempts = 3;

/**
 * Runs bench/<script>.ts with `args`, echoing its output to stderr; returns its full result record.
 * Every bench prints within seconds of starting; one that printed nothing for benchSilenceMs hung
 * at start-up (under Node 20 tsx's module-loader hooks can deadlock there, with the process idle)
 * and is killed and started again, up to benchAttempts times.
 */
async function runBench(script: string, args: readonly string[], attempt = 1): Promise<BenchRun> {
  const file = join(import.meta.dirname, `${script}.ts`);
  progress(`\n== ${script}: tsx bench/${script}.ts ${args.join(' ')}`);
  const started = performance.now();
  const { child } = startTypeScript(`bench/${script}.ts`, file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running = child;
  const stdoutLines: string[] = [];
  let heard = false;
  let silent = false;
  const watchdog = setTimeout(() => {
    if (heard) return;
    silent = true;
    child.kill('SIGKILL');
  }, benchSilenceMs);
  const echo = (stream: NodeJS.ReadableStream, keep: boolean): Promise<void> =>
    new Promise((resolveEcho) => {
      const lines = createInterface({ input: stream });
      lines.on('line', (line) => {
        heard = true;
        if (keep) stdoutLines.push(line);
        progress(`  [${script}] ${line}`);
      });
      lines.on('close', () => resolveEcho());
    });
  const echoed = Promise.all([echo(child.stdout!, true), echo(child.stderr!, false)]);
  const code = await new Promise<number | null>((resolveExit, reject) => {
    child.once('error', reject);
    child.once('exit', (exitCode) => resolveExit(exitCode));
  });
  clearTimeout(watchdog);
  await echoed;
  running = undefined;
  if (silent && attempt < benchAttempts) {
    progress(`  [${script}] printed nothing in ${benchSilenceMs / 1000} s: killed; starting it again`);
    return runBench(script, args, attempt + 1);
  }
  if (code !== 0) throw new Error(`bench/${script}.ts exited with code ${code}`);
  const last = [...stdoutLines].reverse().find((line) => line.trim() !== '');
  if (last === undefined) throw new Error(`bench/${script}.ts printed no result line`);
  const headline = record(JSON.parse(last), `${script} last line`);
  const name = str(headline, 'name', script);
  const timestamp = str(headline, 'timestamp', script);
  const resultFile = join(resultsDirectory, `${name}-${timestamp.replace(/[:.]/g, '-')}.json`);
  const full = record(JSON.parse(readFileSync(resultFile, 'utf8')), resultFile);
  const seconds = (performance.now() - started) / 1000;
  progress(`== ${script}: done in ${seconds.toFixed(0)} s (${relative(root, resultFile)})`);
  return { record: full, file: resultFile, seconds };
}

/** A result file a bench wrote in an earlier run of its own, taken as it is. */
function readBenchRun(file: string): BenchRun {
  const path = resolve(file);
  progress(`\n== taking ${relative(root, path)} as it is`);
  return { record: record(JSON.parse(readFileSync(path, 'utf8')), path), file: path, seconds: 0 };
}

// ---- formatting ----

function sizeLabel(bytes: number): string {
  return formatBytes(bytes).replace(/\.00 /, ' ');
}

function fixed(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(value: number, reference: number): string {
  return reference > 0 ? `${(value / reference).toFixed(2)}×` : '–';
}

/** A Markdown table; the first column is left-aligned and the others, numbers, right-aligned. */
function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align = header.map((_, i) => (i === 0 ? ':--' : '--:')),
): string {
  return [header, align, ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}

interface Section {
  readonly heading: string;
  readonly body: string;
  /** Rows for the summary table: figure, ledgerbus, peer or limit, ratio. */
  readonly headline?: readonly (readonly string[])[];
}

interface ChartFile {
  readonly name: string;
  readonly svg: string;
}

// ---- publish: throughput vs size, latency CDF ----

interface PublishRun {
  readonly bytes: number;
  readonly messagesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly percentiles: readonly Percentile[];
  readonly batch?: number;
  readonly cpu?: RunCpu;
}

function publishRuns(entries: readonly Json[], what: string): PublishRun[] {
  return entries.map((entry, index) => {
    const at = `${what}[${index}]`;
    const cpu = runCpu(entry, at);
    return {
      bytes: num(entry, 'messageBytes', at),
      messagesPerSecond: num(entry, 'messagesPerSecond', at),
      p50Ms: num(entry, 'p50Ms', at),
      p99Ms: num(entry, 'p99Ms', at),
      percentiles: percentiles(entry, at),
      ...(typeof entry['batch'] === 'number' ? { batch: entry['batch'] } : {}),
      ...(cpu === undefined ? {} : { cpu }),
    };
  });
}

function publishSections(options: Options, run: BenchRun, charts: ChartFile[]): Section[] {
  const details = record(run.record['details'], 'publish.details');
  const ledgerbus = publishRuns(list(details['ledgerbus'], 'publish.ledgerbus'), 'ledgerbus');
  const jetstream = publishRuns(list(details['jetstream'], 'publish.jetstream'), 'jetstream');
  const messages = num(details, 'messages', 'publish.details');
  const natsVersion = options.skipJetstream ? undefined : natsServerVersion();
  const peerName = natsVersion === undefined ? undefined : `NATS JetStream ${natsVersion}`;
  const peerOf = (bytes: number): PublishRun | undefined => jetstream.find((r) => r.bytes === bytes);
  const batch = ledgerbus[0]?.batch ?? 0;

  const sizeTicks = ledgerbus.map((r) => r.bytes);
  charts.push({
    name: 'throughput-vs-size.svg',
    svg: lineChart({
      title: 'Publish throughput vs message size',
      subtitle: `${options.concurrency} messages in flight, ${fixed(messages)} messages per point, same run`,
      x: { label: 'message size (log scale)', scale: 'log', ticks: sizeTicks, format: sizeLabel },
      y: { label: 'acknowledged messages/s' },
      series: [
        {
          name: 'ledgerbus publish (4 nodes, PBFT, fsync)',
          color: palette.ledgerbus,
          points: ledgerbus.map((r) => ({
            x: r.bytes,
            y: r.messagesPerSecond,
            label: formatNumber(Math.round(r.messagesPerSecond)),
          })),
        },
        ...(peerName === undefined
          ? []
          : [
              {
                name: `${peerName} (3 nodes, R3, lazy fsync)`,
                color: palette.peer,
                points: jetstream.map((r) => ({
                  x: r.bytes,
                  y: r.messagesPerSecond,
                  label: formatNumber(Math.round(r.messagesPerSecond)),
                })),
              },
            ]),
      ],
    }),
  });

  const sizeRows = ledgerbus.map((r) => {
    const peer = peerOf(r.bytes);
    return [
      sizeLabel(r.bytes),
      fixed(r.messagesPerSecond),
      peer === undefined ? '–' : fixed(peer.messagesPerSecond),
      peer === undefined ? '–' : ratio(r.messagesPerSecond, peer.messagesPerSecond),
      `${fixed(r.p50Ms, 1)} / ${fixed(r.p99Ms, 1)}`,
      peer === undefined ? '–' : `${fixed(peer.p50Ms, 1)} / ${fixed(peer.p99Ms, 1)}`,
      peer === undefined ? '–' : fixed((peer.messagesPerSecond * peer.bytes) / 2 ** 20, 1),
    ];
  });

  const cdfLedgerbus = ledgerbus.find((r) => r.bytes === options.cdfBytes);
  const cdfPeer = peerOf(options.cdfBytes);
  if (cdfLedgerbus === undefined) throw new Error(`publish: no run at ${options.cdfBytes} bytes`);
  charts.push({
    name: 'latency-cdf.svg',
    svg: lineChart({
      title: 'Publish latency distribution (CDF)',
      subtitle: `${sizeLabel(options.cdfBytes)} messages, ${options.concurrency} in flight, same run; nearest-rank percentiles`,
      x: { label: 'latency from send to verified acknowledgement, ms (log scale)', scale: 'log' },
      y: { label: 'percent of messages at or below', min: 0, max: 100, format: (v) => `${v}%` },
      series: [
        {
          name: 'ledgerbus publish',
          color: palette.ledgerbus,
          points: cdfLedgerbus.percentiles.map((q) => ({ x: q.ms, y: q.p })),
        },
        ...(peerName === undefined || cdfPeer === undefined
          ? []
          : [
              {
                name: peerName,
                color: palette.peer,
                points: cdfPeer.percentiles.map((q) => ({ x: q.ms, y: q.p })),
              },
            ]),
      ],
    }),
  });
  const cdfRows = cdfLedgerbus.percentiles.map((q, index) => {
    const peer = cdfPeer?.percentiles[index];
    return [
      `p${q.p}`,
      fixed(q.ms, 1),
      peer === undefined ? '–' : fixed(peer.ms, 1),
      peer === undefined ? '–' : ratio(q.ms, peer.ms),
    ];
  });

  const caveat =
    'What goes through ledgerbus consensus is each message\'s metadata (id, recipients, declared size, content root: about 250 bytes); the payload stays in the organizations\' storage and moves over the data path (see "Data path" below). So the ledgerbus line is expected to stay flat as the size grows — the size is only a number in the metadata — while JetStream replicates every payload byte 3 times. ' +
    `ledgerbus fsyncs before every vote and every acknowledgement; nats-server ${natsVersion ?? ''} cannot fsync before acks (\`sync_interval: always\` needs 2.10), so JetStream acknowledges data that is in memory on 2 of 3 servers. Both facts favour JetStream's numbers.`;

  const headlineSize = sizeLabel(options.cdfBytes);
  const cpuSection = publishCpuSection(options, details, ledgerbus, jetstream, charts);
  return [
    {
      heading: 'Publish throughput vs message size',
      headline: [
        [
          `publish, ${headlineSize} messages, ${options.concurrency} in flight (msg/s)`,
          fixed(cdfLedgerbus.messagesPerSecond),
          cdfPeer === undefined ? '–' : `${fixed(cdfPeer.messagesPerSecond)} (JetStream)`,
          cdfPeer === undefined ? '–' : ratio(cdfLedgerbus.messagesPerSecond, cdfPeer.messagesPerSecond),
        ],
        [
          `publish latency p99, same setting (ms, lower is better)`,
          fixed(cdfLedgerbus.p99Ms, 1),
          cdfPeer === undefined ? '–' : `${fixed(cdfPeer.p99Ms, 1)} (JetStream)`,
          cdfPeer === undefined ? '–' : ratio(cdfLedgerbus.p99Ms, cdfPeer.p99Ms),
        ],
      ],
      body: [
        `![Publish throughput vs message size](report/throughput-vs-size.svg)`,
        '',
        table(
          [
            'size',
            'ledgerbus msg/s',
            'JetStream msg/s',
            'ledgerbus ÷ JetStream',
            'ledgerbus p50 / p99 ms',
            'JetStream p50 / p99 ms',
            'JetStream payload MiB/s',
          ],
          sizeRows,
        ),
        '',
        `**How to read this.** Each point is messages acknowledged per second with ${options.concurrency} messages outstanding, ${fixed(messages)} measured messages per point, after a warm-up. ledgerbus: one producer (org1's client identity) sends signed batches of ${batch} messages to node1 of a 4-node network (PBFT over TLS, SQLite fsync before every vote and ack) and verifies each batch's acknowledgement (block header, certificate, inclusion proof). JetStream: one client publishing with ack into a 3-replica file stream on a 3-node cluster. Higher is better; the ratio column is ledgerbus ÷ JetStream at the same size. ${caveat}`,
      ].join('\n'),
    },
    {
      heading: 'Publish latency CDF',
      body: [
        `![Publish latency CDF](report/latency-cdf.svg)`,
        '',
        table(['percentile', 'ledgerbus ms', 'JetStream ms', 'ledgerbus ÷ JetStream'], cdfRows),
        '',
        `**How to read this.** For a latency x, the curve's height is the share of messages acknowledged within x; further left is faster, and a steep curve means steady latency. Both curves are from the ${sizeLabel(options.cdfBytes)} setting of the chart above. ledgerbus latency runs from when a message joins a batch to when the batch's acknowledgement has been received and verified, so all messages of a batch share one latency (the curve moves in steps of ${batch} messages); JetStream's runs from \`js.publish\` to its ack. The x axis is logarithmic.`,
      ].join('\n'),
    },
    ...(cpuSection === undefined ? [] : [cpuSection]),
  ];
}

// ---- publish: CPU per committed message, and where the nodes' CPU went ----

/** Area → µs per message from bench:publish's --cpu-prof, in lib/cpu-profile.ts's order. */
function cpuBreakdownOf(details: Json): [string, number][] | undefined {
  if (details['cpuBreakdownMicros'] === undefined) return undefined;
  const byArea = record(details['cpuBreakdownMicros'], 'publish.details.cpuBreakdownMicros');
  const known: readonly string[] = areas;
  const names = [
    ...known.filter((area) => area in byArea),
    ...Object.keys(byArea).filter((a) => !known.includes(a)),
  ];
  return names.map((area) => [area, num(byArea, area, 'publish.details.cpuBreakdownMicros')]);
}

/**
 * CPU µs per committed message for both systems at every size, and the nodes' breakdown by area;
 * undefined for a result from before bench:publish measured CPU.
 */
function publishCpuSection(
  options: Options,
  details: Json,
  ledgerbus: readonly PublishRun[],
  jetstream: readonly PublishRun[],
  charts: ChartFile[],
): Section | undefined {
  if (!ledgerbus.some((r) => r.cpu !== undefined)) return undefined;
  const withPeer = jetstream.some((r) => r.cpu !== undefined);
  const peerOf = (bytes: number): RunCpu | undefined => jetstream.find((r) => r.bytes === bytes)?.cpu;
  const split = (cpu: RunCpu | undefined): string => {
    if (cpu === undefined) return '–';
    const { servers, client } = cpuSplit(cpu);
    return `${fixed(servers)} / ${fixed(client)}`;
  };
  const rows = ledgerbus.map((r) => {
    const peer = peerOf(r.bytes);
    return [
      sizeLabel(r.bytes),
      r.cpu === undefined ? '–' : fixed(r.cpu.totalMicros),
      split(r.cpu),
      ...(withPeer
        ? [
            peer === undefined ? '–' : fixed(peer.totalMicros),
            split(peer),
            r.cpu === undefined || peer === undefined ? '–' : ratio(r.cpu.totalMicros, peer.totalMicros),
          ]
        : []),
      `${r.cpu === undefined ? '–' : fixed(r.cpu.coresBusy, 2)}${withPeer ? ` / ${peer === undefined ? '–' : fixed(peer.coresBusy, 2)}` : ''}`,
    ];
  });
  const header = [
    'size',
    'ledgerbus µs/msg',
    'of which 4 nodes / client',
    ...(withPeer ? ['JetStream µs/msg', 'of which 3 servers / client', 'ledgerbus ÷ JetStream'] : []),
    withPeer ? 'cores busy, ledgerbus / JetStream' : 'cores busy',
  ];

  const headlineRun = ledgerbus.find((r) => r.bytes === options.cdfBytes);
  const headlinePeer = peerOf(options.cdfBytes);
  const headline =
    headlineRun?.cpu === undefined
      ? []
      : [
          [
            `publish CPU per message, all processes, ${sizeLabel(options.cdfBytes)}, ${options.concurrency} in flight (µs, lower is better)`,
            fixed(headlineRun.cpu.totalMicros),
            headlinePeer === undefined ? '–' : `${fixed(headlinePeer.totalMicros)} (JetStream)`,
            headlinePeer === undefined ? '–' : ratio(headlineRun.cpu.totalMicros, headlinePeer.totalMicros),
          ],
        ];

  const breakdown = cpuBreakdownOf(details);
  // bench:publish profiles the measured window of its last run.
  const profiled = ledgerbus.at(-1);
  const breakdownBody: string[] = [];
  if (breakdown !== undefined && profiled !== undefined) {
    const nodesMicros = profiled.cpu === undefined ? undefined : cpuSplit(profiled.cpu).servers;
    const peerServers = peerOf(profiled.bytes);
    const sumMicros = breakdown.reduce((sum, [, micros]) => sum + micros, 0);
    const sorted = [...breakdown].filter(([, micros]) => micros > 0).sort((a, b) => b[1] - a[1]);
    charts.push({
      name: 'cpu-breakdown.svg',
      svg: barChart({
        title: "Where the ledgerbus nodes' CPU goes, per committed message",
        subtitle: `bench:publish, ${sizeLabel(profiled.bytes)} messages, ${options.concurrency} in flight; V8 profiles of the 4 nodes scaled to /proc CPU${nodesMicros === undefined ? '' : ` (${fixed(nodesMicros)} µs in all)`}`,
        valueAxis: { label: 'CPU µs per committed message (lower is better)' },
        bars: [
          ...sorted.map(([area, micros]) => ({ label: area, value: micros, color: palette.ledgerbus })),
          ...(peerServers === undefined
            ? []
            : [
                {
                  label: 'JetStream, 3 servers, all work',
                  value: cpuSplit(peerServers).servers,
                  color: palette.peer,
                },
              ]),
        ],
      }),
    });
    const share = (micros: number): string =>
      sumMicros > 0 ? `${fixed((micros / sumMicros) * 100, 1)}%` : '–';
    breakdownBody.push(
      '',
      `![CPU per message by area](report/cpu-breakdown.svg)`,
      '',
      table(
        ['area', 'µs per message, 4 nodes', 'share'],
        [
          ...[...breakdown]
            .sort((a, b) => b[1] - a[1])
            .map(([area, micros]) => [area, fixed(micros, 1), share(micros)]),
          ['all areas', fixed(sumMicros, 1), share(sumMicros)],
          ...(nodesMicros === undefined
            ? []
            : [["the 4 nodes' CPU from /proc, same window", fixed(nodesMicros), '']]),
        ],
      ),
      '',
      `**How to read this.** The chart covers the measured window of bench:publish's last run (${sizeLabel(profiled.bytes)} messages): every node ran with Node's sampling CPU profiler (\`--cpu-prof\`) for all of the publish runs, so every ledgerbus publish figure in this report includes the profiler's own cost (JetStream is not profiled). A sampling profiler counts the time a thread is on the stack, including time spent waiting for a core or inside an fsync, so its samples are not CPU time: each area is the share of that node's non-idle samples that fell in it, scaled to the CPU time /proc measured for that node in the same window, and the four nodes are added up. The areas therefore sum to the nodes' CPU (the table's last two rows: they differ by rounding, or by a node that wrote no profile), and the bench client, which is not profiled, is left out (its µs are in the table above). A sample belongs to the area of the innermost frame on its stack that belongs to one (${areas.filter((a) => a !== 'other').join(', ')}): a CBOR call made by a contract counts as encoding and a SQLite step made by the block store as sqlite, so no time is counted twice; samples with no such frame are "other".${peerServers === undefined ? '' : " The orange bar, for scale, is what JetStream's 3 servers used per message in total at the same size."}`,
    );
  }

  return {
    heading: 'Publish CPU per message',
    headline,
    body: [
      table(header, rows),
      '',
      `**How to read this.** CPU µs per committed message is the CPU time (user + system, every thread, read from /proc) that each process serving a run used during its measured window, added up over the processes and divided by the window's messages: ledgerbus's 4 nodes plus the bench client, which signs the batches and verifies the acknowledgements as a connector would${withPeer ? "; JetStream's 3 nats-servers plus the bench's NATS client" : ''}. Lower is better. Time spent waiting for a core is not CPU time, so this figure moves less with the load of others on the shared machine than msg/s does. Cores busy is the window's CPU seconds over its wall seconds: near ${machineInfo().cpuCount} means the run had the whole machine and was limited by it.`,
      ...breakdownBody,
    ].join('\n'),
  };
}

// ---- e2e: the application path, SDK producer → connectors → SDK consumer ----

/** One setting of bench:e2e for one system (lib/e2e-load.ts's SettingResult). */
type E2eRun = Pick<
  SettingResult,
  | 'deliveredPerSecond'
  | 'ackedPerSecond'
  | 'endToEndP50Ms'
  | 'endToEndP99Ms'
  | 'sendP50Ms'
  | 'sendP99Ms'
  | 'storedP50Ms'
  | 'storedP99Ms'
> & { readonly cpu?: RunCpu };

function e2eRun(entry: Json, what: string): E2eRun {
  const optional = (key: string): number | undefined =>
    entry[key] === undefined ? undefined : num(entry, key, what);
  const storedP50Ms = optional('storedP50Ms');
  const storedP99Ms = optional('storedP99Ms');
  const cpu = runCpu(entry, what);
  return {
    deliveredPerSecond: num(entry, 'deliveredPerSecond', what),
    ackedPerSecond: num(entry, 'ackedPerSecond', what),
    endToEndP50Ms: num(entry, 'endToEndP50Ms', what),
    endToEndP99Ms: num(entry, 'endToEndP99Ms', what),
    sendP50Ms: num(entry, 'sendP50Ms', what),
    sendP99Ms: num(entry, 'sendP99Ms', what),
    ...(storedP50Ms === undefined ? {} : { storedP50Ms }),
    ...(storedP99Ms === undefined ? {} : { storedP99Ms }),
    ...(cpu === undefined ? {} : { cpu }),
  };
}

interface E2eSetting {
  readonly name: string;
  readonly label: string;
  /** Callers × message size, for prose. */
  readonly shape: string;
  readonly messages: number;
  readonly ledgerbus: E2eRun;
  readonly jetstream?: E2eRun;
}

function e2eSettings(details: Json): E2eSetting[] {
  const ledgerbus = record(details['ledgerbus'], 'e2e.details.ledgerbus');
  const jetstream =
    details['jetstream'] === undefined ? undefined : record(details['jetstream'], 'e2e.details.jetstream');
  return list(details['settings'], 'e2e.details.settings').map((setting, index) => {
    const at = `e2e.details.settings[${index}]`;
    const name = str(setting, 'name', at);
    const inFlight = num(setting, 'inFlight', at);
    const bytes = num(setting, 'messageBytes', at);
    const peer = jetstream?.[name];
    const shape = name === 'newcomer' ? `${inFlight} callers × ${sizeLabel(bytes)}` : undefined;
    return {
      name,
      label: shape === undefined ? `${sizeLabel(bytes)}, ${inFlight} in flight` : `newcomer: ${shape}`,
      shape: shape ?? `${inFlight} callers × ${sizeLabel(bytes)}`,
      messages: num(setting, 'messages', at),
      ledgerbus: e2eRun(record(ledgerbus[name], `e2e.ledgerbus.${name}`), `e2e.ledgerbus.${name}`),
      ...(peer === undefined
        ? {}
        : { jetstream: e2eRun(record(peer, `e2e.jetstream.${name}`), `e2e.jetstream.${name}`) }),
    };
  });
}

/** Milliseconds as the e2e chart notes them: seconds once they reach one. */
function shortMs(ms: number): string {
  return ms >= 1000 ? `${fixed(ms / 1000, 1)} s` : `${fixed(ms)} ms`;
}

function e2eSection(run: BenchRun, charts: ChartFile[]): Section {
  const details = record(run.record['details'], 'e2e.details');
  const settings = e2eSettings(details);
  const main = settings.find((setting) => setting.name === 'main');
  if (main === undefined) throw new Error('e2e: no main setting in the result');
  const natsVersion = typeof details['natsServer'] === 'string' ? details['natsServer'] : undefined;
  const peerName = `NATS JetStream${natsVersion === undefined ? '' : ` ${natsVersion}`}`;
  const warmup = typeof details['warmupMessages'] === 'number' ? details['warmupMessages'] : undefined;
  const newcomer = settings.find((setting) => setting.name === 'newcomer');
  const withPeer = settings.some((setting) => setting.jetstream !== undefined);

  charts.push({
    name: 'e2e.svg',
    svg: barChart({
      title: 'Application path end to end: delivered messages/s',
      subtitle: `SDK producer → connectors → SDK consumer${withPeer ? `, beside ${peerName} in the same run` : ''}; note: send→receive p99`,
      valueAxis: { label: 'messages/s from first send to last delivery (higher is better)' },
      bars: settings.flatMap((setting) => [
        {
          label: `ledgerbus, ${setting.label}`,
          value: setting.ledgerbus.deliveredPerSecond,
          color: palette.ledgerbus,
          note: `(p99 ${shortMs(setting.ledgerbus.endToEndP99Ms)})`,
        },
        ...(setting.jetstream === undefined
          ? []
          : [
              {
                label: `JetStream, ${setting.label}`,
                value: setting.jetstream.deliveredPerSecond,
                color: palette.peer,
                note: `(p99 ${shortMs(setting.jetstream.endToEndP99Ms)})`,
              },
            ]),
      ]),
    }),
  });

  const pair = (a: number | undefined, b: number | undefined): string =>
    a === undefined || b === undefined ? '–' : `${fixed(a, 1)} / ${fixed(b, 1)}`;
  const systemRow = (setting: E2eSetting, system: string, r: E2eRun): string[] => [
    setting.label,
    system,
    fixed(setting.messages),
    fixed(r.deliveredPerSecond),
    fixed(r.ackedPerSecond),
    pair(r.endToEndP50Ms, r.endToEndP99Ms),
    pair(r.storedP50Ms, r.storedP99Ms),
    pair(r.sendP50Ms, r.sendP99Ms),
    r.cpu === undefined ? '–' : fixed(r.cpu.totalMicros),
  ];
  const rows = settings.flatMap((setting) => [
    systemRow(setting, 'ledgerbus', setting.ledgerbus),
    ...(setting.jetstream === undefined ? [] : [systemRow(setting, 'JetStream', setting.jetstream)]),
  ]);
  const cpuRatio = (a: RunCpu | undefined, b: RunCpu | undefined): string =>
    a === undefined || b === undefined ? '–' : ratio(a.totalMicros, b.totalMicros);
  const ratioRows = settings.flatMap((setting) => {
    const peer = setting.jetstream;
    if (peer === undefined) return [];
    const own = setting.ledgerbus;
    return [
      [
        setting.label,
        ratio(own.deliveredPerSecond, peer.deliveredPerSecond),
        ratio(own.endToEndP50Ms, peer.endToEndP50Ms),
        ratio(own.endToEndP99Ms, peer.endToEndP99Ms),
        ratio(own.sendP50Ms, peer.sendP50Ms),
        cpuRatio(own.cpu, peer.cpu),
      ],
    ];
  });
  const peerPath = withPeer
    ? ` JetStream, measured after ledgerbus's processes were stopped: as many callers publish with ack into a 3-replica file stream on a 3-node cluster, and a durable pull consumer with explicit acks, on a second connection, is handed the messages; ${natsVersion === undefined ? 'the installed nats-server' : `nats-server ${natsVersion}`} acknowledges before its data is on disk (\`sync_interval: always\` needs 2.10), while ledgerbus fsyncs on both organizations' sides and in every node.`
    : '';
  const peer = main.jetstream;
  const backlogged = settings.filter(
    (s) => s.ledgerbus.ackedPerSecond > s.ledgerbus.deliveredPerSecond * 1.1,
  );

  return {
    heading: 'Application path end to end (SDK producer → connectors → SDK consumer)',
    headline: [
      [
        `application path, ${main.label} (delivered msg/s)`,
        fixed(main.ledgerbus.deliveredPerSecond),
        peer === undefined ? '–' : `${fixed(peer.deliveredPerSecond)} (JetStream)`,
        peer === undefined ? '–' : ratio(main.ledgerbus.deliveredPerSecond, peer.deliveredPerSecond),
      ],
      [
        'application path send→receive p99, same setting (ms, lower is better)',
        fixed(main.ledgerbus.endToEndP99Ms, 1),
        peer === undefined ? '–' : `${fixed(peer.endToEndP99Ms, 1)} (JetStream)`,
        peer === undefined ? '–' : ratio(main.ledgerbus.endToEndP99Ms, peer.endToEndP99Ms),
      ],
    ],
    body: [
      `![Application path end to end](report/e2e.svg)`,
      '',
      table(
        [
          'setting',
          'system',
          'messages',
          'delivered msg/s',
          'acked msg/s',
          'send→receive p50 / p99 ms',
          'send→stored p50 / p99 ms',
          'send ack p50 / p99 ms',
          'CPU µs/msg',
        ],
        rows,
        [':--', ':--', '--:', '--:', '--:', '--:', '--:', '--:', '--:'],
      ),
      ...(ratioRows.length === 0
        ? []
        : [
            '',
            table(
              [
                'ledgerbus ÷ JetStream',
                'delivered msg/s',
                'send→receive p50 (lower is better)',
                'send→receive p99 (lower is better)',
                'send ack p50 (lower is better)',
                'CPU µs/msg (lower is better)',
              ],
              ratioRows,
            ),
          ]),
      '',
      `**How to read this.** What an application sees, all of it timed, with every message checked on arrival (one lost, handed out twice or not ours fails the bench). ledgerbus: the bench's callers each call the SDK producer's \`send()\` with one message at a time (the main setting: ${main.label}${newcomer === undefined ? '' : `; the newcomer setting, ${newcomer.shape}, is what a first application would write`}). org1's connector encrypts each payload for org2 and stores it, gathers concurrent sends into signed batches and answers a send once its batch is committed by the 4-node PBFT network (fsync before every vote and acknowledgement) and the acknowledgement's proof checks out: that is the send ack. org2's connector long-polls its node for accepted messages, verifies each acceptance proof, takes the payload from the publish that carried it (payloads of at most 4 KiB travel inside their transaction; larger ones are fetched from org1's connector through the nodes), checks and decrypts it and stores it (send→stored; only ledgerbus reports it), and confirms the delivery on-chain; the SDK consumer on org2's connector, subscribed before the first send, fetches each payload and commits once per page after \`eachMessage\`, where send→receive ends.${peerPath} Delivered msg/s counts from a setting's first send to its last delivery; acked msg/s, from the first send to the last send ack, is the sending side alone. CPU µs/msg adds up every process over the setting: 4 nodes, 4 connectors and the bench client${withPeer ? ', or 3 nats-servers and the bench client' : ''}. ${warmup === undefined ? '' : `Each setting starts with ${fixed(warmup)} warm-up messages that are not counted. `}When the receiving side is slower than the sending side (acked msg/s above delivered msg/s${backlogged.length === 0 ? '' : `, as for ledgerbus in ${backlogged.length === settings.length && settings.length > 1 ? 'both settings' : `the ${backlogged.map((s) => `"${s.label}"`).join(' and ')} setting`} here`}), a backlog grows for as long as the setting runs and every message waits behind it, so ledgerbus's send→receive latency then grows with the number of messages (\`--e2e-messages\`) and measures the backlog more than the path; the send ack and delivered msg/s are the figures to compare then.`,
    ].join('\n'),
  };
}

// ---- e2e: where the application path's CPU goes, by process and area ----

/** Which processes the profiled e2e run's columns add up, in order. */
const e2eProcessGroups: readonly { readonly label: string; readonly test: (name: string) => boolean }[] = [
  { label: "org1's connector (sender)", test: (name) => name === 'connector-org1' },
  { label: "org2's connector (recipient)", test: (name) => name === 'connector-org2' },
  { label: 'the 4 nodes', test: (name) => /^node\d+$/.test(name) },
  { label: 'org3 and org4 connectors', test: (name) => /^connector-org[34]$/.test(name) },
];

/**
 * The profiled bench:e2e run's CPU per delivered message by process group and area, with the
 * unprofiled run's JetStream total for scale; undefined if the run carries no breakdown.
 */
function e2eCpuSection(profiled: BenchRun, main: BenchRun, charts: ChartFile[]): Section | undefined {
  const details = record(profiled.record['details'], 'e2e (profiled).details');
  if (details['cpuBreakdownByProcess'] === undefined) return undefined;
  const byProcess = record(details['cpuBreakdownByProcess'], 'e2e (profiled).cpuBreakdownByProcess');
  const run = e2eSettings(details).find((setting) => setting.name === 'main')?.ledgerbus;
  const peer = e2eSettings(record(main.record['details'], 'e2e.details')).find(
    (setting) => setting.name === 'main',
  )?.jetstream;
  const known: readonly string[] = areas;
  const areaOf = (name: string, area: string): number => {
    const entry = byProcess[name];
    if (entry === undefined) return 0;
    const micros = record(entry, `e2e (profiled).cpuBreakdownByProcess.${name}`)[area];
    return typeof micros === 'number' ? micros : 0;
  };
  const names = Object.keys(byProcess);
  const groups = e2eProcessGroups.map((group) => ({
    label: group.label,
    names: names.filter((name) => group.test(name)),
  }));
  const cellOf = (members: readonly string[], area: string): number =>
    members.reduce((sum, name) => sum + areaOf(name, area), 0);
  const totals = known.map((area) => [area, cellOf(names, area)] as const);
  const sorted = [...totals].filter(([, micros]) => micros > 0).sort((a, b) => b[1] - a[1]);
  const profiledMicros = totals.reduce((sum, [, micros]) => sum + micros, 0);
  const client = run?.cpu?.byProcessMicros[benchClient];
  charts.push({
    name: 'e2e-cpu-breakdown.svg',
    svg: barChart({
      title: "Where the application path's CPU goes, per delivered message",
      subtitle: `bench:e2e main setting, profiled run; V8 profiles of 4 nodes and 4 connectors scaled to /proc CPU (${fixed(profiledMicros)} µs in all)`,
      valueAxis: { label: 'CPU µs per delivered message (lower is better)' },
      bars: [
        ...sorted.map(([area, micros]) => ({ label: area, value: micros, color: palette.ledgerbus })),
        ...(client === undefined
          ? []
          : [{ label: 'bench client (SDK, not profiled)', value: client, color: palette.other }]),
        ...(peer?.cpu === undefined
          ? []
          : [
              {
                label: 'JetStream, all processes, all work',
                value: peer.cpu.totalMicros,
                color: palette.peer,
              },
            ]),
      ],
    }),
  });
  const rows = [...totals]
    .sort((a, b) => b[1] - a[1])
    .map(([area, total]) => [area, ...groups.map((group) => fixed(cellOf(group.names, area))), fixed(total)]);
  const groupTotals = groups.map((group) =>
    fixed(known.reduce((sum, area) => sum + cellOf(group.names, area), 0)),
  );
  return {
    heading: 'Application path CPU per message, by process and area',
    body: [
      `![Application path CPU by area](report/e2e-cpu-breakdown.svg)`,
      '',
      table(
        ['area', ...groups.map((group) => `${group.label}, µs/msg`), 'all profiled, µs/msg'],
        [...rows, ['all areas', ...groupTotals, fixed(profiledMicros)]],
      ),
      '',
      `**How to read this.** A second run of the application path's main setting${run === undefined ? '' : ` (${fixed(run.deliveredPerSecond)} delivered msg/s, ${run.cpu === undefined ? '–' : fixed(run.cpu.totalMicros)} CPU µs per message over every process)`}, with every node and connector under Node's sampling CPU profiler, so that the headline figures above carry none of the profiler's cost. Each process's CPU time from /proc, over the setting's measured window, is split in the shares of that process's busy profile samples that fell in each area, the innermost frame deciding (${known.filter((a) => a !== 'other').join(', ')}; "encryption" is the payload envelope: HPKE key wrapping and AES-GCM; "http" is the connector's API and its client). ${client === undefined ? '' : `The bench client — the SDK producer with its callers, and the SDK consumer — is not profiled: its ${fixed(client)} µs are its /proc total. `}${peer?.cpu === undefined ? '' : `The orange bar, for scale, is everything JetStream's servers and client used per message in the unprofiled run above. `}The profiled run is slower than the headline one, so its per-message figures are somewhat higher.`,
    ].join('\n'),
  };
}

// ---- scale: throughput vs partitions ----

function scaleSection(run: BenchRun, charts: ChartFile[]): Section {
  const details = record(run.record['details'], 'scale.details');
  const runs = list(details['runs'], 'scale.runs').map((entry, index) => {
    const at = `scale.runs[${index}]`;
    const lag = record(entry['lagMs'], `${at}.lagMs`);
    return {
      partitions: num(entry, 'partitions', at),
      requests: num(entry, 'requests', at),
      throughput: num(entry, 'throughput', at),
      lagP50: num(lag, 'p50', at),
      lagP99: num(lag, 'p99', at),
      wallSeconds: num(entry, 'wallSeconds', at),
    };
  });
  const one = runs.find((r) => r.partitions === 1);
  if (one === undefined) throw new Error('scale: no 1-partition run to draw the ideal from');
  const options = record(details['options'], 'scale.options');
  charts.push({
    name: 'throughput-vs-partitions.svg',
    svg: lineChart({
      title: 'Throughput vs partitions (simulated machines, real CPU cost)',
      subtitle: `${fixed(num(options, 'requests', 'scale.options'))} requests per partition; ideal = N × the 1-partition rate, same run`,
      x: { label: 'partitions (4 PBFT replicas each)', ticks: runs.map((r) => r.partitions), min: 0 },
      y: { label: 'certified messages/s' },
      series: [
        {
          name: 'ledgerbus (bench:scale)',
          color: palette.ledgerbus,
          points: runs.map((r) => ({
            x: r.partitions,
            y: r.throughput,
            label: formatNumber(Math.round(r.throughput)),
          })),
        },
        {
          name: 'linear ideal (1-partition rate × N)',
          color: palette.limit,
          dashed: true,
          points: runs.map((r) => ({ x: r.partitions, y: r.partitions * one.throughput })),
        },
      ],
    }),
  });
  const rows = runs.map((r) => {
    const ideal = r.partitions * one.throughput;
    return [
      String(r.partitions),
      fixed(r.throughput),
      fixed(ideal),
      ratio(r.throughput, ideal),
      fixed(r.throughput / r.partitions),
      `${fixed(r.lagP50, 1)} / ${fixed(r.lagP99, 1)}`,
    ];
  });
  const most = runs.reduce((best, r) => (r.partitions > best.partitions ? r : best));
  return {
    heading: 'Throughput vs partitions',
    headline: [
      [
        `scale, ${most.partitions} partitions (msg/s, simulated)`,
        fixed(most.throughput),
        `${fixed(most.partitions * one.throughput)} (linear ideal)`,
        ratio(most.throughput, most.partitions * one.throughput),
      ],
    ],
    body: [
      `![Throughput vs partitions](report/throughput-vs-partitions.svg)`,
      '',
      table(
        [
          'partitions',
          'measured msg/s',
          'linear ideal msg/s',
          'measured ÷ ideal',
          'per partition msg/s',
          'ledger lag p50 / p99 ms',
        ],
        rows,
      ),
      '',
      `**How to read this.** bench:scale is a discrete-event simulation in virtual time: each partition is a PBFT group of 4 real \`PbftReplica\` cores, each on its own simulated one-CPU machine, with links of ${num(options, 'latencyMs', 'scale.options')} ms and ${num(options, 'bandwidthMbps', 'scale.options')} Mbit/s, plus a 3-member Raft global ledger that re-verifies every block. Every piece of work is charged the real CPU time it took here (real Ed25519), so the model answers "does adding partitions on their own machines add throughput?", not "what does this VM do". The dashed line is perfect scaling from the 1-partition run of the same invocation; measured ÷ ideal near 1 means linear (the bench's goal is ≥ 0.8 at 4 partitions). Ledger lag is from a block's certification to its apply at the Raft leader.`,
    ].join('\n'),
  };
}

// ---- datapath: MiB/s beside the single-hop limit ----

function datapathSection(run: BenchRun, charts: ChartFile[]): Section {
  const details = record(run.record['details'], 'datapath.details');
  const ledgerbus = record(details['ledgerbus'], 'datapath.ledgerbus');
  const timeline = record(ledgerbus['timeline'], 'datapath.ledgerbus.timeline');
  const hops = list(details['singleHop'], 'datapath.singleHop').map((hop, index) => ({
    transport: str(hop, 'transport', `singleHop[${index}]`),
    mibPerSecond: num(hop, 'mibPerSecond', `singleHop[${index}]`),
    seconds: num(hop, 'seconds', `singleHop[${index}]`),
  }));
  const bytes = num(record(run.record['summary'], 'datapath.summary'), 'bytes', 'datapath.summary');
  const value = num(ledgerbus, 'mibPerSecond', 'datapath.ledgerbus');
  const seconds = num(ledgerbus, 'seconds', 'datapath.ledgerbus');
  const ack = typeof timeline['acknowledged'] === 'number' ? timeline['acknowledged'] : undefined;
  const started = typeof timeline['org2FetchStarted'] === 'number' ? timeline['org2FetchStarted'] : undefined;
  const tcp = hops.find((hop) => hop.transport === 'tcp');
  if (tcp === undefined) throw new Error('datapath: no single-hop TCP reference in the result');
  const hopLabel = (transport: string): string =>
    `single hop, ${transport === 'tcp' ? 'TCP' : transport.replace('tls', 'TLS ')} (limit)`;
  charts.push({
    name: 'datapath.svg',
    svg: barChart({
      title: 'Data path: one payload org1 → org2',
      subtitle: `${sizeLabel(bytes)} payload, end-to-end encrypted; limits measured in the same run`,
      valueAxis: { label: 'MiB/s (higher is better)' },
      bars: [
        { label: 'ledgerbus, POST at org1 → received at org2', value, color: palette.ledgerbus },
        ...hops.map((hop) => ({
          label: hopLabel(hop.transport),
          value: hop.mibPerSecond,
          color: hop.transport === 'tcp' ? palette.limit : '#999999',
        })),
      ],
    }),
  });
  const rows = [
    [
      'ledgerbus, POST at org1 → listed as received at org2',
      fixed(value, 1),
      fixed(seconds, 2),
      ratio(value, tcp.mibPerSecond),
    ],
    // Moments, not stages: with parts, org2 stores while org1 still encrypts.
    ...(started === undefined
      ? []
      : [['ledgerbus, of which: org2 began storing the first part at', '—', fixed(started, 2), '—']]),
    ...(ack === undefined
      ? []
      : [
          [
            'ledgerbus, of which: POST acknowledged (every part and the message committed) at',
            '—',
            fixed(ack, 2),
            '—',
          ],
        ]),
    ...hops.map((hop) => [
      hopLabel(hop.transport),
      fixed(hop.mibPerSecond, 1),
      fixed(hop.seconds, 2),
      ratio(hop.mibPerSecond, tcp.mibPerSecond),
    ]),
  ];
  return {
    heading: 'Data path MiB/s',
    headline: [
      [
        `data path, ${sizeLabel(bytes)} org1 → org2 (MiB/s)`,
        fixed(value, 1),
        `${fixed(tcp.mibPerSecond, 1)} (single hop TCP)`,
        ratio(value, tcp.mibPerSecond),
      ],
    ],
    body: [
      `![Data path](report/datapath.svg)`,
      '',
      table(['path', 'MiB/s', 'seconds', '÷ single hop TCP'], rows),
      '',
      `**How to read this.** One ${sizeLabel(bytes)} payload is POSTed to org1's connector and timed until org2's connector lists it as received: upload, encryption and fsynced storage at org1, the PBFT commit of its metadata, org2's fetch relayed connector1 → node1 → node2 → connector2, verification, decryption and fsynced storage at org2 (4 nodes and 4 connectors as separate processes, TLS 1.3 between them). Its size is declared, so it travels in parts of 64 MiB (\`producer.partBytes\`): each part is published as soon as org1 has sealed it and org2 fetches it while org1 seals the next, so the "of which" rows are moments (seconds after the POST began), not stages that add up. The grey bars are the limit the bench measures first, in the same run: two processes, one encrypting the same bytes with the same envelope code into a loopback socket and the other checking and decrypting them (plain TCP is the reference; TLS 1.3 is what ledgerbus links use). End to end, the ledgerbus path does all of the single hop's work and more (fsynced storage at both ends, the PBFT commit, two extra relays), so its ratio is expected below 1; the bench's goal is ≥ 0.5. MiB = 2^20 bytes.`,
    ].join('\n'),
  };
}

// ---- pbft: table only ----

function pbftSection(run: BenchRun): Section {
  const details = record(run.record['details'], 'pbft.details');
  const groups = list(details['runs'], 'pbft.runs').map((entry, index) => {
    const at = `pbft.runs[${index}]`;
    return {
      replicas: num(entry, 'replicas', at),
      value: num(entry, 'requestsPerSecond', at),
      bound: num(entry, 'bound', at),
    };
  });
  const rows = groups.map((g) => [
    String(g.replicas),
    fixed(g.value),
    fixed(g.bound),
    ratio(g.value, g.bound),
  ]);
  return {
    heading: 'PBFT core throughput',
    headline: groups.map((g) => [
      `PBFT core, n = ${g.replicas} (requests/s, one thread)`,
      fixed(g.value),
      `${fixed(g.bound)} (Ed25519 bound)`,
      ratio(g.value, g.bound),
    ]),
    body: [
      table(['replicas', 'requests/s', 'Ed25519 bound requests/s', 'measured ÷ bound'], rows),
      '',
      `**How to read this.** A whole PBFT group of \`PbftReplica\` cores runs on one thread over an instant network with real Ed25519 signatures. The bound is what one thread could certify if it did nothing but verify each request's client signature once per replica (Ed25519 verifications/s ÷ n, sampled before and during the run). Protocol messages, hashing and the application make up the rest; the bench's goal is ≥ 0.7 of the bound.`,
    ].join('\n'),
  };
}

// ---- blockstore and envelope: a bar each ----

function blockstoreSection(run: BenchRun, charts: ChartFile[]): Section {
  const at = 'blockstore';
  const append = num(run.record, 'value', at);
  const fsyncs = num(run.record, 'referenceValue', at);
  const summary = record(run.record['summary'], `${at}.summary`);
  const appendMany = num(summary, 'appendManyBlocksPerSecond', `${at}.summary`);
  const batch = num(summary, 'batch', `${at}.summary`);
  const details = record(run.record['details'], `${at}.details`);
  const single = num(record(details['append'], `${at}.append`), 'blocks', `${at}.append`);
  const many = record(details['appendMany'], `${at}.appendMany`);
  const transactions = num(many, 'transactionsPerSecond', `${at}.appendMany`);
  charts.push({
    name: 'blockstore.svg',
    svg: barChart({
      title: 'Durable block appends',
      subtitle: 'SQLite WAL, synchronous=FULL; the fsync rate of the same directory measured in the same run',
      valueAxis: { label: 'per second (higher is better)' },
      bars: [
        { label: 'BlockStore.append (blocks/s)', value: append, color: palette.ledgerbus },
        { label: `BlockStore.appendMany(${batch}) (blocks/s)`, value: appendMany, color: palette.ledgerbus },
        { label: '4 KiB append + fdatasync (fsyncs/s)', value: fsyncs, color: palette.limit },
      ],
    }),
  });
  return {
    heading: 'Block store appends',
    headline: [
      ['block store, append (blocks/s)', fixed(append), `${fixed(fsyncs)} (fsyncs/s)`, ratio(append, fsyncs)],
    ],
    body: [
      `![Block store](report/blockstore.svg)`,
      '',
      table(
        ['operation', 'per second', '÷ fsyncs/s'],
        [
          [
            `append, one block per transaction (${fixed(single)} blocks)`,
            fixed(append),
            ratio(append, fsyncs),
          ],
          [
            `appendMany, ${batch} blocks per transaction: blocks`,
            fixed(appendMany),
            ratio(appendMany, fsyncs),
          ],
          [
            `appendMany, ${batch} blocks per transaction: transactions`,
            fixed(transactions),
            ratio(transactions, fsyncs),
          ],
          ['4 KiB append + fdatasync (the limit)', fixed(fsyncs), ratio(fsyncs, fsyncs)],
        ],
      ),
      '',
      `**How to read this.** A partition's block store commits every append as one SQLite transaction with the WAL fsynced before it returns, so the disk's fsync rate bounds single appends: a ratio near 1 means the store costs little beyond its fsync. \`appendMany\` puts a batch in one transaction and so amortizes the fsync. The fsync rate is measured in the store's own directory, half before and half after the appends.`,
    ].join('\n'),
  };
}

function envelopeSection(run: BenchRun, charts: ChartFile[]): Section {
  const at = 'envelope';
  const encrypt = num(run.record, 'value', at);
  const encryptReference = num(run.record, 'referenceValue', at);
  const summary = record(run.record['summary'], `${at}.summary`);
  const decrypt = num(summary, 'decryptMiBPerSecond', `${at}.summary`);
  const decryptReference = num(summary, 'decryptReferenceMiBPerSecond', `${at}.summary`);
  const bytes = num(summary, 'payloadBytes', `${at}.summary`);
  const options = record(record(run.record['details'], `${at}.details`)['options'], `${at}.options`);
  const chunkBytes = num(options, 'chunkBytes', `${at}.options`);
  const runs = num(options, 'runs', `${at}.options`);
  charts.push({
    name: 'envelope.svg',
    svg: barChart({
      title: 'Payload envelope, in memory',
      subtitle: `${sizeLabel(bytes)} payload in ${sizeLabel(chunkBytes)} chunks, best of ${runs} runs; primitives timed in the same run`,
      valueAxis: { label: 'MiB/s (higher is better)' },
      bars: [
        { label: 'envelope encrypt', value: encrypt, color: palette.ledgerbus },
        { label: 'AES-256-GCM + SHA-256 per chunk', value: encryptReference, color: palette.limit },
        { label: 'envelope decrypt', value: decrypt, color: palette.ledgerbus },
        { label: 'SHA-256 + AES-256-GCM open per chunk', value: decryptReference, color: palette.limit },
      ],
    }),
  });
  return {
    heading: 'Envelope MiB/s',
    headline: [
      [
        'envelope encrypt (MiB/s)',
        fixed(encrypt),
        `${fixed(encryptReference)} (primitives)`,
        ratio(encrypt, encryptReference),
      ],
      [
        'envelope decrypt (MiB/s)',
        fixed(decrypt),
        `${fixed(decryptReference)} (primitives)`,
        ratio(decrypt, decryptReference),
      ],
    ],
    body: [
      `![Envelope](report/envelope.svg)`,
      '',
      table(
        ['direction', 'envelope MiB/s', 'primitives MiB/s', 'envelope ÷ primitives'],
        [
          ['encrypt', fixed(encrypt), fixed(encryptReference), ratio(encrypt, encryptReference)],
          ['decrypt', fixed(decrypt), fixed(decryptReference), ratio(decrypt, decryptReference)],
        ],
      ),
      '',
      `**How to read this.** The envelope seals each chunk with AES-256-GCM and hashes its ciphertext for the signed chunk list; opening hashes, checks and decrypts. The primitives column does exactly those node:crypto calls over the same bytes with no streams and no per-payload work: what this machine can do at best, so the ratio is the envelope's own overhead. Everything is in memory; no disk is timed. MiB = 2^20 bytes.`,
    ].join('\n'),
  };
}

// ---- the report ----

function gitDescription(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' })
        .trim()
        .split('\n')
        .filter((line) => line !== '').length > 0;
    return dirty ? `${head} (with uncommitted changes in the working tree)` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  if (options === undefined) return;
  const started = performance.now();
  const startedAt = new Date();
  // Taken before anything is written: the report's own charts would make every run look dirty.
  const commit = gitDescription();
  const loadBefore = loadavg();
  const charts: ChartFile[] = [];
  const sections: Section[] = [];
  const runs: { name: string; run: BenchRun }[] = [];
  const skipped: string[] = [...options.skip];

  if (!options.skip.has('publish')) {
    profileDirectory = mkdtempSync(join(tmpdir(), 'ledgerbus-report-cpu-prof-'));
    let run: BenchRun;
    try {
      run = await runBench('publish', [
        '--messages',
        String(options.messages),
        '--concurrency',
        String(options.concurrency),
        '--message-bytes',
        options.sizes.join(','),
        '--percentiles',
        cdfPercentiles.join(','),
        '--cpu-prof',
        profileDirectory,
        ...(options.skipJetstream ? ['--skip-jetstream'] : []),
      ]);
    } finally {
      // bench:publish has summed the profiles into its result; nothing else reads them.
      removeProfiles();
    }
    runs.push({ name: 'publish', run });
    sections.push(...publishSections(options, run, charts));
  }
  if (!options.skip.has('e2e')) {
    const run = await runBench('e2e', options.e2e);
    runs.push({ name: 'e2e', run });
    sections.push(e2eSection(run, charts));
    if (options.e2eProfile !== undefined) {
      // A run of its own: the profiler's cost must not lower the headline figures above.
      profileDirectory = mkdtempSync(join(tmpdir(), 'ledgerbus-report-cpu-prof-'));
      let profiled: BenchRun;
      try {
        profiled = await runBench('e2e', [...options.e2eProfile, '--cpu-prof', profileDirectory]);
      } finally {
        removeProfiles();
      }
      runs.push({ name: 'e2e (profiled)', run: profiled });
      const section = e2eCpuSection(profiled, run, charts);
      if (section !== undefined) sections.push(section);
    }
  }
  if (!options.skip.has('scale')) {
    const run = await runBench('scale', [
      '--requests',
      String(options.scaleRequests),
      '--partitions',
      '1,2,4',
      ...(options.quick ? ['--warmup', '500'] : []),
    ]);
    runs.push({ name: 'scale', run });
    sections.push(scaleSection(run, charts));
  }
  if (!options.skip.has('datapath')) {
    const run = await runBench('datapath', ['--bytes', String(options.datapathBytes)]);
    runs.push({ name: 'datapath', run });
    sections.push(datapathSection(run, charts));
  }
  if (!options.skip.has('pbft')) {
    const run = await runBench('pbft', ['--requests', String(options.pbftRequests)]);
    runs.push({ name: 'pbft', run });
    sections.push(pbftSection(run));
  }
  if (!options.skip.has('blockstore')) {
    const blocks = options.blockstoreBlocks;
    const run = await runBench('blockstore', ['--blocks', String(blocks), '--batched', String(blocks * 10)]);
    runs.push({ name: 'blockstore', run });
    sections.push(blockstoreSection(run, charts));
  }
  if (!options.skip.has('envelope')) {
    const run = await runBench('envelope', ['--bytes', String(options.envelopeBytes)]);
    runs.push({ name: 'envelope', run });
    sections.push(envelopeSection(run, charts));
  }
  if (!options.skip.has('escrow')) {
    const run = await runBench('escrow', options.escrow);
    runs.push({ name: 'escrow', run });
    sections.push(escrowSection(run.record, charts));
  }
  if (!options.skip.has('soak')) {
    const run =
      options.soakResult === undefined
        ? await runBench('soak', ['--messages', String(options.soakMessages), '--json-only'])
        : readBenchRun(options.soakResult);
    runs.push({ name: 'soak', run });
    sections.push(soakSection(run.record, charts));
  }

  const totalSeconds = (performance.now() - started) / 1000;
  const loadAfter = loadavg();
  const machine = machineInfo();
  const chartDirectory = join(options.out, 'report');
  mkdirSync(chartDirectory, { recursive: true });
  for (const chart of charts) writeFileSync(join(chartDirectory, chart.name), chart.svg);

  const load = (values: number[]): string => values.map((v) => v.toFixed(2)).join(', ');
  const markdown = [
    '# ledgerbus benchmark report',
    '',
    '> Generated by `npm run bench:report` (bench/report.ts); do not edit by hand — rerun it.',
    `> ${options.quick ? '**QUICK MODE: small counts, for smoke checks only; do not quote these numbers.** ' : ''}` +
      'This is a **shared 2-core VM**: other people run builds and tests on it at the same time, so every number here is noisy (differences of ±20% between runs are normal). Compare figures only within one report: every ledgerbus figure sits beside a peer or limit measured **in the same run**, on the same machine, minutes apart.',
    '',
    table(
      ['', ''],
      [
        ['date', startedAt.toISOString()],
        ['git commit', commit],
        [
          'machine',
          `${machine.cpuModel}, ${machine.cpuCount} CPUs, ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB RAM, ${machine.platform}/${machine.arch}`,
        ],
        ['Node.js', machine.node],
        ['load average (1, 5, 15 min) at start / end', `${load(loadBefore)} / ${load(loadAfter)}`],
        ['total run time', `${(totalSeconds / 60).toFixed(1)} min`],
        [
          'benches',
          runs
            .map(
              ({ name, run }) =>
                `bench:${name} (${run.seconds > 0 ? `${run.seconds.toFixed(0)} s` : 'an earlier run'}, ${relative(root, run.file)})`,
            )
            .join('; ') + (skipped.length === 0 ? '' : `; skipped: ${skipped.join(', ')}`),
        ],
      ],
      [':--', ':--'],
    ),
    '',
    '## Summary',
    '',
    table(
      ['figure', 'ledgerbus', 'same-run peer or limit', 'ratio'],
      sections.flatMap((section) => section.headline ?? []),
    ),
    '',
    'Charts: ' + charts.map((chart) => `[${chart.name}](report/${chart.name})`).join(', ') + '.',
    '',
    ...sections.flatMap((section) => [`## ${section.heading}`, '', section.body, '']),
  ].join('\n');
  mkdirSync(options.out, { recursive: true });
  const reportFile = join(options.out, 'REPORT.md');
  writeFileSync(reportFile, markdown);
  progress(`\nreport written in ${(totalSeconds / 60).toFixed(1)} min`);
  process.stdout.write(`${reportFile}\n`);
}

await main();
