/**
 * `ledgerbus connector`: an organization's gateway (DESIGN §1, §3). It holds the org's signing and
 * encryption keys and its payload storage, and keeps outbound connections to its own org's node
 * (no inbound port at the org). This class is the facade the HTTP API, the CLI and the SDK's tests
 * use; the work is done by its parts, each in the room named for it:
 *
 * - `session/`: the connections to nodes (NodeSession) and submitting transactions (TransactionSubmitter);
 * - `producer/`: sending (steps 1–6): store outgoing payloads, batch, sign, publish, verify (Publisher);
 * - `consumer/`: receiving (steps 7–18): one PartitionConsumer per partition owning its cursor and
 *   back-off, the PayloadFetcher, the DeliveryConfirmer, and the ConsumerRunner that starts them;
 * - `delivery/`: the sender's view of deliveries (DeliveryWatcher, steps 19–22) and its payload
 *   retention once they are closed (PayloadRetention);
 * - `payload-server.ts`: serving payloads to recipients (steps 9–12, sender side);
 * - `message-queries.ts`: a message's status and receipt;
 * - `datashare/`: compute-to-data (DESIGN §8): the datasets kept here, the jobs asked of others'
 *   datasets and run on ours (the job agent follows the job logs), and serving their results;
 * - `connector-metrics.ts`: the Prometheus metrics the parts count into (`GET /metrics`).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { bytesEqual } from '../codec/index.js';
import { partitionGroupId } from '../contracts/registry.js';
import { SigningDomain } from '../crypto/index.js';
import type { SigningKeyPair } from '../crypto/index.js';
import type { EncryptionKeyPair } from '../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import type { LiveRegistry } from '../registry/live-registry.js';
import { proofTrustOf } from '../registry/trust.js';
import { claimDataDirectory } from '../runtime/data-format.js';
import type { Logger } from '../runtime/logger.js';
import { ConnectorAdmin } from './admin.js';
import type {
  AdminActionInput,
  AdminResult,
  ConnectorAdminApi,
  ConnectorApi,
  ConnectorEvent,
  MessageStatus,
  OrganizationDescription,
  OutgoingMessage,
  ReceiptBundle,
  ReceiptSource,
  Readiness,
  ReadinessCheck,
  ReceivedMessage,
  SendResult,
  TopicDescription,
} from './api-types.js';
import { ConnectorDatabase } from './connector-database.js';
import { DatabaseSentMessages } from './console/sent-messages.js';
import type { ReceivedRow } from './connector-database.js';
import { CachedSize, ConnectorMetrics, fileBytes, secondsSince } from './connector-metrics.js';
import type { MetricsExposition } from './connector-metrics.js';
import { ConsumerRunner } from './consumer/runner.js';
import { DeliveryConfirmer } from './consumer/delivery-confirmer.js';
import { PayloadFetcher } from './consumer/payload-fetcher.js';
import { toReceivedMessage } from './consumer/received-message.js';
import type { ConnectorContext } from './context.js';
import { DeliveryWatcher } from './delivery/delivery-watcher.js';
import { PayloadRetention } from './delivery/payload-retention.js';
import { ConnectorEvents } from './events.js';
import { Lifecycle } from './lifecycle.js';
import type { ConnectorClock } from './lifecycle.js';
import { MessageQueries } from './message-queries.js';
import { AmbiguousMessageIdError, partitionOfGroup, topicOfGroup } from './message-location.js';
import type { MessageLocation } from './message-location.js';
import { Auditor } from './escrow/auditor.js';
import { ChunkHolder } from './escrow/chunk-holder.js';
import { EscrowAgent } from './escrow/escrow-agent.js';
import { EscrowPlacer } from './escrow/placer.js';
import { CatalogClient } from './datashare/catalog-client.js';
import { ConnectorAlerts } from './alert-follower.js';
import { DatasetStore } from './datashare/dataset-store.js';
import { JobAgent } from './datashare/job-agent.js';
import { JobSandbox } from './datashare/job-sandbox.js';
import { defaultDatasetPolicy } from '../datashare/types.js';
import { JobService } from './datashare/job-service.js';
import { JobDatabase } from './datashare/job-state-database.js';
import { OwnerDatasets } from './datashare/owner-datasets.js';
import { OwnerJobs } from './datashare/owner-jobs.js';
import { RequesterJobs } from './datashare/requester-jobs.js';
import { ResultServer } from './datashare/result-server.js';
import { PayloadServer } from './payload-server.js';
import { Publisher } from './producer/publisher.js';
import { NodeSession, sessionNodes } from './session/node-session.js';
import type { BalancerPolicy, NodeStats } from './session/node-balancer.js';
import { TransactionSubmitter } from './session/submitter.js';
import type { PayloadStorage } from './storage/index.js';
import { PackedStorage } from './storage/packed.js';
import { partSetOfStorageKey } from './parts.js';
import { concatenatedParts } from './consumer/part-payload.js';

export interface ConnectorOptions {
  readonly organization: string;
  readonly signingKey: SigningKeyPair;
  readonly encryptionKey: EncryptionKeyPair;
  /** Starts from genesis; the connector keeps it current from its node (see ConnectorAdmin.sync). */
  readonly registry: LiveRegistry;
  readonly storage: PayloadStorage;
  readonly dataDirectory: string;
  readonly nodeId?: string;
  /** The organization's nodes to use, instead of `nodeId` (connector.yaml `nodes`; see sessionNodes). */
  readonly nodes?: readonly { readonly id: string; readonly address?: string }[];
  /** How requests are spread over nodes (connector.yaml `balancer`; default adaptive, replica reads on). */
  readonly balancer?: {
    readonly policy?: BalancerPolicy;
    readonly replicaReads?: boolean;
    readonly decayMs?: number;
  };
  readonly logger: Logger;
  /** How concurrent sends share signed batches (connector.yaml `producer`; see CoalescingPolicy). */
  readonly producer?: {
    readonly lingerMs?: number;
    readonly inFlightBatchesMax?: number;
    /** Small payloads travel inside their publish (default true; see OutgoingStoreOptions). */
    readonly inlinePayloads?: boolean;
    /** Values declared larger travel in parts of this many bytes (default 64 MiB; see parts.ts). */
    readonly partBytes?: number;
  };
  /** Payload-serving connections kept open to the node (concurrent outgoing transfers). */
  readonly servingConnections?: number;
  /** Attempts before a message that fails verification is given up (it is recorded as failed). */
  readonly fetchAttemptsMax?: number;
  /** Time and timers (default: Date.now and the process's timers). */
  readonly clock?: ConnectorClock;
  /** Uniform in [0, 1), for the jitter of retries (default Math.random). */
  readonly random?: () => number;
}

