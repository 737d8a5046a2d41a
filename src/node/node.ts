/**
 * `ledgerbus node`: one organization's broker process (DESIGN §1). It hosts the PBFT replicas of the
 * partitions genesis assigns to it, keeps one consensus connection per peer node, and serves its own
 * organization's connectors: publish, poll (Kafka-style long-poll fetch from an offset), message
 * status and receipts, and the relayed payload streams of DESIGN §3 steps 7–16.
 *
 * Every connection is TLS 1.3 pinned to a key in the registry: a node key makes the peer a node, a
 * connector signing key makes it a connector of that key's organization; anything else is refused.
 */
import { toHex } from '../codec/index.js';
import { SigningDomain, loadSigningKey } from '../crypto/index.js';
import type { Signer, SigningKeyPair } from '../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { listenFramed, RpcPeer } from '../net/index.js';
import type { FramedServer } from '../net/index.js';
import type { CborValue } from '../codec/index.js';
import type { GenesisRegistry } from '../registry/genesis.js';
import type { NodeInfo, PartitionInfo } from '../registry/types.js';
import { encodeClientRequest } from '../consensus/pbft/messages.js';
import type { Block } from '../ledger/block.js';
import { prepareEpoch } from './epoch-handover.js';
import type { HandoverSources } from './epoch-handover.js';
import type { LiveRegistry } from '../registry/live-registry.js';
import type { Logger } from '../runtime/logger.js';
import { claimDataDirectory } from '../runtime/data-format.js';
import { createLogger } from '../runtime/logger.js';
import { RegistryHost } from './registry-host.js';
import { loadGenesisRegistry, loadNodeConfig } from './config.js';
import type { NodeConfig } from './config.js';
import { ClientService } from './client-service.js';
import { closes } from '../partition/driver.js';
import { PartitionReplica } from './partition-replica.js';
import { PeerMesh } from './peer-mesh.js';
import type { RateLimitConfig } from './rate-limit.js';
import { LogThrottle } from './log-throttle.js';
import { Registry as MetricsRegistry } from 'prom-client';
import { AnomalyService, adminActor } from './anomaly-service.js';
import { serveMetrics } from './metrics-server.js';
import type { MetricsServer, Readiness } from './metrics-server.js';
import { NodeMetrics } from './node-metrics.js';
import type { GlobalLedgerState } from './node-metrics.js';

export interface NodeOptions {
  readonly nodeId: string;
  readonly key: SigningKeyPair;
  /** Genesis bootstraps __system; the live registry follows the Raft layer from there. */
  readonly registry: GenesisRegistry;
  readonly dataDirectory: string;
  readonly listenHost?: string;
  readonly listenPort?: number;
  readonly tickMs?: number;
  /** Addresses to dial some peers at instead of their registered ones (node config `peers`). */
  readonly peerAddresses?: Readonly<Record<string, string>>;
  /** Per-organization quota on the client API (node config `rateLimit`; default `defaultRateLimit`). */
  readonly rateLimit?: RateLimitConfig;
  /** Raft groups snapshot and compact every this many entries (node config `raft.snapshotEvery`). */
  readonly raftSnapshotEvery?: number;
  /** ... or once their entries since the last snapshot hold this many bytes (`raft.snapshotBytes`). */
  readonly raftSnapshotBytes?: number;
  /** Where to serve Prometheus metrics (node config `metrics.listen`); not served if absent. */
  readonly metricsListen?: { readonly host: string; readonly port: number };
  readonly logger: Logger;
}

