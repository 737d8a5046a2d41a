/**
 * What a holder owes an escrowed message (DESIGN §7), given its verified record: checking its own
 * key share against the sender's Feldman commitments and counting the chunks the placement gave it
 * (its attestation: VERIFIED, or INVALID — a complaint naming the sender), and releasing its share,
 * sealed to the auditor, to every audit its block evidences prove APPROVED, once. The escrow agent
 * calls these as the partition's escrow log goes by; the contract checks each transaction again.
 */
import { randomBytes } from 'node:crypto';
import { decodeTransactionResult } from '../../contracts/results.js';
import { RejectReason } from '../../contracts/reasons.js';
import { encodeEscrowTransaction, escrowLimits } from '../../contracts/escrow/transactions.js';
import type { Attestation, EscrowAction } from '../../contracts/escrow/transactions.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import type { ProvenAudit } from '../../proofs/index.js';
import { nonceBytes } from '../../contracts/limits.js';
import { openShare, sealShare, verifyShare } from '../../crypto/escrow/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import type { AgentDatabase, EscrowMessageRow, ShareFinding } from './agent-database.js';
import { placedChunks, provenAudit } from './escrow-record.js';
import type { VerifiedEscrowRecord } from './escrow-record.js';
import type { HolderDatabase } from './holder-database.js';

export interface HolderDutiesOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'encryptionKey' | 'registry' | 'storage' | 'logger' | 'lifecycle' | 'trust'
> {
  readonly submitter: Pick<TransactionSubmitter, 'submit'>;
  readonly agentDatabase: AgentDatabase;
  readonly holderDatabase: HolderDatabase;
}

/** Release rejections after which trying again cannot help: the release is done, one way or another. */
const finalReleaseReasons: ReadonlySet<string> = new Set([
  RejectReason.AlreadyReleased,
  RejectReason.NotShareHolder,
  RejectReason.AuditClosed,
  RejectReason.AuditUnknown,
]);

export class HolderDuties {
  constructor(private readonly options: HolderDutiesOptions) {}

  /**
   * Records message `verified` in `escrow_messages` and returns the attestation we owe it, if any:
   * we hold a share or chunks of it and neither the record nor our table shows our attestation. Our
   * share and chunks are examined the first time we see the message and while an attestation is
   * due; afterwards only the on-chain status is refreshed.
   */
  async examine(verified: VerifiedEscrowRecord): Promise<Attestation | undefined> {
    const { organization, agentDatabase, lifecycle } = this.options;
    const { accepted, escrow, record } = verified;
    const group = accepted.partitionId;
    const existing = agentDatabase.escrowMessage(group, accepted.id);
    const shareIndex = escrow.shares.findIndex((entry) => entry.holder === organization);
    const placed = placedChunks(escrow, organization);
    const party = shareIndex >= 0 || placed.length > 0;
    const onChain = record.attestations.some((attestation) => attestation.organization === organization);
    const attested = onChain || existing?.attested === 1;
    let share: ShareFinding = existing?.share ?? 'NONE';
    let chunksHeld = existing?.chunks_held ?? 0;
    if (existing === undefined || (party && !attested)) {
      share = shareIndex >= 0 ? (await this.checkShare(verified, shareIndex)).finding : 'NONE';
      chunksHeld = await this.countChunks(verified, placed);
    }
    const row: EscrowMessageRow = {
      group_id: group,
      id: accepted.id,
      sender: accepted.sender,
      status: record.status,
      share,
      share_index: shareIndex >= 0 ? shareIndex + 1 : null,
      chunk_holder: placed.length > 0 ? 1 : 0,
      chunks_held: chunksHeld,
      attested: attested ? 1 : 0,
      updated_at: lifecycle.clock.now(),
    };
    agentDatabase.putEscrowMessage(row);
    return party && !attested ? { id: accepted.id, share, chunksHeld } : undefined;
  }

