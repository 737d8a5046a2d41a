/**
 * Submitting a job's steps (request, decision, result) and turning the contract's refusals into
 * the connector's error codes, so a caller decides on codes, never text: a party without the
 * standing the step needs is FORBIDDEN naming the organization's status, an owner the registry
 * does not know DATASET_NOT_FOUND, and every other refusal MESSAGE_REJECTED with the contract's
 * reason code in `details.reason` (the REST error's `reason`).
 */
import { randomBytes } from 'node:crypto';
import { encodeJobTransaction } from '../../contracts/datashare/transactions.js';
import type { JobAction } from '../../contracts/datashare/transactions.js';
import { nonceBytes } from '../../contracts/limits.js';
import { decodeTransactionResult } from '../../contracts/results.js';
import type { JobResult } from '../../contracts/results.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import type { TransactionSubmitter } from '../session/submitter.js';

export interface JobSubmitOptions extends Pick<ConnectorContext, 'organization' | 'signer' | 'lifecycle'> {
  readonly submitter: Pick<TransactionSubmitter, 'submit'>;
}

/** Refusals of the signer itself: it is not (or no longer) an approved member. */
const standingReasons = new Set([
  'ORGANIZATION_PENDING',
  'ORGANIZATION_SUSPENDED',
  'ORGANIZATION_REVOKED',
  'NOT_MEMBER',
  'NOT_JOB_OWNER',
]);

/**
 * Signs `action` as this organization (a fresh nonce, the lifecycle clock's time), submits it to
 * `group` and returns what the contract recorded. Throws the mapped LedgerbusError on a refusal.
 */
export async function submitJobAction(
  options: JobSubmitOptions,
  group: string,
  action: JobAction,
): Promise<JobResult> {
  const transaction = encodeJobTransaction(
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
  if (result.status === 'REJECTED')
    throw jobRefusal(options.organization, action, result.reason, result.detail);
  // The node answered with the evidence of our own transaction: any other type is its bug.
  assert(result.type === 'job', `the partition answered a ${action.kind} with a ${result.type} result`);
  assert(
    result.jobId === action.jobId,
    `the partition answered ${action.jobId}'s ${action.kind} for ${result.jobId}`,
  );
  return result;
}

/** The connector's error for the contract's refusal of `action` with `reason`. */
export function jobRefusal(
  organization: string,
  action: JobAction,
  reason: string,
  detail: string | undefined,
): LedgerbusError {
  const details = { details: { reason } };
  const suffix = detail === undefined || detail.length === 0 ? '' : ` (${detail})`;
  if (reason === 'OWNER_NOT_APPROVED' && action.kind === 'jobRequest') {
    return new LedgerbusError(
      ErrorCode.Forbidden,
      `the network refuses jobs for ${action.owner}: the organization is ${detail === 'NO_MEMBER_ROLE' ? 'not a member' : (detail ?? 'not approved')}`,
      details,
    );
  }
  if (reason === 'OWNER_UNKNOWN' && action.kind === 'jobRequest') {
    return new LedgerbusError(
      ErrorCode.DatasetNotFound,
      `no organization ${action.owner} is registered`,
      details,
    );
  }
  if (standingReasons.has(reason)) {
    return new LedgerbusError(
      ErrorCode.Forbidden,
      `the network refuses ${organization}'s ${action.kind} for job ${action.jobId}: ${reason}${suffix}`,
      details,
    );
  }
  return new LedgerbusError(
    ErrorCode.MessageRejected,
    `the network refused ${action.kind} for job ${action.jobId}: ${reason}${suffix}`,
    details,
  );
}
