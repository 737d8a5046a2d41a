/**
 * What the unit tests of the connector's parts run on: a real devnet layout (keys, genesis), a real
 * database and filesystem storage per organization, a clock the test moves by hand, and a stand-in
 * for the organization's node: a real RpcPeer on a real TLS listener that answers the methods a
 * test gives it, as the node's client service does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDevnetLayout } from '../../cli/devnet-layout.js';
import type { DevnetLayout } from '../../cli/devnet-layout.js';
import { generateSigningKey, loadSigningKey, SigningDomain } from '../../crypto/index.js';
import { loadEncryptionKey } from '../../crypto/envelope/index.js';
import { listenFramed, RpcPeer } from '../../net/index.js';
import type { FramedServer, RpcHandler } from '../../net/index.js';
import { liveRegistryFromGenesis } from '../../registry/live-registry.js';
import type { LiveRegistry } from '../../registry/live-registry.js';
import type { NodeInfo } from '../../registry/types.js';
import { proofTrustOf } from '../../registry/trust.js';
import { createLogger } from '../../runtime/logger.js';
import { loadConnectorConfig } from '../config.js';
import { ConnectorDatabase } from '../connector-database.js';
import type { ConnectorContext } from '../context.js';
import { ConnectorMetrics } from '../connector-metrics.js';
import { ConnectorEvents } from '../events.js';
import { Lifecycle } from '../lifecycle.js';
import type { ConnectorClock } from '../lifecycle.js';
import { openStorage } from '../storage/index.js';
import { PackedStorage } from '../storage/packed.js';
import { NodeSession } from '../session/node-session.js';

/** A clock whose timers run only when the test says so; it records every wait it was asked for. */
export class ManualClock implements ConnectorClock {
  private time = 1_700_000_000_000;
  private nextHandle = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();
  /** Every `setTimeout` delay asked for, in order. */
  readonly waits: number[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.nextHandle++;
    this.waits.push(ms);
    this.timers.set(handle, { at: this.time + ms, callback });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers not yet run. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves the time to the earliest timer and runs it; false when none is set. */
  fireNext(): boolean {
    const next = [...this.timers].sort(([, a], [, b]) => a.at - b.at)[0];
    if (next === undefined) return false;
    const [handle, timer] = next;
    this.timers.delete(handle);
    this.time = Math.max(this.time, timer.at);
    timer.callback();
    return true;
  }
}

/** A node stand-in: answers `handlers` on every connection a connector opens to it. */
export interface NodeStandIn {
  readonly node: NodeInfo;
  /** Connections opened to it so far. */
  readonly peers: RpcPeer[];
  close(): Promise<void>;
}

export async function startNodeStandIn(
  organization: string,
  handlers: Record<string, RpcHandler>,
): Promise<NodeStandIn> {
  const key = generateSigningKey();
  const peers: RpcPeer[] = [];
  const server: FramedServer = await listenFramed({
    host: '127.0.0.1',
    port: 0,
    identity: key,
    authorize: () => 'connector',
    onConnection: (connection) => {
      const peer = new RpcPeer(connection);
      for (const [method, handler] of Object.entries(handlers)) peer.handle(method, handler);
      peers.push(peer);
    },
  });
  return {
    node: {
      id: `${organization}-stand-in`,
      organization,
      publicKey: key.publicKey,
      host: '127.0.0.1',
      port: server.port,
    },
    peers,
    close: async () => {
      for (const peer of peers) peer.close();
      await server.close();
    },
  };
}

export interface PartsFixture {
  readonly layout: DevnetLayout;
  readonly clock: ManualClock;
  /** The context of organization `index` (0–3), with its own database and storage. */
  context(index: number, options?: { random?: () => number }): Promise<ConnectorContext>;
  /** Its signing key (the connector's TLS identity). */
  signingKey(index: number): ReturnType<typeof loadSigningKey>;
  /** A node session of organization `index` to `node` (the caller closes it). */
  session(context: ConnectorContext, index: number, node: NodeInfo, servingConnections?: number): NodeSession;
  close(): Promise<void>;
}

/** A devnet in a temporary directory; close() stops every lifecycle, closes databases and deletes it. */
export function partsFixture(): PartsFixture {
  const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-parts-'));
  const layout = ensureDevnetLayout({ directory, basePort: 1, messageBytesMax: 1024 * 1024 });
  const clock = new ManualClock();
  const opened: ConnectorContext[] = [];
  const config = (index: number): ReturnType<typeof loadConnectorConfig> =>
    loadConnectorConfig(layout.connectorConfigs[index] as string);
  return {
    layout,
    clock,
    signingKey: (index) => loadSigningKey(config(index).keyFile),
    session: (context, index, node, servingConnections = 0) =>
      new NodeSession({
        ...context,
        node,
        identity: loadSigningKey(config(index).keyFile),
        servingConnections,
      }),
    async context(index, options = {}) {
      const resolved = config(index);
      const registry: LiveRegistry = liveRegistryFromGenesis(layout.network.genesis);
      const logger = createLogger({ name: resolved.organization, level: 'silent' });
      const database = new ConnectorDatabase(join(directory, `${resolved.organization}-parts`));
      const context: ConnectorContext = {
        organization: resolved.organization,
        signer: SigningDomain.of(registry.network).signer(loadSigningKey(resolved.keyFile)),
        encryptionKey: loadEncryptionKey(resolved.encryptionKeyFile),
        registry,
        trust: proofTrustOf(registry),
        database,
        // As the connector has it: small payloads packed in its database, the rest in storage.
        storage: new PackedStorage(
          await openStorage({
            kind: 'filesystem',
            directory: join(directory, `${resolved.organization}-payloads`),
          }),
          database,
        ),
        logger,
        lifecycle: new Lifecycle(clock),
        events: new ConnectorEvents(logger),
        metrics: new ConnectorMetrics(),
        random: options.random ?? (() => 0.5),
      };
      opened.push(context);
      return context;
    },
    async close() {
      for (const context of opened) {
        context.lifecycle.stop();
        context.database.close();
        await context.storage.close();
      }
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/**
 * Settles `promise`, running the manual clock's timers whenever the work under way is waiting on
 * one (real I/O gets a few milliseconds between them).
 */
export async function settleWithClock<T>(
  clock: ManualClock,
  promise: Promise<T>,
): Promise<PromiseSettledResult<T>> {
  let settled: PromiseSettledResult<T> | undefined;
  void promise.then(
    (value) => (settled = { status: 'fulfilled', value }),
    (reason: unknown) => (settled = { status: 'rejected', reason }),
  );
  for (let round = 0; round < 2_000 && settled === undefined; round++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (settled === undefined) clock.fireNext();
  }
  if (settled === undefined) throw new Error('the work did not settle');
  return settled;
}