  /**
   * Submits `attestations` (of messages of `group`) in as few escrow transactions as the contract's
   * limit allows, and marks each one the contract recorded (or had already recorded: a conflict
   * means an attestation of ours is on-chain). Any other refusal is logged and left unmarked.
   */
  async attest(group: string, attestations: readonly Attestation[]): Promise<void> {
    const { agentDatabase, lifecycle, logger } = this.options;
    for (let start = 0; start < attestations.length; start += escrowLimits.attestationsPerTransactionMax) {
      const batch = attestations.slice(start, start + escrowLimits.attestationsPerTransactionMax);
      const result = await this.submit(group, { kind: 'attest', attestations: batch });
      if (result.status !== 'OK' || result.type !== 'escrow') {
        logger.warn(
          { group, count: batch.length, reason: result.status === 'REJECTED' ? result.reason : result.type },
          'the partition refused our escrow attestations',
        );
        continue;
      }
      for (const item of result.items) {
        if (item.status === 'RECORDED' || item.reason === RejectReason.AttestationConflict) {
          agentDatabase.markAttested(group, item.id, lifecycle.clock.now());
        } else {
          logger.warn({ group, id: item.id, reason: item.reason }, 'the partition refused our attestation');
        }
      }
      logger.info({ group, ids: batch.map((attestation) => attestation.id) }, 'attested escrowed messages');
    }
  }

