/**
 * `npx tsx bench/jetstream.ts`: the peer side of the publish benchmark — NATS JetStream, 3 nodes.
 *
 * Starts a 3-node JetStream cluster on loopback from the installed nats-server (client ports
 * 14222-14224, routes 16222-16224, monitoring 18222-18224; the single server on 4222 is not touched),
 * then for each setting measures publish-with-ack into a stream with 3 replicas on file storage:
 * `messages` messages of `messageBytes` random bytes, `concurrency` publishes outstanding, after 1,000
 * unmeasured warm-up messages (see lib/jetstream-publish.ts). Defaults: 1024 bytes, concurrency 64
 * and 256, 20,000 messages each.
 *
 * Sync modes: "default" is JetStream's lazy fsync (every 2 minutes), so an ack does not mean on disk;
 * "always" (`sync_interval: always`, fsync before the ack, as ledgerbus does) needs nats-server ≥ 2.10
 * and is reported as skipped on older servers. Each mode gets its own, fresh cluster.
 *
 * This is a peer measurement: there is no machine bound to compare it with, so the result's
 * referenceValue is the value itself (ratio 1); ledgerbus's publish benchmark uses these numbers as
 * its reference. Human lines go to stdout then the headline JSON line last (lib/results.ts); progress
 * to stderr. The cluster is stopped and the temp directory removed on success, on error and on
 * SIGINT/SIGTERM.
 *
 * Options: --messages N, --message-bytes N, --concurrency 64,256, --sync default,always,
 * --base-port N, --cluster-base-port N, --monitor-base-port N.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { natsServerVersion, startJetStreamCluster } from './lib/jetstream-cluster.js';
import type { JetStreamCluster } from './lib/jetstream-cluster.js';
import { measureJetStreamPublish } from './lib/jetstream-publish.js';
import type { JetStreamPublishResult } from './lib/jetstream-publish.js';
import { round, writeBenchResult } from './lib/results.js';
import { cleanUpOnSignals } from '../test/support/processes.js';
import { showHelpIfAsked } from './lib/help.js';

type SyncMode = 'default' | 'always';

interface Run extends JetStreamPublishResult {
  readonly sync: SyncMode;
  readonly concurrency: number;
  readonly messageBytes: number;
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function parseOptions() {
  showHelpIfAsked(import.meta.url);
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '20000' },
      'message-bytes': { type: 'string', default: '1024' },
      concurrency: { type: 'string', default: '64,256' },
      sync: { type: 'string', default: 'default,always' },
      'base-port': { type: 'string', default: '14222' },
      'cluster-base-port': { type: 'string', default: '16222' },
      'monitor-base-port': { type: 'string', default: '18222' },
    },
    strict: true,
  });
  const positive = (name: string, text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
    return value;
  };
  const syncModes = values.sync.split(',').map((mode): SyncMode => {
    if (mode !== 'default' && mode !== 'always') throw new Error('--sync takes default and/or always');
    return mode;
  });
  return {
    messages: positive('messages', values.messages),
    messageBytes: positive('message-bytes', values['message-bytes']),
    concurrencies: values.concurrency.split(',').map((part) => positive('concurrency', part)),
    syncModes,
    basePort: positive('base-port', values['base-port']),
    clusterBasePort: positive('cluster-base-port', values['cluster-base-port']),
    monitorBasePort: positive('monitor-base-port', values['monitor-base-port']),
  };
}

// What must be cleaned up if we are interrupted.
let cluster: JetStreamCluster | undefined;
let directory: string | undefined;

async function cleanUp(): Promise<void> {
  const running = cluster;
  cluster = undefined;
  if (running !== undefined) await running.stop();
  if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  directory = undefined;
}

cleanUpOnSignals('stopping the JetStream cluster', cleanUp);

function line(run: Run): string {
  return (
    `jetstream R3 file sync=${run.sync.padEnd(7)} ${run.messageBytes} B  concurrency ${String(run.concurrency).padStart(4)}: ` +
    `${Math.round(run.messagesPerSecond).toString().padStart(6)} msg/s  p50 ${run.p50Ms.toFixed(2)} ms  ` +
    `p99 ${run.p99Ms.toFixed(2)} ms  (${run.messages} msgs in ${run.seconds.toFixed(2)} s, ` +
    `leader ${run.streamLeader}, client on ${run.connectedTo})`
  );
}

async function main(): Promise<void> {
  const options = parseOptions();
  const version = natsServerVersion();
  const runs: Run[] = [];
  const skipped: { sync: SyncMode; reason: string }[] = [];
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-jetstream-'));
  try {
    for (const sync of options.syncModes) {
      progress(`nats-server ${version}: starting a 3-node cluster (sync ${sync}) in ${directory}`);
      try {
        cluster = await startJetStreamCluster({
          basePort: options.basePort,
          clusterBasePort: options.clusterBasePort,
          monitorBasePort: options.monitorBasePort,
          directory: join(directory, `sync-${sync}`),
          syncInterval: sync,
        });
      } catch (error) {
        if (sync === 'always' && error instanceof Error && /sync_interval/.test(error.message)) {
          progress(`skipping sync always: ${error.message}`);
          skipped.push({ sync, reason: error.message });
          continue;
        }
        throw error;
      }
      progress(`cluster up: ${cluster.urls.join(' ')} (pids ${cluster.pids.join(', ')})`);
      for (const concurrency of options.concurrencies) {
        progress(`sync ${sync}, concurrency ${concurrency}: ${options.messages} messages`);
        const result = await measureJetStreamPublish({
          urls: cluster.urls,
          messageBytes: options.messageBytes,
          messages: options.messages,
          concurrency,
          stream: `BENCH_${sync.toUpperCase()}_${concurrency}`,
        });
        const run: Run = { ...result, sync, concurrency, messageBytes: options.messageBytes };
        runs.push(run);
        process.stdout.write(`${line(run)}\n`);
      }
      await cluster.stop();
      cluster = undefined;
    }
  } finally {
    await cleanUp();
  }
  for (const skip of skipped) process.stdout.write(`jetstream sync=${skip.sync}: skipped (${skip.reason})\n`);

  if (runs.length === 0) throw new Error('no setting could be measured');
  const headline =
    [...runs].reverse().find((run) => run.sync === 'always') ??
    runs.reduce((best, run) => (run.messagesPerSecond > best.messagesPerSecond ? run : best));
  const value = round(headline.messagesPerSecond, 1);
  const summary: Record<string, string | number | boolean> = {
    natsServer: version,
    sync: headline.sync,
    concurrency: headline.concurrency,
    messageBytes: headline.messageBytes,
    p50Ms: round(headline.p50Ms),
    p99Ms: round(headline.p99Ms),
  };
  for (const run of runs) {
    summary[`${run.sync}C${run.concurrency}MsgPerSec`] = round(run.messagesPerSecond, 1);
  }
  writeBenchResult({
    name: 'jetstream',
    value,
    unit: 'messages/s',
    reference: 'none: peer measurement (the value itself); ledgerbus publish compares with it',
    referenceValue: value,
    ratio: 1,
    summary,
    details: {
      natsServer: version,
      options,
      skipped,
      runs: runs.map((run) => ({
        ...run,
        messagesPerSecond: round(run.messagesPerSecond, 1),
        p50Ms: round(run.p50Ms),
        p99Ms: round(run.p99Ms),
        seconds: round(run.seconds),
      })),
    },
  });
}

await main();
