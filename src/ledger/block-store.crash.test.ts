/**
 * "Nothing reported stored is lost" (DESIGN.md §6): a real child process appends certified blocks
 * and reports each one only after append returned; we SIGKILL it at random moments — before it has
 * even opened the store, right after a report (mid-write of the next block) and after random delays —
 * then reopen the store and check that every reported height is there and the chain still verifies.
 *
 * The kill schedule comes from a seed printed at the start; set LEDGERBUS_CRASH_SEED to replay it.
 * (Timing still varies from run to run, so a replay reproduces the schedule, not the exact instant.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bytesEqual } from '../crypto/index.js';
import { makeGroup } from '../../test/ledger/fixtures.js';
import { blockHash, verifyChain } from './block.js';
import type { BlockHeader } from './block.js';
import { BlockStore, rangeBlocksMax } from './block-store.js';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const childScript = join(projectRoot, 'test/ledger/append-forever.ts');
const partitionId = 'crash/0';
const group = makeGroup({ n: 4, partitionId });
const cyclesMin = 30;
const testBudgetMs = 45_000;

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
  | { readonly kind: 'soon-after-start'; readonly delayMs: number }
  | { readonly kind: 'after-reports'; readonly reports: number; readonly delayMs: number }
  | { readonly kind: 'after-delay'; readonly delayMs: number };

function planKill(random: () => number): KillPlan {
  const roll = random();
  if (roll < 0.2) return { kind: 'soon-after-start', delayMs: Math.floor(random() * 80) };
  if (roll < 0.7) {
    // Killing within a few ms of a report lands in the middle of writing the next block.
    return {
      kind: 'after-reports',
      reports: 1 + Math.floor(random() * 60),
      delayMs: Math.floor(random() * 4),
    };
  }
  return { kind: 'after-delay', delayMs: 100 + Math.floor(random() * 1400) };
}

interface CycleResult {
  readonly reported: readonly number[];
  readonly opened: boolean;
  readonly stderr: string;
  readonly signal: NodeJS.Signals | null;
  readonly exitCode: number | null;
}

function runChild(databasePath: string, plan: KillPlan): Promise<CycleResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', childScript, databasePath, partitionId], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const reported: number[] = [];
    let opened = false;
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
    if (plan.kind !== 'after-reports') scheduleKill(plan.delayMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const stored = /^stored (\d+)$/.exec(line);
        if (stored !== null) reported.push(Number(stored[1]));
        else if (line.startsWith('opened ')) opened = true;
        else reject(new Error(`unexpected child output: ${line}`));
      }
      if (plan.kind === 'after-reports' && reported.length >= plan.reports) scheduleKill(plan.delayMs);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    // A safety net: a child that never reports enough (e.g. it crashed) must not hang the test.
    const watchdog = setTimeout(kill, 10_000);
    child.on('error', reject);
    // 'close' fires after the process exited AND its stdout was drained, so no report is missed.
    child.on('close', (exitCode, signal) => {
      clearTimeout(watchdog);
      resolvePromise({ reported, opened, stderr, signal, exitCode });
    });
  });
}

/** Every block from `from` up to the head, read in pages. */
function* blocksFrom(store: BlockStore, from: number): Generator<ReturnType<BlockStore['range']>> {
  const head = store.head()?.height ?? 0;
  for (let start = from; start <= head; start += rangeBlocksMax) {
    yield store.range(start, Math.min(head, start + rangeBlocksMax - 1));
  }
}

describe('BlockStore under SIGKILL', () => {
  const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-crash-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it('never loses a block it reported stored', async () => {
    const seed = Number(process.env['LEDGERBUS_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 32));
    console.log(`crash test seed ${seed} (replay with LEDGERBUS_CRASH_SEED=${seed})`);
    const random = prng(seed);
    const databasePath = join(directory, 'blocks.sqlite');
    const started = performance.now();

    let highestReported = 0;
    // The highest block verified so far; later checks anchor on it (its hash covers all before it).
    let verified: { header: BlockHeader; hash: Uint8Array } | undefined;
    let cycles = 0;
    let killedMidRun = 0;
    let killedBeforeOpen = 0;
    let blocksWritten = 0;
    let writingMs = 0;

    while (cycles < cyclesMin || (performance.now() - started < testBudgetMs / 3 && cycles < 2 * cyclesMin)) {
      const plan = planKill(random);
      const cycleStarted = performance.now();
      const result = await runChild(databasePath, plan);
      const context = `cycle ${cycles} (seed ${seed}, ${JSON.stringify(plan)})`;
      expect(result.signal, `${context}: child ended by itself: ${result.stderr}`).toBe('SIGKILL');
      cycles += 1;
      if (!result.opened) killedBeforeOpen += 1;
      if (result.reported.length > 0) {
        killedMidRun += 1;
        blocksWritten += result.reported.length;
        writingMs += performance.now() - cycleStarted;
      }

      // Reports are consecutive heights continuing from the head of the previous cycle.
      result.reported.forEach((height, index) => {
        expect(height, context).toBe((result.reported[0] ?? 0) + index);
      });
      if (result.reported.length > 0)
        expect(result.reported[0], context).toBe((verified?.header.height ?? 0) + 1);

      const store = BlockStore.open(databasePath, { partitionId });
      try {
        const head = store.head();
        highestReported = Math.max(highestReported, ...result.reported);
        expect(head?.height ?? 0, context).toBeGreaterThanOrEqual(highestReported);
        for (const height of result.reported)
          expect(store.get(height), `${context}: height ${height}`).toBeDefined();
        if (verified !== undefined) {
          // Blocks verified in earlier cycles are still the same blocks.
          expect(
            bytesEqual(blockHash(store.get(verified.header.height)!.header), verified.hash),
            context,
          ).toBe(true);
        }
        for (const page of blocksFrom(store, (verified?.header.height ?? 0) + 1)) {
          verifyChain(page, () => group.membership, verified?.header);
          const last = page[page.length - 1];
          if (last !== undefined) verified = { header: last.header, hash: blockHash(last.header) };
        }
        expect(verified?.header.height ?? 0, context).toBe(head?.height ?? 0);
      } finally {
        store.close();
      }
    }

    // Finally, the whole chain from height 1.
    const store = BlockStore.open(databasePath, { partitionId });
    try {
      let previous: BlockHeader | undefined;
      for (const page of blocksFrom(store, 1)) {
        verifyChain(page, () => group.membership, previous);
        previous = page[page.length - 1]?.header ?? previous;
      }
      expect(previous?.height).toBe(store.head()?.height);
      console.log(
        `crash test: ${cycles} SIGKILL cycles (${killedBeforeOpen} before the store was open, ${killedMidRun} while appending), head ${store.head()?.height}, ` +
          `highest reported ${highestReported}, ~${Math.round(blocksWritten / (writingMs / 1000))} blocks/s ` +
          `including process start-up, ${Math.round(performance.now() - started)} ms`,
      );
    } finally {
      store.close();
    }
    expect(cycles).toBeGreaterThanOrEqual(25);
    expect(killedMidRun).toBeGreaterThan(5);
  });
});
