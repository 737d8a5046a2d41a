/**
 * The escrow agent (DESIGN §7, holder side): one loop per partition of every escrow topic, each
 * long-polling the partition's escrow log from a durable cursor (`escrow_cursors`) with the
 * consumers' back-off. For each message the log mentions it reads the message's escrow record,
 * verifies its acceptance, and does what this organization owes it (see HolderDuties): attest its
 * share and chunks once, record the message and its audits, and release its share to every
 * APPROVED audit once. The cursor moves only after a page was handled, so a crash repeats work —
 * which is idempotent — rather than skipping it.
 */
import type { EscrowLogEntry } from '../../contracts/escrow/views.js';
import type { Attestation } from '../../contracts/escrow/transactions.js';
import { partitionGroupId } from '../../contracts/registry.js';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { actsAs } from '../../registry/system-state.js';
import { Backoff } from '../../runtime/retry.js';
import type { RetryPolicy } from '../../runtime/retry.js';
import { consumeBackoffPolicy } from '../consumer/partition-consumer.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import { AgentDatabase } from './agent-database.js';
import { fetchEscrowRecord } from './escrow-record.js';
import type { VerifiedEscrowRecord } from './escrow-record.js';
import { HolderDatabase } from './holder-database.js';
import { HolderDuties } from './holder-duties.js';

/** Long-poll wait and page size of one escrowLog call. */
const logWaitMs = 10_000;
const logPageLimit = 200;
/** How often the agent looks for escrow topics and partitions it does not follow yet. */
const registryRescanMs = 1_000;

export interface EscrowAgentOptions extends Pick<
  ConnectorContext,
  | 'organization'
  | 'signer'
  | 'encryptionKey'
  | 'registry'
  | 'trust'
  | 'database'
  | 'storage'
  | 'logger'
  | 'lifecycle'
  | 'random'
> {
  readonly session: Pick<NodeSession, 'call'>;
  readonly submitter: Pick<TransactionSubmitter, 'submit'>;
  /** After a failed round of one partition (default: the consumers' 1 s doubling to 30 s). */
  readonly backoffPolicy?: RetryPolicy;
}

export class EscrowAgent {
  /** The agent's tables; the auditor side reads and writes audits through it too. */
  readonly database: AgentDatabase;
  private readonly duties: HolderDuties;
  /** One per partition of an escrow topic in the registry, never two. */
  private readonly followed = new Set<string>();
  /** One per followed partition. */
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly options: EscrowAgentOptions) {
    this.database = new AgentDatabase(options.database);
    this.duties = new HolderDuties({
      ...options,
      agentDatabase: this.database,
      holderDatabase: new HolderDatabase(options.database),
    });
  }

  /** Partition groups ("topic/p") with a loop running. */
  get partitions(): string[] {
    return [...this.followed];
  }

  /**
   * Follows every escrow partition until the lifecycle stops, starting a loop for each partition of
   * an escrow topic as the registry shows it (the connector keeps the registry current); resolves
   * once every loop has ended.
   */
  async run(): Promise<void> {
    const { lifecycle } = this.options;
    while (!lifecycle.stopped) {
      this.followNewPartitions();
      await lifecycle.pause(registryRescanMs);
    }
    await Promise.allSettled(this.loops);
  }

  /** Starts a loop for each escrow partition that has none; never two for one partition. */
  followNewPartitions(): void {
    for (const topic of this.options.registry.topics()) {
      if (topic.policy.availability !== 'escrow') continue;
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
        logger.warn({ group, error: describeError(error), retryInMs }, 'escrow agent error; retrying');
        await lifecycle.pause(retryInMs);
      }
    }
  }

  /**
   * One long-poll of `group`'s escrow log from its cursor, handled, then the cursor moved past the
   * page. Returns the number of entries handled.
   */
  async round(group: string): Promise<number> {
    const fromSeq = this.database.cursor(group);
    const page = await this.options.session.call('escrowLog', {
      group,
      fromSeq,
      limit: logPageLimit,
      waitMs: logWaitMs,
    });
    await this.handle(group, page.entries);
    // A stop midway through the page leaves it unhandled: it is read again on the next start.
    if (this.options.lifecycle.stopped) return 0;
    if (page.nextSeq > fromSeq) this.database.advanceCursor(group, page.nextSeq);
    return page.entries.length;
  }

  /**
   * Handles a page: each message it mentions once, in log order, then the attestations owed, in one
   * transaction. A message we may not read (we are no party of it and oversee nothing) is skipped:
   * every member sees every audit entry, but only parties act on them.
   */
  private async handle(group: string, entries: readonly EscrowLogEntry[]): Promise<void> {
    const kindsById = new Map<string, Set<EscrowLogEntry['kind']>>();
    for (const entry of entries) {
      const kinds = kindsById.get(entry.id) ?? new Set();
      kinds.add(entry.kind);
      kindsById.set(entry.id, kinds);
    }
    const attestations: Attestation[] = [];
    for (const [id, kinds] of kindsById) {
      if (this.options.lifecycle.stopped) return;
      if (!kinds.has('registered') && !this.mayRead(group, id)) continue;
      const verified = await this.read(group, id);
      if (verified === undefined) continue;
      const attestation = await this.duties.examine(verified);
      if (attestation !== undefined) attestations.push(attestation);
      for (const audit of verified.record.audits) {
        this.database.upsertAudit(group, audit);
        await this.duties.release(verified, audit);
      }
    }
    if (attestations.length > 0) await this.duties.attest(group, attestations);
  }

  /** Whether our node would show us message `id`'s record: we follow it, or we oversee every message. */
  private mayRead(group: string, id: string): boolean {
    if (this.database.escrowMessage(group, id) !== undefined) return true;
    const us = this.options.registry.organization(this.options.organization);
    return actsAs(us, 'supervisor') || actsAs(us, 'auditor');
  }

  /**
   * Message `id`'s verified record, or undefined when the node refuses it for good (FORBIDDEN: we
   * are no party; MESSAGE_NOT_FOUND that is not retriable: not escrowed). Anything else — a proof
   * that does not verify, a node out of reach — fails the round, which is retried.
   */
  private async read(group: string, id: string): Promise<VerifiedEscrowRecord | undefined> {
    try {
      return await fetchEscrowRecord(this.options.session, this.options.trust, group, id);
    } catch (error) {
      if (
        isLedgerbusError(error) &&
        !error.retriable &&
        (error.code === ErrorCode.Forbidden || error.code === ErrorCode.MessageNotFound)
      ) {
        this.options.logger.debug(
          { group, id, error: describeError(error) },
          'escrow record not ours to read',
        );
        return undefined;
      }
      throw error;
    }
  }
}
