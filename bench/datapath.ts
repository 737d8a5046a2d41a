/**
 * `npm run bench:datapath`: one large payload org1 → org2 through a real ledgerbus network, against
 * what two processes can do with the same end-to-end encryption over one connection.
 *
 * ledgerbus path: a devnet (4 nodes + 4 connectors as separate processes, from the sources, TLS 1.3
 * between them; lib/devnet.ts) is started, warmed up with a 1 KiB message, then the payload (lib/
 * payload.ts: deterministic, generated on the fly) is streamed into org1's connector with one
 * `POST /v1/topics/demo/messages?to=org2`. The clock runs from the start of that POST to the moment
 * org2's connector lists the message as received (GET /v1/received long-poll), which covers: upload,
 * encryption and fsynced storage at org1, the PBFT commit of the publish (the POST's answer), org2's
 * fetch relayed connector1 → node1 → node2 → connector2, verification, decryption and fsynced storage
 * at org2. The size is declared (Content-Length), so the payload travels in parts (src/connector/
 * parts.ts, 64 MiB each) and those phases overlap: org2 fetches a part while org1 seals the next.
 * The moments are read by watching both connectors' storage (lib/storage-watch.ts).
 * Correctness: org2's stored sha256 must equal the generator's.
 *
 * Reference, same run, before the devnet starts: the single hop of lib/single-hop.ts: process A
 * encrypts the same bytes with `encryptPayload` into a loopback socket, process B checks and
 * decrypts them with `decryptPayload` and hashes the plaintext. Plain TCP is the reference; the same
 * over TLS 1.3 (what every ledgerbus link uses) is measured too and reported beside it.
 *
 * value = ledgerbus MiB/s (MiB = 2^20 bytes); referenceValue = single hop over TCP, MiB/s; ratio =
 * value ÷ referenceValue. Goals: ratio ≥ 0.5, and a peak resident set below 256 MiB in every process
 * (VmHWM from /proc/<pid>/status, read before each process stops; VmRSS is also sampled every 200 ms).
 *
 * Options: --bytes N (default 4GiB; suffixes KiB/MiB/GiB, KB/MB/GB), --dir D (work directory; default
 * a temporary one removed at the end; a given one is kept), --json (only the JSON line on stdout),
 * --base-port N (devnet ports N+1.. and N+101..; default 22400), --segment-bytes N (single-hop
 * envelope size, default 16MiB), --single-hop tcp,tls, --timeout-ms N (per transfer), --runtime
 * tsx|dist (devnet processes from the sources through tsx, the default, or from bin/ledgerbus.js and
 * the build, which must then be current; tsx adds ~25 MiB of resident memory per process).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { latestSequence, postStreamed, waitForReceived } from './lib/connector-http.js';
import { startDevnet } from './lib/devnet.js';
import type { Devnet, DevnetRuntime } from './lib/devnet.js';
import { formatBytes, parseByteSize, payloadSha256, payloadStream } from './lib/payload.js';
import { readProcessCpuSeconds, readProcessMemory, RssSampler } from '../test/support/process-memory.js';
import type { ProcessPeak } from '../test/support/process-memory.js';
import { runSingleHop } from './lib/single-hop.js';
import type { SingleHopResult } from './lib/single-hop.js';
import { StorageWatch } from './lib/storage-watch.js';
import { round, writeBenchResult } from './lib/results.js';
import { cleanUpOnSignals, stopChildren } from '../test/support/processes.js';
import { showHelpIfAsked } from './lib/help.js';

const mib = 1024 * 1024;
const rssGoalBytes = 256 * mib;
const ratioGoal = 0.5;
const topic = 'demo';
const tagBytes = 16;
const envelopeChunkBytes = mib;

interface Options {
  readonly bytes: number;
  readonly dir: string | undefined;
  readonly json: boolean;
  readonly basePort: number;
  readonly segmentBytes: number;
  readonly singleHop: readonly ('tcp' | 'tls')[];
  readonly timeoutMs: number;
  readonly runtime: DevnetRuntime;
}

function parseOptions(): Options {
  showHelpIfAsked(import.meta.url);
  const { values } = parseArgs({
    options: {
      bytes: { type: 'string', default: '4GiB' },
      dir: { type: 'string' },
      json: { type: 'boolean', default: false },
      'base-port': { type: 'string', default: '22400' },
      'segment-bytes': { type: 'string', default: '16MiB' },
      'single-hop': { type: 'string', default: 'tcp,tls' },
      'timeout-ms': { type: 'string' },
      runtime: { type: 'string', default: 'tsx' },
    },
    strict: true,
  });
  const bytes = parseByteSize(values.bytes);
  const basePort = Number(values['base-port']);
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65_000)
    throw new Error('--base-port must be an integer from 1024 to 65000');
  const singleHop = values['single-hop'].split(',').map((mode) => {
    if (mode !== 'tcp' && mode !== 'tls') throw new Error('--single-hop takes tcp and/or tls');
    return mode;
  });
  if (!singleHop.includes('tcp')) throw new Error('--single-hop must include tcp: it is the reference');
  // Generous: a transfer slower than 2 MiB/s is broken, not slow.
  const timeoutMs =
    values['timeout-ms'] === undefined ? 120_000 + (bytes / (2 * mib)) * 1000 : Number(values['timeout-ms']);
  if (!(timeoutMs > 0)) throw new Error('--timeout-ms must be positive');
  const runtime = values.runtime;
  if (runtime !== 'tsx' && runtime !== 'dist') throw new Error('--runtime must be tsx or dist');
  return {
    bytes,
    dir: values.dir,
    json: values.json,
    basePort,
    segmentBytes: parseByteSize(values['segment-bytes']),
    singleHop,
    timeoutMs,
    runtime,
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

const mibPerSecond = (bytes: number, seconds: number): number => bytes / mib / seconds;

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

// ---- the ledgerbus path ----

interface LedgerbusRun {
  readonly seconds: number;
  readonly sha256: string;
  readonly size: number;
  readonly id: string;
  readonly warmupSeconds: number;
  /** Seconds from the start of the POST, by event. */
  readonly timeline: Record<string, number | undefined>;
  readonly acknowledgement: { readonly offset: number; readonly height: number };
  /** CPU seconds each process used during the transfer. */
  readonly cpuSeconds: Record<string, number>;
  /** VmRSS of each process just before the transfer (bytes). */
  readonly rssBeforeBytes: Record<string, number>;
}

