/**
 * Test helper: the code of the LedgerbusError `action` throws, or 'VALID' when it returns; anything
 * else it throws fails the test. For tables of refusals where each case is one expectation.
 */
import { isLedgerbusError } from '../errors.js';

export function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
  return 'VALID';
}
