/**
 * Submitting a transaction to a partition: wrapped in a client request signed by the connector,
 * with the next sequence number of its durable counter, and retried while the failure is
 * retriable (no leader yet, a connection that dropped, a node over its quota).
 */
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../../consensus/pbft/messages.js';
import { blockEvidenceSchema } from '../../proofs/index.js';
import type { BlockEvidence } from '../../proofs/index.js';
import { createRetry } from '../../runtime/retry.js';
import type { Retrier, RetryPolicy } from '../../runtime/retry.js';
import type { ConnectorContext } from '../context.js';
import type { NodeSession } from './node-session.js';

/** 8 attempts, 200 ms doubling to 5 s between them (≈ 17 s in all before jitter). */
export const submitRetryPolicy: RetryPolicy = {
  initialRetryTimeMs: 200,
  maxRetryTimeMs: 5_000,
  retries: 7,
  jitter: 0.2,
};

export interface SubmitterOptions extends Pick<
  ConnectorContext,
  'signer' | 'database' | 'lifecycle' | 'random'
> {
  readonly session: NodeSession;
  readonly retryPolicy?: RetryPolicy;
}

export class TransactionSubmitter {
  private readonly retry: Retrier;

  constructor(private readonly options: SubmitterOptions) {
    this.retry = createRetry(options.retryPolicy ?? submitRetryPolicy, {
      clock: options.lifecycle.retryClock,
      random: options.random,
      stopped: () => options.lifecycle.stopped,
    });
  }

  /**
   * Signs `operation` (an SDT transaction) into a client request for `group`, reserving its
   * sequence number BEFORE the first attempt (every retry reuses it, so the partition runs it at
   * most once), submits it and returns the evidence of the block that committed it.
   */
  async submit(group: string, operation: Uint8Array): Promise<{ height: number; evidence: BlockEvidence }> {
    const seq = this.options.database.reserveSequence(1);
    const request = encodeClientRequest(
      { group, client: this.options.signer.publicKey, seq, operation },
      this.options.signer.sign,
    );
    // Our own request must pass the node's limits: a local failure, never a retried one.
    decodeClientRequest(request, messageLimits.requestBytesMax);
    return this.retry(async () => {
      const answer = await this.options.session.call('publish', { group, request });
      const evidence = blockEvidenceSchema.parse(answer.evidence, 'evidence');
      return { height: evidence.header.height, evidence };
    });
  }
}
