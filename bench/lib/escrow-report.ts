/** The readable tables bench:escrow prints on stderr, from the figures it also writes as JSON. */
import type { PlacementDistinctness, ShareCostRun } from './escrow-crypto.js';
import type { EscrowFileRun, PlainRun } from './escrow-files.js';
import type { SmallRun } from './escrow-small.js';
import { formatBytes } from './payload.js';

export interface EscrowFigures {
  readonly small: readonly SmallRun[];
  readonly shareCosts: readonly ShareCostRun[];
  readonly placement: readonly PlacementDistinctness[];
  readonly plain: readonly PlainRun[];
  readonly files: readonly EscrowFileRun[];
}

const pad = (text: string, width: number): string => text.padStart(width);
const fixed = (value: number, digits = 0): string => value.toFixed(digits);
const percent = (value: number): string => `${(value * 100).toFixed(2)}%`;

/** Cost growth from the fewest to the most shares: (more − fewer) ÷ fewer, e.g. 0.14 for +14%. */
export function growth(fewer: number, more: number): number {
  return (more - fewer) / fewer;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (row: readonly string[]): string =>
    `  ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[0]!) : pad(cell, widths[column]!))).join('  ')}`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)];
}

export function humanReport(figures: EscrowFigures): string {
  const lines: string[] = [];
  const standard = figures.small.find((run) => run.availability === 'standard');
  if (figures.small.length > 0) {
    const first = figures.small[0]!;
    lines.push(
      `small messages: ${first.bytes} B, ${first.concurrency} callers with one send each outstanding, ${first.messages} per run (POST at org1 → answer)`,
    );
    lines.push(
      ...table(
        [
          'topic',
          'publishes/s',
          '÷ standard',
          'p50 ms',
          'p99 ms',
          'split ms',
          'distribute ms',
          'seal ms',
          'drain s',
        ],
        figures.small.map((run) => [
          run.availability === 'standard' ? 'standard' : `escrow k=${run.threshold} n=${run.shares}`,
          fixed(run.messagesPerSecond, 1),
          standard === undefined
            ? '-'
            : `${(run.messagesPerSecond / standard.messagesPerSecond).toFixed(3)}×`,
          fixed(run.p50Ms, 1),
          fixed(run.p99Ms, 1),
          run.placer === undefined ? '-' : fixed(run.placer.splitMs, 2),
          run.placer === undefined ? '-' : fixed(run.placer.distributeMs, 2),
          run.placer === undefined ? '-' : fixed(run.placer.sealMs, 2),
          run.drainSeconds === undefined ? '-' : fixed(run.drainSeconds, 1),
        ]),
      ),
    );
    const escrowed = figures.small.filter((run) => run.availability === 'escrow');
    const fewest = escrowed.reduce<SmallRun | undefined>(
      (best, run) => (best === undefined || (run.shares ?? 0) < (best.shares ?? 0) ? run : best),
      undefined,
    );
    const most = escrowed.reduce<SmallRun | undefined>(
      (best, run) => (best === undefined || (run.shares ?? 0) > (best.shares ?? 0) ? run : best),
      undefined,
    );
    if (fewest !== undefined && most !== undefined && fewest !== most) {
      lines.push(
        `  end to end, n=${fewest.shares} → n=${most.shares}: rate ${(growth(fewest.messagesPerSecond, most.messagesPerSecond) * 100).toFixed(1)}% ` +
          `(paper, Fabric: ~35 tps, −14% from 2 to 10 shares; goal ≥ 1000/s)`,
      );
    }
    lines.push('');
  }
  if (figures.shareCosts.length > 0) {
    lines.push(
      `key escrow in process, per message (k=${figures.shareCosts[0]!.threshold}): splitSecret + sealShare × n + verifyShare × n`,
    );
    const base = figures.shareCosts[0]!;
    lines.push(
      ...table(
        ['shares n', 'split µs', 'seal µs', 'verify µs', 'total µs', 'vs first', 'msgs/s/core'],
        figures.shareCosts.map((run) => [
          String(run.shares),
          fixed(run.splitMicros),
          fixed(run.sealMicros),
          fixed(run.verifyMicros),
          fixed(run.totalMicros),
          `${growth(base.totalMicros, run.totalMicros) * 100 >= 0 ? '+' : ''}${(growth(base.totalMicros, run.totalMicros) * 100).toFixed(1)}%`,
          fixed(run.messagesPerSecond),
        ]),
      ),
    );
    lines.push('');
  }
  if (figures.placement.length > 0) {
    lines.push(
      `placement: chunks on 3 distinct holders, ${figures.placement[0]!.samples} random chunk hashes per row`,
    );
    lines.push(
      ...table(
        ['candidates', 'paper rule', 'expected', 'single holder', 'rendezvous', 'max load ÷ even'],
        figures.placement.map((row) => [
          String(row.candidates),
          percent(row.naiveDistinct),
          percent(row.naiveExpected),
          percent(row.naiveSingleHolder),
          percent(row.rendezvousDistinct),
          fixed(row.rendezvousMaxLoad, 3),
        ]),
      ),
    );
    lines.push('');
  }
  if (figures.files.length > 0) {
    lines.push(
      'large files org1 → org2, escrow beside the plain transfer of a file of the same size (seconds unless ms)',
    );
    lines.push(
      ...table(
        [
          'size',
          'chunks',
          'chunk',
          'split ms',
          'distribute ms',
          'seal ms',
          'send answer',
          'received',
          'plain answer',
          'plain received',
          'attest',
          'release',
          'regeneration ms',
          'fetch',
          'sha256',
        ],
        figures.files.map((run) => {
          const plain = figures.plain.find((entry) => entry.bytes === run.bytes);
          return [
            formatBytes(run.bytes),
            String(run.chunks),
            formatBytes(run.chunkBytes),
            fixed(run.splitMs),
            fixed(run.distributeMs),
            fixed(run.sealMs, 1),
            fixed(run.answerSeconds, 2),
            fixed(run.receivedSeconds, 2),
            plain === undefined ? '-' : fixed(plain.answerSeconds, 2),
            plain === undefined ? '-' : fixed(plain.receivedSeconds, 2),
            fixed(run.attestSeconds, 2),
            fixed(run.releaseSeconds, 2),
            fixed(run.regenerationMs),
            fixed(run.fetchSeconds, 2),
            run.sha256Matches ? 'ok' : 'DIFFERS',
          ];
        }),
      ),
    );
  }
  return lines.join('\n');
}
