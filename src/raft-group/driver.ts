/**
 * The Raft group driver: the one host of a Raft core (consensus/raft), generic over what it runs on
 * (TigerBeetle's `ReplicaType(StateMachine, MessageBus, Storage, Time)`). The node builds it with its
 * SQLite Raft database, the real clock and the peer mesh (src/node/raft-group.ts); the simulator
 * (src/sim/raft), the Raft test cluster and the global-ledger benchmark with `MemoryRaftStorage`, a
 * simulated clock and a simulated network. So everything here — feeding the core, carrying out its
 * Ready, proposals and their waiters, read index, applied-index waits — runs under the simulator's
 * faults too.
 *
 * API (for hosts; see each member's comment for its contract):
 *
 *   const driver = new RaftGroupDriver({
 *     groupId, config,           // a name for logs and errors; the core's config (id, voters, seed...)
 *     storage,                   // RaftGroupStorage: restore(), persist(ops) (one transaction), sync()
 *     clock,                     // RaftClock: setTimeout (commit timeouts); ticks come from the host
 *     transport,                 // RaftTransport: send(peerId, message), never throws
 *     stateMachine,              // ReplicatedStateMachine: apply, snapshot, restore, ready?
 *   });
 *   driver.replay()              // apply the stored committed log now rather than on the next step
 *   driver.tick() / receive(bytes) / step(input)   // feed the core
 *   driver.propose(data), readIndex(), changeMembership(change), waitApplied(index) → Promise
 *   driver.resume()              // the state machine became ready for held entries
 *   driver.onApplied(listener), close()
 *
 * A Ready is carried out in the order `applyRaftReady` fixes: persist, send, install a snapshot,
 * apply committed entries. Persist ops are gathered and written as ONE transaction, and the storage
 * is synced, before the first message is sent, the snapshot installed or an entry applied — and at the
 * end of every step. A proposal's promise settles when its entry is applied HERE (so the result it
 * carries is what every replica computes), never just when it is appended.
 *
 * A failure of this group's storage (a write, or the state machine's own storage throwing a
 * StorageUnavailable error while applying) is not an outcome of the entry: the core already believes
 * the Ready durable, so the driver stops (crash-stop of this one group, which Raft tolerates),
 * everything pending is rejected, and `onStorageFailure` tells the owner.
 */
import { applyRaftReady, RaftNode } from '../consensus/raft/index.js';
import type {
  Membership,
  MembershipChange,
  RaftConfig,
  RaftEntry,
  RaftHost,
  RaftInput,
  RaftMessage,
  RaftPersistOp,
  RaftReady,
  RaftSnapshot,
  Rejection,
} from '../consensus/raft/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import type { RaftGroupStorage } from './storage.js';

export interface ReplicatedStateMachine {
  /**
   * Applies one committed normal entry deterministically; returns the result handed to whoever
   * proposed it. Must not throw on bad data (return an error result instead). Empty data (leader
   * no-op entries) must be accepted. A failure of this node's own storage must be thrown as a
   * StorageUnavailable LedgerbusError (`groupStorageError`): the entry then stays unapplied and the
   * group stops here, rather than every replica but this one having applied it.
   */
  apply(index: number, data: Uint8Array): Uint8Array;
  /** Serializes the whole state (for snapshots). */
  snapshot(): Uint8Array;
  /**
   * Optional: called before a snapshot is taken to compact the log. A state machine that keeps part
   * of its state outside the snapshot (the global ledger's blocks) makes it durable here, since the
   * log will no longer replay it; false leaves the log as it is this time.
   */
  prepareSnapshot?(): boolean;
  /**
   * Replaces the whole state with a snapshot taken at `index` (also called at start when the
   * storage holds a snapshot).
   */
  restore(index: number, data: Uint8Array): void;
  /**
   * Optional: false while the entry cannot be applied yet (a topic entry naming a __system index
   * this node has not applied). The group holds it, and every entry after it, until `resume()`.
   */
  ready?(data: Uint8Array): boolean;
}

/** Time as the driver sees it: the host's clock, real or simulated. Ticks are fed by the host. */
export interface RaftClock {
  /** Calls `callback` once after `ms`; the returned function cancels it. */
  setTimeout(callback: () => void, ms: number): () => void;
}

