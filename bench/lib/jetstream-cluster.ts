/**
 * A 3-node NATS JetStream cluster on loopback, started from the installed `nats-server` binary, for
 * peer benchmarks (see bench/jetstream.ts).
 *
 * Node i (0, 1, 2) listens for clients on basePort + i, for routes on clusterBasePort + i and for HTTP
 * monitoring on monitorBasePort + i, all on 127.0.0.1. Every port is checked free before anything is
 * started, so a clash fails with a message that names the port instead of a half-started cluster.
 * Ready means: every node's /jsz reports the same JetStream meta leader, and every node has
 * `routes` to both others.
 *
 * Durability: JetStream acknowledges a publish once a quorum of the stream's replicas has it in memory
 * (and in the OS page cache); its file store fsyncs lazily, every `sync_interval` (2 minutes by
 * default). `syncInterval: 'always'` writes `sync_interval: always`, which fsyncs every write before
 * the ack, as ledgerbus does; that option exists from nats-server 2.10 on, and older servers reject
 * it, which `startJetStreamCluster` reports as an error naming the version found.
 *
 * The servers are children of test/support/processes.ts: SIGKILLed if this Node process exits without
 * calling `stop()` (an uncaught exception, `process.exit`); for SIGINT and SIGTERM the caller installs
 * handlers that call `stop()`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertPortFree,
  isRunning,
  logTail,
  sleep,
  startProcess,
  stopChildren,
} from '../../test/support/processes.js';
import type { TrackedChild } from '../../test/support/processes.js';

export const natsServerBinary = '/usr/sbin/nats-server';

export interface JetStreamClusterOptions {
  /** Client ports are basePort, basePort + 1, basePort + 2. Default 14222. */
  readonly basePort?: number;
  /** Route (cluster) ports are clusterBasePort .. + 2. Default 16222. */
  readonly clusterBasePort?: number;
  /** HTTP monitoring ports are monitorBasePort .. + 2. Default 18222. */
  readonly monitorBasePort?: number;
  /** Where configs, stores and logs go (one sub-directory per node). The caller owns and removes it. */
  readonly directory: string;
  /** 'default': the server's lazy fsync (2 minutes). 'always': fsync before every ack (server ≥ 2.10). */
  readonly syncInterval?: 'default' | 'always';
  /** How long to wait for a meta leader. Default 30 s. */
  readonly readyTimeoutMs?: number;
}

export interface JetStreamCluster {
  /** nats://127.0.0.1:port for each node. */
  readonly urls: string[];
  readonly pids: number[];
  /** The server's version, e.g. "2.9.10". */
  readonly version: string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when every process has exited. Safe to call twice. */
  stop(): Promise<void>;
}

const nodeCount = 3;
const clusterName = 'ledgerbus-bench';
const portRemedy = 'pick other ports (basePort, clusterBasePort, monitorBasePort)';

/** "nats-server: v2.9.10" → "2.9.10". */
export function natsServerVersion(binary = natsServerBinary): string {
  const text = execFileSync(binary, ['--version'], { encoding: 'utf8' });
  const match = /v(\d+\.\d+\.\d+)/.exec(text);
  if (match?.[1] === undefined) throw new Error(`cannot read the version of ${binary} from "${text.trim()}"`);
  return match[1];
}

function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

function configText(
  index: number,
  ports: { client: number[]; cluster: number[]; monitor: number[] },
  storeDirectory: string,
  syncAlways: boolean,
): string {
  const routes = ports.cluster
    .filter((_, other) => other !== index)
    .map((port) => `nats-route://127.0.0.1:${port}`);
  return [
    `server_name: n${index + 1}`,
    `listen: 127.0.0.1:${ports.client[index]}`,
    `http: 127.0.0.1:${ports.monitor[index]}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(storeDirectory)}`,
    '  max_memory_store: 256MB',
    '  max_file_store: 4GB',
    ...(syncAlways ? ['  sync_interval: always'] : []),
    '}',
    'cluster {',
    `  name: ${clusterName}`,
    `  listen: 127.0.0.1:${ports.cluster[index]}`,
    `  routes: [${routes.join(', ')}]`,
    '}',
    '',
  ].join('\n');
}

