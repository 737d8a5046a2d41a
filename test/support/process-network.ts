// A devnet whose processes the test owns one by one (unlike `ledgerbus dev`, which does not restart a
// crashed child): each node and connector is its own child process that can be SIGKILLed and started
// again with the same config, with its output in DIR/logs/<name>.log.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureDevnetLayout } from '../../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../../src/cli/devnet-layout.js';
import { groupFileName } from '../../src/node/group-files.js';

const root = join(import.meta.dirname, '..', '..');
export const cliEntry = join(root, 'src', 'cli', 'run.ts');
export const tsxLoader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Polls `probe` until it returns a value other than undefined; the error names `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

interface Managed {
  readonly args: string[];
  readonly log: string;
  child?: ChildProcess;
  exited?: Promise<void>;
}

export class ProcessNetwork {
  readonly layout: DevnetLayout;
  readonly logs: string;
  private readonly processes = new Map<string, Managed>();
  // If the test process dies without afterAll (a crash, a timeout), its children must not outlive it.
  private readonly killOnExit = (): void => {
    for (const managed of this.processes.values())
      if (managed.child !== undefined && managed.child.exitCode === null) managed.child.kill('SIGKILL');
  };

  constructor(
    readonly directory: string,
    basePort: number,
  ) {
    process.once('exit', this.killOnExit);
    this.layout = ensureDevnetLayout({ directory, basePort });
    this.logs = join(directory, 'logs');
    mkdirSync(this.logs, { recursive: true });
    this.layout.nodeConfigs.forEach((config, index) =>
      this.processes.set(`node${index + 1}`, {
        args: ['node', '--config', config],
        log: join(this.logs, `node${index + 1}.log`),
      }),
    );
    this.layout.connectorConfigs.forEach((config, index) =>
      this.processes.set(`connector-org${index + 1}`, {
        args: ['connector', '--config', config],
        log: join(this.logs, `connector-org${index + 1}.log`),
      }),
    );
  }

  get names(): string[] {
    return [...this.processes.keys()];
  }

  /**
   * Spawns `name` (node1.., connector-org1..) with its config; output appended to its log. `env` adds
   * to this process's environment (e.g. a faked clock).
   */
  start(name: string, env: Readonly<Record<string, string>> = {}): ChildProcess {
    const managed = this.managed(name);
    if (managed.child !== undefined && managed.child.exitCode === null && managed.child.signalCode === null)
      throw new Error(`${name} is already running (pid ${managed.child.pid})`);
    const log = openSync(managed.log, 'a');
    const extra = Object.entries(env).map(([key, value]) => ` ${key}=${value}`);
    writeSync(log, `\n---- ${new Date().toISOString()} start ${name}${extra.join('')} ----\n`);
    const child = spawn(process.execPath, ['--import', tsxLoader, cliEntry, ...managed.args], {
      cwd: this.directory,
      env: { ...process.env, ...env },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    managed.child = child;
    managed.exited = new Promise((done) => child.once('exit', () => done()));
    return child;
  }

  async startAll(timeoutMs = 90_000): Promise<void> {
    for (const name of this.names) this.start(name);
    await Promise.all(this.layout.network.organizations.map((org) => this.waitHealthy(org.id, timeoutMs)));
  }

  pid(name: string): number {
    const pid = this.managed(name).child?.pid;
    if (pid === undefined) throw new Error(`${name} is not running`);
    return pid;
  }

  running(name: string): boolean {
    const child = this.managed(name).child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Sends `signal` and waits for the process to be gone. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const managed = this.managed(name);
    if (managed.child === undefined || !this.running(name)) return;
    managed.child.kill(signal);
    await managed.exited;
  }

  /** Stops every child: SIGTERM, then SIGKILL whatever is left after `graceMs`. */
  async stopAll(graceMs = 5_000): Promise<void> {
    await Promise.all(
      [...this.processes.values()].map(async (managed) => {
        const child = managed.child;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await managed.exited;
        clearTimeout(timer);
      }),
    );
    process.off('exit', this.killOnExit);
  }

  connector(organization: string): { url: string; token: string } {
    const entry = this.layout.network.organizations.find((org) => org.id === organization);
    if (entry === undefined) throw new Error(`no organization ${organization}`);
    return entry.connector;
  }

  async waitHealthy(organization: string, timeoutMs = 60_000): Promise<void> {
    const { url, token } = this.connector(organization);
    await waitFor(
      `the connector of ${organization} at ${url}/healthz`,
      async () => {
        const response = await fetch(`${url}/healthz`, { headers: { authorization: `Bearer ${token}` } });
        const body = (await response.json()) as { authenticated?: boolean };
        return response.ok && body.authenticated === true ? true : undefined;
      },
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
    let text: string;
    try {
      text = readFileSync(this.managed(name).log, 'utf8');
    } catch {
      return `(no log for ${name})`;
    }
    return text.trimEnd().split('\n').slice(-lines).join('\n');
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
      const bytes = vmRssBytes(pid);
      if (bytes !== undefined && bytes > (this.peaks.get(name) ?? 0)) this.peaks.set(name, bytes);
    }
  }
}

export function vmRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined; // gone
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
