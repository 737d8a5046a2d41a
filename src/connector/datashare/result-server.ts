/**
 * Serving job results (DESIGN §8, owner side): a job's requester asks for the result through the
 * nodes (`connectorCall` 'jobResultGet') with a request it signed. This connector checks the
 * request itself — meant for us, fresh, in our network, signed by a registered key of its
 * requester, not used before — and that its requester is the job's, trusting no node, then answers
 * the result as it was sealed to the requester when the job ran. The sealed box opens only with the
 * requester's key and names the job and both parties, so even a wrong answer here would release
 * nothing to anyone else.
 */
import { jobResultRequestWindow, verifyJobResultRequest } from '../../contracts/datashare/result-requests.js';
import type { JobResultRequest } from '../../contracts/datashare/result-requests.js';
import { FetchNonceWindow } from '../../contracts/fetch.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ConnectorMethods, RequestOf, ResponseOf } from '../../protocol/client-methods.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { JobDatabase } from './job-state-database.js';

type GetBody = RequestOf<ConnectorMethods['jobResultGet']>;
type GetAnswer = ResponseOf<ConnectorMethods['jobResultGet']>;

export interface ResultServerOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'registry' | 'logger' | 'lifecycle'
> {
  readonly jobs: Pick<JobDatabase, 'owned'>;
}

export class ResultServer {
  /** Nonces of the result requests answered, until they expire. */
  private readonly nonces = new FetchNonceWindow(undefined, 'job result request');

  constructor(private readonly options: ResultServerOptions) {}

  /**
   * The sealed result of the job the signed request names. Refused: not for us (FORBIDDEN);
   * another network (WRONG_NETWORK); stale (REQUEST_EXPIRED); not signed by a key of its requester
   * (BAD_SIGNATURE); used before (REPLAY); a job we do not own here (MESSAGE_NOT_FOUND); a requester
   * that is not the job's (FORBIDDEN); a job that has not finished (MESSAGE_NOT_FOUND, retriable)
   * or failed (JOB_FAILED). Every refusal is logged.
   */
  serve(body: GetBody): GetAnswer {
    let request: JobResultRequest | undefined;
    try {
      const { organization, signer, registry, lifecycle } = this.options;
      const now = lifecycle.clock.now();
      request = verifyJobResultRequest(body.request, {
        signing: signer.domain,
        owner: organization,
        signingKeys: (requester) => registry.organization(requester)?.signingKeys,
        now,
      });
      this.nonces.admit(jobResultRequestWindow(request), now);
      return this.answer(request);
    } catch (error) {
      this.options.logger.info(
        {
          requester: request?.requester,
          jobId: request?.jobId,
          group: request?.group,
          error: describeError(error),
        },
        'refused a job result request',
      );
      throw error;
    }
  }

  private answer(request: JobResultRequest): GetAnswer {
    const row = this.options.jobs.owned(request.group, request.jobId);
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `${this.options.organization} runs no job ${request.jobId} on ${request.group}`,
      );
    }
    if (row.requester !== request.requester) {
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `job ${request.jobId} was requested by another organization, not ${request.requester}`,
      );
    }
    if (row.state === 'FAILED') {
      throw new LedgerbusError(
        ErrorCode.JobFailed,
        `job ${request.jobId} failed (${row.result_code}): ${row.result_detail}`,
      );
    }
    // Only a result the ledger holds the hash of: one kept but refused on-chain (the owner suspended
    // meanwhile, a second run after a restore) is never released.
    if (
      row.state !== 'COMPLETED' ||
      row.result_recorded !== 1 ||
      row.sealed_key === null ||
      row.sealed_ciphertext === null
    ) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `job ${request.jobId} has no result yet (${row.state})`,
        {
          retriable: true,
        },
      );
    }
    // SQLite answers Buffers; the wire wants plain bytes.
    return {
      sealed: {
        encapsulatedKey: new Uint8Array(row.sealed_key),
        ciphertext: new Uint8Array(row.sealed_ciphertext),
      },
    };
  }
}
