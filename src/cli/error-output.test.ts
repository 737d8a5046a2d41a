import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError, errorInfo } from '../errors.js';
import { errorText, invalidVerdict, remedyOf } from './error-output.js';

describe('CLI error output', () => {
  it('prints the code, the message, and the remedy from the error table for every code', () => {
    for (const code of Object.values(ErrorCode)) {
      const text = errorText(new LedgerbusError(code, 'it failed'));
      expect(text).toBe(`error ${code}: it failed\n  what to do: ${errorInfo(code).remedy}\n`);
    }
  });

  it('keeps a hint after the message, before the remedy', () => {
    const text = errorText(new LedgerbusError(ErrorCode.ConnectionClosed, 'refused'), ' (is it running?)');
    expect(text.split('\n')).toEqual([
      'error CONNECTION_CLOSED: refused (is it running?)',
      `  what to do: ${errorInfo(ErrorCode.ConnectionClosed).remedy}`,
      '',
    ]);
  });

  it('adds the remedy to a --json verdict, and to its text form', () => {
    expect(JSON.parse(invalidVerdict(true, 'BAD_PROOF', 'root differs'))).toEqual({
      valid: false,
      code: 'BAD_PROOF',
      reason: 'root differs',
      remedy: errorInfo(ErrorCode.BadProof).remedy,
    });
    expect(invalidVerdict(false, 'BAD_PROOF', 'root differs')).toBe(
      `INVALID BAD_PROOF: root differs\n  what to do: ${errorInfo(ErrorCode.BadProof).remedy}\n`,
    );
  });

  it('prints no remedy for a code it does not know (a peer newer than this CLI)', () => {
    expect(remedyOf('SOMETHING_NEW')).toBeUndefined();
    expect(JSON.parse(invalidVerdict(true, 'SOMETHING_NEW', 'r'))).toEqual({
      valid: false,
      code: 'SOMETHING_NEW',
      reason: 'r',
    });
  });
});
