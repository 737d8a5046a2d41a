/**
 * The node's partition replica: the shared `PartitionDriver` (src/partition/driver.ts) built with
 * what a real process has — this partition's SQLite database (fsynced transactions), the real clock
 * and the peer mesh — and the SDT contract as its state machine. Everything the driver does (persist
 * before send, store before acknowledge, holding batches for the registry, closing the epoch, client
 * requests and their timeouts) is the driver's, and so runs under the simulator too; what is left
 * here is the node's side: the replica set from the registry, the signer, the database file.
 *
 * If a write to the partition database fails (disk full, I/O error) the replica stops taking input
 * (crash-stop of this one replica, which PBFT tolerates): waiting clients are rejected, the failure
 * is logged at error and kept in `failure`, and the node's other groups go on. What is stored stays
 * readable.
 */
import { merkleRoot as computeMerkleRoot } from '../crypto/index.js';
import { domainHash } from '../crypto/index.js';
import type { Signer } from '../crypto/index.js';
import { executeBatch } from '../contracts/sdt.js';
import type { SdtEvent } from '../contracts/results.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { defaultPbftTuning } from '../consensus/pbft/config.js';
import type { PbftConfig, PbftCrypto, PbftReady, RegistryIndexes } from '../consensus/pbft/types.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { encodeBlock } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import type { Registry } from '../contracts/registry.js';
import type { NetworkRegistry, PartitionInfo } from '../registry/types.js';
import { PartitionDriver, certifiedHeaderOf } from '../partition/driver.js';
import type { CommittedRequest, PartitionStateMachine } from '../partition/driver.js';
import { processClock } from '../runtime/process-clock.js';
import { PartitionDatabase } from './partition-database.js';

export interface PartitionReplicaOptions {
  readonly partition: PartitionInfo;
  readonly registry: NetworkRegistry;
  /**
   * The registry a batch executes against, at the __system and topic indexes it names; undefined
   * while this node has not applied them (the batch waits). Without it, `registry` is used as is.
   */
  readonly registryAt?: (systemIndex: number, topicIndex: number) => Registry | undefined;
  /** The registry indexes this node has applied, which the primary names in its proposals. */
  readonly registryIndexes?: () => RegistryIndexes;
  /**
   * The partition's config epoch at a topic-group index (undefined if unknown). A batch naming an
   * index at which the partition has a newer epoch closes this epoch (`closes` in src/partition/driver.ts).
   */
  readonly epochAt?: (topicIndex: number) => number | undefined;
  /** The previous epoch's closing block, which this epoch continues from (epochs after the first). */
  readonly base?: Block;
  readonly selfNodeId: string;
  /** This node's key, bound to the network of `registry` (checked): it signs consensus messages. */
  readonly signer: Signer;
  readonly dataDirectory: string;
  /** Sends consensus bytes to another replica (by node id). Must not throw. */
  readonly sendTo: (nodeId: string, bytes: Uint8Array) => void;
  readonly tuning?: Partial<typeof defaultPbftTuning>;
  /** How long a client waits for its request to commit before the promise rejects (retriable). */
  readonly commitTimeoutMs?: number;
  readonly log?: (
    level: 'debug' | 'info' | 'warn' | 'error',
    message: string,
    fields?: Record<string, unknown>,
  ) => void;
  /** Told what the replica does as it does it (the node's metrics, node-metrics.ts). Must not throw. */
  readonly observer?: PartitionObserver;
}

/**
 * What a replica reports as it steps, for counters that must not miss what happens between two
 * scrapes (gauges such as the view itself are read at scrape time instead).
 */
export interface PartitionObserver {
  /** The replica's view rose by `views` in one core step (a step may skip views: each counts). */
  viewChanged(views: number): void;
  /** `blocks` committed batches came to this replica by state transfer, not by its own rounds. */
  transferred(blocks: number): void;
  /** A request submitted at this replica committed `seconds` after it was submitted. */
  committed(seconds: number): void;
}

/**
 * The SDT contract as the driver's state machine: what a replica does for a committed batch, and
 * what a node joining a partition does again for each block it copies from the global ledger (its
 * results root must then equal the certified one).
 */
export const sdtStateMachine: PartitionStateMachine<Registry, SdtEvent> = {
  execute(state, context) {
    // Consensus verified every request's encoding and signature before it could be committed.
    const operations = context.requests.map(
      (bytes) => decodeClientRequest(bytes, messageLimits.requestBytesMax).operation,
    );
    return executeBatch(
      state,
      {
        partitionId: context.partitionId,
        configEpoch: context.configEpoch,
        height: context.height,
        timestamp: context.timestamp,
        registry: context.registry,
        closesEpoch: context.closesEpoch,
      },
      operations,
    );
  },
};

export class PartitionReplica {
  readonly partition: PartitionInfo;
  readonly database: PartitionDatabase;
  private readonly driver: PartitionDriver<Registry, SdtEvent>;
  private readonly observer: PartitionObserver | undefined;
  /** The view after the last core step, for `observer.viewChanged`; from the restored view on. */
  private observedView = 0;

