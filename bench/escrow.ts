/**
 * `npm run bench:escrow`: what escrow topics (issue 14, docs/escrow.md) cost, on a real devnet, each
 * figure beside the same work without escrow in the same run.
 *
 * 1. Small messages (200 B): `--concurrency` callers at org1's connector each keep one send
 *    outstanding (`POST /v1/topics/T/messages?to=org2`) until `--small` sends were answered, on a
 *    standard topic and on escrow topics with k = 2 of n = 2 and n = 3 shares (the devnet has 4
 *    organizations, so at most 3 holders besides the sender). An escrow send is answered once its one
 *    chunk sits on 3 holders, the shares are sealed and the publish (a batch of its own) is
 *    committed. Beside it, the paper's share-count axis in process: Feldman split, HPKE seal and share
 *    verification for n = 2, 3, 4, 10 (k = 2) per message. BlockTorrent's Fabric implementation
 *    saturates at ~35 tps and loses ~14% from 2 to 10 shares; the issue's goal is ≥ 1,000/s with the
 *    same cost growth or less.
 * 2. Large files (--sizes × --chunks): each size sent once on a standard topic (the plain transfer,
 *    timed until org2 lists it received) and once per chunk count on an escrow topic whose chunk size
 *    cuts it into that many chunks. For each escrowed file: the placer's split and distribution times
 *    (its "escrowed chunks and key shares placed" log line), the send's answer and org2's receipt, then
 *    an audit — org4 (the dev auditor) requests, org3 approves, the share holders release — and the
 *    auditor's fetch, whose regenerationMs runs from the first chunk request to the verified plaintext
 *    stored. Goal: 50 MiB in 200 chunks regenerated in < 1 s. The auditor's sha256 must equal the
 *    file's, or the run fails.
 * 3. Placement: the paper's three-hash rule against rendezvous ranking, over --placement-samples
 *    random chunk hashes with 4..10 candidates: the share of chunks on 3 distinct holders.
 *
 * The in-process parts (2's share axis, 3) run before the devnet starts, so they do not compete with
 * it for the CPU. value = escrow publishes/s at k = 2, n = 3 (the default policy); referenceValue =
 * standard publishes/s, same run, same message size and callers.
 *
 * Options: --small N (default 2000), --concurrency N (32), --small-bytes N (200), --e2e-shares 2,3,
 * --crypto-shares 2,3,4,10, --crypto-messages N (300), --sizes 5MiB,10MiB,25MiB,50MiB (suffixes as
 * lib/payload.ts), --chunks 10,50,100,200, --placement-samples N (100000), --dir D (kept; default a
 * temporary directory removed at the end), --json (no progress lines: only the table on stderr and
 * the JSON line on stdout, which is all stdout ever carries), --base-port N
 * (default 22800), --timeout-ms N (per wait), --runtime tsx|dist.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startDevnet } from './lib/devnet.js';
import type { Devnet, DevnetRuntime } from './lib/devnet.js';
import { createTopic, retrying, sendSmall } from './lib/escrow-api.js';
import { measurePlacement, measureShareCosts } from './lib/escrow-crypto.js';
import { chunkBytesFor, measureEscrowFile, measurePlain } from './lib/escrow-files.js';
import type { EscrowFileRun, FileParties, PlainRun } from './lib/escrow-files.js';
import { growth, humanReport } from './lib/escrow-report.js';
import { measureSmall } from './lib/escrow-small.js';
import type { SmallRun } from './lib/escrow-small.js';
import { formatBytes, parseByteSize } from './lib/payload.js';
import { round, writeBenchResult } from './lib/results.js';
import { cleanUpOnSignals, stopChildren } from '../test/support/processes.js';
import { showHelpIfAsked } from './lib/help.js';

const threshold = 2;
const replicas = 3;
const smallGoal = 1000;
const regenerationGoalMs = 1000;
const mib = 2 ** 20;

interface Options {
  readonly small: number;
  readonly concurrency: number;
  readonly smallBytes: number;
  readonly e2eShares: readonly number[];
  readonly cryptoShares: readonly number[];
  readonly cryptoMessages: number;
  readonly sizes: readonly number[];
  readonly chunks: readonly number[];
  readonly placementSamples: number;
  readonly dir: string | undefined;
  readonly json: boolean;
  readonly basePort: number;
  readonly timeoutMs: number;
  readonly runtime: DevnetRuntime;
}

function parseOptions(): Options {
  showHelpIfAsked(import.meta.url);
  const { values } = parseArgs({
    options: {
      small: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '32' },
      'small-bytes': { type: 'string', default: '200' },
      'e2e-shares': { type: 'string', default: '2,3' },
      'crypto-shares': { type: 'string', default: '2,3,4,10' },
      'crypto-messages': { type: 'string', default: '300' },
      sizes: { type: 'string', default: '5MiB,10MiB,25MiB,50MiB' },
      chunks: { type: 'string', default: '10,50,100,200' },
      'placement-samples': { type: 'string', default: '100000' },
      dir: { type: 'string' },
      json: { type: 'boolean', default: false },
      'base-port': { type: 'string', default: '22800' },
      'timeout-ms': { type: 'string', default: '600000' },
      runtime: { type: 'string', default: 'tsx' },
    },
    strict: true,
  });
  const integer = (name: string, text: string, min = 1, max = Number.MAX_SAFE_INTEGER): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max)
      throw new Error(`--${name} must be an integer from ${min} to ${max}, not "${text}"`);
    return value;
  };
  const integers = (name: string, text: string, min: number, max: number): number[] =>
    text.split(',').map((part) => integer(name, part.trim(), min, max));
  const runtime = values.runtime;
  if (runtime !== 'tsx' && runtime !== 'dist') throw new Error('--runtime must be tsx or dist');
  const e2eShares = integers('e2e-shares', values['e2e-shares'], threshold, replicas);
  if (!e2eShares.includes(3))
    throw new Error('--e2e-shares must include 3: it is the headline (the default policy)');
  return {
    small: integer('small', values.small),
    concurrency: integer('concurrency', values.concurrency, 1, 1024),
    smallBytes: integer('small-bytes', values['small-bytes'], 1, mib),
    e2eShares,
    cryptoShares: integers('crypto-shares', values['crypto-shares'], threshold, 16),
    cryptoMessages: integer('crypto-messages', values['crypto-messages']),
    sizes: values.sizes.split(',').map((part) => parseByteSize(part)),
    chunks: integers('chunks', values.chunks, 1, 4096),
    placementSamples: integer('placement-samples', values['placement-samples']),
    dir: values.dir,
    json: values.json,
    basePort: integer('base-port', values['base-port'], 1024, 65_000),
    timeoutMs: integer('timeout-ms', values['timeout-ms']),
    runtime,
  };
}

let quiet = false;

function progress(text: string): void {
  if (!quiet) process.stderr.write(`${text}\n`);
}

// ---- cleanup ----

let workDirectory: string | undefined;
let removeWorkDirectory = false;
let devnet: Devnet | undefined;

async function cleanUp(): Promise<void> {
  const running = devnet;
  devnet = undefined;
  if (running !== undefined) await running.stop();
  await stopChildren();
  if (workDirectory !== undefined && removeWorkDirectory)
    rmSync(workDirectory, { recursive: true, force: true });
  workDirectory = undefined;
}

cleanUpOnSignals('stopping every child process and removing the work directory', cleanUp);

// ---- the run ----

const escrowPolicy = (shares: number, chunkBytes = mib) => ({
  chunkBytes,
  replicas,
  threshold,
  shares,
  auditApprovals: 1,
});

async function onDevnet(
  options: Options,
  net: Devnet,
): Promise<{ small: SmallRun[]; plain: PlainRun[]; files: EscrowFileRun[] }> {
  const organizations = net.layout.network.organizations.map((organization) => organization.id);
  const org1 = net.connector('org1');
  const senderLog = join(net.layout.directory, 'logs', 'connector-org1.log');
  const check = (): void => {
    const dead = net.dead();
    if (dead.length > 0)
      throw new Error(`${dead.join(', ')} exited; ${dead[0]}.log:\n${net.logTail(dead[0]!)}`);
  };
  const largest = Math.max(...options.sizes, options.smallBytes);
  const messageBytesMax = largest + mib;
  const fileTopics = new Map<number, string>();
  for (const size of options.sizes)
    for (const chunks of options.chunks) {
      const chunkBytes = chunkBytesFor(size, chunks);
      fileTopics.set(chunkBytes, `escrow-c${chunkBytes}`);
    }
  progress(
    `creating topics: standard, escrow n=${options.e2eShares.join(',')}, ${fileTopics.size} chunk sizes`,
  );
  await createTopic(org1, { name: 'standard', organizations, messageBytesMax });
  for (const shares of options.e2eShares)
    await createTopic(org1, {
      name: `escrow-n${shares}`,
      organizations,
      messageBytesMax,
      escrow: escrowPolicy(shares),
    });
  for (const [chunkBytes, name] of fileTopics)
    await createTopic(org1, { name, organizations, messageBytesMax, escrow: escrowPolicy(3, chunkBytes) });

  const small: SmallRun[] = [];
  const common = {
    sender: org1,
    auditor: net.connector('org4'),
    senderLog,
    to: 'org2',
    messages: options.small,
    bytes: options.smallBytes,
    concurrency: options.concurrency,
    warmup: Math.min(options.small, 4 * options.concurrency),
    check,
    progress,
  };
  progress(
    `small: standard topic, ${options.small} × ${options.smallBytes} B, ${options.concurrency} callers`,
  );
  small.push(
    await measureSmall({ ...common, label: 'standard', topic: 'standard', availability: 'standard' }),
  );
  progress(`  ${small.at(-1)!.messagesPerSecond.toFixed(1)} publishes/s`);
  for (const shares of options.e2eShares) {
    progress(`small: escrow topic k=${threshold} n=${shares}`);
    small.push(
      await measureSmall({
        ...common,
        label: `escrow-n${shares}`,
        topic: `escrow-n${shares}`,
        availability: 'escrow',
        shares,
        threshold,
      }),
    );
    progress(`  ${small.at(-1)!.messagesPerSecond.toFixed(1)} publishes/s`);
  }

  const parties: FileParties = {
    sender: org1,
    recipient: net.connector('org2'),
    recipientId: 'org2',
    auditor: net.connector('org4'),
    approver: net.connector('org3'),
    senderLog,
    check,
    timeoutMs: options.timeoutMs,
  };
  // Every file topic has run before its file is timed (a partition just created starts lazily).
  for (const name of fileTopics.values())
    await retrying(`the first send to ${name}`, 120_000, () =>
      sendSmall(org1, { topic: name, to: 'org2', id: `${name}-warmup`, body: new Uint8Array(64) }),
    );
  const plain: PlainRun[] = [];
  const files: EscrowFileRun[] = [];
  // Every file is its own window of the payload: nothing can be recognized as already stored.
  let start = 0;
  for (const bytes of options.sizes) {
    progress(`files: ${formatBytes(bytes)} plain`);
    plain.push(await measurePlain(parties, { topic: 'standard', start, bytes }));
    start += bytes;
    progress(`  received in ${plain.at(-1)!.receivedSeconds.toFixed(2)} s`);
    for (const chunks of options.chunks) {
      const chunkBytes = chunkBytesFor(bytes, chunks);
      progress(`files: ${formatBytes(bytes)} escrowed in ${chunks} chunks of ${formatBytes(chunkBytes)}`);
      const run = await measureEscrowFile(parties, {
        topic: fileTopics.get(chunkBytes)!,
        start,
        bytes,
        chunkBytes,
        chunksWanted: chunks,
        threshold,
      });
      start += bytes;
      files.push(run);
      progress(
        `  split ${run.splitMs.toFixed(0)} ms, distribute ${run.distributeMs.toFixed(0)} ms, regeneration ${run.regenerationMs.toFixed(0)} ms, sha256 ok`,
      );
    }
  }
  return { small, plain, files };
}

async function main(): Promise<void> {
  const options = parseOptions();
  quiet = options.json;
  if (options.dir === undefined) {
    workDirectory = mkdtempSync(join(tmpdir(), 'ledgerbus-bench-escrow-'));
    removeWorkDirectory = true;
  } else {
    workDirectory = resolve(options.dir);
    mkdirSync(workDirectory, { recursive: true });
  }
  try {
    progress(`in process: key escrow for n = ${options.cryptoShares.join(', ')} (k = ${threshold})`);
    const shareCosts = await measureShareCosts({
      shareCounts: options.cryptoShares,
      threshold,
      messages: options.cryptoMessages,
      warmup: Math.min(50, options.cryptoMessages),
    });
    progress(`in process: placement over ${options.placementSamples} chunk hashes, 4..10 candidates`);
    const placement = measurePlacement({
      candidateCounts: [4, 5, 6, 7, 8, 9, 10],
      samples: options.placementSamples,
    });
    progress(
      `devnet: starting 4 nodes + 4 connectors (${options.runtime}) in ${workDirectory} (base port ${options.basePort})`,
    );
    const started = performance.now();
    devnet = await startDevnet({
      directory: workDirectory,
      basePort: options.basePort,
      readyTimeoutMs: 120_000,
      runtime: options.runtime,
    });
    progress(`devnet: up in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const { small, plain, files } = await onDevnet(options, devnet);
    const figures = { small, shareCosts, placement, plain, files };
    // The table goes to stderr even with --json: stdout carries only the JSON line.
    process.stderr.write(`\n${humanReport(figures)}\n`);

    const standard = small.find((run) => run.availability === 'standard')!;
    const headline = small.find((run) => run.availability === 'escrow' && run.shares === 3)!;
    const fewest = shareCosts[0]!;
    const most = shareCosts.at(-1)!;
    const biggest = files.filter((run) => run.bytes === Math.max(...options.sizes));
    const goalFile = biggest.reduce<EscrowFileRun | undefined>(
      (best, run) => (best === undefined || run.chunks > best.chunks ? run : best),
      undefined,
    );
    writeBenchResult({
      name: 'escrow',
      value: round(headline.messagesPerSecond, 1),
      unit: 'publishes/s',
      reference: `standard (non-escrow) topic, same ${options.smallBytes} B messages, ${options.concurrency} callers, same devnet, same run`,
      referenceValue: round(standard.messagesPerSecond, 1),
      ratio: round(headline.messagesPerSecond / standard.messagesPerSecond, 3),
      summary: {
        escrowP50Ms: round(headline.p50Ms, 1),
        escrowP99Ms: round(headline.p99Ms, 1),
        standardP50Ms: round(standard.p50Ms, 1),
        standardP99Ms: round(standard.p99Ms, 1),
        smallGoal,
        keyEscrowGrowth: round(growth(fewest.totalMicros, most.totalMicros), 3),
        ...(goalFile === undefined
          ? {}
          : {
              goalFileBytes: goalFile.bytes,
              goalFileChunks: goalFile.chunks,
              goalFileRegenerationMs: round(goalFile.regenerationMs, 1),
              regenerationGoalMs,
            }),
      },
      details: {
        options: { ...options, dir: options.dir ?? null, threshold, replicas },
        small: small.map((run) => roundAll(run)),
        shareCosts: shareCosts.map((run) => roundAll(run)),
        placement: placement.map((row) => roundAll(row, 5)),
        plain: plain.map((run) => roundAll(run)),
        files: files.map((run) => roundAll(run)),
      },
    });
  } finally {
    await cleanUp();
  }
}

/** Every number of a record rounded, nested records too (arrays of strings stay as they are). */
function roundAll<T extends object>(record: T, digits = 3): T {
  const rounded = (value: unknown): unknown => {
    if (typeof value === 'number') return round(value, digits);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, rounded(inner)]));
    }
    return value;
  };
  return rounded(record) as T;
}

await main();
