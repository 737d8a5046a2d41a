/**
 * Reads V8 CPU profiles (`node --cpu-prof`) and says where the time went, by area of the system:
 * consensus, signature checks, contract execution, SQLite, encoding, proofs and hashing, TLS and
 * sockets, logging, garbage collection, other. Each sample goes to the area of the innermost frame
 * that belongs to one (a cborg call made by the contract counts as encoding; a SQLite step made by the
 * block store counts as SQLite), so areas never double count and sum to the busy time.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export const areas = [
  'signatures',
  'hashing',
  'encryption',
  'sqlite',
  'encoding',
  'consensus',
  'contracts',
  'proofs',
  'http',
  'tls and sockets',
  'logging',
  'garbage collection',
  'other',
] as const;
export type Area = (typeof areas)[number];

/** Ordered: the first rule a frame matches names its area. */
const rules: readonly { readonly area: Area; readonly test: (frame: CallFrame) => boolean }[] = [
  { area: 'garbage collection', test: (f) => f.functionName === '(garbage collector)' },
  {
    area: 'signatures',
    test: (f) =>
      f.url.includes('internal/crypto/sig') ||
      (f.url.includes('@noble/curves') && /verify|sign/i.test(f.functionName)) ||
      /^(verify|sign)(Ed25519)?$/.test(f.functionName),
  },
  {
    area: 'hashing',
    test: (f) => f.url.includes('internal/crypto/hash') || f.url.includes('@noble/hashes'),
  },
  {
    // The payload envelope: HPKE key wrapping (X25519, HKDF through WebCrypto) and AES-GCM.
    area: 'encryption',
    test: (f) =>
      f.url.includes('@hpke') ||
      /internal\/crypto\/(hkdf|keygen|cipher|aes|diffiehellman|webcrypto|util)/.test(f.url) ||
      f.url.includes('/src/crypto/envelope/'),
  },
  { area: 'sqlite', test: (f) => f.url.includes('better-sqlite3') },
  { area: 'encoding', test: (f) => f.url.includes('/cborg/') || f.url.includes('/src/codec/') },
  { area: 'logging', test: (f) => f.url.includes('/pino') || f.url.includes('sonic-boom') },
  {
    // Connectors' HTTP API (Fastify) and the SDK's side of it (fetch is undici).
    area: 'http',
    test: (f) =>
      /node:_http|node:http|\/(fastify|find-my-way|avvio|light-my-request|undici|ws)\//.test(f.url) ||
      f.url.includes('internal/deps/undici'),
  },
  {
    area: 'tls and sockets',
    test: (f) =>
      /node:(_tls|tls|net|internal\/stream_base|internal\/streams|stream)/.test(f.url) ||
      f.url.includes('/src/net/'),
  },
  { area: 'proofs', test: (f) => f.url.includes('/src/proofs/') || /merkle/i.test(f.url) },
  { area: 'consensus', test: (f) => f.url.includes('/src/consensus/') || f.url.includes('/src/raft') },
  { area: 'contracts', test: (f) => f.url.includes('/src/contracts/') },
];

function areaOfFrame(frame: CallFrame): Area | undefined {
  for (const rule of rules) if (rule.test(frame)) return rule.area;
  return undefined;
}

export interface ProfileSummary {
  /** Milliseconds of samples that were not idle. */
  readonly busyMs: number;
  readonly byAreaMs: Readonly<Record<Area, number>>;
  /** The functions with the most self time, for the report's "where exactly". */
  readonly topSelf: readonly { readonly name: string; readonly ms: number }[];
}

/**
 * A window in microseconds of the machine's monotonic clock, which V8 stamps profiles with and which
 * `monotonicMicros()` reads in any process: only samples inside it count.
 */
export interface ProfileWindow {
  readonly fromMicros: number;
  readonly toMicros: number;
}