  /**
   * Releases our share of `verified`'s message to `audit`'s auditor if the audit is APPROVED, we hold
   * a share that verifies, and we have not released for it yet (neither our table nor the proven
   * record says so). The node's view only says which audits to look at: the state, the auditor the
   * share is sealed to and our earlier release are taken from the audit's block evidences
   * (provenAudit), so our own node cannot make us release early or to someone else. The share is
   * opened, checked against the commitments, sealed to the proven auditor's registered encryption
   * key for this request, and submitted; marked released once the contract recorded it or refused
   * it for good. Returns true if it submitted a release.
   */
  async release(verified: VerifiedEscrowRecord, audit: AuditView): Promise<boolean> {
    const { organization, agentDatabase, registry, lifecycle, logger } = this.options;
    const { accepted, escrow } = verified;
    const group = accepted.partitionId;
    const shareIndex = escrow.shares.findIndex((entry) => entry.holder === organization);
    if (audit.state !== 'APPROVED' || shareIndex < 0 || agentDatabase.released(group, audit.requestId)) {
      return false;
    }
    const proven = this.prove(verified, audit.requestId);
    if (proven === undefined) return false;
    if (proven.releases.some((release) => release.holder === organization)) {
      agentDatabase.markReleased(group, audit.requestId, lifecycle.clock.now());
      return false;
    }
    const { finding, value } = await this.checkShare(verified, shareIndex);
    if (finding !== 'VERIFIED' || value === undefined) return false; // our complaint stands instead
    const auditor = proven.auditor;
    const auditorKey = registry.encryptionKey(auditor);
    if (auditorKey === undefined) {
      // Our registry may not show an auditor registered a moment ago: retried with the round.
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `no encryption key of auditor ${auditor} in the registry yet`,
        { retriable: true },
      );
    }
    const share = await sealShare(value, auditorKey, {
      network: registry.network,
      sender: accepted.sender,
      id: accepted.id,
      holder: organization,
      purpose: 'release',
      requestId: audit.requestId,
    });
    const result = await this.submit(group, { kind: 'shareRelease', requestId: audit.requestId, share });
    const refused = result.status === 'REJECTED' ? result.reason : undefined;
    if (refused === undefined || finalReleaseReasons.has(refused)) {
      agentDatabase.markReleased(group, audit.requestId, lifecycle.clock.now());
    }
    if (refused === undefined) {
      logger.info(
        { group, id: accepted.id, requestId: audit.requestId, auditor },
        'released our key share to an approved audit',
      );
    } else {
      logger.warn(
        { group, id: accepted.id, requestId: audit.requestId, reason: refused },
        'the partition refused our key share release',
      );
    }
    return true;
  }

  /**
   * Audit `requestId` as its evidences prove it, if they prove it APPROVED; otherwise undefined,
   * logged at warn with what the node claimed without proof (the round goes on: a later record may
   * carry the evidence, and the contract refuses a release once the audit is closed anyway).
   */
  private prove(verified: VerifiedEscrowRecord, requestId: string): ProvenAudit | undefined {
    const { logger, trust } = this.options;
    const { accepted } = verified;
    let found;
    try {
      found = provenAudit(verified, requestId, trust);
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      logger.warn(
        { group: accepted.partitionId, id: accepted.id, requestId, error: describeError(error) },
        'our node showed an audit request it cannot prove: no release',
      );
      return undefined;
    }
    if (found === undefined) return undefined;
    if (found.audit.state !== 'APPROVED') {
      logger.warn(
        {
          group: accepted.partitionId,
          id: accepted.id,
          requestId,
          state: found.audit.state,
          unproven: found.dropped.map((entry) => `${entry.field}: ${entry.reason}`),
        },
        'our node says an audit is approved but its evidences do not prove it: no release',
      );
      return undefined;
    }
    return found.audit;
  }

  /**
   * Opens our sealed share (share `shareIndex` + 1) and checks it against the commitments. A share
   * that does not open is INVALID too: the sender sealed something we cannot use. Logged at warn,
   * naming the sender, since the attestation is a complaint against it.
   */
  private async checkShare(
    verified: VerifiedEscrowRecord,
    shareIndex: number,
  ): Promise<{ finding: ShareFinding; value?: Uint8Array }> {
    const { organization, encryptionKey, registry, logger } = this.options;
    const { accepted, escrow } = verified;
    const sealed = escrow.shares[shareIndex];
    if (sealed === undefined) return { finding: 'NONE' };
    let value: Uint8Array;
    try {
      value = await openShare(sealed.share, encryptionKey, {
        network: registry.network,
        sender: accepted.sender,
        id: accepted.id,
        holder: organization,
        purpose: 'escrow',
      });
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      logger.warn(
        {
          group: accepted.partitionId,
          id: accepted.id,
          sender: accepted.sender,
          error: describeError(error),
        },
        'our escrowed key share does not open: complaining against the sender',
      );
      return { finding: 'INVALID' };
    }
    if (!verifyShare(escrow.commitments, { index: shareIndex + 1, value })) {
      logger.warn(
        { group: accepted.partitionId, id: accepted.id, sender: accepted.sender, shareIndex: shareIndex + 1 },
        'our escrowed key share does not match the commitments: complaining against the sender',
      );
      return { finding: 'INVALID' };
    }
    return { finding: 'VERIFIED', value };
  }

  /** Of the chunk indexes `placed` on us, how many we have a row for whose stored object is intact in size. */
  private async countChunks(verified: VerifiedEscrowRecord, placed: readonly number[]): Promise<number> {
    const { holderDatabase, storage } = this.options;
    const { accepted } = verified;
    let held = 0;
    for (const chunkIndex of placed) {
      const row = holderDatabase.chunk(accepted.partitionId, accepted.id, chunkIndex, accepted.sender);
      if (row === undefined) continue;
      const stored = await storage.stat(row.storage_key);
      if (stored !== undefined && stored.size === row.size) held += 1;
    }
    return held;
  }

  /** Signs `action` as an escrow transaction of ours and submits it to `group`; the contract's result. */
  private async submit(
    group: string,
    action: EscrowAction,
  ): Promise<ReturnType<typeof decodeTransactionResult>> {
    const { organization, signer, submitter, lifecycle } = this.options;
    const transaction = encodeEscrowTransaction(
      {
        organization,
        nonce: new Uint8Array(randomBytes(nonceBytes)),
        timestamp: lifecycle.clock.now(),
        action,
      },
      signer,
    );
    const { evidence } = await submitter.submit(group, transaction);
    return decodeTransactionResult(evidence.result);
  }
}
