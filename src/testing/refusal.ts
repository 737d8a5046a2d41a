/**
 * Test helper: awaits something that must fail with a LedgerbusError and returns that error, so a
 * test can assert its code, retriable flag and details. Fails the test if it succeeds or throws
 * anything else. Takes a promise or a function (whose synchronous throw counts as the failure).
 */
import { expect } from 'vitest';
import { LedgerbusError } from '../errors.js';

export async function refusal(attempt: Promise<unknown> | (() => unknown)): Promise<LedgerbusError> {
  const error = await Promise.resolve()
    .then(() => (typeof attempt === 'function' ? attempt() : attempt))
    .then(
      () => undefined,
      (caught: unknown) => caught,
    );
  expect(error).toBeInstanceOf(LedgerbusError);
  return error as LedgerbusError;
}