export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function summarizeProfile(profile: CpuProfile, window?: ProfileWindow, top = 15): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const areaCache = new Map<number, Area>();
  const areaOf = (id: number): Area => {
    const cached = areaCache.get(id);
    if (cached !== undefined) return cached;
    let area: Area = 'other';
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
      const node = byId.get(current);
      const found = node === undefined ? undefined : areaOfFrame(node.callFrame);
      if (found !== undefined) {
        area = found;
        break;
      }
    }
    areaCache.set(id, area);
    return area;
  };
  const byAreaMs = Object.fromEntries(areas.map((area) => [area, 0])) as Record<Area, number>;
  const self = new Map<string, number>();
  let busyMs = 0;
  let at = profile.startTime;
  for (let index = 0; index < profile.samples.length; index++) {
    at += profile.timeDeltas[index] ?? 0;
    if (window !== undefined && (at < window.fromMicros || at > window.toMicros)) continue;
    const id = profile.samples[index] as number;
    // A sample's time is the delta to the next sample.
    const ms = (profile.timeDeltas[index + 1] ?? 0) / 1000;
    const node = byId.get(id);
    if (node === undefined || ms <= 0) continue;
    const name = node.callFrame.functionName;
    if (name === '(idle)') continue;
    busyMs += ms;
    byAreaMs[areaOf(id)] += ms;
    const url = node.callFrame.url.replace(/^.*\/(src|node_modules)\//, '$1/');
    const key = `${name || '(anonymous)'} ${url}`;
    self.set(key, (self.get(key) ?? 0) + ms);
  }
  const topSelf = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => ({ name, ms: Math.round(ms) }));
  return { busyMs: Math.round(busyMs), byAreaMs, topSelf };
}

/** Summaries of every `.cpuprofile` in a directory (one per process that exited cleanly). */
export function summarizeProfiles(
  directory: string,
  window?: ProfileWindow,
): { file: string; summary: ProfileSummary }[] {
  return readdirSync(directory)
    .filter((file) => file.endsWith('.cpuprofile'))
    .sort()
    .map((file) => ({
      file,
      summary: summarizeProfile(
        JSON.parse(readFileSync(join(directory, file), 'utf8')) as CpuProfile,
        window,
      ),
    }));
}

export interface CpuBreakdown {
  /** Microseconds of CPU per message in each area, all profiled processes together. */
  readonly byAreaMicros: Readonly<Record<Area, number>>;
  /** The functions with the most self time in the first profiled process (for "where exactly"). */
  readonly topSelf: readonly { readonly name: string; readonly ms: number }[];
}

/**
 * Where the CPU of the processes profiled under `directories` went, per message, in `window`. A
 * sampling profiler counts wall time on the stack — a process waiting for a core or for an fsync
 * inside SQLite still collects samples — so each process's areas are taken as shares of its busy
 * samples and scaled to the CPU time /proc measured for it (`cpuMicrosPerMessage[i]`, same order).
 */
export function cpuBreakdown(
  directories: readonly string[],
  window: ProfileWindow,
  cpuMicrosPerMessage: readonly number[],
): CpuBreakdown {
  const byAreaMicros = Object.fromEntries(areas.map((area) => [area, 0])) as Record<Area, number>;
  let topSelf: CpuBreakdown['topSelf'] = [];
  directories.forEach((directory, index) => {
    const summaries = summarizeProfiles(directory, window).map(({ summary }) => summary);
    const busyMs = summaries.reduce((sum, summary) => sum + summary.busyMs, 0);
    if (busyMs === 0) return;
    const micros = cpuMicrosPerMessage[index] ?? 0;
    for (const summary of summaries)
      for (const area of areas) byAreaMicros[area] += (summary.byAreaMs[area] / busyMs) * micros;
    if (index === 0) topSelf = summaries.flatMap((summary) => summary.topSelf);
  });
  for (const area of areas) byAreaMicros[area] = Math.round(byAreaMicros[area] * 10) / 10;
  return { byAreaMicros, topSelf };
}
