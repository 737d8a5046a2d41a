/**
 * What the escrow agent (and the auditor side) keeps on the connector's SQLite database (DESIGN §7):
 *
 * - `escrow_cursors`: per partition, the next escrow log sequence number to read; it moves only
 *   after the entries before it were handled, so a crash repeats work rather than skipping it;
 * - `escrow_messages`: the escrowed messages this organization is a party of (or oversees), with
 *   what it found about its own share and chunks and whether it attested;
 * - `escrow_audits`: every audit of those messages as the partition last showed it;
 * - `escrow_releases`: the audits this organization released its key share for, so a release
 *   happens once even across restarts (the contract also refuses a second, different one).
 *
 * Byte fields of the audit rows' JSON (sealed shares, content roots) are lowercase hex.
 */
import type Database from 'better-sqlite3';
import { fromHex, toHex } from '../../codec/index.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import type { ConnectorDatabase } from '../connector-database.js';

/** The escrow state of a message as the partition records it. */
export type EscrowMessageStatus = 'PENDING' | 'VERIFIED' | 'INVALID';
/** What this organization found about its own key share of a message. */
export type ShareFinding = 'VERIFIED' | 'INVALID' | 'NONE';

/** One escrowed message this organization follows. */
export interface EscrowMessageRow {
  /** Partition group id ("topic/partition"). */
  group_id: string;
  id: string;
  sender: string;
  /** The message's escrow status on-chain, as last read. */
  status: EscrowMessageStatus;
  /** Our share: VERIFIED against the commitments, INVALID (we complained), NONE (we hold none). */
  share: ShareFinding;
  /** Evaluation point of our share (1-based, share i+1 is shares[i]), or null when we hold none. */
  share_index: number | null;
  /** 1 when the placement gives us chunks of the message. */
  chunk_holder: number;
  /** Of those, how many we hold intact. */
  chunks_held: number;
  /** 1 once our attestation is on-chain (or was submitted). */
  attested: number;
  /** Connector clock (ms) of the last change. */
  updated_at: number;
}

/** One audit request, as the partition last showed it. */
export interface AuditRow {
  group_id: string;
  request_id: string;
  /** The audited message. */
  id: string;
  auditor: string;
  reason: string;
  state: AuditView['state'];
  approvals_needed: number;
  /** JSON: [{ organization, height, transactionIndex }] */
  approvals: string;
  /** JSON: [{ holder, encapsulatedKey (hex), sealedShare (hex), height, transactionIndex }] */
  releases: string;
  /** JSON: null, or { outcome, contentRoot (hex) | null, badShares, badHolders, detail, height, transactionIndex } */
  outcome: string;
  /** Contract time of the request. */
  requested_at: number;
  /** Block and transaction of the request. */
  height: number;
  transaction_index: number;
}

const tables = `
  CREATE TABLE IF NOT EXISTS escrow_cursors (group_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS escrow_messages (
    group_id TEXT NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL, status TEXT NOT NULL,
    share TEXT NOT NULL, share_index INTEGER, chunk_holder INTEGER NOT NULL, chunks_held INTEGER NOT NULL,
    attested INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS escrow_messages_by_id ON escrow_messages (id);
  CREATE TABLE IF NOT EXISTS escrow_audits (
    group_id TEXT NOT NULL, request_id TEXT NOT NULL, id TEXT NOT NULL, auditor TEXT NOT NULL,
    reason TEXT NOT NULL, state TEXT NOT NULL, approvals_needed INTEGER NOT NULL,
    approvals TEXT NOT NULL, releases TEXT NOT NULL, outcome TEXT NOT NULL,
    requested_at INTEGER NOT NULL, height INTEGER NOT NULL, transaction_index INTEGER NOT NULL,
    PRIMARY KEY (group_id, request_id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS escrow_audits_by_request ON escrow_audits (request_id);
  CREATE TABLE IF NOT EXISTS escrow_releases (
    group_id TEXT NOT NULL, request_id TEXT NOT NULL, released_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, request_id)
  ) WITHOUT ROWID;
`;

export class AgentDatabase {
  private readonly db: Database.Database;

  constructor(database: Pick<ConnectorDatabase, 'db'>) {
    this.db = database.db;
    this.db.exec(tables);
  }

  // ---- cursors ----

  /** The next escrow log sequence number to read in `group` (0 at first). */
  cursor(group: string): number {
    const row = this.db.prepare('SELECT next_seq FROM escrow_cursors WHERE group_id = ?').get(group) as
      { next_seq: number } | undefined;
    return row?.next_seq ?? 0;
  }

  /** Moves `group`'s cursor forward to `nextSeq`; never back. Call after handling the entries before it. */
  advanceCursor(group: string, nextSeq: number): void {
    this.db
      .prepare(
        `INSERT INTO escrow_cursors (group_id, next_seq) VALUES (?, ?)
         ON CONFLICT (group_id) DO UPDATE SET next_seq = MAX(next_seq, excluded.next_seq)`,
      )
      .run(group, nextSeq);
  }

  // ---- messages ----