async function runLedgerbus(options: Options, directory: string, sampler: RssSampler): Promise<LedgerbusRun> {
  progress(
    `devnet: starting 4 nodes + 4 connectors (${options.runtime}) in ${directory} (base port ${options.basePort})`,
  );
  const started = performance.now();
  devnet = await startDevnet({
    directory,
    basePort: options.basePort,
    readyTimeoutMs: 120_000,
    runtime: options.runtime,
  });
  const net = devnet;
  for (const entry of net.processes) sampler.watch(entry.name, entry.pid);
  const org1 = net.connector('org1');
  const org2 = net.connector('org2');
  const check = (): void => {
    const dead = net.dead();
    if (dead.length > 0)
      throw new Error(`${dead.join(', ')} exited; ${dead[0]}.log:\n${net.logTail(dead[0]!)}`);
  };
  progress(`devnet: up in ${((performance.now() - started) / 1000).toFixed(1)} s; warming up with 1 KiB`);

  // Warm-up: a small message through the whole path, so connections, views and JIT are settled.
  const warmupStarted = performance.now();
  const warmupAfter = await latestSequence(org2);
  const warmupId = `warmup-${randomUUID()}`;
  await postStreamed(org1, { topic, to: 'org2', id: warmupId, source: payloadStream(0, 1024), bytes: 1024 });
  await waitForReceived(org2, { topic, id: warmupId, after: warmupAfter, timeoutMs: 120_000, check });
  const warmupSeconds = (performance.now() - warmupStarted) / 1000;
  progress(`devnet: warm-up delivered in ${warmupSeconds.toFixed(2)} s`);

  const after = await latestSequence(org2);
  const id = `datapath-${randomUUID()}`;
  const chunks = Math.max(1, Math.ceil(options.bytes / envelopeChunkBytes));
  const org1Storage = StorageWatch.forOrganization(directory, 'org1', options.bytes + tagBytes * chunks);
  const org2Storage = StorageWatch.forOrganization(directory, 'org2', options.bytes);
  const cpuBefore = new Map(
    net.processes.map((entry) => [entry.name, readProcessCpuSeconds(entry.pid) ?? 0]),
  );
  cpuBefore.set('bench', readProcessCpuSeconds(process.pid) ?? 0);
  const rssBeforeBytes: Record<string, number> = {};
  for (const entry of net.processes) rssBeforeBytes[entry.name] = readProcessMemory(entry.pid)?.rssBytes ?? 0;
  rssBeforeBytes['bench'] = readProcessMemory(process.pid)?.rssBytes ?? 0;
  org1Storage.start();
  org2Storage.start();

  progress(`ledgerbus: POST ${formatBytes(options.bytes)} to org1's connector, id ${id}`);
  const t0 = performance.now();
  let sendFailure: Error | undefined;
  const ticker = setInterval(() => {
    const elapsed = (performance.now() - t0) / 1000;
    progress(
      `  ${elapsed.toFixed(0).padStart(4)} s: org1 stored ${formatBytes(org1Storage.currentBytes)}, ` +
        `org2 stored ${formatBytes(org2Storage.currentBytes)}`,
    );
  }, 5_000);
  try {
    const sending = postStreamed(org1, {
      topic,
      to: 'org2',
      id,
      source: payloadStream(0, options.bytes),
      bytes: options.bytes,
    });
    sending.catch((error: Error) => {
      sendFailure = error;
    });
    const [sent, received] = await Promise.all([
      sending,
      waitForReceived(org2, {
        topic,
        id,
        after,
        timeoutMs: options.timeoutMs,
        check: () => {
          check();
          if (sendFailure !== undefined) throw sendFailure;
        },
      }),
    ]);
    org1Storage.sample(true);
    org2Storage.sample(true);
    sampler.sample();
    const cpuSeconds: Record<string, number> = {};
    for (const entry of net.processes)
      cpuSeconds[entry.name] = round((readProcessCpuSeconds(entry.pid) ?? 0) - cpuBefore.get(entry.name)!, 2);
    cpuSeconds['bench'] = round((readProcessCpuSeconds(process.pid) ?? 0) - cpuBefore.get('bench')!, 2);
    const since = (at: number | undefined): number | undefined =>
      at === undefined ? undefined : round((at - t0) / 1000);
    const one = org1Storage.timeline();
    const two = org2Storage.timeline();
    return {
      seconds: (received.at - t0) / 1000,
      sha256: received.message.sha256,
      size: received.message.size,
      id,
      warmupSeconds,
      timeline: {
        uploaded: since(sent.uploadedAt),
        org1CiphertextWritten: since(one.writtenAt),
        org1Stored: since(one.goneAt),
        acknowledged: since(sent.acknowledgedAt),
        org2FetchStarted: since(two.firstSeenAt),
        org2PlaintextWritten: since(two.writtenAt),
        org2Stored: since(two.goneAt),
        received: since(received.at),
      },
      acknowledgement: { offset: sent.result.offset, height: sent.result.height },
      cpuSeconds,
      rssBeforeBytes,
    };
  } finally {
    clearInterval(ticker);
    org1Storage.stop();
    org2Storage.stop();
  }
}