/** The wire to the group's other members. */
export interface RaftTransport {
  /** Sends a message to a member (never this one). Should not throw; may drop. */
  send(to: string, message: RaftMessage): void;
}

/**
 * Hooks for a host that watches the core as it runs (the simulator's invariants and trace, the test
 * cluster's records). They must not call the driver, and none changes what happens.
 */
export interface RaftDriverObserver {
  /** Every input, just before the core steps it. */
  stepping?(input: RaftInput): void;
  /** Every Ready the core returned, before the driver carries any of it out. */
  stepped?(input: RaftInput, ready: RaftReady): void;
  /** Every committed entry, normal or configuration, once applied (after the state machine). */
  applied?(entry: RaftEntry): void;
}

export type RaftGroupLogger = (
  level: 'debug' | 'info' | 'warn',
  message: string,
  fields?: Record<string, unknown>,
) => void;

export interface RaftGroupDriverOptions {
  /** Names the group in logs and errors. */
  readonly groupId: string;
  /** The core's config: this member's id, the initial configuration, its seed and tuning. */
  readonly config: RaftConfig;
  readonly storage: RaftGroupStorage;
  readonly clock: RaftClock;
  readonly transport: RaftTransport;
  readonly stateMachine: ReplicatedStateMachine;
  /** Take a snapshot (and compact the log) every this many applied entries; 0 = never. Default 0. */
  readonly snapshotEvery?: number;
  /**
   * Also take one once the entries applied since the last snapshot hold this many bytes, so a group
   * whose entries are large (a topic's blocks) keeps a log bounded in bytes too. 0 = no such limit.
   * Only with `snapshotEvery` > 0. Default 0.
   */
  readonly snapshotBytes?: number;
  /** How long propose, readIndex, changeMembership and waitApplied wait. Default 30 000 ms. */
  readonly commitTimeoutMs?: number;
  readonly log?: RaftGroupLogger;
  /**
   * Called once if the driver stops because its storage failed (see the file comment), after
   * everything pending was rejected and the storage closed. Not called on `close()`.
   */
  readonly onStorageFailure?: (error: LedgerbusError) => void;
  readonly observer?: RaftDriverObserver;
}

export interface Proposed {
  readonly index: number;
  readonly result: Uint8Array;
}

/** Someone waiting for the entry (index, term) to be applied. */
interface EntryWaiter {
  readonly term: number;
  resolve(result: Uint8Array): void;
  reject(error: Error): void;
  readonly cancelTimer: () => void;
}

interface ReadWaiter {
  /** Set once the leader confirmed the read (thesis §6.4): then it only waits for the apply. */
  index: number | undefined;
  resolve(index: number): void;
  reject(error: Error): void;
  readonly cancelTimer: () => void;
}

interface AppliedWaiter {
  readonly index: number;
  resolve(): void;
  reject(error: Error): void;
  cancelTimer: () => void;
}

const empty = new Uint8Array(0);

/** True for a failure of this group's storage (what stops the driver rather than propagating). */
export function isStorageFailure(error: unknown): error is LedgerbusError {
  return isLedgerbusError(error, ErrorCode.StorageUnavailable);
}

