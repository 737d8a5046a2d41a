/**
 * What a partition driver stores, and two places to store it: the node's SQLite file
 * (`PartitionDatabase`, in src/node, implements `PartitionStorage` as it is) and `MemoryPartitionStorage`
 * here, the simulator's and tests' disk.
 *
 * Writes are transactions, each atomic. A transaction is durable once `sync` has returned; the driver
 * calls `sync` before anything that shows a write to the world (sending, acknowledging, telling a
 * listener), which is how "persist BEFORE send" reaches the disk. SQLite with synchronous=FULL fsyncs
 * every commit, so there `sync` has nothing left to do. The memory storage keeps unsynced
 * transactions apart, so a simulated crash can lose them or keep only the first few (a torn write:
 * SQLite's WAL is an append-only log, so what survives a power cut is a prefix of it — never part of a
 * transaction, whose frames are checksummed together).
 */
import { toHex } from '../codec/index.js';
import { sha256 } from '../crypto/index.js';
import type { ContractState } from '../contracts/state.js';
import type { PersistOp, PersistRecord } from '../consensus/pbft/types.js';
import { applyPersistOp } from '../consensus/pbft/driver.js';
import type { Block } from '../ledger/block.js';
import { AssertionError } from '../errors.js';

/** Contract writes of one executed height, not yet durable: undefined marks a delete. */
export type StateWrites = Map<string, Uint8Array | undefined>;

/** The certified blocks of one partition, read side (the node's `BlockStore` is one). */
export interface PartitionBlocks {
  /** The highest stored block's height and header, or undefined for an empty store. */
  head(): { readonly height: number; readonly header: Block['header'] } | undefined;
  get(height: number): Block | undefined;
  /** Stored blocks from `fromHeight` to `toHeightInclusive`, ascending, at most `limit`. */
  range(fromHeight: number, toHeightInclusive: number, limit?: number): Block[];
  /** Where a transaction was first stored, found by sha256(transaction). */
  findTransaction(txHash: Uint8Array): { height: number; index: number } | undefined;
}

/**
 * One partition replica's durable state: certified blocks, the contract state as of the last stored
 * block, and the PBFT core's persist records of the current epoch. A failed write throws a
 * LedgerbusError with code StorageUnavailable (the driver then stops; see PartitionDriver).
 */
export interface PartitionStorage {
  readonly blocks: PartitionBlocks;
  /** The contract state as of the last stored block (reads only; writes go through commitBlock). */
  readonly committedState: Pick<ContractState, 'get'>;
  /** Makes `epoch` the one whose consensus records are kept: records of another epoch are dropped. */
  startEpoch(epoch: number): void;
  /** Applies PBFT persist ops as one transaction. */
  persist(ops: readonly PersistOp[]): void;
  records(): PersistRecord[];
  /** Stores a certified block and its execution's contract writes as one transaction. */
  commitBlock(block: Block, writes: StateWrites): void;
  /** Returns once every transaction written so far is durable. */
  sync(): void;
}

/**
 * The contract's view while blocks are executed ahead of their certificates: reads go through the
 * pending writes of executed-but-uncertified heights (newest first) to the committed state; each
 * execution writes into its own layer, which `commitBlock` makes durable when the height certifies.
 */
export class LayeredContractState {
  /** One per executed height not yet certified: `take` removes each as its block is stored. */
  private readonly layers: { height: number; writes: StateWrites }[] = [];

  constructor(private readonly base: Pick<ContractState, 'get'>) {}

  /** A ContractState whose writes go to a new layer for `height`. */
  layerFor(height: number): ContractState {
    const writes: StateWrites = new Map();
    this.layers.push({ height, writes });
    return {
      get: (key) => this.read(key),
      // ContractState lets a store keep `value` as is: the contracts write fresh encodings only.
      put: (key, value) => writes.set(key, value),
      delete: (key) => writes.set(key, undefined),
    };
  }

  /** Removes and returns the oldest layer, which must be `height`'s. */
  take(height: number): StateWrites | undefined {
    const first = this.layers[0];
    if (first === undefined || first.height !== height) return undefined;
    this.layers.shift();
    return first.writes;
  }

  clear(): void {
    this.layers.length = 0;
  }

  private read(key: string): Uint8Array | undefined {
    for (let index = this.layers.length - 1; index >= 0; index--) {
      const writes = (this.layers[index] as { writes: StateWrites }).writes;
      if (writes.has(key)) return writes.get(key);
    }
    return this.base.get(key);
  }
}

/** One write transaction, as the memory storage replays it. */
type Transaction =
  | { readonly kind: 'persist'; readonly ops: readonly PersistOp[] }
  | { readonly kind: 'block'; readonly block: Block; readonly writes: StateWrites }
  | { readonly kind: 'epoch'; readonly epoch: number };

/** What a crash did to the unsynced transactions. */
export interface CrashOutcome {
  /** Unsynced transactions at the crash. */
  readonly unsynced: number;
  /** How many of them survived (a prefix). */
  readonly kept: number;
}

/** Thrown by `MemoryPartitionStorage` at the write `crashAtWrite` chose: the process died there. */
export class SimulatedCrash extends Error {
  constructor() {
    super('simulated crash during a write');
    this.name = 'SimulatedCrash';
  }
}

