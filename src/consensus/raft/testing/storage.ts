/** An in-memory Raft "disk" for tests and the simulator: what a server keeps across a crash. */
import type { HardState, RaftEntry, RaftPersistOp, RaftSnapshot } from '../types.js';

export interface RaftStorage {
  hardState: HardState;
  snapshot?: RaftSnapshot;
  /** Entries after the snapshot, in order. */
  entries: RaftEntry[];
}

/** Applies one persist op, checking that the core only ever asks for consistent changes. */
export function applyRaftPersist(storage: RaftStorage, op: RaftPersistOp): void {
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
