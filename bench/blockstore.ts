/**
 * `npm run bench:blockstore`: how fast a partition's BlockStore appends blocks durably, against how
 * many fsyncs the same file system does per second, measured in the same run.
 *
 * BlockStore commits every append with journal_mode=WAL and synchronous=FULL: one `append` is one
 * SQLite transaction, which costs (at least) one fsync of the WAL before it returns, so the rate of
 * fsyncs on the same file system bounds it. The reference is that bound, measured here: 4 KiB
 * appended to a file and fdatasync'ed, over and over, in the store's directory (half of the samples
 * before the appends, half after, since a shared machine's disk is noisy). `appendMany` of a batch is
 * one transaction too, so it amortizes the fsync over the batch; its rate is reported beside.
 *
 * Blocks are the ledger tests' deterministic ones (test/ledger/fixtures.ts: a 4-replica group, 1-5
 * transactions of up to ~220 bytes each, a certificate of 3 Ed25519 signatures), made before the
 * clock starts. The store must end with every block, in a verified chain (else the bench throws).
 *
 * value = blocks/s with `append` (one block per transaction); referenceValue = fsyncs/s; ratio =
 * value ÷ referenceValue (1 would mean the store costs nothing but its fsync).
 *
 * This used to run inside the unit suite (src/ledger/block-store.test.ts), printing numbers nobody
 * checked, slow on a loaded machine; it is a benchmark, so it lives here.
 *
 * Options: --blocks N (single appends, default 200), --batched N (blocks appended with appendMany
 * after those, default 2000), --batch N (blocks per appendMany, default 100), --fsyncs N (fsyncs in
 * the reference, default 200), --dir D (where the store and the fsync file go; default a temporary
 * directory, removed at the end; the disk under it is what is measured).
 */
import { Buffer } from 'node:buffer';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { verifyChain } from '../src/ledger/block.js';
import { BlockStore } from '../src/ledger/block-store.js';
import { makeChain, makeGroup } from '../test/ledger/fixtures.js';
import { round, writeBenchResult } from './lib/results.js';
import { showHelpIfAsked } from './lib/help.js';

interface Options {
  readonly blocks: number;
  readonly batched: number;
  readonly batch: number;
  readonly fsyncs: number;
  readonly dir: string | undefined;
}

