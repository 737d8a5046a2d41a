/**
 * The node's Raft layer (DESIGN §2): the __system group (every node a voter or a learner) and the
 * groups of the topics this node takes part in, with their state machines, the live registry they
 * make up, admin proposals (forwarded to the leader from any node), and the leader's duties — adding
 * nodes that must follow a group as learners, and the global ledger's replication task (seed 001
 * §4.3: list partitions; last replicated height of each; fetch newer certified blocks; propose).
 */
import type { CborValue } from '../codec/index.js';
import { decodeWith } from '../codec/index.js';
import type { Registry } from '../contracts/registry.js';
import type { RegistryIndexes } from '../consensus/pbft/types.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  decodeRegistryResult,
  encodeRegistryEntry,
  encodeRegistryResult,
  topicGroupId,
} from '../registry/admin-transactions.js';
import type { AdminTransaction, RegistryResult } from '../registry/admin-transactions.js';
import type { Genesis } from '../registry/genesis-schema.js';
import { LiveRegistry } from '../registry/live-registry.js';
import { RegistryView } from '../registry/registry-view.js';
import type { TopicEntry } from '../registry/registry-view.js';
import { adminClockWindowMs } from '../registry/nonce-window.js';
import { SystemStateMachine, raftVotersFrom } from '../registry/system-state.js';
import type { SystemTopic } from '../registry/system-state.js';
import { TopicStateMachine, contractTopic } from '../registry/topic-state.js';
import type { TopicView } from '../registry/topic-state.js';
import type { Logger } from '../runtime/logger.js';
import type { GroupStatus } from '../protocol/client-methods.js';
import { partitionGroupId } from '../contracts/registry.js';
import { CatalogIndex } from './catalog-index.js';
import { backfillTopic } from './global-ledger-backfill.js';
import { GlobalLedgerDatabase } from './global-ledger-database.js';
import { isGroupStorageError } from './group-files.js';
import { RaftGroup } from './raft-group.js';

export interface RegistryHostOptions {
  readonly selfNodeId: string;
  readonly genesis: Genesis;
  readonly dataDirectory: string;
  readonly logger: Logger;
  readonly sendRaft: (nodeId: string, groupId: string, bytes: Uint8Array) => void;
  /** A request to another node over its consensus link. */
  readonly requestPeer: (nodeId: string, method: string, body: CborValue) => Promise<CborValue>;
  /** Whether this node has a consensus link to `nodeId` right now (a request would be sent). */
  readonly linked: (nodeId: string) => boolean;
  /** Encoded certified blocks of a partition this node hosts, from `fromHeight`, or undefined. */
  readonly localBlocks: (partition: string, fromHeight: number, count: number) => Uint8Array[] | undefined;
  readonly electionTicks?: number;
  /**
   * Raft groups (__system and topics) take a snapshot and compact their log every this many applied
   * entries (node config `raft.snapshotEvery`). Default `raftSnapshotEveryDefault`.
   */
  readonly snapshotEvery?: number;
  /** ... or once the entries since the last one hold this many bytes (`raft.snapshotBytes`). */
  readonly snapshotBytes?: number;
  /** How often the leader's replication task runs. Default 200 ms. */
  readonly replicationIntervalMs?: number;
}

interface HostedTopic {
  readonly machine: TopicStateMachine;
  readonly group: RaftGroup;
  readonly ledger: GlobalLedgerDatabase;
}

/**
 * A topic group this node takes part in but could not open, or stopped because its storage failed:
 * it is down on this node alone until a reopen succeeds (its log, on disk and at the other
 * replicas, still holds every entry, so the reopened group replays and catches up).
 */
interface FailedTopic {
  readonly error: Error;
  readonly attempts: number;
  /** `Date.now()` from which opening is tried again. */
  readonly retryAt: number;
  /** What the group had applied here before it stopped, so the registry does not go back meanwhile. */
  readonly lastView: TopicView | undefined;
  readonly lastApplied: number;
}

/** Reopening a failed topic group: after 1 s, doubling up to 30 s (a log line per attempt). */
const reopenDelayMsInitial = 1_000;
const reopenDelayMsMax = 30_000;

