/**
 * The node's driver of one PBFT partition replica: it feeds the pure core real time, the wire and
 * client requests, and does what each Ready says through the shared `applyReady` — persist (one
 * fsynced transaction) before anything is sent, store each certified block together with the
 * contract writes of its execution, then send, serve state transfer, execute. It also answers
 * clients: a request's promise settles when the block holding it is stored (never before: what we
 * acknowledge is durable).
 *
 * If a write to the partition database fails (disk full, I/O error) the core already believes the
 * Ready durable, so the replica stops taking input (crash-stop of this one replica, which PBFT
 * tolerates): waiting clients are rejected, the failure is logged at error and kept in `failure`,
 * and the node's other groups go on. What is stored stays readable.
 */
import { merkleRoot as computeMerkleRoot } from '../crypto/index.js';
import { domainHash, sha256 } from '../crypto/index.js';
import type { Signer } from '../crypto/index.js';
import { executeBatch } from '../contracts/sdt.js';
import type { SdtEvent } from '../contracts/results.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { PbftReplica, defaultPbftTuning } from '../consensus/pbft/replica.js';
import { applyReady } from '../consensus/pbft/driver.js';
import type { ReplicaHost } from '../consensus/pbft/driver.js';
import type {
  CertifiedBlock,
  CertifiedHeader,
  CommittedBatch,
  PbftConfig,
  PbftCrypto,
  PbftReady,
  PersistOp,
  Proposal,
  RegistryIndexes,
} from '../consensus/pbft/types.js';
import { toHex } from '../codec/index.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { isGroupStorageError } from './group-files.js';
import { encodeBlock } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import type { Registry } from '../contracts/registry.js';
import type { ContractState } from '../contracts/state.js';
import type { NetworkRegistry, PartitionInfo } from '../registry/types.js';
import { LayeredContractState, PartitionDatabase } from './partition-database.js';

const routineRejections = new Set<string>([ErrorCode.Replay, ErrorCode.OutOfWindow, ErrorCode.WrongView]);

export interface CommittedRequest {
  readonly height: number;
  readonly transactionIndex: number;
}

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
   * index at which the partition has a newer epoch closes this epoch (see `executeBlockBody`).
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
}

