/**
 * Small messages through a real devnet, closed loop: `concurrency` callers each keep one send of
 * `bytes` bytes outstanding at org1's connector (`POST /v1/topics/T/messages?to=org2`) until
 * `messages` sends have been answered. A send's latency runs from the request to its answer, which
 * on an escrow topic comes once the chunk sits on its holders, the key shares are sealed and the
 * publish is committed; on a standard topic once the payload is stored and the publish committed.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ConnectorTarget } from './connector-http.js';
import { auditStatus, pollFor, retrying, sendSmall } from './escrow-api.js';

export interface SmallRun {
  readonly label: string;
  readonly topic: string;
  /** 'standard', or the escrow policy's k-of-n. */
  readonly availability: 'standard' | 'escrow';
  readonly shares?: number;
  readonly threshold?: number;
  readonly messages: number;
  readonly bytes: number;
  readonly concurrency: number;
  readonly seconds: number;
  readonly messagesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** Escrow only: the placer's mean phase times per message, from the sender's log. */
  readonly placer?: { readonly splitMs: number; readonly distributeMs: number; readonly sealMs: number };
  /** Escrow only: seconds after the last answer until the holders had attested the last message. */
  readonly drainSeconds?: number;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number;
}

export async function measureSmall(options: {
  readonly label: string;
  readonly topic: string;
  readonly availability: 'standard' | 'escrow';
  readonly shares?: number;
  readonly threshold?: number;
  readonly sender: ConnectorTarget;
  /** The auditor's connector: escrow runs wait on it until the holders attested the last message. */
  readonly auditor: ConnectorTarget;
  readonly senderLog: string;
  readonly to: string;
  readonly messages: number;
  readonly bytes: number;
  readonly concurrency: number;
  readonly warmup: number;
  readonly check: () => void;
  readonly progress: (text: string) => void;
}): Promise<SmallRun> {
  const body = randomBytes(options.bytes);
  const prefix = `${options.label}-${randomBytes(3).toString('hex')}`;
  // A topic created moments ago may not run on every replica yet: the first send retries.
  await retrying(`the first send to ${options.topic}`, 120_000, () =>
    sendSmall(options.sender, { topic: options.topic, to: options.to, id: `${prefix}-first`, body }),
  );
  let next = 0;
  const loop = async (
    count: number,
    latencies: number[] | undefined,
    ids: string[] | undefined,
  ): Promise<void> => {
    let remaining = count;
    await Promise.all(
      Array.from({ length: Math.min(options.concurrency, count) }, async () => {
        while (remaining > 0) {
          remaining -= 1;
          options.check();
          const id = `${prefix}-${next++}`;
          const ms = await sendSmall(options.sender, { topic: options.topic, to: options.to, id, body });
          latencies?.push(ms);
          ids?.push(id);
        }
      }),
    );
  };
  await loop(options.warmup, undefined, undefined);
  const latencies: number[] = [];
  const ids: string[] = [];
  const ticker = setInterval(
    () => options.progress(`  ${options.label}: ${latencies.length}/${options.messages} answered`),
    10_000,
  );
  const started = performance.now();
  try {
    await loop(options.messages, latencies, ids);
  } finally {
    clearInterval(ticker);
  }
  const seconds = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const run: SmallRun = {
    label: options.label,
    topic: options.topic,
    availability: options.availability,
    ...(options.shares === undefined ? {} : { shares: options.shares }),
    ...(options.threshold === undefined ? {} : { threshold: options.threshold }),
    messages: options.messages,
    bytes: options.bytes,
    concurrency: options.concurrency,
    seconds,
    messagesPerSecond: options.messages / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: sorted.reduce((sum, ms) => sum + ms, 0) / Math.max(1, sorted.length),
  };
  if (options.availability === 'standard') return run;
  // The holders attest each escrowed message after the fact; the next run must not pay for this
  // one's backlog, so wait until the last message is attested before returning.
  const last = ids.at(-1)!;
  const drainStarted = performance.now();
  await pollFor(
    `the holders to attest ${last}`,
    600_000,
    async () => {
      const status = await auditStatus(options.auditor, last);
      return status !== undefined && status.status !== 'PENDING' ? status : undefined;
    },
    500,
    options.check,
  );
  return {
    ...run,
    placer: meanPlacerTimes(options.senderLog, new Set(ids)),
    drainSeconds: (performance.now() - drainStarted) / 1000,
  };
}

/** Mean split / distribute / seal milliseconds over the placer's log lines for `ids`. */
function meanPlacerTimes(
  logFile: string,
  ids: ReadonlySet<string>,
): { splitMs: number; distributeMs: number; sealMs: number } | undefined {
  let count = 0;
  const sum = { splitMs: 0, distributeMs: 0, sealMs: 0 };
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('escrowed chunks and key shares placed')) continue;
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (typeof entry['id'] !== 'string' || !ids.has(entry['id'])) continue;
    count += 1;
    for (const key of ['splitMs', 'distributeMs', 'sealMs'] as const) {
      const value = entry[key];
      if (typeof value === 'number') sum[key] += value;
    }
  }
  if (count === 0) return undefined;
  return { splitMs: sum.splitMs / count, distributeMs: sum.distributeMs / count, sealMs: sum.sealMs / count };
}