/** How long the storage may take to answer the readiness probe before it counts as not ready. */
const storageProbeMs = 2_000;
/** A key no payload has (its sha256 would have to be all zeros): looking it up only asks the storage. */
const storageProbeKey = '0'.repeat(64);

export class Connector implements ConnectorApi, ConnectorAdminApi {
  readonly organization: string;
  private readonly context: ConnectorContext;
  private readonly session: NodeSession;
  private readonly adminClient: ConnectorAdmin;
  private readonly publisher: Publisher;
  private readonly consumers: ConsumerRunner;
  private readonly fetcher: PayloadFetcher;
  private readonly deliveryWatcher: DeliveryWatcher;
  private readonly payloadRetention: PayloadRetention;
  private readonly payloadServer: PayloadServer;
  private readonly queries: MessageQueries;
  /** Escrow (DESIGN §7): chunks kept for others, and the holder's duties on the escrow logs. */
  private readonly chunkHolder: ChunkHolder;
  private readonly escrowAgent: EscrowAgent;
  /** Audits of escrowed messages: request, approve, status, fetch (the REST routes use it). */
  readonly audits: Auditor;
  /** The data catalog: describing our datasets on the ledger, searching everyone's (the REST routes use it). */
  readonly catalog: CatalogClient;
  /** Alerts (DESIGN §9): list, acknowledge, policy; follows new ones onto the event stream. */
  readonly alerts: ConnectorAlerts;
  /** The datasets this organization shares by compute-to-data (the REST routes use it). */
  readonly datasets: OwnerDatasets;
  /** Jobs asked of others' datasets and run on ours (the REST routes use it). */
  readonly jobs: JobService;
  /** What this organization sent, as the web console lists it (from this connector's database). */
  readonly sentMessages: DatabaseSentMessages;
  private readonly datasetStore: DatasetStore;
  private readonly jobAgent: JobAgent;
  private readonly resultServer: ResultServer;
  /** The background loops `start` runs: a fixed few. */
  private readonly loops: Promise<void>[] = [];
  /** Runs compute-to-data jobs in child processes; made at the first job this connector owns. */
  private jobSandbox: JobSandbox | undefined;
  /** start() ran: until then nothing consumes, serves payloads or watches deliveries. */
  private started = false;
  /** The configured payload storage itself, which readiness asks without going through the database. */
  private readonly payloadStorage: PayloadStorage;

