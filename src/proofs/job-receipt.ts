/**
 * A JOB RECEIPT (DESIGN §8): what a compute-to-data job did, checkable offline against the
 * network's trust bundle like a delivery receipt — the block evidence of the job's request, its
 * owner's decision and its result, each a `job` transaction signed by a registered key of the right
 * organization (the requester for the request, the owner for the others), included in a block
 * certified by its partition's replica set, with the contract's OK for it in the same block. So it
 * proves who asked which owner for what (the plan's hash, never the plan), what the owner decided,
 * and the hash of the result it served (never the result).
 *
 * The receipt is a JSON file: the job's record as a node showed it (`view`, bytes in hex) and the
 * evidences (canonical CBOR, base64). `verifyJobReceipt` rebuilds the record from the evidences
 * alone and refuses a receipt whose view says anything else, naming the field.
 */
import { bytesEqual, decodeWith, encodeCanonical, fromHex, toHex } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { JOB_SIGNING_TYPE, jobSigningPayload } from '../contracts/datashare/transactions.js';
import type { JobAction, JobTransaction } from '../contracts/datashare/transactions.js';
import { jobViewSchema } from '../contracts/datashare/views.js';
import type { JobView } from '../contracts/datashare/views.js';
import { decodeTransactionResult } from '../contracts/results.js';
import { decodeTransaction } from '../contracts/transactions.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { blockLimits } from '../ledger/block.js';
import { blockEvidenceSchema, blockEvidenceToCbor, verifyBlockEvidence } from './evidence.js';
import type { BlockEvidence } from './evidence.js';
import type { ProofTrust } from './message-proof.js';

export const JOB_RECEIPT_TYPE = 'ledgerbus-job-receipt';

export type JobStep = 'request' | 'decision' | 'result';
const stepKinds: Record<JobStep, JobAction['kind']> = {
  request: 'jobRequest',
  decision: 'jobDecision',
  result: 'jobResult',
};

/** A JobView as a JSON file holds it: the 32-byte hashes in hex. */
export type JobViewJson = Omit<JobView, 'planHash' | 'result'> & {
  readonly planHash: string;
  readonly result:
    (Omit<NonNullable<JobView['result']>, 'resultHash'> & { readonly resultHash: string | null }) | null;
};

/** A job receipt as a file holds it (JSON). */
export interface JobReceipt {
  readonly type: typeof JOB_RECEIPT_TYPE;
  /** The network whose trust bundle verifies it. */
  readonly network: string;
  /** The partition ("topic/p") the job's transactions are on. */
  readonly group: string;
  readonly jobId: string;
  /** The job's record as the node showed it: what the receipt claims. */
  readonly view: JobViewJson;
  /** The block evidence of each recorded step, in order: canonical CBOR, base64. */
  readonly evidences: readonly { readonly step: JobStep; readonly evidence: string }[];
}

/** What a valid job receipt proves (field order fixed: summaries compare as JSON). */
export interface JobReceiptSummary {
  readonly jobId: string;
  readonly group: string;
  readonly requester: string;
  readonly owner: string;
  readonly dataset: string;
  readonly datasetVersion: number;
  readonly jobKind: 'aggregate' | 'model';
  /** Hex SHA-256 of the job's plan. */
  readonly planHash: string;
  readonly federation: string | null;
  readonly state: JobView['state'];
  /** The owner's decision and its reason code, or null while undecided. */
  readonly decision: 'APPROVED' | 'REJECTED' | null;
  readonly decisionReason: string | null;
  /** The result's status and code, or null while the job has none. */
  readonly result: 'COMPLETED' | 'FAILED' | null;
  readonly resultCode: string | null;
  /** Hex SHA-256 of the result the owner served (COMPLETED), else null. */
  readonly resultHash: string | null;
}

function badProof(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadProof, message);
}

export function jobViewToJson(view: JobView): JobViewJson {
  return {
    ...view,
    planHash: toHex(view.planHash),
    result:
      view.result === null
        ? null
        : {
            ...view.result,
            resultHash: view.result.resultHash === null ? null : toHex(view.result.resultHash),
          },
  };
}

