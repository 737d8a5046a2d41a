/**
 * The driver side of the `PbftReady` contract, written once for every driver (the node runtime, the
 * simulator, the test cluster, the benchmark). It does no I/O itself: the host it is given does, and
 * this function only fixes the order in which a Ready must be handled.
 */
import type { TransferredBlock } from './messages.js';
import type {
  CertifiedBlock,
  CommittedBatch,
  PbftInput,
  PbftReady,
  PersistOp,
  PersistRecord,
} from './types.js';

export interface ReplicaHost {
  /** Steps the replica (a host may record or time the input first). */
  step(input: PbftInput): PbftReady;
  /** Applies one persist op durably before returning. */
  persist(op: PersistOp): void;
  /** Stores a certified block durably before returning; blocks come in height order. */
  storeCertified(block: CertifiedBlock): void;
  send(to: number | 'all', bytes: Uint8Array): void;
  /** Up to `count` stored certified blocks from `fromSeq`, for a peer's state transfer. */
  readBlocks(fromSeq: number, count: number): TransferredBlock[];
  /** Signs a state-transfer reply (the replica's `encodeBlocks`). */
  encodeBlocks(blocks: readonly TransferredBlock[]): Uint8Array;
  /** A client asked again for a request committed at `seq`: answer it from the ledger. */
  alreadyCommitted(request: Uint8Array, seq: number): void;
  /**
   * Executes a committed batch deterministically and returns its results root. A host that cannot
   * execute it yet (its registry has not reached the indexes the batch names) returns undefined,
   * keeps this batch and every later one in order, and steps `executed` for each itself later.
   */
  execute(batch: CommittedBatch): Uint8Array | undefined;
  /** Optional: observe rejected input (metrics, logs). */
  rejected?(code: string, reason: string): void;
}

/**
 * Handles a Ready in the order its contract requires — persist, store certified blocks, send, serve
 * state transfer, answer retransmitted requests, then execute each committed batch and step the
 * replica with the result, handling the Ready that produces in turn.
 */
export function applyReady(host: ReplicaHost, ready: PbftReady): void {
  for (const op of ready.persist) host.persist(op);
  for (const block of ready.certified) host.storeCertified(block);
  for (const out of ready.send) host.send(out.to, out.bytes);
  for (const serve of ready.serve) {
    const blocks = host.readBlocks(serve.fromSeq, serve.count);
    if (blocks.length > 0) host.send(serve.to, host.encodeBlocks(blocks));
  }
  for (const again of ready.alreadyCommitted) host.alreadyCommitted(again.request, again.seq);
  for (const rejection of ready.rejected) host.rejected?.(rejection.code, rejection.reason);
  for (const batch of ready.commit) {
    const resultsRoot = host.execute(batch);
    if (resultsRoot === undefined) continue;
    applyReady(host, host.step({ kind: 'executed', seq: batch.seq, resultsRoot }));
  }
}

/** Applies a persist op to an in-memory record map (the simulator's and tests' "disk"). */
export function applyPersistOp(records: Map<string, PersistRecord>, op: PersistOp): void {
  if (op.op === 'put') {
    records.set(op.record.key, op.record);
    return;
  }
  for (const [key, record] of records) if (record.seq > 0 && record.seq < op.belowSeq) records.delete(key);
}