/**
 * Entries between snapshots of a Raft group's state. A topic entry carries up to 2 MiB of blocks, so
 * the log a topic group keeps is bounded by about this many entries (blocks are kept in the global
 * ledger, not in the snapshot); a node further behind receives a snapshot and backfills its ledger.
 */
export const raftSnapshotEveryDefault = 1000;
/** A topic's entries carry blocks: a log of 16 MiB is a few hundred blocks' worth. */
export const raftSnapshotBytesDefault = 16 * 1024 * 1024;

/** Blocks copied per proposal, and bytes, so an entry stays well inside the Raft entry limit. */
const replicationBlocksMax = 64;
const replicationBytesMax = 2 * 1024 * 1024;

export class RegistryHost {
  readonly registry: LiveRegistry;
  readonly system: SystemStateMachine;
  /** The full-text index of the data catalog, following `system` (what catalogSearch reads). */
  readonly catalog: CatalogIndex;
  private readonly systemGroup: RaftGroup;
  /** Topic groups open here: one per registered topic this node follows, removed if it fails. */
  private readonly topics = new Map<string, HostedTopic>();
  /** Topic groups waiting to be reopened: one per registered topic, removed once open or not ours. */
  private readonly failedTopics = new Map<string, FailedTopic>();
  /** Set if __system's own storage failed: the group is stopped for good (restart the node). */
  private systemFailure: Error | undefined;
  // Listeners: one per subscriber, removed by the function their `on…` method returns.
  private readonly changeListeners = new Set<() => void>();
  private readonly advanceListeners = new Set<() => void>();
  private readonly adminListeners = new Set<(transaction: AdminTransaction, outcome: string) => void>();
  private replicationTimer: NodeJS.Timeout | undefined;
  private replicating = false;
  /** Groups with a membership change under way: at most one per group hosted here. */
  private membershipChanging = new Set<string>();
  private closed = false;

  constructor(private readonly options: RegistryHostOptions) {
    this.system = new SystemStateMachine(options.genesis);
    // Before the Raft group replays the log into the state machine: the index hears every change.
    this.catalog = CatalogIndex.follow(this.system);
    this.registry = new LiveRegistry(this.buildView());
    const genesisMembers = raftVotersFrom(options.genesis.nodes.map((node) => node.id));
    this.systemGroup = new RaftGroup({
      groupId: SYSTEM_GROUP,
      selfNodeId: options.selfNodeId,
      ...genesisMembers,
      dataDirectory: options.dataDirectory,
      stateMachine: this.system,
      snapshotEvery: options.snapshotEvery ?? raftSnapshotEveryDefault,
      snapshotBytes: options.snapshotBytes ?? raftSnapshotBytesDefault,
      sendTo: (nodeId, bytes) => options.sendRaft(nodeId, SYSTEM_GROUP, bytes),
      ...(options.electionTicks === undefined ? {} : { electionTicks: options.electionTicks }),
      log: (level, message, fields) => options.logger[level]({ group: SYSTEM_GROUP, ...fields }, message),
      onStorageFailure: (error) => {
        this.systemFailure = error;
        options.logger.error(
          { group: SYSTEM_GROUP, error: error.message },
          'the __system group stopped on this node: its storage failed; the registry no longer follows the network until the node restarts',
        );
      },
    });
    this.system.onChange(() => this.refresh());
    this.systemGroup.onApplied(() => {
      for (const topic of this.topics.values()) topic.group.resume();
      this.advanced();
    });
    this.refresh();
  }

  /** Called whenever any registry group applied more (partitions holding batches may go on). */
  onAdvance(listener: () => void): () => void {
    this.advanceListeners.add(listener);
    return () => this.advanceListeners.delete(listener);
  }

  private advanced(): void {
    for (const listener of this.advanceListeners) listener();
  }

  /** Called after the registry changed (a new version is in `registry`). */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  start(): void {
    this.replicationTimer = setInterval(
      () => void this.leaderDuties(),
      this.options.replicationIntervalMs ?? 200,
    );
  }

