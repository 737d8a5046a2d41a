/**
 * "Nothing reported stored is lost" for payloads: a real child process puts payloads and reports each
 * key only after put resolved; we SIGKILL it at random instants, then reopen the storage and check that
 * every reported key is there with content hashing to it, and that opening removed every temporary file.
 *
 * The kill schedule comes from a seed printed at the start; set LEDGERBUS_CRASH_SEED to replay it.
 * (Timing still varies from run to run, so a replay reproduces the schedule, not the exact instant.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openFilesystemStorage } from './filesystem.js';
import { digestOf } from './testing/generated.js';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const childScript = join(projectRoot, 'src/connector/storage/testing/put-forever.ts');
const cycles = 10;

/** mulberry32: a tiny seeded PRNG, so a failing schedule can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

type KillPlan =
  | { readonly kind: 'after-reports'; readonly reports: number; readonly delayMs: number }
  | { readonly kind: 'after-delay'; readonly delayMs: number };

function planKill(random: () => number): KillPlan {
  // Killing within a few ms of a report lands in the middle of writing the next payload.
  if (random() < 0.6) {
    return {
      kind: 'after-reports',
      reports: 1 + Math.floor(random() * 40),
      delayMs: Math.floor(random() * 4),
    };
  }
  return { kind: 'after-delay', delayMs: 50 + Math.floor(random() * 1200) };
}

interface CycleResult {
  readonly reported: readonly string[];
  readonly stderr: string;
  readonly signal: NodeJS.Signals | null;
}

function runChild(directory: string, childSeed: number, plan: KillPlan): Promise<CycleResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', childScript, directory, String(childSeed)], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const reported: string[] = [];
    let stderr = '';
    let pending = '';
    let killScheduled = false;
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    const scheduleKill = (delayMs: number): void => {
      if (killScheduled) return;
      killScheduled = true;
      setTimeout(kill, delayMs);
    };
    if (plan.kind === 'after-delay') scheduleKill(plan.delayMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const stored = /^stored ([0-9a-f]{64})$/.exec(line);
        if (stored?.[1] !== undefined) reported.push(stored[1]);
        else if (line !== 'opened') reject(new Error(`unexpected child output: ${line}`));
      }
      if (plan.kind === 'after-reports' && reported.length >= plan.reports) scheduleKill(plan.delayMs);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    // A safety net: a child that never reports enough (e.g. it crashed) must not hang the test.
    const watchdog = setTimeout(kill, 15_000);
    child.on('error', reject);
    // 'close' fires after the process exited AND its stdout was drained, so no report is missed.
    child.on('close', (_exitCode, signal) => {
      clearTimeout(watchdog);
      resolvePromise({ reported, stderr, signal });
    });
  });
}

describe('filesystem storage under SIGKILL', () => {
  const root = mkdtempSync(join(tmpdir(), 'ledgerbus-storage-crash-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it(
    'never loses a payload it reported stored, and leaves no temporary file',
    { timeout: 120_000 },
    async () => {
      const seed = Number(process.env['LEDGERBUS_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 32));
      console.log(`storage crash test seed ${seed} (replay with LEDGERBUS_CRASH_SEED=${seed})`);
      const random = prng(seed);
      const directory = join(root, 'storage');
      const everReported = new Set<string>();
      let killedMidWrite = 0;
      let leftTemporaryFiles = 0;

      for (let cycle = 0; cycle < cycles; cycle += 1) {
        const plan = planKill(random);
        const result = await runChild(directory, Math.floor(random() * 1_000_000), plan);
        const context = `cycle ${cycle} (seed ${seed}, ${JSON.stringify(plan)})`;
        expect(result.signal, `${context}: child ended by itself: ${result.stderr}`).toBe('SIGKILL');
        if (result.reported.length > 0) killedMidWrite += 1;

        // Not asserted (timing decides), but logged: shows kills landing in the middle of a put.
        leftTemporaryFiles += (await readdir(join(directory, 'tmp')).catch(() => [])).length;
        const storage = await openFilesystemStorage(directory);
        try {
          expect(await readdir(join(directory, 'tmp')), context).toEqual([]);
          // This cycle's payloads are read back in full; earlier ones were, so a stat suffices.
          for (const key of result.reported) {
            const found = await digestOf(await storage.get(key));
            expect(found.sha256, `${context}: ${key}`).toBe(key);
            everReported.add(key);
          }
          for (const key of everReported) expect(await storage.stat(key), `${context}: ${key}`).toBeDefined();
        } finally {
          await storage.close();
        }
      }
      console.log(
        `storage crash test: ${cycles} SIGKILLs, ${killedMidWrite} after reports, ` +
          `${leftTemporaryFiles} temporary files left by them, ${everReported.size} payloads checked`,
      );
      expect(killedMidWrite).toBeGreaterThan(2);
    },
  );
});
