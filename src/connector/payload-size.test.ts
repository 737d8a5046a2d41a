import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { ciphertextBytesFor, messageTooLarge, plaintextBytesMaxFor } from './payload-size.js';

describe('payload sizes under a policy', () => {
  it('counts one 16-byte tag per chunk, and one for an empty payload', () => {
    expect(ciphertextBytesFor(0, 64)).toBe(16);
    expect(ciphertextBytesFor(64, 64)).toBe(80);
    expect(ciphertextBytesFor(65, 64)).toBe(97);
    expect(ciphertextBytesFor(1024 * 1024)).toBe(1024 * 1024 + 16);
  });

  it('refuses a message too large as MESSAGE_REJECTED with its reason code in details.reason', () => {
    expect(messageTooLarge('m1', 'demo', 1024, '2048 bytes')).toMatchObject({
      code: ErrorCode.MessageRejected,
      details: { reason: 'MESSAGE_TOO_LARGE' },
    });
  });

  it('finds the largest plaintext that fits', () => {
    expect(plaintextBytesMaxFor(1024 * 1024)).toBe(1024 * 1024 - 16);
    expect(plaintextBytesMaxFor(16, 64)).toBe(0);
    expect(plaintextBytesMaxFor(15, 64)).toBe(-1);
    expect(plaintextBytesMaxFor(80, 64)).toBe(64);
    expect(plaintextBytesMaxFor(96, 64)).toBe(64);
    expect(plaintextBytesMaxFor(97, 64)).toBe(65);
  });

  it('is the inverse of ciphertextBytesFor at every bound (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 16, max: 4096 }),
        (bound, chunk) => {
          const largest = plaintextBytesMaxFor(bound, chunk);
          if (largest >= 0) expect(ciphertextBytesFor(largest, chunk)).toBeLessThanOrEqual(bound);
          expect(ciphertextBytesFor(largest + 1, chunk)).toBeGreaterThan(bound);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
