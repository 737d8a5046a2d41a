/**
 * The log as one server holds it (etcd's raftLog): the latest snapshot, and the entries after it.
 *
 * Invariants, asserted where they could break:
 * - the entries are consecutive and follow the snapshot: entry i has index snapshot.index + 1 + i;
 * - the snapshot only moves forward, by compaction of applied entries or by installing a newer one.
 * It knows nothing of commitment; the node keeps the commit index and never truncates below it.
 */
import { assert } from '../../errors.js';
import type { Membership, RaftEntry, RaftSnapshot } from './types.js';

export class RaftLog {
  #snapshot: RaftSnapshot;
  /** Entries after the snapshot: entries[i] has index snapshot.index + 1 + i. */
  #entries: RaftEntry[];

  /** Throws AssertionError unless `entries` are consecutive from `snapshot.index + 1`. */
  constructor(snapshot: RaftSnapshot, entries: readonly RaftEntry[]) {
    this.#snapshot = snapshot;
    this.#entries = [...entries];
    this.#entries.forEach((entry, i) =>
      assert(entry.index === snapshot.index + 1 + i, 'restored entries follow the snapshot'),
    );
  }

  get snapshot(): RaftSnapshot {
    return this.#snapshot;
  }

  /** The entries after the snapshot, in order: the live array, for reading only. */
  get held(): readonly RaftEntry[] {
    return this.#entries;
  }

  lastIndex(): number {
    return this.#snapshot.index + this.#entries.length;
  }

  lastTerm(): number {
    return this.termAt(this.lastIndex())!;
  }

  /** Term of the entry at `index`, or undefined if it is compacted or beyond the log. */
  termAt(index: number): number | undefined {
    if (index === this.#snapshot.index) return this.#snapshot.term;
    if (index < this.#snapshot.index || index > this.lastIndex()) return undefined;
    return this.#entries[index - this.#snapshot.index - 1]!.term;
  }

  /** The entry at `index`; asserts it is held (after the snapshot, within the log). */
  entryAt(index: number): RaftEntry {
    const entry = this.#entries[index - this.#snapshot.index - 1];
    assert(entry !== undefined && entry.index === index, `entry ${index} is in the log`);
    return entry;
  }

  /** The entries with index in [from, to], both held. */
  between(from: number, to: number): RaftEntry[] {
    return this.#entries.slice(from - this.#snapshot.index - 1, to - this.#snapshot.index);
  }

  /** The configuration in force once the log up to `index` is appended. */
  membershipAt(index: number): Membership {
    for (let i = Math.min(index, this.lastIndex()); i > this.#snapshot.index; i--) {
      const entry = this.entryAt(i);
      if (entry.config !== undefined) return entry.config;
    }
    return this.#snapshot.membership;
  }

  /** The last index at or below `atMost` whose term is `term`, if the log holds one. */
  lastIndexOfTerm(term: number, atMost: number): number | undefined {
    for (let i = Math.min(atMost, this.lastIndex()); i >= this.#snapshot.index; i--) {
      const t = this.termAt(i)!;
      if (t === term) return i;
      if (t < term) return undefined;
    }
    return undefined;
  }

  /**
   * Where a leader should retry after our log did not hold its entry at `prevIndex` (Raft §5.3,
   * with the conflict optimization): the start of our conflicting term there, never at or below
   * `commit`, or just past our log when it is too short.
   */
  conflictHint(prevIndex: number, commit: number): { conflictIndex: number; conflictTerm: number } {
    const conflictTerm = this.termAt(prevIndex);
    if (conflictTerm === undefined) return { conflictIndex: this.lastIndex() + 1, conflictTerm: 0 };
    let conflictIndex = prevIndex;
    while (conflictIndex - 1 > commit && this.termAt(conflictIndex - 1) === conflictTerm) conflictIndex--;
    return { conflictIndex, conflictTerm };
  }

  /** Appends `entries`, which must follow the log. Returns whether one of them is a configuration. */
  append(entries: readonly RaftEntry[]): boolean {
    if (entries.length === 0) return false;
    assert(entries[0]!.index === this.lastIndex() + 1, 'appended entries follow the log');
    this.#entries.push(...entries);
    assert(this.lastIndex() === entries.at(-1)!.index, 'appended entries are consecutive');
    return entries.some((e) => e.config !== undefined);
  }

  /** Drops every entry from `index` on. Returns whether a dropped entry was a configuration. */
  truncateFrom(index: number): boolean {
    assert(
      index > this.#snapshot.index && index <= this.lastIndex() + 1,
      `truncate at ${index} within the log`,
    );
    const dropped = this.#entries.slice(index - this.#snapshot.index - 1);
    this.#entries.length = index - this.#snapshot.index - 1;
    assert(this.lastIndex() === index - 1, 'truncated up to index');
    return dropped.some((e) => e.config !== undefined);
  }

  /** Replaces the entries up to `snapshot.index` (held, and later than the current snapshot) by it. */
  compact(snapshot: RaftSnapshot): void {
    assert(
      snapshot.index > this.#snapshot.index && snapshot.index <= this.lastIndex(),
      `compaction at ${snapshot.index} within the log`,
    );
    assert(snapshot.term === this.termAt(snapshot.index), 'the snapshot ends on the entry it covers');
    this.#entries = this.#entries.slice(snapshot.index - this.#snapshot.index);
    this.#snapshot = snapshot;
    assert(this.#entries[0] === undefined || this.#entries[0].index === snapshot.index + 1, 'entries follow');
  }

  /** Replaces the whole log by a snapshot received from the leader (Raft §7), newer than ours. */
  install(snapshot: RaftSnapshot): void {
    assert(snapshot.index > this.#snapshot.index, 'an installed snapshot is newer than the one held');
    this.#entries = [];
    this.#snapshot = snapshot;
  }
}
