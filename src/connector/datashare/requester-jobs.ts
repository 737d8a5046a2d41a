/**
 * The requester's side of compute-to-data (DESIGN §8): submitting a job and getting its result.
 *
 *   catalog entry from our node (DATASET_NOT_FOUND) → the job's plan checked against the entry's
 *   columns and policy (QUERY_REJECTED, before anything is sent) → the job sealed to the owner's
 *   key → a signed jobRequest with the plan's hash on the job topic's partition for its id →
 *   following the job on-chain → the result asked of the owner's connector (a signed request, through
 *   the nodes), opened with our key and checked against the hash the owner recorded on-chain.
 *
 * A job over several owners' datasets is federated: one part per owner, each naming the parent
 * job, each trained where its data is; only the parts' parameters come back, and they are averaged
 * here (FedAvg, weighted by rows).
 */
import { randomBytes } from 'node:crypto';
import { toHex } from '../../codec/index.js';
import { encodeJobResultRequest } from '../../contracts/datashare/result-requests.js';
import type { JobView } from '../../contracts/datashare/views.js';
import { nonceBytes } from '../../contracts/limits.js';
import { partitionGroupId } from '../../contracts/registry.js';
import { openJobBox, sealJobBox, sealedBoxDigest } from '../../crypto/job-box.js';
import { canonicalJson, canonicalJsonBytes } from '../../datashare/canonical-json.js';
import { federatedAverage } from '../../datashare/models/federated.js';
import { planHash, planOf, planSaltBytes, saltOf } from '../../datashare/query/plan.js';
import { checkPlan } from '../../datashare/query/policy.js';
import type { JobOutput, JobSpec } from '../../datashare/types.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import type { CatalogEntry } from '../../registry/catalog.js';
import { Backoff } from '../../runtime/retry.js';
import type { RetryPolicy } from '../../runtime/retry.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import { defaultJobTopic, jobPartition, newJobId } from './job-location.js';
import { fetchJobRecord } from './job-record.js';
import type { VerifiedJobRecord } from './job-record.js';
import { jobOutputOf } from './job-output.js';
import type { FederationRow, JobDatabase, RequestedJobRow } from './job-state-database.js';
import { submitJobAction } from './job-submit.js';
import type { JobSpecInput, JobSubmitInput } from './jobs-api.js';

/** How long `submit` with `wait` follows a job before answering its status instead. */
export const jobWaitMsDefault = 10 * 60_000;
/** Between looks at an unfinished job while waiting (the job log wakes the wait sooner). */
const followPolicy: RetryPolicy = { initialRetryTimeMs: 250, maxRetryTimeMs: 5_000, jitter: 0.2 };

/** Decision reasons a requester sees as their own code; any other rejection is JOB_REJECTED. */
const rejectionCodes: ReadonlySet<string> = new Set([
  ErrorCode.QueryRejected,
  ErrorCode.DatasetNotFound,
  ErrorCode.Forbidden,
]);
/** Result codes a requester sees as their own code; any other failure is JOB_FAILED. */
const failureCodes: ReadonlySet<string> = new Set([
  ErrorCode.MinGroupSize,
  ErrorCode.DifferenceCheck,
  ErrorCode.JobLimitExceeded,
  ErrorCode.QueryRejected,
  ErrorCode.DatasetNotFound,
  ErrorCode.JobFailed,
]);

export interface RequesterJobsOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'encryptionKey' | 'registry' | 'trust' | 'logger' | 'lifecycle' | 'random'
> {
  readonly session: Pick<NodeSession, 'call' | 'connectorCall'>;
  readonly submitter: Pick<TransactionSubmitter, 'submit'>;
  readonly jobs: JobDatabase;
  /** Refreshes the registry from our node: an owner approved a moment ago is seen before refusing. */
  readonly syncRegistry?: () => Promise<unknown>;
}

/** One part of a job being prepared: everything its request needs, checked. */
interface PreparedPart {
  readonly jobId: string;
  readonly owner: string;
  readonly entry: CatalogEntry;
  readonly spec: JobSpec;
  readonly planHash: Uint8Array;
  readonly topic: string;
  readonly partition: number;
  readonly group: string;
}

