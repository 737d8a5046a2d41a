// lossyfs from tests: builds test/power-loss/lossyfs.c (gcc, libfuse3), mounts a directory on it,
// cuts the power (unsynced writes dropped, optionally a torn last write), unmounts and mounts again.
// What the file system keeps and drops is described at the top of lossyfs.c.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sleep } from '../support/processes.js';

const source = join(import.meta.dirname, 'lossyfs.c');

/** Why lossyfs cannot run here (no FUSE device, no fusermount3, no compiler or headers), or undefined. */
export function lossyfsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `lossyfs needs Linux (this is ${process.platform})`;
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse';
  for (const [command, what] of [
    ['fusermount3', 'fusermount3 (Debian package fuse3)'],
    ['gcc', 'gcc'],
  ] as const) {
    if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) return `no ${what}`;
  }
  if (!existsSync('/usr/include/fuse3/fuse.h')) return 'no libfuse3 headers (Debian package libfuse3-dev)';
  return undefined;
}

let built: string | undefined;

/** Compiles lossyfs.c once per source version (into the temporary directory); returns the binary. */
export function buildLossyfs(): string {
  if (built !== undefined) return built;
  const text = readFileSync(source);
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const directory = join(tmpdir(), 'ledgerbus-lossyfs');
  const binary = join(directory, `lossyfs-${digest}`);
  if (!existsSync(binary)) {
    mkdirSync(directory, { recursive: true });
    let flags = ['-I/usr/include/fuse3', '-lfuse3', '-lpthread'];
    const pkg = spawnSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' });
    if (pkg.status === 0) flags = pkg.stdout.trim().split(/\s+/);
    const temporary = `${binary}.${process.pid}.tmp`;
    execFileSync(
      'gcc',
      ['-O2', '-Wall', '-Wextra', '-Wno-format-truncation', '-o', temporary, source, ...flags],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    renameSync(temporary, binary); // atomic: a concurrent build by another test file is harmless
  }
  built = binary;
  return binary;
}

export type CutMode =
  | { readonly kind: 'drop' }
  /** The last unsynced write keeps its first `bytes` bytes (at most its length - 1). */
  | { readonly kind: 'torn'; readonly bytes: number }
  /** Each unsynced 4 KiB page survives or not, by `seed`. */
  | { readonly kind: 'random'; readonly seed: number };

export type MetadataMode = 'strict' | 'immediate';

/** The daemon's counters (see lossyfs.c, ctl_stats). */
export type LossyfsStats = Record<string, number>;

function parseStats(text: string): LossyfsStats {
  const stats: LossyfsStats = {};
  for (const pair of text.trim().split(/\s+/)) {
    const [key, value] = pair.split('=');
    if (key !== undefined && value !== undefined) stats[key] = Number(value);
  }
  return stats;
}

function mounted(mountpoint: string): boolean {
  const target = resolve(mountpoint);
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === target.replace(/ /g, '\\040'));
}

const live = new Set<LossyMount>();
process.once('exit', () => {
  for (const mount of live) spawnSync('fusermount3', ['-u', '-z', mount.mountpoint]);
});

/**
 * `mountpoint` shown by lossyfs over `backing`/root (the "disk"). One daemon per mount; after a
 * cut the mount is dead (EIO) until `remount`.
 */
export class LossyMount {
  private daemon: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';

  constructor(
    readonly backing: string,
    readonly mountpoint: string,
    readonly metadata: MetadataMode = 'strict',
  ) {}

  /** The directory holding what survived: the disk under the mount. */
  get disk(): string {
    return join(this.backing, 'root');
  }

  /**
   * Moves the existing directory `directory` onto a new disk at `backing` and mounts lossyfs over
   * it: what is in it now counts as durable.
   */
  static async adopt(
    directory: string,
    backing: string,
    metadata: MetadataMode = 'strict',
  ): Promise<LossyMount> {
    mkdirSync(backing, { recursive: true, mode: 0o700 });
    renameSync(directory, join(backing, 'root'));
    mkdirSync(directory, { mode: 0o700 });
    const mount = new LossyMount(backing, directory, metadata);
    await mount.mount();
    return mount;
  }

  async mount(timeoutMs = 10_000): Promise<void> {
    if (this.daemon !== undefined) throw new Error(`${this.mountpoint} is already mounted`);
    mkdirSync(this.backing, { recursive: true, mode: 0o700 });
    mkdirSync(this.mountpoint, { recursive: true });
    const daemon = spawn(
      buildLossyfs(),
      [
        `--meta=${this.metadata}`,
        '--verbose',
        this.backing,
        this.mountpoint,
        '-f',
        '-s',
        '-o',
        'fsname=lossyfs',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    daemon.stdout.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    daemon.stderr.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.daemon = daemon;
    this.exited = new Promise((done) => daemon.once('exit', () => done()));
    live.add(this);
    const deadline = Date.now() + timeoutMs;
    while (!mounted(this.mountpoint)) {
      if (daemon.exitCode !== null || daemon.signalCode !== null || Date.now() > deadline) {
        await this.unmount().catch(() => undefined);
        throw new Error(`lossyfs did not mount ${this.mountpoint}: ${this.output.trim() || 'timed out'}`);
      }
      await sleep(20);
    }
  }

  /** The power goes: unsynced data dropped (or torn), unsynced metadata undone; the mount is dead. */
  cut(mode: CutMode = { kind: 'drop' }): LossyfsStats {
    const command =
      mode.kind === 'drop'
        ? 'cut'
        : mode.kind === 'torn'
          ? `cut torn ${mode.bytes}`
          : `cut random ${mode.seed}`;
    writeFileSync(join(this.mountpoint, '.lossyfs-ctl'), command);
    return this.stats();
  }

  /** sync(2): everything pending (data and names) reaches the disk. */
  sync(): void {
    writeFileSync(join(this.mountpoint, '.lossyfs-ctl'), 'sync');
  }

  stats(): LossyfsStats {
    return parseStats(readFileSync(join(this.mountpoint, '.lossyfs-ctl'), 'utf8'));
  }

  /**
   * Unmounts (without a cut before it: a clean shutdown, everything pending written) and waits for
   * the daemon to exit. Retries while the mount is busy, then detaches it lazily.
   */
  async unmount(): Promise<void> {
    const daemon = this.daemon;
    if (daemon === undefined) return;
    for (let attempt = 0; mounted(this.mountpoint); attempt++) {
      const result = spawnSync('fusermount3', ['-u', ...(attempt >= 50 ? ['-z'] : []), this.mountpoint], {
        encoding: 'utf8',
      });
      if (result.status === 0) break;
      if (attempt >= 50) throw new Error(`cannot unmount ${this.mountpoint}: ${result.stderr}`);
      await sleep(100);
    }
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
    this.daemon = undefined;
    live.delete(this);
  }

  async remount(): Promise<void> {
    await this.unmount();
    await this.mount();
  }

  /** What the daemon printed (undo failures, libfuse messages). */
  get log(): string {
    return this.output;
  }
}
