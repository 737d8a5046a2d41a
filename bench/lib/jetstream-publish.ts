/**
 * Publish-with-ack throughput and latency of a JetStream stream with 3 replicas on file storage.
 *
 * One client connection (to the cluster's URLs, in order) keeps `concurrency` `js.publish` calls
 * outstanding: a sliding window of that many lanes, each publishing its next message as soon as the
 * previous one is acknowledged. A JetStream ack means the stream leader and a quorum of its replicas
 * (2 of 3) have stored the message; whether it is on disk by then depends on the servers'
 * `sync_interval` (see jetstream-cluster.ts). Latency is from the publish call to the ack arriving.
 *
 * Payloads are random bytes, one per message, generated before timing starts. 1,000 warm-up messages
 * (same size, same window) go first and are not measured. The stream is deleted at the end, also when
 * publishing fails.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { cpuPerMessage, sampleCpu } from './cpu-usage.js';
import type { CpuPerMessage } from './cpu-usage.js';

export interface JetStreamPublishOptions {
  readonly urls: string[];
  readonly messageBytes: number;
  readonly messages: number;
  /** Publishes outstanding at once (waiting for their ack). */
  readonly concurrency: number;
  /** Stream name; default "BENCH". Its subject is "<name lower-case>.publish". */
  readonly stream?: string;
  /** Warm-up messages, not measured. Default 1,000. */
  readonly warmupMessages?: number;
  /** Ack timeout per publish. Default 10 s (a shared 2-core machine can stall). */
  readonly ackTimeoutMs?: number;
  /**
   * Percentiles (0 < p ≤ 100) to report in `percentilesMs`, e.g. for a latency CDF. Left out when not
   * given, so existing callers' results are unchanged.
   */
  readonly percentiles?: readonly number[];
  /** Processes (name → pid) whose CPU time over the measured window is reported in `cpu`. */
  readonly cpuOf?: ReadonlyMap<string, number>;
}

/** One point of a latency distribution: `ms` is the nearest-rank p-th percentile. */
export interface LatencyPercentile {
  readonly p: number;
  readonly ms: number;
}

export interface JetStreamPublishResult {
  readonly messagesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Measured messages (warm-up excluded). */
  readonly messages: number;
  readonly seconds: number;
  /** The server that led the stream's Raft group (where publishes were stored first). */
  readonly streamLeader: string;
  /** The server the client was connected to. */
  readonly connectedTo: string;
  /** Only when `percentiles` was given. */
  readonly percentilesMs?: readonly LatencyPercentile[];
  /** Only when `cpuOf` was given: CPU per message of those processes and of this client. */
  readonly cpu?: CpuPerMessage;
}

/** Nearest-rank percentile of an ascending-sorted array. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1] as number;
}

/** Stream creation right after the meta leader appears can fail while peers catch up: retry briefly. */
export async function addStream(jsm: JetStreamManager, name: string, subject: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const info = await jsm.streams.add({
        name,
        subjects: [subject],
        storage: StorageType.File,
        num_replicas: 3,
      });
      if (info.cluster?.leader) return info.cluster.leader;
      // Created but no leader elected yet: ask again below.
      for (;;) {
        const again = await jsm.streams.info(name);
        if (again.cluster?.leader) return again.cluster.leader;
        if (Date.now() > deadline) throw new Error(`stream ${name} has no leader after 20 s`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** Publishes payloads[0..n) with `concurrency` lanes; fills latencies[i] (ms) when given. */
async function publishWindow(
  js: JetStreamClient,
  subject: string,
  payloads: readonly Uint8Array[],
  concurrency: number,
  timeout: number,
  latencies?: Float64Array,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < payloads.length) {
      const index = next;
      next += 1;
      const start = performance.now();
      await js.publish(subject, payloads[index], { timeout });
      if (latencies !== undefined) latencies[index] = performance.now() - start;
    }
  };
  const lanes = Array.from({ length: Math.min(concurrency, payloads.length) }, lane);
  // Every lane must settle before we return, so nothing publishes into a stream being deleted.
  const outcomes = await Promise.allSettled(lanes);
  const failed = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

function makePayloads(count: number, bytes: number): Uint8Array[] {
  const pool = randomBytes(count * bytes);
  return Array.from({ length: count }, (_, i) => pool.subarray(i * bytes, (i + 1) * bytes));
}

export async function measureJetStreamPublish(
  options: JetStreamPublishOptions,
): Promise<JetStreamPublishResult> {
  const { messageBytes, messages, concurrency } = options;
  for (const [name, value] of Object.entries({ messageBytes, messages, concurrency })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  }
  const streamName = options.stream ?? 'BENCH';
  const subject = `${streamName.toLowerCase()}.publish`;
  const warmupMessages = options.warmupMessages ?? 1000;
  const timeout = options.ackTimeoutMs ?? 10_000;

  const nc = await connect({ servers: options.urls, noRandomize: true, name: 'ledgerbus-bench' });
  try {
    const jsm = await jetstreamManager(nc);
    const streamLeader = await addStream(jsm, streamName, subject);
    let measured = false;
    try {
      const js = jetstream(nc, { timeout });
      const warmup = makePayloads(warmupMessages, messageBytes);
      const payloads = makePayloads(messages, messageBytes);
      const latencies = new Float64Array(messages);

      if (warmupMessages > 0) await publishWindow(js, subject, warmup, concurrency, timeout);
      const cpuBefore = options.cpuOf === undefined ? undefined : sampleCpu(options.cpuOf);
      const start = performance.now();
      await publishWindow(js, subject, payloads, concurrency, timeout, latencies);
      const seconds = (performance.now() - start) / 1000;
      const cpu =
        options.cpuOf === undefined || cpuBefore === undefined
          ? undefined
          : cpuPerMessage(cpuBefore, sampleCpu(options.cpuOf), messages, seconds);

      latencies.sort();
      measured = true;
      return {
        messagesPerSecond: messages / seconds,
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
        messages,
        seconds,
        streamLeader,
        connectedTo: nc.info?.server_name ?? 'unknown',
        ...(cpu === undefined ? {} : { cpu }),
        ...(options.percentiles === undefined
          ? {}
          : {
              percentilesMs: options.percentiles.map((p) => ({ p, ms: percentile(latencies, p / 100) })),
            }),
      };
    } finally {
      // A failed delete must not hide the error that stopped the measurement.
      await jsm.streams.delete(streamName).catch((error: unknown) => {
        if (measured) throw error;
      });
    }
  } finally {
    await nc.close();
  }
}
