/**
 * Collecting the key shares holders released to this auditor (DESIGN §7) and rebuilding the escrowed
 * secret, trusting no node: every release is taken from its block evidence (certificate against the
 * trust bundle, transaction inclusion, the holder's own signature over a shareRelease for this very
 * request, and the contract's OK for it), opened with this organization's key, and checked against
 * the sender's Feldman commitments before it may count.
 */
import { bytesEqual, type CborValue } from '../../codec/index.js';
import { decodeClientRequest, messageLimits } from '../../consensus/pbft/messages.js';
import { ESCROW_SIGNING_TYPE, escrowSigningPayload } from '../../contracts/escrow/transactions.js';
import type { EscrowMetadata, SealedShare } from '../../contracts/escrow/transactions.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import { decodeTransactionResult } from '../../contracts/results.js';
import { decodeTransaction } from '../../contracts/transactions.js';
import {
  combineShares,
  openShare,
  secretMatchesCommitments,
  verifyShare,
} from '../../crypto/escrow/index.js';
import type { Share } from '../../crypto/escrow/index.js';
import type { EncryptionKeyPair } from '../../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import { blockEvidenceSchema, verifyBlockEvidence } from '../../proofs/index.js';
import type { ProofTrust } from '../../proofs/index.js';
import type { Logger } from '../../runtime/logger.js';
import { describeError } from '../lifecycle.js';

export interface ShareCollectionOptions {
  readonly organization: string;
  readonly encryptionKey: EncryptionKeyPair;
  readonly trust: ProofTrust;
  readonly logger: Pick<Logger, 'warn'>;
}

export interface CollectedShares {
  /** Verified shares, in release order. */
  readonly shares: readonly Share[];
  /** Holders whose proven release did not open or did not match the commitments. */
  readonly badShares: readonly string[];
  /** Holders whose release could not be proven (skipped, logged): they may still count later. */
  readonly unproven: readonly string[];
}

/** What identifies one release: the message, the request, and where it was committed. */
interface ReleaseContext {
  readonly group: string;
  readonly id: string;
  readonly sender: string;
  readonly requestId: string;
}

/**
 * The proven, opened and verified shares of `audit`'s releases. A release whose evidence is missing
 * or fails is skipped and logged (a node cannot make us blame a holder); a proven release whose
 * share does not open or fails `verifyShare` names its holder in `badShares`.
 */
export async function collectShares(
  options: ShareCollectionOptions,
  context: ReleaseContext,
  escrow: EscrowMetadata,
  audit: AuditView,
  evidences: readonly { height: number; transactionIndex: number; evidence: CborValue }[],
): Promise<CollectedShares> {
  const shares: Share[] = [];
  const badShares: string[] = [];
  const unproven: string[] = [];
  for (const release of audit.releases) {
    const index = escrow.shares.findIndex((entry) => entry.holder === release.holder) + 1;
    let sealed: SealedShare;
    try {
      if (index === 0)
        throw new LedgerbusError(ErrorCode.BadProof, `${release.holder} holds no share of ${context.id}`);
      const evidence = evidences.find(
        (entry) => entry.height === release.height && entry.transactionIndex === release.transactionIndex,
      );
      if (evidence === undefined) {
        throw new LedgerbusError(
          ErrorCode.BadProof,
          `the node sent no evidence for the release at height ${release.height}`,
        );
      }
      sealed = provenRelease(options.trust, context, release, evidence.evidence);
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      options.logger.warn(
        { id: context.id, requestId: context.requestId, holder: release.holder, error: describeError(error) },
        'skipped a share release that could not be proven',
      );
      unproven.push(release.holder);
      continue;
    }
    const value = await openShare(sealed, options.encryptionKey, {
      network: options.trust.signing.network,
      sender: context.sender,
      id: context.id,
      holder: release.holder,
      purpose: 'release',
      requestId: context.requestId,
    }).catch((error: unknown) => {
      if (!isLedgerbusError(error)) throw error;
      return undefined;
    });
    if (value === undefined || !verifyShare(escrow.commitments, { index, value })) {
      options.logger.warn(
        { id: context.id, requestId: context.requestId, holder: release.holder, opened: value !== undefined },
        "a released key share fails the sender's commitments",
      );
      badShares.push(release.holder);
      continue;
    }
    shares.push({ index, value });
  }
  return { shares, badShares, unproven };
}

