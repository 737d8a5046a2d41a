/**
 * A job's record as a connector may act on it (DESIGN §8): the node's `jobRecord` answer checked
 * as a job receipt (proofs/job-receipt.ts: every step's block certificate, inclusion, signature by
 * the right organization and the contract's OK for it), and the node's view required to be exactly
 * what the evidences prove. So the request, the decision and the result read here are what the
 * partition recorded, whatever node answered.
 */
import type { CborValue } from '../../codec/index.js';
import { decodeClientRequest, messageLimits } from '../../consensus/pbft/messages.js';
import type { JobAction, JobTransaction } from '../../contracts/datashare/transactions.js';
import { jobViewSchema } from '../../contracts/datashare/views.js';
import type { JobView } from '../../contracts/datashare/views.js';
import { decodeTransaction } from '../../contracts/transactions.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { blockEvidenceSchema } from '../../proofs/index.js';
import type { ProofTrust } from '../../proofs/index.js';
import { jobReceiptFrom, verifyJobReceipt } from '../../proofs/job-receipt.js';
import type { JobReceipt, JobStep } from '../../proofs/job-receipt.js';
import type { NodeSession } from '../session/node-session.js';

export interface VerifiedJobRecord {
  /** The job's record, every field proven by the evidences. */
  readonly view: JobView;
  /** The requester's signed request (its sealed job), proven by the request's evidence. */
  readonly request: {
    readonly action: Extract<JobAction, { kind: 'jobRequest' }>;
    readonly transaction: JobTransaction;
  };
  /** The record as an offline-verifiable receipt (`ledgerbus verify` checks it). */
  readonly receipt: JobReceipt;
}

/**
 * Asks our node for job `jobId`'s record on partition `group` and verifies it. Throws
 * LedgerbusError: whatever the node answered (MESSAGE_NOT_FOUND while the job is not committed,
 * FORBIDDEN for a job we are no party of); the receipt check's codes (BAD_PROOF, BAD_SIGNATURE,
 * WRONG_GROUP...) when the evidences do not prove the view; BAD_PROOF for a record of another job.
 */
export async function fetchJobRecord(
  session: Pick<NodeSession, 'call'>,
  trust: ProofTrust,
  group: string,
  jobId: string,
): Promise<VerifiedJobRecord> {
  const answer = await session.call('jobRecord', { group, jobId });
  return verifyJobRecord(answer, trust, group, jobId);
}

/** The checks of `fetchJobRecord` on an answer already in hand. */
export function verifyJobRecord(
  answer: { record: CborValue; evidences: readonly { step: JobStep; evidence: CborValue }[] },
  trust: ProofTrust,
  group: string,
  jobId: string,
): VerifiedJobRecord {
  const receipt = jobReceiptFrom(answer, trust.signing.network);
  if (receipt.jobId !== jobId || receipt.group !== group) {
    throw new LedgerbusError(
      ErrorCode.BadProof,
      `the node's record is of job ${receipt.jobId} on ${receipt.group}, not ${jobId} on ${group}`,
    );
  }
  verifyJobReceipt(receipt, trust);
  const view = jobViewSchema.parse(answer.record, 'record');
  const requestEvidence = answer.evidences.find((entry) => entry.step === 'request');
  if (requestEvidence === undefined)
    throw new LedgerbusError(ErrorCode.BadProof, `no evidence of job ${jobId}'s request`);
  // Verified above with the rest: decoded again here only for what the summary leaves out (the sealed job).
  const evidence = blockEvidenceSchema.parse(requestEvidence.evidence, 'request evidence');
  const transaction = decodeTransaction(
    decodeClientRequest(evidence.transaction, messageLimits.requestBytesMax).operation,
  );
  if (transaction.type !== 'job' || transaction.action.kind !== 'jobRequest') {
    throw new LedgerbusError(ErrorCode.BadProof, `job ${jobId}'s request evidence holds no job request`);
  }
  return { view, request: { action: transaction.action, transaction }, receipt };
}
