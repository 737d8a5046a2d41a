/**
 * The job contract's wire format (DESIGN §8, compute-to-data): the three steps of a job that go on
 * the ledger, each signed by a registered connector key of the organization taking it, like every
 * other partition transaction (network-bound signing domain, nonce, timestamp):
 *
 *   jobRequest   the requester: which owner's dataset, the job kind, the SHA-256 of its plan, and
 *                the job itself sealed to the owner's encryption key (HPKE, crypto/job-box.ts)
 *   jobDecision  the owner: APPROVED, or REJECTED with a stable reason code
 *   jobResult    the owner: COMPLETED with the SHA-256 of the result it serves (never the result),
 *                or FAILED with a stable code
 *
 * The result itself travels off the ledger, sealed to the requester, from the owner's connector.
 */
import { encodeWith, t } from '../../codec/index.js';
import type { Infer, Schema } from '../../codec/index.js';
import type { Signer } from '../../crypto/index.js';
import { nonceBytes, transactionLimits } from '../limits.js';

export const JOB_SIGNING_TYPE = 'job-transaction';

export const jobLimits = {
  jobIdLengthMax: 64,
  /** The sealed job: a query of up to 8 KiB, or model settings, plus HPKE overhead. */
  sealedSpecBytesMax: 16 * 1024,
  reasonLengthMax: 64,
  detailLengthMax: 1024,
  datasetLengthMax: 128,
} as const;

/** A job id: the requester's own, unique on its partition (the connector draws 128 random bits). */
export const jobIdPattern = /^[a-zA-Z0-9_-]{8,64}$/;

const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const jobId = t.string({ minLength: 8, maxLength: jobLimits.jobIdLengthMax, pattern: jobIdPattern });
const bytes32 = t.bytes({ length: 32 });
const reasonCode = t.string({
  minLength: 1,
  maxLength: jobLimits.reasonLengthMax,
  pattern: /^[A-Z][A-Z0-9_]*$/,
});
const detail = t.string({ maxLength: jobLimits.detailLengthMax });

/** HPKE base mode (X25519, HKDF-SHA256, AES-256-GCM) to one organization's encryption key. */
export const sealedBoxSchema = t.record({
  encapsulatedKey: bytes32,
  ciphertext: t.bytes({ minLength: 16, maxLength: jobLimits.sealedSpecBytesMax }),
});
export type SealedBox = Infer<typeof sealedBoxSchema>;

export const jobActionSchema = t.variant('kind', {
  jobRequest: t.record({
    kind: t.literal('jobRequest'),
    jobId,
    owner: organizationId,
    dataset: t.string({ minLength: 1, maxLength: jobLimits.datasetLengthMax }),
    /** The catalog version the requester read (a hint for people; the owner runs what it has). */
    datasetVersion: t.uint(),
    jobKind: t.oneOf('aggregate', 'model'),
    /** SHA-256 of the plan's canonical JSON (datashare/query/plan.ts). */
    planHash: bytes32,
    /** The JobSpec as canonical JSON, sealed to the owner. */
    sealedSpec: sealedBoxSchema,
    /** A federated job's id: every part of it names the same one. */
    federation: t.optional(jobId),
  }),
  jobDecision: t.record({
    kind: t.literal('jobDecision'),
    jobId,
    decision: t.oneOf('APPROVED', 'REJECTED'),
    /** APPROVED: 'POLICY' or 'MANUAL'; REJECTED: an error code (QUERY_REJECTED, DATASET_NOT_FOUND, MANUAL_REJECT...). */
    reason: reasonCode,
    detail,
  }),
  jobResult: t.record({
    kind: t.literal('jobResult'),
    jobId,
    status: t.oneOf('COMPLETED', 'FAILED'),
    /** COMPLETED: SHA-256 of the result's bytes (canonical JSON of the JobOutput); FAILED: null. */
    resultHash: t.nullable(bytes32),
    resultBytes: t.uint(),
    /** COMPLETED: 'OK'; FAILED: MIN_GROUP_SIZE, DIFFERENCE_CHECK, JOB_LIMIT_EXCEEDED, JOB_FAILED... */
    code: reasonCode,
    detail,
    /** Aggregate jobs: groups left out for being smaller than the minimum group size. */
    suppressedGroups: t.uint(),
  }),
});
export type JobAction = Infer<typeof jobActionSchema>;
export type JobActionKind = JobAction['kind'];

export const jobTransactionSchema = t.record({
  type: t.literal('job'),
  organization: organizationId,
  signerKey: bytes32,
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: t.uint(),
  action: jobActionSchema,
  signature: t.bytes({ length: 64 }),
});
export type JobTransaction = Infer<typeof jobTransactionSchema>;

const unsignedSchema: Schema<Omit<JobTransaction, 'signature'>> = t.record({
  type: t.literal('job'),
  organization: organizationId,
  signerKey: bytes32,
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: t.uint(),
  action: jobActionSchema,
});

/** The bytes a job transaction's signature is over (in the JOB_SIGNING_TYPE domain). */
export function jobSigningPayload(transaction: Omit<JobTransaction, 'signature'>): Uint8Array {
  return encodeWith(unsignedSchema, {
    type: 'job',
    organization: transaction.organization,
    signerKey: transaction.signerKey,
    nonce: transaction.nonce,
    timestamp: transaction.timestamp,
    action: transaction.action,
  });
}

/**
 * Encodes and signs a job transaction with `signer` (a connector key registered for
 * `organization`). Throws LedgerbusError(SchemaMismatch) naming the field if it would not pass the
 * contract's schema.
 */
export function encodeJobTransaction(
  transaction: { organization: string; nonce: Uint8Array; timestamp: number; action: JobAction },
  signer: Signer,
): Uint8Array {
  const unsigned = { type: 'job' as const, signerKey: signer.publicKey, ...transaction };
  return encodeWith(jobTransactionSchema, {
    ...unsigned,
    signature: signer.sign(JOB_SIGNING_TYPE, jobSigningPayload(unsigned)),
  });
}
