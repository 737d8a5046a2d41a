/**
 * Every state a registry group had, by the Raft index at which it took effect, so that a PBFT batch
 * naming index i is executed against exactly the registry at i, on every replica, whatever the
 * replica has applied since. Registry changes are rare (a handful per day), so keeping each version
 * whole is cheaper than anything cleverer.
 */
import { assert } from '../errors.js';

export class Versions<T> {
  // One per version, never pruned but by `reset`: bounded by how often the registry changes.
  private readonly indexes: number[] = [];
  private readonly values: T[] = [];

  constructor(initial: T, index = 0) {
    this.indexes.push(index);
    this.values.push(initial);
  }

  get latest(): T {
    return this.values[this.values.length - 1] as T;
  }

  get latestIndex(): number {
    return this.indexes[this.indexes.length - 1] as number;
  }

  /** Records `value` as the state from `index` on; indexes only grow. */
  push(index: number, value: T): void {
    assert(index >= this.latestIndex, `version ${index} after ${this.latestIndex}`);
    if (index === this.latestIndex && this.values.length > 0) {
      this.values[this.values.length - 1] = value;
      return;
    }
    this.indexes.push(index);
    this.values.push(value);
  }

  /** The state in force at `index`: the last version at or before it. */
  at(index: number): T {
    let low = 0;
    let high = this.indexes.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.indexes[middle] as number) <= index) low = middle;
      else high = middle - 1;
    }
    return this.values[low] as T;
  }

  /** Every version, oldest first (for snapshots). */
  all(): T[] {
    return [...this.values];
  }

  /** Forgets every version and starts again from `value` at `index` (a snapshot was installed). */
  reset(index: number, value: T): void {
    this.indexes.length = 0;
    this.values.length = 0;
    this.indexes.push(index);
    this.values.push(value);
  }
}
