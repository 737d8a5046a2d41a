/**
 * A topic's Raft group state machine (DESIGN §2, layer 2): the topic's configuration — partitions
 * with their replica sets by epoch, ACLs, policy — changed by signed admin transactions, and the
 * GLOBAL LEDGER: the union of the partitions' certified blocks, copied by the leader's replication
 * task (seed 001 §4.3).
 *
 * Raft tolerates crashes, not lies (DESIGN §11): every replica re-verifies each copied block — its
 * commit certificate against the partition's replica keys for the block's epoch, its chain link and
 * its Merkle roots — before applying it. A forged, uncertified or out-of-order block is rejected by
 * every replica identically (verification is deterministic), so a faulty leader can delay the
 * global ledger but never put a block in it that the partition did not certify.
 *
 * Admin transactions are authorized against the __system registry at the index the entry names;
 * `ready(data)` tells the driver to hold an entry until __system has applied that index here.
 */
import { bytesEqual, decodeWith, encodeWith, t, toHex } from '../codec/index.js';
import { SigningDomain } from '../crypto/index.js';
import { blockHash, decodeBlock, headerSchema, verifyBlock } from '../ledger/block.js';
import type { Block, BlockHeader, GroupMembership } from '../ledger/block.js';
import { partitionGroupId } from '../contracts/registry.js';
import type { Topic } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import {
  AdminReject,
  decodeRegistryEntry,
  encodeRegistryResult,
  topicGroupId,
} from './admin-transactions.js';
import type { AdminTransaction, RegistryResult } from './admin-transactions.js';
import { indexBlock } from './global-index.js';
import type { BlockIndex } from './global-index.js';
import {
  authenticate,
  checkOrganizations,
  checkPolicy,
  checkReplicas,
  guarded,
  partitionConfigSchema,
  hasRole,
  rejected,
  requireApproved,
  topicConfigSchema,
} from './system-state.js';
import type { PartitionConfig, SystemTopic, SystemView, TopicConfig } from './system-state.js';
import { AdminNonceWindow, replayWindowSnapshotSchema } from './nonce-window.js';
import type { AdminReplayGuard } from './nonce-window.js';
import { Versions } from './versions.js';

/** Where verified global-ledger blocks go (the node's SQLite; memory in tests). Must be idempotent. */
export interface GlobalLedgerSink {
  append(entry: {
    readonly partition: string;
    readonly block: Block;
    readonly bytes: Uint8Array;
    /** blockHash(block.header). */
    readonly hash: Uint8Array;
    readonly index: BlockIndex;
    readonly raftIndex: number;
  }): void;
  /**
   * Makes every append so far durable, before the Raft log that would replay them is compacted;
   * false if that cannot be done now (the log is then kept). Absent: appends are durable already.
   */
  flush?(): boolean;
}

/** The topic at one index of its group. */
export interface TopicView {
  readonly index: number;
  readonly config: TopicConfig;
  /** Every epoch of every partition, oldest first: certificates of old blocks verify against them. */
  readonly epochs: readonly (readonly PartitionConfig[])[];
  readonly nonces: AdminReplayGuard;
  /**
   * The __system index the last admin entry was authorized at. Entries may not go back before it
   * (nor before the topic's creation), so a leader cannot pick a registry older than one already used.
   */
  readonly systemIndex: number;
}

export interface PartitionHead {
  readonly height: number;
  readonly header: BlockHeader;
  readonly hash: Uint8Array;
}

/** The contract's view of a topic configuration. */
export function contractTopic(config: TopicConfig): Topic {
  return {
    name: config.name,
    partitionCount: config.partitions.length,
    producers: new Set(config.producers),
    consumers: new Set(config.consumers),
    policy: config.policy,
  };
}

class BlockRunRefusal extends Error {
  constructor(
    message: string,
    readonly reason: AdminReject = AdminReject.BadBlock,
  ) {
    super(message);
  }
}

export class TopicStateMachine {
  readonly groupId: string;
  /** One per admin change of the topic, kept for good: grows with admin changes only, not with blocks. */
  private readonly versions: Versions<TopicView>;
  /** One per partition of the topic. */
  private readonly heads = new Map<string, PartitionHead>();
  /** One per subscriber, removed by the function `onChange` returns. */
  private readonly listeners = new Set<(view: TopicView) => void>();
  /** One per subscriber, removed by the function `onBlocks` returns. */
  private readonly blockListeners = new Set<(partition: string, height: number) => void>();

  /** The network's signing domain: admin transactions and block certificates verify only in it. */
  private readonly signing: SigningDomain;
  /**
   * The replay window every version shares, grown in place: replays are checked against the latest
   * version only, so a transaction adds one entry instead of copying every nonce before it. One per
   * admin transaction of the topic, kept while inside its organization's clock window (nonce-window.ts).
   */
  private nonces = new AdminNonceWindow();