/**
 * A job receipt from a node's `jobRecord` answer (`record`: the JobView; `evidences`: each step's
 * block evidence), for network `network`. It is not verified here: verify it with
 * `verifyJobReceipt` before handing it out. Throws SCHEMA_MISMATCH if the answer does not fit.
 */
export function jobReceiptFrom(
  answer: {
    readonly record: CborValue;
    readonly evidences: readonly { readonly step: JobStep; readonly evidence: CborValue }[];
  },
  network: string,
): JobReceipt {
  const view = jobViewSchema.parse(answer.record, 'job record');
  return {
    type: JOB_RECEIPT_TYPE,
    network,
    group: view.group,
    jobId: view.jobId,
    view: jobViewToJson(view),
    evidences: answer.evidences.map(({ step, evidence }) => ({
      step,
      evidence: Buffer.from(
        encodeCanonical(blockEvidenceToCbor(blockEvidenceSchema.parse(evidence, `${step} evidence`))),
      ).toString('base64'),
    })),
  };
}

/** One step a verifying evidence proves. */
interface ProvenStep {
  readonly step: JobStep;
  readonly transaction: JobTransaction;
  readonly height: number;
  readonly transactionIndex: number;
  readonly time: number;
}

/**
 * Verifies that `evidence` proves an OK `job` transaction of `step`'s kind for `jobId` on `group`,
 * signed by a key of its organization: certificate against the replica set the trust bundle gives
 * the block's epoch (WRONG_GROUP, INSUFFICIENT_SIGNATURES, BAD_SIGNATURE…), inclusion of the
 * transaction and its result (BAD_PROOF), the signature in the trust bundle's network
 * (BAD_SIGNATURE; WRONG_GROUP for an organization outside it), and the contract's OK for this very
 * step recorded at this very position — not an idempotent repeat of it (BAD_PROOF).
 */
function verifyStep(
  trust: ProofTrust,
  group: string,
  jobId: string,
  step: JobStep,
  evidence: BlockEvidence,
): ProvenStep {
  const { header } = evidence;
  if (header.partitionId !== group)
    throw badProof(`it was recorded on ${header.partitionId}, not on ${group}`);
  const membership = trust.membership(header.partitionId, header.configEpoch);
  if (membership === undefined) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `partition ${header.partitionId} epoch ${header.configEpoch} is not in this network`,
    );
  }
  verifyBlockEvidence(evidence, membership);
  let transaction;
  try {
    transaction = decodeTransaction(
      decodeClientRequest(evidence.transaction, messageLimits.requestBytesMax).operation,
    );
  } catch (error) {
    if (isLedgerbusError(error)) throw badProof(`the proven transaction does not decode: ${error.message}`);
    throw error;
  }
  if (transaction.type !== 'job')
    throw badProof(`the proven transaction is a ${transaction.type}, not a job step`);
  const { action, organization } = transaction;
  if (action.kind !== stepKinds[step])
    throw badProof(`the evidence proves a ${action.kind}, not a ${stepKinds[step]}`);
  if (action.jobId !== jobId) throw badProof(`the evidence is of job ${action.jobId}, not ${jobId}`);
  const keys = trust.signingKeys(organization);
  if (keys === undefined) {
    throw new LedgerbusError(ErrorCode.WrongGroup, `organization ${organization} is not in this network`);
  }
  if (
    !keys.some((key) => bytesEqual(key, transaction.signerKey)) ||
    !trust.signing.verify(
      transaction.signerKey,
      JOB_SIGNING_TYPE,
      jobSigningPayload(transaction),
      transaction.signature,
    )
  ) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the ${step} is not signed by a key of ${organization} for network ${trust.signing.network}`,
    );
  }
  const transactionIndex = evidence.transactionProof.leafIndex;
  let result;
  try {
    result = decodeTransactionResult(evidence.result);
  } catch (error) {
    if (isLedgerbusError(error)) throw badProof(`the proven result does not decode: ${error.message}`);
    throw error;
  }
  if (result.status !== 'OK') throw badProof(`the contract refused this ${step} (${result.reason})`);
  if (
    result.type !== 'job' ||
    result.kind !== action.kind ||
    result.jobId !== jobId ||
    result.organization !== organization ||
    result.height !== header.height ||
    result.transactionIndex !== transactionIndex
  ) {
    throw badProof(`the contract's result does not record this ${step} of job ${jobId} at this position`);
  }
  const state =
    action.kind === 'jobRequest'
      ? 'REQUESTED'
      : action.kind === 'jobDecision'
        ? action.decision
        : action.status;
  if (result.state !== state)
    throw badProof(`the contract recorded the ${step} as ${result.state}, not ${state}`);
  return { step, transaction, height: header.height, transactionIndex, time: header.timestamp };
}