export class RequesterJobs {
  /**
   * Wakes callers waiting for a job to move (the job log saw a step of one of ours). One per wait under
   * way, each removed when woken or at its timeout.
   */
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: RequesterJobsOptions) {}

  /**
   * Checks, seals and requests the job on every dataset named, recording it here first. Returns
   * the job's id (the parent's, for a federated job). Nothing goes on-chain unless every part passed
   * its checks; a part the contract refuses is recorded REFUSED and its error thrown.
   */
  async submit(input: JobSubmitInput): Promise<string> {
    const { registry } = this.options;
    const datasets = input.datasets.map(parseDatasetName);
    if (datasets.length === 0)
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'datasets: name at least one OWNER/NAME');
    if (new Set(input.datasets).size !== input.datasets.length) {
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'datasets: a dataset is named twice');
    }
    const federated = datasets.length > 1;
    if (federated && input.spec.kind !== 'model') {
      throw new LedgerbusError(
        ErrorCode.QueryRejected,
        'an aggregate query reads one dataset: only model jobs are federated across several owners',
      );
    }
    const topic = input.topic ?? defaultJobTopic;
    const described = registry.topic(topic);
    if (described === undefined) {
      throw new LedgerbusError(
        ErrorCode.TopicNotFound,
        `no topic ${topic} to carry the job; jobs go on ${defaultJobTopic} unless told`,
      );
    }
    const parentId = newJobId();
    const parts: PreparedPart[] = [];
    for (const { owner, name } of datasets) {
      const entry = await this.catalogEntry(owner, name);
      // A fresh salt per part: the plan hash on the ledger cannot be confirmed by guessing queries.
      const spec: JobSpec = {
        ...specFor(input.spec, name),
        salt: randomBytes(planSaltBytes).toString('hex'),
      };
      const plan = planOf(spec);
      checkPlan(plan, entry.columns, entry.policy);
      const jobId = federated ? newJobId() : parentId;
      const partition = jobPartition(jobId, described.partitionCount);
      parts.push({
        jobId,
        owner,
        entry,
        spec,
        planHash: planHash(plan, saltOf(spec)),
        topic,
        partition,
        group: partitionGroupId(topic, partition),
      });
    }
    const sealed = await Promise.all(parts.map((part) => this.seal(part)));
    const now = this.now();
    if (federated) {
      this.options.jobs.insertFederation({
        job_id: parentId,
        topic,
        spec: canonicalJson(input.spec),
        output: null,
        created_at: now,
        updated_at: now,
      });
    }
    parts.forEach((part, index) =>
      this.options.jobs.insertRequested(requestedRow(part, federated ? parentId : null, index, now)),
    );
    for (const [index, part] of parts.entries()) {
      try {
        await submitJobAction(this.options, part.group, {
          kind: 'jobRequest',
          jobId: part.jobId,
          owner: part.owner,
          dataset: part.entry.dataset,
          datasetVersion: part.entry.version,
          jobKind: part.spec.kind,
          planHash: part.planHash,
          sealedSpec: sealed[index] as Awaited<ReturnType<typeof sealJobBox>>,
          ...(federated ? { federation: parentId } : {}),
        });
      } catch (error) {
        // A failure retrying could fix (the node out of reach) may have committed the request
        // after all: the job stays SUBMITTING, and the job log settles it if it did.
        if (!isLedgerbusError(error) || error.retriable) throw error;
        const reason = error.details?.reason ?? error.code;
        this.options.jobs.updateRequested(
          part.jobId,
          { state: 'REFUSED', reason, detail: describeError(error).slice(0, 1024) },
          this.now(),
        );
        throw error;
      }
      this.options.jobs.updateRequested(
        part.jobId,
        { state: 'REQUESTED', reason: '', detail: '' },
        this.now(),
      );
      this.options.logger.info(
        {
          jobId: part.jobId,
          group: part.group,
          owner: part.owner,
          dataset: part.entry.dataset,
          kind: part.spec.kind,
        },
        'requested a job',
      );
    }
    return parentId;
  }

  /**
   * Follows job `jobId` (ours) until every part is finished and its result is here, or `waitMs`
   * passes (then resolves false). Throws the job's failure: JOB_REJECTED (or QUERY_REJECTED,
   * DATASET_NOT_FOUND, FORBIDDEN as the owner decided), MIN_GROUP_SIZE, DIFFERENCE_CHECK,
   * JOB_LIMIT_EXCEEDED, JOB_FAILED as it ended; PAYLOAD_CORRUPT for a result that is not the one
   * recorded on-chain.
   */
  async follow(jobId: string, waitMs: number): Promise<boolean> {
    const { lifecycle } = this.options;
    const deadline = this.now() + waitMs;
    const backoff = new Backoff(followPolicy, this.options.random);
    for (;;) {
      const parts = this.partsOf(jobId);
      for (const part of parts) {
        if (!finished(part.state)) await this.refreshQuietly(part);
      }
      const current = this.partsOf(jobId);
      throwIfEnded(current);
      if (current.every((part) => part.state === 'COMPLETED')) {
        try {
          await this.fetchResults(jobId);
          return true;
        } catch (error) {
          if (!isLedgerbusError(error) || !error.retriable) throw error;
          this.options.logger.debug(
            { jobId, error: describeError(error) },
            'a job result is not available yet',
          );
        }
      }
      const left = deadline - this.now();
      if (left <= 0 || lifecycle.stopped) return false;
      await lifecycle.waitForWake(this.waiters, Math.min(left, backoff.next()));
    }
  }

  /**
   * Reads job `jobId` of `group` (one of ours, or a part of one) from the chain, verified, and
   * records what it says; wakes whoever waits. Resolves to the record, or undefined if the job is
   * not ours.
   */
  async refresh(group: string, jobId: string): Promise<VerifiedJobRecord | undefined> {
    const row = this.options.jobs.requested(jobId);
    if (row === undefined || row.group_id !== group) return undefined;
    const record = await fetchJobRecord(this.options.session, this.options.trust, group, jobId);
    this.note(record.view);
    return record;
  }

  /** Wakes whoever waits for a job (the job log saw a step of one). */
  wake(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /**
   * The results of every part of `jobId`, fetched from their owners where not here yet, and for a
   * federated job their average (stored). Throws what fetching throws (see `fetchResult`).
   */
  async fetchResults(
    jobId: string,
  ): Promise<{ output: JobOutput; parts: { row: RequestedJobRow; output: JobOutput }[] }> {
    const parts = this.partsOf(jobId);
    throwIfEnded(parts);
    const outputs: { row: RequestedJobRow; output: JobOutput }[] = [];
    for (const part of parts) {
      if (part.state !== 'COMPLETED') {
        throw new LedgerbusError(
          ErrorCode.MessageNotFound,
          `job ${part.job_id} has no result yet (${part.state})`,
          {
            retriable: true,
          },
        );
      }
      outputs.push({ row: part, output: await this.fetchResult(part) });
    }
    const federation = this.options.jobs.federation(jobId);
    if (federation === undefined)
      return { output: (outputs[0] as { output: JobOutput }).output, parts: outputs };
    if (federation.output !== null)
      return { output: jobOutputOf(JSON.parse(federation.output)), parts: outputs };
    const output = combine(
      federation,
      outputs.map((entry) => entry.output),
    );
    this.options.jobs.setFederationOutput(jobId, canonicalJson(output), this.now());
    return { output, parts: outputs };
  }

  /**
   * Part `row`'s result: from here if fetched before, else asked of its owner with a signed
   * request, opened with our key, and kept only if its SHA-256 is the one the owner recorded
   * on-chain (PAYLOAD_CORRUPT otherwise: the owner served something else than it recorded).
   */
  private async fetchResult(row: RequestedJobRow): Promise<JobOutput> {
    if (row.output !== null) return jobOutputOf(JSON.parse(row.output));
    if (row.result_hash === null) {
      throw new LedgerbusError(ErrorCode.Internal, `job ${row.job_id} is COMPLETED without a result hash`);
    }
    const { organization, signer, encryptionKey, registry, session } = this.options;
    // The owner serves a result once its own connector has seen it recorded, a moment after the
    // chain shows it to us: a retriable "not yet" is asked again a few times, each with a new nonce.
    const ask = () =>
      session.connectorCall(row.owner, 'jobResultGet', {
        request: encodeJobResultRequest(
          {
            requester: organization,
            owner: row.owner,
            group: row.group_id,
            jobId: row.job_id,
            nonce: randomBytes(nonceBytes),
            timestamp: this.now(),
          },
          signer,
        ),
      });
    let answer: Awaited<ReturnType<typeof ask>>;
    for (let attempt = 1; ; attempt++) {
      try {
        answer = await ask();
        break;
      } catch (error) {
        if (
          attempt >= resultNotYetAttempts ||
          !isLedgerbusError(error, ErrorCode.MessageNotFound) ||
          !error.retriable
        )
          throw error;
        await this.options.lifecycle.pause(250 * attempt);
      }
    }
    // Checked before the box is opened: a result the owner did not record is never read.
    if (toHex(sealedBoxDigest(answer.sealed)) !== row.result_hash) {
      throw new LedgerbusError(
        ErrorCode.PayloadCorrupt,
        `${row.owner} served a result for job ${row.job_id} that is not the one it recorded on-chain (sealed box sha256 ${row.result_hash})`,
        { retriable: false },
      );
    }
    const plaintext = await openJobBox(answer.sealed, encryptionKey, {
      network: registry.network,
      jobId: row.job_id,
      requester: organization,
      owner: row.owner,
      purpose: 'result',
    });
    if (plaintext.length !== row.result_bytes) {
      throw new LedgerbusError(
        ErrorCode.PayloadCorrupt,
        `${row.owner} served a result for job ${row.job_id} of ${plaintext.length} bytes, not the ${row.result_bytes} it recorded on-chain`,
        { retriable: false },
      );
    }
    let output: JobOutput;
    try {
      output = jobOutputOf(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext)));
    } catch (error) {
      throw new LedgerbusError(
        ErrorCode.JobFailed,
        `${row.owner}'s result for job ${row.job_id} is not a job result: ${describeError(error)}`,
      );
    }
    this.options.jobs.setRequestedOutput(row.job_id, canonicalJson(output), this.now());
    this.options.logger.info(
      { jobId: row.job_id, owner: row.owner, bytes: plaintext.length },
      'received a job result',
    );
    return output;
  }

  /** The rows of job `jobId`: its parts for a federated job, else itself. MESSAGE_NOT_FOUND when neither. */
  partsOf(jobId: string): RequestedJobRow[] {
    if (this.options.jobs.federation(jobId) !== undefined) return this.options.jobs.parts(jobId);
    const row = this.options.jobs.requested(jobId);
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `${this.options.organization} requested no job ${jobId}`,
      );
    }
    return [row];
  }

  /** Refreshes one part, leaving it as it is when the chain cannot be read now. */
  async refreshQuietly(row: RequestedJobRow): Promise<void> {
    if (row.state === 'REFUSED') return;
    try {
      await this.refresh(row.group_id, row.job_id);
    } catch (error) {
      this.options.logger.debug(
        { jobId: row.job_id, error: describeError(error) },
        'could not read a job record',
      );
    }
  }

  /** Records the proven view of one of our jobs. */
  private note(view: JobView): void {
    // A record of this id that is not the job we asked for (another requester squatted the id, or a
    // node answered about something else) changes nothing here.
    const row = this.options.jobs.requested(view.jobId);
    if (
      row === undefined ||
      view.requester !== this.options.organization ||
      view.owner !== row.owner ||
      toHex(view.planHash) !== row.plan_hash
    ) {
      this.options.logger.warn(
        { jobId: view.jobId, requester: view.requester, owner: view.owner },
        'ignored a job record that is not the job this connector requested',
      );
      return;
    }
    const update =
      view.result !== null
        ? {
            state: view.result.status,
            reason: view.result.code,
            detail: view.result.detail,
            result_hash: view.result.resultHash === null ? null : toHex(view.result.resultHash),
            result_bytes: view.result.resultBytes,
            suppressed_groups: view.result.suppressedGroups,
          }
        : view.decision !== null
          ? { state: view.decision.decision, reason: view.decision.reason, detail: view.decision.detail }
          : { state: 'REQUESTED' as const, reason: '', detail: '' };
    this.options.jobs.updateRequested(view.jobId, update, this.now());
    this.wake();
  }

  /** The catalog entry of `owner`'s `name` from our node; DATASET_NOT_FOUND saying why when there is none. */
  private async catalogEntry(owner: string, name: string): Promise<CatalogEntry> {
    try {
      return (await this.options.session.call('catalogEntry', { owner, dataset: name })).entry;
    } catch (error) {
      if (!isLedgerbusError(error, ErrorCode.DatasetNotFound)) throw error;
      await this.options.syncRegistry?.();
      const status = this.options.registry.organization(owner)?.status;
      const why =
        status === undefined
          ? `no organization ${owner} is registered`
          : status !== 'APPROVED'
            ? `${owner} is ${status}: the datasets of an organization that is not approved are hidden (the owner may be suspended)`
            : `${owner} publishes no dataset ${name}`;
      throw new LedgerbusError(
        ErrorCode.DatasetNotFound,
        `${owner}/${name}: ${why}; ledgerbus catalog search lists what is published`,
        {
          cause: error,
        },
      );
    }
  }

  /** The part's job sealed to its owner's registered encryption key. */
  private async seal(part: PreparedPart): Promise<Awaited<ReturnType<typeof sealJobBox>>> {
    const key = this.options.registry.encryptionKey(part.owner);
    if (key === undefined) {
      throw new LedgerbusError(
        ErrorCode.DatasetNotFound,
        `${part.owner} has no encryption key registered: it cannot receive jobs`,
      );
    }
    return sealJobBox(canonicalJsonBytes(part.spec), key, {
      network: this.options.registry.network,
      jobId: part.jobId,
      requester: this.options.organization,
      owner: part.owner,
      purpose: 'spec',
    });
  }

  private now(): number {
    return this.options.lifecycle.clock.now();
  }
}

