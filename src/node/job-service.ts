/**
 * What a node shows connectors of the job contract (DESIGN §8), from a replica's COMMITTED state:
 *
 *   jobLog      the partition's job log from a sequence number, a long poll like `poll`: the entries
 *               of jobs the calling organization requested or owns; every entry for an approved
 *               supervisor (the paper's "the supervisor can review every sharing record")
 *   jobRecord   one job's record and the block evidence of each of its transactions (request,
 *               decision, result), for its requester, its owner and approved supervisors
 *
 * The caller is approved already (the client service checks it on every request). Answers are
 * hints: a connector acts on what the evidences prove (proofs/job-receipt.ts).
 */
import type { CborValue } from '../codec/index.js';
import { jobLogPage, jobView } from '../contracts/datashare/queries.js';
import { jobViewSchema } from '../contracts/datashare/views.js';
import type { JobLogEntry, JobView } from '../contracts/datashare/views.js';
import type { ContractState } from '../contracts/state.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { blockEvidenceToCbor } from '../proofs/index.js';
import type { BlockEvidence } from '../proofs/index.js';
import { jobLogPageMax } from '../protocol/client-methods.js';
import type { NodeMethods, RequestOf, ResponseOf } from '../protocol/client-methods.js';
import { actsAs } from '../registry/system-state.js';
import type { NetworkRegistry } from '../registry/types.js';
import type { Logger } from '../runtime/logger.js';
import type { PartitionReplica } from './partition-replica.js';

type Request<M extends keyof NodeMethods> = RequestOf<NodeMethods[M]>;
type Response<M extends keyof NodeMethods> = ResponseOf<NodeMethods[M]>;

export interface JobServiceOptions {
  readonly registry: NetworkRegistry;
  readonly logger: Logger;
  /** Largest wait a jobLog long poll may ask for (the client service's poll limit). */
  readonly pollWaitMsMax?: number;
  /** This node's replica of `group` and a read-only view of its committed state (WRONG_GROUP if none). */
  readonly committed: (group: string) => { replica: PartitionReplica; state: ContractState };
  /** The evidence of transaction `transactionIndex` of block `height` of `replica`. */
  readonly evidence: (replica: PartitionReplica, height: number, transactionIndex: number) => BlockEvidence;
}

/** A page when the caller names no limit. */
const jobLogPageDefault = 100;

/** A job step and where its transaction is. */
type Step = {
  readonly step: 'request' | 'decision' | 'result';
  readonly height: number;
  readonly transactionIndex: number;
};

/** The steps `job` has recorded, in order. */
export function jobSteps(job: JobView): Step[] {
  const steps: Step[] = [{ step: 'request', ...job.request }];
  if (job.decision !== null) steps.push({ step: 'decision', ...job.decision });
  if (job.result !== null) steps.push({ step: 'result', ...job.result });
  return steps;
}

export class JobService {
  constructor(private readonly options: JobServiceOptions) {}

  /**
   * A page of the job log from `fromSeq` with the entries `organization` may see. With `waitMs`,
   * waits until the log has grown past `fromSeq` or the wait ends. `nextSeq` is past every entry the
   * page covered, shown or not, so a follower never asks for a filtered entry again.
   */
  async log(organization: string, body: Request<'jobLog'>): Promise<Response<'jobLog'>> {
    const { group, fromSeq } = body;
    const limit = Math.min(jobLogPageMax, Math.max(1, body.limit ?? jobLogPageDefault));
    const waitMs = Math.min(this.options.pollWaitMsMax ?? 30_000, body.waitMs ?? 0);
    const { replica, state } = this.options.committed(group);
    const grown = (): boolean => jobLogPage(state, group, { fromSeq, limit: 0 }).endSeq > fromSeq;
    if (waitMs > 0 && !grown()) await untilBlock(replica, waitMs, grown);
    const page = jobLogPage(state, group, { fromSeq, limit });
    assert(page.nextSeq >= fromSeq && page.entries.length <= limit, 'job log page within its request');
    const supervisor = this.supervises(organization);
    const visible = (entry: JobLogEntry): boolean =>
      supervisor || entry.requester === organization || entry.owner === organization;
    return { entries: page.entries.filter(visible), nextSeq: page.nextSeq, endSeq: page.endSeq };
  }

  /**
   * Job `jobId`'s record with the block evidence of each recorded step, for its requester, its
   * owner and approved supervisors; anyone else is FORBIDDEN (logged). A job not committed (yet) is
   * MESSAGE_NOT_FOUND, retriable.
   */
  record(organization: string, { group, jobId }: Request<'jobRecord'>): Response<'jobRecord'> {
    const { replica, state } = this.options.committed(group);
    const job = jobView(state, group, jobId);
    if (job === undefined) {
      throw new LedgerbusError(ErrorCode.MessageNotFound, `job ${jobId} is not committed on ${group}`, {
        retriable: true,
      });
    }
    if (job.requester !== organization && job.owner !== organization && !this.supervises(organization)) {
      this.options.logger.warn(
        { organization, jobId, group },
        'refused a job record to an organization that neither requested nor owns it',
      );
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `${organization} is neither the requester nor the owner of job ${jobId}, nor an approved supervisor`,
      );
    }
    const evidences = jobSteps(job).map(({ step, height, transactionIndex }) => ({
      step,
      evidence: blockEvidenceToCbor(this.options.evidence(replica, height, transactionIndex)),
    }));
    return { record: jobViewSchema.parse(job, 'job record') as CborValue, evidences };
  }

  private supervises(organization: string): boolean {
    return actsAs(this.options.registry.organization(organization), 'supervisor');
  }
}

/** Resolves once `ready()` holds after a committed block of `replica`, or after `waitMs`. */
function untilBlock(replica: PartitionReplica, waitMs: number, ready: () => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, waitMs);
    const unsubscribe = replica.onBlock(() => {
      if (ready()) done();
    });
    function done(): void {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    }
  });
}
