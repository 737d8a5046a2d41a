/**
 * The node's own Prometheus metrics (issue 19), in the node's one prom-client registry — the one the
 * anomaly service counts in and metrics-server.ts serves — with the process's default metrics, every
 * name prefixed `ledgerbus_`.
 *
 * Two kinds, so that scrapes stay cheap and nothing is missed between them:
 * - counters and the commit-latency histogram are fed as things happen, through label children
 *   cached per partition (the hot path does no label hashing);
 * - gauges are read at scrape time (`collect()`) from what the node holds right then, after a reset,
 *   so a partition or group the node no longer hosts disappears from them.
 *
 * Labels stay bounded: partition and group ids (the registry's), organization ids (registered ones,
 * at most 64, then `other`), the contract's reject reasons, error codes, method names of the fixed
 * client API. Never a message id.
 *
 * What each metric counts is in its `help`, which is what an operator sees; the counters start at 0
 * when the process starts (Prometheus handles the reset).
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { LabelValues, Registry } from 'prom-client';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { decodeTransactionResult } from '../contracts/results.js';
import type { SdtEvent } from '../contracts/results.js';
import { decodeTransaction } from '../contracts/transactions.js';
import type { Block } from '../ledger/block.js';
import type { ForwardableMethod } from '../protocol/client-methods.js';
import type { ClientMetrics } from './client-service.js';
import type { PartitionObserver } from './partition-replica.js';

/** A replica as the gauges read it at scrape time (a PartitionReplica is one). */
export interface ReplicaState {
  readonly partition: { readonly groupId: string };
  readonly height: number;
  readonly view: number;
  readonly isPrimary: boolean;
}

/** A Raft group as the gauges read it at scrape time. */
export interface RaftGroupState {
  /** `__system` or `topic:<name>`. */
  readonly group: string;
  readonly leader: boolean;
  readonly applied: number;
  readonly term: number;
}

/** One partition of a topic whose global ledger this node keeps. */
export interface GlobalLedgerState {
  readonly partition: string;
  /** The highest height the global ledger holds of it. */
  readonly held: number;
  /** The partition's height as this node knows it (its own replica, or the topic group's head). */
  readonly known: number;
}

/** What the scrape-time gauges read: the node's state right then. */
export interface NodeMetricsSource {
  replicas(): Iterable<ReplicaState>;
  raftGroups(): Iterable<RaftGroupState>;
  globalLedgers(): Iterable<GlobalLedgerState>;
  /** True if `id` is an organization of the registry (only those get a label of their own). */
  isOrganization(id: string): boolean;
}

/** A replica whose stored blocks are counted (PartitionReplica). */
export interface CountedReplica {
  readonly partition: { readonly groupId: string };
  onBlock(listener: (block: Block, events: readonly SdtEvent[]) => void): () => void;
}

export interface NodeMetricsOptions {
  readonly registry: Registry;
  /** The node's data directory: `storage_bytes` sums the files under its group folders. */
  readonly dataDirectory: string;
  readonly source: NodeMetricsSource;
  /** Called when reading the node's state for a scrape failed: that scrape lacks those gauges. */
  readonly onError?: (error: unknown, what: string) => void;
  /** How long a storage size is reused before the directories are walked again. Default 5 s. */
  readonly storageCacheMs?: number;
}

/** The folders of the data directory that `ledgerbus_storage_bytes` reports, by component label. */
const storageComponents = [
  ['partitions', 'partitions'],
  ['raft', 'raft'],
  ['global_ledger', 'global'],
] as const;

/** Organizations with a label of their own; the rest share `other` (as the anomaly service does). */
const organizationLabelsMax = 64;

/** From a few ms (a 4-node LAN cluster) to the 30 s a client waits before its request times out. */
const commitLatencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * How a refusal's status is encoded in canonical CBOR: a text string of 8 bytes (0x68) then
 * "REJECTED". A result without these bytes refuses nothing and need not be decoded; one with them
 * (a rejection, or a message id that happens to contain them) is decoded and counted exactly.
 */
const rejectedStatus = Buffer.from([0x68, ...Buffer.from('REJECTED', 'ascii')]);

/** The label children of one partition, made once: the hot path only increments them. */
interface PartitionChildren {
  readonly accepted: Counter.Internal;
  readonly rejected: Map<string, Counter.Internal>;
  readonly viewChanges: Counter.Internal;
  readonly transferred: Counter.Internal;
  readonly latency: Histogram.Internal<'partition'>;
}

