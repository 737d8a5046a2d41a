/**
 * The signed request a job's requester sends its owner, through the nodes (`connectorCall`
 * 'jobResultGet'), for the job's result (DESIGN §8): off-chain, like a payload fetch request. It
 * names its network and the owner it is for, expires, and carries a nonce the owner's connector
 * remembers until then, so a captured request can be replayed neither later, nor twice, nor to
 * another owner or in another network. The owner's connector checks it itself against the registry
 * (`verifyJobResultRequest`) and against the job's committed record (that the signer's organization
 * is the job's requester), trusting no node; the nodes only check that the calling connector's
 * organization is the requester and that the call goes to the owner it names.
 */
import { bytesEqual, decodeWith, encodeCanonical, encodeWith, t } from '../../codec/index.js';
import type { Infer } from '../../codec/index.js';
import type { Signer, SigningDomain } from '../../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { checkFetchFreshness, fetchLimits } from '../fetch.js';
import type { SignedRequestWindow } from '../fetch.js';
import { nonceBytes, transactionLimits } from '../limits.js';
import { jobIdPattern, jobLimits } from './transactions.js';

export const JOB_RESULT_REQUEST_SIGNING_TYPE = 'job-result-request';

const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });

export const jobResultRequestSchema = t.record({
  type: t.literal('jobResultGet'),
  /** The organization that signed: must be the job's requester. */
  requester: organizationId,
  signerKey: t.bytes({ length: 32 }),
  /** The organization asked, the job's owner: its connector refuses a request meant for another. */
  owner: organizationId,
  /** The partition ("topic/p") the job's transactions are on. */
  group: t.string({ minLength: 1, maxLength: 512 }),
  jobId: t.string({ minLength: 8, maxLength: jobLimits.jobIdLengthMax, pattern: jobIdPattern }),
  nonce: t.bytes({ length: nonceBytes }),
  /** The requester's clock when it signed, ms since the epoch. */
  timestamp: t.uint(),
  /** The network (genesis `network`) the request is for. */
  network: t.string({ minLength: 1, maxLength: 128 }),
  /** Milliseconds since the epoch after which nobody serves it (at most 5 minutes after `timestamp`). */
  expiresAt: t.uint(),
  signature: t.bytes({ length: 64 }),
});
export type JobResultRequest = Infer<typeof jobResultRequestSchema>;

/** Every field but the signature, canonically encoded: what the signature is over. */
function signingPayload(request: Omit<JobResultRequest, 'signature'>): Uint8Array {
  return encodeCanonical({
    type: 'jobResultGet',
    requester: request.requester,
    signerKey: request.signerKey,
    owner: request.owner,
    group: request.group,
    jobId: request.jobId,
    nonce: request.nonce,
    timestamp: request.timestamp,
    network: request.network,
    expiresAt: request.expiresAt,
  });
}

/**
 * Signs a result request for the signer's network (which also goes into its `network` field); it
 * expires a minute after `timestamp` unless told. Throws LedgerbusError(SchemaMismatch) naming the
 * field if it would not decode.
 */
export function encodeJobResultRequest(
  request: {
    requester: string;
    owner: string;
    group: string;
    jobId: string;
    nonce: Uint8Array;
    timestamp: number;
    expiresAt?: number;
  },
  signer: Signer,
): Uint8Array {
  const unsigned: Omit<JobResultRequest, 'signature'> = {
    type: 'jobResultGet',
    requester: request.requester,
    signerKey: signer.publicKey,
    owner: request.owner,
    group: request.group,
    jobId: request.jobId,
    nonce: request.nonce,
    timestamp: request.timestamp,
    network: signer.domain.network,
    expiresAt: request.expiresAt ?? request.timestamp + fetchLimits.lifetimeMsDefault,
  };
  return encodeWith(jobResultRequestSchema, {
    ...unsigned,
    signature: signer.sign(JOB_RESULT_REQUEST_SIGNING_TYPE, signingPayload(unsigned)),
  });
}

/** Decodes strictly; throws LedgerbusError on malformed bytes. Does not check the signature. */
export function decodeJobResultRequest(bytes: Uint8Array): JobResultRequest {
  return decodeWith(jobResultRequestSchema, bytes, { maxBytes: 4096 });
}

/** True if `request` carries a valid signature by its `signerKey` in the network of `signing`. */
export function jobResultRequestSignatureValid(request: JobResultRequest, signing: SigningDomain): boolean {
  return signing.verify(
    request.signerKey,
    JOB_RESULT_REQUEST_SIGNING_TYPE,
    signingPayload(request),
    request.signature,
  );
}

/** What a nonce window (contracts/fetch.ts `FetchNonceWindow`) keeps of a result request. */
export function jobResultRequestWindow(request: JobResultRequest): SignedRequestWindow {
  return {
    requester: request.requester,
    id: request.jobId,
    nonce: request.nonce,
    network: request.network,
    timestamp: request.timestamp,
    expiresAt: request.expiresAt,
  };
}

/**
 * The owner's connector's checks of a result request, in order: decodes (SCHEMA_MISMATCH,
 * MALFORMED_ENCODING), meant for `owner` (FORBIDDEN), for this network and valid at `now`
 * (WRONG_NETWORK, REQUEST_EXPIRED retriable), signed by a key the registry gives its requester in
 * this network (BAD_SIGNATURE). Returns the request. The caller then takes its nonce
 * (`jobResultRequestWindow`) and checks the job's record: that the requester is the job's.
 */
export function verifyJobResultRequest(
  bytes: Uint8Array,
  options: {
    readonly signing: SigningDomain;
    /** The organization whose connector checks (the job's owner). */
    readonly owner: string;
    /** An organization's registered connector signing keys, undefined if unknown. */
    readonly signingKeys: (organization: string) => readonly Uint8Array[] | undefined;
    readonly now: number;
  },
): JobResultRequest {
  const request = decodeJobResultRequest(bytes);
  if (request.owner !== options.owner) {
    throw new LedgerbusError(
      ErrorCode.Forbidden,
      `the result request for job ${request.jobId} is for ${request.owner}, not ${options.owner}`,
    );
  }
  checkFetchFreshness(
    jobResultRequestWindow(request),
    options.signing.network,
    options.now,
    'job result request',
  );
  const keys = options.signingKeys(request.requester) ?? [];
  if (
    !keys.some((key) => bytesEqual(key, request.signerKey)) ||
    !jobResultRequestSignatureValid(request, options.signing)
  ) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the result request for job ${request.jobId} is not signed by a key of ${request.requester} for network ${options.signing.network}`,
    );
  }
  return request;
}
