/**
 * The connector's jobs as the API offers them (JobsApi, DESIGN §8): one facade over the requester's
 * side (RequesterJobs), the owner's side (OwnerJobs) and the ledger's records, which the REST routes
 * and through them the CLI and the SDK use. Statuses come from this connector's tables, refreshed
 * from the chain's verified records where the job is not finished.
 */
import { toHex } from '../../codec/index.js';
import type { JobView } from '../../contracts/datashare/views.js';
import { partitionGroupId } from '../../contracts/registry.js';
import type { JobOutput, JobSpec } from '../../datashare/types.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { JobReceipt } from '../../proofs/job-receipt.js';
import type { ConnectorContext } from '../context.js';
import { partitionOfGroup, topicOfGroup } from '../message-location.js';
import type { NodeSession } from '../session/node-session.js';
import { defaultJobTopic, jobGroup } from './job-location.js';
import { fetchJobRecord } from './job-record.js';
import type { JobDatabase, OwnedJobRow, RequestedJobRow } from './job-state-database.js';
import type {
  JobPartStatus,
  JobRecordSummary,
  JobResultAnswer,
  JobState,
  JobStatus,
  JobSubmitInput,
  JobsApi,
} from './jobs-api.js';
import type { OwnerJobs } from './owner-jobs.js';
import { endError, jobWaitMsDefault } from './requester-jobs.js';
import type { RequesterJobs } from './requester-jobs.js';

/** Jobs one local listing shows at most (newest first). */
const listedJobsMax = 1_000;
/** Jobs one ledger listing (`job list --all`) reads at most per topic. */
const ledgerJobsMax = 10_000;
/** Job records read at once for a ledger listing. */
const recordsInFlight = 8;

export interface JobServiceOptions extends Pick<
  ConnectorContext,
  'organization' | 'registry' | 'trust' | 'lifecycle'
> {
  readonly session: Pick<NodeSession, 'call'>;
  readonly jobs: JobDatabase;
  readonly requester: RequesterJobs;
  readonly owner: OwnerJobs;
}

export class JobService implements JobsApi {
  constructor(private readonly options: JobServiceOptions) {}

  async submit(input: JobSubmitInput): Promise<JobStatus & { output?: JobOutput }> {
    const jobId = await this.options.requester.submit(input);
    if (input.wait !== true) return this.requesterStatus(jobId);
    const done = await this.options.requester.follow(jobId, input.waitMs ?? jobWaitMsDefault);
    const status = this.requesterStatus(jobId);
    if (!done) return status;
    const { output } = await this.options.requester.fetchResults(jobId);
    return { ...status, output };
  }

  list(): JobStatus[] {
    const { jobs } = this.options;
    const requested = [
      ...jobs.federations(listedJobsMax).map((row) => this.requesterStatus(row.job_id)),
      ...jobs.requestedJobs(listedJobsMax).map((row) => this.requesterStatus(row.job_id)),
    ];
    const owned = jobs.ownedJobs(listedJobsMax).map((row) => ownerStatus(row, this.options.organization));
    return [...requested, ...owned].sort((a, b) => b.createdAt - a.createdAt).slice(0, listedJobsMax);
  }