export class NodeMetrics implements ClientMetrics {
  readonly registry: Registry;
  private readonly source: NodeMetricsSource;
  private readonly partitions = new Map<string, PartitionChildren>();
  private readonly acceptedTotal: Counter<'partition'>;
  private readonly rejectedTotal: Counter<'partition' | 'reason'>;
  private readonly viewChangesTotal: Counter<'partition'>;
  private readonly transferredTotal: Counter<'partition'>;
  private readonly commitLatency: Histogram<'partition'>;
  private readonly rateLimitedTotal: Counter<'organization'>;
  private readonly requestsTotal: Counter<'method' | 'outcome'>;
  /** Organizations given a label of their own so far: at most `organizationLabelsMax`. */
  private readonly labelled = new Set<string>();
  private defaultMetrics = false;
  /** Storage sizes by component, and when they were read; one walk at a time. */
  private storage: { readonly at: number; readonly sizes: Promise<Map<string, number>> } | undefined;
  /** Global-ledger rows of the current scrape, shared by its two gauges. */
  private ledgers: { readonly at: number; readonly rows: GlobalLedgerState[] } | undefined;

  constructor(private readonly options: NodeMetricsOptions) {
    this.registry = options.registry;
    this.source = options.source;
    const registers = [this.registry];
    const replicas = (): ReplicaState[] => [...this.source.replicas()];
    const groups = (): RaftGroupState[] => [...this.source.raftGroups()];
    const ledgers = (): GlobalLedgerState[] => this.ledgerRows();

    this.scrapeGauge({
      name: 'ledgerbus_pbft_view',
      help: "The PBFT view this node's replica of the partition is in (read at scrape time).",
      label: 'partition',
      rows: replicas,
      sample: (replica) => [replica.partition.groupId, replica.view],
    });
    this.scrapeGauge({
      name: 'ledgerbus_pbft_height',
      help: "Height of the last block this node's replica of the partition stored: executed, certified and durable (read at scrape time).",
      label: 'partition',
      rows: replicas,
      sample: (replica) => [replica.partition.groupId, replica.height],
    });
    this.scrapeGauge({
      name: 'ledgerbus_pbft_primary',
      help: "1 if this node's replica is the primary of the view it is in now, else 0 (read at scrape time).",
      label: 'partition',
      rows: replicas,
      sample: (replica) => [replica.partition.groupId, replica.isPrimary ? 1 : 0],
    });
    this.viewChangesTotal = new Counter({
      name: 'ledgerbus_pbft_view_changes_total',
      help: "Views this node's replica of the partition moved past since the process started, counted as its core steps: a view rising by k counts k (a view change to v+1 that times out and goes on to v+2 counts 2).",
      labelNames: ['partition'],
      registers,
    });
    this.transferredTotal = new Counter({
      name: 'ledgerbus_pbft_state_transfer_blocks_total',
      help: "Committed blocks this node's replica of the partition received by state transfer (certified blocks fetched from a peer) rather than by its own consensus rounds.",
      labelNames: ['partition'],
      registers,
    });
    this.commitLatency = new Histogram({
      name: 'ledgerbus_pbft_commit_latency_seconds',
      help: "Seconds from a client request submitted at this node's replica of the partition until its block was stored and synced; a request found already committed counts at once.",
      labelNames: ['partition'],
      buckets: commitLatencyBuckets,
      registers,
    });
    this.acceptedTotal = new Counter({
      name: 'ledgerbus_messages_accepted_total',
      help: "Messages accepted in the blocks this node's replica of the partition executed and stored in this process run, each once (an idempotent retry of an accepted message is not counted again).",
      labelNames: ['partition'],
      registers,
    });
    this.rejectedTotal = new Counter({
      name: 'ledgerbus_messages_rejected_total',
      help: "Messages of publish transactions the contract refused in the blocks this node's replica of the partition executed and stored, by reject reason: a refused message counts once, a publish refused as a whole counts each of its messages.",
      labelNames: ['partition', 'reason'],
      registers,
    });

    this.scrapeGauge({
      name: 'ledgerbus_raft_leader',
      help: '1 if this node leads the Raft group (__system or topic:<name>) now, else 0 (read at scrape time).',
      label: 'group',
      rows: groups,
      sample: (group) => [group.group, group.leader ? 1 : 0],
    });
    this.scrapeGauge({
      name: 'ledgerbus_raft_applied_index',
      help: "The last log index this node applied to the Raft group's state machine (read at scrape time).",
      label: 'group',
      rows: groups,
      sample: (group) => [group.group, group.applied],
    });
    this.scrapeGauge({
      name: 'ledgerbus_raft_term',
      help: 'The Raft term this node is in for the group; a rising term means elections (read at scrape time).',
      label: 'group',
      rows: groups,
      sample: (group) => [group.group, group.term],
    });

    this.scrapeGauge({
      name: 'ledgerbus_global_ledger_height',
      help: "The highest block height of the partition this node's global ledger of its topic holds (read at scrape time).",
      label: 'partition',
      rows: ledgers,
      sample: (ledger) => [ledger.partition, ledger.held],
    });
    this.scrapeGauge({
      name: 'ledgerbus_global_ledger_lag_blocks',
      help: "Blocks of the partition this node knows of (its own replica's height, or its topic group's head) that its global ledger does not hold yet; never negative (read at scrape time).",
      label: 'partition',
      rows: ledgers,
      sample: (ledger) => [ledger.partition, Math.max(0, ledger.known - ledger.held)],
    });

    this.rateLimitedTotal = new Counter({
      name: 'ledgerbus_rate_limited_total',
      help: 'Requests this node refused with RATE_LIMITED because the organization was over its quota here (registered organizations up to 64 by id, then other).',
      labelNames: ['organization'],
      registers,
    });
    this.requestsTotal = new Counter({
      name: 'ledgerbus_client_requests_total',
      help: 'Partition requests (publish, poll, message, messages, receipt, escrow and job reads) connectors sent this node, by how they ended: ok, or the error code answered (including RATE_LIMITED and NOT_APPROVED at admission).',
      labelNames: ['method', 'outcome'],
      registers,
    });

    const sizes = (): Promise<Map<string, number>> => this.storageSizes();
    const failed = (error: unknown): void => this.options.onError?.(error, 'storage sizes');
    new Gauge({
      name: 'ledgerbus_storage_bytes',
      help: "Bytes of the files under the node's data directory by component: partitions (PBFT partition databases), raft (Raft logs and snapshots), global_ledger (topics' global ledgers); read at most every few seconds.",
      labelNames: ['component'],
      registers,
      async collect(this: Gauge<'component'>) {
        let bytes: Map<string, number> | undefined;
        try {
          bytes = await sizes();
        } catch (error) {
          failed(error);
        }
        this.reset();
        for (const [component, size] of bytes ?? []) this.set({ component }, size);
      },
    });
  }