  constructor(options: PartitionReplicaOptions) {
    this.partition = options.partition;
    const replicas = options.partition.replicas.map((nodeId) => {
      const node = options.registry.node(nodeId);
      if (node === undefined)
        throw new LedgerbusError(ErrorCode.BadConfig, `replica ${nodeId} is not a registered node`);
      return { id: nodeId, publicKey: node.publicKey };
    });
    const self = options.partition.replicas.indexOf(options.selfNodeId);
    if (self < 0)
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `${options.selfNodeId} is not a replica of ${options.partition.groupId}`,
      );
    const config: PbftConfig = {
      groupId: options.partition.groupId,
      configEpoch: options.partition.configEpoch,
      replicas,
      self,
      ...defaultPbftTuning,
      ...options.tuning,
      ...(options.base === undefined ? {} : { base: certifiedHeaderOf(options.base) }),
    };
    const signer = options.signer;
    assert(
      signer.domain.network === options.registry.network,
      `a replica of network ${options.registry.network} was given a signer of network ${signer.domain.network}`,
    );
    const crypto: PbftCrypto = {
      sign: (type, payload) => signer.sign(type, payload),
      verify: (publicKey, type, payload, signature) =>
        signer.domain.verify(publicKey, type, payload, signature),
      hash: domainHash,
      merkleRoot: computeMerkleRoot,
    };
    // Throws a group storage error naming the partition if the file cannot be opened or read; the
    // caller keeps the node's other groups going.
    this.database = PartitionDatabase.open(options.dataDirectory, options.partition.groupId);
    const observer = options.observer;
    const registryAt = options.registryAt;
    const registryIndexes = options.registryIndexes;
    const epochAt = options.epochAt;
    try {
      this.driver = new PartitionDriver({
        config,
        crypto,
        storage: this.database,
        clock: processClock,
        transport: {
          send: (index, bytes) => {
            const nodeId = options.partition.replicas[index];
            if (nodeId !== undefined) options.sendTo(nodeId, bytes);
          },
        },
        stateMachine: sdtStateMachine,
        registry: {
          at: registryAt === undefined ? () => options.registry : registryAt,
          ...(registryIndexes === undefined ? {} : { indexes: registryIndexes }),
          ...(epochAt === undefined ? {} : { epochAt }),
        },
        ...(options.commitTimeoutMs === undefined ? {} : { commitTimeoutMs: options.commitTimeoutMs }),
        ...(options.log === undefined ? {} : { log: options.log }),
        ...(observer === undefined ? {} : { onStep: (_input, ready) => this.observeStep(observer, ready) }),
      });
    } catch (error) {
      this.database.close();
      throw error;
    }
    this.observer = observer;
    this.observedView = this.driver.view;
  }

  /**
   * Every core step passes here (the driver's `onStep`, which sees the steps the driver takes by
   * itself too), so no view change or transferred batch slips between two scrapes. Reads only.
   */
  private observeStep(observer: PartitionObserver, ready: PbftReady): void {
    let transferred = 0;
    for (const batch of ready.commit) if (batch.certified !== undefined) transferred++;
    if (transferred > 0) observer.transferred(transferred);
    const view = this.driver.view;
    if (view > this.observedView) observer.viewChanged(view - this.observedView);
    this.observedView = view;
  }

  get height(): number {
    return this.driver.height;
  }

  /** Height of the block that closed this epoch, once stored; the replica takes no input after it. */
  get closedAt(): number | undefined {
    return this.driver.closedAt;
  }

  /** Called once, after the block closing this epoch is stored. */
  onClosed(listener: (height: number) => void): void {
    this.driver.onClosed(listener);
  }

  get view(): number {
    return this.driver.view;
  }

  /** Why this replica stopped, if a write to its database failed (see the file comment). */
  get failure(): LedgerbusError | undefined {
    return this.driver.failure;
  }

  get isPrimary(): boolean {
    return this.driver.isPrimary;
  }

  /** Called for every stored block, after it is durable, with the events of its execution. */
  onBlock(listener: (block: Block, events: readonly SdtEvent[]) => void): () => void {
    return this.driver.onBlock(listener);
  }

  tick(now: number): void {
    this.driver.tick(now);
  }

  /** Executes held batches whose registry indexes this node has now applied. */
  resume(): void {
    this.driver.resume();
  }

  /** Batches committed but waiting for the registry (see `registryAt`). */
  get heldBatches(): number {
    return this.driver.heldBatches;
  }

  /** Encoded certified blocks from `fromHeight`, at most `count` (the global ledger's replication). */
  encodedBlocks(fromHeight: number, count: number): Uint8Array[] {
    return this.database.blocks
      .range(fromHeight, fromHeight + count - 1, count)
      .map((block) => encodeBlock(block));
  }

  /** A consensus message from another replica. */
  receive(bytes: Uint8Array): void {
    this.driver.receive(bytes);
  }

  /**
   * A client request. Resolves with where it committed, once that block is stored. Rejects at once
   * with the core's code if the request is refused; otherwise `accepted` runs (at once, before this
   * returns), where the caller sends it on to the other replicas — so a request this replica
   * refuses (undecodable, badly signed) costs the others nothing.
   */
  submit(bytes: Uint8Array, accepted?: () => void): Promise<CommittedRequest> {
    const observer = this.observer;
    if (observer === undefined) return this.driver.submit(bytes, accepted);
    const started = performance.now();
    return this.driver.submit(bytes, accepted).then((committed) => {
      observer.committed((performance.now() - started) / 1_000);
      return committed;
    });
  }

  /** Forwarded client request from another replica's client: no answer expected. */
  receiveForwarded(bytes: Uint8Array): void {
    this.driver.receiveForwarded(bytes);
  }

  close(): void {
    this.driver.close();
    this.database.close();
  }
}
