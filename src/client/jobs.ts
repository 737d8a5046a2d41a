/**
 * Compute-to-data jobs (DESIGN §8) from an application: ask another organization's dataset a
 * question — an aggregate query in a small SQL subset, or a linear or logistic model, federated
 * across several owners — and get back only the answer, never a row. As an owner, approve or refuse
 * the jobs your policy leaves to a person; as a supervisor, list every sharing record.
 *
 *   const jobs = lb.jobs();
 *   const done = await jobs.submit({
 *     datasets: ['org2/loans'],
 *     spec: { kind: 'aggregate', query: 'SELECT region, COUNT(*), AVG(amount) FROM loans GROUP BY region' },
 *     wait: true,
 *   });
 *   console.log(done.output);                               // only groups of at least the minimum size
 *   const receipt = await jobs.receipt(done.jobId);         // checkable offline: ledgerbus verify
 */
import type {
  JobRecordSummary,
  JobResultAnswer,
  JobStatus,
  JobSubmitInput,
} from '../connector/datashare/jobs-api.js';
import type { JobOutput } from '../datashare/types.js';
import type { JobReceipt } from '../proofs/job-receipt.js';
import type { Transport } from './transport.js';

function jobPath(jobId: string, what = ''): string {
  return `/v1/jobs/${encodeURIComponent(jobId)}${what}`;
}

export class Jobs {
  constructor(private readonly transport: Transport) {}

  /**
   * Sends the job. Refused before anything goes on-chain: DATASET_NOT_FOUND, QUERY_REJECTED. With
   * `wait`, resolves once it finished with `output` (no time limit here; `waitMs` bounds the wait,
   * after which the status comes back without an output), or throws the owner's decision or the
   * run's failure: JOB_REJECTED, MIN_GROUP_SIZE, DIFFERENCE_CHECK, JOB_LIMIT_EXCEEDED, JOB_FAILED.
   */
  async submit(input: JobSubmitInput): Promise<JobStatus & { output?: JobOutput }> {
    return this.transport.json<JobStatus & { output?: JobOutput }>('POST', '/v1/jobs', {
      json: input,
      ...(input.wait === true ? { timeoutMs: null } : {}),
    });
  }

  /** The jobs this organization requested or ran, newest first. */
  async list(): Promise<JobStatus[]> {
    return (await this.transport.json<{ jobs: JobStatus[] }>('GET', '/v1/jobs')).jobs;
  }

  /** Every job record on the job topic the node shows this organization (a supervisor: all of them). */
  async listAll(options: { topic?: string } = {}): Promise<JobRecordSummary[]> {
    const answer = await this.transport.json<{ jobs: JobRecordSummary[] }>('GET', '/v1/jobs', {
      query: { all: 'true', topic: options.topic },
      timeoutMs: null,
    });
    return answer.jobs;
  }

  async status(jobId: string): Promise<JobStatus> {
    return this.transport.json<JobStatus>('GET', jobPath(jobId));
  }

  /** A finished job's result; MESSAGE_NOT_FOUND (retriable) while it runs, its failure's code after one. */
  async result(jobId: string): Promise<JobResultAnswer> {
    return this.transport.json<JobResultAnswer>('GET', jobPath(jobId, '/result'));
  }

  /** As the owner: approve a job that waits for a person. */
  async approve(jobId: string): Promise<JobStatus> {
    return this.transport.json<JobStatus>('POST', jobPath(jobId, '/approve'));
  }

  /** As the owner: refuse a job that waits for a person; `reason` is recorded on-chain. */
  async reject(jobId: string, reason: string): Promise<JobStatus> {
    return this.transport.json<JobStatus>('POST', jobPath(jobId, '/reject'), { json: { reason } });
  }

  /** The job's receipt (request, decision, result with their block evidence): `ledgerbus verify` checks it offline. */
  async receipt(jobId: string): Promise<JobReceipt> {
    return this.transport.json<JobReceipt>('GET', jobPath(jobId, '/receipt'));
  }
}