  /** The process's default metrics (CPU, memory, event loop, GC), prefixed; registered once. */
  collectDefaultMetrics(): void {
    if (this.defaultMetrics) return;
    this.defaultMetrics = true;
    collectDefaultMetrics({ register: this.registry, prefix: 'ledgerbus_' });
    // Gauges named like counters, which `promtool check metrics` flags; each is only the sum of
    // the gauge by type beside it (ledgerbus_nodejs_active_handles{type} and so on).
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      this.registry.removeSingleMetric(`ledgerbus_nodejs_${name}`);
    }
  }

  /**
   * What a replica of `groupId` reports as it steps. Its series exist from here on at 0, so a rate
   * over them is defined before the first event.
   */
  observer(groupId: string): PartitionObserver {
    const children = this.children(groupId);
    return {
      viewChanged: (views) => children.viewChanges.inc(views),
      transferred: (blocks) => children.transferred.inc(blocks),
      committed: (seconds) => children.latency.observe(seconds),
    };
  }

  /** Counts the messages accepted and refused in each block `replica` stores from now on. */
  watchReplica(replica: CountedReplica): () => void {
    const children = this.children(replica.partition.groupId);
    return replica.onBlock((block, events) => {
      let accepted = 0;
      for (const event of events) if (event.type === 'MessageAccepted') accepted++;
      if (accepted > 0) children.accepted.inc(accepted);
      for (const [reason, count] of rejectedMessages(block)) {
        let child = children.rejected.get(reason);
        if (child === undefined) {
          child = this.rejectedTotal.labels({ partition: replica.partition.groupId, reason });
          children.rejected.set(reason, child);
        }
        child.inc(count);
      }
    });
  }

  rateLimited(organization: string): void {
    this.rateLimitedTotal.inc({ organization: this.organizationLabel(organization) });
  }

  request(method: ForwardableMethod, outcome: string): void {
    this.requestsTotal.inc({ method, outcome });
  }

  private children(partition: string): PartitionChildren {
    let children = this.partitions.get(partition);
    if (children === undefined) {
      children = {
        accepted: this.acceptedTotal.labels({ partition }),
        rejected: new Map(),
        viewChanges: this.viewChangesTotal.labels({ partition }),
        transferred: this.transferredTotal.labels({ partition }),
        latency: this.commitLatency.labels({ partition }),
      };
      children.accepted.inc(0);
      children.viewChanges.inc(0);
      children.transferred.inc(0);
      this.commitLatency.zero({ partition });
      this.partitions.set(partition, children);
    }
    return children;
  }

  private organizationLabel(organization: string): string {
    if (this.labelled.has(organization)) return organization;
    if (this.labelled.size < organizationLabelsMax && this.source.isOrganization(organization)) {
      this.labelled.add(organization);
      return organization;
    }
    return 'other';
  }

  /**
   * A gauge of one label set to exactly the rows `rows` gives at each scrape: reset first, so what
   * the node no longer hosts disappears. A failed read leaves the gauge empty for that scrape (the
   * rest of /metrics still serves).
   */
  private scrapeGauge<Row, Label extends string>(config: {
    readonly name: string;
    readonly help: string;
    readonly label: Label;
    readonly rows: () => readonly Row[];
    readonly sample: (row: Row) => [labelValue: string, value: number];
  }): void {
    const failed = (error: unknown): void => this.options.onError?.(error, config.name);
    new Gauge({
      name: config.name,
      help: config.help,
      labelNames: [config.label],
      registers: [this.registry],
      collect(this: Gauge<Label>) {
        this.reset();
        let rows: readonly Row[];
        try {
          rows = config.rows();
        } catch (error) {
          failed(error);
          return;
        }
        for (const row of rows) {
          const [labelValue, value] = config.sample(row);
          this.set({ [config.label]: labelValue } as LabelValues<Label>, value);
        }
      },
    });
  }

  /** The global ledgers' rows, read once for both of their gauges in one scrape. */
  private ledgerRows(): GlobalLedgerState[] {
    const now = performance.now();
    if (this.ledgers === undefined || now - this.ledgers.at > 1_000) {
      this.ledgers = { at: now, rows: [...this.source.globalLedgers()] };
    }
    return this.ledgers.rows;
  }

  /**
   * Sizes by component, walking the folders at most every `storageCacheMs` (a scrape every second
   * must not stat every file every second); a scrape during a walk waits for that walk.
   */
  private storageSizes(): Promise<Map<string, number>> {
    const now = performance.now();
    const cached = this.storage;
    if (cached !== undefined && now - cached.at < (this.options.storageCacheMs ?? 5_000)) return cached.sizes;
    const sizes = (async () => {
      const out = new Map<string, number>();
      for (const [component, folder] of storageComponents) {
        out.set(component, await folderBytes(join(this.options.dataDirectory, folder)));
      }
      return out;
    })();
    this.storage = { at: now, sizes };
    // A failed walk is not kept: the next scrape tries again.
    sizes.catch(() => {
      if (this.storage?.sizes === sizes) this.storage = undefined;
    });
    return sizes;
  }
}