export class RaftGroupDriver {
  readonly groupId: string;
  private readonly selfId: string;
  private readonly core: RaftNode;
  private readonly storage: RaftGroupStorage;
  private readonly stateMachine: ReplicatedStateMachine;
  private readonly clock: RaftClock;
  private readonly host: RaftHost;
  private readonly commitTimeoutMs: number;
  private readonly snapshotEvery: number;
  private readonly snapshotBytes: number;
  /** Bytes of the entries applied since the last snapshot (since the start, after a restart). */
  private bytesSinceSnapshot = 0;
  private readonly observer: RaftDriverObserver;
  private applied = 0;
  /**
   * Committed entries handed out by the core and not yet applied, in order. Empty except while the
   * state machine holds an entry (`ready`): a topic group then queues all until __system catches up.
   */
  private readonly applyQueue: RaftEntry[] = [];
  /** Records of the Ready being handled, flushed before it sends anything. */
  private pendingPersist: RaftPersistOp[] = [];
  /**
   * By log index: at most one waiter per index, since a leader appends each index once per term. Each
   * leaves when applied, superseded, or at `commitTimeoutMs`.
   */
  private readonly entryWaiters = new Map<number, EntryWaiter>();
  /** Reads in flight: each leaves when applied, refused, abandoned or at `commitTimeoutMs`. */
  private readonly readWaiters = new Map<string, ReadWaiter>();
  /** Each leaves once its index is applied, or at its timeout. */
  private readonly appliedWaiters = new Set<AppliedWaiter>();
  /** One per subscriber, removed by the function `onApplied` returns. */
  private readonly appliedListeners = new Set<(index: number) => void>();
  private nextReadId = 0;
  /**
   * Work that arrived while a Ready was being handled (an onApplied listener proposing, say). The
   * core could take it, but the outer Ready would then report an `applied` index behind the inner
   * one's; running it afterwards keeps one Ready at a time. Drained when that Ready is done.
   */
  private readonly deferred: (() => void)[] = [];
  private driving = false;
  private closed = false;
  private storageFailure: LedgerbusError | undefined;

  /**
   * Restores the core from `storage` (and the state machine from the stored snapshot, if any). The
   * stored committed entries after the snapshot are applied on the first step, or now by `replay()`.
   * Throws (having closed the storage) if the stored state is unreadable or the config invalid.
   */
  constructor(private readonly options: RaftGroupDriverOptions) {
    this.groupId = options.groupId;
    this.selfId = options.config.id;
    this.storage = options.storage;
    this.stateMachine = options.stateMachine;
    this.clock = options.clock;
    this.observer = options.observer ?? {};
    this.commitTimeoutMs = options.commitTimeoutMs ?? 30_000;
    this.snapshotEvery = options.snapshotEvery ?? 0;
    this.snapshotBytes = options.snapshotBytes ?? 0;
    try {
      if (!Number.isSafeInteger(this.snapshotEvery) || this.snapshotEvery < 0) {
        throw new LedgerbusError(ErrorCode.BadConfig, `raft snapshotEvery: must be a non-negative integer`);
      }
      if (!Number.isSafeInteger(this.snapshotBytes) || this.snapshotBytes < 0) {
        throw new LedgerbusError(ErrorCode.BadConfig, `raft snapshotBytes: must be a non-negative integer`);
      }
      const restore = this.storage.restore();
      this.core = new RaftNode(options.config, restore);
      if (restore?.snapshot !== undefined) {
        this.stateMachine.restore(restore.snapshot.index, restore.snapshot.data);
        this.applied = restore.snapshot.index;
      }
    } catch (error) {
      this.storage.close();
      throw error;
    }
    this.host = {
      step: (input) => this.stepCore(input),
      persist: (op) => {
        this.pendingPersist.push(op);
      },
      send: (to, message) => {
        this.flushPersist();
        this.send(to, message);
      },
      installSnapshot: (snapshot) => {
        this.flushPersist();
        this.installSnapshot(snapshot);
      },
      apply: (entry) => {
        this.flushPersist();
        this.applyQueue.push(entry);
        this.drainApplyQueue();
      },
      readReady: (id, index) => this.readReady(id, index),
      rejected: (code, reason) =>
        this.options.log?.('debug', 'raft input rejected', this.fields({ code, reason })),
    };
  }

  /**
   * Applies the stored committed entries after the snapshot now (the core hands them out on its next
   * step; an `applied` report of what the snapshot covers changes nothing else), so the state machine
   * is current when this returns. Throws, having closed the storage, if that fails.
   */
  replay(): void {
    try {
      this.drive({ kind: 'applied', index: this.applied });
    } catch (error) {
      this.storage.close();
      throw error;
    }
  }

  get leader(): string | null {
    return this.core.status().leader;
  }
  get isLeader(): boolean {
    return this.core.status().role === 'leader';
  }
  get appliedIndex(): number {
    return this.applied;
  }
  get members(): Membership {
    return this.core.status().membership;
  }
  /** Why the driver stopped, if its storage failed. */
  get failure(): LedgerbusError | undefined {
    return this.storageFailure;
  }
  /** True once closed or stopped by a storage failure: it takes no input after. */
  get isClosed(): boolean {
    return this.closed;
  }
  /** The core, to look at (status, log terms, held entries); input goes through the driver only. */
  get raft(): Pick<RaftNode, 'status' | 'termAt' | 'entries'> {
    return this.core;
  }

