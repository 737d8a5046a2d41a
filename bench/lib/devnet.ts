/**
 * A ledgerbus development network as real processes, for benchmarks: the tests' ProcessNetwork
 * (test/support/process-network.ts: the layout of `ledgerbus dev`, 4 organizations with one node and
 * one connector each, TLS 1.3 between all of them, topic "demo" on one 4-replica partition; every
 * `node --config` and `connector --config` its own child, logs in <directory>/logs/<name>.log), from
 * the TypeScript sources through tsx's loader or from the build (runtime 'dist': tsx adds about 25 MiB
 * of resident memory to each process), so that each one's pid is known and its memory can be watched.
 *
 * Unlike a test, a benchmark checks every port free before anything starts (another run on this
 * shared machine must not be measured by mistake) and gives up at once when a process dies during
 * start-up. Ready means every connector answers an authenticated /healthz.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DevnetLayout } from '../../src/cli/devnet-layout.js';
import { ProcessNetwork } from '../../test/support/process-network.js';
import type { NetworkRuntime } from '../../test/support/process-network.js';
import { assertPortFree, isRunning, repositoryRoot, sleep } from '../../test/support/processes.js';
import type { TrackedChild } from '../../test/support/processes.js';

const builtMain = join(repositoryRoot, 'dist', 'cli', 'main.js');
const portRemedy = 'pick another --base-port';

export type DevnetRuntime = NetworkRuntime;

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

/** Starts the network and resolves once every connector is healthy; stops it again on failure. */
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
  const net = new ProcessNetwork(options.directory, options.basePort, runtime);
  await assertNetworkPortsFree(net, portRemedy);
  const { network } = net.layout;
  const dead = (): string[] =>
    net
      .started()
      .filter(({ child }) => !isRunning(child))
      .map(({ name }) => name);
  const devnet: Devnet = {
    layout: net.layout,
    get processes() {
      return net.started();
    },
    connector: (organization) => net.connector(organization),
    dead,
    logTail: (name) => net.logTail(name, 20),
    stop: () => net.stopAll(10_000),
  };
  try {
    for (const name of net.names) net.start(name);
    const deadline = Date.now() + options.readyTimeoutMs;
    for (const organization of network.organizations) {
      for (;;) {
        const gone = dead();
        if (gone.length > 0) {
          throw new Error(
            `${gone.join(', ')} exited during start-up; ${gone[0]}.log:\n${net.logTail(gone[0]!, 20)}`,
          );
        }
        const healthy = await net.healthy(organization.id, 1000).catch(() => false);
        if (healthy) break;
        if (Date.now() > deadline) {
          throw new Error(
            `connector of ${organization.id} not ready after ${options.readyTimeoutMs} ms; logs in ${net.logs}`,
          );
        }
        await sleep(200);
      }
    }
  } catch (error) {
    await devnet.stop();
    throw error;
  }
  return devnet;
}

/** Refuses, before anything starts, a network whose node or connector ports are taken (saying how to fix it). */
export async function assertNetworkPortsFree(net: ProcessNetwork, remedy: string): Promise<void> {
  const { network } = net.layout;
  for (const node of network.nodes) {
    const colon = node.address.lastIndexOf(':');
    await assertPortFree(
      node.address.slice(0, colon),
      Number(node.address.slice(colon + 1)),
      node.id,
      remedy,
    );
  }
  for (const organization of network.organizations) {
    const url = new URL(organization.connector.url);
    await assertPortFree(url.hostname, Number(url.port), `connector API of ${organization.id}`, remedy);
  }
}