/**
 * Bytes of the regular files under `path`, recursively (SQLite's -wal and -shm files included); 0
 * if it does not exist. A file removed during the walk is skipped.
 */
async function folderBytes(path: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  let total = 0;
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) {
      total += await folderBytes(child);
    } else if (entry.isFile()) {
      try {
        total += (await lstat(child)).size;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  }
  return total;
}

/**
 * The messages of publish transactions `block` refused, by reason. Only results holding a refusal
 * are decoded (see `rejectedStatus`); a publish refused as a whole counts each of its messages,
 * and a transaction that does not decode as a publish (not a message) counts nothing.
 */
function rejectedMessages(block: Block): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (reason: string, count: number): void => {
    counts.set(reason, (counts.get(reason) ?? 0) + count);
  };
  block.results.forEach((bytes, index) => {
    if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(rejectedStatus) < 0) return;
    let result;
    try {
      result = decodeTransactionResult(bytes);
    } catch {
      // Results the contract wrote always decode; this block is not worth failing a metric for.
      return;
    }
    if (result.status === 'REJECTED') {
      const messages = publishedMessages(block.transactions[index]);
      if (messages > 0) add(result.reason, messages);
    } else if (result.type === 'publish') {
      for (const message of result.messages) if (message.status === 'REJECTED') add(message.reason, 1);
    }
  });
  return counts;
}

/** How many messages a committed client request publishes: 0 if it is not a decodable publish. */
function publishedMessages(request: Uint8Array | undefined): number {
  if (request === undefined) return 0;
  try {
    const { operation } = decodeClientRequest(request, messageLimits.requestBytesMax);
    // An empty operation is a node's nudge closing an epoch (node.ts), not a publish.
    if (operation.length === 0) return 0;
    const transaction = decodeTransaction(operation);
    return transaction.type === 'publish' ? transaction.messages.length : 0;
  } catch {
    return 0;
  }
}
