import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hexKey } from './quorum.js';

function reference(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

describe('hexKey', () => {
  it('is lowercase hex of every byte, for any length (across its chunk boundary too)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 9000 }), (bytes) => hexKey(bytes) === reference(bytes)),
      { numRuns: 200 },
    );
    expect(hexKey(new Uint8Array(0))).toBe('');
    expect(hexKey(Uint8Array.of(0, 15, 16, 255))).toBe('000f10ff');
  });
});