/** Whether `later` is after `earlier` in the partition's order. */
function after(later: ProvenStep, earlier: ProvenStep): boolean {
  return (
    later.height > earlier.height ||
    (later.height === earlier.height && later.transactionIndex > earlier.transactionIndex)
  );
}

/**
 * Builds the job's record from the proven steps alone. `claimed` supplies each step's contract time
 * (`at`), which no block states exactly: it is the block's timestamp unless a primary's clock ran
 * behind, so it is only checked to be no earlier than that timestamp.
 */
function provenView(group: string, steps: readonly ProvenStep[], claimed: JobViewJson): JobView {
  const [request, decision, result] = steps;
  if (request?.step !== 'request') throw badProof('the receipt does not start with the job request');
  if (decision !== undefined && decision.step !== 'decision')
    throw badProof(`a ${decision.step} before any decision`);
  if (result !== undefined && result.step !== 'result')
    throw badProof(`a ${result.step} where the result belongs`);
  if (steps.length > 3) throw badProof('more than three steps');
  const requested = request.transaction.action as Extract<JobAction, { kind: 'jobRequest' }>;
  const owner = requested.owner;
  const at = (proven: ProvenStep, claimedAt: unknown): number => {
    if (typeof claimedAt !== 'number' || !Number.isSafeInteger(claimedAt) || claimedAt < proven.time) {
      throw badProof(
        `the view's ${proven.step} time ${String(claimedAt)} is before its block's timestamp ${proven.time}`,
      );
    }
    return claimedAt;
  };
  const position = (proven: ProvenStep, claimedAt: unknown) => ({
    height: proven.height,
    transactionIndex: proven.transactionIndex,
    at: at(proven, claimedAt),
  });
  const view: JobView = {
    jobId: requested.jobId,
    group,
    requester: request.transaction.organization,
    owner,
    dataset: requested.dataset,
    datasetVersion: requested.datasetVersion,
    jobKind: requested.jobKind,
    planHash: requested.planHash,
    federation: requested.federation ?? null,
    state: 'REQUESTED',
    request: position(request, claimed.request?.at),
    decision: null,
    result: null,
  };
  if (decision === undefined) return view;
  if (decision.transaction.organization !== owner) {
    throw badProof(
      `the decision is by ${decision.transaction.organization}, not by the job's owner ${owner}`,
    );
  }
  if (!after(decision, request)) throw badProof('the decision does not follow the request');
  const decided = decision.transaction.action as Extract<JobAction, { kind: 'jobDecision' }>;
  const withDecision: JobView = {
    ...view,
    state: decided.decision,
    decision: {
      decision: decided.decision,
      reason: decided.reason,
      detail: decided.detail,
      ...position(decision, claimed.decision?.at),
    },
  };
  if (result === undefined) return withDecision;
  if (result.transaction.organization !== owner) {
    throw badProof(`the result is by ${result.transaction.organization}, not by the job's owner ${owner}`);
  }
  if (decided.decision !== 'APPROVED') throw badProof('a result of a job its owner rejected');
  if (!after(result, decision)) throw badProof('the result does not follow the decision');
  const finished = result.transaction.action as Extract<JobAction, { kind: 'jobResult' }>;
  return {
    ...withDecision,
    state: finished.status,
    result: {
      status: finished.status,
      resultHash: finished.resultHash,
      resultBytes: finished.resultBytes,
      code: finished.code,
      detail: finished.detail,
      suppressedGroups: finished.suppressedGroups,
      ...position(result, claimed.result?.at),
    },
  };
}

