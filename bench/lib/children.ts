/**
 * Child processes of a benchmark: started from this repository's TypeScript sources with tsx's
 * loader (`node --import tsx/dist/loader.mjs file.ts ...`, so the pid is the Node process itself and
 * /proc/<pid> describes it), remembered, and stopped in one place: `stopAll()` from a `finally`
 * and from SIGINT/SIGTERM handlers, and a SIGKILL of survivors if this process exits without it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));
const tsxLoader = pathToFileURL(join(repositoryRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export interface TrackedChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** JSON objects the child printed on stdout (one per line), in order; other lines are ignored. */
  readonly messages: Record<string, unknown>[];
  /** The last few KiB of its stderr, for error messages. */
  stderrTail: string;
}

const tracked: TrackedChild[] = [];

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

process.on('exit', () => {
  for (const entry of tracked) if (!exited(entry.child)) entry.child.kill('SIGKILL');
});

/** Starts `node --import <tsx loader> <script> ...args` and tracks it. */
export function spawnTypeScript(
  name: string,
  script: string,
  args: readonly string[],
  options: { cwd?: string; stdio?: StdioOptions } = {},
): TrackedChild {
  return spawnNode(name, ['--import', tsxLoader, script, ...args], options);
}

/** Starts `node ...nodeArgs` (this process's Node binary) and tracks it. */
export function spawnNode(
  name: string,
  nodeArgs: readonly string[],
  options: { cwd?: string; stdio?: StdioOptions } = {},
): TrackedChild {
  const child = spawn(process.execPath, nodeArgs, {
    cwd: options.cwd ?? repositoryRoot,
    stdio: options.stdio ?? ['pipe', 'pipe', 'pipe'],
  });
  // A spawn failure is an 'error' event; without a listener it would crash this process.
  child.on('error', () => undefined);
  if (child.pid === undefined) throw new Error(`could not start ${name} (node ${nodeArgs.join(' ')})`);
  const entry: TrackedChild = { name, child, pid: child.pid, messages: [], stderrTail: '' };
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        const value: unknown = JSON.parse(line);
        if (typeof value === 'object' && value !== null) {
          entry.messages.push(value as Record<string, unknown>);
          child.emit('json');
        }
      } catch {
        // not JSON: a log line
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    entry.stderrTail = (entry.stderrTail + chunk.toString()).slice(-4000);
  });
  tracked.push(entry);
  return entry;
}

export function waitForExit(child: ChildProcess): Promise<void> {
  if (exited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM to `entries` (default: every tracked child), SIGKILL after `graceMs`; resolves once all exited. */
export async function stopChildren(
  entries: readonly TrackedChild[] = tracked,
  graceMs = 10_000,
): Promise<void> {
  await Promise.all(
    entries.map(async ({ child }) => {
      if (exited(child)) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await waitForExit(child);
      clearTimeout(timer);
    }),
  );
}

/**
 * Resolves with the first JSON object the child printed (or prints) for which `accept` is true;
 * rejects if the child exits first or `timeoutMs` passes.
 */
export function nextJsonLine<T>(
  entry: TrackedChild,
  accept: (value: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<T> {
  const { child } = entry;
  return new Promise<T>((resolve, reject) => {
    const check = (): boolean => {
      const found = entry.messages.find(accept);
      if (found === undefined) return false;
      finish();
      resolve(found as T);
      return true;
    };
    const onExit = (code: number | null, signal: string | null): void => {
      // Lines printed just before exiting may still be in the pipe: look once more, shortly after.
      setTimeout(() => {
        if (check()) return;
        finish();
        reject(new Error(`${entry.name} exited (${signal ?? code}) before answering:\n${entry.stderrTail}`));
      }, 100);
    };
    const finish = (): void => {
      clearTimeout(timer);
      child.off('json', check);
      child.off('exit', onExit);
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`${entry.name} did not answer within ${timeoutMs} ms:\n${entry.stderrTail}`));
    }, timeoutMs);
    child.on('json', check);
    if (check()) return;
    if (exited(child)) onExit(child.exitCode, child.signalCode);
    else child.once('exit', onExit);
  });
}
