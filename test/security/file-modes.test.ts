/**
 * What ledgerbus leaves on disk is for its owner only (security issue 11, item 13). The CLI runs as
 * a user runs it: `ledgerbus dev` as a real process tree, a message sent and received (so the
 * databases, their -wal/-shm, logs and payload files all exist), then the directory is walked: no
 * file or directory may carry a group or other permission bit. A devnet written by an older version
 * (0644 files, 0755 directories) must resume with its modes fixed, and a connector must refuse a
 * connector.yaml (it holds the API token) that others may read.
 * Ports: nodes 24951..24954, connector APIs 25051..25054 (base 24950: a base of 24940 would put
 * its nodes on the connector API ports of a suite with base 24840).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDevnetLayout } from '../../src/cli/devnet-layout.js';
import { cliNodeArgs } from '../support/processes.js';

// mkdtemp makes `scratch` 0700; the walks below look at what ledgerbus made inside it.
const scratch = mkdtempSync(join(tmpdir(), 'ledgerbus-file-modes-'));
const net = join(scratch, 'net');
const networkFile = join(net, 'network.json');
const basePort = 24950;
let devnet: ChildProcess | undefined;

afterAll(async () => {
  if (devnet !== undefined) await stop(devnet);
  rmSync(scratch, { recursive: true, force: true });
}, 60_000);

function ledgerbus(
  args: readonly string[],
  timeoutMs = 90_000,
): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...cliNodeArgs(), ...args], {
    cwd: scratch,
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function start(): Promise<ChildProcess> {
  // One devnet at a time: a second would fight the first for its ports and outlive the test.
  expect(devnet).toBeUndefined();
  const child = spawn(
    process.execPath,
    [...cliNodeArgs(), 'dev', '--dir', net, '--base-port', String(basePort), '--json'],
    { cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  devnet = child;
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`devnet not ready in time:\n${output}`)), 150_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"status":"ready"')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`devnet exited ${code}:\n${output}`));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  devnet = undefined;
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGINT');
  });
}

/** Every entry under `directory` (not following symlinks), as path relative to `scratch` → mode. */
function walk(directory: string, into = new Map<string, number>()): Map<string, number> {
  for (const name of readdirSync(directory)) {
    const path = join(directory, name);
    const stats = lstatSync(path);
    into.set(relative(scratch, path), stats.mode);
    if (stats.isDirectory()) walk(path, into);
  }
  return into;
}

/** The entries with any group or other permission bit, as "path 0644". */
function notPrivate(entries: Map<string, number>): string[] {
  return [...entries]
    .filter(([, mode]) => (mode & 0o077) !== 0)
    .map(([path, mode]) => `${path} ${(mode & 0o777).toString(8)}`);
}

/** Sends one message org1 → org2 and waits until org2's connector has it (payload stored, consumed). */
function exchangeOneMessage(): void {
  const sent = ledgerbus([
    'send',
    '--network',
    networkFile,
    '--as',
    'org1',
    '--topic',
    'demo',
    '--to',
    'org2',
    '--value',
    // Over 4 KiB, so that its payload is a file on both sides (smaller ones are packed in the
    // connectors' databases), whose mode this test checks too.
    'a guessable secret '.repeat(300),
    '--json',
  ]);
  expect(sent.status, sent.stderr).toBe(0);
  const { id } = JSON.parse(sent.stdout) as { id: string };
  const consumed = ledgerbus([
    'consume',
    '--network',
    networkFile,
    '--as',
    'org2',
    '--topic',
    'demo',
    '--count',
    '1',
    '--out',
    join(scratch, 'inbox'),
    '--timeout',
    '60000',
    '--json',
  ]);
  expect(consumed.status, consumed.stderr).toBe(0);
  expect(consumed.stdout).toContain(id);
}

describe('file modes', () => {
  it('ledgerbus dev creates every file 0600 and every directory 0700, running and stopped', async () => {
    const child = await start();
    let running: Map<string, number>;
    try {
      exchangeOneMessage();
      running = walk(scratch);
    } finally {
      await stop(child);
    }
    const paths = [...running.keys()];
    // The walk must see what the issue is about, or an empty directory would pass.
    for (const expected of [
      /^net\/genesis\.json$/,
      /^net\/network\.json$/,
      /^net\/org1\/node\.yaml$/,
      /^net\/org1\/connector\.yaml$/,
      /^net\/org1\/keys\/node\.key$/,
      /^net\/logs\/node1\.log$/,
      /^net\/logs\/connector-org2\.log$/,
      /^net\/org1\/node-data\/.+\.(sqlite|db)$/,
      /^net\/org2\/connector-data\/.+-wal$/,
      /^net\/org2\/payloads\/objects\/[0-9a-f]{2}\/.+/,
      /^inbox\/.+/,
    ]) {
      expect(
        paths.some((path) => expected.test(path)),
        `no entry matches ${expected}`,
      ).toBe(true);
    }
    expect(notPrivate(running)).toEqual([]);
    // Stopped: whatever the processes wrote on the way out.
    expect(notPrivate(walk(scratch))).toEqual([]);
  }, 300_000);

  it('resumes a devnet an older version left at 0644/0755, and fixes the modes', async () => {
    for (const [path, mode] of walk(scratch)) {
      if ((mode & 0o170000) === 0o040000) chmodSync(join(scratch, path), 0o755);
      else if ((mode & 0o170000) === 0o100000) chmodSync(join(scratch, path), 0o644);
    }
    chmodSync(net, 0o755);
    expect(notPrivate(walk(net)).length).toBeGreaterThan(20);
    const child = await start();
    try {
      expect(notPrivate(walk(net))).toEqual([]);
    } finally {
      await stop(child);
    }
  }, 300_000);

  it('refuses to start a connector whose connector.yaml others can read, saying what to run', () => {
    // A layout of its own, so that connector.yaml is the one thing to refuse, whatever ran before.
    const layout = ensureDevnetLayout({ directory: join(scratch, 'layout-only'), basePort });
    const config = layout.connectorConfigs[0]!;
    chmodSync(config, 0o644);
    // A connector that does not refuse runs until killed: 20 s is far more than a refusal takes.
    const refused = ledgerbus(['connector', '--config', config], 20_000);
    expect(refused.status, refused.stderr).toBe(2);
    expect(refused.stderr).toContain('KEY_FILE_PERMISSIONS');
    expect(refused.stderr).toContain('the API token');
    expect(refused.stderr).toContain(`chmod 600 ${config}`);
  }, 120_000);
});