export function jobReceiptSummary(view: JobView): JobReceiptSummary {
  return {
    jobId: view.jobId,
    group: view.group,
    requester: view.requester,
    owner: view.owner,
    dataset: view.dataset,
    datasetVersion: view.datasetVersion,
    jobKind: view.jobKind,
    planHash: toHex(view.planHash),
    federation: view.federation,
    state: view.state,
    decision: view.decision?.decision ?? null,
    decisionReason: view.decision?.reason ?? null,
    result: view.result?.status ?? null,
    resultCode: view.result?.code ?? null,
    resultHash:
      view.result === null || view.result.resultHash === null ? null : toHex(view.result.resultHash),
  };
}

/**
 * Checks a job receipt (a parsed JSON file) offline against `trust`: its type (SCHEMA_MISMATCH),
 * its network (WRONG_GROUP), each evidence in its slot as `verifyStep` says (its codes, the slot
 * named), that the steps follow one another — the decision and the result by the owner the request
 * named, after it, a result only after an approval — and that the receipt's view is exactly what
 * the evidences prove (BAD_PROOF naming the first field that is not). Returns what it proves.
 */
export function verifyJobReceipt(value: unknown, trust: ProofTrust): JobReceiptSummary {
  const receipt = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const { group, jobId, evidences } = receipt;
  const view = receipt['view'] as JobViewJson | undefined;
  if (
    receipt['type'] !== JOB_RECEIPT_TYPE ||
    typeof group !== 'string' ||
    typeof jobId !== 'string' ||
    typeof view !== 'object' ||
    view === null ||
    !Array.isArray(evidences) ||
    evidences.length < 1 ||
    evidences.length > 3
  ) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `not a ${JOB_RECEIPT_TYPE} (type, network, group, jobId, view, 1 to 3 evidences)`,
    );
  }
  if (receipt['network'] !== trust.signing.network) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `the job receipt is from network ${String(receipt['network'])}, not ${trust.signing.network}`,
    );
  }
  const steps = evidences.map((entry: unknown, index): ProvenStep => {
    const slot = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const step = slot['step'];
    if (
      (step !== 'request' && step !== 'decision' && step !== 'result') ||
      typeof slot['evidence'] !== 'string'
    ) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `evidences[${index}] is not a {step, evidence} of a job`,
      );
    }
    try {
      const evidence = decodeWith(blockEvidenceSchema, Buffer.from(slot['evidence'], 'base64'), {
        maxBytes: 6 * blockLimits.transactionBytesMax,
      });
      return verifyStep(trust, group, jobId, step, evidence);
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      throw new LedgerbusError(error.code, `evidences[${index}] (${step}): ${error.message}`, {
        cause: error,
      });
    }
  });
  const proven = jobViewToJson(provenView(group, steps, view));
  const claimed = view as unknown as Record<string, unknown>;
  for (const field of new Set([...Object.keys(proven), ...Object.keys(claimed)])) {
    const actual = (proven as unknown as Record<string, unknown>)[field];
    if (canonicalJson(claimed[field]) !== canonicalJson(actual)) {
      throw badProof(
        `the view's ${field} is ${JSON.stringify(claimed[field]) ?? 'missing'}; the evidences prove ${JSON.stringify(actual) ?? 'no such field'}`,
      );
    }
  }
  return jobReceiptSummary(jobViewFromJson(proven));
}

/** JSON with object keys sorted, so two views compare by content, whatever order a file has them in. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    typeof inner === 'object' && inner !== null && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : inner,
  );
}

function jobViewFromJson(view: JobViewJson): JobView {
  return {
    ...view,
    planHash: fromHex(view.planHash),
    result:
      view.result === null
        ? null
        : {
            ...view.result,
            resultHash: view.result.resultHash === null ? null : fromHex(view.result.resultHash),
          },
  };
}