export class LedgerbusNode {
  /** One per partition this node replicates, in its current epoch: a closed epoch's replica is removed. */
  readonly replicas = new Map<string, PartitionReplica>();
  readonly registryHost: RegistryHost;
  /** Observations, anomaly detection and the alerts this node raises (DESIGN §9). */
  readonly anomaly: AnomalyService;
  /** The node's own metrics, in the anomaly service's registry: one /metrics for both. */
  readonly metrics: NodeMetrics;
  private metricsServer: MetricsServer | undefined;
  private server: FramedServer | undefined;
  private readonly mesh: PeerMesh;
  private readonly clients: ClientService;
  private ticker: NodeJS.Timeout | undefined;
  private readonly self: NodeInfo;
  private readonly registry: LiveRegistry;
  /** The node key, bound to genesis `network`: everything this node signs is for this network only. */
  private readonly signer: Signer;
  private partitionTimer: NodeJS.Timeout | undefined;
  /** When each old epoch was last nudged: one per partition of the registry, never more. */
  private readonly nudged = new Map<string, number>();
  private stopping = false;
  /**
   * Refusals are logged at most once a minute for all unregistered keys together (anyone can mint
   * keys) and once a minute per organization that is not approved.
   */
  private readonly refusedLog = new LogThrottle(60_000, () => performance.now());
  /** A partition that cannot open is retried every pass, but logged once a minute. */
  private readonly partitionFailureLog = new LogThrottle(60_000, () => performance.now());