  async listAll(options: { topic?: string } = {}): Promise<JobRecordSummary[]> {
    const topicName = options.topic ?? defaultJobTopic;
    const topic = this.options.registry.topic(topicName);
    if (topic === undefined) throw new LedgerbusError(ErrorCode.TopicNotFound, `no topic ${topicName}`);
    const located: { group: string; jobId: string }[] = [];
    const seen = new Set<string>();
    for (let partition = 0; partition < topic.partitionCount && located.length < ledgerJobsMax; partition++) {
      const group = partitionGroupId(topicName, partition);
      let fromSeq = 0;
      for (;;) {
        const page = await this.options.session.call('jobLog', { group, fromSeq, limit: 500 });
        for (const entry of page.entries) {
          const key = `${group} ${entry.jobId}`;
          if (seen.has(key) || located.length >= ledgerJobsMax) continue;
          seen.add(key);
          located.push({ group, jobId: entry.jobId });
        }
        if (page.nextSeq <= fromSeq || page.nextSeq >= page.endSeq) break;
        fromSeq = page.nextSeq;
      }
    }
    const summaries: (JobRecordSummary | undefined)[] = new Array(located.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < located.length) {
        const index = next++;
        const { group, jobId } = located[index] as { group: string; jobId: string };
        const record = await fetchJobRecord(this.options.session, this.options.trust, group, jobId);
        summaries[index] = recordSummary(record.view);
      }
    };
    await Promise.all(Array.from({ length: Math.min(recordsInFlight, located.length) }, worker));
    return summaries.filter((summary): summary is JobRecordSummary => summary !== undefined);
  }

  async status(jobId: string): Promise<JobStatus> {
    if (this.requested(jobId)) {
      for (const part of this.options.requester.partsOf(jobId)) {
        if (!ended(part.state)) await this.options.requester.refreshQuietly(part);
      }
      return this.requesterStatus(jobId);
    }
    const owned = this.options.jobs.ownedWithId(jobId);
    const row = owned[0];
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `no job ${jobId} was requested by or run for ${this.options.organization} here`,
      );
    }
    if (owned.length > 1) {
      throw new LedgerbusError(
        ErrorCode.AmbiguousMessageId,
        `jobs ${jobId} exist on ${owned.map((entry) => entry.group_id).join(', ')}`,
      );
    }
    return ownerStatus(row, this.options.organization);
  }

  async result(jobId: string): Promise<JobResultAnswer> {
    if (!this.requested(jobId)) {
      if (this.options.jobs.ownedWithId(jobId).length > 0) {
        throw new LedgerbusError(
          ErrorCode.Forbidden,
          `job ${jobId} ran on ${this.options.organization}'s data: its result is sealed to its requester alone`,
        );
      }
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `${this.options.organization} requested no job ${jobId}`,
      );
    }
    const { requester } = this.options;
    for (const part of requester.partsOf(jobId)) {
      if (!ended(part.state)) await requester.refreshQuietly(part);
    }
    const parts = requester.partsOf(jobId);
    for (const part of parts) {
      const error = endError(part);
      if (error !== undefined) throw error;
      if (part.state !== 'COMPLETED') {
        throw new LedgerbusError(
          ErrorCode.MessageNotFound,
          `job ${jobId} has not finished yet (${part.state}); see ledgerbus job status ${jobId}`,
          {
            retriable: true,
          },
        );
      }
    }
    const fetched = await requester.fetchResults(jobId);
    const federated = this.options.jobs.federation(jobId) !== undefined;
    return {
      jobId,
      output: fetched.output,
      parts: federated
        ? fetched.parts.map(({ row, output }) => ({
            jobId: row.job_id,
            owner: row.owner,
            dataset: row.dataset,
            output,
          }))
        : [],
    };
  }

  async approve(jobId: string): Promise<JobStatus> {
    return ownerStatus(await this.options.owner.approve(jobId), this.options.organization);
  }

  async reject(jobId: string, reason: string): Promise<JobStatus> {
    return ownerStatus(await this.options.owner.reject(jobId, reason), this.options.organization);
  }

  /**
   * The receipt of job `jobId`: ours as requester or owner, or — for a supervisor, or anyone who
   * knows the id — on the default job topic's partition for the id. A federated job's id names no
   * single job on the ledger: ask for a part's.
   */
  async receipt(jobId: string): Promise<JobReceipt> {
    const { jobs, requester } = this.options;
    if (jobs.federation(jobId) !== undefined) {
      const parts = requester.partsOf(jobId).map((part) => part.job_id);
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `${jobId} is a federated job: each part has its own receipt (${parts.join(', ')})`,
      );
    }
    const group =
      jobs.requested(jobId)?.group_id ??
      jobs.ownedWithId(jobId)[0]?.group_id ??
      jobGroup(this.options.registry, defaultJobTopic, jobId);
    const record = await fetchJobRecord(this.options.session, this.options.trust, group, jobId);
    return record.receipt;
  }

  private requested(jobId: string): boolean {
    return (
      this.options.jobs.federation(jobId) !== undefined || this.options.jobs.requested(jobId) !== undefined
    );
  }

  /** Our job `jobId` (one of ours, its parts for a federated one) as its status. */
  private requesterStatus(jobId: string): JobStatus {
    const { jobs, organization } = this.options;
    const federation = jobs.federation(jobId);
    const parts =
      federation === undefined
        ? [jobs.requested(jobId)].filter((row) => row !== undefined)
        : jobs.parts(jobId);
    const first = parts[0];
    if (first === undefined)
      throw new LedgerbusError(ErrorCode.MessageNotFound, `${organization} requested no job ${jobId}`);
    const ending = parts.find((part) => endError(part) !== undefined);
    const createdAt = federation?.created_at ?? first.created_at;
    return {
      jobId,
      role: 'requester',
      kind: first.job_kind,
      requester: organization,
      federated: federation !== undefined,
      spec: JSON.parse(first.spec) as JobSpec,
      state: combinedState(parts),
      code: ending === undefined ? null : ending.reason,
      detail: ending?.detail ?? '',
      parts: parts.map(requestedPart),
      hasResult: federation === undefined ? first.output !== null : federation.output !== null,
      createdAt,
      updatedAt: Math.max(federation?.updated_at ?? 0, ...parts.map((part) => part.updated_at)),
    };
  }
}

