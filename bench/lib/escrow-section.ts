/**
 * The "Escrow" section of bench/REPORT.md and its two charts, from a bench:escrow result record
 * (bench/escrow.ts). bench/report.ts runs the bench and calls `escrowSection`; the section and
 * chart shapes are the ones report.ts uses for every other section.
 *
 * Nothing is typed in by hand: the paper's figures appear only as words in the text, every number
 * comes from the record, and every escrow figure sits beside the same work without escrow (or the
 * issue's goal) from the same run.
 */
import type { PlacementDistinctness, ShareCostRun } from './escrow-crypto.js';
import type { EscrowFileRun, PlainRun } from './escrow-files.js';
import { growth } from './escrow-report.js';
import type { SmallRun } from './escrow-small.js';
import { formatBytes } from './payload.js';
import { barChart, formatNumber, lineChart, palette } from './svg-chart.js';

export interface ReportSection {
  readonly heading: string;
  readonly body: string;
  readonly headline?: readonly (readonly string[])[];
}

export interface ReportChart {
  readonly name: string;
  readonly svg: string;
}

interface EscrowRecord {
  readonly summary: { readonly smallGoal: number; readonly regenerationGoalMs?: number };
  readonly details: {
    readonly small: readonly SmallRun[];
    readonly shareCosts: readonly ShareCostRun[];
    readonly placement: readonly PlacementDistinctness[];
    readonly plain: readonly PlainRun[];
    readonly files: readonly EscrowFileRun[];
  };
}

/** The parts of the record the section reads, checked so a changed bench fails here, by name. */
function escrowRecord(record: Readonly<Record<string, unknown>>): EscrowRecord {
  const details = record['details'] as Record<string, unknown> | undefined;
  const summary = record['summary'] as Record<string, unknown> | undefined;
  const arrays = ['small', 'shareCosts', 'placement', 'plain', 'files'] as const;
  for (const key of arrays) {
    if (!Array.isArray(details?.[key]))
      throw new Error(`bench result: escrow.details.${key} is not an array`);
  }
  if (typeof summary?.['smallGoal'] !== 'number')
    throw new Error('bench result: escrow.summary.smallGoal missing');
  const small = details!['small'] as SmallRun[];
  for (const [index, run] of small.entries()) {
    if (typeof run.messagesPerSecond !== 'number' || typeof run.p99Ms !== 'number')
      throw new Error(`bench result: escrow.details.small[${index}] lacks messagesPerSecond or p99Ms`);
  }
  const files = details!['files'] as EscrowFileRun[];
  for (const [index, run] of files.entries()) {
    if (typeof run.regenerationMs !== 'number' || typeof run.distributeMs !== 'number')
      throw new Error(`bench result: escrow.details.files[${index}] lacks regenerationMs or distributeMs`);
  }
  return record as unknown as EscrowRecord;
}

const fixed = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const times = (value: number, reference: number): string =>
  reference > 0 ? `${(value / reference).toFixed(2)}×` : '–';
const signed = (fraction: number): string => `${fraction >= 0 ? '+' : ''}${(fraction * 100).toFixed(1)}%`;
const percent = (fraction: number): string => `${(fraction * 100).toFixed(1)}%`;
const sizeLabel = (bytes: number): string => formatBytes(bytes).replace(/\.00 /, ' ');
const topicLabel = (run: SmallRun): string =>
  run.availability === 'standard' ? 'standard topic' : `escrow, k = ${run.threshold} of n = ${run.shares}`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = header.map((_, i) => (i === 0 ? ':--' : '--:'));
  return [header, align, ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}

