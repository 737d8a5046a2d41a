import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../errors.js';
import {
  checkApplicationMessage,
  checkParts,
  isPartMessageId,
  newPartSet,
  partHeaderValues,
  partHeaders,
  partMessageId,
  partRoleOf,
  partSetOfStorageKey,
  partsHeaderValues,
  partsStorageKey,
} from './parts.js';

function failure(run: () => unknown): { code: string; retriable: boolean; message: string } | 'none' {
  try {
    run();
    return 'none';
  } catch (error) {
    expect(error).toBeInstanceOf(LedgerbusError);
    const { code, retriable, message } = error as LedgerbusError;
    return { code, retriable, message };
  }
}

const ascii = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'ascii'));

describe('the parts convention', () => {
  const set = newPartSet();
  const roots = [randomBytes(32), randomBytes(32), randomBytes(32)].map((root) => new Uint8Array(root));

  it('reads back the roles it writes, and takes a message without its headers as ordinary', () => {
    expect(partRoleOf(partHeaderValues(set, 2), 'm')).toEqual({ kind: 'part', set, index: 2 });
    const binding = partsHeaderValues({ app: ascii('x') }, set, roots);
    expect(partRoleOf(binding, 'm')).toMatchObject({ kind: 'parts', set, count: 3 });
    expect(partRoleOf({ app: ascii('x') }, 'm')).toBeUndefined();
    expect(isPartMessageId(partMessageId(set, 12))).toBe(true);
    expect(partSetOfStorageKey(partsStorageKey(set))).toBe(set);
    expect(partSetOfStorageKey('ab'.repeat(32))).toBeUndefined();
  });

  it('refuses malformed reserved headers as PAYLOAD_CORRUPT, not retriable', () => {
    const malformed: Record<string, Record<string, Uint8Array>>[] = [
      { 'short set': { [partHeaders.set]: ascii('abc'), [partHeaders.index]: ascii('0') } },
      { 'index with a sign': { [partHeaders.set]: ascii(set), [partHeaders.index]: ascii('+1') } },
      { 'index with a leading zero': { [partHeaders.set]: ascii(set), [partHeaders.index]: ascii('01') } },
      {
        'a part that binds parts': { ...partsHeaderValues({}, set, roots), [partHeaders.index]: ascii('0') },
      },
      { 'no root': { [partHeaders.set]: ascii(set), [partHeaders.count]: ascii('3') } },
      {
        'a short root': {
          [partHeaders.set]: ascii(set),
          [partHeaders.count]: ascii('3'),
          [partHeaders.root]: new Uint8Array(31),
        },
      },
      { 'no parts': { ...partsHeaderValues({}, set, roots), [partHeaders.count]: ascii('0') } },
      { 'an index without a set': { [partHeaders.index]: ascii('0') } },
    ];
    for (const entry of malformed) {
      const [name, headers] = Object.entries(entry)[0]!;
      const outcome = failure(() => partRoleOf(headers, 'm1'));
      expect(outcome, name).toMatchObject({ code: ErrorCode.PayloadCorrupt, retriable: false });
    }
  });

  it('accepts exactly the parts a message binds, in order', () => {
    const role = partRoleOf(partsHeaderValues({}, set, roots), 'm');
    if (role?.kind !== 'parts') throw new Error('expected a binding message');
    expect(failure(() => checkParts(role, roots, 'm'))).toBe('none');
    expect(failure(() => checkParts(role, [...roots].reverse(), 'm'))).toMatchObject({
      code: ErrorCode.PayloadCorrupt,
      message: expect.stringContaining('do not match') as string,
    });
    expect(failure(() => checkParts(role, roots.slice(0, 2), 'm'))).toMatchObject({
      code: ErrorCode.PayloadCorrupt,
      message: expect.stringContaining('2 of its 3 parts') as string,
    });
  });

  it("refuses an application's part-like id and reserved header names, and nothing else", () => {
    expect(failure(() => checkApplicationMessage(partMessageId(set, 0), {}, 'm'))).toMatchObject({
      code: ErrorCode.SchemaMismatch,
    });
    expect(failure(() => checkApplicationMessage('m', { [partHeaders.set]: ascii(set) }, 'm'))).toMatchObject(
      {
        code: ErrorCode.SchemaMismatch,
      },
    );
    expect(
      failure(() => checkApplicationMessage(`part-${set}`, { 'x-ledgerbus.part': ascii('1') }, 'm')),
    ).toBe('none');
  });
});
