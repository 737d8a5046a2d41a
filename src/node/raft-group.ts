/**
 * The node's driver of one Raft group: it feeds the pure core (consensus/raft) ticks, the wire and
 * client requests, and does what each Ready says through the shared `applyRaftReady` — persist (one
 * fsynced transaction per Ready) before anything is sent, then install a received snapshot, then apply
 * committed entries to an in-memory state machine. The state machine is not stored: a restart restores
 * the stored snapshot and replays the stored log after it, so it is rebuilt deterministically.
 *
 * A proposal's promise settles when its entry is applied HERE (so the result it carries is what every
 * replica computes), never just when it is appended.
 *
 * A failure of this node's storage of the group (a write of the Raft database, or a state machine's
 * own storage throwing a group storage error while applying) is not an outcome of the entry: the
 * core already believes the Ready durable, so the group stops here (crash-stop of this one group,
 * which Raft tolerates), everything pending is rejected, and `onStorageFailure` tells the owner,
 * which may open the group again later from what is on disk.
 */
import { randomInt } from 'node:crypto';
import { applyRaftReady, encodeRaftMessage, RaftNode } from '../consensus/raft/index.js';
import type {
  Membership,
  MembershipChange,
  RaftEntry,
  RaftHost,
  RaftInput,
  RaftMessage,
  RaftPersistOp,
  RaftReady,
  RaftSnapshot,
} from '../consensus/raft/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { isGroupStorageError } from './group-files.js';
import { RaftDatabase } from './raft-database.js';

export interface ReplicatedStateMachine {
  /**
   * Applies one committed normal entry deterministically; returns the result handed to whoever
   * proposed it. Must not throw on bad data (return an error result instead). Empty data (leader
   * no-op entries) must be accepted. A failure of this node's own storage must be thrown as a group
   * storage error (`groupStorageError`): the entry then stays unapplied and the group stops here,
   * rather than every replica but this one having applied it.
   */
  apply(index: number, data: Uint8Array): Uint8Array;
  /** Serializes the whole state (for snapshots). */
  snapshot(): Uint8Array;
  /**
   * Replaces the whole state with a snapshot taken at `index` (also called at start when the
   * database holds a snapshot).
   */
  restore(index: number, data: Uint8Array): void;
  /**
   * Optional: false while the entry cannot be applied yet (a topic entry naming a __system index
   * this node has not applied). The group holds it, and every entry after it, until `resume()`.
   */
  ready?(data: Uint8Array): boolean;
}

export interface RaftGroupOptions {
  readonly groupId: string;
  readonly selfNodeId: string;
  /** Initial configuration (used until the log/snapshot holds one). */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly dataDirectory: string;
  readonly stateMachine: ReplicatedStateMachine;
  /** Sends encoded Raft message bytes to a node. Must not throw; may drop. */
  readonly sendTo: (nodeId: string, bytes: Uint8Array) => void;
  /** Base election timeout in ticks. Default 20 (a node ticking every 10 ms: 200–400 ms). */
  readonly electionTicks?: number;
  /** Default 3. */
  readonly heartbeatTicks?: number;
  /** Take a snapshot (and compact the log) every this many applied entries; 0 = never. Default 0. */
  readonly snapshotEvery?: number;
  /** How long propose, readIndex, changeMembership and waitApplied wait. Default 30 000 ms. */
  readonly commitTimeoutMs?: number;
  readonly log?: (
    level: 'debug' | 'info' | 'warn',
    message: string,
    fields?: Record<string, unknown>,
  ) => void;
  /**
   * Called once if the group stops because this node's storage of it failed (see the file comment),
   * after everything pending was rejected and the database closed. Not called on `close()`.
   */
  readonly onStorageFailure?: (error: LedgerbusError) => void;
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
  readonly timer: NodeJS.Timeout;
}

interface ReadWaiter {
  /** Set once the leader confirmed the read (thesis §6.4): then it only waits for the apply. */
  index: number | undefined;
  resolve(index: number): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

interface AppliedWaiter {
  readonly index: number;
  resolve(): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

const empty = new Uint8Array(0);

export class RaftGroup {
  readonly groupId: string;
  private readonly core: RaftNode;
  private readonly database: RaftDatabase;
  private readonly stateMachine: ReplicatedStateMachine;
  private readonly host: RaftHost;
  private readonly commitTimeoutMs: number;
  private readonly snapshotEvery: number;
  private applied = 0;
  /** Committed entries handed out by the core and not yet applied, in order. */
  private readonly applyQueue: RaftEntry[] = [];
  private pendingPersist: RaftPersistOp[] = [];
  /** By log index: at most one waiter per index, since a leader appends each index once per term. */
  private readonly entryWaiters = new Map<number, EntryWaiter>();
  private readonly readWaiters = new Map<string, ReadWaiter>();
  private readonly appliedWaiters = new Set<AppliedWaiter>();
  private readonly appliedListeners = new Set<(index: number) => void>();
  private nextReadId = 0;
  /**
   * Work that arrived while a Ready was being handled (an onApplied listener proposing, say). The
   * core could take it, but the outer Ready would then report an `applied` index behind the inner
   * one's; running it afterwards keeps one Ready at a time.
   */
  private readonly deferred: (() => void)[] = [];
  private driving = false;
  private closed = false;
  private storageFailure: LedgerbusError | undefined;

