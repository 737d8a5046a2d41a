import { STATUS_CODES } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError, errorInfo, errorTable } from './errors.js';

describe('the error table', () => {
  it('has an entry for every code and no other', () => {
    // The compiler already refuses a missing code (`satisfies Record<ErrorCode, ErrorInfo>`); this
    // holds the table to the enum at run time too, e.g. against a code added through a cast.
    expect(Object.keys(errorTable).sort()).toEqual(Object.values(ErrorCode).sort());
  });

  it('gives every code a client- or server-error HTTP status that HTTP defines', () => {
    for (const code of Object.values(ErrorCode)) {
      const status = errorInfo(code).httpStatus;
      expect(Number.isInteger(status) && status >= 400 && status <= 599, `${code}: ${status}`).toBe(true);
      expect(STATUS_CODES[status], `${code}: ${status}`).toBeDefined();
    }
  });

  it('gives every code a remedy: one or more full sentences saying what to do', () => {
    for (const code of Object.values(ErrorCode)) {
      const { remedy } = errorInfo(code);
      expect(remedy, code).toMatch(/^[A-Z`].{15,}[.)`]$/s);
      // A remedy says what to do, not only what went wrong: it is not the code's own doc line.
      expect(remedy.toLowerCase(), code).not.toContain(code.toLowerCase());
    }
  });

  it('keeps the REST statuses the API answered before the table existed', () => {
    // The hand-written map http-api.ts had (every other code answered 500).
    const before: Partial<Record<ErrorCode, number>> = {
      [ErrorCode.SchemaMismatch]: 400,
      [ErrorCode.MalformedEncoding]: 400,
      [ErrorCode.Oversize]: 400,
      [ErrorCode.BadConfig]: 400,
      [ErrorCode.Unauthorized]: 401,
      [ErrorCode.NotRecipient]: 403,
      [ErrorCode.NotApproved]: 403,
      [ErrorCode.MessageNotFound]: 404,
      [ErrorCode.PayloadNotFound]: 404,
      [ErrorCode.TopicNotFound]: 404,
      [ErrorCode.UnknownMethod]: 404,
      [ErrorCode.AdminRejected]: 409,
      [ErrorCode.AmbiguousMessageId]: 409,
      [ErrorCode.MessageRejected]: 422,
      [ErrorCode.Overloaded]: 429,
      [ErrorCode.RateLimited]: 429,
      [ErrorCode.Timeout]: 503,
      [ErrorCode.ConnectionClosed]: 503,
    };
    // Codes added with the table's successors, each with the status it was introduced with.
    const since: Partial<Record<ErrorCode, number>> = {
      [ErrorCode.Forbidden]: 403,
      [ErrorCode.AuditNotApproved]: 409,
      [ErrorCode.NotEnoughHolders]: 409,
      [ErrorCode.EscrowInvalid]: 409,
      [ErrorCode.AuditFailed]: 502,
      [ErrorCode.DatasetNotFound]: 404,
      [ErrorCode.AlertNotFound]: 404,
      [ErrorCode.QueryRejected]: 400,
      [ErrorCode.MinGroupSize]: 422,
      [ErrorCode.DifferenceCheck]: 422,
      [ErrorCode.JobLimitExceeded]: 422,
      [ErrorCode.JobRejected]: 409,
      [ErrorCode.JobFailed]: 502,
      [ErrorCode.UnsupportedProofVersion]: 400,
      [ErrorCode.MessageNotConfirmed]: 409,
    };
    for (const code of Object.values(ErrorCode))
      expect(errorInfo(code).httpStatus, code).toBe(before[code] ?? since[code] ?? 500);
  });

  it("defaults an error's retriable flag to the table's, and lets the thrower say otherwise", () => {
    for (const code of Object.values(ErrorCode)) {
      expect(new LedgerbusError(code, 'm').retriable, code).toBe(errorInfo(code).retriable);
      expect(new LedgerbusError(code, 'm', { retriable: false }).retriable, code).toBe(false);
      expect(new LedgerbusError(code, 'm', { retriable: true }).retriable, code).toBe(true);
    }
    const transient = Object.values(ErrorCode).filter((code) => errorInfo(code).retriable);
    expect(transient.sort()).toEqual(
      [
        'AUDIT_FAILED',
        'AUDIT_NOT_APPROVED',
        'CONNECTION_CLOSED',
        'MESSAGE_NOT_CONFIRMED',
        'NOT_LEADER',
        'OVERLOADED',
        'RATE_LIMITED',
        'REQUEST_EXPIRED',
        'STORAGE_UNAVAILABLE',
        'TIMEOUT',
      ].sort(),
    );
  });

  it('carries typed details only when the thrower gave some', () => {
    const plain = new LedgerbusError(ErrorCode.NotLeader, 'm');
    expect(Object.hasOwn(plain, 'details')).toBe(false);
    expect(new LedgerbusError(ErrorCode.NotLeader, 'm', { details: { leader: 'n2' } }).details).toEqual({
      leader: 'n2',
    });
  });
});
