/**
 * The load and the bookkeeping bench/e2e.ts applies to ledgerbus and to JetStream alike, so that both
 * are driven and counted by one piece of code.
 *
 * Every payload carries its own stamp in its first bytes: the setting it belongs to (a phase number),
 * its index, and the moment its `send` was called (performance.now(), written just before the call).
 * The receiving side reads the stamp back out of what it was handed, so an end-to-end latency is only
 * counted for bytes that really came through, and a message handed out twice, never handed out, or
 * not one of ours is seen as such.
 *
 * A setting keeps `inFlight` callers busy, each sending one message at a time and sending the next as
 * soon as its send resolves; it ends when its last message is delivered. Delivered messages/s is the
 * setting's count over the time from its first send to its last delivery.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { cpuPerMessage, sampleCpu } from './cpu-usage.js';
import type { CpuPerMessage } from './cpu-usage.js';

/** Bytes of a payload the stamp takes: phase (1), index (4), send time (8). */
export const stampBytes = 13;
const phaseAt = 0;
const indexAt = 1;
const sentAtAt = 5;

/** What identifies a message by id where a system has ids (ledgerbus): its phase and index. */
export function messageId(phase: number, index: number): string {
  return `e2e-${phase}-${index}`;
}

/** Random payloads of `bytes`, each already stamped with its phase and index (not its send time). */
export function makePayloads(phase: number, count: number, bytes: number): Buffer[] {
  if (bytes < stampBytes) throw new Error(`payloads need at least ${stampBytes} bytes for their stamp`);
  const pool = randomBytes(count * bytes);
  return Array.from({ length: count }, (_, index) => {
    const payload = pool.subarray(index * bytes, (index + 1) * bytes);
    payload.writeUInt8(phase, phaseAt);
    payload.writeUInt32BE(index, indexAt);
    return payload;
  });
}

interface Stamp {
  readonly phase: number;
  readonly index: number;
  readonly sentAt: number;
}

function readStamp(bytes: Uint8Array): Stamp | undefined {
  if (bytes.length < stampBytes) return undefined;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    phase: view.readUInt8(phaseAt),
    index: view.readUInt32BE(indexAt),
    sentAt: view.readDoubleBE(sentAtAt),
  };
}

/** Nearest-rank percentile (0 < p ≤ 100) of ascending-sorted values. */
export function nearestRank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number;
}

/** One setting's messages: which arrived, how often, and how long each took. */
export class PhaseTracker {
  readonly sendMs: Float64Array;
  readonly endToEndMs: Float64Array;
  /** Send → stored by the recipient's connector (ledgerbus only: NaN where the system does not say). */
  readonly storedMs: Float64Array;
  private readonly seen: Uint8Array;
  delivered = 0;
  duplicates = 0;
  wrongSize = 0;
  lastDeliveryAt = 0;
  private wake: (() => void) | undefined;

  constructor(
    readonly phase: number,
    readonly count: number,
    readonly messageBytes: number,
  ) {
    this.sendMs = new Float64Array(count);
    this.endToEndMs = new Float64Array(count);
    this.storedMs = new Float64Array(count).fill(Number.NaN);
    this.seen = new Uint8Array(count);
  }

  arrived(index: number, size: number, endToEndMs: number, now: number, storedMs: number): void {
    if (size !== this.messageBytes) this.wrongSize += 1;
    if (this.seen[index] === 1) {
      this.duplicates += 1;
      return;
    }
    this.seen[index] = 1;
    this.endToEndMs[index] = endToEndMs;
    this.storedMs[index] = storedMs;
    this.delivered += 1;
    this.lastDeliveryAt = now;
    if (this.delivered === this.count) this.wake?.();
  }

  /** Indices never delivered (the first few), for the error that reports them. */
  missing(limit = 10): number[] {
    const found: number[] = [];
    for (let index = 0; index < this.count && found.length < limit; index++)
      if (this.seen[index] === 0) found.push(index);
    return found;
  }

  /**
   * Resolves once every message was delivered; rejects when `stallMs` pass without a delivery (a lost
   * message would otherwise hang the bench) or `failed()` reports that the receiving side gave up.
   */
  async complete(stallMs: number, failed: () => Error | undefined): Promise<void> {
    const waitingSince = performance.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        const error = failed();
        const quietMs = performance.now() - Math.max(this.lastDeliveryAt, waitingSince);
        if (error === undefined && quietMs < stallMs) return;
        clearInterval(timer);
        reject(
          error ??
            new Error(
              `${this.count - this.delivered} of ${this.count} messages of phase ${this.phase} were not delivered ` +
                `${Math.round(stallMs / 1000)} s after the last delivery (first missing indices: ${this.missing().join(', ')})`,
            ),
        );
      }, 250);
      this.wake = () => {
        clearInterval(timer);
        resolve();
      };
      if (this.delivered === this.count) this.wake();
    });
  }
}

/** Everything one receiver is handed, routed to the tracker of its phase. */
export class Deliveries {
  private readonly trackers = new Map<number, PhaseTracker>();
  /** Handed-out messages that were none of ours, or whose id and stamp disagree. */
  strangers = 0;
  private failure: Error | undefined;

  track(phase: number, count: number, messageBytes: number): PhaseTracker {
    if (this.trackers.has(phase)) throw new Error(`phase ${phase} is tracked already`);
    const tracker = new PhaseTracker(phase, count, messageBytes);
    this.trackers.set(phase, tracker);
    return tracker;
  }

