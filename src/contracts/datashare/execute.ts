/**
 * The job contract (DESIGN §8, compute-to-data), executed by every partition's replicas beside the
 * SDT and escrow contracts and inside the same batch: the SDT contract authenticates a `job`
 * transaction (same keys, nonces and clock window as its own) and hands the action here. Like the
 * others, a deterministic state machine: no clock (time is the block's contract time), no
 * randomness, no I/O.
 *
 * A job's life: REQUESTED (by a member, to an approved member owner) → APPROVED or REJECTED (by the
 * owner) → COMPLETED or FAILED (by the owner, only after APPROVED). Every step is recorded once: an
 * identical repeat of a recorded step (a connector's retry) gets the first result again, byte for
 * byte; anything else that contradicts what is recorded is refused.
 *
 * Rejections are data. A refused action (a `JobRefusal`) writes nothing: every action checks
 * everything before its first write.
 */
import { bytesEqual } from '../../codec/index.js';
import { assert } from '../../errors.js';
import { RejectReason } from '../reasons.js';
import type { Organization, Registry } from '../registry.js';
import type { JobResult } from '../results.js';
import { jobRequestDigest } from './store.js';
import type { JobStore } from './store.js';
import type { JobAction } from './transactions.js';
import type { JobLogKind, JobView } from './views.js';

/** What the job contract knows about the block being executed. */
export interface JobContext {
  /** The partition's consensus group id ("topic/p"), recorded in every job's view. */
  readonly partitionId: string;
  readonly height: number;
  /** Contract time of the block (see `executeBatch`). */
  readonly time: number;
  readonly registry: Registry;
}

/** Why a whole job transaction is refused (it then changes nothing, not even its nonce). */
export interface JobRefusal {
  readonly reason: RejectReason;
  readonly detail?: string;
}

type Action<K extends JobAction['kind']> = Extract<JobAction, { kind: K }>;

/** One block's job execution over `store` (a view of the batch's write buffer). */
export class JobExecution {
  constructor(
    private readonly store: JobStore,
    private readonly context: JobContext,
  ) {
    assert(Number.isSafeInteger(context.height) && context.height >= 1, 'height');
  }

  /**
   * Executes `action`, signed by the authenticated (and APPROVED) `organization`, as transaction
   * `transactionIndex` of the block. Returns its result, or why it is refused.
   */
  execute(organization: Organization, action: JobAction, transactionIndex: number): JobResult | JobRefusal {
    switch (action.kind) {
      case 'jobRequest':
        return this.request(organization, action, transactionIndex);
      case 'jobDecision':
        return this.decide(organization, action, transactionIndex);
      case 'jobResult':
        return this.finish(organization, action, transactionIndex);
    }
  }

  private request(
    requester: Organization,
    action: Action<'jobRequest'>,
    transactionIndex: number,
  ): JobResult | JobRefusal {
    // An identical retry gets the first result, whatever changed since (like an idempotent publish):
    // the request was valid when recorded, and the record stays true.
    const digest = jobRequestDigest(requester.id, action);
    const existing = this.store.record(action.jobId);
    if (existing !== undefined) {
      const recorded = this.store.requestDigest(action.jobId);
      assert(recorded !== undefined, `job ${action.jobId} has a record but no request digest`);
      return bytesEqual(recorded, digest)
        ? stepResult(existing, 'jobRequest')
        : { reason: RejectReason.JobExists };
    }
    if (!requester.roles.includes('member')) return { reason: RejectReason.NotMember };
    const owner = this.context.registry.organization(action.owner);
    if (owner === undefined) return { reason: RejectReason.OwnerUnknown, detail: action.owner };
    if (owner.status !== 'APPROVED') return { reason: RejectReason.OwnerNotApproved, detail: owner.status };
    if (!owner.roles.includes('member')) {
      return { reason: RejectReason.OwnerNotApproved, detail: 'NO_MEMBER_ROLE' };
    }

    const job: JobView = {
      jobId: action.jobId,
      group: this.context.partitionId,
      requester: requester.id,
      owner: owner.id,
      dataset: action.dataset,
      datasetVersion: action.datasetVersion,
      jobKind: action.jobKind,
      planHash: action.planHash,
      federation: action.federation ?? null,
      state: 'REQUESTED',
      request: this.position(transactionIndex),
      decision: null,
      result: null,
    };
    this.store.putRecord(job);
    this.store.putRequestDigest(job.jobId, digest);
    this.log('requested', job, transactionIndex);
    return stepResult(job, 'jobRequest');
  }

