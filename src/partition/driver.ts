/**
 * The partition driver: the one host of a PBFT partition replica, generic over what it runs on
 * (TigerBeetle's `ReplicaType(StateMachine, MessageBus, Storage, Time)`). The node builds it with its
 * SQLite partition database, the real clock and the peer mesh (src/node/partition-replica.ts); the
 * simulator (src/sim/world.ts) with `MemoryPartitionStorage`, a simulated clock and a simulated network;
 * the PBFT test cluster (src/partition/testing/cluster.ts) with memory disks and a scripted FIFO network.
 * So everything here — feeding the core, carrying out its Ready, holding batches for the registry,
 * closing an epoch, tracking client requests — runs under the simulator's faults too.
 *
 * API (for hosts; see each member's comment for its contract):
 *
 *   const driver = new PartitionDriver({
 *     config, crypto,            // the PBFT core's config (replica set, epoch, base) and crypto
 *     storage,                   // PartitionStorage: blocks, contract state, persist records; sync()
 *     clock,                     // PartitionClock: now() and setTimeout (request timeouts)
 *     transport,                 // PartitionTransport: send(replicaIndex, bytes), never to self
 *     stateMachine,              // PartitionStateMachine: executes a committed batch on a ContractState
 *     registry,                  // at(systemIndex, topicIndex) → registry | undefined (hold), indexes(), epochAt()
 *     onStep?,                   // observes every core step and its Ready (test cluster, node metrics)
 *   });
 *   driver.tick(now?)            // a clock tick (with the registry indexes this host has applied)
 *   driver.receive(bytes)        // a consensus message from another replica
 *   driver.receiveForwarded(req) // a client request forwarded by another replica: no answer expected
 *   driver.submit(req, accepted?) → Promise<{height, transactionIndex}>: settles once the block is stored
 *   driver.resume()              // the host applied more registry: run the batches held for it
 *   driver.onBlock(listener)     // every stored block, after it is durable, with its execution's events
 *   driver.onRetransmitted(l)    // a client asked again for a request committed at a height
 *   driver.onClosed(listener)    // the block closing this epoch is stored; the driver takes no input after
 *   driver.close()               // the host stops: waiting clients are rejected (retriable)
 *   driver.closedAt, failure, heldBatches, height, view, isPrimary, replica (read-only observers)
 *
 * A Ready is carried out in the order its contract requires (`applyReady`): persist, then store
 * certified blocks, send, serve state transfer, answer retransmissions, then execute. Persist ops
 * are gathered and written as one transaction before anything else is written; the storage is
 * synced BEFORE anything is sent, before clients or listeners hear of a stored block, and at the
 * end of every step — so what a crash may lose was never shown to anyone.
 *
 * A write that fails with StorageUnavailable (disk full, I/O error) stops this driver (crash-stop of
 * one replica, which PBFT tolerates): the core already believes the Ready durable. Waiting clients
 * are rejected with that error, which stays in `failure`. Any other exception is a bug and propagates.
 */
import { sha256 } from '../crypto/index.js';
import { toHex } from '../codec/index.js';
import { applyReady } from '../consensus/pbft/driver.js';
import type { ReplicaHost } from '../consensus/pbft/driver.js';
import { PbftReplica } from '../consensus/pbft/replica.js';
import type {
  CertifiedBlock,
  CertifiedHeader,
  CommittedBatch,
  PbftConfig,
  PbftCrypto,
  PbftInput,
  PbftReady,
  PbftRestore,
  PersistOp,
  RegistryIndexes,
} from '../consensus/pbft/types.js';
import type { ContractState } from '../contracts/state.js';
import { AssertionError, ErrorCode, LedgerbusError, assert, isLedgerbusError } from '../errors.js';
import type { Block } from '../ledger/block.js';
import { resultLeaf } from '../ledger/result-leaf.js';
import { LayeredContractState } from './storage.js';
import type { PartitionStorage } from './storage.js';

/** Time as the driver sees it: the host's clock, real or simulated. */
export interface PartitionClock {
  /** Milliseconds since the epoch (fed to the core with each tick). */
  now(): number;
  /** Calls `callback` once after `ms`; the returned function cancels it. */
  setTimeout(callback: () => void, ms: number): () => void;
}

