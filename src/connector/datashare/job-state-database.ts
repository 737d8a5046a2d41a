/**
 * What the connector keeps about compute-to-data jobs (DESIGN §8) in its SQLite database, beside
 * the escrow agent's tables:
 *
 * - `job_cursors`: per partition, the next job log sequence number to read; it moves only after
 *   the entries before it were handled, so a crash repeats work (idempotent) rather than skipping it;
 * - `requested_jobs`: the jobs this organization asked for, one row per owner (a federated job has
 *   one per part, each naming its parent in `parent_id`), with what the chain says of each and, once
 *   fetched and checked against the on-chain hash, its result;
 * - `job_federations`: the parent of a federated job and, once every part is in, the averaged model;
 * - `owned_jobs`: the jobs other organizations sent this one's datasets, with the decision and the
 *   result sealed to the requester — kept BEFORE the result's hash is submitted, so a job whose
 *   result is recorded never runs twice, and a crash between the two resubmits the kept result;
 * - `released_rows`: for each job that released a result on a dataset, the rows it released (its
 *   filter less its suppressed groups), for the difference check (it compares a new job with every
 *   earlier one on the dataset, whoever asked). Entries belong to the dataset's content
 *   (`dataset_key`): removing or re-adding the dataset clears them.
 */
import type Database from 'better-sqlite3';
import type { ConnectorDatabase } from '../connector-database.js';

/** A requested job's state here: before submitting, refused by the contract, or as the chain shows it. */
export type RequestedJobState =
  'SUBMITTING' | 'REFUSED' | 'REQUESTED' | 'APPROVED' | 'REJECTED' | 'COMPLETED' | 'FAILED';

/** An owned job's state here: PENDING_APPROVAL waits for a person; RECEIVED has not been decided yet. */
export type OwnedJobState =
  'RECEIVED' | 'PENDING_APPROVAL' | 'APPROVED' | 'REJECTED' | 'COMPLETED' | 'FAILED';

export interface RequestedJobRow {
  job_id: string;
  /** The federated job this is a part of, or null. */
  parent_id: string | null;
  /** Its place among the federation's parts (0 for a job of one dataset). */
  part_index: number;
  topic: string;
  partition: number;
  group_id: string;
  owner: string;
  dataset: string;
  dataset_version: number;
  job_kind: 'aggregate' | 'model';
  /** Canonical JSON of the JobSpec sealed to the owner. */
  spec: string;
  /** Hex SHA-256 of the plan's canonical JSON. */
  plan_hash: string;
  state: RequestedJobState;
  /** REFUSED: the contract's reason; REJECTED: the decision's reason; FAILED/COMPLETED: the result's code. */
  reason: string;
  detail: string;
  /** Hex SHA-256 of the result's plaintext as recorded on-chain, once COMPLETED. */
  result_hash: string | null;
  result_bytes: number;
  suppressed_groups: number;
  /** Canonical JSON of the JobOutput, once fetched and checked against `result_hash`. */
  output: string | null;
  created_at: number;
  updated_at: number;
}

export interface FederationRow {
  job_id: string;
  topic: string;
  /** Canonical JSON of the job as the requester wrote it (JobSpecInput), without datasets. */
  spec: string;
  /** Canonical JSON of the averaged JobOutput, once every part's is in. */
  output: string | null;
  created_at: number;
  updated_at: number;
}

export interface OwnedJobRow {
  group_id: string;
  job_id: string;
  requester: string;
  dataset: string;
  dataset_version: number;
  job_kind: 'aggregate' | 'model';
  plan_hash: string;
  /** Canonical JSON of the opened JobSpec, or null while (or because) it could not be opened. */
  spec: string | null;
  state: OwnedJobState;
  decision_reason: string;
  decision_detail: string;
  /** 1 once our decision is on-chain. */
  decision_recorded: number;
  result_code: string;
  result_detail: string;
  suppressed_groups: number;
  result_hash: string | null;
  result_bytes: number;
  /** The result sealed to the requester (HPKE), kept until asked for. */
  sealed_key: Uint8Array | null;
  sealed_ciphertext: Uint8Array | null;
  /** 1 once our result (COMPLETED or FAILED) is on-chain. */
  result_recorded: number;
  created_at: number;
  updated_at: number;
}

