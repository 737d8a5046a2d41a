/**
 * The auditor side of escrow (DESIGN §7, issue 14): an organization with the auditor role asks the
 * contract for an escrowed message, member organizations approve, holders release their key shares
 * to it, and it rebuilds the message from any live holders without the owner. Every step is a
 * transaction on the message's partition; the rebuilt plaintext lands in this connector's storage.
 *
 * What is trusted: the message's metadata only through its acceptance proof, a released share only
 * through its block evidence and the sender's commitments, a chunk only through the master table's
 * hash of it. The node's escrow record (audit states, attestations) and the escrow agent's tables
 * are hints for which request to act on; the contract re-checks whatever is submitted.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { partitionGroupId } from '../../contracts/registry.js';
import { escrowLimits } from '../../contracts/escrow/transactions.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import type { AuditRecordBundle } from '../../proofs/index.js';
import type { ConnectorContext } from '../context.js';
import { AmbiguousMessageIdError, partitionOfGroup, topicOfGroup } from '../message-location.js';
import type { MessageLocation } from '../message-location.js';
import type { NodeSession } from '../session/node-session.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import type { AgentDatabase } from './agent-database.js';
import { auditViewOf } from './agent-database.js';
import { AuditResults } from './audit-results.js';
import type { AuditResultRow } from './audit-results.js';
import { blobFilePrefix, rebuildMessage } from './audit-rebuild.js';
import type { RebuildFindings } from './audit-rebuild.js';
import { AuditFailure } from './audit-shares.js';
import { auditSummary, escrowStatus } from './audit-status.js';
import { submitEscrowAction } from './audit-submit.js';
import type {
  AuditApi,
  AuditApproveResult,
  AuditFetchOptions,
  AuditFetchResult,
  AuditRequestResult,
  AuditSummary,
  EscrowStatus,
} from './audit-types.js';
import { buildAuditRecord, fetchEscrowRecord } from './escrow-record.js';
import type { VerifiedEscrowRecord } from './escrow-record.js';

export interface AuditorOptions extends Pick<
  ConnectorContext,
  | 'organization'
  | 'signer'
  | 'encryptionKey'
  | 'registry'
  | 'trust'
  | 'storage'
  | 'logger'
  | 'lifecycle'
  | 'database'
> {
  readonly session: Pick<NodeSession, 'call' | 'connectorCall'>;
  readonly submitter: Pick<TransactionSubmitter, 'submit'>;
  readonly agentDatabase: Pick<AgentDatabase, 'audits' | 'auditsWithRequestId' | 'escrowMessages'>;
  /** Refreshes the registry from our node: a role granted a moment ago is seen before refusing. */
  readonly syncRegistry?: () => Promise<unknown>;
  /**
   * Where a fetch assembles the escrowed blob (as large as the message), created if missing: a
   * directory of the connector's own, cleared of leftover blobs at start. Default: the OS's.
   */
  readonly temporaryDirectory?: string;
  /** Chunks requested at once, at most `chunksInFlightMax` of audit-fetch.ts (the default). */
  readonly chunksInFlightMax?: number;
}

export class Auditor implements AuditApi {
  private readonly results: AuditResults;
  /**
   * Fetches under way, by request id: a second caller waits for the first instead of refetching. Each
   * leaves when its fetch ends.
   */
  private readonly fetching = new Map<string, Promise<AuditFetchResult>>();

  constructor(private readonly options: AuditorOptions) {
    this.results = new AuditResults(options.database.db);
    // A fetch cut short by a crash leaves its blob behind; a directory of our own is cleared of
    // them (the OS's temporary directory may be shared with another connector's fetch under way).
    if (options.temporaryDirectory !== undefined && existsSync(options.temporaryDirectory)) {
      for (const name of readdirSync(options.temporaryDirectory)) {
        if (name.startsWith(blobFilePrefix)) rmSync(join(options.temporaryDirectory, name), { force: true });
      }
    }
  }

  /**
   * Asks the contract for message `id` (in partition `at`, else the one escrowed message the agent
   * saw with this id). FORBIDDEN, before anything is sent, unless this organization is an approved
   * auditor; MESSAGE_NOT_FOUND (retriable) while the agent has not seen the message;
   * AMBIGUOUS_MESSAGE_ID when several partitions have it.
   */
  async request(id: string, reason: string, at?: MessageLocation): Promise<AuditRequestResult> {
    await this.requireAuditor();
    const group = this.groupOf(id, at);
    const requestId = randomUUID();
    const audit = await submitEscrowAction(this.options, group, {
      kind: 'auditRequest',
      requestId,
      id,
      reason,
    });
    this.options.logger.info({ id, group, requestId }, 'requested an audit');
    return { requestId, id, group, state: audit.state };
  }

