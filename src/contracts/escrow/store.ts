/**
 * How the escrow contract lays out one partition's escrow state in a ContractState, beside the SDT's
 * keys. Every key starts with `escrow/<length>:<partitionId>/`, so no partition id can produce
 * another's keys and none collides with `sdt/…`. Values are canonical CBOR read back through strict
 * schemas: a stored value that does not fit is corruption, and throws.
 *
 *   …/meta                    EscrowMeta: the log's tail (written with the first escrow entry)
 *   …/record/<id>             EscrowRecord of an escrowed message
 *   …/audit/<requestId>       AuditRecord
 *   …/log/<16 digits>         EscrowLogEntry at that sequence number (zero-padded so keys sort)
 *
 * The escrow meta is a key of its own, not fields of the SDT's PartitionMeta, so partitions written
 * before escrow existed still decode; a partition that never escrows has no `escrow/` key at all.
 */
import { decodeWith, encodeWith, t } from '../../codec/index.js';
import type { Infer } from '../../codec/index.js';
import { assert } from '../../errors.js';
import type { ContractState } from '../state.js';
import { transactionLimits } from '../limits.js';
import { escrowLimits } from './transactions.js';
import { auditViewSchema, auditsPerMessageMax, escrowLogEntrySchema } from './views.js';
import type { AuditView, EscrowLogEntry } from './views.js';

const uint = t.uint();
const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const messageId = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });
const requestId = t.string({ minLength: 1, maxLength: escrowLimits.requestIdLengthMax });
/** Every party of a message attests at most once: share holders plus chunk holders. */
const partiesMax = escrowLimits.sharesMax + escrowLimits.holdersMax;

const metaSchema = t.record({ logTail: uint });
export interface EscrowMeta {
  /** Sequence number the next log entry gets; also the number of entries. */
  logTail: number;
}

export const escrowAttestationRecordSchema = t.record({
  organization: organizationId,
  share: t.oneOf('VERIFIED', 'INVALID', 'NONE'),
  chunksHeld: uint,
  height: uint,
  transactionIndex: uint,
});
export type EscrowAttestationRecord = Infer<typeof escrowAttestationRecordSchema>;

export type EscrowStatus = 'PENDING' | 'VERIFIED' | 'INVALID';

const escrowRecordSchema = t.record({
  id: messageId,
  sender: organizationId,
  topic: t.string({ minLength: 1, maxLength: transactionLimits.topicLengthMax }),
  /** PENDING until every share holder attested VERIFIED; INVALID after any complaint, for good. */
  status: t.oneOf('PENDING', 'VERIFIED', 'INVALID'),
  threshold: t.uint({ min: 1, max: escrowLimits.sharesMax }),
  /**
   * The topic policy's `auditApprovals` when the message was accepted. An audit asks the topic's
   * CURRENT policy; this is used only if the topic no longer has an escrow policy, so that dropping
   * escrow from a topic neither strands its escrowed messages nor opens them without approval.
   */
  auditApprovals: uint,
  /** Share i+1 is held by shareHolders[i]. Distinct. */
  shareHolders: t.array(organizationId, { minItems: 1, maxItems: escrowLimits.sharesMax }),
  /** The message's `holders` with the number of chunks `placement` gives each (≥ 1). */
  chunkHolders: t.array(t.record({ organization: organizationId, chunks: t.uint({ min: 1 }) }), {
    minItems: 1,
    maxItems: escrowLimits.holdersMax,
  }),
  /** In the order they were recorded; at most one per organization. */
  attestations: t.array(escrowAttestationRecordSchema, { maxItems: partiesMax }),
  /** Request ids of the message's audits, in request order. */
  audits: t.array(requestId, { maxItems: auditsPerMessageMax }),
  /** Where the message was accepted. */
  height: uint,
  transactionIndex: uint,
});
export type EscrowRecord = Infer<typeof escrowRecordSchema>;

/** The stored audit is exactly the view nodes serve (views.ts), so it needs no translation. */
export type AuditRecord = AuditView;

const seqDigits = 16;

/** Typed access to one partition's escrow keys in a ContractState. */
export class EscrowStore {
  private readonly prefix: string;

  constructor(
    private readonly state: ContractState,
    partitionId: string,
  ) {
    assert(partitionId.length > 0, 'partitionId is empty');
    this.prefix = `escrow/${partitionId.length}:${partitionId}/`;
  }

  meta(): EscrowMeta {
    const bytes = this.state.get(`${this.prefix}meta`);
    return bytes === undefined ? { logTail: 0 } : { ...decodeWith(metaSchema, bytes) };
  }

  record(id: string): EscrowRecord | undefined {
    const bytes = this.state.get(`${this.prefix}record/${id}`);
    return bytes === undefined ? undefined : decodeWith(escrowRecordSchema, bytes);
  }

  putRecord(record: EscrowRecord): void {
    this.state.put(`${this.prefix}record/${record.id}`, encodeWith(escrowRecordSchema, record));
  }

  audit(requestIdValue: string): AuditRecord | undefined {
    const bytes = this.state.get(`${this.prefix}audit/${requestIdValue}`);
    return bytes === undefined ? undefined : decodeWith(auditViewSchema, bytes);
  }

  putAudit(audit: AuditRecord): void {
    this.state.put(`${this.prefix}audit/${audit.requestId}`, encodeWith(auditViewSchema, audit));
  }

  /** The log entry at `seq`; undefined at or past the tail. */
  logEntry(seq: number): EscrowLogEntry | undefined {
    const bytes = this.state.get(this.logKey(seq));
    return bytes === undefined ? undefined : decodeWith(escrowLogEntrySchema, bytes);
  }

  /** Appends an entry at the log's tail and moves the tail (written at once: the meta is tiny). */
  appendLog(entry: Omit<EscrowLogEntry, 'seq'>): EscrowLogEntry {
    const meta = this.meta();
    const stored: EscrowLogEntry = { seq: meta.logTail, ...entry };
    assert(this.state.get(this.logKey(stored.seq)) === undefined, `escrow log entry ${stored.seq} exists`);
    this.state.put(this.logKey(stored.seq), encodeWith(escrowLogEntrySchema, stored));
    this.state.put(`${this.prefix}meta`, encodeWith(metaSchema, { logTail: meta.logTail + 1 }));
    return stored;
  }

  private logKey(seq: number): string {
    return `${this.prefix}log/${String(seq).padStart(seqDigits, '0')}`;
  }
}
