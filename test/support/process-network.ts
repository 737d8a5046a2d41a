// A devnet whose processes the test owns one by one (unlike `ledgerbus dev`, which does not restart a
// crashed child): each node and connector is its own child process (started through ./processes.ts)
// that can be SIGKILLed and started again with the same config, with its output in DIR/logs/<name>.log.
// The benchmarks use it too (bench/lib/devnet.ts), optionally on the build instead of the sources.
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ensureDevnetLayout } from '../../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../../src/cli/devnet-layout.js';
import { groupFileName } from '../../src/node/group-files.js';
import { readProcessMemory } from './process-memory.js';
import {
  builtCliEntry,
  cliEntry,
  isRunning,
  logTail,
  startNode,
  startTypeScript,
  testCliRuntime,
  stopChildren,
  waitFor,
} from './processes.js';
import type { TrackedChild } from './processes.js';

/**
 * 'tsx': the CLI from the TypeScript sources; 'dist': bin/ledgerbus.js on the build. Tests take the
 * default, testCliRuntime(): the build when it is current.
 */
export type NetworkRuntime = 'tsx' | 'dist';

interface Managed {
  readonly args: string[];
  readonly log: string;
  process?: TrackedChild;
}

export class ProcessNetwork {
  readonly layout: DevnetLayout;
  readonly logs: string;
  private readonly processes = new Map<string, Managed>();

  constructor(
    readonly directory: string,
    basePort: number,
    private readonly runtime: NetworkRuntime = testCliRuntime(),
    nodesPerOrganization?: number,
  ) {
    this.layout = ensureDevnetLayout({
      directory,
      basePort,
      ...(nodesPerOrganization === undefined ? {} : { nodesPerOrganization }),
    });
    this.logs = join(directory, 'logs');
    mkdirSync(this.logs, { recursive: true });
    // Named by node id: node1..nodeN, and org1-node2.. when organizations have more nodes.
    this.layout.nodeConfigs.forEach((config, index) => {
      const name = this.layout.network.nodes[index]?.id ?? `node${index + 1}`;
      this.processes.set(name, { args: ['node', '--config', config], log: join(this.logs, `${name}.log`) });
    });
    this.layout.connectorConfigs.forEach((config, index) =>
      this.processes.set(`connector-org${index + 1}`, {
        args: ['connector', '--config', config],
        log: join(this.logs, `connector-org${index + 1}.log`),
      }),
    );
  }

  /** node1..nodeN, then connector-org1..connector-orgN. */
  get names(): string[] {
    return [...this.processes.keys()];
  }

  /**
   * Spawns `name` (node1.., connector-org1..) with its config; output appended to its log. `env` adds
   * to this process's environment (e.g. a faked clock).
   */
  start(
    name: string,
    env: Readonly<Record<string, string>> = {},
    nodeFlags: readonly string[] = [],
  ): ChildProcess {
    const managed = this.managed(name);
    if (managed.process !== undefined && isRunning(managed.process.child))
      throw new Error(`${name} is already running (pid ${managed.process.pid})`);
    const options = { cwd: this.directory, env, log: managed.log, nodeFlags };
    managed.process =
      this.runtime === 'tsx'
        ? startTypeScript(name, cliEntry, managed.args, options)
        : startNode(name, [builtCliEntry, ...managed.args], options);
    return managed.process.child;
  }

  /** `nodeFlags` gives a process's Node runtime flags by name (e.g. --cpu-prof for a benchmark). */
  async startAll(
    timeoutMs = 90_000,
    nodeFlags: (name: string) => readonly string[] = () => [],
  ): Promise<void> {
    for (const name of this.names) this.start(name, {}, nodeFlags(name));
    await Promise.all(this.layout.network.organizations.map((org) => this.waitHealthy(org.id, timeoutMs)));
  }

  /** The processes started so far (the latest of each name), in the order of `names`. */
  started(): TrackedChild[] {
    return [...this.processes.values()].flatMap((managed) => managed.process ?? []);
  }

  pid(name: string): number {
    const entry = this.managed(name).process;
    if (entry === undefined) throw new Error(`${name} is not running`);
    return entry.pid;
  }

  running(name: string): boolean {
    const entry = this.managed(name).process;
    return entry !== undefined && isRunning(entry.child);
  }