// ---- report ----

/** CPU seconds a single-hop worker used during its own transfer, by its process name. */
function hopCpuSeconds(hops: readonly SingleHopResult[], name: string): number | undefined {
  const hop = hops.find((candidate) => name.startsWith(`single-hop-${candidate.transport}-`));
  if (hop === undefined) return undefined;
  return name.endsWith('sender') ? hop.sender.cpuSecondsDuring : hop.receiver.cpuSecondsDuring;
}

function humanReport(
  options: Options,
  expectedSha256: string,
  run: LedgerbusRun,
  hops: readonly SingleHopResult[],
  peaks: readonly ProcessPeak[],
): string {
  const lines: string[] = [];
  const value = mibPerSecond(options.bytes, run.seconds);
  lines.push(
    `ledgerbus data path: ${formatBytes(options.bytes)} org1 → org2, payload sha256 ${expectedSha256}`,
  );
  lines.push(
    `  ledgerbus, POST at org1 → listed at org2   ${value.toFixed(1).padStart(8)} MiB/s  ${run.seconds.toFixed(2)} s`,
  );
  const labels: Record<string, string> = {
    uploaded: 'POST body uploaded',
    org1CiphertextWritten: 'org1 ciphertext written (all parts)',
    org1Stored: 'org1 ciphertext fsynced + renamed (all)',
    acknowledged: 'POST acknowledged (PBFT committed)',
    org2FetchStarted: 'org2 began storing (first part)',
    org2PlaintextWritten: 'org2 plaintext written (all parts)',
    org2Stored: 'org2 plaintext fsynced + renamed (all)',
    received: 'listed as received at org2',
  };
  for (const [key, label] of Object.entries(labels)) {
    const at = run.timeline[key];
    lines.push(
      `    ${label.padEnd(40)} ${at === undefined ? '       -' : `+${at.toFixed(2).padStart(7)} s`}`,
    );
  }
  const ack = run.timeline['acknowledged'] ?? 0;
  const started = run.timeline['org2FetchStarted'];
  lines.push(
    `    overlap: org2 stored for ${started === undefined ? '-' : (ack - started).toFixed(2)} s before org1's POST was acknowledged; ` +
      `${(run.seconds - ack).toFixed(2)} s from the acknowledgement to the listing`,
  );
  for (const hop of hops) {
    lines.push(
      `  single hop ${hop.transport.padEnd(6)} encrypt → socket → decrypt ${mibPerSecond(
        hop.bytes,
        hop.seconds,
      )
        .toFixed(1)
        .padStart(
          8,
        )} MiB/s  ${hop.seconds.toFixed(2)} s  (${hop.segments} envelopes of ${formatBytes(hop.segmentBytes)})`,
    );
  }
  const reference = hops.find((hop) => hop.transport === 'tcp')!;
  const ratio = value / mibPerSecond(reference.bytes, reference.seconds);
  lines.push(
    `  ratio ledgerbus ÷ single hop (tcp)          ${ratio.toFixed(3).padStart(8)}   goal ≥ ${ratioGoal}`,
  );
  lines.push(
    `  sha256 at org2 ${run.sha256 === expectedSha256 ? 'matches' : 'DIFFERS'}; warm-up 1 KiB took ${run.warmupSeconds.toFixed(2)} s`,
  );
  lines.push('');
  lines.push(
    `  ${'process'.padEnd(28)} ${'peak RSS MiB'.padStart(12)} ${'VmHWM MiB'.padStart(10)} ${'RSS before'.padStart(10)} ${'CPU s'.padStart(7)}`,
  );
  for (const peak of peaks) {
    const cpu = run.cpuSeconds[peak.name];
    const before = run.rssBeforeBytes[peak.name];
    const hopCpu = hopCpuSeconds(hops, peak.name);
    lines.push(
      `  ${peak.name.padEnd(28)} ${(peak.sampledPeakBytes / mib).toFixed(1).padStart(12)} ${(
        peak.hwmBytes / mib
      )
        .toFixed(1)
        .padStart(
          10,
        )} ${(before === undefined ? '-' : (before / mib).toFixed(1)).padStart(10)} ${(cpu ?? hopCpu)?.toFixed(2).padStart(7) ?? '      -'}${peak.hwmBytes >= rssGoalBytes ? '  ABOVE 256 MiB' : ''}`,
    );
  }
  lines.push(
    '  (CPU s: during the ledgerbus transfer, or during its own single hop; peak RSS: sampled every 200 ms)',
  );
  return lines.join('\n');
}