interface Waiter {
  resolve(result: CommittedRequest): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class PartitionReplica {
  readonly partition: PartitionInfo;
  readonly database: PartitionDatabase;
  private core: PbftReplica;
  private readonly crypto: PbftCrypto;
  private readonly config: PbftConfig;
  private readonly state: LayeredContractState;
  private readonly executed = new Map<number, { results: Uint8Array[]; events: SdtEvent[] }>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly blockListeners = new Set<(block: Block, events: readonly SdtEvent[]) => void>();
  private pendingPersist: PersistOp[] = [];
  private closingHeight: number | undefined;
  private readonly closedListeners: ((height: number) => void)[] = [];
  /** Executed heights that close the epoch, until their blocks are stored. */
  private readonly closing = new Set<number>();
  /** Committed batches waiting for this node to apply the registry indexes they name, in order. */
  private readonly held: CommittedBatch[] = [];
  private readonly host: ReplicaHost;
  private readonly commitTimeoutMs: number;
  private closed = false;
  private storageFailure: LedgerbusError | undefined;

  constructor(private readonly options: PartitionReplicaOptions) {
    this.partition = options.partition;
    this.commitTimeoutMs = options.commitTimeoutMs ?? 30_000;
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
    this.config = {
      groupId: options.partition.groupId,
      configEpoch: options.partition.configEpoch,
      replicas,
      self,
      ...defaultPbftTuning,
      ...options.tuning,
      ...(options.base === undefined
        ? {}
        : { base: { header: options.base.header, signatures: options.base.certificate.signatures } }),
    };
    const signer = options.signer;
    assert(
      signer.domain.network === options.registry.network,
      `a replica of network ${options.registry.network} was given a signer of network ${signer.domain.network}`,
    );
    this.crypto = {
      sign: (type, payload) => signer.sign(type, payload),
      verify: (publicKey, type, payload, signature) =>
        signer.domain.verify(publicKey, type, payload, signature),
      hash: domainHash,
      merkleRoot: computeMerkleRoot,
    };
    // Throws a group storage error naming the partition if the file cannot be opened or read; the
    // caller keeps the node's other groups going.
    this.database = PartitionDatabase.open(options.dataDirectory, options.partition.groupId);
    try {
      this.database.startEpoch(options.partition.configEpoch);
      this.state = new LayeredContractState(this.database.committedState);
      this.core = new PbftReplica(this.config, this.crypto, this.restoreFromDisk());
    } catch (error) {
      this.database.close();
      throw error;
    }
    this.host = {
      step: (input) => this.core.step(input),
      persist: (op) => {
        this.pendingPersist.push(op);
      },
      storeCertified: (block) => {
        this.flushPersist();
        this.storeCertified(block);
      },
      send: (to, bytes) => {
        this.flushPersist();
        this.send(to, bytes);
      },
      readBlocks: (fromSeq, count) => {
        this.flushPersist();
        return this.database.blocks.range(fromSeq, fromSeq + count - 1, count).map((block) => ({
          certified: { header: block.header, signatures: block.certificate.signatures },
          requests: block.transactions,
        }));
      },
      encodeBlocks: (blocks) => this.core.encodeBlocks(blocks),
      alreadyCommitted: (request, seq) => this.answerFromLedger(request, seq),
      execute: (batch) => {
        this.flushPersist();
        const registry = this.held.length > 0 ? undefined : this.registryFor(batch.proposal);
        if (registry === undefined) {
          this.held.push(batch);
          return undefined;
        }
        return this.execute(
          batch.seq,
          batch.proposal.timestamp,
          batch.proposal.requests,
          registry,
          batch.proposal.topicIndex,
        );
      },
      // Duplicates and stale messages are routine (retransmission, forwarding): not worth a warning.
      rejected: (code, reason) =>
        options.log?.(routineRejections.has(code) ? 'debug' : 'warn', 'pbft input rejected', {
          group: this.partition.groupId,
          code,
          reason,
        }),
    };
  }

  get height(): number {
    return this.database.blocks.head()?.height ?? 0;
  }

  /** Height of the block that closed this epoch, once stored; the replica takes no input after it. */
  get closedAt(): number | undefined {
    return this.closingHeight;
  }

  /** What a client waiting on, or arriving at, a closed epoch gets: retriable on the next one. */
  private movedError(): LedgerbusError {
    return new LedgerbusError(
      ErrorCode.ConnectionClosed,
      `${this.partition.groupId} moved to a new replica set`,
      { retriable: true },
    );
  }

  /** Called once, after the block closing this epoch is stored. */
  onClosed(listener: (height: number) => void): void {
    this.closedListeners.push(listener);
  }
  get view(): number {
    return this.core.view;
  }
  /** Why this replica stopped, if a write to its database failed (see the file comment). */
  get failure(): LedgerbusError | undefined {
    return this.storageFailure;
  }
  get isPrimary(): boolean {
    return this.core.isPrimary;
  }

  /** Called for every stored block, after it is durable, with the events of its execution. */
  onBlock(listener: (block: Block, events: readonly SdtEvent[]) => void): () => void {
    this.blockListeners.add(listener);
    return () => this.blockListeners.delete(listener);
  }

  tick(now: number): void {
    const registry = this.options.registryIndexes?.();
    this.drive(() =>
      this.core.step(registry === undefined ? { kind: 'tick', now } : { kind: 'tick', now, registry }),
    );
  }

  /** Executes held batches whose registry indexes this node has now applied. */
  resume(): void {
    if (this.closed) return;
    while (this.held.length > 0) {
      const batch = this.held[0]!;
      const registry = this.registryFor(batch.proposal);
      if (registry === undefined) return;
      this.held.shift();
      const resultsRoot = this.execute(
        batch.seq,
        batch.proposal.timestamp,
        batch.proposal.requests,
        registry,
        batch.proposal.topicIndex,
      );
      this.drive(() => this.core.step({ kind: 'executed', seq: batch.seq, resultsRoot }));
    }
  }

  /** Batches committed but waiting for the registry (see `registryAt`). */
  get heldBatches(): number {
    return this.held.length;
  }

  /** Encoded certified blocks from `fromHeight`, at most `count` (the global ledger's replication). */
  encodedBlocks(fromHeight: number, count: number): Uint8Array[] {
    return this.database.blocks
      .range(fromHeight, fromHeight + count - 1, count)
      .map((block) => encodeBlock(block));
  }

  private registryFor(proposal: Proposal): Registry | undefined {
    if (this.options.registryAt === undefined) return this.options.registry;
    return this.options.registryAt(proposal.systemIndex ?? 0, proposal.topicIndex ?? 0);
  }

  /** A consensus message from another replica. */
  receive(bytes: Uint8Array): void {
    this.drive(() => this.core.step({ kind: 'message', bytes }));
  }

  /**
   * A client request. Resolves with where it committed, once that block is stored. Rejects at once
   * with the core's code if the request is refused; otherwise `accepted` runs (at once, before this
   * returns), where the caller sends it on to the other replicas — so a request this replica
   * refuses (undecodable, badly signed) costs the others nothing.
   */
  submit(bytes: Uint8Array, accepted?: () => void): Promise<CommittedRequest> {
    if (this.storageFailure !== undefined) return Promise.reject(this.storageFailure);
    if (this.closed)
      return Promise.reject(
        new LedgerbusError(ErrorCode.Overloaded, 'node is stopping', { retriable: true }),
      );
    if (this.closingHeight !== undefined) {
      return Promise.reject(this.movedError());
    }
    const digest = toHex(sha256(bytes));
    const found = this.findCommitted(bytes);
    if (found !== undefined) {
      accepted?.();
      return Promise.resolve(found);
    }
    const promise = new Promise<CommittedRequest>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.removeWaiter(digest, waiter);
        reject(
          new LedgerbusError(
            ErrorCode.Timeout,
            `request not committed within ${this.commitTimeoutMs} ms; retry it`,
            { retriable: true },
          ),
        );
      }, this.commitTimeoutMs);
      const waiter: Waiter = { resolve, reject, timer };
      const list = this.waiters.get(digest) ?? [];
      list.push(waiter);
      this.waiters.set(digest, list);
    });
    const ready = this.core.step({ kind: 'request', bytes });
    const refusal = ready.rejected[0];
    this.drive(() => ready);
    if (refusal !== undefined) {
      this.settle(
        digest,
        undefined,
        new LedgerbusError(refusal.code, refusal.reason, {
          retriable: refusal.code === ErrorCode.Overloaded,
        }),
      );
    } else {
      accepted?.();
    }
    return promise;
  }

  /** Forwarded client request from another replica's client: no answer expected. */
  receiveForwarded(bytes: Uint8Array): void {
    this.drive(() => this.core.step({ kind: 'request', bytes }));
  }

  close(): void {
    this.closed = true;
    for (const [digest] of this.waiters) {
      this.settle(
        digest,
        undefined,
        new LedgerbusError(ErrorCode.ConnectionClosed, 'node stopped', { retriable: true }),
      );
    }
    this.database.close();
  }

  // ---- driver ----

  private drive(step: () => PbftReady): void {
    if (this.closed || this.closingHeight !== undefined) return;
    try {
      applyReady(this.host, step());
      this.flushPersist();
    } catch (error) {
      // Anything but a failed write is a bug and propagates; a failed write stops this replica only.
      if (!isGroupStorageError(error)) throw error;
      this.stopOnStorageFailure(error);
    }
  }

  private stopOnStorageFailure(error: LedgerbusError): void {
    this.closed = true;
    this.storageFailure = error;
    this.pendingPersist = [];
    this.held.length = 0;
    for (const [digest] of this.waiters) this.settle(digest, undefined, error);
    this.options.log?.('error', 'partition replica stopped: a write to its database failed', {
      group: this.partition.groupId,
      error: error.message,
    });
  }

  private flushPersist(): void {
    if (this.pendingPersist.length === 0) return;
    const ops = this.pendingPersist;
    this.pendingPersist = [];
    this.database.persist(ops);
  }

  private send(to: number | 'all', bytes: Uint8Array): void {
    const replicas = this.partition.replicas;
    if (to === 'all') {
      replicas.forEach((nodeId, index) => {
        if (index !== this.config.self) this.options.sendTo(nodeId, bytes);
      });
    } else {
      const nodeId = replicas[to];
      if (nodeId !== undefined && to !== this.config.self) this.options.sendTo(nodeId, bytes);
    }
  }

  private execute(
    height: number,
    timestamp: number,
    requests: readonly Uint8Array[],
    registry: Registry,
    topicIndex = 0,
  ): Uint8Array {
    const closesEpoch = closes(this.options.epochAt, topicIndex, this.partition.configEpoch);
    if (closesEpoch) this.closing.add(height);
    const outcome = executeBlockBody(this.state.layerFor(height), {
      partitionId: this.partition.groupId,
      configEpoch: this.partition.configEpoch,
      height,
      timestamp,
      registry,
      closesEpoch,
      requests,
    });
    this.executed.set(height, { results: outcome.results, events: outcome.events });
    return this.crypto.merkleRoot(outcome.results);
  }

  private storeCertified(certified: CertifiedBlock): void {
    const height = certified.header.height;
    const execution = this.executed.get(height);
    const writes = this.state.take(height);
    if (execution === undefined || writes === undefined) {
      throw new Error(`${this.partition.groupId}: certified block ${height} was not executed here`);
    }
    this.executed.delete(height);
    const block: Block = {
      header: certified.header,
      certificate: { signatures: certified.signatures },
      transactions: certified.proposal.requests,
      results: execution.results,
    };
    this.database.commitBlock(block, writes);
    // Only requests submitted here have someone waiting; replicas that just order them skip the hashing.
    if (this.waiters.size > 0) {
      block.transactions.forEach((transaction, transactionIndex) => {
        this.settle(toHex(sha256(transaction)), { height, transactionIndex });
      });
    }
    for (const listener of this.blockListeners) listener(block, execution.events);
    if (this.closing.delete(height)) {
      this.closingHeight = height;
      // Clients waiting on this epoch retry on the next one.
      for (const [digest] of this.waiters) {
        this.settle(digest, undefined, this.movedError());
      }
      for (const listener of this.closedListeners) listener(height);
    }
  }

  private answerFromLedger(request: Uint8Array, seq: number): void {
    const found = this.findCommitted(request);
    if (found !== undefined) this.settle(toHex(sha256(request)), found);
    else this.options.log?.('warn', 'retransmitted request not found in its block', { seq });
  }

  private findCommitted(request: Uint8Array): CommittedRequest | undefined {
    const found = this.database.blocks.findTransaction(sha256(request));
    return found === undefined ? undefined : { height: found.height, transactionIndex: found.index };
  }

  private settle(digest: string, result?: CommittedRequest, error?: Error): void {
    const list = this.waiters.get(digest);
    if (list === undefined) return;
    this.waiters.delete(digest);
    for (const waiter of list) {
      clearTimeout(waiter.timer);
      if (result !== undefined) waiter.resolve(result);
      else waiter.reject(error ?? new Error('unsettled'));
    }
  }

  private removeWaiter(digest: string, waiter: Waiter): void {
    const list = this.waiters.get(digest)?.filter((candidate) => candidate !== waiter);
    if (list === undefined || list.length === 0) this.waiters.delete(digest);
    else this.waiters.set(digest, list);
  }

  private restoreFromDisk(): ConstructorParameters<typeof PbftReplica>[2] {
    const records = this.database.records();
    const head = this.database.blocks.head();
    const certifiedOf = (height: number): CertifiedHeader | undefined => {
      const block = this.database.blocks.get(height);
      return block === undefined
        ? undefined
        : { header: block.header, signatures: block.certificate.signatures };
    };
    const headCertified = head === undefined ? undefined : certifiedOf(head.height);
    const stableHeight =
      head === undefined ? 0 : head.height - (head.height % this.config.checkpointInterval);
    // Checkpoints of an earlier epoch carry the old replicas' signatures: the base stands in for them.
    const baseHeight = this.options.base?.header.height ?? 0;
    const stable = stableHeight > baseHeight ? certifiedOf(stableHeight) : undefined;
    return {
      records,
      ...(headCertified === undefined ? {} : { head: headCertified }),
      ...(stable === undefined ? {} : { stable }),
    };
  }
}

/** True if a batch naming `topicIndex` closes epoch `epoch`: the partition has a newer one there. */
export function closes(
  epochAt: ((topicIndex: number) => number | undefined) | undefined,
  topicIndex: number,
  epoch: number,
): boolean {
  const there = epochAt?.(topicIndex);
  return there !== undefined && there > epoch;
}

/**
 * Executes one block's client requests with the SDT contract: what a replica does for a committed
 * batch, and what a node joining a partition does again for each block it copies from the global
 * ledger (its results root must then equal the certified one).
 */
export function executeBlockBody(
  state: ContractState,
  context: {
    partitionId: string;
    configEpoch: number;
    height: number;
    timestamp: number;
    registry: Registry;
    closesEpoch: boolean;
    requests: readonly Uint8Array[];
  },
): { results: Uint8Array[]; events: SdtEvent[] } {
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
}
