/**
 * Submitting the auditor's escrow transactions (audit request, approval, outcome) and turning the
 * escrow contract's refusals into the connector's error codes: a caller without the standing the
 * action needs is FORBIDDEN, an unknown message or request MESSAGE_NOT_FOUND, an audit not yet
 * approved AUDIT_NOT_APPROVED, and every other refusal ADMIN_REJECTED with the contract's reason
 * code in `details.reason` (the REST error's `reason`), so a caller decides on codes, never text.
 */
import { randomBytes } from 'node:crypto';
import { encodeEscrowTransaction } from '../../contracts/escrow/transactions.js';
import type { EscrowAction } from '../../contracts/escrow/transactions.js';
import { nonceBytes } from '../../contracts/limits.js';
import { decodeTransactionResult } from '../../contracts/results.js';
import type { EscrowAuditSummary } from '../../contracts/results.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import type { TransactionSubmitter } from '../session/submitter.js';

export interface EscrowSubmitOptions extends Pick<ConnectorContext, 'organization' | 'signer' | 'lifecycle'> {
  readonly submitter: Pick<TransactionSubmitter, 'submit'>;
}

/** Contract reasons meaning the signer lacks the standing the action needs. */
const forbiddenReasons = new Set([
  'NOT_AUDITOR',
  'APPROVER_NOT_ELIGIBLE',
  'NOT_REQUEST_AUDITOR',
  'NOT_SHARE_HOLDER',
]);
const unknownReasons = new Set(['ESCROW_UNKNOWN', 'AUDIT_UNKNOWN']);

/** What each refusal means for the person who asked, in words. */
const reasonText: Readonly<Record<string, string>> = {
  NOT_AUDITOR: 'this organization does not hold the auditor role',
  APPROVER_NOT_ELIGIBLE:
    'this organization may not approve the request (approvers are approved members other than the auditor and the sender)',
  NOT_REQUEST_AUDITOR: 'only the auditor that made the request may record its outcome',
  ESCROW_UNKNOWN: 'no escrowed message with this id on the partition',
  AUDIT_UNKNOWN: 'no audit request with this id on the partition',
  AUDIT_NOT_APPROVED: 'the request is not approved yet',
  AUDIT_CLOSED: 'the audit is closed (its outcome is recorded); request a new audit',
  AUDIT_ID_CONFLICT: 'another audit request already has this request id',
  AUDIT_LIMIT: 'the message has as many audit requests as it may hold',
};

/**
 * Signs `action` as this organization, submits it to `group` and returns the audit summary the
 * contract answered with. Throws the mapped LedgerbusError (see the module comment) on a refusal.
 */
export async function submitEscrowAction(
  options: EscrowSubmitOptions,
  group: string,
  action: EscrowAction,
): Promise<EscrowAuditSummary> {
  const transaction = encodeEscrowTransaction(
    {
      organization: options.organization,
      nonce: randomBytes(nonceBytes),
      timestamp: options.lifecycle.clock.now(),
      action,
    },
    options.signer,
  );
  const { evidence } = await options.submitter.submit(group, transaction);
  const result = decodeTransactionResult(evidence.result);
  if (result.status === 'REJECTED') {
    throw escrowRefusal(action.kind, result.reason, result.detail);
  }
  // The node answered with the evidence of our own transaction: any other type is its bug.
  assert(
    result.type === 'escrow',
    `the partition answered an escrow ${action.kind} with a ${result.type} result`,
  );
  assert(result.audit !== null, `an escrow ${action.kind} result names its audit`);
  return result.audit;
}

/** The connector's error for a contract refusal of an escrow `kind` with `reason`. */
export function escrowRefusal(kind: string, reason: string, detail?: string): LedgerbusError {
  const what = `${kind} refused (${reason}): ${reasonText[reason] ?? 'see the reason code'}${
    detail === undefined || detail.length === 0 ? '' : ` — ${detail}`
  }`;
  const details = { details: { reason } };
  if (forbiddenReasons.has(reason)) return new LedgerbusError(ErrorCode.Forbidden, what, details);
  if (unknownReasons.has(reason)) {
    // The request went to the partition the agent named: the message may simply not be committed
    // there yet, so asking again can help.
    return new LedgerbusError(ErrorCode.MessageNotFound, what, { ...details, retriable: true });
  }
  if (reason === 'AUDIT_NOT_APPROVED') return new LedgerbusError(ErrorCode.AuditNotApproved, what, details);
  return new LedgerbusError(ErrorCode.AdminRejected, what, details);
}