/** 'owner/name' → its parts; SCHEMA_MISMATCH for anything else. */
export function parseDatasetName(text: string): { owner: string; name: string } {
  const slash = text.indexOf('/');
  const owner = text.slice(0, slash);
  const name = text.slice(slash + 1);
  if (slash < 1 || name.length === 0 || name.includes('/')) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `dataset "${text}": name it OWNER/NAME, as the catalog lists it`,
    );
  }
  return { owner, name };
}

/** The JobSpec of `input` for dataset `name`: only the fields given (canonical JSON has no undefined). */
/** Attempts at a result its owner does not serve yet (MESSAGE_NOT_FOUND, retriable): about 10 s in all. */
const resultNotYetAttempts = 8;

export function specFor(input: JobSpecInput, name: string): JobSpec {
  if (input.kind === 'aggregate') return { kind: 'aggregate', dataset: name, query: input.query };
  return {
    kind: 'model',
    dataset: name,
    model: input.model,
    features: [...input.features],
    target: input.target,
    ...(input.where === undefined ? {} : { where: input.where }),
    ...(input.iterations === undefined ? {} : { iterations: input.iterations }),
    ...(input.l2 === undefined ? {} : { l2: input.l2 }),
  };
}

function requestedRow(
  part: PreparedPart,
  parentId: string | null,
  index: number,
  now: number,
): RequestedJobRow {
  return {
    job_id: part.jobId,
    parent_id: parentId,
    part_index: index,
    topic: part.topic,
    partition: part.partition,
    group_id: part.group,
    owner: part.owner,
    dataset: part.entry.dataset,
    dataset_version: part.entry.version,
    job_kind: part.spec.kind,
    spec: canonicalJson(part.spec),
    plan_hash: toHex(part.planHash),
    state: 'SUBMITTING',
    reason: '',
    detail: '',
    result_hash: null,
    result_bytes: 0,
    suppressed_groups: 0,
    output: null,
    created_at: now,
    updated_at: now,
  };
}