/** An owned job's outcome, kept before its result transaction is submitted. */
export interface OwnedOutcome {
  readonly state: 'COMPLETED' | 'FAILED';
  readonly code: string;
  readonly detail: string;
  readonly suppressedGroups: number;
  /** Hex SHA-256 of the result's plaintext (COMPLETED). */
  readonly resultHash: string | null;
  readonly resultBytes: number;
  readonly sealed: { readonly encapsulatedKey: Uint8Array; readonly ciphertext: Uint8Array } | null;
}

export interface ReleasedRowsRow {
  dataset: string;
  /** The dataset's content the job ran on (`datasetKey`): history of other content does not apply. */
  dataset_key: string;
  group_id: string;
  job_id: string;
  requester: string;
  /** JSON of the job's ReleasedRows (sandbox-job.ts). */
  released: string;
  executed_at: number;
}

const tables = `
  CREATE TABLE IF NOT EXISTS job_cursors (group_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS requested_jobs (
    job_id TEXT PRIMARY KEY, parent_id TEXT, part_index INTEGER NOT NULL, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, group_id TEXT NOT NULL, owner TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_version INTEGER NOT NULL, job_kind TEXT NOT NULL, spec TEXT NOT NULL, plan_hash TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, result_hash TEXT,
    result_bytes INTEGER NOT NULL, suppressed_groups INTEGER NOT NULL, output TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS requested_jobs_by_parent ON requested_jobs (parent_id);
  CREATE TABLE IF NOT EXISTS job_federations (
    job_id TEXT PRIMARY KEY, topic TEXT NOT NULL, spec TEXT NOT NULL, output TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS owned_jobs (
    group_id TEXT NOT NULL, job_id TEXT NOT NULL, requester TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_version INTEGER NOT NULL, job_kind TEXT NOT NULL, plan_hash TEXT NOT NULL, spec TEXT,
    state TEXT NOT NULL, decision_reason TEXT NOT NULL, decision_detail TEXT NOT NULL,
    decision_recorded INTEGER NOT NULL, result_code TEXT NOT NULL, result_detail TEXT NOT NULL,
    suppressed_groups INTEGER NOT NULL, result_hash TEXT, result_bytes INTEGER NOT NULL,
    sealed_key BLOB, sealed_ciphertext BLOB, result_recorded INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, job_id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS owned_jobs_by_id ON owned_jobs (job_id);
  CREATE TABLE IF NOT EXISTS released_rows (
    dataset TEXT NOT NULL, dataset_key TEXT NOT NULL, group_id TEXT NOT NULL, job_id TEXT NOT NULL,
    requester TEXT NOT NULL, released TEXT NOT NULL, executed_at INTEGER NOT NULL,
    PRIMARY KEY (dataset, group_id, job_id)
  ) WITHOUT ROWID;
  -- Filters alone (the first layout) cannot tell which rows a result left out: not carried over.
  DROP TABLE IF EXISTS dataset_filters;
`;

/**
 * Released results kept per dataset for the difference check: a bound on what peers make us hold.
 * A full history is never evicted (forgetting a result would let it be compared again): a dataset
 * whose history is full refuses further jobs (JOB_LIMIT_EXCEEDED) until it is loaded again.
 */
export const releasedRowsMax = 10_000;

/** How far along each requested state is: a later answer never moves a job back. */
const requestedRank: Readonly<Record<RequestedJobState, number>> = {
  SUBMITTING: 0,
  REFUSED: 1,
  REQUESTED: 1,
  APPROVED: 2,
  REJECTED: 3,
  COMPLETED: 3,
  FAILED: 3,
};

