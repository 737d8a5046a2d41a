import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isLedgerbusError } from '../errors.js';
import { loadNodeConfig } from './config.js';
import { RateLimiter, checkRateLimitConfig, defaultRateLimit } from './rate-limit.js';

/** A clock the test moves by hand, so every refill is exact. */
function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

function takeMany(limiter: RateLimiter, key: string, count: number): number {
  let allowed = 0;
  for (let index = 0; index < count; index++) if (limiter.take(key).allowed) allowed++;
  return allowed;
}

describe('RateLimiter (token bucket per organization)', () => {
  it('allows a full burst at once, then refuses with the time until the next token', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 10, burst: 5 }, clock.now);
    expect(takeMany(limiter, 'org1', 5)).toBe(5);
    expect(limiter.take('org1')).toEqual({ allowed: false, retryAfterMs: 100 });
    clock.advance(40);
    // 0.4 of a token: still 60 ms to wait.
    expect(limiter.take('org1')).toEqual({ allowed: false, retryAfterMs: 60 });
    clock.advance(60);
    expect(limiter.take('org1').allowed).toBe(true);
    expect(limiter.take('org1').allowed).toBe(false);
  });

  it('refills at the configured rate and never beyond the burst', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 100, burst: 20 }, clock.now);
    expect(takeMany(limiter, 'org1', 20)).toBe(20);
    clock.advance(100);
    expect(takeMany(limiter, 'org1', 50)).toBe(10);
    // An hour idle still gives only one burst.
    clock.advance(3_600_000);
    expect(takeMany(limiter, 'org1', 1_000)).toBe(20);
  });

  it('holds a sustained flood to the rate: 10 s at 5,000 attempts/s gets burst + 10 s × rate', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 50, burst: 100 }, clock.now);
    let allowed = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      allowed += takeMany(limiter, 'flooder', 5);
      clock.advance(1);
    }
    // The last millisecond's refill lands after the loop: 100 + 50 × 9.999 s, rounded down.
    expect(allowed).toBe(599);
  });

  it('keeps organizations apart: one emptying its bucket leaves the others whole', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 1, burst: 3 }, clock.now);
    expect(takeMany(limiter, 'org3', 100)).toBe(3);
    expect(takeMany(limiter, 'org1', 3)).toBe(3);
    expect(takeMany(limiter, 'org2', 3)).toBe(3);
  });

  it('charges a cost of several tokens, and refuses it whole when short', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 10, burst: 10 }, clock.now);
    expect(limiter.take('org1', 8).allowed).toBe(true);
    expect(limiter.take('org1', 3)).toEqual({ allowed: false, retryAfterMs: 100 });
    // The refused request took nothing.
    expect(limiter.take('org1', 2).allowed).toBe(true);
  });

  it('does not mint tokens when the clock steps backwards', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 10, burst: 2 }, clock.now);
    expect(takeMany(limiter, 'org1', 2)).toBe(2);
    clock.advance(-60_000);
    expect(limiter.take('org1').allowed).toBe(false);
    // Time has to pass the last reading again before tokens come back.
    clock.advance(60_000 + 100);
    expect(limiter.take('org1').allowed).toBe(true);
  });

  it('admit throws RATE_LIMITED, retriable, with a message that says what to do', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 2, burst: 1 }, clock.now);
    limiter.admit('org1', 'organization org1');
    let caught: unknown;
    try {
      limiter.admit('org1', 'organization org1');
    } catch (error) {
      caught = error;
    }
    expect(isLedgerbusError(caught, 'RATE_LIMITED')).toBe(true);
    expect(caught).toMatchObject({ retriable: true });
    expect((caught as Error).message).toMatch(/organization org1 .*2 requests\/s .*retry after 500 ms/);
  });

  it('holds one key to an overridden quota at once, burst scaled, and lets it go again', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ requestsPerSecond: 1_000, burst: 2_000 }, clock.now);
    expect(takeMany(limiter, 'org3', 10)).toBe(10);
    limiter.override('org3', 20);
    expect(limiter.configFor('org3')).toEqual({ requestsPerSecond: 20, burst: 40 });
    expect(limiter.configFor('org1')).toEqual({ requestsPerSecond: 1_000, burst: 2_000 });
    // The bucket had 1,990 tokens; the tightened one holds at most 40.
    expect(takeMany(limiter, 'org3', 100)).toBe(40);
    expect(takeMany(limiter, 'org1', 100)).toBe(100);
    clock.advance(1_000);
    expect(takeMany(limiter, 'org3', 100)).toBe(20);
    let caught: unknown;
    try {
      limiter.admit('org3', 'organization org3');
    } catch (error) {
      caught = error;
    }
    expect((caught as Error).message).toMatch(/20 requests\/s \(burst 40, tightened after an alert\)/);
    limiter.override('org3', undefined);
    clock.advance(2_000);
    expect(takeMany(limiter, 'org3', 5_000)).toBe(2_000);
    // A quota below one token a second still lets one request through now and then.
    limiter.override('org2', 1);
    expect(limiter.configFor('org2')).toEqual({ requestsPerSecond: 1, burst: 2 });
  });

  it('refuses unusable configurations with BAD_CONFIG', () => {
    for (const bad of [
      { requestsPerSecond: 0, burst: 10 },
      { requestsPerSecond: 10, burst: 0.5 },
      { requestsPerSecond: Number.NaN, burst: 10 },
      { requestsPerSecond: 10, burst: Number.POSITIVE_INFINITY },
    ]) {
      expect(() => checkRateLimitConfig(bad)).toThrow(/rateLimit/);
    }
    expect(() => checkRateLimitConfig(defaultRateLimit)).not.toThrow();
  });
});

describe('node.yaml rateLimit', () => {
  it('is optional, read when present, and a zero rate is BAD_CONFIG naming the field', () => {
    const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-rate-limit-'));
    const write = (name: string, extra: string): string => {
      const path = join(directory, name);
      writeFileSync(path, `nodeId: node1\nkeyFile: k\ndataDirectory: d\ngenesis: g\n${extra}`);
      return path;
    };
    try {
      expect(loadNodeConfig(write('plain.yaml', '')).rateLimit).toBeUndefined();
      expect(
        loadNodeConfig(write('set.yaml', 'rateLimit:\n  requestsPerSecond: 200\n  burst: 400\n')).rateLimit,
      ).toEqual({ requestsPerSecond: 200, burst: 400 });
      expect(() =>
        loadNodeConfig(write('zero.yaml', 'rateLimit:\n  requestsPerSecond: 0\n  burst: 400\n')),
      ).toThrow(/rateLimit/);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