  constructor(
    private readonly topic: SystemTopic,
    /** The network, the __system registry at an index, and how far __system has applied here. */
    private readonly system: { readonly network: string; at(index: number): SystemView; applied(): number },
    private readonly sink: GlobalLedgerSink,
  ) {
    this.groupId = topicGroupId(topic.config.name);
    this.signing = SigningDomain.of(system.network);
    this.versions = new Versions(this.initialView());
  }

  private initialView(): TopicView {
    return {
      index: 0,
      config: this.topic.config,
      epochs: this.topic.config.partitions.map((partition) => [partition]),
      nonces: this.nonces,
      systemIndex: this.topic.createdAt,
    };
  }

  get name(): string {
    return this.topic.config.name;
  }

  get latest(): TopicView {
    return this.versions.latest;
  }

  at(index: number): TopicView {
    return this.versions.at(index);
  }

  /** Last globally replicated block of a partition (height 0: none yet). */
  head(partition: string): PartitionHead | undefined {
    return this.heads.get(partition);
  }

  onChange(listener: (view: TopicView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onBlocks(listener: (partition: string, height: number) => void): () => void {
    this.blockListeners.add(listener);
    return () => this.blockListeners.delete(listener);
  }

  /** False while the entry names a __system index this node has not applied yet. */
  ready(data: Uint8Array): boolean {
    if (data.length === 0) return true;
    try {
      const entry = decodeRegistryEntry(data);
      return entry.type !== 'admin' || (entry.systemIndex ?? 0) <= this.system.applied();
    } catch {
      return true;
    }
  }

  apply(index: number, data: Uint8Array): Uint8Array {
    if (data.length === 0) return encodeRegistryResult({ status: 'OK' });
    let entry;
    try {
      entry = decodeRegistryEntry(data);
    } catch (error) {
      return encodeRegistryResult(rejected(AdminReject.Malformed, (error as Error).message));
    }
    if (entry.type === 'blocks')
      return encodeRegistryResult(this.applyBlocks(index, entry.partition, entry.blocks));
    const systemIndex = entry.systemIndex;
    if (systemIndex === undefined) {
      return encodeRegistryResult(
        rejected(AdminReject.Malformed, 'a topic admin entry must name a __system index'),
      );
    }
    if (systemIndex < this.versions.latest.systemIndex) {
      return encodeRegistryResult(
        rejected(
          AdminReject.Malformed,
          `__system index ${systemIndex} is older than ${this.versions.latest.systemIndex}, already used`,
        ),
      );
    }
    const result = guarded(() =>
      this.applyAdmin(index, entry.transaction, this.system.at(systemIndex), systemIndex),
    );
    if (result.status === 'OK') for (const listener of this.listeners) listener(this.versions.latest);
    return encodeRegistryResult(result);
  }

  private applyAdmin(
    index: number,
    transaction: AdminTransaction,
    system: SystemView,
    systemIndex: number,
  ): RegistryResult {
    const current = this.versions.latest;
    const actor = requireApproved(
      authenticate(
        { network: this.signing.network, organizations: system.organizations, nonces: current.nonces },
        transaction,
        this.groupId,
      ),
    );
    if (current.config.owner !== actor.id && !hasRole(actor, 'supervisor')) {
      return rejected(AdminReject.NotAllowed, `only the owner of ${this.name} or a supervisor may change it`);
    }
    const action = transaction.action;
    let config = current.config;
    let epochs = current.epochs;
    switch (action.kind) {
      case 'addPartitions': {
        const existing = config.partitions.length;
        if (action.count <= existing || action.count !== existing + action.replicas.length) {
          return rejected(
            AdminReject.BadPartitionCount,
            `the new total must exceed ${existing} and add exactly ${action.replicas.length} replica sets`,
          );
        }
        for (const replicas of action.replicas) checkReplicas(system.nodes, replicas);
        const added = action.replicas.map((replicas) => ({ configEpoch: 0, replicas }));
        config = { ...config, partitions: [...config.partitions, ...added] };
        epochs = [...epochs, ...added.map((partition) => [partition])];
        break;
      }
      case 'setReplicas': {
        const partition = config.partitions[action.partition];
        if (partition === undefined)
          return rejected(AdminReject.PartitionUnknown, `partition ${action.partition}`);
        checkReplicas(system.nodes, action.replicas);
        const next = { configEpoch: partition.configEpoch + 1, replicas: action.replicas };
        const partitions = [...config.partitions];
        partitions[action.partition] = next;
        config = { ...config, partitions };
        epochs = epochs.map((history, p) => (p === action.partition ? [...history, next] : history));
        break;
      }
      case 'setAcl':
        checkOrganizations(system.organizations, [...action.producers, ...action.consumers]);
        config = { ...config, producers: [...action.producers], consumers: [...action.consumers] };
        break;
      case 'setPolicy':
        checkPolicy(action.policy);
        config = { ...config, policy: { ...action.policy } };
        break;
      default:
        return rejected(AdminReject.WrongGroup, `${action.kind} belongs in __system`);
    }
    this.versions.push(index, {
      index,
      config,
      epochs,
      nonces: this.recordNonce(transaction),
      systemIndex,
    });
    return { status: 'OK' };
  }

  private recordNonce(transaction: AdminTransaction): AdminNonceWindow {
    this.nonces.record(transaction);
    return this.nonces;
  }

  private applyBlocks(raftIndex: number, partition: string, encoded: readonly Uint8Array[]): RegistryResult {
    const view = this.versions.latest;
    const number = view.config.partitions.findIndex((_, p) => partitionGroupId(this.name, p) === partition);
    if (number < 0) return rejected(AdminReject.PartitionUnknown, partition);
    let applied = 0;
    try {
      for (const bytes of encoded) {
        const block = this.verified(partition, view.epochs[number]!, bytes);
        if (block === undefined) continue;
        const hash = blockHash(block.header);
        this.sink.append({ partition, block, bytes, hash, index: indexBlock(block), raftIndex });
        this.heads.set(partition, { height: block.header.height, header: block.header, hash });
        applied++;
      }
    } catch (error) {
      if (!(error instanceof BlockRunRefusal)) throw error;
      const head = this.heads.get(partition)?.height ?? 0;
      if (applied > 0) for (const listener of this.blockListeners) listener(partition, head);
      return rejected(error.reason, error.message);
    }
    if (applied > 0) {
      const head = this.heads.get(partition)!.height;
      for (const listener of this.blockListeners) listener(partition, head);
    }
    return { status: 'OK', detail: `${applied} blocks` };
  }

  /** The decoded block if it is the partition's next certified block; undefined if already held. */
  private verified(
    partition: string,
    epochs: readonly PartitionConfig[],
    bytes: Uint8Array,
  ): Block | undefined {
    let block: Block;
    try {
      block = decodeBlock(bytes);
    } catch (error) {
      throw new BlockRunRefusal(`undecodable block: ${(error as Error).message}`);
    }
    const header = block.header;
    const head = this.heads.get(partition);
    const expected = (head?.height ?? 0) + 1;
    if (header.height < expected) {
      // A new leader may copy again what its predecessor already committed: same block, no change.
      if (head !== undefined && header.height === head.height && bytesEqual(blockHash(header), head.hash)) {
        return undefined;
      }
      if (head !== undefined && header.height < head.height) return undefined;
      throw new BlockRunRefusal(`block ${partition}@${header.height} conflicts with the replicated one`);
    }
    if (header.height > expected)
      throw new BlockRunRefusal(
        `out of order: ${partition}@${header.height}, expected ${expected}`,
        AdminReject.OutOfOrder,
      );
    const epoch = epochs.find((candidate) => candidate.configEpoch === header.configEpoch);
    if (epoch === undefined) throw new BlockRunRefusal(`${partition} has no epoch ${header.configEpoch}`);
    const membership: GroupMembership = {
      signing: this.signing,
      partitionId: partition,
      configEpoch: epoch.configEpoch,
      members: new Map(epoch.replicas.map((replica) => [replica.id, replica.publicKey])),
    };
    try {
      verifyBlock(block, membership, head?.header);
    } catch (error) {
      if (isLedgerbusError(error))
        throw new BlockRunRefusal(`${partition}@${header.height}: ${error.code}: ${error.message}`);
      throw error;
    }
    return block;
  }

  /**
   * Before the Raft group compacts its log: the global ledger's appends must be durable, since the
   * log will no longer replay them. False (the log is kept this time) if the sink cannot flush now.
   */
  prepareSnapshot(): boolean {
    return this.sink.flush?.() ?? true;
  }

  /**
   * The whole topic state, without the blocks (they stay in the global ledger): every version of
   * the configuration — a PBFT batch names the topic index it was executed at, so `at(index)` must
   * still answer for indexes the snapshot covers — the nonces, and each partition's head.
   */
  snapshot(): Uint8Array {
    const versions = this.versions.all();
    const latest = this.versions.latest;
    return encodeWith(topicSnapshotSchema, {
      config: latest.config as ReturnType<typeof topicConfigSchema.parse>,
      epochs: copyEpochs(latest.epochs),
      replayWindow: this.nonces.toSnapshot(),
      systemIndex: latest.systemIndex,
      heads: [...this.heads].map(([partition, head]) => ({ partition, header: head.header })),
      history: versions.map((view) => ({
        index: view.index,
        config: view.config as ReturnType<typeof topicConfigSchema.parse>,
        epochs: copyEpochs(view.epochs),
        systemIndex: view.systemIndex,
      })),
    });
  }

  restore(index: number, data: Uint8Array): void {
    const snapshot = decodeWith(topicSnapshotSchema, data, { maxBytes: 64 * 1024 * 1024 });
    this.nonces =
      snapshot.replayWindow !== undefined
        ? AdminNonceWindow.fromSnapshot(snapshot.replayWindow)
        : AdminNonceWindow.fromLegacyNonces(snapshot.nonces ?? []);
    const latest: TopicView = {
      index,
      config: snapshot.config,
      epochs: snapshot.epochs,
      nonces: this.nonces,
      systemIndex: snapshot.systemIndex,
    };
    const history = snapshot.history ?? [];
    const first = history[0];
    if (first === undefined) this.versions.reset(index, latest);
    else {
      // Each version at the index it took effect, so at(i) answers as before for every i.
      this.versions.reset(first.index, { ...first, nonces: this.nonces });
      for (const view of history.slice(1)) this.versions.push(view.index, { ...view, nonces: this.nonces });
      if (this.versions.latestIndex !== index) this.versions.push(index, latest);
    }
    this.heads.clear();
    for (const head of snapshot.heads) {
      this.heads.set(head.partition, {
        height: head.header.height,
        header: head.header,
        hash: blockHash(head.header),
      });
    }
    for (const listener of this.listeners) listener(this.versions.latest);
  }

  /**
   * Checks a block this node's global ledger lacks below the partition's head (after a snapshot was
   * installed) exactly as `apply` checks a replicated one — its certificate against the partition's
   * replica keys of its epoch, its Merkle roots, its link to `previous` (the block below it; none
   * for height 1) — and returns it decoded with its hash. Throws LedgerbusError if it fails.
   */
  verifyMissing(
    partition: string,
    bytes: Uint8Array,
    previous: BlockHeader | undefined,
  ): PartitionHead & {
    readonly block: Block;
  } {
    const view = this.versions.latest;
    const number = view.config.partitions.findIndex((_, p) => partitionGroupId(this.name, p) === partition);
    if (number < 0)
      throw new LedgerbusError(ErrorCode.WrongGroup, `${partition} is not a partition of ${this.name}`);
    const block = decodeBlock(bytes);
    const epoch = view.epochs[number]!.find(
      (candidate) => candidate.configEpoch === block.header.configEpoch,
    );
    if (epoch === undefined) {
      throw new LedgerbusError(ErrorCode.NonMember, `${partition} has no epoch ${block.header.configEpoch}`);
    }
    verifyBlock(
      block,
      {
        signing: this.signing,
        partitionId: partition,
        configEpoch: epoch.configEpoch,
        members: new Map(epoch.replicas.map((replica) => [replica.id, replica.publicKey])),
      },
      previous,
    );
    return { block, height: block.header.height, header: block.header, hash: blockHash(block.header) };
  }

  /** For logs: the heads as partition → height. */
  headHeights(): Record<string, number> {
    const heights: Record<string, number> = {};
    for (const [partition, head] of this.heads) heights[partition] = head.height;
    return heights;
  }

  /** Hex block hash of each head (diagnostics and tests). */
  headHashes(): Record<string, string> {
    const hashes: Record<string, string> = {};
    for (const [partition, head] of this.heads) hashes[partition] = toHex(head.hash);
    return hashes;
  }
}

function copyEpochs(epochs: TopicView['epochs']): PartitionConfig[][] {
  return epochs.map((history) =>
    history.map((partition) => ({ ...partition, replicas: [...partition.replicas] })),
  );
}

const epochsSchema = t.array(t.array(partitionConfigSchema, { maxItems: 100_000 }), { maxItems: 1024 });

const topicSnapshotSchema = t.record({
  config: topicConfigSchema,
  epochs: epochsSchema,
  /** Written before the replay window existed: `organization:nonce` strings, kept for good. */
  nonces: t.optional(t.array(t.string({ maxLength: 400 }), { maxItems: 10_000_000 })),
  /** The replay window of the topic's admin transactions (nonce-window.ts); absent before it existed. */
  replayWindow: t.optional(replayWindowSnapshotSchema),
  systemIndex: t.uint(),
  heads: t.array(t.record({ partition: t.string({ maxLength: 260 }), header: headerSchema }), {
    maxItems: 1024,
  }),
  /** Every version (one per configuration change) at the index it took effect, oldest first. */
  history: t.optional(
    t.array(
      t.record({ index: t.uint(), config: topicConfigSchema, epochs: epochsSchema, systemIndex: t.uint() }),
      { maxItems: 1_000_000 },
    ),
  ),
});