  /**
   * Checks the keys against the registry (BAD_CONFIG names what does not match), claims the data
   * directory (data of another network or format stops the connector here), opens the database.
   * Nothing connects before start().
   */
  constructor(options: ConnectorOptions) {
    this.organization = options.organization;
    this.payloadStorage = options.storage;
    checkKeys(options);
    const nodes = sessionNodes(options.registry, options.organization, {
      ...(options.nodeId === undefined ? {} : { nodeId: options.nodeId }),
      ...(options.nodes === undefined ? {} : { nodes: options.nodes }),
    });
    const signer = SigningDomain.of(options.registry.network).signer(options.signingKey);
    // Before the database is opened: data this version cannot verify, or another network's, stops
    // the connector here.
    claimDataDirectory({
      directory: options.dataDirectory,
      role: 'connector',
      network: options.registry.network,
    });
    const lifecycle = new Lifecycle(options.clock);
    const database = new ConnectorDatabase(options.dataDirectory);
    this.sentMessages = new DatabaseSentMessages(database);
    const storage = new PackedStorage(options.storage, database);
    const databaseFile = join(options.dataDirectory, 'connector.sqlite');
    const payloadBytes = new CachedSize(() => storage.usage());
    const metrics = new ConnectorMetrics({
      topics: () => {
        const topics = options.registry.topics();
        return {
          produced: topics
            .filter((topic) => topic.producers.has(options.organization))
            .map(({ name }) => name),
          consumed: topics
            .filter((topic) => topic.consumers.has(options.organization))
            .map(({ name }) => name),
        };
      },
      // Read only while the database is open: a scrape may come as the connector stops.
      consumeLag: () => (database.open ? database.consumeLag() : []),
      storageBytes: async () => {
        const payloads = await payloadBytes.get();
        return {
          database: await fileBytes([databaseFile, `${databaseFile}-wal`, `${databaseFile}-shm`]),
          ...(payloads === undefined ? {} : { payloads }),
        };
      },
    });
    const context: ConnectorContext = {
      organization: options.organization,
      signer,
      encryptionKey: options.encryptionKey,
      registry: options.registry,
      trust: proofTrustOf(options.registry),
      database,
      storage,
      logger: options.logger,
      lifecycle,
      events: new ConnectorEvents(options.logger),
      metrics,
      random: options.random ?? Math.random,
    };
    this.context = context;
    const session = new NodeSession({
      ...context,
      node: nodes[0]!,
      nodes,
      identity: options.signingKey,
      servingConnections: options.servingConnections ?? 8,
      balancer: {
        policy: options.balancer?.policy ?? 'adaptive',
        ...(options.balancer?.decayMs === undefined ? {} : { decayMs: options.balancer.decayMs }),
      },
      replicaReads: options.balancer?.replicaReads ?? true,
    });
    this.session = session;
    this.adminClient = new ConnectorAdmin({
      organization: options.organization,
      signer,
      registry: options.registry,
      node: session,
      clock: lifecycle.retryClock,
      random: context.random,
    });
    const syncRegistry = async (): Promise<void> => {
      await this.adminClient.sync();
    };
    const submitter = new TransactionSubmitter({ ...context, session });
    const placer = new EscrowPlacer({ ...context, session });
    this.chunkHolder = new ChunkHolder({ ...context, session });
    this.escrowAgent = new EscrowAgent({ ...context, session, submitter });
    this.audits = new Auditor({
      ...context,
      session,
      submitter,
      agentDatabase: this.escrowAgent.database,
      syncRegistry,
      temporaryDirectory: join(options.dataDirectory, 'audit-tmp'),
    });
    const jobDatabase = new JobDatabase(context.database);
    // A dataset removed or loaded again has other rows: the difference check's history of it goes.
    this.datasetStore = new DatasetStore(join(options.dataDirectory, 'datasets'), {
      onReplaced: (name) => jobDatabase.clearReleased(name),
    });
    this.datasets = new OwnerDatasets(this.datasetStore);
    const datasetStore = this.datasetStore;
    this.alerts = new ConnectorAlerts({ ...context, session, admin: this.adminClient });
    this.catalog = new CatalogClient({
      organization: options.organization,
      session,
      admin: this.adminClient,
      datasets: { require: (name) => datasetStore.require(name) },
    });
    const ownerJobs = new OwnerJobs({
      ...context,
      session,
      submitter,
      jobs: jobDatabase,
      datasets: this.datasetStore,
      // A warm spare runner saves each job the start of a Node process (bench:jobs: ~0.7 s); it is
      // forked at the first job, so connectors that never own a job never pay for an idle process.
      runJob: (job) => {
        this.jobSandbox ??= new JobSandbox(defaultDatasetPolicy.memoryBytesMax);
        return this.jobSandbox.run(job);
      },
    });
    const requesterJobs = new RequesterJobs({
      ...context,
      session,
      submitter,
      jobs: jobDatabase,
      syncRegistry,
    });
    this.jobAgent = new JobAgent({
      ...context,
      session,
      jobs: jobDatabase,
      owner: ownerJobs,
      requester: requesterJobs,
    });
    this.resultServer = new ResultServer({ ...context, jobs: jobDatabase });
    this.jobs = new JobService({
      ...context,
      session,
      jobs: jobDatabase,
      requester: requesterJobs,
      owner: ownerJobs,
    });
    this.publisher = new Publisher({
      ...context,
      session,
      submitter,
      syncRegistry,
      placer,
      ...(options.producer === undefined ? {} : { coalescing: options.producer }),
      ...(options.producer?.inlinePayloads === undefined
        ? {}
        : { inlinePayloads: options.producer.inlinePayloads }),
      ...(options.producer?.partBytes === undefined ? {} : { partBytes: options.producer.partBytes }),
    });
    this.fetcher = new PayloadFetcher({ ...context, session });
    this.consumers = new ConsumerRunner({
      ...context,
      syncRegistry,
      consumer: {
        ...context,
        session,
        fetcher: this.fetcher,
        confirmer: new DeliveryConfirmer({ ...context, submitter }),
        ...(options.fetchAttemptsMax === undefined ? {} : { fetchAttemptsMax: options.fetchAttemptsMax }),
      },
    });
    this.deliveryWatcher = new DeliveryWatcher({ ...context, session });
    this.payloadRetention = new PayloadRetention(context);
    this.payloadServer = new PayloadServer(context);
    this.queries = new MessageQueries({ ...context, session });
  }