  /** Inserts or replaces what we know of message `row.id` in `row.group_id`. */
  putEscrowMessage(row: EscrowMessageRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO escrow_messages
           (group_id, id, sender, status, share, share_index, chunk_holder, chunks_held, attested, updated_at)
         VALUES (@group_id, @id, @sender, @status, @share, @share_index, @chunk_holder, @chunks_held,
           @attested, @updated_at)`,
      )
      .run(row);
  }

  /** The message `id` of `group`, if this organization follows it. */
  escrowMessage(group: string, id: string): EscrowMessageRow | undefined {
    return this.db.prepare('SELECT * FROM escrow_messages WHERE group_id = ? AND id = ?').get(group, id) as
      EscrowMessageRow | undefined;
  }

  /** Every followed message with this id, in any partition (ids are unique per partition only). */
  escrowMessages(id: string): EscrowMessageRow[] {
    return this.db
      .prepare('SELECT * FROM escrow_messages WHERE id = ? ORDER BY group_id')
      .all(id) as EscrowMessageRow[];
  }

  /** The on-chain escrow status of message `id` of `group` as last read, if followed. */
  escrowMessageStatus(group: string, id: string): EscrowMessageStatus | undefined {
    return this.escrowMessage(group, id)?.status;
  }

  /** Records the message's on-chain status; false if the message is not followed here. */
  setEscrowMessageStatus(group: string, id: string, status: EscrowMessageStatus, now: number): boolean {
    const result = this.db
      .prepare('UPDATE escrow_messages SET status = ?, updated_at = ? WHERE group_id = ? AND id = ?')
      .run(status, now, group, id);
    return result.changes > 0;
  }

  /** Marks our attestation of message `id` of `group` as submitted. */
  markAttested(group: string, id: string, now: number): void {
    this.db
      .prepare('UPDATE escrow_messages SET attested = 1, updated_at = ? WHERE group_id = ? AND id = ?')
      .run(now, group, id);
  }

  // ---- audits ----

  /** Inserts or refreshes audit `view` of partition `group` from the partition's record. */
  upsertAudit(group: string, view: AuditView): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO escrow_audits
           (group_id, request_id, id, auditor, reason, state, approvals_needed, approvals, releases,
            outcome, requested_at, height, transaction_index)
         VALUES (@group_id, @request_id, @id, @auditor, @reason, @state, @approvals_needed, @approvals,
           @releases, @outcome, @requested_at, @height, @transaction_index)`,
      )
      .run(auditRowOf(group, view));
  }

  /** Every audit known here, oldest request first. */
  audits(): AuditRow[] {
    return this.db
      .prepare('SELECT * FROM escrow_audits ORDER BY requested_at, group_id, request_id')
      .all() as AuditRow[];
  }

  /** The audits with this request id (unique per partition only), in any partition. */
  auditsWithRequestId(requestId: string): AuditRow[] {
    return this.db
      .prepare('SELECT * FROM escrow_audits WHERE request_id = ? ORDER BY group_id')
      .all(requestId) as AuditRow[];
  }

  // ---- our releases ----

  /** Whether we released our share for audit `requestId` of `group`. */
  released(group: string, requestId: string): boolean {
    return (
      this.db
        .prepare('SELECT 1 FROM escrow_releases WHERE group_id = ? AND request_id = ?')
        .get(group, requestId) !== undefined
    );
  }

  /** Records that we released our share for audit `requestId` of `group` (idempotent). */
  markReleased(group: string, requestId: string, now: number): void {
    this.db
      .prepare('INSERT OR IGNORE INTO escrow_releases (group_id, request_id, released_at) VALUES (?, ?, ?)')
      .run(group, requestId, now);
  }
}

/** The row an audit view is stored as. */
export function auditRowOf(group: string, view: AuditView): AuditRow {
  return {
    group_id: group,
    request_id: view.requestId,
    id: view.id,
    auditor: view.auditor,
    reason: view.reason,
    state: view.state,
    approvals_needed: view.approvalsNeeded,
    approvals: JSON.stringify(view.approvals),
    releases: JSON.stringify(
      view.releases.map((release) => ({
        holder: release.holder,
        encapsulatedKey: toHex(release.share.encapsulatedKey),
        sealedShare: toHex(release.share.sealedShare),
        height: release.height,
        transactionIndex: release.transactionIndex,
      })),
    ),
    outcome: JSON.stringify(
      view.outcome === null
        ? null
        : {
            ...view.outcome,
            contentRoot: view.outcome.contentRoot === null ? null : toHex(view.outcome.contentRoot),
          },
    ),
    requested_at: view.requestedAt,
    height: view.height,
    transaction_index: view.transactionIndex,
  };
}

/** The audit view a row was stored from (the inverse of `auditRowOf`). */
export function auditViewOf(row: AuditRow): AuditView {
  const releases = JSON.parse(row.releases) as {
    holder: string;
    encapsulatedKey: string;
    sealedShare: string;
    height: number;
    transactionIndex: number;
  }[];
  const outcome = JSON.parse(row.outcome) as
    (Omit<NonNullable<AuditView['outcome']>, 'contentRoot'> & { contentRoot: string | null }) | null;
  return {
    requestId: row.request_id,
    id: row.id,
    auditor: row.auditor,
    reason: row.reason,
    state: row.state,
    requestedAt: row.requested_at,
    height: row.height,
    transactionIndex: row.transaction_index,
    approvals: JSON.parse(row.approvals) as AuditView['approvals'],
    approvalsNeeded: row.approvals_needed,
    releases: releases.map((release) => ({
      holder: release.holder,
      share: { encapsulatedKey: fromHex(release.encapsulatedKey), sealedShare: fromHex(release.sealedShare) },
      height: release.height,
      transactionIndex: release.transactionIndex,
    })),
    outcome:
      outcome === null
        ? null
        : { ...outcome, contentRoot: outcome.contentRoot === null ? null : fromHex(outcome.contentRoot) },
  };
}