/** The wire to the other replicas of this epoch. */
export interface PartitionTransport {
  /** Sends consensus bytes to the replica at `index` of the replica set (never this one). Must not throw. */
  send(index: number, bytes: Uint8Array): void;
}

/** What a committed batch executes with. */
export interface ExecutionContext<TRegistry> {
  readonly partitionId: string;
  readonly configEpoch: number;
  readonly height: number;
  readonly timestamp: number;
  readonly registry: TRegistry;
  /** True for the block that closes this epoch (see `PartitionRegistry.epochAt`). */
  readonly closesEpoch: boolean;
  readonly requests: readonly Uint8Array[];
}

/** The deterministic application: the SDT contract in the node, a small log in the simulator. */
export interface PartitionStateMachine<TRegistry, TEvent> {
  /** Executes one batch on `state`; the results' leaves (`resultLeaf`) make the block's results root. */
  execute(
    state: ContractState,
    context: ExecutionContext<TRegistry>,
  ): { results: Uint8Array[]; events: TEvent[] };
}

/** What the driver needs of the registry (the `__system` and topic Raft groups, as this host applied them). */
export interface PartitionRegistry<TRegistry> {
  /** The registry at the indexes a batch names; undefined while this host has not applied them (hold). */
  at(systemIndex: number, topicIndex: number): TRegistry | undefined;
  /**
   * The indexes this host has applied, which a primary names in its proposals; a tick carries none
   * when this is absent or returns undefined (the core then keeps the last indexes it was given).
   */
  indexes?(): RegistryIndexes | undefined;
  /** The partition's epoch at a topic-group index; a batch naming a newer one closes this epoch. */
  epochAt?(topicIndex: number): number | undefined;
}

export interface PartitionDriverOptions<TRegistry, TEvent> {
  /** The core's config: its replica set, epoch, tuning and (epochs after the first) base. */
  readonly config: PbftConfig;
  readonly crypto: PbftCrypto;
  readonly storage: PartitionStorage;
  readonly clock: PartitionClock;
  readonly transport: PartitionTransport;
  readonly stateMachine: PartitionStateMachine<TRegistry, TEvent>;
  readonly registry: PartitionRegistry<TRegistry>;
  /** How long a client waits for its request to commit before the promise rejects (retriable). */
  readonly commitTimeoutMs?: number;
  /**
   * Observes every step of the core — the host's inputs and the `executed` steps the driver takes
   * itself — with its Ready, after the step and before the Ready is carried out. For test harnesses
   * that record what the core did (src/partition/testing/cluster.ts) and for the node's metrics
   * (view changes, state-transfer blocks: src/node/partition-replica.ts); it must not call the driver.
   */
  readonly onStep?: (input: PbftInput, ready: PbftReady) => void;
  readonly log?: (
    level: 'debug' | 'info' | 'warn' | 'error',
    message: string,
    fields?: Record<string, unknown>,
  ) => void;
}

/** Where a client request committed. */
export interface CommittedRequest {
  readonly height: number;
  readonly transactionIndex: number;
}

const routineRejections = new Set<string>([ErrorCode.Replay, ErrorCode.OutOfWindow, ErrorCode.WrongView]);

interface Waiter {
  resolve(result: CommittedRequest): void;
  reject(error: Error): void;
  cancelTimer: () => void;
}

