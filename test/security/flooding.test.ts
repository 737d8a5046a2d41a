// BlockTorrent Table 2, row 3 ("adversary floods the network with invalid transactions … the network
// is slowed down to a point that valid transactions are rejected or dropped due to throttling"; the
// countermeasure: every sender is an identified participant) and Fabric's denial-of-service class
// (peers and orderers exhausted by a flood of requests from one authenticated client).
//
// Shows, on a 4-node network over real TLS, with node1's per-organization quota set to 20
// requests/s (burst 40): org3, from a process of its own, floods node1 over several connections with
// garbage, badly signed and valid publishes far above its quota; it is held to its quota (everything
// beyond gets RATE_LIMITED, retriable), the invalid requests it is allowed are still refused at once
// with their stable codes, and org1's publishes through the same node keep succeeding during the
// flood with bounded latency and are never rate-limited. Then org1 itself bursts past its quota: its
// connector treats RATE_LIMITED as retriable, backs off, and every message is accepted once.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/codec/index.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { tsxLoader } from '../support/processes.js';
import type { FloodReport } from './flood-client.js';
import { SecurityNetwork, waitFor } from './support.js';

// Low, so that the flood is far above it even on a slow, loaded machine. The flood's valid requests
// that the quota admits go through consensus and hold one of its in-flight slots for a consensus
// round each: with 50/s and 64 slots, a 2-core VM at load 30 had all of them held (the flood fell
// to ~60 requests/s, barely above the quota). org1's connector needs far less than 20/s here: its
// publishes one at a time, and a long-poll that wakes at most once per block.
const quota = { requestsPerSecond: 20, burst: 40 };
let floodProcess: ChildProcess | undefined;
// org1's connector does not coalesce its concurrent sends (one batch per send, as a connector under
// a burst of sends to different partitions would): its burst below is then a burst of requests.
const net = new SecurityNetwork({
  name: 'flooding',
  basePort: 24620,
  rateLimits: { node1: quota },
  producers: { org1: { inFlightBatchesMax: 64 } },
});

beforeAll(async () => {
  await net.startNodes();
  await net.startConnector('org1');
}, 60_000);

afterAll(async () => {
  // A failed assertion must not leave the flooding process running.
  if (floodProcess !== undefined && floodProcess.exitCode === null) floodProcess.kill('SIGKILL');
  await net.stop();
}, 60_000);

const quotaWarning = (organization: string): boolean =>
  net.warnings.some(
    (line) => line.includes('over its request quota') && line.includes(`"organization":"${organization}"`),
  );

