/**
 * The Jazzer.js compatibility loader as the fuzz script uses it: a real `node --import` of
 * jazzer-compat.ts, with TMPDIR pointed at a scratch folder so the test owns the directory the patched
 * addon goes to. It must load the addon it wrote itself, and refuse a file it did not write or a
 * directory another user could write to. Skipped where the shipped addon loads as is (glibc >= 2.38,
 * or not linux-x64): there the loader writes and loads nothing.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const compat = pathToFileURL(join(import.meta.dirname, 'jazzer-compat.ts')).href;
const tsxLoader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const scratch = mkdtempSync(join(tmpdir(), 'ledgerbus-jazzer-compat-test-'));
const directory = join(scratch, `ledgerbus-jazzer-compat-${process.getuid?.() ?? 0}`);
// A native library that loads fine here, just not the one the loader made.
const otherAddon = join(
  dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json')),
  'build',
  'Release',
  'better_sqlite3.node',
);

/** Starts Node as the fuzz script does and has Jazzer.js's own code load its addon. */
function loadFuzzer(): { status: number; stderr: string } {
  const result = spawnSync(
    process.execPath,
    ['--import', tsxLoader, '--import', compat, '-e', "require('@jazzer.js/fuzzer')"],
    { cwd: root, encoding: 'utf8', env: { ...process.env, TMPDIR: scratch } },
  );
  return { status: result.status ?? -1, stderr: result.stderr };
}

function patchedFile(): string {
  const names = readdirSync(directory).filter((name) => name.endsWith('.node'));
  expect(names).toHaveLength(1);
  return join(directory, names[0]!);
}

/** Whether the shipped addon fails to load here for want of a newer glibc, so the loader must patch. */
function needsPatching(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  const prebuild = join(
    dirname(createRequire(import.meta.url).resolve('@jazzer.js/fuzzer')),
    '..',
    'prebuilds',
    'fuzzer-linux-x64.node',
  );
  const shipped = spawnSync(
    process.execPath,
    ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(prebuild)})`],
    { encoding: 'utf8' },
  );
  return shipped.status !== 0 && /version `GLIBC(XX)?_[\d.]+' not found/.test(shipped.stderr);
}

const patching = needsPatching();
beforeAll(() => {
  const first = loadFuzzer();
  expect(first.status, first.stderr).toBe(0);
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('jazzer-compat loader', () => {
  it('writes the patched addon to a 0700 directory as a 0600 file, and loads it again', (context) => {
    if (!patching) context.skip();
    expect(statSync(directory).mode & 0o777).toBe(0o700);
    expect(statSync(patchedFile()).mode & 0o777).toBe(0o600);
    expect(loadFuzzer().status).toBe(0);
  });

  it('refuses a file at its path that is not the addon it patched', (context) => {
    if (!patching) context.skip();
    const path = patchedFile();
    const good = readFileSync(path);
    writeFileSync(path, readFileSync(otherAddon));
    try {
      const planted = loadFuzzer();
      expect(planted.status).not.toBe(0);
      expect(planted.stderr).toContain(`refusing to load ${path}`);
      expect(planted.stderr).toContain('sha256');
    } finally {
      writeFileSync(path, good);
    }
    expect(loadFuzzer().status).toBe(0);
  });

  it('refuses a directory group or others may write to', (context) => {
    if (!patching) context.skip();
    for (const mode of [0o777, 0o720]) {
      chmodSync(directory, mode);
      try {
        const loose = loadFuzzer();
        expect(loose.status).not.toBe(0);
        expect(loose.stderr).toContain('group or others may write to it');
      } finally {
        chmodSync(directory, 0o700);
      }
    }
    expect(loadFuzzer().status).toBe(0);
  });

  it('refuses a symlink in place of its directory', (context) => {
    if (!patching) context.skip();
    const elsewhere = `${directory}-elsewhere`;
    renameSync(directory, elsewhere);
    symlinkSync(elsewhere, directory);
    try {
      const linked = loadFuzzer();
      expect(linked.status).not.toBe(0);
      expect(linked.stderr).toContain('it is not a directory');
    } finally {
      rmSync(directory);
      renameSync(elsewhere, directory);
    }
  });

  // Only root can give a directory to another user.
  it.skipIf(process.getuid?.() !== 0)('refuses a directory owned by another user', (context) => {
    if (!patching) context.skip();
    chownSync(directory, 65534, 65534);
    try {
      const foreign = loadFuzzer();
      expect(foreign.status).not.toBe(0);
      expect(foreign.stderr).toContain('belongs to uid 65534');
    } finally {
      chownSync(directory, 0, 0);
    }
    expect(loadFuzzer().status).toBe(0);
  });
});