interface JszMeta {
  readonly meta_cluster?: { readonly leader?: string; readonly cluster_size?: number };
}
interface Routez {
  readonly num_routes?: number;
}

async function getJson<T>(url: string): Promise<T | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    if (!response.ok) return undefined;
    return (await response.json()) as T;
  } catch {
    return undefined;
  }
}

export async function startJetStreamCluster(options: JetStreamClusterOptions): Promise<JetStreamCluster> {
  const basePort = options.basePort ?? 14222;
  const clusterBasePort = options.clusterBasePort ?? 16222;
  const monitorBasePort = options.monitorBasePort ?? 18222;
  const syncAlways = options.syncInterval === 'always';
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const indices = [...Array(nodeCount).keys()];
  const ports = {
    client: indices.map((i) => basePort + i),
    cluster: indices.map((i) => clusterBasePort + i),
    monitor: indices.map((i) => monitorBasePort + i),
  };

  const version = natsServerVersion();
  if (syncAlways && !versionAtLeast(version, 2, 10)) {
    throw new Error(
      `nats-server ${version} (${natsServerBinary}) has no jetstream sync_interval option (added in 2.10): ` +
        'it always fsyncs lazily, so syncInterval "always" cannot be measured with it',
    );
  }
  for (const i of indices) {
    for (const [kind, port] of [
      ['client', ports.client[i]],
      ['route', ports.cluster[i]],
      ['monitoring', ports.monitor[i]],
    ] as const)
      await assertPortFree('127.0.0.1', port as number, `${kind} port of node ${i + 1}`, portRemedy);
  }

  const children: TrackedChild[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= stopChildren(children, 5000);
    return stopping;
  };

  try {
    for (const i of indices) {
      const nodeDirectory = join(options.directory, `n${i + 1}`);
      const storeDirectory = join(nodeDirectory, 'store');
      mkdirSync(storeDirectory, { recursive: true });
      const configFile = join(nodeDirectory, 'nats.conf');
      writeFileSync(configFile, configText(i, ports, storeDirectory, syncAlways));
      const log = join(nodeDirectory, 'server.log');
      children.push(startProcess(`nats-server n${i + 1}`, natsServerBinary, ['-c', configFile], { log }));
    }

    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      const dead = children.find(({ child }) => !isRunning(child));
      if (dead !== undefined) {
        throw new Error(
          `${dead.name} exited during start-up (code ${dead.child.exitCode}); ` +
            `log ${dead.log}:\n${logTail(dead.log as string, 15)}`,
        );
      }
      const [jsz, routez] = await Promise.all([
        Promise.all(ports.monitor.map((port) => getJson<JszMeta>(`http://127.0.0.1:${port}/jsz`))),
        Promise.all(ports.monitor.map((port) => getJson<Routez>(`http://127.0.0.1:${port}/routez`))),
      ]);
      const leaders = new Set(jsz.map((reply) => reply?.meta_cluster?.leader ?? ''));
      const leader = [...leaders][0] ?? '';
      const routed = routez.every((reply) => (reply?.num_routes ?? 0) >= nodeCount - 1);
      if (leaders.size === 1 && leader !== '' && routed) break;
      if (Date.now() > deadline) {
        throw new Error(
          `JetStream cluster not ready after ${readyTimeoutMs} ms (meta leaders seen: ${[...leaders].join(',') || 'none'}, ` +
            `routes complete: ${routed}); logs in ${options.directory}`,
        );
      }
      await sleep(100);
    }
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    urls: ports.client.map((port) => `nats://127.0.0.1:${port}`),
    pids: children.map(({ pid }) => pid),
    version,
    stop,
  };
}