/** The certified header (header and certificate signatures) of a stored block. */
export function certifiedHeaderOf(block: Block): CertifiedHeader {
  return { header: block.header, signatures: block.certificate.signatures };
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

export class PartitionDriver<TRegistry, TEvent> {
  private core: PbftReplica;
  private readonly config: PbftConfig;
  private readonly storage: PartitionStorage;
  private readonly state: LayeredContractState;
  /** Executed blocks awaiting their certificate: no more than the core delivers, about a window's worth. */
  private readonly executed = new Map<number, { results: Uint8Array[]; events: TEvent[] }>();
  /** Clients waiting on a request submitted here, by digest: each leaves when settled or at its timeout. */
  private readonly waiters = new Map<string, Waiter[]>();
  /** One per subscriber, removed by the function `onBlock` returns. */
  private readonly blockListeners = new Set<(block: Block, events: readonly TEvent[]) => void>();
  /** Registered by the host when it sets the driver up; never removed. */
  private readonly retransmittedListeners: ((request: Uint8Array, height: number) => void)[] = [];
  /** Registered by the host when it sets the driver up; never removed. */
  private readonly closedListeners: ((height: number) => void)[] = [];
  /** Records of the current step: flushed before anything is shown to the world, and at its end. */
  private pendingPersist: PersistOp[] = [];
  /** Blocks stored in this step, until they are synced and clients and listeners are told. */
  private unannounced: { block: Block; events: TEvent[]; closesEpoch: boolean }[] = [];
  private closingHeight: number | undefined;
  /** Executed heights that close the epoch, until their blocks are stored (a subset of `executed`). */
  private readonly closing = new Set<number>();
  /**
   * Committed batches waiting for this host to apply the registry indexes they name, in order. No more
   * than the core delivers unexecuted: about a watermark window.
   */
  private readonly held: CommittedBatch[] = [];
  private readonly host: ReplicaHost;
  private readonly commitTimeoutMs: number;
  private closed = false;
  private storageFailure: LedgerbusError | undefined;

  /**
   * Opens the epoch of `config` on `storage` (dropping another epoch's consensus records) and
   * restores the core from what is stored. Throws what the storage throws.
   */
  constructor(private readonly options: PartitionDriverOptions<TRegistry, TEvent>) {
    this.config = options.config;
    this.storage = options.storage;
    this.commitTimeoutMs = options.commitTimeoutMs ?? 30_000;
    assert(
      this.config.self >= 0 && this.config.self < this.config.replicas.length,
      `replica index ${this.config.self} is outside the replica set`,
    );
    this.storage.startEpoch(this.config.configEpoch);
    this.storage.sync();
    this.state = new LayeredContractState(this.storage.committedState);
    this.core = new PbftReplica(this.config, options.crypto, this.restoreFromStorage());
    // A process that stored its epoch's closing block and then stopped finds the epoch closed.
    const head = this.storage.blocks.head()?.header;
    if (
      head !== undefined &&
      head.configEpoch === this.config.configEpoch &&
      closes(options.registry.epochAt, head.topicIndex ?? 0, this.config.configEpoch)
    ) {
      this.closingHeight = head.height;
    }
    this.host = {
      step: (input) => this.stepCore(input),
      persist: (op) => {
        this.pendingPersist.push(op);
      },
      storeCertified: (block) => {
        this.flushPersist();
        this.storeCertified(block);
      },
      send: (to, bytes) => {
        this.flushPersist();
        this.storage.sync();
        this.announce();
        if (this.closingHeight === undefined) this.send(to, bytes);
      },
      readBlocks: (fromSeq, count) => {
        this.flushPersist();
        return this.storage.blocks.range(fromSeq, fromSeq + count - 1, count).map((block) => ({
          certified: certifiedHeaderOf(block),
          requests: block.transactions,
        }));
      },
      encodeBlocks: (blocks) => this.core.encodeBlocks(blocks),
      alreadyCommitted: (request, seq) => {
        this.flushPersist();
        this.announce();
        this.answerFromLedger(request, seq);
      },
      execute: (batch) => {
        this.flushPersist();
        // After the closing block nothing more runs in this epoch (see storeCertified).
        if (this.closingHeight !== undefined) return undefined;
        const registry = this.held.length > 0 ? undefined : this.registryFor(batch);
        if (registry === undefined) {
          this.held.push(batch);
          return undefined;
        }
        return this.execute(batch, registry);
      },
      // Duplicates and stale messages are routine (retransmission, forwarding): not worth a warning.
      rejected: (code, reason) =>
        options.log?.(routineRejections.has(code) ? 'debug' : 'warn', 'pbft input rejected', {
          group: this.config.groupId,
          code,
          reason,
        }),
    };
  }

  /** The core, for observers (views, heights, role): never step it directly. */
  get replica(): PbftReplica {
    return this.core;
  }

  /** Height of the last stored block. */
  get height(): number {
    return this.storage.blocks.head()?.height ?? 0;
  }

  get view(): number {
    return this.core.view;
  }

  get isPrimary(): boolean {
    return this.core.isPrimary;
  }

  /** Height of the block that closed this epoch, once stored; the driver takes no input after it. */
  get closedAt(): number | undefined {
    return this.closingHeight;
  }

  /** Why this driver stopped, if a write to its storage failed (see the file comment). */
  get failure(): LedgerbusError | undefined {
    return this.storageFailure;
  }

  /** Batches committed but waiting for the registry (see `PartitionRegistry.at`). */
  get heldBatches(): number {
    return this.held.length;
  }

  /** Called for every stored block, after it is durable, with the events of its execution. */
  onBlock(listener: (block: Block, events: readonly TEvent[]) => void): () => void {
    this.blockListeners.add(listener);
    return () => this.blockListeners.delete(listener);
  }

  /**
   * Called when a client sends again a request the core knows committed at `height` (after waiting
   * clients here were answered from the stored block): a host may reply to the client from it.
   */
  onRetransmitted(listener: (request: Uint8Array, height: number) => void): void {
    this.retransmittedListeners.push(listener);
  }

  /** Called once, after the block closing this epoch is stored. */
  onClosed(listener: (height: number) => void): void {
    this.closedListeners.push(listener);
  }

  /**
   * A clock tick: the core sees `now` (the clock's time unless the host read it once for all its
   * groups) and the registry indexes this host has applied.
   */
  tick(now: number = this.options.clock.now()): void {
    const registry = this.options.registry.indexes?.();
    this.drive(() =>
      this.stepCore(registry === undefined ? { kind: 'tick', now } : { kind: 'tick', now, registry }),
    );
  }

  /** A consensus message from another replica. */
  receive(bytes: Uint8Array): void {
    this.drive(() => this.stepCore({ kind: 'message', bytes }));
  }

  /** A client request forwarded by another replica (or sent without waiting): no answer expected. */
  receiveForwarded(bytes: Uint8Array): void {
    this.drive(() => this.stepCore({ kind: 'request', bytes }));
  }

  /**
   * A client request. Resolves with where it committed, once that block is stored and synced.
   * Rejects at once with the core's code (and its `retriable`) if the request is refused; otherwise
   * `accepted` runs (at once, before this returns), where the caller sends it on to the other
   * replicas — so a request this replica refuses costs the others nothing. Rejects (retriable) after
   * `commitTimeoutMs` on the clock, when the driver closes, or when the epoch closes first.
   */
  submit(bytes: Uint8Array, accepted?: () => void): Promise<CommittedRequest> {
    if (this.storageFailure !== undefined) return Promise.reject(this.storageFailure);
    if (this.closed)
      return Promise.reject(
        new LedgerbusError(ErrorCode.Overloaded, 'node is stopping', { retriable: true }),
      );
    if (this.closingHeight !== undefined) return Promise.reject(this.movedError());
    const digest = toHex(sha256(bytes));
    const found = this.findCommitted(bytes);
    if (found !== undefined) {
      accepted?.();
      return Promise.resolve(found);
    }
    const promise = new Promise<CommittedRequest>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        cancelTimer: this.options.clock.setTimeout(() => {
          this.removeWaiter(digest, waiter);
          reject(
            new LedgerbusError(
              ErrorCode.Timeout,
              `request not committed within ${this.commitTimeoutMs} ms; retry it`,
              { retriable: true },
            ),
          );
        }, this.commitTimeoutMs),
      };
      const list = this.waiters.get(digest) ?? [];
      list.push(waiter);
      this.waiters.set(digest, list);
    });
    const ready = this.stepCore({ kind: 'request', bytes });
    const refusal = ready.rejected[0];
    this.drive(() => ready);
    if (refusal !== undefined) {
      this.settle(
        digest,
        undefined,
        new LedgerbusError(refusal.code, refusal.reason, { retriable: refusal.retriable }),
      );
    } else {
      accepted?.();
    }
    return promise;
  }

  /**
   * Executes held batches whose registry indexes this host has now applied, in order, stepping the
   * core with each result. Call it whenever the host applies registry entries.
   */
  resume(): void {
    if (this.closed) return;
    while (this.held.length > 0) {
      const batch = this.held[0]!;
      const registry = this.registryFor(batch);
      if (registry === undefined) return;
      this.held.shift();
      const resultsRoot = this.execute(batch, registry);
      this.drive(() => this.stepCore({ kind: 'executed', seq: batch.seq, resultsRoot }));
    }
  }

  /** The host stops: waiting clients are rejected (retriable); the storage is the host's to close. */
  close(): void {
    this.closed = true;
    for (const [digest] of this.waiters) {
      this.settle(
        digest,
        undefined,
        new LedgerbusError(ErrorCode.ConnectionClosed, 'node stopped', { retriable: true }),
      );
    }
  }

  // ---- carrying out a Ready ----

  /** Every step of the core goes through here, so that `onStep` sees them all. */
  private stepCore(input: PbftInput): PbftReady {
    const ready = this.core.step(input);
    this.options.onStep?.(input, ready);
    return ready;
  }

  private drive(step: () => PbftReady): void {
    if (this.closed || this.closingHeight !== undefined) return;
    try {
      applyReady(this.host, step());
      this.flushPersist();
      this.storage.sync();
      this.announce();
    } catch (error) {
      // Anything but a failed write is a bug (or a simulated crash) and propagates.
      if (!isLedgerbusError(error, ErrorCode.StorageUnavailable)) throw error;
      this.stopOnStorageFailure(error);
    }
  }

  private stopOnStorageFailure(error: LedgerbusError): void {
    this.closed = true;
    this.storageFailure = error;
    this.pendingPersist = [];
    this.unannounced = [];
    this.held.length = 0;
    for (const [digest] of this.waiters) this.settle(digest, undefined, error);
    this.options.log?.('error', 'partition replica stopped: a write to its database failed', {
      group: this.config.groupId,
      error: error.message,
    });
  }

  /**
   * Writes the gathered persist ops as one transaction, before anything else is written, sent or
   * executed; whoever then shows something to the world syncs first.
   */
  private flushPersist(): void {
    if (this.pendingPersist.length === 0) return;
    const ops = this.pendingPersist;
    this.pendingPersist = [];
    this.storage.persist(ops);
  }

  private send(to: number | 'all', bytes: Uint8Array): void {
    const self = this.config.self;
    if (to === 'all') {
      for (let index = 0; index < this.config.replicas.length; index++) {
        if (index !== self) this.options.transport.send(index, bytes);
      }
    } else if (to !== self && to >= 0 && to < this.config.replicas.length) {
      this.options.transport.send(to, bytes);
    }
  }

  private registryFor(batch: CommittedBatch): TRegistry | undefined {
    return this.options.registry.at(batch.proposal.systemIndex ?? 0, batch.proposal.topicIndex ?? 0);
  }

  private execute(batch: CommittedBatch, registry: TRegistry): Uint8Array {
    const height = batch.seq;
    const closesEpoch = closes(
      this.options.registry.epochAt,
      batch.proposal.topicIndex ?? 0,
      this.config.configEpoch,
    );
    if (closesEpoch) this.closing.add(height);
    const outcome = this.options.stateMachine.execute(this.state.layerFor(height), {
      partitionId: this.config.groupId,
      configEpoch: this.config.configEpoch,
      height,
      timestamp: batch.proposal.timestamp,
      registry,
      closesEpoch,
      requests: batch.proposal.requests,
    });
    this.executed.set(height, outcome);
    return this.options.crypto.merkleRoot(outcome.results.map(resultLeaf));
  }

  private storeCertified(certified: CertifiedBlock): void {
    // The epoch ended at its closing block: a later block certified in the same Ready (the core
    // pipelines) belongs to no epoch — the next one continues from the closing block alone.
    if (this.closingHeight !== undefined) return;
    const height = certified.header.height;
    const execution = this.executed.get(height);
    const writes = this.state.take(height);
    if (execution === undefined || writes === undefined) {
      throw new AssertionError(`${this.config.groupId}: certified block ${height} was not executed here`);
    }
    this.executed.delete(height);
    const block: Block = {
      header: certified.header,
      certificate: { signatures: certified.signatures },
      transactions: certified.proposal.requests,
      results: execution.results,
    };
    this.storage.commitBlock(block, writes);
    const closesEpoch = this.closing.delete(height);
    if (closesEpoch) this.closingHeight = height;
    this.unannounced.push({ block, events: execution.events, closesEpoch });
  }

  /**
   * Tells waiting clients and listeners of the blocks stored since the last time, in height order,
   * once they are durable: before anything is sent, and at the end of every step.
   */
  private announce(): void {
    if (this.unannounced.length === 0) return;
    // Durable before anyone hears of it: a client acknowledged must find the block after a crash.
    this.storage.sync();
    const stored = this.unannounced;
    this.unannounced = [];
    for (const { block, events, closesEpoch } of stored) {
      const height = block.header.height;
      // Only requests submitted here have someone waiting; replicas that just order them skip the hashing.
      if (this.waiters.size > 0) {
        block.transactions.forEach((transaction, transactionIndex) => {
          this.settle(toHex(sha256(transaction)), { height, transactionIndex });
        });
      }
      for (const listener of this.blockListeners) listener(block, events);
      if (closesEpoch) {
        // Clients waiting on this epoch retry on the next one.
        for (const [digest] of this.waiters) this.settle(digest, undefined, this.movedError());
        for (const listener of this.closedListeners) listener(height);
      }
    }
  }

  /** What a client waiting on, or arriving at, a closed epoch gets: retriable on the next one. */
  private movedError(): LedgerbusError {
    return new LedgerbusError(
      ErrorCode.ConnectionClosed,
      `${this.config.groupId} moved to a new replica set`,
      { retriable: true },
    );
  }

  private answerFromLedger(request: Uint8Array, seq: number): void {
    const found = this.findCommitted(request);
    if (found !== undefined) this.settle(toHex(sha256(request)), found);
    else this.options.log?.('warn', 'retransmitted request not found in its block', { seq });
    for (const listener of this.retransmittedListeners) listener(request, seq);
  }

  private findCommitted(request: Uint8Array): CommittedRequest | undefined {
    const found = this.storage.blocks.findTransaction(sha256(request));
    return found === undefined ? undefined : { height: found.height, transactionIndex: found.index };
  }

  private settle(digest: string, result?: CommittedRequest, error?: Error): void {
    const list = this.waiters.get(digest);
    if (list === undefined) return;
    this.waiters.delete(digest);
    for (const waiter of list) {
      waiter.cancelTimer();
      if (result !== undefined) waiter.resolve(result);
      else waiter.reject(error ?? new Error('unsettled'));
    }
  }

  private removeWaiter(digest: string, waiter: Waiter): void {
    const list = this.waiters.get(digest)?.filter((candidate) => candidate !== waiter);
    if (list === undefined || list.length === 0) this.waiters.delete(digest);
    else this.waiters.set(digest, list);
  }

  /**
   * What a restarting process hands the core: its records, its head and its stable checkpoint (the
   * highest multiple of the checkpoint interval at or below the head, unless the epoch's base stands
   * in for it: checkpoints of an earlier epoch carry the old replicas' signatures).
   */
  private restoreFromStorage(): PbftRestore {
    const records = this.storage.records();
    const head = this.storage.blocks.head();
    const certifiedOf = (height: number): CertifiedHeader | undefined => {
      const block = this.storage.blocks.get(height);
      return block === undefined ? undefined : certifiedHeaderOf(block);
    };
    const headCertified = head === undefined ? undefined : certifiedOf(head.height);
    const stableHeight =
      head === undefined ? 0 : head.height - (head.height % this.config.checkpointInterval);
    const baseHeight = this.config.base?.header.height ?? 0;
    const stable = stableHeight > baseHeight ? certifiedOf(stableHeight) : undefined;
    return {
      records,
      ...(headCertified === undefined ? {} : { head: headCertified }),
      ...(stable === undefined ? {} : { stable }),
    };
  }
}
