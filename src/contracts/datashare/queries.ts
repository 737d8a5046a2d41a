/**
 * Read-only queries over a partition's committed job state, for the node's client API (the `jobLog`
 * and `jobRecord` methods). They never write. `group` is the partition's consensus group id
 * ("topic/partition").
 */
import { assert } from '../../errors.js';
import type { ContractState } from '../state.js';
import { JobStore } from './store.js';
import type { JobLogEntry, JobView } from './views.js';

/** Largest page `jobLogPage` returns. */
export const jobLogQueryPageMax = 1000;

/** Job `jobId` as the contract last recorded it on this partition, or undefined. */
export function jobView(state: ContractState, group: string, jobId: string): JobView | undefined {
  return new JobStore(state, group).record(jobId);
}

/**
 * Log entries from `fromSeq`, at most `limit` (default and maximum `jobLogQueryPageMax`), in order.
 * `nextSeq` is where the next page starts; `endSeq` is the log's current end (the next entry's
 * seq), so a follower is caught up when `nextSeq === endSeq`.
 */
export function jobLogPage(
  state: ContractState,
  group: string,
  range: { fromSeq: number; limit?: number },
): { entries: JobLogEntry[]; nextSeq: number; endSeq: number } {
  assert(Number.isSafeInteger(range.fromSeq) && range.fromSeq >= 0, 'fromSeq');
  const store = new JobStore(state, group);
  const endSeq = store.meta().logTail;
  const limit = Math.max(0, Math.min(range.limit ?? jobLogQueryPageMax, jobLogQueryPageMax));
  const entries: JobLogEntry[] = [];
  let seq = range.fromSeq;
  for (; seq < endSeq && entries.length < limit; seq++) {
    const entry = store.logEntry(seq);
    assert(entry !== undefined, `job log entry ${seq} below the tail ${endSeq} is missing`);
    entries.push(entry);
  }
  return { entries, nextSeq: Math.max(seq, range.fromSeq), endSeq };
}
