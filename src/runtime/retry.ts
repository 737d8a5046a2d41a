/**
 * One retry policy for every loop that tries again (after KafkaJS's `createRetry`): the wait grows
 * from `initialRetryTimeMs` by `multiplier` up to `maxRetryTimeMs`, each wait is spread by a random
 * `jitter` so that many clients that failed together do not retry together, and the retries stop
 * after `retries` of them, past `deadlineMs`, or at the first error that is not retriable.
 *
 * The clock and the randomness are passed in, so a test can run a policy without waiting.
 */
import { isLedgerbusError } from '../errors.js';

/** Where a retry loop reads the time and waits. `sleep` may resolve early (a stopping owner). */
export interface RetryClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The wall clock and real timers. */
export const systemRetryClock: RetryClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface RetryPolicy {
  /** The base wait before the first retry. */
  readonly initialRetryTimeMs: number;
  /** The base wait never grows past this (jitter may still add to it). */
  readonly maxRetryTimeMs: number;
  /** Growth of the base wait from one retry to the next; 1 keeps it constant. Default 2. */
  readonly multiplier?: number;
  /**
   * The randomization factor (KafkaJS calls it `factor`): each wait is drawn uniformly from
   * base × [1 − jitter, 1 + jitter]. 0 makes every wait exactly the base. Default 0.2.
   */
  readonly jitter?: number;
  /** Retries after the first attempt (so `retries + 1` attempts in all); unbounded when absent. */
  readonly retries?: number;
  /** No retry whose wait would end later than this long after the first attempt began. */
  readonly deadlineMs?: number;
}

/** Throws (naming the field) unless `policy` is one a loop can run. */
export function validateRetryPolicy(policy: RetryPolicy): void {
  const check = (ok: boolean, field: string, expected: string): void => {
    if (!ok) throw new RangeError(`retry policy ${field}: expected ${expected}`);
  };
  check(
    Number.isFinite(policy.initialRetryTimeMs) && policy.initialRetryTimeMs >= 0,
    'initialRetryTimeMs',
    'a non-negative number',
  );
  check(
    Number.isFinite(policy.maxRetryTimeMs) && policy.maxRetryTimeMs >= 0,
    'maxRetryTimeMs',
    'a non-negative number',
  );
  check((policy.multiplier ?? 2) >= 1, 'multiplier', 'at least 1');
  const jitter = policy.jitter ?? 0.2;
  check(jitter >= 0 && jitter <= 1, 'jitter', 'between 0 and 1');
  if (policy.retries !== undefined)
    check(Number.isSafeInteger(policy.retries) && policy.retries >= 0, 'retries', 'a non-negative integer');
  if (policy.deadlineMs !== undefined) check(policy.deadlineMs >= 0, 'deadlineMs', 'a non-negative number');
}

/**
 * The wait in ms before retry number `retry` (1 for the first retry): the base wait
 * min(maxRetryTimeMs, initialRetryTimeMs × multiplier^(retry − 1)) spread by the jitter, with
 * `random()` in [0, 1). Whole milliseconds.
 */
export function retryDelayMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const multiplier = policy.multiplier ?? 2;
  const jitter = policy.jitter ?? 0.2;
  // The exponent is capped: past it the base is at its maximum anyway, and the power stays finite.
  const grown = policy.initialRetryTimeMs * multiplier ** Math.min(Math.max(retry - 1, 0), 64);
  const base = Math.min(policy.maxRetryTimeMs, grown);
  return Math.round(base * (1 - jitter + 2 * jitter * random()));
}

export interface RetryOptions {
  readonly clock?: RetryClock;
  /** Uniform in [0, 1); Math.random by default. */
  readonly random?: () => number;
  /** Whether another attempt may help; by default a LedgerbusError marked `retriable`. */
  readonly retriable?: (error: unknown) => boolean;
  /** Checked before each wait: once true, the last error is thrown instead of waiting. */
  readonly stopped?: () => boolean;
  /** Told before each wait (for logs and events). */
  readonly onRetry?: (info: { error: unknown; retry: number; delayMs: number }) => void;
}

/** Runs a task under a policy: resolves with its first success, or rejects with its last error. */
export type Retrier = <T>(task: (attempt: number) => Promise<T>) => Promise<T>;

/**
 * A retrier for `policy`. The task is called with the attempt number (1, 2, …) and tried again,
 * after the policy's wait, while its error is retriable, retries remain, the wait ends within the
 * deadline and the owner has not stopped; otherwise its error is thrown unchanged.
 */
export function createRetry(policy: RetryPolicy, options: RetryOptions = {}): Retrier {
  validateRetryPolicy(policy);
  const clock = options.clock ?? systemRetryClock;
  const random = options.random ?? Math.random;
  const retriable = options.retriable ?? ((error: unknown) => isLedgerbusError(error) && error.retriable);
  return async <T>(task: (attempt: number) => Promise<T>): Promise<T> => {
    const startedAt = clock.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await task(attempt);
      } catch (error) {
        const retry = attempt;
        if (!retriable(error) || options.stopped?.() === true) throw error;
        if (policy.retries !== undefined && retry > policy.retries) throw error;
        const delayMs = retryDelayMs(policy, retry, random);
        if (policy.deadlineMs !== undefined && clock.now() + delayMs > startedAt + policy.deadlineMs)
          throw error;
        options.onRetry?.({ error, retry, delayMs });
        await clock.sleep(delayMs);
      }
    }
  };
}

/**
 * The waits of a loop that never gives up (a consumer polling its partition): `next()` is the wait
 * after one more failure in a row, `reset()` starts over after a success. Retries and deadline of
 * the policy do not apply.
 */
export class Backoff {
  private failures = 0;
  constructor(
    private readonly policy: RetryPolicy,
    private readonly random: () => number = Math.random,
  ) {
    validateRetryPolicy(policy);
  }

  /** The wait after the failure just seen. */
  next(): number {
    this.failures += 1;
    return retryDelayMs(this.policy, this.failures, this.random);
  }

  reset(): void {
    this.failures = 0;
  }
}
