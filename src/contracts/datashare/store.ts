/**
 * How the job contract lays out one partition's job state in a ContractState, beside the SDT's and
 * the escrow contract's keys. Every key starts with `job/<length>:<partitionId>/`, so no partition id
 * can produce another's keys (the length prefix: "a/0" and "a/0/x" never share a prefix) and none
 * collides with `sdt/…` or `escrow/…`. Values are canonical CBOR read back through strict schemas: a
 * stored value that does not fit is corruption, and throws.
 *
 *   …/meta                 JobMeta: the log's tail (written with the first job entry)
 *   …/record/<jobId>       JobView, exactly as nodes serve it
 *   …/request/<jobId>      SHA-256 of the request as signed (requester and action), so an identical
 *                          retry is told from a second request under the same id
 *   …/log/<16 digits>      JobLogEntry at that sequence number (zero-padded so keys sort)
 *
 * A partition that never carried a job has no `job/` key at all, so partitions written before jobs
 * existed read as they did.
 */
import { decodeWith, encodeWith, t } from '../../codec/index.js';
import { sha256 } from '../../crypto/index.js';
import { assert } from '../../errors.js';
import { transactionLimits } from '../limits.js';
import type { ContractState } from '../state.js';
import { jobActionSchema } from './transactions.js';
import type { JobAction } from './transactions.js';
import { jobLogEntrySchema, jobViewSchema } from './views.js';
import type { JobLogEntry, JobView } from './views.js';

const metaSchema = t.record({ logTail: t.uint() });
export interface JobMeta {
  /** Sequence number the next log entry gets; also the number of entries. */
  logTail: number;
}

const requestDigestSchema = t.bytes({ length: 32 });
const signedRequestSchema = t.record({
  requester: t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax }),
  action: jobActionSchema,
});

/**
 * The digest a job request is remembered by: its requester and everything it asked, sealed spec
 * included, but neither nonce nor timestamp, so a connector's retry in a new transaction matches.
 */
export function jobRequestDigest(
  requester: string,
  action: Extract<JobAction, { kind: 'jobRequest' }>,
): Uint8Array {
  return sha256(encodeWith(signedRequestSchema, { requester, action }));
}

const seqDigits = 16;

/** Typed access to one partition's job keys in a ContractState. */
export class JobStore {
  private readonly prefix: string;

  constructor(
    private readonly state: ContractState,
    partitionId: string,
  ) {
    assert(partitionId.length > 0, 'partitionId is empty');
    this.prefix = `job/${partitionId.length}:${partitionId}/`;
  }

  meta(): JobMeta {
    const bytes = this.state.get(`${this.prefix}meta`);
    return bytes === undefined ? { logTail: 0 } : { ...decodeWith(metaSchema, bytes) };
  }

  record(jobId: string): JobView | undefined {
    const bytes = this.state.get(`${this.prefix}record/${jobId}`);
    return bytes === undefined ? undefined : decodeWith(jobViewSchema, bytes);
  }

  putRecord(record: JobView): void {
    this.state.put(`${this.prefix}record/${record.jobId}`, encodeWith(jobViewSchema, record));
  }

  /** The digest of the request recorded under `jobId` (see `jobRequestDigest`). */
  requestDigest(jobId: string): Uint8Array | undefined {
    const bytes = this.state.get(`${this.prefix}request/${jobId}`);
    return bytes === undefined ? undefined : decodeWith(requestDigestSchema, bytes);
  }

  putRequestDigest(jobId: string, digest: Uint8Array): void {
    this.state.put(`${this.prefix}request/${jobId}`, encodeWith(requestDigestSchema, digest));
  }

  /** The log entry at `seq`; undefined at or past the tail. */
  logEntry(seq: number): JobLogEntry | undefined {
    const bytes = this.state.get(this.logKey(seq));
    return bytes === undefined ? undefined : decodeWith(jobLogEntrySchema, bytes);
  }

  /** Appends an entry at the log's tail and moves the tail. */
  appendLog(entry: Omit<JobLogEntry, 'seq'>): JobLogEntry {
    const meta = this.meta();
    const stored: JobLogEntry = { seq: meta.logTail, ...entry };
    assert(this.state.get(this.logKey(stored.seq)) === undefined, `job log entry ${stored.seq} exists`);
    this.state.put(this.logKey(stored.seq), encodeWith(jobLogEntrySchema, stored));
    this.state.put(`${this.prefix}meta`, encodeWith(metaSchema, { logTail: meta.logTail + 1 }));
    return stored;
  }

  private logKey(seq: number): string {
    return `${this.prefix}log/${String(seq).padStart(seqDigits, '0')}`;
  }
}