  tick(): void {
    this.systemGroup.tick();
    for (const topic of this.topics.values()) topic.group.tick();
  }

  receive(groupId: string, bytes: Uint8Array): void {
    if (groupId === SYSTEM_GROUP) {
      this.systemGroup.receive(bytes);
      return;
    }
    if (!groupId.startsWith('topic:')) return;
    const name = groupId.slice('topic:'.length);
    // A leader adds the replicas of new partitions as learners: their first append creates the group.
    const topic = this.topics.get(name) ?? this.openTopic(name);
    topic?.group.receive(bytes);
  }

  /** The __system index this node has applied (what a catalog answer was read at). */
  get systemApplied(): number {
    return this.systemGroup.appliedIndex;
  }

  // ---- what the PBFT partitions read ----

  /** The registry indexes a partition of `topic` has applied, for its primary to name. */
  indexes(topic: string): RegistryIndexes {
    const topicIndex =
      this.topics.get(topic)?.group.appliedIndex ?? this.failedTopics.get(topic)?.lastApplied ?? 0;
    return { system: this.systemGroup.appliedIndex, topic: topicIndex };
  }

  /**
   * The registry a batch of `topic` executes against, at the indexes it names; undefined while this
   * node has not applied them yet (the partition holds the batch until it has).
   */
  registryAt(topic: string, systemIndex: number, topicIndex: number): Registry | undefined {
    const hosted = this.topics.get(topic);
    if (this.systemGroup.appliedIndex < systemIndex) return undefined;
    if (topicIndex > 0 && (hosted === undefined || hosted.group.appliedIndex < topicIndex)) return undefined;
    const system = this.system.at(systemIndex);
    const config = hosted?.machine.at(topicIndex).config ?? system.topics.get(topic)?.config;
    const contract = config === undefined ? undefined : contractTopic(config);
    return {
      network: system.network,
      organization: (id) => system.organizations.get(id),
      topic: (name) => (name === topic ? contract : undefined),
    };
  }

  globalLedger(topic: string): GlobalLedgerDatabase | undefined {
    return this.topics.get(topic)?.ledger;
  }

  topicMachine(topic: string): TopicStateMachine | undefined {
    return this.topics.get(topic)?.machine;
  }

  /**
   * Each registry group this node runs: leader, applied index, entries held; a group stopped here
   * because its storage failed also carries `failed` (the reason) and, for a topic group,
   * `retryInMs` until the next attempt to open it.
   */
  groupStatus(): GroupStatus[] {
    const system: GroupStatus = {
      group: SYSTEM_GROUP,
      leader: this.systemGroup.leader ?? '',
      applied: this.systemGroup.appliedIndex,
      ...(this.systemFailure === undefined ? {} : { failed: this.systemFailure.message }),
    };
    const groups: GroupStatus[] = [system];
    for (const [name, topic] of this.topics) {
      groups.push({
        group: topicGroupId(name),
        leader: topic.group.leader ?? '',
        applied: topic.group.appliedIndex,
        held: topic.group.heldEntries,
      });
    }
    const now = Date.now();
    for (const [name, failed] of this.failedTopics) {
      groups.push({
        group: topicGroupId(name),
        leader: '',
        applied: failed.lastApplied,
        failed: failed.error.message,
        retryInMs: Math.max(0, failed.retryAt - now),
      });
    }
    return groups;
  }

  /** Leader of a group as this node knows it ('' when none is known). */
  leaderOf(groupId: string): string {
    if (groupId === SYSTEM_GROUP) return this.systemGroup.leader ?? '';
    return this.topics.get(groupId.slice('topic:'.length))?.group.leader ?? '';
  }

  /**
   * The Raft groups open on this node (__system, then its topics) as metrics read them: whether
   * this node leads each, what it applied, its term. A topic group stopped here is left out (it
   * has no core to ask); __system stays, stopped or not.
   */
  raftGroups(): { group: string; leader: boolean; applied: number; term: number }[] {
    const groups = [{ group: SYSTEM_GROUP, raft: this.systemGroup }];
    for (const [name, topic] of this.topics) groups.push({ group: topicGroupId(name), raft: topic.group });
    return groups.map(({ group, raft }) => ({
      group,
      leader: raft.isLeader,
      applied: raft.appliedIndex,
      term: raft.term,
    }));
  }

