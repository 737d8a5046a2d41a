/**
 * The job agent (DESIGN §8): one loop per partition of every job topic (`datashare` and
 * `datashare.<name>`, see `isJobTopic`), each long-polling the partition's job log from a durable
 * cursor (`job_cursors`) with the consumers' back-off, as the escrow agent follows escrow logs. The
 * node shows each organization only the entries of its own jobs (every entry to a supervisor), so a
 * quiet partition costs one idle long poll.
 *
 * For a job owned here the owner's side decides, runs and answers it (OwnerJobs); for a job
 * requested here the requester's side records its steps and wakes whoever waits (RequesterJobs).
 * The cursor moves only after a page was handled, so a crash repeats work — which is idempotent —
 * rather than skipping it. A job that fails for good (not retriable) is logged and left behind:
 * `resume` at the next start, and `job status`, take it up again; it never blocks the partition.
 */
import type { JobLogEntry } from '../../contracts/datashare/views.js';
import { partitionGroupId } from '../../contracts/registry.js';
import { isJobTopic } from './job-location.js';
import { isLedgerbusError } from '../../errors.js';
import { Backoff } from '../../runtime/retry.js';
import type { RetryPolicy } from '../../runtime/retry.js';
import { consumeBackoffPolicy } from '../consumer/partition-consumer.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import type { JobDatabase } from './job-state-database.js';
import type { OwnerJobs } from './owner-jobs.js';
import type { RequesterJobs } from './requester-jobs.js';

/** Long-poll wait and page size of one jobLog call. */
const logWaitMs = 10_000;
const logPageLimit = 200;
/** How often the agent looks for topics and partitions it does not follow yet. */
const registryRescanMs = 1_000;

export interface JobAgentOptions extends Pick<
  ConnectorContext,
  'organization' | 'registry' | 'logger' | 'lifecycle' | 'random'
> {
  readonly session: Pick<NodeSession, 'call'>;
  readonly jobs: JobDatabase;
  readonly owner: Pick<OwnerJobs, 'handle' | 'resume'>;
  readonly requester: Pick<RequesterJobs, 'refresh'>;
  /** After a failed round of one partition (default: the consumers' 1 s doubling to 30 s). */
  readonly backoffPolicy?: RetryPolicy;
}

export class JobAgent {
  /** One per partition of a job topic in the registry, never two. */
  private readonly followed = new Set<string>();
  /** One per followed partition, and the owner's resume. */
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly options: JobAgentOptions) {}

  /** Partition groups ("topic/p") with a loop running. */
  get partitions(): string[] {
    return [...this.followed];
  }

  /**
   * Resumes the jobs left unfinished here, then follows every partition until the lifecycle
   * stops, starting a loop for each as the registry shows it; resolves once every loop has ended.
   */
  async run(): Promise<void> {
    const { lifecycle } = this.options;
    this.loops.push(this.options.owner.resume());
    while (!lifecycle.stopped) {
      this.followNewPartitions();
      await lifecycle.pause(registryRescanMs);
    }
    await Promise.allSettled(this.loops);
  }

  /** Starts a loop for each partition that has none; never two for one partition. */
  followNewPartitions(): void {
    for (const topic of this.options.registry.topics()) {
      if (!isJobTopic(topic.name)) continue;
      for (let partition = 0; partition < topic.partitionCount; partition++) {
        const group = partitionGroupId(topic.name, partition);
        if (this.followed.has(group)) continue;
        this.followed.add(group);
        this.loops.push(this.follow(group));
      }
    }
  }

  /** Rounds on `group` until the connector stops; a failed round is logged and retried after the back-off. */
  private async follow(group: string): Promise<void> {
    const { lifecycle, logger } = this.options;
    const backoff = new Backoff(this.options.backoffPolicy ?? consumeBackoffPolicy, this.options.random);
    while (!lifecycle.stopped) {
      try {
        await this.round(group);
        backoff.reset();
      } catch (error) {
        if (lifecycle.stopped) return;
        const retryInMs = backoff.next();
        logger.warn({ group, error: describeError(error), retryInMs }, 'job agent error; retrying');
        await lifecycle.pause(retryInMs);
      }
    }
  }

  /**
   * One long-poll of `group`'s job log from its cursor, handled, then the cursor moved past the
   * page. Returns the number of entries handled.
   */
  async round(group: string): Promise<number> {
    const fromSeq = this.options.jobs.cursor(group);
    const page = await this.options.session.call('jobLog', {
      group,
      fromSeq,
      limit: logPageLimit,
      waitMs: logWaitMs,
    });
    await this.handle(group, page.entries);
    // A stop midway through the page leaves it unhandled: it is read again on the next start.
    if (this.options.lifecycle.stopped) return 0;
    if (page.nextSeq > fromSeq) this.options.jobs.advanceCursor(group, page.nextSeq);
    return page.entries.length;
  }

  /** Handles each job the page mentions once, in log order: as its owner, its requester, or both. */
  private async handle(group: string, entries: readonly JobLogEntry[]): Promise<void> {
    const { organization } = this.options;
    const jobs = new Map<string, JobLogEntry>();
    for (const entry of entries) if (!jobs.has(entry.jobId)) jobs.set(entry.jobId, entry);
    for (const [jobId, entry] of jobs) {
      if (this.options.lifecycle.stopped) return;
      if (entry.owner === organization)
        await this.settle(group, jobId, 'owner', () => this.options.owner.handle(group, jobId));
      if (entry.requester === organization) {
        await this.settle(group, jobId, 'requester', () => this.options.requester.refresh(group, jobId));
      }
    }
  }

  /** Runs `work`; a failure that retrying can fix fails the round, any other is logged and left behind. */
  private async settle(
    group: string,
    jobId: string,
    side: string,
    work: () => Promise<unknown>,
  ): Promise<void> {
    try {
      await work();
    } catch (error) {
      if (!isLedgerbusError(error) || error.retriable) throw error;
      this.options.logger.warn(
        { group, jobId, side, error: describeError(error) },
        'could not handle a job; it is left as it is',
      );
    }
  }
}