  private decide(
    owner: Organization,
    action: Action<'jobDecision'>,
    transactionIndex: number,
  ): JobResult | JobRefusal {
    const job = this.store.record(action.jobId);
    if (job === undefined) return { reason: RejectReason.JobUnknown };
    if (owner.id !== job.owner) return { reason: RejectReason.NotJobOwner };
    if (job.decision !== null) {
      const same =
        job.decision.decision === action.decision &&
        job.decision.reason === action.reason &&
        job.decision.detail === action.detail;
      return same ? stepResult(job, 'jobDecision') : { reason: RejectReason.JobState, detail: job.state };
    }
    assert(job.state === 'REQUESTED', `job ${job.jobId} is ${job.state} without a decision`);
    const decided: JobView = {
      ...job,
      state: action.decision,
      decision: {
        decision: action.decision,
        reason: action.reason,
        detail: action.detail,
        ...this.position(transactionIndex),
      },
    };
    this.store.putRecord(decided);
    this.log('decided', decided, transactionIndex);
    return stepResult(decided, 'jobDecision');
  }

  private finish(
    owner: Organization,
    action: Action<'jobResult'>,
    transactionIndex: number,
  ): JobResult | JobRefusal {
    const job = this.store.record(action.jobId);
    if (job === undefined) return { reason: RejectReason.JobUnknown };
    if (owner.id !== job.owner) return { reason: RejectReason.NotJobOwner };
    // The ledger holds the hash of exactly the result served, and no hash for a failure.
    if ((action.status === 'COMPLETED') !== (action.resultHash !== null)) {
      return { reason: RejectReason.Malformed, detail: 'resultHash' };
    }
    if (job.result !== null) {
      const recorded = job.result;
      const same =
        recorded.status === action.status &&
        sameHash(recorded.resultHash, action.resultHash) &&
        recorded.resultBytes === action.resultBytes &&
        recorded.code === action.code &&
        recorded.detail === action.detail &&
        recorded.suppressedGroups === action.suppressedGroups;
      return same ? stepResult(job, 'jobResult') : { reason: RejectReason.JobState, detail: job.state };
    }
    if (job.state !== 'APPROVED') return { reason: RejectReason.JobState, detail: job.state };
    const finished: JobView = {
      ...job,
      state: action.status,
      result: {
        status: action.status,
        resultHash: action.resultHash,
        resultBytes: action.resultBytes,
        code: action.code,
        detail: action.detail,
        suppressedGroups: action.suppressedGroups,
        ...this.position(transactionIndex),
      },
    };
    this.store.putRecord(finished);
    this.log('finished', finished, transactionIndex);
    return stepResult(finished, 'jobResult');
  }

  private position(transactionIndex: number): { height: number; transactionIndex: number; at: number } {
    return { height: this.context.height, transactionIndex, at: this.context.time };
  }

  private log(kind: JobLogKind, job: JobView, transactionIndex: number): void {
    this.store.appendLog({
      kind,
      jobId: job.jobId,
      requester: job.requester,
      owner: job.owner,
      height: this.context.height,
      transactionIndex,
    });
  }
}

function sameHash(a: Uint8Array | null, b: Uint8Array | null): boolean {
  return a === null || b === null ? a === b : bytesEqual(a, b);
}

/** The result of `kind`'s recorded step of `job`: the same bytes for the step and every repeat of it. */
function stepResult(job: JobView, kind: JobAction['kind']): JobResult {
  const base = { status: 'OK', type: 'job', kind, jobId: job.jobId } as const;
  switch (kind) {
    case 'jobRequest':
      return {
        ...base,
        organization: job.requester,
        state: 'REQUESTED',
        height: job.request.height,
        transactionIndex: job.request.transactionIndex,
      };
    case 'jobDecision': {
      assert(job.decision !== null, `job ${job.jobId} has no decision`);
      return {
        ...base,
        organization: job.owner,
        state: job.decision.decision,
        height: job.decision.height,
        transactionIndex: job.decision.transactionIndex,
      };
    }
    case 'jobResult': {
      assert(job.result !== null, `job ${job.jobId} has no result`);
      return {
        ...base,
        organization: job.owner,
        state: job.result.status,
        height: job.result.height,
        transactionIndex: job.result.transactionIndex,
      };
    }
  }
}
