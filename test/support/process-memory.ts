/**
 * Resident memory and CPU time of processes, read from Linux's /proc: `VmRSS` (resident now) and
 * `VmHWM` (the kernel's own high-water mark of VmRSS over the process's whole life, start-up
 * included) from /proc/<pid>/status, user + system CPU seconds from /proc/<pid>/stat.
 * `RssSampler` polls a set of named processes every `intervalMs` and keeps each one's peak VmRSS
 * over the sampling window and the latest VmHWM (which misses no spike between samples, but can only
 * be read while the process is alive: sample once more before stopping them).
 */
import { readFileSync } from 'node:fs';

export interface ProcessMemory {
  /** Current resident set, bytes. */
  readonly rssBytes: number;
  /** Lifetime peak resident set, bytes. */
  readonly hwmBytes: number;
}

/** VmRSS and VmHWM of `pid`, or undefined if it is gone (or this is not Linux). */
export function readProcessMemory(pid: number): ProcessMemory | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): number | undefined => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
  };
  const rssBytes = field('VmRSS');
  const hwmBytes = field('VmHWM');
  if (rssBytes === undefined || hwmBytes === undefined) return undefined;
  return { rssBytes, hwmBytes };
}

/** User + system CPU seconds `pid` has used so far, or undefined if it is gone. */
export function readProcessCpuSeconds(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 here; Linux counts in 1/100 s.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / 100 : undefined;
}

export interface ProcessPeak {
  readonly name: string;
  readonly pid: number;
  /** Highest VmRSS seen by the sampler while it watched this process. */
  readonly sampledPeakBytes: number;
  /** The kernel's lifetime VmHWM as last read (at `hwm()` or the last sample), 0 if never read. */
  readonly hwmBytes: number;
  readonly samples: number;
}

interface Watched {
  name: string;
  pid: number;
  sampledPeakBytes: number;
  hwmBytes: number;
  samples: number;
}

export class RssSampler {
  private readonly watched = new Map<number, Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 200) {}

  /** Starts watching `pid` under `name` (sampled at once, then with the others). */
  watch(name: string, pid: number): void {
    if (!this.watched.has(pid)) {
      this.watched.set(pid, { name, pid, sampledPeakBytes: 0, hwmBytes: 0, samples: 0 });
    }
    this.sampleOne(this.watched.get(pid)!);
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  sample(): void {
    for (const entry of this.watched.values()) this.sampleOne(entry);
  }

  /** Peaks by process, in the order they were first watched. */
  peaks(): ProcessPeak[] {
    return [...this.watched.values()].map((entry) => ({ ...entry }));
  }

  private sampleOne(entry: Watched): void {
    const memory = readProcessMemory(entry.pid);
    if (memory === undefined) return;
    entry.samples += 1;
    entry.sampledPeakBytes = Math.max(entry.sampledPeakBytes, memory.rssBytes);
    entry.hwmBytes = Math.max(entry.hwmBytes, memory.hwmBytes);
  }
}
