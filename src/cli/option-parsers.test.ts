import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { byteSizeOption, integerOption } from './option-parsers.js';

function refusal(parse: (value: string) => number, value: string): string {
  try {
    return `accepted ${parse(value)}`;
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    return error.message;
  }
}

describe('option parsers', () => {
  it('reads sizes as integers or whole binary units, in range', () => {
    const parse = byteSizeOption('--chunk-bytes', 4096, 8 * 1024 * 1024);
    expect(parse('4096')).toBe(4096);
    expect(parse('64KiB')).toBe(65536);
    expect(parse('1MiB')).toBe(1024 * 1024);
    expect(parse('8mib')).toBe(8 * 1024 * 1024);
    expect(parse(' 2 MiB ')).toBe(2 * 1024 * 1024);
    for (const bad of ['4095', '9MiB', '1MB', '1.5MiB', '-1', '', 'MiB', '1 MiB extra', '0x1000']) {
      expect(refusal(parse, bad), bad).toBe(
        '--chunk-bytes must be a size from 4096 to 8388608 bytes: an integer, or a whole number of KiB, MiB, GiB or TiB (64KiB, 1MiB)',
      );
    }
    expect(byteSizeOption('--message-bytes-max', 1)('64GiB')).toBe(64 * 1024 ** 3);
    expect(refusal(byteSizeOption('--message-bytes-max', 1), '0')).toContain('a size of at least 1 byte:');
  });

  it('reads integers in range, naming the flag', () => {
    expect(integerOption('--shares', 1, 16)('16')).toBe(16);
    expect(refusal(integerOption('--shares', 1, 16), '17')).toBe('--shares must be an integer from 1 to 16');
  });
});
