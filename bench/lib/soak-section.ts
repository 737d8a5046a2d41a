/**
 * The "Footprint over time" section of bench/REPORT.md and its two charts, from a bench:soak result
 * record (bench/soak.ts): disk per message of the sending and receiving connectors and of the
 * largest node at 10 %, 50 % and 100 % of the run beside issue 18's goals, what each node component
 * holds, the resident memory of every process as history grows, restart and catch-up times.
 * bench/report.ts runs the bench and calls `soakSection`. Every number comes from the record.
 */
import type { ReportChart, ReportSection } from './escrow-section.js';
import { nodeComponents } from './footprint.js';
import { formatBytes } from './payload.js';
import { formatNumber, lineChart, palette } from './svg-chart.js';

/** Issue 18's goals, per small message. */
const senderGoalBytes = 2048;
const nodeGoalBytes = 1024;

interface SoakCheckpoint {
  readonly messages: number;
  readonly senderBytesPerSmallMessage: number;
  readonly recipientBytesPerSmallMessage: number;
  readonly nodeBytesPerMessage: number;
  readonly rssBytes: Readonly<Record<string, number>>;
  readonly organizations: Readonly<
    Record<string, { readonly node: Readonly<Record<string, number>>; readonly totalBytes: number }>
  >;
}

interface SoakRecord {
  readonly summary: { readonly messages: number; readonly messageBytes: number; readonly runSeconds: number };
  readonly details: {
    readonly checkpoints: readonly SoakCheckpoint[];
    readonly rssGrowth: Readonly<Record<string, number>>;
    readonly freshStartSeconds: number;
    readonly restartSeconds: number;
    readonly catchUp?: {
      readonly blocks: number;
      readonly seconds: number;
      readonly blocksPerSecond: number;
    };
  };
}

/** The parts of the record the section reads, checked so a changed bench fails here, by name. */
function soakRecord(record: Readonly<Record<string, unknown>>): SoakRecord {
  const details = record['details'] as Record<string, unknown> | undefined;
  const checkpoints = details?.['checkpoints'];
  if (!Array.isArray(checkpoints) || checkpoints.length === 0)
    throw new Error('bench result: soak.details.checkpoints is not a non-empty array');
  for (const [index, point] of (checkpoints as Record<string, unknown>[]).entries()) {
    for (const key of [
      'messages',
      'senderBytesPerSmallMessage',
      'recipientBytesPerSmallMessage',
      'nodeBytesPerMessage',
    ]) {
      if (typeof point[key] !== 'number')
        throw new Error(`bench result: soak checkpoint ${index} lacks ${key}`);
    }
  }
  if (typeof details?.['restartSeconds'] !== 'number')
    throw new Error('bench result: soak.details.restartSeconds missing');
  return record as unknown as SoakRecord;
}

/** What a node keeps, as bench/lib/footprint.ts splits it, and what no table owns. */
const nodeComponentNames = [
  ...nodeComponents.filter((name) => name !== 'otherNodeState'),
  'sqliteSlack',
] as const;