  /** One clock tick of the core. */
  tick(): void {
    this.run(() => this.drive({ kind: 'tick' }));
  }

  /** Applies held entries that have become ready (see `ReplicatedStateMachine.ready`). */
  resume(): void {
    if (this.applyQueue.length === 0 || this.closed) return;
    this.run(() => this.drainApplyQueue());
  }

  /** Committed entries waiting for the state machine to be ready for them. */
  get heldEntries(): number {
    return this.applyQueue.length;
  }

  /** Bytes from a peer; anything malformed is rejected by the core (logged at debug) and dropped. */
  receive(bytes: Uint8Array): void {
    this.run(() => this.drive({ kind: 'bytes', bytes }));
  }

  /**
   * Steps any input the host chooses (a decoded message, a raw client input the simulator makes up)
   * and carries out its Ready, which it returns; undefined if the driver is closed or busy with a
   * Ready (the input then runs right after it).
   */
  step(input: RaftInput): RaftReady | undefined {
    let ready: RaftReady | undefined;
    this.run(() => {
      if (this.closed) return;
      ready = this.stepCore(input);
      this.handle(ready);
    });
    return ready;
  }

  /**
   * Leader only. Resolves once the entry is committed AND applied here, with the state machine's
   * result. Rejects with NotLeader (retriable, naming the known leader) on a follower, retriable if
   * another entry took its index (leadership changed), with Timeout (retriable) after commitTimeoutMs.
   */
  propose(data: Uint8Array): Promise<Proposed> {
    return new Promise<Proposed>((resolve, reject) => {
      this.run(() => {
        this.appendAsLeader(
          'propose',
          { kind: 'propose', data },
          (result, index) => resolve({ index, result }),
          reject,
        );
      });
    });
  }