export class JobDatabase {
  private readonly db: Database.Database;

  constructor(database: Pick<ConnectorDatabase, 'db'>) {
    this.db = database.db;
    this.db.exec(tables);
  }

  // ---- cursors ----

  /** The next job log sequence number to read in `group` (0 at first). */
  cursor(group: string): number {
    const row = this.db.prepare('SELECT next_seq FROM job_cursors WHERE group_id = ?').get(group) as
      { next_seq: number } | undefined;
    return row?.next_seq ?? 0;
  }

  /** Moves `group`'s cursor forward to `nextSeq`; never back. Call after handling the entries before it. */
  advanceCursor(group: string, nextSeq: number): void {
    this.db
      .prepare(
        `INSERT INTO job_cursors (group_id, next_seq) VALUES (?, ?)
         ON CONFLICT (group_id) DO UPDATE SET next_seq = MAX(next_seq, excluded.next_seq)`,
      )
      .run(group, nextSeq);
  }

  // ---- requested jobs (requester side) ----

  /** Records a job this organization is about to request (state SUBMITTING), before anything is sent. */
  insertRequested(row: RequestedJobRow): void {
    this.db
      .prepare(
        `INSERT INTO requested_jobs (job_id, parent_id, part_index, topic, partition, group_id, owner,
           dataset, dataset_version, job_kind, spec, plan_hash, state, reason, detail, result_hash,
           result_bytes, suppressed_groups, output, created_at, updated_at)
         VALUES (@job_id, @parent_id, @part_index, @topic, @partition, @group_id, @owner, @dataset,
           @dataset_version, @job_kind, @spec, @plan_hash, @state, @reason, @detail, @result_hash,
           @result_bytes, @suppressed_groups, @output, @created_at, @updated_at)`,
      )
      .run(row);
  }

  requested(jobId: string): RequestedJobRow | undefined {
    return this.db.prepare('SELECT * FROM requested_jobs WHERE job_id = ?').get(jobId) as
      RequestedJobRow | undefined;
  }

  /** The parts of federated job `parentId`, in the order they were named. */
  parts(parentId: string): RequestedJobRow[] {
    return this.db
      .prepare('SELECT * FROM requested_jobs WHERE parent_id = ? ORDER BY part_index')
      .all(parentId) as RequestedJobRow[];
  }

  /**
   * Records what the chain (or the contract's refusal) says of requested job `jobId`. A state is
   * never replaced by an earlier one: answers may arrive out of order (the job log and a waiting
   * caller both read the chain).
   */
  updateRequested(
    jobId: string,
    update: Pick<RequestedJobRow, 'state' | 'reason' | 'detail'> &
      Partial<Pick<RequestedJobRow, 'result_hash' | 'result_bytes' | 'suppressed_groups'>>,
    now: number,
  ): void {
    const current = this.requested(jobId);
    if (current === undefined) return;
    if (requestedRank[update.state] < requestedRank[current.state]) return;
    this.db
      .prepare(
        `UPDATE requested_jobs SET state = ?, reason = ?, detail = ?, result_hash = ?, result_bytes = ?,
           suppressed_groups = ?, updated_at = ? WHERE job_id = ?`,
      )
      .run(
        update.state,
        update.reason,
        update.detail,
        update.result_hash ?? current.result_hash,
        update.result_bytes ?? current.result_bytes,
        update.suppressed_groups ?? current.suppressed_groups,
        now,
        jobId,
      );
  }

  /** Stores requested job `jobId`'s result, already checked against its on-chain hash. */
  setRequestedOutput(jobId: string, output: string, now: number): void {
    this.db
      .prepare('UPDATE requested_jobs SET output = ?, updated_at = ? WHERE job_id = ?')
      .run(output, now, jobId);
  }