export function soakSection(record: Readonly<Record<string, unknown>>, charts: ReportChart[]): ReportSection {
  const soak = soakRecord(record);
  const points = soak.details.checkpoints;
  const last = points.at(-1) as SoakCheckpoint;
  const first = points[0] as SoakCheckpoint;
  const x = { label: 'messages sent', format: formatNumber };
  charts.push({
    name: 'soak-disk.svg',
    svg: lineChart({
      title: 'Disk per message as history grows',
      subtitle: `${formatNumber(soak.summary.messages)} messages of ${soak.summary.messageBytes} B; dashed: issue 18's goals`,
      x,
      y: { label: 'bytes per message', format: formatNumber },
      series: [
        {
          name: "sender's connector",
          color: palette.ledgerbus,
          points: points.map((p) => ({ x: p.messages, y: p.senderBytesPerSmallMessage })),
        },
        {
          name: "recipient's connector",
          color: palette.other,
          points: points.map((p) => ({ x: p.messages, y: p.recipientBytesPerSmallMessage })),
        },
        {
          name: 'largest node',
          color: palette.peer,
          points: points.map((p) => ({ x: p.messages, y: p.nodeBytesPerMessage })),
        },
        {
          name: 'sender goal',
          color: palette.ledgerbus,
          dashed: true,
          points: points.map((p) => ({ x: p.messages, y: senderGoalBytes })),
        },
        {
          name: 'node goal',
          color: palette.peer,
          dashed: true,
          points: points.map((p) => ({ x: p.messages, y: nodeGoalBytes })),
        },
      ],
    }),
  });
  const processes = Object.keys(last.rssBytes);
  charts.push({
    name: 'soak-rss.svg',
    svg: lineChart({
      title: 'Resident memory as history grows',
      subtitle: 'every process of the devnet (node4 was down for the run)',
      x,
      y: { label: 'RSS (MiB)', format: formatNumber },
      series: processes.map((name) => ({
        name,
        points: points
          .filter((p) => p.rssBytes[name] !== undefined)
          .map((p) => ({ x: p.messages, y: Math.round((p.rssBytes[name] as number) / (1024 * 1024)) })),
      })),
    }),
  });
  const node = last.organizations['org1']?.node ?? {};
  const componentRows = nodeComponentNames.map(
    (name) =>
      `| ${name} | ${formatBytes(node[name] ?? 0)} | ${formatNumber(Math.round((node[name] ?? 0) / last.messages))} |`,
  );
  const growth = Object.entries(soak.details.rssGrowth)
    .map(([name, ratio]) => `${name} ${ratio}×`)
    .join(', ');
  const catchUp = soak.details.catchUp;
  const body = [
    `![disk per message](report/soak-disk.svg)`,
    '',
    `![resident memory](report/soak-rss.svg)`,
    '',
    `${formatNumber(soak.summary.messages)} messages of ${soak.summary.messageBytes} B from org1 to org2 in ${formatNumber(Math.round(soak.summary.runSeconds))} s of sending. ` +
      `At ${formatNumber(last.messages)}, org1's connector keeps ${formatNumber(last.senderBytesPerSmallMessage)} B per small message (goal ≤ ${senderGoalBytes}), ` +
      `org2's ${formatNumber(last.recipientBytesPerSmallMessage)} B, and the largest node ${formatNumber(last.nodeBytesPerMessage)} B per message (goal ≤ ${nodeGoalBytes}); ` +
      `at ${formatNumber(first.messages)} they were ${formatNumber(first.senderBytesPerSmallMessage)}, ${formatNumber(first.recipientBytesPerSmallMessage)} and ${formatNumber(first.nodeBytesPerMessage)} B.`,
    '',
    `node1 at ${formatNumber(last.messages)} messages, by component:`,
    '',
    '| component | bytes | per message |',
    '| :-- | --: | --: |',
    ...componentRows,
    '',
    `RSS at 100 % ÷ RSS at 10 %: ${growth} (goal ≤ 1.25×). Restart with the whole history: ready in ${soak.details.restartSeconds} s, ` +
      `a fresh network in ${soak.details.freshStartSeconds} s (goal ≤ 2×).` +
      (catchUp === undefined
        ? ''
        : ` node4, down for the whole run, caught up ${formatNumber(catchUp.blocks)} blocks in ${catchUp.seconds} s: ${formatNumber(catchUp.blocksPerSecond)} blocks/s (goal ≥ 10,000).`),
  ].join('\n');
  return {
    heading: 'Footprint over time (bench:soak)',
    body,
    headline: [
      [
        "soak: sender's connector, bytes per small message",
        formatNumber(last.senderBytesPerSmallMessage),
        `goal ${senderGoalBytes}`,
        (last.senderBytesPerSmallMessage / senderGoalBytes).toFixed(2),
      ],
      [
        'soak: largest node, bytes per message',
        formatNumber(last.nodeBytesPerMessage),
        `goal ${nodeGoalBytes}`,
        (last.nodeBytesPerMessage / nodeGoalBytes).toFixed(2),
      ],
    ],
  };
}
