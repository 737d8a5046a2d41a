import { describe, expect, it } from 'vitest';
import { LogThrottle } from './log-throttle.js';

describe('LogThrottle', () => {
  it('lets one line per key through per interval and reports how many it held back', () => {
    let now = 0;
    const throttle = new LogThrottle(10_000, () => now);
    expect(throttle.admit('a')).toBe(0);
    expect(throttle.admit('a')).toBeUndefined();
    expect(throttle.admit('a')).toBeUndefined();
    expect(throttle.admit('b')).toBe(0);
    now = 9_999;
    expect(throttle.admit('a')).toBeUndefined();
    now = 10_000;
    expect(throttle.admit('a')).toBe(3);
    expect(throttle.admit('a')).toBeUndefined();
  });

  it('remembers a bounded number of keys, forgetting the oldest', () => {
    const throttle = new LogThrottle(10_000, () => 0, 2);
    throttle.admit('a');
    throttle.admit('b');
    throttle.admit('c');
    expect(throttle.admit('a')).toBe(0);
    expect(throttle.admit('c')).toBeUndefined();
  });
});
