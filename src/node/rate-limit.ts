/**
 * Per-organization request quotas on a node's client-facing service: a token bucket per
 * organization, like Kafka's per-client quotas (`request_percentage`, `producer_byte_rate`), so that
 * one organization flooding a node (DESIGN §10, BlockTorrent's "floods the network with invalid
 * transactions") slows only itself. Every connector of an organization draws from the same bucket,
 * so opening more connections buys nothing.
 *
 * Pure: the clock is injected, so tests step time by hand and the bucket arithmetic is exact.
 */
import { ErrorCode, LedgerbusError } from '../errors.js';

export interface RateLimitConfig {
  /** Sustained requests per second one organization may make to this node. */
  readonly requestsPerSecond: number;
  /** Requests it may make at once after being idle (the bucket's size). */
  readonly burst: number;
}

/**
 * Far above what an honest connector needs — it signs one publish per batch of up to 64 messages and
 * long-polls — yet a flooding organization is held to about a tenth of one core's signature checks.
 */
export const defaultRateLimit: RateLimitConfig = { requestsPerSecond: 1_000, burst: 2_000 };

export type RateDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  /** Clock reading (ms) at which `tokens` was last brought up to date. */
  updatedAt: number;
}

export function checkRateLimitConfig(config: RateLimitConfig): void {
  const positive = (value: number): boolean => Number.isFinite(value) && value > 0;
  if (!positive(config.requestsPerSecond) || !positive(config.burst) || config.burst < 1) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `rateLimit: requestsPerSecond must be positive and burst at least 1, got ${config.requestsPerSecond} and ${config.burst}`,
    );
  }
}

export class RateLimiter {
  /** One per key: callers key by approved organization (or a fixed key), never by a peer's choice. */
  private readonly buckets = new Map<string, Bucket>();
  /**
   * Keys held to a tighter quota for a while (an alert's rate-limit response, registry/alerts.ts):
   * one per key throttled now, removed when its quota is lifted.
   */
  private readonly overrides = new Map<string, RateLimitConfig>();

  constructor(
    readonly config: RateLimitConfig,
    private readonly now: () => number,
  ) {
    checkRateLimitConfig(config);
  }

  /**
   * Holds `key` to `requestsPerSecond` (its burst scaled by the same factor as the rate, at least 1),
   * or with undefined gives it the configured quota again. A tighter quota takes effect at once: the
   * bucket never holds more than the new burst.
   */
  override(key: string, requestsPerSecond: number | undefined): void {
    if (requestsPerSecond === undefined) {
      this.overrides.delete(key);
      return;
    }
    const burst = Math.max(
      1,
      Math.round((this.config.burst * requestsPerSecond) / this.config.requestsPerSecond),
    );
    const config = { requestsPerSecond, burst };
    checkRateLimitConfig(config);
    this.overrides.set(key, config);
  }

  /** The quota `key` is held to now. */
  configFor(key: string): RateLimitConfig {
    return this.overrides.get(key) ?? this.config;
  }

  /** Takes `cost` tokens from `key`'s bucket if it holds them; otherwise takes nothing. */
  take(key: string, cost = 1): RateDecision {
    const now = this.now();
    const config = this.configFor(key);
    const bucket = this.buckets.get(key) ?? { tokens: config.burst, updatedAt: now };
    // A clock that steps backwards (NTP) must not mint tokens nor lock the bucket: it just waits.
    const elapsedMs = Math.max(0, now - bucket.updatedAt);
    bucket.tokens = Math.min(config.burst, bucket.tokens + (elapsedMs * config.requestsPerSecond) / 1000);
    bucket.updatedAt = Math.max(now, bucket.updatedAt);
    this.buckets.set(key, bucket);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return { allowed: true };
    }
    const retryAfterMs = Math.ceil(((cost - bucket.tokens) * 1000) / config.requestsPerSecond);
    return { allowed: false, retryAfterMs };
  }

  /** Like `take`, but a refusal is the RATE_LIMITED error the caller sends back. */
  admit(key: string, what: string, cost = 1): void {
    const decision = this.take(key, cost);
    if (decision.allowed) return;
    const config = this.configFor(key);
    const tightened = this.overrides.has(key) ? ', tightened after an alert' : '';
    throw new LedgerbusError(
      ErrorCode.RateLimited,
      `${what} is over its quota of ${config.requestsPerSecond} requests/s (burst ${config.burst}${tightened}); ` +
        `retry after ${decision.retryAfterMs} ms, backing off, or spread requests out (batch messages per publish)`,
      { retriable: true },
    );
  }
}