  // ---- administration (ConnectorAdminApi) ----

  admin(action: AdminActionInput): Promise<AdminResult> {
    return this.adminClient.admin(action);
  }
  submitAdminTransaction(transaction: Uint8Array): Promise<AdminResult> {
    return this.adminClient.submit(transaction);
  }
  organizations(): Promise<OrganizationDescription[]> {
    return this.adminClient.organizations();
  }
  topics(): Promise<TopicDescription[]> {
    return this.adminClient.topics();
  }
  describeTopic(name: string): Promise<TopicDescription> {
    return this.adminClient.describeTopic(name);
  }

  // ---- running ----

  /** Opens the serving connections and starts one consumer per consumable partition and the delivery watcher. */
  start(): void {
    this.started = true;
    this.session.startServing({
      servePayload: (body) => this.payloadServer.serve(body),
      escrowChunkPut: (body) => this.chunkHolder.put(body),
      escrowChunkGet: (body) => this.chunkHolder.get(body),
      jobResultGet: (body) => this.resultServer.serve(body),
    });
    this.loops.push(this.deliveryWatcher.run());
    this.loops.push(this.payloadRetention.run());
    this.loops.push(this.escrowAgent.run());
    this.loops.push(this.jobAgent.run());
    this.loops.push(this.alerts.run());
    this.consumers.start();
  }

  /** Ends every loop and wait, closes the connections, then the database and the storage. */
  async stop(): Promise<void> {
    this.context.lifecycle.stop();
    this.context.events.wakeReceivedWaiters();
    this.session.close();
    await Promise.allSettled([...this.loops, this.consumers.stopped()]);
    // After the consumers: no worker hands a connection back to a closed pool's idle list.
    this.fetcher.close();
    this.jobSandbox?.close();
    this.datasetStore.close();
    this.context.database.close();
    await this.context.storage.close();
  }