  /** The global ledger of each topic group open here, by topic name. */
  globalLedgers(): [topic: string, ledger: GlobalLedgerDatabase][] {
    return [...this.topics].map(([name, topic]) => [name, topic.ledger]);
  }

  /**
   * Why __system cannot serve on this node, or undefined if it can: its storage failed here, or
   * this node knows no leader (it cannot commit or forward an admin transaction then).
   */
  systemUnready(): string | undefined {
    if (this.systemFailure !== undefined) return `the __system group stopped: ${this.systemFailure.message}`;
    if (this.systemGroup.leader === null) return 'no __system Raft leader known';
    return undefined;
  }

  // ---- proposals ----

  /**
   * Submits a signed admin transaction: to __system or to its topic's group, on the leader (this
   * node or, one hop away, the leader this node knows). Resolves with the state machine's result,
   * which `onAdmin` listeners hear on the node the transaction entered the network at (`forward`).
   */
  async submitAdmin(
    transactionBytes: Uint8Array,
    forward = true,
  ): Promise<{ index: number; group: string; result: RegistryResult }> {
    const submitted = await this.submitAdminOnce(transactionBytes, forward);
    if (forward && this.adminListeners.size > 0) {
      const transaction = decodeWith(adminTransactionSchema, transactionBytes, { maxBytes: 256 * 1024 });
      const outcome = submitted.result.status === 'OK' ? 'OK' : submitted.result.reason;
      for (const listener of this.adminListeners) listener(transaction, outcome);
    }
    return submitted;
  }

  /** Called with each admin transaction submitted through this node and its result ('OK' or the reason). */
  onAdmin(listener: (transaction: AdminTransaction, outcome: string) => void): () => void {
    this.adminListeners.add(listener);
    return () => this.adminListeners.delete(listener);
  }

  private async submitAdminOnce(
    transactionBytes: Uint8Array,
    forward: boolean,
  ): Promise<{ index: number; group: string; result: RegistryResult }> {
    const transaction = decodeWith(adminTransactionSchema, transactionBytes, { maxBytes: 256 * 1024 });
    refuseFutureTimestamp(transaction.timestamp, Date.now());
    const group = transaction.group;
    if (group === SYSTEM_GROUP) {
      const { index, result } = await this.propose(
        group,
        encodeRegistryEntry({ type: 'admin', transaction }),
        forward,
      );
      return { index, group, result: decodeRegistryResult(result) };
    }
    // The topic leader names the __system index: it has applied every index an earlier entry used
    // (it held each entry until it had), so the index it names never goes back, as the group requires.
    const local = this.hostedGroup(group);
    if (local?.isLeader === true || !forward) {
      const entry = encodeRegistryEntry({
        type: 'admin',
        transaction,
        systemIndex: this.systemGroup.appliedIndex,
      });
      const { index, result } = await this.propose(group, entry, false);
      return { index, group, result: decodeRegistryResult(result) };
    }
    const reply = (await this.onLeader(group, 'adminSubmit', { transaction: transactionBytes })) as Record<
      string,
      CborValue
    >;
    const index = reply['index'];
    const result = reply['result'];
    if (typeof index !== 'number' || !(result instanceof Uint8Array)) {
      throw new LedgerbusError(ErrorCode.RemoteError, 'the topic leader answered adminSubmit oddly');
    }
    return { index, group, result: decodeRegistryResult(result) };
  }

  /** Serves another node's `adminSubmit`: this node must lead the group. */
  async adminSubmitForPeer(transactionBytes: Uint8Array): Promise<{ index: number; result: Uint8Array }> {
    const { index, result } = await this.submitAdmin(transactionBytes, false);
    return { index, result: encodeRegistryResult(result) };
  }

