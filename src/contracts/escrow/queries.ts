/**
 * Read-only queries over a partition's committed escrow state, for the node's client API (the
 * `escrowRecord` and `escrowLog` methods, and the connector-side authorization of chunk and share
 * requests). They never write. `group` is the partition's consensus group id ("topic/partition").
 */
import { assert } from '../../errors.js';
import type { ContractState } from '../state.js';
import { EscrowStore } from './store.js';
import type { AuditView, EscrowLogEntry, EscrowRecordView } from './views.js';

/** Largest page `escrowLogPage` returns. */
export const escrowLogPageMax = 1000;

/** The escrow record of message `id`, with its audits in request order; undefined if not escrowed here. */
export function escrowRecordView(
  state: ContractState,
  group: string,
  id: string,
): EscrowRecordView | undefined {
  const store = new EscrowStore(state, group);
  const record = store.record(id);
  if (record === undefined) return undefined;
  return {
    id: record.id,
    group,
    sender: record.sender,
    status: record.status,
    threshold: record.threshold,
    shareHolders: record.shareHolders,
    chunkHolders: record.chunkHolders.map((holder) => holder.organization),
    attestations: record.attestations,
    audits: record.audits.map((requestId) => {
      const audit = store.audit(requestId);
      assert(audit !== undefined, `escrow record ${id} names unknown audit ${requestId}`);
      return audit;
    }),
  };
}

/** The audit request `requestId` on this partition, or undefined. */
export function auditView(state: ContractState, group: string, requestId: string): AuditView | undefined {
  return new EscrowStore(state, group).audit(requestId);
}

/**
 * Log entries from `fromSeq`, at most `limit` (default and maximum `escrowLogPageMax`), in order.
 * `nextSeq` is where the next page starts; `endSeq` is the log's current end (the next entry's
 * seq), so a follower is caught up when `nextSeq === endSeq`.
 */
export function escrowLogPage(
  state: ContractState,
  group: string,
  range: { fromSeq: number; limit?: number },
): { entries: EscrowLogEntry[]; nextSeq: number; endSeq: number } {
  assert(Number.isSafeInteger(range.fromSeq) && range.fromSeq >= 0, 'fromSeq');
  const store = new EscrowStore(state, group);
  const endSeq = store.meta().logTail;
  const limit = Math.max(0, Math.min(range.limit ?? escrowLogPageMax, escrowLogPageMax));
  const entries: EscrowLogEntry[] = [];
  let seq = range.fromSeq;
  for (; seq < endSeq && entries.length < limit; seq++) {
    const entry = store.logEntry(seq);
    assert(entry !== undefined, `escrow log entry ${seq} below the tail ${endSeq} is missing`);
    entries.push(entry);
  }
  return { entries, nextSeq: Math.max(seq, range.fromSeq), endSeq };
}

/**
 * Who takes part in message `id`'s escrow: its sender, its share holders (share i+1 is held by
 * `shareHolders[i]`) and its chunk holders; undefined if the message is not escrowed here.
 */
export function escrowParties(
  state: ContractState,
  group: string,
  id: string,
): { sender: string; shareHolders: string[]; chunkHolders: string[] } | undefined {
  const record = new EscrowStore(state, group).record(id);
  if (record === undefined) return undefined;
  return {
    sender: record.sender,
    shareHolders: [...record.shareHolders],
    chunkHolders: record.chunkHolders.map((holder) => holder.organization),
  };
}
