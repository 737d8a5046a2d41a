/**
 * The owner's side of compute-to-data (DESIGN §8): a job another organization sent one of our
 * datasets is decided, run and answered here.
 *
 *   requested on-chain → open the sealed job → recompute its plan hash → check it against the
 *   LOCAL dataset and policy → APPROVED ('POLICY') or REJECTED with a code on-chain (or kept
 *   PENDING_APPROVAL for a person: `job approve|reject`) → run in a child process with the policy's
 *   limits → the result sealed to the requester and kept → its SHA-256 on-chain (COMPLETED), or
 *   FAILED with the code.
 *
 * What the chain recorded always stands: every step first reads the job's verified record and
 * follows it, so a crash anywhere repeats only what is idempotent. The outcome is kept locally
 * BEFORE its transaction goes out, so a job whose result is recorded never runs twice, and a job
 * that was approved but has no outcome yet runs again after a restart.
 */
import { fromHex, toHex } from '../../codec/index.js';
import type { JobAction } from '../../contracts/datashare/transactions.js';
import { jobLimits } from '../../contracts/datashare/transactions.js';
import { openJobBox, padJson, sealJobBox, sealedBoxDigest } from '../../crypto/job-box.js';
import { canonicalJson, canonicalJsonBytes } from '../../datashare/canonical-json.js';
import { planHash, planOf, saltOf, specOf } from '../../datashare/query/plan.js';
import { checkPlan } from '../../datashare/query/policy.js';
import { policySummary } from '../../datashare/types.js';
import type { JobOutput, JobPlan, JobSpec } from '../../datashare/types.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import { datasetKey } from './dataset-store.js';
import type { DatasetStore } from './dataset-store.js';
import { releasedRowsMax } from './job-state-database.js';
import type { JobDatabase, OwnedJobRow, OwnedOutcome } from './job-state-database.js';
import { fetchJobRecord } from './job-record.js';
import type { VerifiedJobRecord } from './job-record.js';
import { submitJobAction } from './job-submit.js';
import type { JobRun, ReleasedRows, SandboxJob } from './sandbox-job.js';

/** The codes a job's run may end with, recorded as they are; anything else is JOB_FAILED. */
const runFailureCodes: ReadonlySet<string> = new Set([
  ErrorCode.MinGroupSize,
  ErrorCode.DifferenceCheck,
  ErrorCode.JobLimitExceeded,
  ErrorCode.QueryRejected,
  ErrorCode.DatasetNotFound,
  ErrorCode.JobFailed,
]);

export interface OwnerJobsOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'encryptionKey' | 'registry' | 'trust' | 'logger' | 'lifecycle'
> {
  readonly session: Pick<NodeSession, 'call'>;
  readonly submitter: Pick<TransactionSubmitter, 'submit'>;
  readonly jobs: JobDatabase;
  readonly datasets: Pick<DatasetStore, 'get'>;
  /** Runs a checked job in a child process (job-sandbox.ts's runSandboxed). */
  readonly runJob: (job: SandboxJob) => Promise<JobRun>;
}

/** What checking a job before it runs decided. */
type Verdict =
  | { readonly kind: 'approve'; readonly plan: JobPlan }
  | { readonly kind: 'manual'; readonly plan: JobPlan }
  | { readonly kind: 'reject'; readonly reason: string; readonly detail: string };