function parseOptions(): Options {
  showHelpIfAsked(import.meta.url);
  const { values } = parseArgs({
    options: {
      blocks: { type: 'string', default: '200' },
      batched: { type: 'string', default: '2000' },
      batch: { type: 'string', default: '100' },
      fsyncs: { type: 'string', default: '200' },
      dir: { type: 'string' },
    },
    strict: true,
  });
  const count = (name: string, text: string, minimum: number): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < minimum)
      throw new Error(`--${name} must be an integer of at least ${minimum}`);
    return value;
  };
  return {
    blocks: count('blocks', values.blocks, 1),
    batched: count('batched', values.batched, 0),
    batch: count('batch', values.batch, 1),
    fsyncs: count('fsyncs', values.fsyncs, 2),
    dir: values.dir,
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** `count` times: append 4 KiB to a file in `directory` and fdatasync it. Returns the seconds taken. */
function timeFsyncs(directory: string, count: number): number {
  const path = join(directory, 'fsync-reference.bin');
  const page = Buffer.alloc(4096, 0x5a);
  const fd = openSync(path, 'a');
  try {
    // One unmeasured round: creating the file and its first extent is not what a WAL append costs.
    writeSync(fd, page);
    fdatasyncSync(fd);
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      writeSync(fd, page);
      fdatasyncSync(fd);
    }
    return (performance.now() - started) / 1000;
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

function main(): void {
  const options = parseOptions();
  const directory =
    options.dir === undefined
      ? mkdtempSync(join(tmpdir(), 'ledgerbus-bench-blockstore-'))
      : resolve(options.dir);
  const removeDirectory = options.dir === undefined;
  try {
    const partitionId = 'bench/0';
    const group = makeGroup({ n: 4, partitionId });
    progress(`making ${options.blocks + options.batched} certified blocks (not timed)`);
    const single = makeChain(group, options.blocks);
    const batched = makeChain(group, options.batched, single.at(-1)?.header);

    const half = Math.ceil(options.fsyncs / 2);
    progress(`fsync reference in ${directory}: ${half} fsyncs`);
    const fsyncSecondsBefore = timeFsyncs(directory, half);

    const store = BlockStore.open(join(directory, 'blocks.sqlite'), { partitionId });
    let appendSeconds: number;
    let appendManySeconds: number;
    try {
      progress(`append: ${single.length} blocks, one transaction (and fsync) each`);
      const appendStarted = performance.now();
      for (const block of single) store.append(block);
      appendSeconds = (performance.now() - appendStarted) / 1000;

      progress(`appendMany: ${batched.length} blocks in batches of ${options.batch}`);
      const batchStarted = performance.now();
      for (let i = 0; i < batched.length; i += options.batch)
        store.appendMany(batched.slice(i, i + options.batch));
      appendManySeconds = (performance.now() - batchStarted) / 1000;

      const total = single.length + batched.length;
      if (store.head()?.height !== total)
        throw new Error(`the store holds ${store.head()?.height ?? 0} blocks, expected ${total}`);
      verifyChain(store.range(1, Math.min(total, 100)), () => group.membership);
    } finally {
      store.close();
    }

    const rest = options.fsyncs - half;
    progress(`fsync reference again: ${rest} fsyncs`);
    const fsyncSecondsAfter = timeFsyncs(directory, rest);

    const fsyncsPerSecond = options.fsyncs / (fsyncSecondsBefore + fsyncSecondsAfter);
    const appendPerSecond = single.length / appendSeconds;
    const batches = Math.ceil(batched.length / options.batch);
    const appendManyPerSecond = batched.length === 0 ? 0 : batched.length / appendManySeconds;
    const appendManyTransactionsPerSecond = batched.length === 0 ? 0 : batches / appendManySeconds;

    process.stdout.write(
      [
        `fsync (4 KiB + fdatasync)      ${Math.round(fsyncsPerSecond)} /s ` +
          `(before ${Math.round(half / fsyncSecondsBefore)}, after ${Math.round(rest / fsyncSecondsAfter)})`,
        `BlockStore.append              ${Math.round(appendPerSecond)} blocks/s ` +
          `(${single.length} blocks, ${round(appendPerSecond / fsyncsPerSecond, 2)}× the fsync rate)`,
        `BlockStore.appendMany(${options.batch})`.padEnd(31) +
          ` ${Math.round(appendManyPerSecond)} blocks/s (${batched.length} blocks, ` +
          `${Math.round(appendManyTransactionsPerSecond)} transactions/s)`,
      ].join('\n') + '\n',
    );

    writeBenchResult({
      name: 'blockstore',
      value: round(appendPerSecond, 1),
      unit: 'blocks/s',
      reference: 'fsyncs/s of 4 KiB appends + fdatasync in the same directory (same run)',
      referenceValue: round(fsyncsPerSecond, 1),
      ratio: round(appendPerSecond / fsyncsPerSecond),
      summary: {
        appendManyBlocksPerSecond: round(appendManyPerSecond, 1),
        batch: options.batch,
      },
      details: {
        options: { ...options, dir: directory },
        append: { blocks: single.length, seconds: round(appendSeconds, 4) },
        appendMany: {
          blocks: batched.length,
          batch: options.batch,
          transactions: batches,
          seconds: round(appendManySeconds, 4),
          transactionsPerSecond: round(appendManyTransactionsPerSecond, 1),
        },
        fsync: {
          count: options.fsyncs,
          secondsBefore: round(fsyncSecondsBefore, 4),
          secondsAfter: round(fsyncSecondsAfter, 4),
        },
      },
    });
  } finally {
    if (removeDirectory) rmSync(directory, { recursive: true, force: true });
  }
}

main();
