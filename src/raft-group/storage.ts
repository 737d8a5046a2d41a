/**
 * What a Raft group driver stores, and two places to store it: the node's SQLite file
 * (`RaftDatabase`, in src/node, implements `RaftGroupStorage` as it is) and `MemoryRaftStorage` here,
 * the simulator's, the test cluster's and the benchmark's disk.
 *
 * A `persist` call is one transaction, atomic. It is durable once `sync` has returned; the driver
 * syncs before anything that shows a write to the world (sending a message, applying an entry,
 * installing a snapshot), which is how "persist BEFORE send" reaches the disk. SQLite with
 * synchronous=FULL fsyncs every commit, so there `sync` has nothing left to do. The memory storage
 * keeps unsynced transactions apart, so a simulated crash loses them (or keeps a prefix: a torn
 * write of an append-only log).
 */
import type {
  HardState,
  RaftEntry,
  RaftPersistOp,
  RaftRestore,
  RaftSnapshot,
} from '../consensus/raft/index.js';
import { AssertionError } from '../errors.js';

/**
 * One Raft group's durable state: the hard state, the log after the snapshot, the latest snapshot.
 * A failed write throws a LedgerbusError with code StorageUnavailable (the driver then stops).
 */
export interface RaftGroupStorage {
  /** What the core needs to restart, or undefined when nothing was ever persisted. */
  restore(): RaftRestore | undefined;
  /** Applies a Ready's persist ops, in order, as one transaction. */
  persist(ops: readonly RaftPersistOp[]): void;
  /** Returns once every transaction written so far is durable. */
  sync(): void;
  /** Releases the storage; nothing is read or written after. */
  close(): void;
}

/** A Raft "disk" image: what a server keeps across a crash. */
export interface RaftStorageImage {
  hardState: HardState;
  snapshot?: RaftSnapshot;
  /** Entries after the snapshot, in order. */
  entries: RaftEntry[];
}

/**
 * Applies one persist op to an image, checking that the core only ever asks for consistent changes
 * (the model `RaftDatabase` is tested against).
 */
export function applyRaftPersist(storage: RaftStorageImage, op: RaftPersistOp): void {
  switch (op.op) {
    case 'hardState':
      storage.hardState = op.hardState;
      return;
    case 'snapshot':
      storage.snapshot = op.snapshot;
      storage.entries = storage.entries.filter((e) => e.index > op.snapshot.index);
      return;
    case 'truncate':
      storage.entries = storage.entries.filter((e) => e.index < op.fromIndex);
      return;
    case 'append': {
      const last = storage.entries.at(-1)?.index ?? storage.snapshot?.index ?? 0;
      if (op.entries[0]!.index !== last + 1)
        throw new Error(`append at ${op.entries[0]!.index} after ${last}`);
      storage.entries.push(...op.entries);
      return;
    }
  }
}

function emptyImage(): RaftStorageImage {
  return { hardState: { term: 0, votedFor: null, commit: 0 }, entries: [] };
}

function copyImage(image: RaftStorageImage): RaftStorageImage {
  return {
    hardState: image.hardState,
    entries: [...image.entries],
    ...(image.snapshot === undefined ? {} : { snapshot: image.snapshot }),
  };
}

/** What a crash did to the unsynced transactions. */
export interface RaftCrashOutcome {
  /** Unsynced transactions at the crash. */
  readonly unsynced: number;
  /** How many of them survived (a prefix). */
  readonly kept: number;
}

/**
 * A Raft group's disk in memory. Reads see every write, synced or not, as a running process does;
 * `crash` rolls back to the synced image plus the prefix of unsynced transactions it is told to keep.
 */
export class MemoryRaftStorage implements RaftGroupStorage {
  private synced: RaftStorageImage = emptyImage();
  private running: RaftStorageImage = emptyImage();
  /** Written since the last `sync`, which empties it. */
  private unsynced: (readonly RaftPersistOp[])[] = [];
  private written = false;
  private closed = false;

  /** The image as the running process sees it (synced or not). */
  get current(): Readonly<RaftStorageImage> {
    return this.running;
  }

  /** Transactions written and not yet synced. */
  get unsyncedCount(): number {
    return this.unsynced.length;
  }

  restore(): RaftRestore | undefined {
    this.assertOpen();
    return this.written ? copyImage(this.running) : undefined;
  }

  persist(ops: readonly RaftPersistOp[]): void {
    this.assertOpen();
    if (ops.length === 0) return;
    for (const op of ops) applyRaftPersist(this.running, op);
    this.unsynced.push([...ops]);
    this.written = true;
  }

  sync(): void {
    this.assertOpen();
    for (const ops of this.unsynced) for (const op of ops) applyRaftPersist(this.synced, op);
    this.unsynced = [];
  }

  close(): void {
    this.closed = true;
  }

  /**
   * The process died: of the unsynced transactions only the first `keep` survive (none by default).
   * The storage then holds exactly what a restarted process would find, and is open again.
   */
  crash(keep = 0): RaftCrashOutcome {
    const unsynced = this.unsynced.length;
    const kept = Math.max(0, Math.min(keep, unsynced));
    for (const ops of this.unsynced.slice(0, kept)) for (const op of ops) applyRaftPersist(this.synced, op);
    this.unsynced = [];
    this.running = copyImage(this.synced);
    this.closed = false;
    return { unsynced, kept };
  }

  private assertOpen(): void {
    if (this.closed) throw new AssertionError('raft memory storage used after close');
  }
}
