import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { Backoff, createRetry, retryDelayMs, validateRetryPolicy } from './retry.js';
import type { RetryClock } from './retry.js';

/** A clock that only moves when a retry sleeps, recording each wait. */
function fakeClock(): RetryClock & { waits: number[] } {
  let now = 1_000_000;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep: (ms) => {
      waits.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

const transient = (): LedgerbusError =>
  new LedgerbusError(ErrorCode.Timeout, 'no answer yet', { retriable: true });

/** A task that fails `failures` times with `error()` and then answers `done`. */
function failing(failures: number, error: () => unknown = transient): (attempt: number) => Promise<string> {
  return (attempt) => (attempt <= failures ? Promise.reject(error()) : Promise.resolve('done'));
}

describe('retryDelayMs', () => {
  it('grows by the multiplier from the initial wait and stops at the maximum', () => {
    const policy = { initialRetryTimeMs: 200, maxRetryTimeMs: 5_000, jitter: 0 };
    const waits = [1, 2, 3, 4, 5, 6, 7, 100].map((retry) => retryDelayMs(policy, retry, Math.random));
    expect(waits).toEqual([200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]);
  });

  it('keeps a constant wait with multiplier 1', () => {
    const policy = { initialRetryTimeMs: 500, maxRetryTimeMs: 500, multiplier: 1, jitter: 0 };
    expect([1, 2, 9].map((retry) => retryDelayMs(policy, retry, Math.random))).toEqual([500, 500, 500]);
  });

  it('spreads each wait within base × [1 − jitter, 1 + jitter]', () => {
    const policy = { initialRetryTimeMs: 1_000, maxRetryTimeMs: 30_000, jitter: 0.2 };
    expect(retryDelayMs(policy, 1, () => 0)).toBe(800);
    expect(retryDelayMs(policy, 1, () => 0.5)).toBe(1_000);
    expect(retryDelayMs(policy, 1, () => 0.999_999)).toBe(1_200);
    expect(retryDelayMs(policy, 10, () => 0.999_999)).toBe(36_000);
    for (let sample = 0; sample < 1_000; sample++) {
      const wait = retryDelayMs(policy, 3, Math.random);
      expect(wait).toBeGreaterThanOrEqual(3_200);
      expect(wait).toBeLessThanOrEqual(4_800);
    }
  });

  it('names the field of a policy it cannot run', () => {
    expect(() => validateRetryPolicy({ initialRetryTimeMs: 100, maxRetryTimeMs: Number.NaN })).toThrow(
      /maxRetryTimeMs/,
    );
    expect(() => validateRetryPolicy({ initialRetryTimeMs: 1, maxRetryTimeMs: 2, jitter: 2 })).toThrow(
      /jitter/,
    );
  });
});

describe('createRetry', () => {
  it('waits the policy’s sequence between attempts and returns the first success', async () => {
    const clock = fakeClock();
    const retry = createRetry(
      { initialRetryTimeMs: 200, maxRetryTimeMs: 5_000, jitter: 0, retries: 7 },
      { clock },
    );
    await expect(retry(failing(6))).resolves.toBe('done');
    expect(clock.waits).toEqual([200, 400, 800, 1_600, 3_200, 5_000]);
  });

  it('gives up after the last retry with the task’s own error', async () => {
    const clock = fakeClock();
    const retry = createRetry({ initialRetryTimeMs: 10, maxRetryTimeMs: 10, retries: 2 }, { clock });
    // Bounded, so that a retrier that ignores `retries` fails this test instead of spinning.
    const error = await retry(failing(10)).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LedgerbusError);
    expect((error as LedgerbusError).code).toBe(ErrorCode.Timeout);
    expect(clock.waits).toHaveLength(2);
  });

  it('makes no retry whose wait would end past the deadline', async () => {
    const clock = fakeClock();
    const retry = createRetry(
      { initialRetryTimeMs: 100, maxRetryTimeMs: 1_000, jitter: 0, deadlineMs: 1_500 },
      { clock },
    );
    await expect(retry(failing(20))).rejects.toThrow('no answer yet');
    // 100 + 200 + 400 = 700; the next wait (800) would end at 1,500 — allowed; then 1,000 would not.
    expect(clock.waits).toEqual([100, 200, 400, 800]);
  });

  it('stops at once on an error that is not retriable', async () => {
    const clock = fakeClock();
    const retry = createRetry({ initialRetryTimeMs: 10, maxRetryTimeMs: 10 }, { clock });
    let attempts = 0;
    const refusal = new LedgerbusError(ErrorCode.BadSignature, 'refused');
    await expect(
      retry(() => {
        attempts += 1;
        return attempts > 10 ? Promise.resolve('spun') : Promise.reject(refusal);
      }),
    ).rejects.toBe(refusal);
    expect(attempts).toBe(1);
    expect(clock.waits).toEqual([]);
  });

  it('stops instead of waiting once its owner has stopped', async () => {
    const clock = fakeClock();
    let stopped = false;
    const retry = createRetry(
      { initialRetryTimeMs: 10, maxRetryTimeMs: 10 },
      { clock, stopped: () => stopped },
    );
    const task = (attempt: number): Promise<string> => {
      if (attempt === 2) stopped = true;
      return attempt > 10 ? Promise.resolve('spun') : Promise.reject(transient());
    };
    await expect(retry(task)).rejects.toThrow('no answer yet');
    expect(clock.waits).toHaveLength(1);
  });

  it('uses the injected randomness for its waits and reports each retry', async () => {
    const clock = fakeClock();
    const seen: number[] = [];
    const retry = createRetry(
      { initialRetryTimeMs: 1_000, maxRetryTimeMs: 30_000, jitter: 0.2 },
      { clock, random: () => 0, onRetry: ({ delayMs }) => seen.push(delayMs) },
    );
    await retry(failing(2));
    expect(clock.waits).toEqual([800, 1_600]);
    expect(seen).toEqual(clock.waits);
  });
});

describe('Backoff', () => {
  it('grows with failures in a row and starts over after reset', () => {
    const backoff = new Backoff({ initialRetryTimeMs: 1_000, maxRetryTimeMs: 30_000, jitter: 0 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([1_000, 2_000, 4_000]);
    for (let failure = 0; failure < 10; failure++) backoff.next();
    expect(backoff.next()).toBe(30_000);
    backoff.reset();
    expect(backoff.next()).toBe(1_000);
  });
});