function startFlood(): { stop: () => Promise<FloodReport> } {
  const node1 = net.node('node1');
  const options = {
    host: node1.host,
    port: node1.port,
    nodeKey: toHex(node1.publicKey),
    keyFile: loadConnectorConfig(net.layout.connectorConfigs[2] as string).keyFile,
    network: net.signing.network,
    sender: 'org3',
    connections: 4,
    // 256 in flight: most cycle through refusals, whatever number waits on consensus.
    inFlightPerConnection: 64,
    // A safety net only: the test ends the flood itself (stdin), and checks that it had not ended yet.
    maxMs: 280_000,
  };
  const child = spawn(
    process.execPath,
    ['--import', tsxLoader, join(import.meta.dirname, 'flood-client.ts'), JSON.stringify(options)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  floodProcess = child;
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    stop: async () => {
      child.stdin.end();
      const code = await exited;
      if (code !== 0) throw new Error(`the flood client exited with ${code}: ${output}`);
      return JSON.parse(output) as FloodReport;
    },
  };
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
};

describe('an organization flooding a node', () => {
  it("is held to its quota while another organization's publishes through the same node keep succeeding", async () => {
    const publish = async (index: number): Promise<number> => {
      const started = performance.now();
      const [result] = await net
        .connector('org1')
        .send('demo', [{ value: Readable.from([Buffer.from(`order ${index}`)]), to: ['org2'] }]);
      expect(result).toMatchObject({ topic: 'demo', partition: 0 });
      return performance.now() - started;
    };
    const baseline: number[] = [];
    for (let index = 0; index < 5; index++) baseline.push(await publish(index));

    const flood = startFlood();
    // The flood is on once node1 has refused org3 for its quota (the deadline covers starting a tsx
    // process on a loaded machine).
    await waitFor('node1 to rate-limit org3', () => (quotaWarning('org3') ? true : undefined), 60_000);

    const latencies: number[] = [];
    const sent = 10;
    for (let index = 0; index < sent; index++) latencies.push(await publish(100 + index));
    // Every one of org1's publishes was made during the flood: it ends only when told to (or at
    // maxMs, a safety net this checks was not reached), not after some time that a slow run outlasts.
    expect(floodProcess?.exitCode, 'the flood ended before org1 was done').toBeNull();
    const report = await flood.stop();

    const count = (predicate: (key: string) => boolean): number =>
      Object.entries(report.codes)
        .filter(([key]) => predicate(key))
        .reduce((sum, [, value]) => sum + value, 0);
    const limited = count((key) => key.endsWith(':RATE_LIMITED'));
    const admitted = report.attempts - limited;
    const seconds = report.durationMs / 1000;
    const invalidAdmitted = count((key) => !key.startsWith('valid:') && !key.endsWith(':RATE_LIMITED'));
    console.log(
      `flood: ${report.attempts} requests in ${seconds.toFixed(1)} s (${Math.round(report.attempts / seconds)}/s) ` +
        `against a quota of ${quota.requestsPerSecond}/s burst ${quota.burst}: ${limited} RATE_LIMITED, ${admitted} admitted ` +
        `(${invalidAdmitted} invalid, refused in p50 ${percentile(report.invalidRejectionMs, 50).toFixed(1)} ms / ` +
        `p95 ${percentile(report.invalidRejectionMs, 95).toFixed(1)} ms); codes ${JSON.stringify(report.codes)}. ` +
        `org1 during the flood: ${sent}/${sent} published, p50 ${percentile(latencies, 50).toFixed(0)} ms, ` +
        `max ${Math.max(...latencies).toFixed(0)} ms (before the flood: p50 ${percentile(baseline, 50).toFixed(0)} ms)`,
    );

    // Held to its quota: a token bucket admits at most burst + rate × the time it refills, and the
    // flood client's duration spans every request it made, so this is a count bound, true on any
    // machine at any speed (the 1 s is slack for the two clocks' edges).
    const allowance = quota.burst + quota.requestsPerSecond * (seconds + 1);
    expect(admitted).toBeLessThanOrEqual(allowance);
    // What makes that bound a test: the flood asked for far more than it allows, so a node that did
    // not limit (admitted = attempts) would break it twice over. Counted against the same duration,
    // this needs a little over 2 × 20 requests/s, where a loaded 2-core VM gives the flood hundreds
    // (the old check asked for a fixed 5 × 50/s, and that limited > 2 × admitted: ~150/s).
    expect(report.attempts, 'the flood asked for at least twice what the quota admits').toBeGreaterThan(
      2 * allowance,
    );
    // The invalid requests let through are refused with their stable codes, at once.
    expect(invalidAdmitted).toBeGreaterThan(0);
    for (const key of Object.keys(report.codes)) {
      if (key.startsWith('garbage:'))
        expect(key).toMatch(/:(RATE_LIMITED|MALFORMED_ENCODING|SCHEMA_MISMATCH)$/);
      if (key.startsWith('badSignature:')) expect(key).toMatch(/:(RATE_LIMITED|BAD_SIGNATURE)$/);
      expect(key).not.toMatch(/:(THROWN|INTERNAL|TIMEOUT|CONNECTION_CLOSED)$/);
    }
    // "At once" is relative to what a request that is NOT refused takes under the same flood, on the
    // same node, in the same minute: org1's publishes, which go through consensus (three rounds among
    // the four nodes, an fsync) while an invalid request is refused by node1 before any of that. Both
    // wait behind the flood in node1 and slow down together when the machine is loaded, so the medians
    // stay apart at any speed (5-18x in runs on a loaded 2-core VM; p95 against p50 was only 2.4-9x),
    // while a node that refused only after ordering a request, or held refusals back (tried: by 1 s),
    // puts them level with a consensus round or above it. (A fixed 2 s was about what a consensus round
    // takes on such a VM, so it could neither be generous nor tell the two apart.)
    expect(percentile(report.invalidRejectionMs, 50)).toBeLessThan(percentile(latencies, 50));
    // The other organization: every publish succeeded, none was rate-limited, none starved. "Not
    // starved" is inherently about time, so its bound is the system's own: the connector's 60 s
    // request timeout to its node, past which a publish counts as lost and is sent again. On a
    // loaded 2-core VM the slowest of these publishes took 2-8 s, and 21 s with a CPU hog running
    // beside a load average of 20 (the old fixed 10 s failed there).
    expect(latencies).toHaveLength(sent);
    expect(Math.max(...latencies)).toBeLessThan(60_000);
    expect(quotaWarning('org1')).toBe(false);
  }, 300_000);

  it("an organization's own burst past its quota is ridden out by its connector's retries with backoff", async () => {
    // One second of the quota past the burst: over it for sure, and admitted well within the
    // connector's 8 attempts (backoff 0.2 s doubling to 5 s, 16 s in all) even though the connector's
    // own polls and confirmations draw on the same bucket and its retries come in one wave.
    const messages = quota.burst + quota.requestsPerSecond;
    const results = await Promise.all(
      Array.from({ length: messages }, (_, index) =>
        net
          .connector('org1')
          .send('demo', [{ value: Readable.from([Buffer.from(`burst ${index}`)]), to: ['org2'] }]),
      ),
    );
    // The quota was hit (node1 logged it for org1), yet every message was accepted, once.
    expect(quotaWarning('org1')).toBe(true);
    const offsets = results.map(([result]) => result?.offset);
    expect(new Set(offsets).size).toBe(messages);
  }, 90_000);
});