function ended(state: RequestedJobRow['state']): boolean {
  return state === 'REJECTED' || state === 'COMPLETED' || state === 'FAILED' || state === 'REFUSED';
}

/** A job's state from its parts': the first failure, else the least advanced part's. */
function combinedState(parts: readonly RequestedJobRow[]): JobState {
  for (const state of ['REFUSED', 'REJECTED', 'FAILED'] as const) {
    if (parts.some((part) => part.state === state)) return state;
  }
  for (const state of ['SUBMITTING', 'REQUESTED', 'APPROVED'] as const) {
    if (parts.some((part) => part.state === state)) return state;
  }
  return 'COMPLETED';
}

function requestedPart(row: RequestedJobRow): JobPartStatus {
  return {
    jobId: row.job_id,
    topic: row.topic,
    partition: row.partition,
    owner: row.owner,
    dataset: row.dataset,
    datasetVersion: row.dataset_version,
    state: row.state,
    planHash: row.plan_hash,
    decision:
      row.state === 'APPROVED' || row.state === 'COMPLETED' || row.state === 'FAILED'
        ? { decision: 'APPROVED', reason: row.state === 'APPROVED' ? row.reason : '', detail: '' }
        : row.state === 'REJECTED'
          ? { decision: 'REJECTED', reason: row.reason, detail: row.detail }
          : null,
    result:
      row.state === 'COMPLETED' || row.state === 'FAILED'
        ? {
            status: row.state,
            code: row.reason,
            detail: row.detail,
            resultHash: row.result_hash,
            resultBytes: row.result_bytes,
            suppressedGroups: row.suppressed_groups,
          }
        : null,
    resultFetched: row.output !== null,
  };
}

/** A job run on our data, as its status. */
export function ownerStatus(row: OwnedJobRow, owner: string): JobStatus {
  const state: JobState = row.state === 'RECEIVED' ? 'REQUESTED' : row.state;
  const decided =
    row.state !== 'RECEIVED' && row.state !== 'PENDING_APPROVAL' && row.decision_reason.length > 0;
  const finished = row.state === 'COMPLETED' || row.state === 'FAILED';
  const code =
    row.state === 'REJECTED' ? row.decision_reason : row.state === 'FAILED' ? row.result_code : null;
  return {
    jobId: row.job_id,
    role: 'owner',
    kind: row.job_kind,
    requester: row.requester,
    federated: false,
    spec: row.spec === null ? null : (JSON.parse(row.spec) as JobSpec),
    state,
    code,
    detail: row.state === 'REJECTED' ? row.decision_detail : row.state === 'FAILED' ? row.result_detail : '',
    parts: [
      {
        jobId: row.job_id,
        topic: topicOfGroup(row.group_id),
        partition: partitionOfGroup(row.group_id),
        owner,
        dataset: row.dataset,
        datasetVersion: row.dataset_version,
        state,
        planHash: row.plan_hash,
        decision: decided
          ? {
              decision: row.state === 'REJECTED' ? 'REJECTED' : 'APPROVED',
              reason: row.decision_reason,
              detail: row.decision_detail,
            }
          : null,
        result: finished
          ? {
              status: row.state === 'COMPLETED' ? 'COMPLETED' : 'FAILED',
              code: row.result_code,
              detail: row.result_detail,
              resultHash: row.result_hash,
              resultBytes: row.result_bytes,
              suppressedGroups: row.suppressed_groups,
            }
          : null,
        resultFetched: false,
      },
    ],
    hasResult: false,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** A job's ledger record as the supervisor's listing shows it. */
export function recordSummary(view: JobView): JobRecordSummary {
  return {
    jobId: view.jobId,
    topic: topicOfGroup(view.group),
    partition: partitionOfGroup(view.group),
    requester: view.requester,
    owner: view.owner,
    dataset: view.dataset,
    datasetVersion: view.datasetVersion,
    jobKind: view.jobKind,
    planHash: toHex(view.planHash),
    federation: view.federation,
    state: view.state,
    requestedAt: view.request.at,
    decision:
      view.decision === null
        ? null
        : {
            decision: view.decision.decision,
            reason: view.decision.reason,
            detail: view.decision.detail,
            at: view.decision.at,
          },
    result:
      view.result === null
        ? null
        : {
            status: view.result.status,
            code: view.result.code,
            detail: view.result.detail,
            resultHash: view.result.resultHash === null ? null : toHex(view.result.resultHash),
            resultBytes: view.result.resultBytes,
            suppressedGroups: view.result.suppressedGroups,
            at: view.result.at,
          },
  };
}
