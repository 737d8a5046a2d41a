/**
 * The leader's replication state of one peer (etcd's Progress), with its transitions.
 *
 * Invariants, asserted at every transition (`checkProgress`):
 * - match < next: the next entry to send is past what the peer is known to hold;
 * - in-flight appends exist only in the replicate state, oldest first, at most the configured cap;
 * - a paused peer is a probing one (one append at a time, waiting for its answer).
 */
import { assert } from '../../errors.js';

export interface Progress {
  match: number;
  next: number;
  /** probe: one append in flight at a time; replicate: stream optimistically; snapshot: wait. */
  state: 'probe' | 'replicate' | 'snapshot';
  paused: boolean;
  /**
   * replicate: the last index of each append still unanswered, oldest first; at most
   * maxInflightMessages of them (etcd's Inflights). Empty in the other states.
   */
  inflight: number[];
  pendingSnapshot: number;
  /** Heard from since the last check-quorum round. */
  recentActive: boolean;
}

/** A peer the leader knows nothing about yet: probe from the entry after the leader's last. */
export function newProgress(next: number): Progress {
  return checkProgress({
    match: 0,
    next,
    state: 'probe',
    paused: false,
    inflight: [],
    pendingSnapshot: 0,
    recentActive: false,
  });
}

/** Probe from `next`: send one append and wait for its answer before the next. */
export function becomeProbe(pr: Progress, next: number): void {
  pr.next = next;
  pr.state = 'probe';
  pr.paused = false;
  pr.inflight = [];
  checkProgress(pr);
}

/** The peer's log matches up to `match`: stream appends from there on. */
export function becomeReplicate(pr: Progress): void {
  pr.state = 'replicate';
  pr.next = pr.match + 1;
  pr.inflight = [];
  pr.paused = false;
  checkProgress(pr);
}

/** The entries the peer needs are compacted away (Raft §7): wait for the snapshot at `index`. */
export function becomeSnapshot(pr: Progress, index: number): void {
  pr.state = 'snapshot';
  pr.inflight = [];
  pr.pendingSnapshot = index;
  checkProgress(pr);
}

/** Records an append ending at `last` just sent to the peer. */
export function sentAppend(pr: Progress, last: number): void {
  if (pr.state === 'replicate') {
    // The in-flight appends stay in order because each one ends past the one before: checked here,
    // where one is added, rather than by walking all of them at every transition.
    const previous = pr.inflight[pr.inflight.length - 1];
    assert(previous === undefined || previous <= last, 'progress: in-flight appends in order');
    pr.next = last + 1;
    pr.inflight.push(last);
  } else pr.paused = true;
  checkProgress(pr);
}

/** The peer holds everything up to `match`: every append ending there has been answered. */
export function acknowledged(pr: Progress): void {
  while (pr.inflight.length > 0 && pr.inflight[0]! <= pr.match) pr.inflight.shift();
  pr.paused = false;
  checkProgress(pr);
}

/** Asserts the invariants above (the cap on in-flight appends is the sender's check). */
export function checkProgress(pr: Progress): Progress {
  assert(pr.match < pr.next, `progress: match ${pr.match} is below next ${pr.next}`);
  assert(pr.state === 'replicate' || pr.inflight.length === 0, 'progress: in flight only when replicating');
  assert(!pr.paused || pr.state === 'probe', 'progress: only a probing peer waits, paused');
  return pr;
}
