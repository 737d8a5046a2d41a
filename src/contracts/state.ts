/**
 * The contract's storage: a small synchronous key-value map of bytes under string keys. The node
 * will put SQLite behind it; tests use `MemoryContractState`. `executeBatch` buffers its writes in a
 * `WriteBuffer` and applies them only when the whole batch has executed, so a batch that fails an
 * internal assertion leaves the state untouched.
 */
import { toHex } from '../codec/index.js';

export interface ContractState {
  get(key: string): Uint8Array | undefined;
  /** Stores `value` under `key`, replacing what was there. The store may keep `value` as is. */
  put(key: string, value: Uint8Array): void;
  /** Removes `key`; removing an absent key does nothing. */
  delete(key: string): void;
}

/** An in-memory ContractState with helpers for tests: snapshots and copies. */
export class MemoryContractState implements ContractState {
  /** The whole contract state, as a store on disk would hold it: grows with it (tests only). */
  private readonly entries = new Map<string, Uint8Array>();

  get(key: string): Uint8Array | undefined {
    return this.entries.get(key);
  }

  put(key: string, value: Uint8Array): void {
    this.entries.set(key, Uint8Array.from(value));
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every entry as [key, hex value], sorted by key: equal snapshots mean byte-identical states. */
  snapshot(): [string, string][] {
    return [...this.entries.entries()]
      .map(([key, value]): [string, string] => [key, toHex(value)])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** An independent copy. */
  clone(): MemoryContractState {
    const copy = new MemoryContractState();
    for (const [key, value] of this.entries) copy.put(key, value);
    return copy;
  }
}

/**
 * Reads through to `base` and keeps writes until `flush`. Deleted keys are remembered as undefined,
 * so a delete shadows the base value.
 */
export class WriteBuffer implements ContractState {
  /** One batch's writes: a buffer lives for one batch. */
  private readonly pending = new Map<string, Uint8Array | undefined>();

  constructor(private readonly base: ContractState) {}

  get(key: string): Uint8Array | undefined {
    return this.pending.has(key) ? this.pending.get(key) : this.base.get(key);
  }

  put(key: string, value: Uint8Array): void {
    this.pending.set(key, value);
  }

  delete(key: string): void {
    this.pending.set(key, undefined);
  }

  /** Applies the buffered writes to the base store, in key order (so the store sees the same calls). */
  flush(): void {
    const keys = [...this.pending.keys()].sort();
    for (const key of keys) {
      const value = this.pending.get(key);
      if (value === undefined) this.base.delete(key);
      else this.base.put(key, value);
    }
    this.pending.clear();
  }
}
