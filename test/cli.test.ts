// The CLI as a user runs it: a real process, real key files, exit codes and --json output.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const entry = join(root, 'src', 'cli', 'run.ts');
// The processes run in a scratch folder, so name the TypeScript loader by path.
const tsxLoader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ledgerbus(...args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', tsxLoader, entry, ...args], {
    cwd: dir,
    encoding: 'utf8',
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

describe('ledgerbus CLI', () => {
  it('generates keys with mode 0600, issues and verifies a certificate, and refuses a foreign one', () => {
    const org = JSON.parse(ledgerbus('keys', 'generate', '--out', 'org.key', '--json').stdout) as {
      publicKey: string;
    };
    const node = JSON.parse(ledgerbus('keys', 'generate', '--out', 'node.key', '--json').stdout) as {
      publicKey: string;
    };
    expect(statSync(join(dir, 'org.key')).mode & 0o777).toBe(0o600);
    const issued = ledgerbus(
      'cert',
      'issue',
      '--org-key',
      'org.key',
      '--org',
      'org1',
      '--subject',
      'node1',
      '--role',
      'node',
      '--public-key',
      node.publicKey,
      '--out',
      'node.cert',
      '--json',
    );
    expect(issued.status).toBe(0);
    const valid = ledgerbus('cert', 'verify', 'node.cert', '--org-public-key', org.publicKey, '--json');
    expect(valid.status).toBe(0);
    expect(JSON.parse(valid.stdout)).toMatchObject({ valid: true, subjectId: 'node1', role: 'node' });
    const foreign = ledgerbus('cert', 'verify', 'node.cert', '--org-public-key', node.publicKey, '--json');
    expect(foreign.status).toBe(1);
    expect(JSON.parse(foreign.stdout)).toMatchObject({ valid: false, code: 'BAD_CERTIFICATE' });
  });

  it('refuses a key file others can read, and a corrupt one, with a code and what to do', () => {
    ledgerbus('keys', 'generate', '--out', 'loose.key');
    chmodSync(join(dir, 'loose.key'), 0o644);
    const loose = ledgerbus('keys', 'public', 'loose.key');
    expect(loose.status).toBe(2);
    expect(loose.stderr).toContain('KEY_FILE_PERMISSIONS');
    expect(loose.stderr).toContain('chmod 600');
    writeFileSync(join(dir, 'corrupt.key'), 'not a key', { mode: 0o600 });
    const corrupt = ledgerbus('keys', 'public', 'corrupt.key');
    expect(corrupt.status).toBe(2);
    expect(corrupt.stderr).toContain('KEY_FILE_CORRUPT');
  });

  it('has --help on every command', () => {
    for (const command of [
      [],
      ['keys'],
      ['keys', 'generate'],
      ['cert', 'issue'],
      ['cert', 'verify'],
      ['sim'],
    ]) {
      const help = ledgerbus(...command, '--help');
      expect(help.status).toBe(0);
      expect(help.stdout).toContain('Usage: ledgerbus');
    }
  });

  it('runs simulator seeds and ends with the JSON summary line', () => {
    const out = execFileSync(process.execPath, ['--import', tsxLoader, entry, 'sim', '--seeds', '2'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const last = JSON.parse(out.trim().split('\n').at(-1)!) as { seeds: number; violations: number };
    expect(last).toMatchObject({ seeds: 2, violations: 0 });
  });
});