  /**
   * Whether the connector can do its work now (`GET /readyz`): it was started and is not stopping;
   * its database is open; its payload storage answers a lookup within 2 s (for PostgreSQL that is a
   * query on the server); and it holds an open connection to at least one of its organization's
   * nodes that the balancer has not ejected (NodeSession.reachableNodes: no request is made). The
   * reasons name no address, key or path: the route is public.
   */
  async readiness(): Promise<Readiness> {
    const { database, lifecycle } = this.context;
    const failing: { check: ReadinessCheck; reason: string }[] = [];
    if (!this.started) failing.push({ check: 'started', reason: 'the connector has not been started' });
    else if (lifecycle.stopped) failing.push({ check: 'started', reason: 'the connector is stopping' });
    if (!database.open) failing.push({ check: 'database', reason: 'the connector database is not open' });
    const storageProblem = await probeStorage(this.payloadStorage);
    if (storageProblem !== undefined) failing.push({ check: 'storage', reason: storageProblem });
    if (this.session.reachableNodes().length === 0) {
      failing.push({
        check: 'nodes',
        reason: `no open connection to any of this organization's nodes (${this.session.nodes.length} configured)`,
      });
    }
    return { ready: failing.length === 0, failing };
  }

  /** This connector's metrics in the Prometheus text format (`GET /metrics`). */
  scrapeMetrics(): Promise<MetricsExposition> {
    return this.context.metrics.exposition();
  }

  /** How the connector sees each node it has asked: latency estimate, requests in flight, ejection. */
  nodeStats(): NodeStats[] {
    return this.session.balancerStats();
  }

  onEvent(listener: (event: ConnectorEvent) => void): () => void {
    return this.context.events.onEvent(listener);
  }

  // ---- sending ----

  /** See Publisher.send: checked, stored, published in signed batches, proven; TOPIC_NOT_FOUND for an unknown topic. */
  async send(topicName: string, messages: readonly OutgoingMessage[]): Promise<SendResult[]> {
    const started = performance.now();
    const results = await this.publisher.send(topicName, messages);
    this.context.metrics.observePublish(secondsSince(started));
    return results;
  }

  // ---- reads for applications ----

  async received(options: {
    topic?: string;
    after: number;
    limit: number;
    waitMs?: number;
  }): Promise<ReceivedMessage[]> {
    const { database, lifecycle, events } = this.context;
    const limit = Math.max(1, Math.min(options.limit, 1000));
    let rows = database.receivedAfter(options.after, limit, options.topic);
    if (rows.length === 0 && (options.waitMs ?? 0) > 0 && !lifecycle.stopped) {
      await lifecycle.waitForWake(events.receivedWaiters, options.waitMs ?? 0);
      rows = database.receivedAfter(options.after, limit, options.topic);
    }
    // A small payload comes with its listing: a consumer then needs no request per message for it.
    return rows.map((row) => {
      const packed = database.packed(row.storage_key);
      const message = toReceivedMessage(row);
      return packed === undefined ? message : { ...message, value: packed.toString('base64') };
    });
  }

  receivedMessage(id: string, at?: MessageLocation): ReceivedMessage | undefined {
    const row = this.receivedRow(id, at);
    return row === undefined ? undefined : toReceivedMessage(row);
  }

  async payload(id: string, at?: MessageLocation): Promise<Readable> {
    const row = this.receivedRow(id, at);
    if (row === undefined) throw new LedgerbusError(ErrorCode.MessageNotFound, `no received message ${id}`);
    const set = partSetOfStorageKey(row.storage_key);
    if (set === undefined) return this.context.storage.get(row.storage_key);
    const { database, storage } = this.context;
    const parts = database
      .receivedPartSet(row.group_id, row.sender, set)
      .map((part) => ({ storageKey: part.storage_key, size: part.size }));
    return concatenatedParts(parts, storage);
  }