  /** Sends a request to the group's leader as this node knows it, or else to each voter in turn. */
  private async onLeader(groupId: string, method: string, body: CborValue): Promise<CborValue> {
    const known = this.hostedGroup(groupId)?.leader ?? null;
    const candidates =
      known !== null && known !== this.options.selfNodeId
        ? [known]
        : this.votersOf(groupId).filter((id) => id !== this.options.selfNodeId);
    let lastError: unknown = new LedgerbusError(ErrorCode.NotLeader, `${groupId} has no leader yet; retry`, {
      retriable: true,
      ...this.leaderDetails(groupId),
    });
    for (const nodeId of candidates) {
      if (!this.options.linked(nodeId)) {
        // Not sent, so certainly not proposed: NOT_LEADER tells the caller that asking again is safe.
        lastError = new LedgerbusError(
          ErrorCode.NotLeader,
          `${nodeId} (of ${groupId}) is not reachable from ${this.options.selfNodeId} right now; retry`,
          { retriable: true, ...this.leaderDetails(groupId) },
        );
        continue;
      }
      try {
        return await this.options.requestPeer(nodeId, method, body);
      } catch (error) {
        lastError = error;
        if (!isLedgerbusError(error) || (!error.retriable && error.code !== ErrorCode.ConnectionClosed))
          throw error;
      }
    }
    throw lastError;
  }

  /**
   * Proposes on the group's leader; `forward` allows one hop: to the leader this node knows, or, when
   * it knows none (it does not follow that topic's group), to the group's voters in turn.
   */
  async propose(
    groupId: string,
    data: Uint8Array,
    forward: boolean,
  ): Promise<{ index: number; result: Uint8Array }> {
    const local = this.hostedGroup(groupId);
    if (local !== undefined && (local.isLeader || !forward)) return local.propose(data);
    if (!forward)
      throw new LedgerbusError(ErrorCode.NotLeader, `this node does not follow ${groupId}`, {
        retriable: true,
        ...this.leaderDetails(groupId),
      });
    const reply = (await this.onLeader(groupId, 'raftPropose', { group: groupId, data })) as Record<
      string,
      CborValue
    >;
    const index = reply['index'];
    const result = reply['result'];
    if (typeof index !== 'number' || !(result instanceof Uint8Array)) {
      throw new LedgerbusError(ErrorCode.RemoteError, `the leader of ${groupId} answered raftPropose oddly`);
    }
    return { index, result };
  }

  /**
   * `details` of a NOT_LEADER about `groupId`: the leader this node knows, when it knows one other
   * than itself (a caller asks that node; this one has just found it does not lead).
   */
  private leaderDetails(groupId: string): { details?: { leader: string } } {
    const leader = this.hostedGroup(groupId)?.leader ?? null;
    return leader === null || leader === this.options.selfNodeId ? {} : { details: { leader } };
  }

  private hostedGroup(groupId: string): RaftGroup | undefined {
    if (groupId === SYSTEM_GROUP) return this.systemGroup;
    if (groupId.startsWith('topic:')) return this.topics.get(groupId.slice('topic:'.length))?.group;
    return undefined;
  }

  private votersOf(groupId: string): string[] {
    if (groupId === SYSTEM_GROUP) return [...this.systemGroup.members.voters];
    const topic = this.system.latest.topics.get(groupId.slice('topic:'.length));
    if (topic === undefined)
      throw new LedgerbusError(ErrorCode.TopicNotFound, `no topic for group ${groupId}`);
    return [...topic.voters];
  }

  /** Waits until this node has applied `index` of `groupId` (read-your-writes after a proposal). */
  async waitApplied(groupId: string, index: number, timeoutMs = 10_000): Promise<void> {
    await this.hostedGroup(groupId)?.waitApplied(index, timeoutMs);
  }

  // ---- topics ----

  private refresh(): void {
    const view = this.system.latest;
    for (const [name, topic] of view.topics) {
      if (this.topics.has(name)) continue;
      if (this.takesPart(topic)) this.openTopic(name);
    }
    for (const topic of this.topics.values()) topic.group.resume();
    this.registry.update(this.buildView());
    for (const listener of this.changeListeners) {
      // This runs inside __system's apply: a listener's failure (a partition that cannot open its
      // storage, say) is this node's alone and must not pass for a failure of the entry.
      try {
        listener();
      } catch (error) {
        this.options.logger.error(
          { group: SYSTEM_GROUP, error: (error as Error).message },
          'a registry change listener failed',
        );
      }
    }
  }

