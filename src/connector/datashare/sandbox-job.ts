/**
 * What the owner's connector hands the job runner's child process (job-sandbox.ts → job-runner.ts)
 * and what comes back over the IPC channel. Plain data only: it crosses a process boundary.
 */
import type { ErrorCode } from '../../errors.js';
import type {
  Cell,
  ColumnInfo,
  Condition,
  DatasetPolicy,
  JobOutput,
  JobPlan,
} from '../../datashare/types.js';

/**
 * The rows a released job's numbers were computed from: the rows its filter selects, less those of
 * the groups it suppressed (a model job: its filter, with no groups). The difference check
 * compares these, not filters: a suppressed group is rows a result did NOT include, and comparing
 * two results may isolate exactly those. It names suppressed groups, so it goes to the owner only
 * (kept in its history), never to the requester.
 */
export interface ReleasedRows {
  readonly where: Condition | null;
  readonly groupBy: readonly string[];
  /** The suppressed groups' key values, in `groupBy` order. */
  readonly suppressed: readonly (readonly Cell[])[];
}

/** A job's run: the output for the requester, and (for the owner's history alone) what it released. */
export interface JobRun {
  readonly output: JobOutput;
  readonly released: ReleasedRows;
}

export interface SandboxJob {
  /** The dataset's SQLite file (DatasetInfo.file); the child opens it read-only. */
  readonly datasetFile: string;
  /** A plan already checked against the columns and the policy (checkPlan); the child checks again. */
  readonly plan: JobPlan;
  readonly columns: readonly ColumnInfo[];
  readonly policy: DatasetPolicy;
  /**
   * What earlier jobs on this dataset released, for the difference check. The caller decides
   * whose: the requester's own jobs, or everyone's (stricter).
   */
  readonly history: readonly ReleasedRows[];
}

/** The runner's one answer. */
export type RunnerReply =
  | ({ readonly ok: true } & JobRun)
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** Parent → child: the job. Child → parent: `ready` once it listens, then one RunnerReply. */
export type ToRunner = { readonly type: 'job'; readonly job: SandboxJob };
export type FromRunner = { readonly type: 'ready' } | ({ readonly type: 'reply' } & RunnerReply);