  constructor(private readonly options: NodeOptions) {
    // A node registered after genesis (registerNode) is not in genesis: it listens where its config
    // says, peers that have applied its registration dial it, and __system's leader adds it as a
    // learner; it learns its own entry from the log like everything else.
    const self =
      options.registry.node(options.nodeId) ??
      (options.listenHost === undefined || options.listenPort === undefined
        ? undefined
        : {
            id: options.nodeId,
            organization: '',
            publicKey: options.key.publicKey,
            host: options.listenHost,
            port: options.listenPort,
          });
    if (self === undefined) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `nodeId ${options.nodeId} is not in genesis: a node registered later needs \`listen\` in its config`,
      );
    }
    this.self = self;
    this.signer = SigningDomain.of(options.registry.network).signer(options.key);
    // Before any database in it is opened: data this version cannot verify, or another network's,
    // stops the node here rather than half-way through starting its groups.
    claimDataDirectory({
      directory: options.dataDirectory,
      role: 'node',
      network: options.registry.network,
    });
    this.registryHost = new RegistryHost({
      selfNodeId: options.nodeId,
      genesis: options.registry.genesis,
      dataDirectory: options.dataDirectory,
      logger: options.logger,
      // The mesh is built next; the Raft layer only sends once the node runs.
      sendRaft: (nodeId, groupId, bytes) => this.mesh.sendRaft(nodeId, groupId, bytes),
      requestPeer: (nodeId, method, body) => this.mesh.request(nodeId, method, body),
      linked: (nodeId) => this.mesh.linked(nodeId),
      localBlocks: (groupId, from, count) => this.replicas.get(groupId)?.encodedBlocks(from, count),
      ...(options.raftSnapshotEvery === undefined ? {} : { snapshotEvery: options.raftSnapshotEvery }),
      ...(options.raftSnapshotBytes === undefined ? {} : { snapshotBytes: options.raftSnapshotBytes }),
    });
    this.registry = this.registryHost.registry;
    this.anomaly = new AnomalyService({
      nodeId: options.nodeId,
      organization: self.organization,
      signer: this.signer,
      registry: this.registry,
      ledger: this.registryHost.system,
      submit: (transaction) => this.registryHost.submitAdmin(transaction),
      logger: options.logger,
      metrics: new MetricsRegistry(),
    });
    const metricsErrorLog = new LogThrottle(60_000, () => performance.now());
    this.metrics = new NodeMetrics({
      registry: this.anomaly.metrics,
      dataDirectory: options.dataDirectory,
      source: {
        replicas: () => this.replicas.values(),
        raftGroups: () => this.registryHost.raftGroups(),
        globalLedgers: () => this.globalLedgerStates(),
        isOrganization: (id) => this.registry.organization(id) !== undefined,
      },
      onError: (error, what) => {
        const suppressed = metricsErrorLog.admit(what);
        if (suppressed !== undefined)
          options.logger.warn(
            { error: (error as Error).message, suppressed },
            `metrics: cannot read ${what}`,
          );
      },
    });
    this.observeRegistry();
    this.mesh = new PeerMesh({
      selfId: options.nodeId,
      key: options.key,
      registry: this.registry,
      ...(options.peerAddresses === undefined ? {} : { peerAddresses: options.peerAddresses }),
      logger: options.logger,
      onConsensus: (groupId, bytes) => this.replicas.get(groupId)?.receive(bytes),
      onForwardedRequest: (groupId, bytes) => this.replicas.get(groupId)?.receiveForwarded(bytes),
      onRaft: (groupId, bytes) => this.registryHost.receive(groupId, bytes),
      handlers: {
        raftPropose: async (body) => {
          const record = body as Record<string, CborValue>;
          const group = record['group'];
          const data = record['data'];
          if (typeof group !== 'string' || !(data instanceof Uint8Array)) {
            throw new LedgerbusError(ErrorCode.SchemaMismatch, 'raftPropose needs group and data');
          }
          const { index, result } = await this.registryHost.propose(group, data, false);
          return { index, result };
        },
        clientForward: (body, nodeId) => this.clients.forwarded(nodeId, body),
        adminSubmit: async (body) => {
          const transaction = (body as Record<string, CborValue>)['transaction'];
          if (!(transaction instanceof Uint8Array)) {
            throw new LedgerbusError(ErrorCode.SchemaMismatch, 'adminSubmit needs a transaction');
          }
          return this.registryHost.adminSubmitForPeer(transaction);
        },
        blocks: (body) => {
          const { group, from, count } = blockRange('blocks', body);
          return { blocks: this.replicas.get(group)?.encodedBlocks(from, count) ?? [] };
        },
        // What this node's global ledger holds of a partition (for a member filling its own).
        globalBlocks: (body) => {
          const { group, from, count } = blockRange('globalBlocks', body);
          const ledger = this.registryHost.globalLedger(group.slice(0, Math.max(0, group.lastIndexOf('/'))));
          return { blocks: ledger?.blocksFrom(group, from, count) ?? [] };
        },
      },
    });
    this.openPartitions();
    this.registryHost.onChange(() => this.openPartitions());
    this.registryHost.onAdvance(() => {
      for (const replica of this.replicas.values()) replica.resume();
    });
    this.clients = new ClientService({
      nodeId: options.nodeId,
      registry: this.registry,
      registryHost: this.registryHost,
      replicas: this.replicas,
      mesh: this.mesh,
      logger: options.logger,
      ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }),
      observe: this.anomaly.sink,
      alertQuotas: this.registryHost.system,
      metrics: this.metrics,
    });
  }

  /**
   * What /readyz answers: ready once the consensus listener is up, this node knows a __system
   * leader (it can follow and change the registry), and every partition the registry gives it is
   * open here without a failure. Each reason names what is not ready.
   */
  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.stopping) reasons.push('the node is stopping');
    else if (this.server === undefined) reasons.push('the consensus listener is not up yet');
    const system = this.registryHost.systemUnready();
    if (system !== undefined) reasons.push(system);
    for (const partition of this.registry.partitions()) {
      if (!partition.replicas.includes(this.options.nodeId)) continue;
      const group = partition.groupId;
      const replica = this.replicas.get(group);
      if (replica === undefined) {
        reasons.push(`partition ${group} (epoch ${partition.configEpoch}) is not open here yet`);
      } else if (replica.failure !== undefined) {
        reasons.push(`partition ${group} failed: ${replica.failure.message}`);
      } else if (replica.closedAt !== undefined) {
        // Its epoch ended; until the next one opens here the replica takes no input.
        reasons.push(
          `partition ${group}: epoch ${replica.partition.configEpoch} closed, epoch ${partition.configEpoch} not open here yet`,
        );
      }
    }
    return { ready: reasons.length === 0, reasons };
  }

  /**
   * Each partition of the topics whose global ledger this node keeps: what the ledger holds, and
   * the partition's height as this node knows it — its own replica's, or the topic group's head
   * (what the group has applied, which a snapshot may have put ahead of the ledger's rows).
   */
  private globalLedgerStates(): GlobalLedgerState[] {
    const rows: GlobalLedgerState[] = [];
    for (const [topic, ledger] of this.registryHost.globalLedgers()) {
      const machine = this.registryHost.topicMachine(topic);
      for (const partition of this.registry.partitions()) {
        if (partition.topic !== topic) continue;
        const group = partition.groupId;
        const held = ledger.height(group);
        const known = Math.max(
          this.replicas.get(group)?.height ?? 0,
          machine?.head(group)?.height ?? 0,
          held,
        );
        rows.push({ partition: group, held, known });
      }
    }
    return rows;
  }

  /** Admin transactions submitted here, and registry changes, as observations (context for alerts). */
  private observeRegistry(): void {
    const sink = this.anomaly.sink;
    const node = this.options.nodeId;
    this.registryHost.onAdmin((transaction, outcome) =>
      sink({
        kind: 'admin',
        at: Date.now(),
        node,
        organization: adminActor(transaction, outcome),
        action: transaction.action.kind,
        outcome,
        via: node,
      }),
    );
    let statuses = new Map(this.registry.organizations().map((entry) => [entry.id, entry.status]));
    this.registryHost.system.onChange(() => {
      const at = Date.now();
      const next = new Map(this.registry.organizations().map((entry) => [entry.id, entry.status]));
      let changed = false;
      for (const [organization, status] of next) {
        const before = statuses.get(organization);
        if (before === status) continue;
        changed = true;
        const change = before === undefined ? `registered ${status}` : `status ${before} to ${status}`;
        sink({ kind: 'registry', at, node, organization, change });
      }
      if (!changed) sink({ kind: 'registry', at, node, organization: '', change: 'registry' });
      statuses = next;
    });
  }

  /**
   * Starts a replica for every partition the registry assigns to this node and that it does not
   * host yet: at start, and whenever a topic is created or partitions are added.
   */
  private openPartitions(): void {
    if (this.stopping) return;
    for (const partition of this.registry.partitions()) {
      const existing = this.replicas.get(partition.groupId);
      if (existing !== undefined) {
        if (existing.partition.configEpoch === partition.configEpoch) continue;
        if (existing.closedAt === undefined && !this.closedInGlobalLedger(existing)) {
          // The old epoch runs until it commits its closing block; an idle one is given a batch.
          this.nudge(existing);
          continue;
        }
        existing.close();
        this.replicas.delete(partition.groupId);
        this.options.logger.info(
          {
            partition: partition.groupId,
            epoch: existing.partition.configEpoch,
            closedAt: existing.closedAt,
          },
          'partition epoch closed',
        );
      }
      if (!partition.replicas.includes(this.options.nodeId)) continue;
      let base: Block | undefined;
      if (partition.configEpoch > 0) {
        try {
          base = prepareEpoch(this.options.dataDirectory, partition, this.handoverSources(partition));
        } catch (error) {
          this.options.logger.error(
            { partition: partition.groupId, error: (error as Error).message },
            'cannot take over the partition',
          );
          continue;
        }
        // Not yet: the global ledger has not replicated the closing block; the next round retries.
        if (base === undefined) continue;
      }
      let replica: PartitionReplica;
      try {
        replica = new PartitionReplica({
          partition,
          registry: this.registry,
          registryAt: (systemIndex, topicIndex) =>
            this.registryHost.registryAt(partition.topic, systemIndex, topicIndex),
          registryIndexes: () => this.registryHost.indexes(partition.topic),
          epochAt: (topicIndex) => this.epochAt(partition.topic, partition.partition, topicIndex),
          ...(base === undefined ? {} : { base }),
          selfNodeId: this.options.nodeId,
          signer: this.signer,
          dataDirectory: this.options.dataDirectory,
          sendTo: (nodeId, bytes) => this.mesh.sendConsensus(nodeId, partition.groupId, bytes),
          log: (level, message, fields) => this.options.logger[level](fields ?? {}, message),
          observer: this.metrics.observer(partition.groupId),
        });
      } catch (error) {
        // This node's storage of one partition failed (see group-files.ts): that partition is down
        // here alone, the others open; the next pass (every 500 ms) tries again. Never thrown: this
        // runs in a timer and inside __system's apply.
        if (this.partitionFailureLog.admit(partition.groupId) !== undefined) {
          this.options.logger.error(
            { group: partition.groupId, error: (error as Error).message },
            'cannot open the partition replica; retrying',
          );
        }
        continue;
      }
      replica.onClosed(() => queueMicrotask(() => this.openPartitions()));
      this.anomaly.watchReplica(replica);
      this.metrics.watchReplica(replica);
      this.replicas.set(partition.groupId, replica);
      this.options.logger.info(
        { partition: partition.groupId, epoch: partition.configEpoch, base: base?.header.height },
        'partition replica started',
      );
    }
  }

  /**
   * True if the topic's global ledger holds the block that closed `replica`'s epoch although the
   * replica has not stored it (it lagged, and closed peers serve no state transfer): the node then
   * takes the rest of the old epoch from the global ledger.
   */
  private closedInGlobalLedger(replica: PartitionReplica): boolean {
    const { topic, partition, groupId, configEpoch } = replica.partition;
    const ledger = this.registryHost.globalLedger(topic);
    const head = this.registryHost.topicMachine(topic)?.head(groupId)?.height ?? 0;
    for (let height = replica.height + 1; ledger !== undefined && height <= head; height++) {
      const block = ledger.block(groupId, height);
      if (block === undefined || block.header.configEpoch !== configEpoch) return false;
      if (
        closes((index) => this.epochAt(topic, partition, index), block.header.topicIndex ?? 0, configEpoch)
      ) {
        return true;
      }
    }
    return false;
  }

  /** The partition's epoch at a topic-group index, as the topic's state machine recorded it. */
  private epochAt(topic: string, partition: number, topicIndex: number): number | undefined {
    return this.registryHost.topicMachine(topic)?.at(topicIndex).config.partitions[partition]?.configEpoch;
  }

  private handoverSources(partition: PartitionInfo): HandoverSources {
    return {
      registryAt: (systemIndex, topicIndex) =>
        this.registryHost.registryAt(partition.topic, systemIndex, topicIndex),
      epochAt: (topicIndex) => this.epochAt(partition.topic, partition.partition, topicIndex),
      globalBlock: (height) =>
        this.registryHost.globalLedger(partition.topic)?.block(partition.groupId, height),
    };
  }

  /**
   * Proposes nothing but forces a batch: a no-op request signed by this node, sent to every replica
   * of the old epoch, at most once a second. Its batch names the current topic index, so it closes
   * the epoch (the contract rejects the empty operation either way).
   */
  private nudge(replica: PartitionReplica): void {
    const group = replica.partition.groupId;
    const now = Date.now();
    if (now - (this.nudged.get(group) ?? 0) < 1_000) return;
    this.nudged.set(group, now);
    const request = encodeClientRequest(
      { group, client: this.signer.publicKey, seq: now, operation: new Uint8Array(0) },
      this.signer.sign,
    );
    this.mesh.forwardToReplicas(replica.partition, request);
    replica.receiveForwarded(request);
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  async start(): Promise<void> {
    const self = this.self;
    const registry = this.registry;
    // First, so a metrics port that is taken stops the node before it joins anything.
    if (this.options.metricsListen !== undefined) {
      this.metrics.collectDefaultMetrics();
      this.metricsServer = await serveMetrics(
        this.anomaly.metrics,
        this.options.metricsListen.host,
        this.options.metricsListen.port,
        { readiness: () => this.readiness() },
      );
    }
    this.server = await listenFramed({
      host: this.options.listenHost ?? self.host,
      port: this.options.listenPort ?? self.port,
      identity: this.options.key,
      authorize: (publicKey) => {
        const node = registry.nodeByKey(publicKey);
        if (node !== undefined) return `node:${node.id}`;
        const organization = registry.organizationBySigningKey(publicKey);
        // Only approved organizations act or read: a pending, suspended or revoked one gets no link.
        if (organization?.status === 'APPROVED') return `connector:${organization.id}`;
        const key = toHex(publicKey);
        this.anomaly.sink(
          organization === undefined
            ? {
                kind: 'unknownKey',
                at: Date.now(),
                node: this.options.nodeId,
                organization: '',
                key: key.slice(0, 16),
                via: this.options.nodeId,
              }
            : {
                kind: 'notApproved',
                at: Date.now(),
                node: this.options.nodeId,
                organization: organization.id,
                status: organization.status,
                method: 'connect',
                via: this.options.nodeId,
              },
        );
        const suppressed = this.refusedLog.admit(organization === undefined ? '' : organization.id);
        if (suppressed !== undefined) {
          this.options.logger.warn(
            { key, organization: organization?.id, status: organization?.status, suppressed },
            organization === undefined
              ? 'refused a connection from an unregistered key'
              : 'refused a connection from an organization that is not approved',
          );
        }
        return undefined;
      },
      onConnection: (connection) => {
        const peer = new RpcPeer(connection, { requestTimeoutMs: 120_000 });
        if (connection.peerName.startsWith('node:')) {
          this.mesh.accept(connection.peerName.slice('node:'.length), peer);
          this.clients.serveNode(connection.peerName.slice('node:'.length), peer);
        } else {
          this.clients.serveConnector(connection.peerName.slice('connector:'.length), peer);
        }
      },
    });
    this.mesh.start();
    this.registryHost.start();
    this.anomaly.start();
    // Epoch hand-overs wait on the global ledger and on closing blocks: look again twice a second.
    this.partitionTimer = setInterval(() => this.openPartitions(), 500);
    const tickMs = this.options.tickMs ?? 10;
    this.ticker = setInterval(() => {
      const now = Date.now();
      this.registryHost.tick();
      for (const replica of this.replicas.values()) replica.tick(now);
    }, tickMs);
    this.options.logger.info(
      { node: this.options.nodeId, port: this.port, partitions: [...this.replicas.keys()] },
      'node listening',
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.anomaly.stop();
    await this.metricsServer?.close();
    if (this.ticker !== undefined) clearInterval(this.ticker);
    if (this.partitionTimer !== undefined) clearInterval(this.partitionTimer);
    this.clients.close();
    this.mesh.close();
    await this.server?.close();
    for (const replica of this.replicas.values()) replica.close();
    this.registryHost.close();
  }
}

/** Blocks a peer may ask for in one `blocks` or `globalBlocks` request. */
const peerBlocksMax = 256;

/** A peer's block request: the partition, the first height, and how many (at most peerBlocksMax). */
function blockRange(method: string, body: CborValue): { group: string; from: number; count: number } {
  const record = body as Record<string, CborValue>;
  const group = record['group'];
  const from = record['from'];
  const count = record['count'];
  if (typeof group !== 'string' || typeof from !== 'number' || typeof count !== 'number') {
    throw new LedgerbusError(ErrorCode.SchemaMismatch, `${method} needs group, from and count`);
  }
  return { group, from, count: Math.min(count, peerBlocksMax) };
}

/** Starts a node from its YAML config file (the `ledgerbus node` command). */
export async function startNodeFromConfig(
  path: string,
): Promise<{ node: LedgerbusNode; config: NodeConfig }> {
  const config = loadNodeConfig(path);
  const registry = loadGenesisRegistry(config.genesis);
  const key = loadSigningKey(config.keyFile);
  const self = registry.node(config.nodeId);
  if (self === undefined && config.listen === undefined) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `${path}: nodeId ${config.nodeId} is not in genesis; a node registered later (ledgerbus org add-node) needs \`listen\``,
    );
  }
  if (self !== undefined && toHex(self.publicKey) !== toHex(key.publicKey)) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `${path}: keyFile is not the key genesis registers for ${config.nodeId}`,
    );
  }
  const [listenHost, listenPort] =
    config.listen === undefined ? [undefined, undefined] : splitHostPort(config.listen);
  const node = new LedgerbusNode({
    nodeId: config.nodeId,
    key,
    registry,
    dataDirectory: config.dataDirectory,
    ...(listenHost === undefined ? {} : { listenHost, listenPort }),
    ...(config.tickMs === undefined ? {} : { tickMs: config.tickMs }),
    ...(config.peers === undefined ? {} : { peerAddresses: config.peers }),
    ...(config.rateLimit === undefined ? {} : { rateLimit: config.rateLimit }),
    ...(config.raft?.snapshotEvery === undefined ? {} : { raftSnapshotEvery: config.raft.snapshotEvery }),
    ...(config.raft?.snapshotBytes === undefined ? {} : { raftSnapshotBytes: config.raft.snapshotBytes }),
    ...(config.metrics === undefined
      ? {}
      : {
          metricsListen: (([host, port]) => ({ host, port }))(splitHostPort(config.metrics.listen)),
        }),
    logger: createLogger({ name: config.nodeId, level: config.logLevel ?? 'info' }),
  });
  await node.start();
  return { node, config };
}

function splitHostPort(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}