export class OwnerJobs {
  /**
   * Work under way per job ("group jobId"): a second caller joins it instead of starting another.
   * Each leaves when its work ends.
   */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Jobs run one at a time: each may take the policy's whole memory limit. */
  private runQueue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: OwnerJobsOptions) {}

  /**
   * Brings job `jobId` of `group` as far as it can go now: decided, run and answered, or left
   * PENDING_APPROVAL for a person. Idempotent; a job we do not own is ignored. Throws what stops
   * it (a node out of reach, a refused transaction): the caller retries later.
   */
  handle(group: string, jobId: string): Promise<void> {
    const key = `${group} ${jobId}`;
    const running = this.inFlight.get(key);
    if (running !== undefined) return running;
    const work = this.advance(group, jobId).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, work);
    return work;
  }

  /** Resumes every job approved here whose result is not on-chain yet (at start: the run was cut short). */
  async resume(): Promise<void> {
    const unfinished = [
      ...this.options.jobs.ownedInState('APPROVED'),
      ...this.options.jobs.ownedInState('COMPLETED').filter((row) => row.result_recorded === 0),
      ...this.options.jobs.ownedInState('FAILED').filter((row) => row.result_recorded === 0),
      ...this.options.jobs.ownedInState('REJECTED').filter((row) => row.decision_recorded === 0),
    ];
    for (const row of unfinished) {
      if (this.options.lifecycle.stopped) return;
      try {
        await this.handle(row.group_id, row.job_id);
      } catch (error) {
        this.options.logger.warn(
          { jobId: row.job_id, group: row.group_id, error: describeError(error) },
          'could not resume a job; the job log brings it back',
        );
      }
    }
  }

  /**
   * A person approves job `jobId` (waiting for one): the decision goes on-chain now and the job
   * runs after, in the background. MESSAGE_NOT_FOUND for a job not owned here; MESSAGE_REJECTED
   * (reason JOB_STATE) for one that does not wait for a person.
   */
  async approve(jobId: string): Promise<OwnedJobRow> {
    const row = this.waiting(jobId);
    const now = this.now();
    this.options.jobs.setOwnedDecision(
      row.group_id,
      row.job_id,
      { state: 'APPROVED', reason: 'MANUAL', detail: '', recorded: false },
      now,
    );
    await this.recordDecision(row.group_id, row.job_id, 'APPROVED', 'MANUAL', '');
    // The run may take as long as the policy allows: the caller follows it with `job status`.
    void this.handle(row.group_id, row.job_id).catch((error: unknown) =>
      this.options.logger.warn(
        { jobId, group: row.group_id, error: describeError(error) },
        'an approved job did not finish; the job agent retries it',
      ),
    );
    return this.options.jobs.owned(row.group_id, row.job_id) ?? row;
  }

  /** A person refuses job `jobId` (waiting for one) with `reason`, recorded on-chain as MANUAL_REJECT. */
  async reject(jobId: string, reason: string): Promise<OwnedJobRow> {
    const row = this.waiting(jobId);
    const detail = clip(reason);
    this.options.jobs.setOwnedDecision(
      row.group_id,
      row.job_id,
      { state: 'REJECTED', reason: 'MANUAL_REJECT', detail, recorded: false },
      this.now(),
    );
    await this.recordDecision(row.group_id, row.job_id, 'REJECTED', 'MANUAL_REJECT', detail);
    return this.options.jobs.owned(row.group_id, row.job_id) ?? row;
  }

  // ---- the steps ----

  private async advance(group: string, jobId: string): Promise<void> {
    const { jobs, organization } = this.options;
    const known = jobs.owned(group, jobId);
    if (known !== undefined && known.result_recorded === 1) return;
    if (known?.state === 'REJECTED' && known.decision_recorded === 1) return;
    const record = await fetchJobRecord(this.options.session, this.options.trust, group, jobId);
    const request = record.request.action;
    if (request.owner !== organization) return;
    let row = known ?? this.receive(group, record);

    // What the chain recorded stands over anything decided here.
    if (record.view.result !== null) {
      this.followRecordedResult(row, record);
      return;
    }
    const decision = record.view.decision ?? undefined;
    if (decision !== undefined) {
      if (row.decision_recorded === 0 || row.state !== followState(row.state, decision.decision)) {
        jobs.setOwnedDecision(
          group,
          jobId,
          {
            state: followState(row.state, decision.decision),
            reason: decision.reason,
            detail: decision.detail,
            recorded: true,
          },
          this.now(),
        );
      }
      if (decision.decision === 'REJECTED') return;
      row = jobs.owned(group, jobId) ?? row;
      await this.runAndAnswer(row);
      return;
    }

    // Undecided on-chain: a decision kept here (a person's, or ours before a crash) goes out as it was.
    if (row.state === 'PENDING_APPROVAL') return;
    if (row.state === 'REJECTED' || row.state === 'APPROVED') {
      await this.recordDecision(group, jobId, row.state, row.decision_reason, row.decision_detail);
      if (row.state === 'APPROVED') await this.runAndAnswer(jobs.owned(group, jobId) ?? row);
      return;
    }
    const verdict = await this.check(row, record);
    if (verdict.kind === 'reject') {
      jobs.setOwnedDecision(
        group,
        jobId,
        { state: 'REJECTED', reason: verdict.reason, detail: verdict.detail, recorded: false },
        this.now(),
      );
      this.options.logger.info(
        { jobId, group, requester: row.requester, reason: verdict.reason, detail: verdict.detail },
        'rejected a job',
      );
      await this.recordDecision(group, jobId, 'REJECTED', verdict.reason, verdict.detail);
      return;
    }
    if (verdict.kind === 'manual') {
      jobs.setOwnedDecision(
        group,
        jobId,
        { state: 'PENDING_APPROVAL', reason: '', detail: '', recorded: false },
        this.now(),
      );
      this.options.logger.info(
        { jobId, group, requester: row.requester, dataset: row.dataset },
        'a job waits for approval: ledgerbus job approve|reject',
      );
      return;
    }
    jobs.setOwnedDecision(
      group,
      jobId,
      { state: 'APPROVED', reason: 'POLICY', detail: '', recorded: false },
      this.now(),
    );
    await this.recordDecision(group, jobId, 'APPROVED', 'POLICY', '');
    await this.runAndAnswer(jobs.owned(group, jobId) ?? row);
  }

  /** Records the job request we saw on-chain, once, and opens its sealed spec (kept as JSON, or null). */
  private receive(group: string, record: VerifiedJobRecord): OwnedJobRow {
    const request = record.request.action;
    const now = this.now();
    this.options.jobs.insertOwned({
      group_id: group,
      job_id: request.jobId,
      requester: record.request.transaction.organization,
      dataset: request.dataset,
      dataset_version: request.datasetVersion,
      job_kind: request.jobKind,
      plan_hash: toHex(request.planHash),
      spec: null,
      state: 'RECEIVED',
      decision_reason: '',
      decision_detail: '',
      decision_recorded: 0,
      result_code: '',
      result_detail: '',
      suppressed_groups: 0,
      result_hash: null,
      result_bytes: 0,
      sealed_key: null,
      sealed_ciphertext: null,
      result_recorded: 0,
      created_at: now,
      updated_at: now,
    });
    const row = this.options.jobs.owned(group, request.jobId);
    if (row === undefined)
      throw new LedgerbusError(ErrorCode.Internal, `job ${request.jobId} was not recorded`);
    return row;
  }

  /**
   * The checks before a job may run, against what the requester signed and our own dataset and
   * policy (never the catalog's copy): the sealed job opens, its plan hashes to the recorded hash
   * and names the dataset the request does, the requester is still approved, the dataset is here,
   * and the plan passes its policy.
   */
  private async check(row: OwnedJobRow, record: VerifiedJobRecord): Promise<Verdict> {
    const { registry, encryptionKey, organization, jobs } = this.options;
    const request = record.request.action;
    const reject = (reason: string, detail: string): Verdict => ({
      kind: 'reject',
      reason,
      detail: clip(detail),
    });
    let spec: JobSpec;
    try {
      const plaintext = await openJobBox(request.sealedSpec, encryptionKey, {
        network: registry.network,
        jobId: request.jobId,
        requester: row.requester,
        owner: organization,
        purpose: 'spec',
      });
      spec = specOf(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext)) as unknown);
    } catch (error) {
      return reject(
        ErrorCode.QueryRejected,
        `the sealed job does not open as a job: ${describeError(error)}`,
      );
    }
    jobs.setOwnedSpec(row.group_id, row.job_id, canonicalJson(spec), this.now());
    let plan: JobPlan;
    try {
      plan = planOf(spec);
    } catch (error) {
      return reject(codeOf(error, ErrorCode.QueryRejected), describeError(error));
    }
    let salt: Uint8Array;
    try {
      salt = saltOf(spec);
    } catch (error) {
      return reject(ErrorCode.QueryRejected, describeError(error));
    }
    if (toHex(planHash(plan, salt)) !== toHex(request.planHash)) {
      return reject(
        ErrorCode.QueryRejected,
        'plan hash differs: the sealed job is not the one whose hash was recorded',
      );
    }
    if (spec.dataset !== request.dataset || spec.kind !== request.jobKind) {
      return reject(
        ErrorCode.QueryRejected,
        `the sealed job is a ${spec.kind} job on ${spec.dataset}; the request names a ${request.jobKind} job on ${request.dataset}`,
      );
    }
    const requester = registry.organization(row.requester);
    if (requester === undefined || requester.status !== 'APPROVED') {
      return reject(
        ErrorCode.Forbidden,
        `requester ${row.requester} is ${requester?.status ?? 'not registered'}`,
      );
    }
    const dataset = this.options.datasets.get(spec.dataset);
    if (dataset === undefined) {
      return reject(ErrorCode.DatasetNotFound, `${organization} has no dataset ${spec.dataset}`);
    }
    try {
      checkPlan(plan, dataset.columns, policySummary(dataset.policy));
    } catch (error) {
      return reject(codeOf(error, ErrorCode.QueryRejected), describeError(error));
    }
    return dataset.policy.approval === 'manual' ? { kind: 'manual', plan } : { kind: 'approve', plan };
  }

  /**
   * Runs an approved job and records its outcome, or resubmits the outcome kept from before a
   * crash. The outcome is kept BEFORE it is submitted: never two runs of a job, never two outcomes.
   */
  private async runAndAnswer(row: OwnedJobRow): Promise<void> {
    if (row.state !== 'COMPLETED' && row.state !== 'FAILED') {
      const outcome = await this.enqueue(() => this.run(row));
      this.options.jobs.setOwnedOutcome(row.group_id, row.job_id, outcome.kept, this.now());
    }
    const kept = this.options.jobs.owned(row.group_id, row.job_id);
    if (kept === undefined || (kept.state !== 'COMPLETED' && kept.state !== 'FAILED')) {
      throw new LedgerbusError(ErrorCode.Internal, `job ${row.job_id} has no outcome after its run`);
    }
    await submitJobAction(this.submitOptions(), kept.group_id, {
      kind: 'jobResult',
      jobId: kept.job_id,
      status: kept.state,
      resultHash: kept.result_hash === null ? null : fromHex(kept.result_hash),
      resultBytes: kept.result_bytes,
      code: kept.result_code,
      detail: kept.result_detail,
      suppressedGroups: kept.suppressed_groups,
    });
    this.options.jobs.markResultRecorded(kept.group_id, kept.job_id, this.now());
    this.options.logger.info(
      {
        jobId: kept.job_id,
        group: kept.group_id,
        requester: kept.requester,
        status: kept.state,
        code: kept.result_code,
      },
      'recorded a job result',
    );
  }

  /**
   * One run: the plan from the kept spec, our dataset and policy now, what earlier jobs on the
   * dataset released. The requester must still be approved when the job runs (a job approved by
   * hand may run long after it was checked). What the job released is kept the moment it is known,
   * before its result can leave: a result never goes out without its history entry.
   */
  private async run(row: OwnedJobRow): Promise<{ plan: JobPlan | null; kept: OwnedOutcome }> {
    const failed = (code: string, detail: string): { plan: null; kept: OwnedOutcome } => ({
      plan: null,
      kept: {
        state: 'FAILED' as const,
        code,
        detail: clip(detail),
        suppressedGroups: 0,
        resultHash: null,
        resultBytes: 0,
        sealed: null,
      },
    });
    const { registry, organization } = this.options;
    let plan: JobPlan;
    try {
      if (row.spec === null) {
        // Approved on-chain (by us, before a crash) without the spec kept: open it again.
        const record = await fetchJobRecord(
          this.options.session,
          this.options.trust,
          row.group_id,
          row.job_id,
        );
        const verdict = await this.check(row, record);
        if (verdict.kind === 'reject') return failed(verdict.reason, verdict.detail);
        plan = verdict.plan;
      } else {
        plan = planOf(specOf(JSON.parse(row.spec) as unknown));
      }
    } catch (error) {
      if (isLedgerbusError(error) && error.retriable) throw error;
      return failed(codeOf(error, ErrorCode.QueryRejected), describeError(error));
    }
    const dataset = this.options.datasets.get(plan.dataset);
    if (dataset === undefined)
      return failed(ErrorCode.DatasetNotFound, `${organization} no longer has dataset ${plan.dataset}`);
    const requester = registry.organization(row.requester);
    if (requester === undefined || requester.status !== 'APPROVED')
      return failed(
        ErrorCode.Forbidden,
        `requester ${row.requester} is ${requester?.status ?? 'not registered'}: its job does not run`,
      );
    const key = datasetKey(dataset);
    // Its own entry, from a run cut short by a crash, is not an earlier job.
    const earlier = this.options.jobs
      .releasedOn(plan.dataset, key)
      .filter((entry) => entry.job_id !== row.job_id || entry.group_id !== row.group_id);
    if (earlier.length >= releasedRowsMax)
      return failed(
        ErrorCode.JobLimitExceeded,
        `dataset ${plan.dataset} has answered ${releasedRowsMax} jobs, all the history its difference check keeps: it takes no more until its owner loads it again`,
      );
    const history = dataset.policy.differenceCheck
      ? earlier.map((entry) => JSON.parse(entry.released) as ReleasedRows)
      : [];
    let output: JobOutput;
    const started = this.now();
    try {
      const run = await this.options.runJob({
        datasetFile: dataset.file,
        plan,
        columns: dataset.columns,
        policy: dataset.policy,
        history,
      });
      this.options.jobs.recordReleased({
        dataset: plan.dataset,
        dataset_key: key,
        group_id: row.group_id,
        job_id: row.job_id,
        requester: row.requester,
        released: JSON.stringify(run.released),
        executed_at: this.now(),
      });
      output = run.output;
    } catch (error) {
      if (!isLedgerbusError(error) || !runFailureCodes.has(error.code)) {
        this.options.logger.error({ jobId: row.job_id, error: describeError(error) }, 'a job could not run');
        return failed(
          ErrorCode.JobFailed,
          'the job could not run at its owner; its operators have the details',
        );
      }
      this.options.logger.info(
        { jobId: row.job_id, requester: row.requester, code: error.code, ms: this.now() - started },
        'a job failed',
      );
      return failed(error.code, error.message);
    }
    let plaintext: Uint8Array;
    try {
      plaintext = padJson(canonicalJsonBytes(output));
    } catch (error) {
      // A non-finite number (a model that did not converge) has no JSON: the job failed, not us.
      return failed(ErrorCode.JobFailed, `the job's output cannot be sent: ${describeError(error)}`);
    }
    const requesterKey = registry.encryptionKey(row.requester);
    if (requesterKey === undefined)
      return failed(ErrorCode.JobFailed, `${row.requester} has no encryption key registered`);
    const sealed = await sealJobBox(plaintext, requesterKey, {
      network: registry.network,
      jobId: row.job_id,
      requester: row.requester,
      owner: organization,
      purpose: 'result',
    });
    this.options.logger.info(
      {
        jobId: row.job_id,
        requester: row.requester,
        kind: output.kind,
        bytes: plaintext.length,
        ms: this.now() - started,
      },
      'ran a job',
    );
    return {
      plan,
      kept: {
        state: 'COMPLETED',
        code: 'OK',
        detail: '',
        suppressedGroups: output.kind === 'aggregate' ? output.suppressedGroups : 0,
        resultHash: toHex(sealedBoxDigest(sealed)),
        resultBytes: plaintext.length,
        sealed,
      },
    };
  }

  /** Records what the chain says of a finished job (a run here recorded it, or we lost our copy). */
  private followRecordedResult(row: OwnedJobRow, record: VerifiedJobRecord): void {
    const recorded = record.view.result ?? undefined;
    if (recorded === undefined) return;
    const chainHash = recorded.resultHash === null ? null : toHex(recorded.resultHash);
    // The row as stored now: `row` may have been read before this connector's own run finished.
    const current = this.options.jobs.owned(row.group_id, row.job_id) ?? row;
    const finished = current.state === 'COMPLETED' || current.state === 'FAILED';
    const chainOutcome = {
      state: recorded.status,
      code: recorded.code,
      detail: recorded.detail,
      suppressedGroups: recorded.suppressedGroups,
      resultHash: chainHash,
      resultBytes: recorded.resultBytes,
      sealed: null,
    };
    if (!finished) {
      // Our kept outcome is gone (a restored database): the chain's is the record, without a result to serve.
      this.options.jobs.setOwnedOutcome(row.group_id, row.job_id, chainOutcome, this.now());
    } else if (current.state !== recorded.status || current.result_hash !== chainHash) {
      // What we kept is not what the chain holds (a second run whose result was refused): the chain
      // is the record, and a result it does not name is never served.
      this.options.jobs.adoptChainOutcome(row.group_id, row.job_id, chainOutcome, this.now());
    }
    const decision = record.view.decision ?? undefined;
    if (decision !== undefined && row.decision_recorded === 0) {
      this.options.jobs.setOwnedDecision(
        row.group_id,
        row.job_id,
        {
          state: this.options.jobs.owned(row.group_id, row.job_id)?.state ?? row.state,
          reason: decision.reason,
          detail: decision.detail,
          recorded: true,
        },
        this.now(),
      );
    }
    this.options.jobs.markResultRecorded(row.group_id, row.job_id, this.now());
  }

  private async recordDecision(
    group: string,
    jobId: string,
    decision: 'APPROVED' | 'REJECTED',
    reason: string,
    detail: string,
  ): Promise<void> {
    const action: JobAction = { kind: 'jobDecision', jobId, decision, reason, detail: clip(detail) };
    await submitJobAction(this.submitOptions(), group, action);
    const row = this.options.jobs.owned(group, jobId);
    this.options.jobs.setOwnedDecision(
      group,
      jobId,
      { state: row?.state ?? decision, reason, detail: clip(detail), recorded: true },
      this.now(),
    );
  }

  /** The one owned job `jobId` waiting for a person; MESSAGE_NOT_FOUND or MESSAGE_REJECTED otherwise. */
  private waiting(jobId: string): OwnedJobRow {
    const rows = this.options.jobs.ownedWithId(jobId);
    if (rows.length === 0) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `no job ${jobId} for ${this.options.organization}'s datasets has been seen here`,
      );
    }
    const pending = rows.filter((row) => row.state === 'PENDING_APPROVAL');
    const row = pending[0];
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageRejected,
        `job ${jobId} does not wait for approval: it is ${rows.map((candidate) => candidate.state).join(', ')}`,
        { details: { reason: 'JOB_STATE' } },
      );
    }
    if (pending.length > 1) {
      throw new LedgerbusError(
        ErrorCode.AmbiguousMessageId,
        `jobs ${jobId} wait on ${pending.map((p) => p.group_id).join(', ')}`,
      );
    }
    return row;
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const next = this.runQueue.then(task, task);
    this.runQueue = next.catch(() => undefined);
    return next;
  }

  private submitOptions() {
    return { ...this.options, submitter: this.options.submitter };
  }

  private now(): number {
    return this.options.lifecycle.clock.now();
  }
}

/** The state a recorded decision puts a job in here (an outcome kept already stays). */
function followState(current: OwnedJobRow['state'], decision: 'APPROVED' | 'REJECTED'): OwnedJobRow['state'] {
  if (decision === 'REJECTED') return 'REJECTED';
  return current === 'COMPLETED' || current === 'FAILED' ? current : 'APPROVED';
}

/** The error's code when it is one of ours, else `fallback`. */
function codeOf(error: unknown, fallback: string): string {
  return isLedgerbusError(error) ? error.code : fallback;
}

/** Fits a detail into the contract's bound. */
function clip(text: string): string {
  if (text.length <= jobLimits.detailLengthMax) return text;
  // Never cut a surrogate pair in two: a lone half is not text the codec would keep as it is.
  const cut = text.slice(0, jobLimits.detailLengthMax - 1).replace(/[\uD800-\uDBFF]$/, '');
  return `${cut}…`;
}
