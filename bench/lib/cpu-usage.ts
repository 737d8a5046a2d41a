/**
 * CPU time of whole processes, read from /proc/<pid>/stat (user + system, every thread), so that a
 * benchmark can report CPU microseconds per message summed over every process that served it — the
 * figure that decides throughput on a shared machine, measured the same way for ledgerbus's nodes and
 * for nats-server. The bench's own process is counted through process.cpuUsage().
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds of `pid` so far; throws when the process is gone. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond;
}

export interface CpuSample {
  readonly bySeconds: ReadonlyMap<string, number>;
}

/** CPU seconds of each named process (and of this one, as 'bench client') at this moment. */
export function sampleCpu(processes: ReadonlyMap<string, number>): CpuSample {
  const bySeconds = new Map<string, number>();
  for (const [name, pid] of processes) bySeconds.set(name, processCpuSeconds(pid));
  const own = process.cpuUsage();
  bySeconds.set('bench client', (own.user + own.system) / 1e6);
  return { bySeconds };
}

export interface CpuPerMessage {
  /** Microseconds of CPU per message, all processes together. */
  readonly totalMicros: number;
  /** The same, per process. */
  readonly byProcessMicros: Readonly<Record<string, number>>;
  /** CPU seconds used in the window over its wall seconds: how many cores were busy on average. */
  readonly coresBusy: number;
}

export function cpuPerMessage(
  before: CpuSample,
  after: CpuSample,
  messages: number,
  wallSeconds: number,
): CpuPerMessage {
  const byProcessMicros: Record<string, number> = {};
  let totalSeconds = 0;
  for (const [name, end] of after.bySeconds) {
    const used = end - (before.bySeconds.get(name) ?? end);
    totalSeconds += used;
    byProcessMicros[name] = Math.round((used * 1e6) / messages);
  }
  return {
    totalMicros: Math.round((totalSeconds * 1e6) / messages),
    byProcessMicros,
    coresBusy: Math.round((totalSeconds / wallSeconds) * 100) / 100,
  };
}