  /**
   * Deletes a received message and its payload (the application's retention: recipients keep what
   * they received until they delete it). Refused with MESSAGE_NOT_CONFIRMED while its delivery is
   * not confirmed on-chain. The row goes first, then every payload object no other message refers
   * to; a crash in between leaves an object nothing refers to, never a message without its payload.
   */
  async deleteReceived(
    id: string,
    at?: MessageLocation,
  ): Promise<{ id: string; topic: string; partition: number }> {
    const row = this.receivedRow(id, at);
    if (row === undefined) throw new LedgerbusError(ErrorCode.MessageNotFound, `no received message ${id}`);
    const { database, storage } = this.context;
    const deleted = database.deleteReceived(row.group_id, row.id);
    if (deleted === undefined)
      throw new LedgerbusError(ErrorCode.MessageNotFound, `no received message ${id}`);
    if (deleted === 'unconfirmed') {
      throw new LedgerbusError(
        ErrorCode.MessageNotConfirmed,
        `message ${id} on ${row.group_id}: its delivery is not confirmed on-chain yet`,
      );
    }
    for (const key of new Set(deleted.storageKeys)) {
      if (!database.payloadReferenced(key)) await storage.delete(key);
    }
    return { id: row.id, topic: row.topic, partition: row.partition };
  }

  /** The received message `id` at `at`, or the only one with that id (AMBIGUOUS_MESSAGE_ID if several). */
  private receivedRow(id: string, at: MessageLocation | undefined): ReceivedRow | undefined {
    const { database } = this.context;
    if (at !== undefined) return database.received(partitionGroupId(at.topic, at.partition), id);
    const rows = database.receivedWithId(id);
    if (rows.length > 1) {
      throw new AmbiguousMessageIdError(
        id,
        rows.map((row) => ({ topic: row.topic, partition: row.partition, id, sender: row.sender })),
        'name one, as GET /v1/received/{topic}/{partition}/{id}',
      );
    }
    return rows[0];
  }

  committedSequence(groupId: string, topic: string): number {
    return this.context.database.consumerSequence(groupId, topic) ?? 0;
  }

  commitSequence(groupId: string, topic: string, sequence: number): void {
    if (!Number.isSafeInteger(sequence) || sequence < 0)
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'sequence: expected a non-negative integer');
    this.context.database.setConsumerSequence(groupId, topic, sequence);
  }

  latestSequence(): number {
    return this.context.database.lastSequence();
  }

  status(topic: string, id: string, options: { partition?: number } = {}): Promise<MessageStatus> {
    return this.queries.status(topic, id, options);
  }

  receipt(
    topic: string,
    id: string,
    options: { source?: ReceiptSource; partition?: number } = {},
  ): Promise<ReceiptBundle> {
    return this.queries.receipt(topic, id, options);
  }

  /** Messages whose payload could not be received, newest last; `attempts` counts the tries so far. */
  failures(): {
    id: string;
    topic: string;
    partition: number;
    code: string;
    reason: string;
    attempts: number;
  }[] {
    return this.context.database.failures().map((row) => ({
      id: row.id,
      topic: topicOfGroup(row.group_id),
      partition: partitionOfGroup(row.group_id),
      code: row.code,
      reason: row.reason,
      attempts: row.attempts,
    }));
  }
}

/**
 * Why the storage is not usable, or undefined when it answers a lookup in time. The reason is the
 * failure's code only: its message may carry a path or a server address, and readiness is public.
 */
async function probeStorage(storage: PayloadStorage): Promise<string | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(
      () => resolve(`the payload storage did not answer within ${storageProbeMs} ms`),
      storageProbeMs,
    );
  });
  const probe = storage.stat(storageProbeKey).then(
    () => undefined,
    (error: unknown) =>
      `the payload storage failed (${isLedgerbusError(error) ? error.code : ErrorCode.Internal})`,
  );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * BAD_CONFIG unless the keys are the ones the registry holds for the organization. An organization
 * registered after genesis is checked once the node's registry arrives.
 */
function checkKeys(options: ConnectorOptions): void {
  const organization = options.registry.organization(options.organization);
  if (organization === undefined) return;
  if (!organization.signingKeys.some((key) => bytesEqual(key, options.signingKey.publicKey))) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `the signing key is not registered for ${options.organization}`,
    );
  }
  const encryptionKey = options.registry.encryptionKey(options.organization);
  if (encryptionKey === undefined || !bytesEqual(encryptionKey, options.encryptionKey.publicKey)) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `the encryption key is not the one registered for ${options.organization}`,
    );
  }
}