/** The durable image and everything derived from it, rebuilt when a crash rolls writes back. */
class MemoryImage {
  // A disk's content: it grows with the ledger, as the SQLite file does (simulator and tests only).
  readonly blocks: Block[] = [];
  readonly byTransaction = new Map<string, { height: number; index: number }>();
  readonly state = new Map<string, Uint8Array>();
  readonly records = new Map<string, PersistRecord>();
  epoch: number | undefined;

  apply(transaction: Transaction): void {
    if (transaction.kind === 'epoch') {
      if (this.epoch !== undefined && this.epoch !== transaction.epoch) this.records.clear();
      this.epoch = transaction.epoch;
    } else if (transaction.kind === 'persist') {
      for (const op of transaction.ops) applyPersistOp(this.records, op);
    } else {
      const { block, writes } = transaction;
      if (block.header.height !== this.blocks.length + 1) {
        throw new AssertionError(`block ${block.header.height} does not follow ${this.blocks.length}`);
      }
      this.blocks.push(block);
      block.transactions.forEach((bytes, index) => {
        const key = toHex(sha256(bytes));
        if (!this.byTransaction.has(key)) this.byTransaction.set(key, { height: block.header.height, index });
      });
      for (const [key, value] of writes) {
        if (value === undefined) this.state.delete(key);
        else this.state.set(key, value);
      }
    }
  }
}

/**
 * A partition's disk in memory, for the simulator and tests. Reads see every write (synced or not),
 * as a running process does; `crash` rolls back to the synced image plus the prefix of unsynced
 * transactions it is told to keep. `crashAtWrite` arms a crash in the middle of some later write.
 */
export class MemoryPartitionStorage implements PartitionStorage {
  private synced = new MemoryImage();
  private current = new MemoryImage();
  /** Written since the last `sync`, which empties it (the driver syncs before showing anything). */
  private unsynced: Transaction[] = [];
  private writesUntilCrash: number | undefined;
  private crashUnsyncedMin = 1;

  readonly blocks: PartitionBlocks = {
    head: () => {
      const block = this.current.blocks.at(-1);
      return block === undefined ? undefined : { height: block.header.height, header: block.header };
    },
    get: (height) => this.current.blocks[height - 1],
    range: (fromHeight, toHeightInclusive, limit = Number.MAX_SAFE_INTEGER) =>
      this.current.blocks.slice(
        Math.max(fromHeight, 1) - 1,
        Math.min(toHeightInclusive, fromHeight - 1 + limit, this.current.blocks.length),
      ),
    findTransaction: (txHash) => this.current.byTransaction.get(toHex(txHash)),
  };

  readonly committedState: Pick<ContractState, 'get'> = {
    get: (key) => this.current.state.get(key),
  };

  startEpoch(epoch: number): void {
    this.write({ kind: 'epoch', epoch });
  }

  persist(ops: readonly PersistOp[]): void {
    if (ops.length === 0) return;
    this.write({ kind: 'persist', ops: [...ops] });
  }

  records(): PersistRecord[] {
    return [...this.current.records.values()];
  }

  commitBlock(block: Block, writes: StateWrites): void {
    this.write({ kind: 'block', block, writes: new Map(writes) });
  }

  sync(): void {
    for (const transaction of this.unsynced) this.synced.apply(transaction);
    this.unsynced = [];
  }

  /** Transactions written and not yet synced. */
  get unsyncedCount(): number {
    return this.unsynced.length;
  }

  /**
   * Arms a crash: the `writes`-th write from now (1 = the next) is made, then `SimulatedCrash` is
   * thrown from it, as if the process died before syncing. Only writes that leave at least
   * `unsyncedMin` transactions unsynced count (2: a crash with something to tear).
   */
  crashAtWrite(writes: number, unsyncedMin = 1): void {
    if (!Number.isInteger(writes) || writes < 1) throw new AssertionError('crashAtWrite needs writes ≥ 1');
    this.writesUntilCrash = writes;
    this.crashUnsyncedMin = unsyncedMin;
  }

  /** Takes back an armed crash that has not happened. */
  disarm(): void {
    this.writesUntilCrash = undefined;
  }

  /**
   * The process died: of the unsynced transactions only the first `keep` survive (none by default).
   * The storage then holds exactly what a restarted process would find.
   */
  crash(keep = 0): CrashOutcome {
    const unsynced = this.unsynced.length;
    const kept = Math.max(0, Math.min(keep, unsynced));
    for (const transaction of this.unsynced.slice(0, kept)) this.synced.apply(transaction);
    this.unsynced = [];
    this.writesUntilCrash = undefined;
    // Rebuild the running image from the durable one (blocks and records are shared, never mutated).
    const image = new MemoryImage();
    image.blocks.push(...this.synced.blocks);
    for (const [key, value] of this.synced.byTransaction) image.byTransaction.set(key, value);
    for (const [key, value] of this.synced.state) image.state.set(key, value);
    for (const [key, value] of this.synced.records) image.records.set(key, value);
    image.epoch = this.synced.epoch;
    this.current = image;
    return { unsynced, kept };
  }

  private write(transaction: Transaction): void {
    this.current.apply(transaction);
    this.unsynced.push(transaction);
    if (this.writesUntilCrash === undefined || this.unsynced.length < this.crashUnsyncedMin) return;
    this.writesUntilCrash -= 1;
    if (this.writesUntilCrash === 0) {
      this.writesUntilCrash = undefined;
      throw new SimulatedCrash();
    }
  }
}