  /** Sends `signal` and waits for the process to be gone. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const entry = this.managed(name).process;
    if (entry === undefined || !isRunning(entry.child)) return;
    entry.child.kill(signal);
    await entry.exited;
  }

  /** Stops every child: SIGTERM, then SIGKILL whatever is left after `graceMs`. */
  async stopAll(graceMs = 5_000): Promise<void> {
    await stopChildren(this.started(), graceMs);
  }

  connector(organization: string): { url: string; token: string } {
    const entry = this.layout.network.organizations.find((org) => org.id === organization);
    if (entry === undefined) throw new Error(`no organization ${organization}`);
    return entry.connector;
  }

  /**
   * One authenticated /healthz request to `organization`'s connector: true if it answers healthy and
   * knows our token. Rejects when it does not answer (not listening yet, or `requestTimeoutMs` passed).
   */
  async healthy(organization: string, requestTimeoutMs?: number): Promise<boolean> {
    const { url, token } = this.connector(organization);
    const response = await fetch(`${url}/healthz`, {
      headers: { authorization: `Bearer ${token}` },
      ...(requestTimeoutMs === undefined ? {} : { signal: AbortSignal.timeout(requestTimeoutMs) }),
    });
    const body = (await response.json()) as { authenticated?: boolean };
    return response.ok && body.authenticated === true;
  }

  async waitHealthy(organization: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `the connector of ${organization} at ${this.connector(organization).url}/healthz`,
      async () => ((await this.healthy(organization)) ? true : undefined),
      timeoutMs,
      250,
    );
  }

  /** A request to `organization`'s connector REST API with its bearer token. */
  api(organization: string, path: string, init: RequestInit = {}): Promise<Response> {
    const { url, token } = this.connector(organization);
    return fetch(`${url}${path}`, {
      ...init,
      headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token}` },
    });
  }

  /** The partition database file of `node<N>`'s replica of `group`. */
  partitionDatabase(nodeIndex: number, group = 'demo/0'): string {
    return join(this.directory, `org${nodeIndex}`, 'node-data', 'partitions', groupFileName(group));
  }

  logTail(name: string, lines = 30): string {
    const { log } = this.managed(name);
    return existsSync(log) ? logTail(log, lines) : `(no log for ${name})`;
  }

  logTails(names: readonly string[] = this.names, lines = 30): string {
    return names
      .map((name) => `==== ${name} (last ${lines} lines) ====\n${this.logTail(name, lines)}`)
      .join('\n');
  }

  log(name: string): string {
    try {
      return readFileSync(this.managed(name).log, 'utf8');
    } catch {
      return '';
    }
  }

  private managed(name: string): Managed {
    const managed = this.processes.get(name);
    if (managed === undefined) throw new Error(`no process ${name}`);
    return managed;
  }
}

/** Peak resident set size (VmRSS) of processes, sampled from /proc every `intervalMs`. */
export class RssSampler {
  private readonly peaks = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  samples = 0;

  constructor(
    private readonly pids: () => ReadonlyMap<string, number>,
    intervalMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Peak RSS in bytes per process name. */
  stop(): Map<string, number> {
    clearInterval(this.timer);
    this.sample();
    return new Map(this.peaks);
  }

  private sample(): void {
    this.samples += 1;
    for (const [name, pid] of this.pids()) {
      const bytes = readProcessMemory(pid)?.rssBytes;
      if (bytes !== undefined && bytes > (this.peaks.get(name) ?? 0)) this.peaks.set(name, bytes);
    }
  }
}

/**
 * Writes `bytes` deterministic pseudo-random bytes (AES-256-CTR keystream of `seed`) to `path` in 1 MiB
 * chunks, never holding more than one chunk; returns their sha256 (hex).
 */
export function writeDeterministicFile(path: string, bytes: number, seed: string): string {
  const key = createHash('sha256').update(`key:${seed}`).digest();
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(1024 * 1024);
  const file = openSync(path, 'w', 0o600);
  try {
    for (let written = 0; written < bytes;) {
      const length = Math.min(zeros.length, bytes - written);
      const chunk = cipher.update(zeros.subarray(0, length));
      hash.update(chunk);
      for (let offset = 0; offset < chunk.length;)
        offset += writeSync(file, chunk, offset, chunk.length - offset);
      written += length;
    }
  } finally {
    closeSync(file);
  }
  return hash.digest('hex');
}

/** Streams a response body into sha256; returns the digest (hex) and the byte count. */
export async function hashBody(response: Response): Promise<{ sha256: string; size: number }> {
  if (response.body === null) throw new Error('response has no body');
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

export const mb = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(1);
