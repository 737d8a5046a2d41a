import { validateHeaderValue } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkContentType, isMediaType, servableContentType } from './media-type.js';

describe('media types a connector publishes', () => {
  it.each([
    'application/octet-stream',
    'text/plain; charset=utf-8',
    'text/plain;charset=UTF-8',
    'multipart/form-data; boundary="a b;c\\"d"',
    'application/vnd.api+json',
    'IMAGE/PNG',
    'text/plain;',
  ])('accepts %j', (value) => {
    expect(isMediaType(value)).toBe(true);
    expect(servableContentType(value)).toBe(value);
  });

  it.each([
    '',
    'text/html\r\nSet-Cookie: a=b',
    'text/plain\n',
    'text/plain\u0000',
    'text/plain\u007f',
    'text/plain;\tcharset=utf-8',
    'html',
    'text/',
    '/plain',
    'text/plain; charset',
    'text/plain; charset="open',
    'tëxt/plain',
    ' text/plain',
    'text/plain ',
    'text/plain; a="é"',
    `application/${'x'.repeat(130)}`,
  ])('refuses %j with SCHEMA_MISMATCH naming the field', (value) => {
    expect(isMediaType(value)).toBe(false);
    expect(() => checkContentType(value, 'messages[3].contentType')).toThrow(/messages\[3\]\.contentType/);
    expect(servableContentType(value)).toBe('application/octet-stream');
  });

  it('never accepts a value Node would refuse as a header value (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 60 }),
        fc.string({ maxLength: 20 }),
        (noise, tail) => {
          for (const candidate of [
            noise,
            `text/plain${noise}`,
            `text/plain; a=${tail}`,
            `a/b; c="${noise}"`,
          ]) {
            if (isMediaType(candidate))
              expect(() => validateHeaderValue('content-type', candidate)).not.toThrow();
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
