import { ErrorCode, LedgerbusError } from '../../errors.js';

// Keys become file names and SQL parameters: accepting only this exact shape rules out path traversal
// ("../"), case-duplicates of one object and anything a database might interpret.
const keyPattern = /^[0-9a-f]{64}$/;

export function isValidKey(key: unknown): key is string {
  return typeof key === 'string' && keyPattern.test(key);
}

export function checkKey(key: unknown, what = 'payload key'): string {
  if (!isValidKey(key)) {
    throw new LedgerbusError(ErrorCode.InvalidKey, `${what} must be 64 lowercase hex characters`);
  }
  return key;
}

export function checkSizeMax(sizeMax: number | undefined): number {
  if (sizeMax === undefined) return Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(sizeMax) || sizeMax < 0) {
    throw new LedgerbusError(ErrorCode.BadConfig, `sizeMax must be a non-negative integer, got ${sizeMax}`);
  }
  return sizeMax;
}

/** The start offset of a range get, checked against the stored size. */
export function checkRangeStart(range: { start: number } | undefined, size: number): number {
  const start = range?.start ?? 0;
  if (!Number.isSafeInteger(start) || start < 0 || start > size) {
    throw new LedgerbusError(
      ErrorCode.InvalidRange,
      `range start ${start} is outside the object (size ${size})`,
    );
  }
  return start;
}