function finished(state: RequestedJobRow['state']): boolean {
  return state === 'REJECTED' || state === 'COMPLETED' || state === 'FAILED' || state === 'REFUSED';
}

/** Throws the error of the first part that ended other than COMPLETED. */
function throwIfEnded(parts: readonly RequestedJobRow[]): void {
  for (const part of parts) {
    const error = endError(part);
    if (error !== undefined) throw error;
  }
}

/** The error a part that ended other than COMPLETED stands for, else undefined. */
export function endError(part: RequestedJobRow): LedgerbusError | undefined {
  const detail = part.detail.length === 0 ? '' : `: ${part.detail}`;
  const details = { details: { reason: part.reason } };
  if (part.state === 'REJECTED') {
    const code = rejectionCodes.has(part.reason) ? (part.reason as ErrorCode) : ErrorCode.JobRejected;
    return new LedgerbusError(
      code,
      `${part.owner} rejected job ${part.job_id} (${part.reason})${detail}`,
      details,
    );
  }
  if (part.state === 'FAILED') {
    const code = failureCodes.has(part.reason) ? (part.reason as ErrorCode) : ErrorCode.JobFailed;
    return new LedgerbusError(
      code,
      `job ${part.job_id} failed at ${part.owner} (${part.reason})${detail}`,
      details,
    );
  }
  if (part.state === 'REFUSED') {
    return new LedgerbusError(
      ErrorCode.MessageRejected,
      `the network refused job ${part.job_id} (${part.reason})${detail}`,
      details,
    );
  }
  return undefined;
}

/** The federated model: the parts' parameters averaged by their rows. JOB_FAILED if they do not fit together. */
function combine(federation: FederationRow, outputs: readonly JobOutput[]): JobOutput {
  const spec = JSON.parse(federation.spec) as JobSpecInput;
  if (spec.kind !== 'model')
    throw new LedgerbusError(ErrorCode.Internal, `federated job ${federation.job_id} is not a model job`);
  const models = outputs.map((output, index) => {
    if (
      output.kind !== 'model' ||
      output.model !== spec.model ||
      canonicalJson(output.features) !== canonicalJson(spec.features)
    ) {
      throw new LedgerbusError(
        ErrorCode.JobFailed,
        `part ${index + 1} of federated job ${federation.job_id} returned another model`,
      );
    }
    return output;
  });
  const averaged = federatedAverage(models);
  return {
    kind: 'model',
    model: spec.model,
    features: [...spec.features],
    target: spec.target,
    coefficients: averaged.coefficients,
    intercept: averaged.intercept,
    n: averaged.n,
    metrics: averaged.metrics,
  };
}
