/**
 * The partition storage of the benchmarks that run partition drivers in memory (bench:scale,
 * bench:pbft): the production `PartitionStorage` contract (src/partition/storage.ts), keeping only a
 * TAIL of the certified blocks when told to.
 *
 * All replicas of a run share this process's heap. `MemoryPartitionStorage`, the simulator's
 * disk, keeps every block and indexes every transaction so a simulated crash can roll back; a
 * benchmark never crashes a replica, and a heap that grows with the partition count makes garbage
 * collection cost more per request. So here every write is durable at once (`sync` has nothing to
 * do), and `dropBelow` forgets the blocks the global ledger already holds (a real replica's store is
 * on disk). Reading a dropped block throws rather than answering short, so the limit cannot hide a
 * state transfer that reaches back further than the tail.
 */
import { bytesEqual } from '../../src/codec/index.js';
import type { ContractState } from '../../src/contracts/state.js';
import { applyPersistOp } from '../../src/consensus/pbft/driver.js';
import type { PersistOp, PersistRecord } from '../../src/consensus/pbft/types.js';
import { sha256 } from '../../src/crypto/index.js';
import type { Block } from '../../src/ledger/block.js';
import type { PartitionBlocks, PartitionStorage, StateWrites } from '../../src/partition/storage.js';

export class TailPartitionStorage implements PartitionStorage {
  /** Blocks of heights `storedFrom`.. (the tail). */
  private readonly tail: Block[] = [];
  private storedFrom = 1;
  private readonly state = new Map<string, Uint8Array>();
  private readonly persisted = new Map<string, PersistRecord>();
  private epoch: number | undefined;

  constructor(private readonly label: string) {}

  readonly blocks: PartitionBlocks = {
    head: () => {
      const block = this.tail.at(-1);
      return block === undefined ? undefined : { height: block.header.height, header: block.header };
    },
    get: (height) => (height < this.storedFrom ? this.dropped(height) : this.tail[height - this.storedFrom]),
    range: (fromHeight, toHeightInclusive, limit = Number.MAX_SAFE_INTEGER) => {
      const from = Math.max(fromHeight, 1);
      if (from < this.storedFrom && from <= toHeightInclusive) return this.dropped(from);
      const start = from - this.storedFrom;
      const end = Math.min(toHeightInclusive - this.storedFrom + 1, start + limit);
      return this.tail.slice(start, Math.max(start, end));
    },
    // Only a retransmitted request asks (a client of this bench never sends one twice): scan the tail.
    findTransaction: (txHash) => {
      for (const block of this.tail) {
        const index = block.transactions.findIndex((bytes) => bytesEqual(sha256(bytes), txHash));
        if (index >= 0) return { height: block.header.height, index };
      }
      return undefined;
    },
  };

  readonly committedState: Pick<ContractState, 'get'> = { get: (key) => this.state.get(key) };

  /** Blocks held in memory. */
  get storedBlocks(): number {
    return this.tail.length;
  }

  startEpoch(epoch: number): void {
    if (this.epoch !== undefined && this.epoch !== epoch) this.persisted.clear();
    this.epoch = epoch;
  }

  persist(ops: readonly PersistOp[]): void {
    for (const op of ops) {
      this.persistOps[op.op] += 1;
      applyPersistOp(this.persisted, op);
    }
  }

  records(): PersistRecord[] {
    return [...this.persisted.values()];
  }

  commitBlock(block: Block, writes: StateWrites): void {
    const expected = this.storedFrom + this.tail.length;
    if (block.header.height !== expected) {
      throw new Error(`${this.label}: block ${block.header.height} does not follow ${expected - 1}`);
    }
    this.tail.push(block);
    for (const [key, value] of writes) {
      if (value === undefined) this.state.delete(key);
      else this.state.set(key, value);
    }
  }

  /** Persist ops applied, by kind (`put`, `truncate`): what the core asked to make durable. */
  readonly persistOps = { put: 0, truncate: 0 };

  sync(): void {
    // Every write above is already where a reader finds it, and nothing here ever crashes.
  }

  /** Forgets the blocks below `height` (never the head: the driver reads it on every step). */
  dropBelow(height: number): void {
    const keepFrom = Math.min(height, this.storedFrom + this.tail.length - 1);
    if (keepFrom <= this.storedFrom) return;
    this.tail.splice(0, keepFrom - this.storedFrom);
    this.storedFrom = keepFrom;
  }

  private dropped(height: number): never {
    throw new Error(`${this.label}: asked for block ${height}, holds them from ${this.storedFrom}`);
  }
}