  /** The jobs this organization requested that are no federation's part, newest first. */
  requestedJobs(limit: number): RequestedJobRow[] {
    return this.db
      .prepare('SELECT * FROM requested_jobs WHERE parent_id IS NULL ORDER BY created_at DESC LIMIT ?')
      .all(limit) as RequestedJobRow[];
  }

  // ---- federations (requester side) ----

  insertFederation(row: FederationRow): void {
    this.db
      .prepare(
        `INSERT INTO job_federations (job_id, topic, spec, output, created_at, updated_at)
         VALUES (@job_id, @topic, @spec, @output, @created_at, @updated_at)`,
      )
      .run(row);
  }

  federation(jobId: string): FederationRow | undefined {
    return this.db.prepare('SELECT * FROM job_federations WHERE job_id = ?').get(jobId) as
      FederationRow | undefined;
  }

  setFederationOutput(jobId: string, output: string, now: number): void {
    this.db
      .prepare('UPDATE job_federations SET output = ?, updated_at = ? WHERE job_id = ?')
      .run(output, now, jobId);
  }

  /** Federated jobs, newest first. */
  federations(limit: number): FederationRow[] {
    return this.db
      .prepare('SELECT * FROM job_federations ORDER BY created_at DESC LIMIT ?')
      .all(limit) as FederationRow[];
  }

  // ---- owned jobs (owner side) ----

  /** Records a job request for one of our datasets, once (a repeat of the log entry changes nothing). */
  insertOwned(row: OwnedJobRow): boolean {
    const result = this.db
      .prepare(
        `INSERT OR IGNORE INTO owned_jobs (group_id, job_id, requester, dataset, dataset_version, job_kind,
           plan_hash, spec, state, decision_reason, decision_detail, decision_recorded, result_code,
           result_detail, suppressed_groups, result_hash, result_bytes, sealed_key, sealed_ciphertext,
           result_recorded, created_at, updated_at)
         VALUES (@group_id, @job_id, @requester, @dataset, @dataset_version, @job_kind, @plan_hash, @spec,
           @state, @decision_reason, @decision_detail, @decision_recorded, @result_code, @result_detail,
           @suppressed_groups, @result_hash, @result_bytes, @sealed_key, @sealed_ciphertext,
           @result_recorded, @created_at, @updated_at)`,
      )
      .run(row);
    return result.changes > 0;
  }

  owned(group: string, jobId: string): OwnedJobRow | undefined {
    return this.db.prepare('SELECT * FROM owned_jobs WHERE group_id = ? AND job_id = ?').get(group, jobId) as
      OwnedJobRow | undefined;
  }

  /** Every owned job with this id, in any partition (requesters pick ids; they are unique per partition only). */
  ownedWithId(jobId: string): OwnedJobRow[] {
    return this.db
      .prepare('SELECT * FROM owned_jobs WHERE job_id = ? ORDER BY group_id')
      .all(jobId) as OwnedJobRow[];
  }

  /** Owned jobs, newest first. */
  ownedJobs(limit: number): OwnedJobRow[] {
    return this.db
      .prepare('SELECT * FROM owned_jobs ORDER BY created_at DESC LIMIT ?')
      .all(limit) as OwnedJobRow[];
  }

  /** Owned jobs in `state`, oldest first (the agent resumes decided-but-unfinished ones at start). */
  ownedInState(state: OwnedJobState): OwnedJobRow[] {
    return this.db
      .prepare('SELECT * FROM owned_jobs WHERE state = ? ORDER BY created_at')
      .all(state) as OwnedJobRow[];
  }

  /** The opened spec of an owned job. */
  setOwnedSpec(group: string, jobId: string, spec: string, now: number): void {
    this.db
      .prepare('UPDATE owned_jobs SET spec = ?, updated_at = ? WHERE group_id = ? AND job_id = ?')
      .run(spec, now, group, jobId);
  }

