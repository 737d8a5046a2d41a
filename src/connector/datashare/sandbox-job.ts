/**
 * What the owner's connector hands the job runner's child process (job-sandbox.ts → job-runner.ts)
 * and what comes back over the IPC channel. Plain data only: it crosses a process boundary.
 */
import type { ErrorCode } from '../../errors.js';
import type { ColumnInfo, Condition, DatasetPolicy, JobOutput, JobPlan } from '../../datashare/types.js';

export interface SandboxJob {
  /** The dataset's SQLite file (DatasetInfo.file); the child opens it read-only. */
  readonly datasetFile: string;
  /** A plan already checked against the columns and the policy (checkPlan); the child checks again. */
  readonly plan: JobPlan;
  readonly columns: readonly ColumnInfo[];
  readonly policy: DatasetPolicy;
  /**
   * The filters of earlier jobs on this dataset (null: no filter), for the difference check. The
   * caller decides whose: the requester's own jobs, or everyone's (stricter).
   */
  readonly history: readonly (Condition | null)[];
}

/** The runner's one answer. */
export type RunnerReply =
  | { readonly ok: true; readonly output: JobOutput }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** Parent → child: the job. Child → parent: `ready` once it listens, then one RunnerReply. */
export type ToRunner = { readonly type: 'job'; readonly job: SandboxJob };
export type FromRunner = { readonly type: 'ready' } | ({ readonly type: 'reply' } & RunnerReply);