  private takesPart(topic: SystemTopic): boolean {
    const self = this.options.selfNodeId;
    return (
      topic.voters.includes(self) ||
      topic.learners.includes(self) ||
      topic.config.partitions.some((partition) => partition.replicas.some((replica) => replica.id === self))
    );
  }

  /**
   * Opens the topic's group (its global ledger, its Raft log replayed into a new state machine).
   * Called while __system applies an entry, or on a message of a group this node was just added to:
   * a failure here is this node's storage, not the entry, so it is contained — the topic is marked
   * failed (logged at error, in `groupStatus`) and reopened later — and never thrown into the apply.
   */
  private openTopic(name: string): HostedTopic | undefined {
    if (this.closed) return undefined;
    const topic = this.system.latest.topics.get(name);
    if (topic === undefined) return undefined;
    const failed = this.failedTopics.get(name);
    if (failed !== undefined && Date.now() < failed.retryAt) return undefined;
    const groupId = topicGroupId(name);
    let ledger: GlobalLedgerDatabase | undefined;
    let hosted: HostedTopic;
    try {
      ledger = GlobalLedgerDatabase.open(this.options.dataDirectory, name);
      const machine = new TopicStateMachine(
        topic,
        {
          network: this.options.genesis.network,
          at: (index) => this.system.at(index),
          applied: () => this.systemGroup.appliedIndex,
        },
        ledger,
      );
      machine.onChange(() => this.refreshSoon());
      const group = new RaftGroup({
        groupId,
        selfNodeId: this.options.selfNodeId,
        voters: topic.voters,
        learners: topic.learners,
        dataDirectory: this.options.dataDirectory,
        stateMachine: machine,
        snapshotEvery: this.options.snapshotEvery ?? raftSnapshotEveryDefault,
        snapshotBytes: this.options.snapshotBytes ?? raftSnapshotBytesDefault,
        sendTo: (nodeId, bytes) => this.options.sendRaft(nodeId, groupId, bytes),
        ...(this.options.electionTicks === undefined ? {} : { electionTicks: this.options.electionTicks }),
        log: (level, message, fields) => this.options.logger[level]({ group: groupId, ...fields }, message),
        onStorageFailure: (error) => this.topicStopped(name, error),
      });
      hosted = { machine, ledger, group };
    } catch (error) {
      closeQuietly(ledger);
      this.topicFailed(name, error, failed, undefined, 0);
      return undefined;
    }
    hosted.group.onApplied(() => this.advanced());
    this.topics.set(name, hosted);
    this.failedTopics.delete(name);
    this.options.logger.info({ topic: name, applied: hosted.group.appliedIndex }, 'topic group opened');
    this.refreshSoon();
    return hosted;
  }

  /** A running topic group stopped because its storage failed (see `RaftGroup` onStorageFailure). */
  private topicStopped(name: string, error: Error): void {
    const hosted = this.topics.get(name);
    if (hosted === undefined) return;
    this.topics.delete(name);
    closeQuietly(hosted.ledger);
    this.topicFailed(name, error, undefined, hosted.machine.latest, hosted.group.appliedIndex);
    this.refreshSoon();
  }

  private topicFailed(
    name: string,
    error: unknown,
    previous: FailedTopic | undefined,
    lastView: TopicView | undefined,
    lastApplied: number,
  ): void {
    const attempts = (previous?.attempts ?? 0) + 1;
    const delayMs = Math.min(reopenDelayMsInitial * 2 ** (attempts - 1), reopenDelayMsMax);
    const failure = error instanceof Error ? error : new Error(String(error));
    this.failedTopics.set(name, {
      error: failure,
      attempts,
      retryAt: Date.now() + delayMs,
      lastView: lastView ?? previous?.lastView,
      lastApplied: Math.max(lastApplied, previous?.lastApplied ?? 0),
    });
    this.options.logger.error(
      {
        group: topicGroupId(name),
        error: failure.message,
        storage: isGroupStorageError(failure),
        attempts,
        retryInMs: delayMs,
        ...(isGroupStorageError(failure) ? {} : { stack: failure.stack }),
      },
      'topic group stopped on this node; the other groups go on, and opening it is retried',
    );
  }

