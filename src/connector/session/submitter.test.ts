import { afterEach, describe, expect, it } from 'vitest';
import type { CborValue } from '../../codec/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { partsFixture, settleWithClock, startNodeStandIn } from '../testing/parts-fixture.js';
import type { PartsFixture } from '../testing/parts-fixture.js';
import { TransactionSubmitter } from './submitter.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A submitter whose node refuses every publish with `refusal`; `requests` collects what it got. */
async function submitterRefusedWith(refusal: () => LedgerbusError): Promise<{
  fixture: PartsFixture;
  submitter: TransactionSubmitter;
  requests: CborValue[];
}> {
  const fixture = partsFixture();
  cleanups.push(() => fixture.close());
  const context = await fixture.context(0, { random: () => 0 });
  const requests: CborValue[] = [];
  const node = await startNodeStandIn(context.organization, {
    publish: (body) => {
      requests.push((body as Record<string, CborValue>)['request'] ?? null);
      throw refusal();
    },
  });
  cleanups.push(() => node.close());
  const session = fixture.session(context, 0, node.node);
  cleanups.push(() => session.close());
  const submitter = new TransactionSubmitter({
    ...context,
    session,
    retryPolicy: { initialRetryTimeMs: 200, maxRetryTimeMs: 5_000, retries: 3, jitter: 0.2 },
  });
  return { fixture, submitter, requests };
}

describe('TransactionSubmitter', () => {
  it('retries a retriable refusal on the policy’s waits, resubmitting the very same signed request', async () => {
    const { fixture, submitter, requests } = await submitterRefusedWith(
      () => new LedgerbusError(ErrorCode.RateLimited, 'over quota', { retriable: true }),
    );
    const outcome = await settleWithClock(
      fixture.clock,
      submitter.submit('demo/0', new Uint8Array([1, 2, 3])),
    );
    expect(outcome.status).toBe('rejected');
    expect(((outcome as PromiseRejectedResult).reason as LedgerbusError).code).toBe(ErrorCode.RateLimited);
    // random() = 0 draws the low end of each jittered wait: 0.8 × 200, 400, 800.
    expect(fixture.clock.waits).toEqual([160, 320, 640]);
    expect(requests).toHaveLength(4);
    for (const request of requests) expect(request).toEqual(requests[0]);
  });

  it('stops at once on a refusal that is not retriable', async () => {
    const { fixture, submitter, requests } = await submitterRefusedWith(
      () => new LedgerbusError(ErrorCode.BadSignature, 'not signed by its client'),
    );
    const outcome = await settleWithClock(fixture.clock, submitter.submit('demo/0', new Uint8Array([1])));
    expect(((outcome as PromiseRejectedResult).reason as LedgerbusError).code).toBe(ErrorCode.BadSignature);
    expect(requests).toHaveLength(1);
    expect(fixture.clock.waits).toEqual([]);
  });
});