  constructor(private readonly options: RaftGroupOptions) {
    this.groupId = options.groupId;
    this.stateMachine = options.stateMachine;
    this.commitTimeoutMs = options.commitTimeoutMs ?? 30_000;
    this.snapshotEvery = options.snapshotEvery ?? 0;
    if (!Number.isSafeInteger(this.snapshotEvery) || this.snapshotEvery < 0) {
      throw new LedgerbusError(ErrorCode.BadConfig, `raft snapshotEvery: must be a non-negative integer`);
    }
    this.database = RaftDatabase.open(options.dataDirectory, options.groupId);
    try {
      const restore = this.database.restore();
      this.core = new RaftNode(
        {
          id: options.selfNodeId,
          voters: options.voters,
          learners: options.learners,
          // The core is deterministic given its seed; each (re)start needs its own so that servers
          // restarted together do not time out in lockstep.
          seed: randomInt(0, 0x7fff_ffff),
          electionTicks: options.electionTicks ?? 20,
          heartbeatTicks: options.heartbeatTicks ?? 3,
        },
        restore,
      );
      if (restore?.snapshot !== undefined) {
        this.stateMachine.restore(restore.snapshot.index, restore.snapshot.data);
        this.applied = restore.snapshot.index;
      }
    } catch (error) {
      this.database.close();
      throw error;
    }
    this.host = {
      step: (input) => this.core.step(input),
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
    // The core hands out the stored committed entries after the snapshot on its next step; an
    // `applied` report of what the snapshot covers changes nothing else, so replay happens now and
    // the state machine is current when the constructor returns.
    try {
      this.drive({ kind: 'applied', index: this.applied });
    } catch (error) {
      this.database.close();
      throw error;
    }
    this.options.log?.('info', 'raft group opened', this.fields({ applied: this.applied }));
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
  /** Why the group stopped on this node, if its storage failed. */
  get failure(): LedgerbusError | undefined {
    return this.storageFailure;
  }

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

  /** Bytes from a peer; anything malformed is logged at debug and dropped. */
  receive(bytes: Uint8Array): void {
    this.run(() => this.drive({ kind: 'bytes', bytes }));
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
        const timer = setTimeout(() => {
          this.readWaiters.delete(id);
          reject(this.timeout('read not confirmed'));
        }, this.commitTimeoutMs);
        this.readWaiters.set(id, { index: undefined, resolve, reject, timer });
        const ready = this.core.step({ kind: 'readIndex', id });
        // The core refuses only in this step's Ready (too many pending reads, say): the rest of its
        // rejections concern other inputs, so the first one is ours.
        const refusal = ready.rejected[0];
        this.handle(ready);
        if (refusal !== undefined && this.readWaiters.get(id)?.index === undefined) {
          this.settleRead(id, undefined, this.refusal(refusal.code, refusal.reason));
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
      const waiter: AppliedWaiter = {
        index,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.appliedWaiters.delete(waiter);
          reject(this.timeout(`index ${index} not applied (applied: ${this.applied})`));
        }, timeoutMs),
      };
      this.appliedWaiters.add(waiter);
    });
  }

  /** Rejects everything pending with ConnectionClosed (retriable) and closes the database. */
  close(): void {
    if (this.closed) return;
    if (this.driving) {
      // Closing the database in the middle of a Ready would lose its persist ops; finish it first.
      this.deferred.push(() => this.close());
      return;
    }
    this.closed = true;
    this.deferred.length = 0;
    this.rejectWaiters(this.closedError());
    this.database.close();
    this.options.log?.('info', 'raft group closed', this.fields({ applied: this.applied }));
  }