  /** Leader-duty tick: tries again to open failed topic groups whose delay is over. */
  private reopenFailedTopics(): void {
    const now = Date.now();
    for (const [name, failed] of this.failedTopics) {
      const topic = this.system.latest.topics.get(name);
      if (topic === undefined || !this.takesPart(topic)) {
        this.failedTopics.delete(name);
        continue;
      }
      if (now >= failed.retryAt) this.openTopic(name);
    }
  }

  private refreshPending = false;

  /** Topic changes arrive inside a Raft Ready; the registry is rebuilt once, right after. */
  private refreshSoon(): void {
    if (this.refreshPending) return;
    this.refreshPending = true;
    queueMicrotask(() => {
      this.refreshPending = false;
      if (!this.closed) this.refresh();
    });
  }

  private buildView(): RegistryView {
    const system = this.system.latest;
    const entries: TopicEntry[] = [];
    for (const [name, topic] of system.topics) {
      const hosted = this.topics.get(name);
      const failed = this.failedTopics.get(name);
      const latest = hosted?.machine.latest ?? failed?.lastView;
      entries.push({
        config: latest?.config ?? topic.config,
        epochs: latest?.epochs ?? topic.config.partitions.map((partition) => [partition]),
        topicIndex: hosted?.group.appliedIndex ?? failed?.lastApplied ?? 0,
        voters: topic.voters,
        learners: topic.learners,
      });
    }
    return new RegistryView(system, entries);
  }

  // ---- leader duties ----

  private async leaderDuties(): Promise<void> {
    if (this.closed) return;
    this.reopenFailedTopics();
    void this.backfill();
    if (this.systemGroup.isLeader) {
      await this.addLearners(SYSTEM_GROUP, this.systemGroup, [...this.system.latest.nodes.keys()]);
    }
    for (const [name, topic] of this.topics) {
      if (!topic.group.isLeader) continue;
      const replicas = topic.machine.latest.config.partitions.flatMap((partition) =>
        partition.replicas.map((replica) => replica.id),
      );
      await this.addLearners(topicGroupId(name), topic.group, replicas);
    }
    if (this.replicating) return;
    this.replicating = true;
    try {
      for (const [name, topic] of this.topics) {
        if (topic.group.isLeader) await this.replicate(name, topic);
      }
    } finally {
      this.replicating = false;
    }
  }

  private backfilling = false;

  /** Every node, leader or not: fills its global ledgers' holes below their heads (see the module). */
  private async backfill(): Promise<void> {
    if (this.backfilling) return;
    this.backfilling = true;
    try {
      for (const [name, topic] of this.topics) {
        if (this.closed) return;
        const entry = this.system.latest.topics.get(name);
        const members = entry === undefined ? [] : [...entry.voters, ...entry.learners];
        try {
          await backfillTopic(name, topic.machine, topic.ledger, members, {
            localBlocks: this.options.localBlocks,
            requestPeer: this.options.requestPeer,
            selfNodeId: this.options.selfNodeId,
            logger: this.options.logger,
          });
        } catch (error) {
          // This node's ledger storage: reported, and tried again on the next pass.
          this.options.logger.warn(
            { topic: name, error: (error as Error).message },
            'could not fill the global ledger',
          );
        }
      }
    } finally {
      this.backfilling = false;
    }
  }

  /** Makes every node that must follow a group a learner of it, one change at a time (thesis §4.1). */
  private async addLearners(groupId: string, group: RaftGroup, required: readonly string[]): Promise<void> {
    if (this.membershipChanging.has(groupId)) return;
    const members = group.members;
    const missing = required.find((id) => !members.voters.includes(id) && !members.learners.includes(id));
    if (missing === undefined) return;
    this.membershipChanging.add(groupId);
    try {
      await group.changeMembership({ type: 'addLearner', id: missing });
      this.options.logger.info({ group: groupId, node: missing }, 'added a learner');
    } catch (error) {
      this.options.logger.debug(
        { group: groupId, node: missing, error: (error as Error).message },
        'learner not added yet',
      );
    } finally {
      this.membershipChanging.delete(groupId);
    }
  }