  /**
   * A message handed to the application at `now` (performance.now()); `id` is checked against the
   * stamp when the system has ids; `storedAt` (ms since the epoch) is when the recipient's side stored
   * it, where the system says.
   */
  receive(value: Uint8Array | null, now: number, id?: string, storedAt?: number): void {
    const stamp = value === null ? undefined : readStamp(value);
    const tracker = stamp === undefined ? undefined : this.trackers.get(stamp.phase);
    if (
      stamp === undefined ||
      tracker === undefined ||
      stamp.index >= tracker.count ||
      (id !== undefined && id !== messageId(stamp.phase, stamp.index))
    ) {
      this.strangers += 1;
      return;
    }
    // Wall clock against this process's monotonic one: both read the same system clock, so over a
    // bench's minutes they agree to about a millisecond, which is the stored time's resolution anyway.
    const storedMs = storedAt === undefined ? Number.NaN : storedAt - (performance.timeOrigin + stamp.sentAt);
    tracker.arrived(stamp.index, value?.length ?? 0, now - stamp.sentAt, now, storedMs);
  }

  /** The receiving side stopped for good (e.g. the consumer crashed): waiting settings reject. */
  fail(error: Error): void {
    this.failure ??= error;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** What went wrong over all phases so far: duplicates, strangers, wrong sizes, undelivered messages. */
  problems(): string[] {
    const problems: string[] = [];
    if (this.failure !== undefined) problems.push(`the receiver failed: ${this.failure.message}`);
    if (this.strangers > 0) problems.push(`${this.strangers} messages handed out that were not sent`);
    for (const tracker of this.trackers.values()) {
      const { phase } = tracker;
      if (tracker.duplicates > 0) problems.push(`phase ${phase}: ${tracker.duplicates} delivered twice`);
      if (tracker.wrongSize > 0) problems.push(`phase ${phase}: ${tracker.wrongSize} of the wrong size`);
      if (tracker.delivered < tracker.count)
        problems.push(`phase ${phase}: ${tracker.count - tracker.delivered} of ${tracker.count} lost`);
    }
    return problems;
  }
}

export interface SettingOptions {
  /** 0..255, distinct per setting on one receiver (warm-ups included). */
  readonly phase: number;
  readonly inFlight: number;
  readonly messages: number;
  readonly messageBytes: number;
  /** How long without a delivery, once every send resolved, counts as a loss. */
  readonly stallMs: number;
  /** Processes (name → pid) whose CPU over the setting is reported; without it, no `cpu`. */
  readonly cpuOf?: ReadonlyMap<string, number>;
}

export interface SettingResult {
  readonly inFlight: number;
  readonly messageBytes: number;
  readonly messages: number;
  /** From the first send to the last delivery. */
  readonly seconds: number;
  readonly deliveredPerSecond: number;
  /** Messages over the time from the first send to the last acknowledgement: the sending side alone. */
  readonly ackedPerSecond: number;
  /** From the `send` call to the receiving application being handed the message. */
  readonly endToEndP50Ms: number;
  readonly endToEndP99Ms: number;
  /** From the `send` call to its acknowledgement. */
  readonly sendP50Ms: number;
  readonly sendP99Ms: number;
  /** From the `send` call to the recipient's connector storing the message, where the system says. */
  readonly storedP50Ms?: number;
  readonly storedP99Ms?: number;
  readonly cpu?: CpuPerMessage;
}

/** `send(payload, id)` resolves once the system acknowledged that one message. */
export type SendOne = (payload: Buffer, id: string) => Promise<void>;

/** Runs one setting to its last delivery and measures it. */
export async function runSetting(
  deliveries: Deliveries,
  send: SendOne,
  options: SettingOptions,
): Promise<SettingResult> {
  const { phase, inFlight, messages, messageBytes } = options;
  for (const [name, value] of Object.entries({ inFlight, messages, messageBytes }))
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  const payloads = makePayloads(phase, messages, messageBytes);
  const tracker = deliveries.track(phase, messages, messageBytes);
  let next = 0;
  const caller = async (): Promise<void> => {
    while (next < messages) {
      const index = next;
      next += 1;
      const payload = payloads[index] as Buffer;
      const started = performance.now();
      payload.writeDoubleBE(started, sentAtAt);
      await send(payload, messageId(phase, index));
      tracker.sendMs[index] = performance.now() - started;
    }
  };
  const cpuBefore = options.cpuOf === undefined ? undefined : sampleCpu(options.cpuOf);
  const started = performance.now();
  const outcomes = await Promise.allSettled(Array.from({ length: Math.min(inFlight, messages) }, caller));
  const failed = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  const ackedSeconds = (performance.now() - started) / 1000;
  await tracker.complete(options.stallMs, () => deliveries.failed);
  const cpu =
    options.cpuOf === undefined || cpuBefore === undefined
      ? undefined
      : cpuPerMessage(cpuBefore, sampleCpu(options.cpuOf), messages, (performance.now() - started) / 1000);
  const seconds = (tracker.lastDeliveryAt - started) / 1000;
  const endToEnd = Float64Array.from(tracker.endToEndMs).sort();
  const sends = Float64Array.from(tracker.sendMs).sort();
  const stored = tracker.storedMs.filter((ms) => !Number.isNaN(ms)).sort();
  return {
    inFlight,
    messageBytes,
    messages,
    seconds,
    deliveredPerSecond: messages / seconds,
    ackedPerSecond: messages / ackedSeconds,
    endToEndP50Ms: nearestRank(endToEnd, 50),
    endToEndP99Ms: nearestRank(endToEnd, 99),
    sendP50Ms: nearestRank(sends, 50),
    sendP99Ms: nearestRank(sends, 99),
    ...(stored.length === 0
      ? {}
      : { storedP50Ms: nearestRank(stored, 50), storedP99Ms: nearestRank(stored, 99) }),
    ...(cpu === undefined ? {} : { cpu }),
  };
}