  /**
   * Records our decision (or that it waits for a person); `recorded` once it is on-chain. A job
   * with an outcome keeps its state.
   */
  setOwnedDecision(
    group: string,
    jobId: string,
    decision: { state: OwnedJobState; reason: string; detail: string; recorded: boolean },
    now: number,
  ): void {
    this.db
      .prepare(
        `UPDATE owned_jobs SET
           state = CASE WHEN state IN ('COMPLETED', 'FAILED') THEN state ELSE ? END,
           decision_reason = ?, decision_detail = ?, decision_recorded = ?, updated_at = ?
         WHERE group_id = ? AND job_id = ?`,
      )
      .run(decision.state, decision.reason, decision.detail, decision.recorded ? 1 : 0, now, group, jobId);
  }

  /**
   * Keeps an owned job's outcome BEFORE its result transaction is submitted. Written once: a job
   * with an outcome is never run again, and a second outcome is ignored (false).
   */
  setOwnedOutcome(group: string, jobId: string, outcome: OwnedOutcome, now: number): boolean {
    const result = this.db
      .prepare(
        `UPDATE owned_jobs SET state = ?, result_code = ?, result_detail = ?, suppressed_groups = ?,
           result_hash = ?, result_bytes = ?, sealed_key = ?, sealed_ciphertext = ?, updated_at = ?
         WHERE group_id = ? AND job_id = ? AND state NOT IN ('COMPLETED', 'FAILED')`,
      )
      .run(
        outcome.state,
        outcome.code,
        outcome.detail,
        outcome.suppressedGroups,
        outcome.resultHash,
        outcome.resultBytes,
        outcome.sealed?.encapsulatedKey ?? null,
        outcome.sealed?.ciphertext ?? null,
        now,
        group,
        jobId,
      );
    return result.changes > 0;
  }

  /**
   * Replaces an owned job's outcome with the one the chain holds, whatever was kept: the chain is
   * the record, and a kept result it does not name (a second run refused on-chain) is dropped.
   */
  adoptChainOutcome(group: string, jobId: string, outcome: OwnedOutcome, now: number): void {
    this.db
      .prepare(
        `UPDATE owned_jobs SET state = ?, result_code = ?, result_detail = ?, suppressed_groups = ?,
           result_hash = ?, result_bytes = ?, sealed_key = NULL, sealed_ciphertext = NULL, updated_at = ?
         WHERE group_id = ? AND job_id = ?`,
      )
      .run(
        outcome.state,
        outcome.code,
        outcome.detail,
        outcome.suppressedGroups,
        outcome.resultHash,
        outcome.resultBytes,
        now,
        group,
        jobId,
      );
  }

  /** Marks an owned job's result as on-chain. */
  markResultRecorded(group: string, jobId: string, now: number): void {
    this.db
      .prepare('UPDATE owned_jobs SET result_recorded = 1, updated_at = ? WHERE group_id = ? AND job_id = ?')
      .run(now, group, jobId);
  }

  // ---- difference-check history (owner side) ----

  /** Records what job `jobId` released on `dataset` (a rerun after a crash replaces its own entry). */
  recordReleased(row: ReleasedRowsRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO released_rows (dataset, dataset_key, group_id, job_id, requester, released, executed_at)
         VALUES (@dataset, @dataset_key, @group_id, @job_id, @requester, @released, @executed_at)`,
      )
      .run(row);
  }

  /** What the jobs that ran on `dataset` as it is now (`datasetKey`) released, oldest first, whoever asked. */
  releasedOn(dataset: string, datasetKey: string): ReleasedRowsRow[] {
    return this.db
      .prepare(
        'SELECT * FROM released_rows WHERE dataset = ? AND dataset_key = ? ORDER BY executed_at, job_id',
      )
      .all(dataset, datasetKey) as ReleasedRowsRow[];
  }

  /** Forgets `dataset`'s history: it was removed or loaded again, and its rows are not those any more. */
  clearReleased(dataset: string): void {
    this.db.prepare('DELETE FROM released_rows WHERE dataset = ?').run(dataset);
  }
}
