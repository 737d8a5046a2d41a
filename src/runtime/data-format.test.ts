import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isLedgerbusError } from '../errors.js';
import { checkDataDirectory, claimDataDirectory, dataFormat, dataFormatMarker } from './data-format.js';

const roots: string[] = [];
function scratch(): string {
  const root = mkdtempSync(join(tmpdir(), 'ledgerbus-data-format-'));
  roots.push(root);
  return root;
}
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function codeOf(action: () => unknown): string {
  try {
    action();
    return 'OK';
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
}

const node = (directory: string, network = 'net-a') => ({ directory, role: 'node' as const, network });

describe('the data directory format marker', () => {
  it('claims a new directory with a marker naming format, role and network, then accepts it again', () => {
    const directory = join(scratch(), 'node-data');
    expect(checkDataDirectory(node(directory))).toBe(false);
    claimDataDirectory(node(directory));
    expect(JSON.parse(readFileSync(join(directory, dataFormatMarker), 'utf8'))).toEqual({
      format: dataFormat,
      role: 'node',
      network: 'net-a',
    });
    expect(statSync(directory).mode & 0o777).toBe(0o700);
    expect(readdirSync(directory)).toEqual([dataFormatMarker]);
    expect(checkDataDirectory(node(directory))).toBe(true);
    claimDataDirectory(node(directory));
  });

  it('refuses data written before markers (format 1: signatures without their network), writing nothing', () => {
    for (const entry of ['raft', 'partitions', 'global']) {
      const directory = scratch();
      mkdirSync(join(directory, entry));
      expect(codeOf(() => claimDataDirectory(node(directory)))).toBe('DATA_FORMAT_UNSUPPORTED');
      expect(readdirSync(directory)).toEqual([entry]);
    }
    const connector = scratch();
    writeFileSync(join(connector, 'connector.sqlite'), '');
    expect(
      codeOf(() => claimDataDirectory({ directory: connector, role: 'connector', network: 'net-a' })),
    ).toBe('DATA_FORMAT_UNSUPPORTED');
  });

  it('says what to do in the refusal', () => {
    const directory = scratch();
    mkdirSync(join(directory, 'raft'));
    expect(() => claimDataDirectory(node(directory))).toThrow(/older ledgerbus.*empty data directory/);
  });

  it('ignores entries that are not its data: a payload folder, a mount point’s lost+found', () => {
    const directory = scratch();
    mkdirSync(join(directory, 'payloads'));
    mkdirSync(join(directory, 'lost+found'));
    claimDataDirectory({ directory, role: 'connector', network: 'net-a' });
    expect(checkDataDirectory({ directory, role: 'connector', network: 'net-a' })).toBe(true);
  });

  it('refuses another format, another network and another role', () => {
    const directory = scratch();
    claimDataDirectory(node(directory));
    expect(codeOf(() => checkDataDirectory(node(directory, 'net-b')))).toBe('WRONG_NETWORK');
    expect(codeOf(() => checkDataDirectory({ directory, role: 'connector', network: 'net-a' }))).toBe(
      'BAD_CONFIG',
    );
    writeFileSync(
      join(directory, dataFormatMarker),
      JSON.stringify({ format: 'ledgerbus-data/1', role: 'node', network: 'net-a' }),
    );
    expect(codeOf(() => checkDataDirectory(node(directory)))).toBe('DATA_FORMAT_UNSUPPORTED');
  });

  it('reports an unreadable marker as STORAGE_CORRUPT', () => {
    const directory = scratch();
    writeFileSync(join(directory, dataFormatMarker), '{"format":');
    expect(codeOf(() => checkDataDirectory(node(directory)))).toBe('STORAGE_CORRUPT');
    writeFileSync(join(directory, dataFormatMarker), '{"format":"ledgerbus-data/2"}');
    expect(codeOf(() => checkDataDirectory(node(directory)))).toBe('STORAGE_CORRUPT');
  });
});