  /** Fails every proposal, read and applied-index wait still pending with `error`. */
  private rejectWaiters(error: LedgerbusError): void {
    for (const index of [...this.entryWaiters.keys()]) this.settleEntry(index, undefined, error);
    for (const id of [...this.readWaiters.keys()]) this.settleRead(id, undefined, error);
    for (const waiter of this.appliedWaiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.appliedWaiters.clear();
  }

  /** Stops the group on this node because its storage failed (see the file comment). */
  private stopOnStorageFailure(error: LedgerbusError): void {
    if (this.closed) return;
    this.closed = true;
    this.storageFailure = error;
    this.deferred.length = 0;
    this.pendingPersist = [];
    this.applyQueue.length = 0;
    this.rejectWaiters(error);
    try {
      this.database.close();
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

  // ---- driver ----

  /**
   * Runs `action` now, or after the Ready being handled if called from inside one. A group storage
   * error thrown by it stops the group (and is not rethrown: the caller is a tick, a message or a
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
      if (!isGroupStorageError(error)) throw error;
      this.stopOnStorageFailure(error);
    } finally {
      this.driving = false;
    }
  }

  private drive(input: RaftInput): void {
    if (this.closed) return;
    this.handle(this.core.step(input));
  }

  private handle(ready: RaftReady): void {
    applyRaftReady(this.host, ready);
    this.flushPersist();
    if (!this.isLeader) this.abortUnconfirmedReads();
    this.maybeSnapshot();
  }

  private flushPersist(): void {
    if (this.pendingPersist.length === 0) return;
    const ops = this.pendingPersist;
    this.pendingPersist = [];
    this.database.persist(ops);
  }

  private send(to: string, message: RaftMessage): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeRaftMessage(message);
    } catch (error) {
      // The core built it, so this is a bug; dropping it is safe (Raft tolerates message loss).
      this.options.log?.('warn', 'raft message not encodable', this.fields({ to, error: String(error) }));
      return;
    }
    try {
      this.options.sendTo(to, bytes);
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
    if (covered - status.snapshotIndex < this.snapshotEvery) return;
    const ready = this.core.step({
      kind: 'snapshot',
      index: covered,
      data: this.stateMachine.snapshot(),
    });
    applyRaftReady(this.host, ready);
    this.flushPersist();
    this.options.log?.('debug', 'raft log compacted', this.fields({ index: status.applied }));
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
        // would leave this one diverged. The entry stays unapplied and the group stops (see `run`).
        if (isGroupStorageError(error)) throw error;
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
        clearTimeout(waiter.timer);
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
    const ready = this.core.step(input);
    const status = this.core.status();
    if (status.lastIndex === before) {
      const refusal = ready.rejected[0];
      this.handle(ready);
      reject(
        refusal === undefined
          ? new LedgerbusError(ErrorCode.Internal, `${what}: not appended`)
          : this.refusal(refusal.code, refusal.reason),
      );
      return;
    }
    // Registered before the Ready is handled: a single-voter group commits in this very Ready.
    const index = status.lastIndex;
    const timer = setTimeout(() => {
      this.entryWaiters.delete(index);
      reject(this.timeout(`entry ${index} not applied`));
    }, this.commitTimeoutMs);
    this.settleEntry(index, undefined, this.superseded(index));
    this.entryWaiters.set(index, {
      term: status.term,
      resolve: (result) => resolve(result, index),
      reject,
      timer,
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
    clearTimeout(waiter.timer);
    if (error === undefined && result !== undefined) waiter.resolve(result);
    else waiter.reject(error ?? new Error('unsettled'));
  }

  private settleRead(id: string, index: number | undefined, error?: Error): void {
    const read = this.readWaiters.get(id);
    if (read === undefined) return;
    this.readWaiters.delete(id);
    clearTimeout(read.timer);
    if (error === undefined && index !== undefined) read.resolve(index);
    else read.reject(error ?? new Error('unsettled'));
  }

  // ---- errors ----

  private notLeader(what: string): LedgerbusError {
    const leader = this.leader;
    return new LedgerbusError(
      ErrorCode.NotLeader,
      `${what} on ${this.groupId}: ${this.options.selfNodeId} is not the leader (leader: ${leader ?? 'unknown'})`,
      { retriable: true },
    );
  }

  private refusal(code: ErrorCode, reason: string): LedgerbusError {
    if (code === ErrorCode.NotPrimary) return this.notLeader(reason);
    // A Rejection carries no retriable flag; the core says "retry" in the reason of every refusal
    // that may pass (a pending membership change, a full queue, a leadership transfer).
    return new LedgerbusError(code, `${this.groupId}: ${reason}`, {
      retriable: code === ErrorCode.Overloaded || reason.includes('retry'),
    });
  }

  private superseded(index: number): LedgerbusError {
    return new LedgerbusError(
      ErrorCode.NotLeader,
      `${this.groupId}: leadership changed and entry ${index} was replaced or its outcome is unknown; retry at the leader (leader: ${this.leader ?? 'unknown'})`,
      { retriable: true },
    );
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