/**
 * The sealed share of a release, once its block evidence proves that `release.holder` released it
 * for this request at that height and transaction index, and the contract accepted it. Throws
 * LedgerbusError (BAD_PROOF, WRONG_GROUP, BAD_SIGNATURE, the certificate's codes) otherwise.
 */
function provenRelease(
  trust: ProofTrust,
  context: ReleaseContext,
  release: { holder: string; height: number; transactionIndex: number },
  value: CborValue,
): SealedShare {
  const evidence = blockEvidenceSchema.parse(value, 'evidence');
  const { header } = evidence;
  const membership = trust.membership(header.partitionId, header.configEpoch);
  if (membership === undefined || header.partitionId !== context.group) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `the release evidence is of ${header.partitionId} epoch ${header.configEpoch}`,
    );
  }
  verifyBlockEvidence(evidence, membership);
  if (header.height !== release.height || evidence.transactionProof.leafIndex !== release.transactionIndex) {
    throw new LedgerbusError(ErrorCode.BadProof, 'the release evidence is of another transaction');
  }
  const transaction = decodeTransaction(
    decodeClientRequest(evidence.transaction, messageLimits.requestBytesMax).operation,
  );
  if (
    transaction.type !== 'escrow' ||
    transaction.action.kind !== 'shareRelease' ||
    transaction.action.requestId !== context.requestId ||
    transaction.organization !== release.holder
  ) {
    throw new LedgerbusError(
      ErrorCode.BadProof,
      `the proven transaction is not ${release.holder}'s release for ${context.requestId}`,
    );
  }
  const keys = trust.signingKeys(release.holder) ?? [];
  if (
    !keys.some((key) => bytesEqual(key, transaction.signerKey)) ||
    !trust.signing.verify(
      transaction.signerKey,
      ESCROW_SIGNING_TYPE,
      escrowSigningPayload(transaction),
      transaction.signature,
    )
  ) {
    throw new LedgerbusError(ErrorCode.BadSignature, `the release is not signed by ${release.holder}`);
  }
  const result = decodeTransactionResult(evidence.result);
  if (
    result.status !== 'OK' ||
    result.type !== 'escrow' ||
    result.kind !== 'shareRelease' ||
    result.organization !== release.holder
  ) {
    throw new LedgerbusError(ErrorCode.BadProof, 'the contract did not accept this release');
  }
  return transaction.action.share;
}

/**
 * The escrowed secret from `threshold` verified shares, checked against the commitments. Throws
 * AUDIT_FAILED naming what is missing when there are too few: retriable while share holders that
 * have not released (or whose release could not be proven yet) could still make up the number,
 * `final` (not retriable) when they cannot.
 */
export function rebuildSecret(
  escrow: EscrowMetadata,
  collected: CollectedShares,
  audit: AuditView,
): Uint8Array {
  const threshold = escrow.commitments.length;
  if (collected.shares.length < threshold) {
    const released = new Set(audit.releases.map((release) => release.holder));
    const waiting = escrow.shares.map((entry) => entry.holder).filter((holder) => !released.has(holder));
    const possible = collected.shares.length + waiting.length + collected.unproven.length;
    const bad = collected.badShares.length === 0 ? '' : `; bad shares from ${collected.badShares.join(', ')}`;
    const unproven =
      collected.unproven.length === 0 ? '' : `; unproven releases from ${collected.unproven.join(', ')}`;
    throw new AuditFailure(
      `${collected.shares.length} valid key shares of the ${threshold} needed${bad}${unproven}; ${
        waiting.length === 0
          ? 'every share holder has released'
          : `waiting for ${waiting.join(', ')} to release`
      }`,
      possible < threshold,
    );
  }
  const secret = combineShares(collected.shares, threshold);
  // Verified shares always interpolate to the committed secret; a mismatch would be a broken sender
  // or library, and rebuilding cannot succeed on another try.
  if (!secretMatchesCommitments(secret, escrow.commitments)) {
    throw new AuditFailure("the rebuilt key does not match the sender's commitments", true);
  }
  return secret;
}

/**
 * AUDIT_FAILED, with whether it is final: a final failure (bad data that another try cannot fix) is
 * recorded on-chain as the audit's FAILED outcome; any other leaves the audit open for a retry.
 */
export class AuditFailure extends LedgerbusError {
  constructor(
    message: string,
    readonly final: boolean,
  ) {
    super(ErrorCode.AuditFailed, message, { retriable: !final });
  }
}