  /**
   * Linearizable read (read index, thesis §6.4), leader only: resolves with an index once leadership
   * was confirmed by a quorum and this node has applied up to it; the caller then reads its state.
   */
  readIndex(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.run(() => {
        if (this.refuseUnlessLeader('readIndex', reject)) return;
        const id = `read-${++this.nextReadId}`;
        const cancelTimer = this.clock.setTimeout(() => {
          this.readWaiters.delete(id);
          reject(this.timeout('read not confirmed'));
        }, this.commitTimeoutMs);
        this.readWaiters.set(id, { index: undefined, resolve, reject, cancelTimer });
        const ready = this.stepCore({ kind: 'readIndex', id });
        // The core refuses only in this step's Ready (too many pending reads, say): the rest of its
        // rejections concern other inputs, so the first one is ours.
        const refusal = ready.rejected[0];
        this.handle(ready);
        if (refusal !== undefined && this.readWaiters.get(id)?.index === undefined) {
          this.settleRead(id, undefined, this.refusal(refusal));
        }
      });
    });
  }

  /** Leader only: resolves once the configuration entry is committed and applied here. */
  changeMembership(change: MembershipChange): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.run(() => {
        this.appendAsLeader(
          'changeMembership',
          { kind: 'changeMembership', change },
          () => resolve(),
          reject,
        );
      });
    });
  }

  /**
   * Called after each applied entry (after the state machine applied it), and with the snapshot's
   * index after a snapshot from the leader replaced the state. Returns an unsubscribe function.
   */
  onApplied(listener: (index: number) => void): () => void {
    this.appliedListeners.add(listener);
    return () => {
      this.appliedListeners.delete(listener);
    };
  }

  /** Resolves once appliedIndex >= index; rejects on close, or (retriable) after `timeoutMs`. */
  waitApplied(index: number, timeoutMs: number = this.commitTimeoutMs): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    if (this.closed) return Promise.reject(this.storageFailure ?? this.closedError());
    return new Promise<void>((resolve, reject) => {
      const waiter: AppliedWaiter = { index, resolve, reject, cancelTimer: () => {} };
      waiter.cancelTimer = this.clock.setTimeout(() => {
        this.appliedWaiters.delete(waiter);
        reject(this.timeout(`index ${index} not applied (applied: ${this.applied})`));
      }, timeoutMs);
      this.appliedWaiters.add(waiter);
    });
  }

  /** Rejects everything pending with ConnectionClosed (retriable) and closes the storage. */
  close(): void {
    if (this.closed) return;
    if (this.driving) {
      // Closing the storage in the middle of a Ready would lose its persist ops; finish it first.
      this.deferred.push(() => this.close());
      return;
    }
    this.closed = true;
    this.deferred.length = 0;
    this.rejectWaiters(this.closedError());
    this.storage.close();
    this.options.log?.('info', 'raft group closed', this.fields({ applied: this.applied }));
  }

  /** Fails every proposal, read and applied-index wait still pending with `error`. */
  private rejectWaiters(error: LedgerbusError): void {
    for (const index of [...this.entryWaiters.keys()]) this.settleEntry(index, undefined, error);
    for (const id of [...this.readWaiters.keys()]) this.settleRead(id, undefined, error);
    for (const waiter of this.appliedWaiters) {
      waiter.cancelTimer();
      waiter.reject(error);
    }
    this.appliedWaiters.clear();
  }

  /** Stops the driver because its storage failed (see the file comment). */
  private stopOnStorageFailure(error: LedgerbusError): void {
    if (this.closed) return;
    this.closed = true;
    this.storageFailure = error;
    this.deferred.length = 0;
    this.pendingPersist = [];
    this.applyQueue.length = 0;
    this.rejectWaiters(error);
    try {
      this.storage.close();
    } catch {
      // The storage already failed; closing is best effort and changes nothing durable.
    }
    this.options.log?.(
      'warn',
      'raft group stopped: its storage failed',
      this.fields({ error: error.message }),
    );
    this.options.onStorageFailure?.(error);
  }

  // ---- carrying out Ready ----

  /**
   * Runs `action` now, or after the Ready being handled if called from inside one. A storage
   * failure thrown by it stops the driver (and is not rethrown: the caller is a tick, a message or a
   * proposal, none of which is at fault); any other error is a bug and propagates.
   */
  private run(action: () => void): void {
    if (this.driving) {
      this.deferred.push(action);
      return;
    }
    this.driving = true;
    try {
      action();
      for (let next = this.deferred.shift(); next !== undefined; next = this.deferred.shift()) next();
    } catch (error) {
      if (!isStorageFailure(error)) throw error;
      this.stopOnStorageFailure(error);
    } finally {
      this.driving = false;
    }
  }

  /** Every input reaches the core here, so an observer sees each one, in order. */
  private stepCore(input: RaftInput): RaftReady {
    this.observer.stepping?.(input);
    const ready = this.core.step(input);
    this.observer.stepped?.(input, ready);
    return ready;
  }

  private drive(input: RaftInput): void {
    if (this.closed) return;
    this.handle(this.stepCore(input));
  }

  private handle(ready: RaftReady): void {
    applyRaftReady(this.host, ready);
    this.flushPersist();
    if (!this.isLeader) this.abortUnconfirmedReads();
    this.maybeSnapshot();
  }

  /** Writes the gathered persist ops as one transaction and syncs: nothing is shown before this. */
  private flushPersist(): void {
    if (this.pendingPersist.length === 0) return;
    const ops = this.pendingPersist;
    this.pendingPersist = [];
    this.storage.persist(ops);
    this.storage.sync();
  }

  private send(to: string, message: RaftMessage): void {
    try {
      this.options.transport.send(to, message);
    } catch (error) {
      // Thrown out of the middle of a Ready it would leave committed entries unapplied; a lost
      // message is something Raft already tolerates.
      this.options.log?.('warn', 'raft sendTo threw', this.fields({ to, error: String(error) }));
    }
  }

  private maybeSnapshot(): void {
    if (this.snapshotEvery === 0 || this.closed) return;
    const status = this.core.status();
    // The core counts entries as applied once handed out; held entries are not in the state
    // machine yet, so the snapshot covers what the state machine really holds.
    const covered = Math.min(status.applied, this.applied);
    const byBytes = this.snapshotBytes > 0 && this.bytesSinceSnapshot >= this.snapshotBytes;
    if (covered <= status.snapshotIndex) return;
    if (covered - status.snapshotIndex < this.snapshotEvery && !byBytes) return;
    if (!this.preparedForSnapshot()) return;
    const ready = this.stepCore({ kind: 'snapshot', index: covered, data: this.stateMachine.snapshot() });
    applyRaftReady(this.host, ready);
    this.flushPersist();
    this.bytesSinceSnapshot = 0;
    this.options.log?.('debug', 'raft log compacted', this.fields({ index: status.applied }));
  }

  private preparedForSnapshot(): boolean {
    try {
      return this.stateMachine.prepareSnapshot?.() ?? true;
    } catch (error) {
      // Compaction can wait: the log still replays everything, so nothing is lost by keeping it.
      this.options.log?.(
        'warn',
        'state machine could not prepare a snapshot',
        this.fields({ error: String(error) }),
      );
      return false;
    }
  }

  private drainApplyQueue(): void {
    while (this.applyQueue.length > 0) {
      const entry = this.applyQueue[0]!;
      if (entry.type === 'normal' && this.stateMachine.ready?.(entry.data) === false) return;
      this.applyQueue.shift();
      this.apply(entry);
    }
  }

  private apply(entry: RaftEntry): void {
    let result: Uint8Array = empty;
    let failure: Error | undefined;
    if (entry.type === 'normal') {
      try {
        result = this.stateMachine.apply(entry.index, entry.data);
      } catch (error) {
        // This node's storage failed, not the entry: other replicas applied it, so carrying on
        // would leave this one diverged. The entry stays unapplied and the driver stops (see `run`).
        if (isStorageFailure(error)) throw error;
        // The contract forbids throwing; if it does anyway, every replica throws alike (apply is
        // deterministic), so carry on rather than stall the group, and tell the proposer.
        this.options.log?.(
          'warn',
          'state machine threw while applying',
          this.fields({ index: entry.index, error: String(error) }),
        );
        failure = new LedgerbusError(ErrorCode.Internal, `entry ${entry.index} failed to apply`, {
          cause: error,
        });
      }
    }
    this.applied = entry.index;
    this.bytesSinceSnapshot += entry.data.length;
    this.observer.applied?.(entry);
    const waiter = this.entryWaiters.get(entry.index);
    if (waiter !== undefined) {
      // Log matching (Raft §5.3): same index and term means the same entry.
      if (waiter.term !== entry.term) {
        this.settleEntry(entry.index, undefined, this.superseded(entry.index));
      } else this.settleEntry(entry.index, result, failure);
    }
    this.afterApplied();
  }

  private installSnapshot(snapshot: RaftSnapshot): void {
    this.bytesSinceSnapshot = 0;
    this.stateMachine.restore(snapshot.index, snapshot.data);
    this.applied = snapshot.index;
    // Whether our entries made it into the snapshot, and with which result, is unknowable now.
    for (const index of [...this.entryWaiters.keys()]) {
      if (index <= snapshot.index) this.settleEntry(index, undefined, this.superseded(index));
    }
    this.options.log?.('info', 'raft snapshot installed', this.fields({ index: snapshot.index }));
    this.afterApplied();
  }

  private afterApplied(): void {
    const index = this.applied;
    for (const [id, read] of this.readWaiters) {
      if (read.index !== undefined && read.index <= index) this.settleRead(id, read.index);
    }
    for (const waiter of this.appliedWaiters) {
      if (waiter.index <= index) {
        this.appliedWaiters.delete(waiter);
        waiter.cancelTimer();
        waiter.resolve();
      }
    }
    for (const listener of this.appliedListeners) {
      try {
        listener(index);
      } catch (error) {
        this.options.log?.('warn', 'onApplied listener threw', this.fields({ index, error: String(error) }));
      }
    }
  }

  private readReady(id: string, index: number): void {
    const read = this.readWaiters.get(id);
    if (read === undefined) return;
    if (index <= this.applied) this.settleRead(id, index);
    else read.index = index;
  }

  /** Reads the core had not confirmed when leadership was lost are abandoned by the core. */
  private abortUnconfirmedReads(): void {
    for (const [id, read] of this.readWaiters) {
      if (read.index === undefined) this.settleRead(id, undefined, this.notLeader('readIndex'));
    }
  }

  /** Steps a leader-only input that appends one entry, and waits for that entry to be applied. */
  private appendAsLeader(
    what: string,
    input: RaftInput,
    resolve: (result: Uint8Array, index: number) => void,
    reject: (error: Error) => void,
  ): void {
    if (this.refuseUnlessLeader(what, reject)) return;
    const before = this.core.status().lastIndex;
    const ready = this.stepCore(input);
    const status = this.core.status();
    if (status.lastIndex === before) {
      const refusal = ready.rejected[0];
      this.handle(ready);
      reject(
        refusal === undefined
          ? new LedgerbusError(ErrorCode.Internal, `${what}: not appended`)
          : this.refusal(refusal),
      );
      return;
    }
    // Registered before the Ready is handled: a single-voter group commits in this very Ready.
    const index = status.lastIndex;
    const cancelTimer = this.clock.setTimeout(() => {
      this.entryWaiters.delete(index);
      reject(this.timeout(`entry ${index} not applied`));
    }, this.commitTimeoutMs);
    this.settleEntry(index, undefined, this.superseded(index));
    this.entryWaiters.set(index, {
      term: status.term,
      resolve: (result) => resolve(result, index),
      reject,
      cancelTimer,
    });
    this.handle(ready);
  }

  private refuseUnlessLeader(what: string, reject: (error: Error) => void): boolean {
    if (this.closed) {
      reject(this.storageFailure ?? this.closedError());
      return true;
    }
    if (this.isLeader) return false;
    reject(this.notLeader(what));
    return true;
  }

  private settleEntry(index: number, result: Uint8Array | undefined, error?: Error): void {
    const waiter = this.entryWaiters.get(index);
    if (waiter === undefined) return;
    this.entryWaiters.delete(index);
    waiter.cancelTimer();
    if (error === undefined && result !== undefined) waiter.resolve(result);
    else waiter.reject(error ?? new Error('unsettled'));
  }

  private settleRead(id: string, index: number | undefined, error?: Error): void {
    const read = this.readWaiters.get(id);
    if (read === undefined) return;
    this.readWaiters.delete(id);
    read.cancelTimer();
    if (error === undefined && index !== undefined) read.resolve(index);
    else read.reject(error ?? new Error('unsettled'));
  }

  // ---- errors ----

  /** NOT_LEADER, retriable; the known leader, if any, in `details.leader` (and, for people, the message). */
  private notLeader(what: string): LedgerbusError {
    const leader = this.leader;
    return new LedgerbusError(
      ErrorCode.NotLeader,
      `${what} on ${this.groupId}: ${this.selfId} is not the leader (leader: ${leader ?? 'unknown'})`,
      { retriable: true, ...this.leaderDetails() },
    );
  }

  /** The core's refusal as an error, with the core's own retriable flag. */
  private refusal(rejection: Rejection): LedgerbusError {
    if (rejection.code === ErrorCode.NotLeader) return this.notLeader(rejection.reason);
    return new LedgerbusError(rejection.code, `${this.groupId}: ${rejection.reason}`, {
      retriable: rejection.retriable,
    });
  }

  private superseded(index: number): LedgerbusError {
    return new LedgerbusError(
      ErrorCode.NotLeader,
      `${this.groupId}: leadership changed and entry ${index} was replaced or its outcome is unknown; retry at the leader (leader: ${this.leader ?? 'unknown'})`,
      { retriable: true, ...this.leaderDetails() },
    );
  }

  private leaderDetails(): { details?: { leader: string } } {
    const leader = this.leader;
    return leader === null ? {} : { details: { leader } };
  }

  private timeout(what: string): LedgerbusError {
    return new LedgerbusError(
      ErrorCode.Timeout,
      `${this.groupId}: ${what} within ${this.commitTimeoutMs} ms`,
      {
        retriable: true,
      },
    );
  }

  private closedError(): LedgerbusError {
    return new LedgerbusError(ErrorCode.ConnectionClosed, `${this.groupId}: raft group closed`, {
      retriable: true,
    });
  }

  private fields(extra: Record<string, unknown>): Record<string, unknown> {
    return { group: this.groupId, ...extra };
  }
}