// ---- main ----

async function main(): Promise<void> {
  const options = parseOptions();
  if (options.dir === undefined) {
    workDirectory = mkdtempSync(join(tmpdir(), 'ledgerbus-datapath-'));
    removeWorkDirectory = true;
  } else {
    workDirectory = resolve(options.dir);
    mkdirSync(workDirectory, { recursive: true });
  }
  const sampler = new RssSampler(200);
  sampler.watch('bench', process.pid);
  sampler.start();
  try {
    progress(`payload: ${formatBytes(options.bytes)}; hashing it once up front (not timed)`);
    const hashStarted = performance.now();
    const expectedSha256 = payloadSha256(options.bytes);
    const hashSeconds = (performance.now() - hashStarted) / 1000;
    progress(`payload: sha256 ${expectedSha256} in ${hashSeconds.toFixed(2)} s`);

    const hops: SingleHopResult[] = [];
    for (const mode of options.singleHop) {
      progress(
        `single hop (${mode}): ${formatBytes(options.bytes)} in envelopes of ${formatBytes(options.segmentBytes)}`,
      );
      const hop = await runSingleHop({
        bytes: options.bytes,
        segmentBytes: options.segmentBytes,
        tls: mode === 'tls',
        sampler,
        timeoutMs: options.timeoutMs,
      });
      if (hop.sha256 !== expectedSha256) {
        throw new Error(
          `single hop (${mode}): plaintext sha256 ${hop.sha256} differs from ${expectedSha256}`,
        );
      }
      progress(
        `single hop (${mode}): ${mibPerSecond(hop.bytes, hop.seconds).toFixed(1)} MiB/s in ${hop.seconds.toFixed(2)} s`,
      );
      hops.push(hop);
    }

    const run = await runLedgerbus(options, join(workDirectory, 'devnet'), sampler);
    sampler.sample();
    await cleanUp();
    sampler.stop();
    if (run.sha256 !== expectedSha256 || run.size !== options.bytes) {
      throw new Error(
        `org2 stored ${run.size} bytes with sha256 ${run.sha256}; expected ${options.bytes} bytes, ${expectedSha256}`,
      );
    }

    const peaks = sampler.peaks().map((peak) => {
      // The workers read their own VmHWM at the very end, after the last sample.
      const hop = hops.find((candidate) => peak.name.startsWith(`single-hop-${candidate.transport}-`));
      const reported =
        hop === undefined ? 0 : peak.name.endsWith('sender') ? hop.sender.hwmBytes : hop.receiver.hwmBytes;
      return { ...peak, hwmBytes: Math.max(peak.hwmBytes, reported) };
    });
    const report = humanReport(options, expectedSha256, run, hops, peaks);
    (options.json ? process.stderr : process.stdout).write(`${report}\n`);

    const value = mibPerSecond(options.bytes, run.seconds);
    const reference = hops.find((hop) => hop.transport === 'tcp')!;
    const referenceValue = mibPerSecond(reference.bytes, reference.seconds);
    const tls = hops.find((hop) => hop.transport === 'tls1.3');
    const peakOf = (name: string): number =>
      round((peaks.find((peak) => peak.name === name)?.hwmBytes ?? 0) / mib, 1);
    const maxPeak = peaks.reduce((best, peak) => (peak.hwmBytes > best.hwmBytes ? peak : best));
    const ratio = value / referenceValue;
    writeBenchResult({
      name: 'datapath',
      value: round(value, 1),
      unit: 'MiB/s',
      reference: 'single-hop encrypt→TCP→decrypt between two processes, same run',
      referenceValue: round(referenceValue, 1),
      ratio: round(ratio),
      summary: {
        bytes: options.bytes,
        seconds: round(run.seconds, 2),
        ackSeconds: run.timeline['acknowledged'] ?? -1,
        ...(tls === undefined ? {} : { singleHopTlsMiBps: round(mibPerSecond(tls.bytes, tls.seconds), 1) }),
        maxPeakRssMiB: round(maxPeak.hwmBytes / mib, 1),
        maxPeakRssProcess: maxPeak.name,
        connector1PeakRssMiB: peakOf('connector-org1'),
        connector2PeakRssMiB: peakOf('connector-org2'),
        sha256Match: true,
        ratioGoalMet: ratio >= ratioGoal,
        rssGoalMet: maxPeak.hwmBytes < rssGoalBytes,
      },
      details: {
        options: { ...options, dir: options.dir ?? '(temporary)' },
        payloadSha256: expectedSha256,
        payloadHashSeconds: round(hashSeconds, 2),
        goals: { ratioAtLeast: ratioGoal, peakRssBelowBytes: rssGoalBytes },
        ledgerbus: {
          ...run,
          mibPerSecond: round(value, 1),
          seconds: round(run.seconds, 3),
          warmupSeconds: round(run.warmupSeconds, 3),
        },
        singleHop: hops.map((hop) => ({
          ...hop,
          mibPerSecond: round(mibPerSecond(hop.bytes, hop.seconds), 1),
        })),
        processes: peaks.map((peak) => ({
          name: peak.name,
          pid: peak.pid,
          sampledPeakRssMiB: round(peak.sampledPeakBytes / mib, 1),
          vmHwmMiB: round(peak.hwmBytes / mib, 1),
          samples: peak.samples,
          cpuSecondsDuringTransfer: round(
            run.cpuSeconds[peak.name] ?? hopCpuSeconds(hops, peak.name) ?? 0,
            2,
          ),
        })),
      },
    });
  } finally {
    sampler.stop();
    await cleanUp();
  }
}

await main();
