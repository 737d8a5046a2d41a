/**
 * The driver side of the `RaftReady` contract, written once: the one Raft host,
 * `RaftGroupDriver` (src/raft-group), calls it for the node, the simulator, the test cluster and the
 * benchmark alike. It does no I/O itself: the host does, and this function only fixes the order in
 * which a Ready must be handled.
 */
import type { RaftEntry, RaftInput, RaftMessage, RaftPersistOp, RaftReady, RaftSnapshot } from './types.js';

export interface RaftHost {
  /** Steps the node (a host may record or time the input first). */
  step(input: RaftInput): RaftReady;
  /** Applies one persist op durably before returning. */
  persist(op: RaftPersistOp): void;
  send(to: string, message: RaftMessage): void;
  /** Replaces the state machine with a snapshot received from the leader. */
  installSnapshot(snapshot: RaftSnapshot): void;
  /** Applies one committed entry to the state machine, deterministically. */
  apply(entry: RaftEntry): void;
  /** A read may now be served once the state machine has applied `index`. */
  readReady?(id: string, index: number): void;
  /** Optional: observe rejected input (metrics, logs). */
  rejected?(code: string, reason: string): void;
}

/**
 * Handles a Ready in the order its contract requires — persist, send, install the snapshot, apply
 * committed entries — then reports the applied index to the node and handles the Ready that produces.
 */
export function applyRaftReady(host: RaftHost, ready: RaftReady): void {
  for (const op of ready.persist) host.persist(op);
  for (const out of ready.send) host.send(out.to, out.message);
  if (ready.installSnapshot !== undefined) host.installSnapshot(ready.installSnapshot);
  for (const entry of ready.committed) host.apply(entry);
  for (const read of ready.readStates) host.readReady?.(read.id, read.index);
  for (const rejection of ready.rejected) host.rejected?.(rejection.code, rejection.reason);
  const last = ready.committed.at(-1);
  if (last !== undefined) applyRaftReady(host, host.step({ kind: 'applied', index: last.index }));
}