  /**
   * One round of seed 001 §4.3 for a topic: for each partition, the last height the global ledger
   * holds, then newer certified blocks (from this node's own replica, else from a replica node),
   * proposed as one entry per run. Followers re-verify every block on apply.
   */
  private async replicate(name: string, topic: HostedTopic): Promise<void> {
    const config = topic.machine.latest.config;
    for (let partition = 0; partition < config.partitions.length; partition++) {
      if (!topic.group.isLeader || this.closed) return;
      const groupId = partitionGroupId(name, partition);
      const from = (topic.machine.head(groupId)?.height ?? 0) + 1;
      const blocks = await this.fetchBlocks(
        groupId,
        config.partitions[partition]!.replicas.map((r) => r.id),
        from,
      );
      if (blocks.length === 0) continue;
      try {
        const { result } = await topic.group.propose(
          encodeRegistryEntry({ type: 'blocks', partition: groupId, blocks }),
        );
        const decoded = decodeRegistryResult(result);
        if (decoded.status === 'REJECTED') {
          this.options.logger.warn({ partition: groupId, ...decoded }, 'replicated blocks were rejected');
        }
      } catch (error) {
        if (!isLedgerbusError(error)) throw error;
        this.options.logger.debug(
          { partition: groupId, error: error.message },
          'replication proposal failed',
        );
        return;
      }
    }
  }

  private async fetchBlocks(
    groupId: string,
    replicas: readonly string[],
    from: number,
  ): Promise<Uint8Array[]> {
    const local = this.options.localBlocks(groupId, from, replicationBlocksMax);
    if (local !== undefined) return capBytes(local);
    for (const nodeId of replicas) {
      if (nodeId === this.options.selfNodeId) continue;
      try {
        const reply = (await this.options.requestPeer(nodeId, 'blocks', {
          group: groupId,
          from,
          count: replicationBlocksMax,
        })) as Record<string, CborValue>;
        const blocks = reply['blocks'];
        if (Array.isArray(blocks))
          return capBytes(blocks.filter((block): block is Uint8Array => block instanceof Uint8Array));
      } catch (error) {
        this.options.logger.debug(
          { partition: groupId, node: nodeId, error: (error as Error).message },
          'block fetch failed',
        );
      }
    }
    return [];
  }

  close(): void {
    this.closed = true;
    if (this.replicationTimer !== undefined) clearInterval(this.replicationTimer);
    this.systemGroup.close();
    this.catalog.close();
    for (const topic of this.topics.values()) {
      topic.group.close();
      topic.ledger.close();
    }
  }
}

function closeQuietly(ledger: GlobalLedgerDatabase | undefined): void {
  try {
    ledger?.close();
  } catch {
    // Closing what failed may fail too; the failure that matters is already reported.
  }
}

function capBytes(blocks: Uint8Array[]): Uint8Array[] {
  const kept: Uint8Array[] = [];
  let bytes = 0;
  for (const block of blocks) {
    if (kept.length > 0 && bytes + block.length > replicationBytesMax) break;
    kept.push(block);
    bytes += block.length;
  }
  return kept;
}

/**
 * A transaction stamped further ahead of this node's clock than the replay window would, once
 * applied, make its organization's later transactions STALE until the clock caught up
 * (nonce-window.ts): refused where it enters, before it reaches the log.
 */
export function refuseFutureTimestamp(timestamp: number, now: number): void {
  if (timestamp > now + adminClockWindowMs) {
    throw new LedgerbusError(
      ErrorCode.ClockSkew,
      `the admin transaction is stamped ${new Date(Math.min(timestamp, 8.64e15)).toISOString()}, ` +
        `more than ${adminClockWindowMs / 60_000} min ahead of this node's clock (${new Date(now).toISOString()})`,
    );
  }
}
