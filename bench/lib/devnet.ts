/**
 * A ledgerbus development network as real processes, for benchmarks: the layout of
 * `ledgerbus dev` (src/cli/devnet-layout.ts: 4 organizations, one node and one connector each, TLS
 * 1.3 between all of them, topic "demo" on one 4-replica partition), but every `node --config` and
 * `connector --config` is started here, from the TypeScript sources through tsx's loader (or from
 * the build, bin/ledgerbus.js, with runtime 'dist': tsx adds about 25 MiB of resident memory to
 * each process), so that each one's pid is known and its memory can be watched. Logs go to
 * <directory>/logs/<name>.log.
 *
 * Every port is checked free before anything starts. Ready means every connector answers an
 * authenticated /healthz.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensureDevnetLayout } from '../../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../../src/cli/devnet-layout.js';
import { repositoryRoot, spawnNode, spawnTypeScript, stopChildren } from './children.js';
import type { TrackedChild } from './children.js';

const cliEntry = join(repositoryRoot, 'src', 'cli', 'run.ts');
const builtEntry = join(repositoryRoot, 'bin', 'ledgerbus.js');
const builtMain = join(repositoryRoot, 'dist', 'cli', 'main.js');

/** 'tsx': the TypeScript sources through tsx's loader (default); 'dist': bin/ledgerbus.js on the build. */
export type DevnetRuntime = 'tsx' | 'dist';

export interface Devnet {
  readonly layout: DevnetLayout;
  /** node1..node4, then connector-org1..connector-org4. */
  readonly processes: readonly TrackedChild[];
  connector(organization: string): { readonly url: string; readonly token: string };
  /** Names of processes that have exited (they should not, before `stop`). */
  dead(): string[];
  logTail(name: string): string;
  stop(): Promise<void>;
}

async function assertPortFree(host: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === 'EADDRINUSE'
            ? `${host}:${port} (${what}) is already in use: pick another --base-port`
            : `cannot check ${host}:${port} (${what}): ${error.message}`,
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

export async function startDevnet(options: {
  readonly directory: string;
  readonly basePort: number;
  readonly readyTimeoutMs: number;
  readonly runtime?: DevnetRuntime;
}): Promise<Devnet> {
  const runtime = options.runtime ?? 'tsx';
  if (runtime === 'dist' && !existsSync(builtMain)) {
    throw new Error(`${builtMain} does not exist: run \`npm run build\` first, or use the tsx runtime`);
  }
  const layout = ensureDevnetLayout({ directory: options.directory, basePort: options.basePort });
  const { network } = layout;
  for (const node of network.nodes) {
    const colon = node.address.lastIndexOf(':');
    await assertPortFree(node.address.slice(0, colon), Number(node.address.slice(colon + 1)), node.id);
  }
  for (const organization of network.organizations) {
    const url = new URL(organization.connector.url);
    await assertPortFree(url.hostname, Number(url.port), `connector API of ${organization.id}`);
  }
  const logs = join(options.directory, 'logs');
  mkdirSync(logs, { recursive: true });
  const processes: TrackedChild[] = [];
  const start = (name: string, args: string[]): void => {
    const fd = openSync(join(logs, `${name}.log`), 'a');
    try {
      const spawnOptions = { cwd: options.directory, stdio: ['ignore', fd, fd] as ('ignore' | number)[] };
      processes.push(
        runtime === 'tsx'
          ? spawnTypeScript(name, cliEntry, args, spawnOptions)
          : spawnNode(name, [builtEntry, ...args], spawnOptions),
      );
    } finally {
      closeSync(fd);
    }
  };
  const dead = (): string[] =>
    processes
      .filter(({ child }) => child.exitCode !== null || child.signalCode !== null)
      .map(({ name }) => name);
  const logTail = (name: string): string => {
    try {
      return readFileSync(join(logs, `${name}.log`), 'utf8')
        .split('\n')
        .slice(-20)
        .join('\n');
    } catch {
      return '(no log)';
    }
  };
  const devnet: Devnet = {
    layout,
    processes,
    connector(organization) {
      const entry = network.organizations.find((candidate) => candidate.id === organization);
      if (entry === undefined) throw new Error(`no organization ${organization} in the devnet`);
      return entry.connector;
    },
    dead,
    logTail,
    stop: () => stopChildren(processes),
  };
  try {
    layout.nodeConfigs.forEach((config, index) => start(`node${index + 1}`, ['node', '--config', config]));
    layout.connectorConfigs.forEach((config, index) =>
      start(`connector-org${index + 1}`, ['connector', '--config', config]),
    );
    const deadline = Date.now() + options.readyTimeoutMs;
    for (const organization of network.organizations) {
      for (;;) {
        const gone = dead();
        if (gone.length > 0) {
          throw new Error(`${gone.join(', ')} exited during start-up; ${gone[0]}.log:\n${logTail(gone[0]!)}`);
        }
        try {
          const response = await fetch(`${organization.connector.url}/healthz`, {
            headers: { authorization: `Bearer ${organization.connector.token}` },
            signal: AbortSignal.timeout(1000),
          });
          const body = (await response.json()) as { authenticated?: boolean };
          if (response.ok && body.authenticated === true) break;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) {
          throw new Error(
            `connector of ${organization.id} not ready after ${options.readyTimeoutMs} ms; logs in ${logs}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } catch (error) {
    await devnet.stop();
    throw error;
  }
  return devnet;
}