export function escrowSection(
  record: Readonly<Record<string, unknown>>,
  charts: ReportChart[],
): ReportSection {
  const { summary, details } = escrowRecord(record);
  const { small, shareCosts, placement, plain, files } = details;
  const standard = small.find((run) => run.availability === 'standard');
  const headline = small.find((run) => run.availability === 'escrow' && run.shares === 3);
  if (standard === undefined || headline === undefined)
    throw new Error('escrow: the result has no standard run or no k = 2, n = 3 escrow run');
  const escrowed = small.filter((run) => run.availability === 'escrow');
  const biggest = Math.max(...files.map((run) => run.bytes));
  const mostChunks = Math.max(...files.map((run) => run.chunksWanted));
  const goalRun = files.find((run) => run.bytes === biggest && run.chunksWanted === mostChunks);
  const goalMs = summary.regenerationGoalMs ?? 1000;

  charts.push({
    name: 'escrow-publish.svg',
    svg: barChart({
      title: 'Small messages: escrow topics beside a standard topic',
      subtitle: `${headline.bytes} B messages, ${headline.concurrency} callers with one send outstanding each, same devnet, same run`,
      valueAxis: { label: 'answered sends per second (higher is better)' },
      bars: small.map((run) => ({
        label: topicLabel(run),
        value: run.messagesPerSecond,
        color: run.availability === 'standard' ? palette.limit : palette.ledgerbus,
      })),
    }),
  });
  const sizes = [...new Set(files.map((run) => run.bytes))].sort((a, b) => a - b);
  const atMostChunks = (bytes: number): EscrowFileRun | undefined =>
    files.find((run) => run.bytes === bytes && run.chunksWanted === mostChunks);
  charts.push({
    name: 'escrow-files.svg',
    svg: lineChart({
      title: 'Large files: escrow beside the plain transfer',
      subtitle: `escrow at ${mostChunks} chunks per file; plain = the same size on a standard topic; same run`,
      x: { label: 'file size', ticks: sizes, min: 0, format: sizeLabel },
      y: { label: 'milliseconds (lower is better)' },
      series: [
        {
          name: 'plain transfer: POST at org1 → received at org2',
          color: palette.limit,
          points: plain.map((run) => ({ x: run.bytes, y: run.receivedSeconds * 1000 })),
        },
        {
          name: 'escrow: chunks distributed to 3 holders each (placer)',
          color: palette.ledgerbus,
          points: sizes.flatMap((bytes) => {
            const run = atMostChunks(bytes);
            return run === undefined ? [] : [{ x: bytes, y: run.distributeMs }];
          }),
        },
        {
          name: 'audit: regeneration from the holders (auditor)',
          color: palette.other,
          points: sizes.flatMap((bytes) => {
            const run = atMostChunks(bytes);
            return run === undefined
              ? []
              : [{ x: bytes, y: run.regenerationMs, label: formatNumber(Math.round(run.regenerationMs)) }];
          }),
        },
        {
          name: `goal: regeneration < ${fixed(goalMs)} ms`,
          color: palette.peer,
          dashed: true,
          points: [
            { x: 0, y: goalMs },
            { x: biggest, y: goalMs },
          ],
        },
      ],
    }),
  });

  const smallRows = small.map((run) => [
    topicLabel(run),
    fixed(run.messagesPerSecond, 1),
    times(run.messagesPerSecond, standard.messagesPerSecond),
    `${fixed(run.p50Ms, 1)} / ${fixed(run.p99Ms, 1)}`,
    run.placer === undefined
      ? '–'
      : `${fixed(run.placer.splitMs, 1)} / ${fixed(run.placer.distributeMs, 1)} / ${fixed(run.placer.sealMs, 1)}`,
  ]);
  const fewestShares = escrowed.reduce((a, b) => ((a.shares ?? 0) <= (b.shares ?? 0) ? a : b));
  const mostShares = escrowed.reduce((a, b) => ((a.shares ?? 0) >= (b.shares ?? 0) ? a : b));
  const firstCost = shareCosts[0];
  const costRows = shareCosts.map((run) => [
    String(run.shares),
    fixed(run.splitMicros),
    fixed(run.sealMicros),
    fixed(run.verifyMicros),
    fixed(run.totalMicros),
    firstCost === undefined ? '–' : signed(growth(firstCost.totalMicros, run.totalMicros)),
    fixed(run.messagesPerSecond),
  ]);
  const fileRows = files.map((run) => {
    const peer = plain.find((entry) => entry.bytes === run.bytes);
    return [
      sizeLabel(run.bytes),
      `${run.chunks} × ${sizeLabel(run.chunkBytes)}`,
      fixed(run.splitMs),
      fixed(run.distributeMs),
      fixed(run.answerSeconds * 1000),
      peer === undefined ? '–' : fixed(peer.answerSeconds * 1000),
      fixed(run.receivedSeconds * 1000),
      peer === undefined ? '–' : fixed(peer.receivedSeconds * 1000),
      fixed(run.regenerationMs),
      peer === undefined ? '–' : times(run.regenerationMs, peer.receivedSeconds * 1000),
    ];
  });
  const placementRows = placement.map((row) => [
    String(row.candidates),
    percent(row.naiveDistinct),
    percent(row.naiveExpected),
    percent(row.naiveSingleHolder),
    percent(row.rendezvousDistinct),
    row.rendezvousMaxLoad.toFixed(3),
  ]);
  const fourCandidates = placement.find((row) => row.candidates === 4);

  return {
    heading: 'Escrow topics (auditor availability)',
    headline: [
      [
        `escrow publishes, ${headline.bytes} B, ${headline.concurrency} callers (msg/s)`,
        fixed(headline.messagesPerSecond, 1),
        `${fixed(standard.messagesPerSecond, 1)} (standard topic)`,
        times(headline.messagesPerSecond, standard.messagesPerSecond),
      ],
      ...(goalRun === undefined
        ? []
        : [
            [
              `audit regeneration, ${sizeLabel(goalRun.bytes)} in ${goalRun.chunks} chunks (ms, lower is better)`,
              fixed(goalRun.regenerationMs),
              `${fixed(goalMs)} (goal)`,
              times(goalRun.regenerationMs, goalMs),
            ],
          ]),
      ...(fourCandidates === undefined
        ? []
        : [
            [
              'chunks on 3 distinct holders, 4 candidates (rendezvous vs paper rule)',
              percent(fourCandidates.rendezvousDistinct),
              `${percent(fourCandidates.naiveDistinct)} (three-hash rule)`,
              times(fourCandidates.rendezvousDistinct, fourCandidates.naiveDistinct),
            ],
          ]),
    ],
    body: [
      `![Escrow publishes](report/escrow-publish.svg)`,
      '',
      table(
        ['topic', 'publishes/s', '÷ standard', 'p50 / p99 ms', 'placer split / distribute / seal ms'],
        smallRows,
      ),
      '',
      `**How to read this.** ${headline.concurrency} callers at org1's connector each keep one ${headline.bytes}-byte send outstanding (\`POST /v1/topics/T/messages?to=org2\`), ${fixed(headline.messages)} measured sends per topic after a warm-up, on the 4-organization devnet (4 nodes and 4 connectors as processes, TLS between them). An escrow send is answered once its one chunk is stored on 3 holder organizations with signed receipts, the key is shared k-of-n with Feldman VSS and each share HPKE-sealed to its holder, and the publish — a batch of its own — is committed; a standard send once the payload is stored and the publish committed. The placer columns are the sender's own mean times per message (its log line). The issue's goal is ≥ ${fixed(summary.smallGoal)} escrow publishes/s; BlockTorrent's Fabric implementation saturates at about 35 tps. From n = ${fewestShares.shares} to n = ${mostShares.shares} shares end to end the rate changes by ${signed(growth(fewestShares.messagesPerSecond, mostShares.messagesPerSecond))} (the devnet has 3 possible holders besides the sender, so n ≤ 3).`,
      '',
      table(
        ['shares n', 'split µs', 'seal µs', 'verify µs', 'total µs', 'vs first', 'messages/s per core'],
        costRows,
      ),
      '',
      `**The share-count axis, in process.** Per message, k = ${firstCost?.threshold ?? 2}: \`splitSecret\` (Feldman commitments and n evaluations), \`sealShare\` once per share (HPKE X25519 to the holder) and \`verifyShare\` once per share (what each holder runs on its opened share). The paper reports throughput dropping about 14% from 2 to 10 shares; the "vs first" column is our cost growth over the same range — the seal and the verification are per share, so the cost grows about linearly in n, and what that means end to end depends on how much of a send's time the key escrow is (compare the placer's seal column above with the latency).`,
      '',
      `![Escrow files](report/escrow-files.svg)`,
      '',
      table(
        [
          'size',
          'chunks',
          'split ms',
          'distribute ms',
          'escrow send answer ms',
          'plain send answer ms',
          'escrow received at org2 ms',
          'plain received at org2 ms',
          'regeneration ms',
          'regeneration ÷ plain transfer',
        ],
        fileRows,
      ),
      '',
      `**How to read this.** Each size is sent once on a standard topic (plain) and once per chunk count on an escrow topic whose chunk size cuts it into that many chunks, each a different window of the deterministic bench payload. Split and distribute come from the sender's placer (reading, cutting and hashing the escrowed blob, which overlaps with distribution; distribution is wall time from the first chunk read to the last of 3 receipts per chunk verified). Then org4, the dev network's auditor, requests an audit, org3 approves, the share holders release their shares, and the auditor fetches: regeneration runs from its first chunk request to the verified plaintext stored (fetching every chunk from a holder through the nodes, checking its hash, the envelope signature and the on-chain content root, decrypting). The auditor's sha256 equalled the file's in every row (the bench fails otherwise). The issue's goal is a regeneration under ${fixed(goalMs)} ms for 50 MB in 200 chunks (the summary's row is the largest file at the most chunks this run measured: ${sizeLabel(biggest)} in ${mostChunks}). The last column compares the regeneration with the plain transfer of the same size, which moves the same bytes org1 → org2 without escrow.`,
      '',
      table(
        [
          'candidates',
          'paper rule: 3 distinct',
          'expected c(c−1)(c−2)/c³',
          'paper rule: 1 holder',
          'rendezvous: 3 distinct',
          'rendezvous max load ÷ even',
        ],
        placementRows,
      ),
      '',
      `**Placement.** ${fixed(placement[0]?.samples ?? 0)} random chunk hashes per row. The paper's rule picks one holder per hash function (SHA3-256, SHA-384, SHA-512) independently, so a chunk lands on 3 distinct holders only with probability c(c−1)(c−2)/c³, and on a single holder (one lost organization loses the chunk) with 1/c². Our rendezvous ranking keeps the three hashes but ranks candidates per round, so the 3 holders are always distinct; max load ÷ even is the busiest candidate's share of placements over a perfectly even split.`,
    ].join('\n'),
  };
}