  /**
   * Approves audit `requestId` as this organization. FORBIDDEN (reason APPROVER_NOT_ELIGIBLE) for
   * the auditor, the sender or a non-member; MESSAGE_NOT_FOUND (retriable) while the agent has not
   * seen the request and `at` does not name its partition.
   */
  async approve(requestId: string, at?: MessageLocation): Promise<AuditApproveResult> {
    const rows = this.options.agentDatabase
      .auditsWithRequestId(requestId)
      .filter((row) => at === undefined || row.group_id === partitionGroupId(at.topic, at.partition));
    if (rows.length > 1) {
      throw new LedgerbusError(
        ErrorCode.AmbiguousMessageId,
        `audit requests ${requestId} exist in ${rows.map((row) => row.group_id).join(', ')}: name the topic and partition`,
      );
    }
    const group =
      rows[0]?.group_id ?? (at === undefined ? undefined : partitionGroupId(at.topic, at.partition));
    if (group === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `audit request ${requestId} has not been seen here yet; wait a moment, or name its topic and partition`,
        { retriable: true },
      );
    }
    const audit = await submitEscrowAction(this.options, group, { kind: 'auditApprove', requestId });
    const approvalsNeeded =
      rows[0]?.approvals_needed ??
      this.options.registry.topic(topicOfGroup(group))?.policy.escrow?.auditApprovals ??
      0;
    this.options.logger.info({ requestId, group, state: audit.state }, 'approved an audit');
    return { requestId, state: audit.state, approvals: audit.approvals, approvalsNeeded };
  }

  /** Every audit the escrow agent has seen, oldest request first. */
  list(): AuditSummary[] {
    return this.options.agentDatabase.audits().map((row) => auditSummary(auditViewOf(row), row.group_id));
  }

  /** Message `id`'s escrow state from our node, its acceptance proof verified (see EscrowStatus). */
  async status(id: string, at?: MessageLocation): Promise<EscrowStatus> {
    const group = this.groupOf(id, at);
    return escrowStatus(await fetchEscrowRecord(this.options.session, this.options.trust, group, id));
  }

  /**
   * Rebuilds message `id` for our approved audit of it (`options.requestId`, else the newest) and
   * records the outcome on-chain: RETRIEVED with the content root and what was found bad, or on a
   * final failure FAILED (then AUDIT_FAILED is thrown). FORBIDDEN when we have no audit of it,
   * AUDIT_NOT_APPROVED while it is PENDING, AUDIT_FAILED (retriable) when too few shares were
   * released yet or a chunk's holders could not be reached. A retrieval done before is answered
   * from what was stored, its outcome submitted then if it was not recorded yet.
   */
  async fetch(id: string, options: AuditFetchOptions = {}): Promise<AuditFetchResult> {
    const group = this.fetchGroup(id, options);
    const verified = await fetchEscrowRecord(this.options.session, this.options.trust, group, id);
    const audit = this.chooseAudit(verified, options.requestId);
    const running = this.fetching.get(audit.requestId);
    if (running !== undefined) return running;
    const work = this.retrieve(verified, audit).finally(() => this.fetching.delete(audit.requestId));
    this.fetching.set(audit.requestId, work);
    return work;
  }

  /**
   * The offline audit record (proofs/audit-record: `ledgerbus verify` checks it) of audit request
   * `key`, or, when no request with that id has been seen here, of the newest audit of escrowed
   * message `key`; `at` names the partition. Built from our node's escrow record, every entry's
   * block evidence verified against our trust bundle, so any organization the node shows the record
   * to (a party, a supervisor, an auditor) may build it. MESSAGE_NOT_FOUND (retriable) while neither
   * has been seen or the message has no audit yet; FORBIDDEN when our node does not show us the
   * record; BAD_PROOF when it sent an evidence that does not verify or none for an entry.
   */
  async record(key: string, at?: MessageLocation): Promise<AuditRecordBundle> {
    const { session, trust } = this.options;
    const group = at === undefined ? undefined : partitionGroupId(at.topic, at.partition);
    const rows = this.options.agentDatabase
      .auditsWithRequestId(key)
      .filter((row) => group === undefined || row.group_id === group);
    if (rows.length > 1) {
      throw new LedgerbusError(
        ErrorCode.AmbiguousMessageId,
        `audit requests ${key} exist in ${rows.map((row) => row.group_id).join(', ')}: name the topic and partition`,
      );
    }
    const row = rows[0];
    if (row !== undefined) {
      const verified = await fetchEscrowRecord(session, trust, row.group_id, row.id);
      return buildAuditRecord(verified, key, trust);
    }
    let messageGroup: string;
    try {
      messageGroup = this.groupOf(key, at);
    } catch (error) {
      if (!isLedgerbusError(error, ErrorCode.MessageNotFound)) throw error;
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `neither an audit request nor an escrowed message ${key} has been seen here yet; wait a moment, or name its topic and partition`,
        { retriable: true },
      );
    }
    const verified = await fetchEscrowRecord(session, trust, messageGroup, key);
    const newest = verified.record.audits.at(-1);
    if (newest === undefined) {
      throw new LedgerbusError(ErrorCode.MessageNotFound, `escrowed message ${key} has no audit yet`, {
        retriable: true,
      });
    }
    return buildAuditRecord(verified, newest.requestId, trust);
  }

  /** The rebuilt plaintext of `id` (from `options.requestId`'s fetch, else the newest); MESSAGE_NOT_FOUND before a fetch. */
  async payload(
    id: string,
    options: AuditFetchOptions = {},
  ): Promise<{ result: AuditFetchResult; stream: Readable }> {
    const group =
      options.at === undefined ? undefined : partitionGroupId(options.at.topic, options.at.partition);
    const row = this.results
      .byMessage(id)
      .find(
        (candidate) =>
          (options.requestId === undefined || candidate.request_id === options.requestId) &&
          (group === undefined || candidate.group_id === group),
      );
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `no audit of ${id} was fetched here; run ledgerbus audit fetch ${id} first`,
      );
    }
    return { result: resultOf(row), stream: await this.options.storage.get(row.storage_key) };
  }

  private async retrieve(verified: VerifiedEscrowRecord, audit: AuditView): Promise<AuditFetchResult> {
    const group = verified.accepted.partitionId;
    const cached = this.results.byRequest(audit.requestId);
    if (cached !== undefined && (await this.options.storage.stat(cached.storage_key)) !== undefined) {
      if (audit.state === 'APPROVED') await this.recordOutcome(group, verified, audit, resultOf(cached));
      return resultOf(cached);
    }
    const findings: RebuildFindings = { badShares: new Set(), badHolders: new Set() };
    let rebuilt;
    try {
      rebuilt = await rebuildMessage(this.options, verified, audit, findings);
    } catch (error) {
      if (error instanceof AuditFailure && error.final && audit.state === 'APPROVED') {
        await this.recordFailure(group, audit, findings, error);
      }
      throw error;
    }
    const row: AuditResultRow = {
      request_id: audit.requestId,
      id: verified.accepted.id,
      group_id: group,
      storage_key: rebuilt.stored.key,
      size: rebuilt.stored.size,
      sha256: rebuilt.stored.key,
      fetched_at: this.options.lifecycle.clock.now(),
      chunks: rebuilt.chunks,
      bad_shares: JSON.stringify([...findings.badShares]),
      bad_holders: JSON.stringify([...findings.badHolders]),
      regeneration_ms: rebuilt.regenerationMs,
    };
    // Stored before the outcome is submitted: if that fails, the next fetch submits it from here.
    this.results.put(row);
    const result = resultOf(row);
    this.options.logger.info(
      {
        id: result.id,
        requestId: result.requestId,
        size: result.size,
        regenerationMs: result.regenerationMs,
      },
      'rebuilt an escrowed message',
    );
    if (audit.state === 'APPROVED') await this.recordOutcome(group, verified, audit, result);
    return result;
  }

  private async recordOutcome(
    group: string,
    verified: VerifiedEscrowRecord,
    audit: AuditView,
    result: AuditFetchResult,
  ): Promise<void> {
    await submitEscrowAction(this.options, group, {
      kind: 'auditOutcome',
      requestId: audit.requestId,
      outcome: 'RETRIEVED',
      contentRoot: verified.accepted.contentRoot,
      badShares: [...result.badShares],
      badHolders: [...result.badHolders],
      detail: '',
    });
  }

  /** Records a final failure as the audit's FAILED outcome; a failure to record it is logged, not thrown. */
  private async recordFailure(
    group: string,
    audit: AuditView,
    findings: RebuildFindings,
    failure: AuditFailure,
  ): Promise<void> {
    try {
      await submitEscrowAction(this.options, group, {
        kind: 'auditOutcome',
        requestId: audit.requestId,
        outcome: 'FAILED',
        contentRoot: null,
        badShares: [...findings.badShares],
        badHolders: [...findings.badHolders],
        detail: failure.message.slice(0, escrowLimits.detailLengthMax),
      });
    } catch (error) {
      this.options.logger.warn(
        { requestId: audit.requestId, error: isLedgerbusError(error) ? error.message : String(error) },
        'could not record the failed audit',
      );
    }
  }

  /**
   * Our audit of the message to fetch for: `requestId`'s, else the newest APPROVED one, else the
   * newest one closed as RETRIEVED. FORBIDDEN when we have none; AUDIT_NOT_APPROVED while the only
   * ones are PENDING; AUDIT_FAILED (not retriable) when it was closed as FAILED.
   */
  private chooseAudit(verified: VerifiedEscrowRecord, requestId: string | undefined): AuditView {
    const { id } = verified.accepted;
    const ours = verified.record.audits
      .filter((audit) => audit.auditor === this.options.organization)
      .filter((audit) => requestId === undefined || audit.requestId === requestId)
      .sort((a, b) => b.height - a.height || b.transactionIndex - a.transactionIndex);
    const chosen =
      ours.find((audit) => audit.state === 'APPROVED') ??
      ours.find((audit) => audit.outcome?.outcome === 'RETRIEVED') ??
      ours.find((audit) => audit.state === 'PENDING') ??
      ours[0];
    if (chosen === undefined) {
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `${this.options.organization} has no audit ${requestId ?? ''}${requestId === undefined ? '' : ' '}of message ${id}; request one with ledgerbus audit request ${id} --reason TEXT`,
      );
    }
    if (chosen.state === 'PENDING') {
      throw new LedgerbusError(
        ErrorCode.AuditNotApproved,
        `audit ${chosen.requestId} of ${id} has ${chosen.approvals.length} of the ${chosen.approvalsNeeded} approvals it needs`,
      );
    }
    if (chosen.outcome !== null && chosen.outcome.outcome === 'FAILED') {
      throw new LedgerbusError(
        ErrorCode.AuditFailed,
        `audit ${chosen.requestId} of ${id} was closed as FAILED (${chosen.outcome.detail}); request a new audit`,
        { retriable: false },
      );
    }
    return chosen;
  }

  /** The partition of the message a fetch is for: `at`, the request's, or the agent's only one. */
  private fetchGroup(id: string, options: AuditFetchOptions): string {
    if (options.at !== undefined || options.requestId === undefined) return this.groupOf(id, options.at);
    const groups = [
      ...new Set(
        this.options.agentDatabase
          .auditsWithRequestId(options.requestId)
          .filter((row) => row.id === id)
          .map((row) => row.group_id),
      ),
    ];
    return groups.length === 1 ? (groups[0] as string) : this.groupOf(id, undefined);
  }

  /**
   * `at`'s partition, else the one partition where the escrow agent saw an escrowed message `id`.
   * AMBIGUOUS_MESSAGE_ID for several; MESSAGE_NOT_FOUND (retriable: the agent may not have read
   * the message's registration yet) for none.
   */
  private groupOf(id: string, at: MessageLocation | undefined): string {
    if (at !== undefined) return partitionGroupId(at.topic, at.partition);
    const rows = this.options.agentDatabase.escrowMessages(id);
    if (rows.length > 1) {
      throw new AmbiguousMessageIdError(
        id,
        rows.map((row) => ({
          topic: topicOfGroup(row.group_id),
          partition: partitionOfGroup(row.group_id),
          id,
          sender: row.sender,
        })),
        'name one with its topic and partition',
      );
    }
    const row = rows[0];
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `no escrowed message ${id} has been seen here yet; wait for it to commit, or name its topic and partition`,
        { retriable: true },
      );
    }
    return row.group_id;
  }

  /** FORBIDDEN unless this organization is an approved auditor (after a registry refresh, if it looks not). */
  private async requireAuditor(): Promise<void> {
    const isAuditor = (): boolean => {
      const organization = this.options.registry.organization(this.options.organization);
      return organization?.status === 'APPROVED' && organization.roles.includes('auditor');
    };
    if (isAuditor()) return;
    await this.options.syncRegistry?.();
    if (isAuditor()) return;
    throw new LedgerbusError(
      ErrorCode.Forbidden,
      `${this.options.organization} is not an approved auditor; only organizations with the auditor role request audits`,
      { details: { reason: 'NOT_AUDITOR' } },
    );
  }
}

function resultOf(row: AuditResultRow): AuditFetchResult {
  return {
    id: row.id,
    requestId: row.request_id,
    size: row.size,
    sha256: row.sha256,
    storageKey: row.storage_key,
    chunks: row.chunks,
    badShares: JSON.parse(row.bad_shares) as string[],
    badHolders: JSON.parse(row.bad_holders) as string[],
    regenerationMs: row.regeneration_ms,
  };
}
