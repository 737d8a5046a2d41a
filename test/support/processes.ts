/**
 * The one way the tests and the benchmarks start child processes.
 *
 * A child is `node --import <tsx loader> script.ts ...` (so its pid is the Node process itself and
 * /proc/<pid> describes it), or any other command (nats-server). Every child is tracked from spawn to
 * exit: if this process exits while some are still running (a crash, a test timeout, a forgotten
 * stop), they are SIGKILLed, so no child outlives its parent. `stopChildren` is the orderly way:
 * SIGTERM, then SIGKILL for whatever is left after a grace period.
 *
 * A child either writes stdout and stderr to a log file (`log`: appended, behind a header line that
 * says when it started, so a restarted process keeps one file), or to pipes: then each JSON object it
 * prints on a line of stdout is collected in `messages` (`nextJsonLine` waits for one) and the last
 * few KiB of stderr are kept for error messages.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const repositoryRoot = join(import.meta.dirname, '..', '..');
export const tsxLoader = pathToFileURL(
  join(repositoryRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs'),
).href;
/** The CLI from the TypeScript sources (through tsx). */
export const cliEntry = join(repositoryRoot, 'src', 'cli', 'run.ts');
/** The CLI from the build (`npm run build` first): no tsx, about 25 MiB less resident memory. */
export const builtCliEntry = join(repositoryRoot, 'bin', 'ledgerbus.js');

/**
 * Whether `dist/` holds the compiled form of every source file the build compiles, each compiled
 * after its source was last written. `npm ci` builds (the `prepare` script), so a fresh checkout
 * has a current build; a source edited since makes it stale until `npm run build`.
 */
export function buildIsCurrent(): boolean {
  const sources = join(repositoryRoot, 'src');
  const compiled = join(repositoryRoot, 'dist');
  const walk = (directory: string): boolean =>
    readdirSync(directory, { withFileTypes: true }).every((entry) => {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) return entry.name === 'testing' || walk(path);
      if (!entry.name.endsWith('.ts') || entry.name.endsWith('.test.ts')) return true;
      const output = join(compiled, path.slice(sources.length + 1).replace(/\.ts$/, '.js'));
      try {
        return statSync(output).mtimeMs >= statSync(path).mtimeMs;
      } catch {
        return false;
      }
    });
  return walk(sources);
}

let cliRuntime: 'dist' | 'tsx' | undefined;

/**
 * How tests run the `ledgerbus` CLI: from the build when it is current (a process then starts on
 * about 60% of the CPU that tsx needs, which adds up over the hundreds of processes the tests
 * start), from the sources through tsx otherwise, so that no test runs stale code.
 * LEDGERBUS_TEST_RUNTIME=tsx forces the sources.
 */
export function testCliRuntime(): 'dist' | 'tsx' {
  cliRuntime ??= process.env['LEDGERBUS_TEST_RUNTIME'] !== 'tsx' && buildIsCurrent() ? 'dist' : 'tsx';
  return cliRuntime;
}

/** The `node` arguments that run the `ledgerbus` CLI in tests, before the CLI's own arguments. */
export function cliNodeArgs(): string[] {
  return testCliRuntime() === 'dist' ? [builtCliEntry] : ['--import', tsxLoader, cliEntry];
}

const stderrTailChars = 4000;

export interface StartOptions {
  /** Working directory; the repository root by default. */
  readonly cwd?: string;
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Append stdout and stderr to this file (stdin is closed); otherwise `stdio` applies. */
  readonly log?: string;
  /** Without `log`: default pipes for all three, stdout read as JSON lines, stderr's tail kept. */
  readonly stdio?: StdioOptions;
  /** Flags for the Node runtime itself, before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  readonly nodeFlags?: readonly string[];
}

export interface TrackedChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<void>;
  /** The log file, when started with `log`. */
  readonly log?: string;
  /** JSON objects the child printed on stdout (one per line), in order; other lines are ignored. */
  readonly messages: Record<string, unknown>[];
  /** The last few KiB of its stderr (piped stderr only), for error messages. */
  stderrTail: string;
}

const tracked = new Set<TrackedChild>();

process.on('exit', () => {
  for (const entry of tracked) if (isRunning(entry.child)) entry.child.kill('SIGKILL');
});

/** True until the process has exited or been killed by a signal. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Starts `command ...args` and tracks it until it exits. Throws if it cannot be started at all. */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: StartOptions = {},
): TrackedChild {
  let stdio: StdioOptions = options.stdio ?? ['pipe', 'pipe', 'pipe'];
  let logFd: number | undefined;
  if (options.log !== undefined) {
    logFd = openSync(options.log, 'a');
    const extra = Object.entries(options.env ?? {}).map(([key, value]) => ` ${key}=${value}`);
    writeSync(logFd, `\n---- ${new Date().toISOString()} start ${name}${extra.join('')} ----\n`);
    stdio = ['ignore', logFd, logFd];
  }
  let child: ChildProcess;
  try {
    child = spawn(command, args, {
      cwd: options.cwd ?? repositoryRoot,
      env: options.env === undefined ? process.env : { ...process.env, ...options.env },
      stdio,
    });
  } finally {
    // The child holds its own copy of the descriptor.
    if (logFd !== undefined) closeSync(logFd);
  }
  // A spawn failure (ENOENT...) is an 'error' event; without a listener it would crash this process.
  child.on('error', () => undefined);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command} ${args.join(' ')})`);
  const entry: TrackedChild = {
    name,
    child,
    pid: child.pid,
    exited: new Promise((resolve) => child.once('exit', () => resolve())),
    ...(options.log === undefined ? {} : { log: options.log }),
    messages: [],
    stderrTail: '',
  };
  readJsonLines(entry);
  child.stderr?.on('data', (chunk: Buffer) => {
    entry.stderrTail = (entry.stderrTail + chunk.toString()).slice(-stderrTailChars);
  });
  tracked.add(entry);
  void entry.exited.then(() => tracked.delete(entry));
  return entry;
}

/** Starts `node ...nodeArgs` with this process's Node binary. */
export function startNode(
  name: string,
  nodeArgs: readonly string[],
  options: StartOptions = {},
): TrackedChild {
  return startProcess(name, process.execPath, [...(options.nodeFlags ?? []), ...nodeArgs], options);
}

/** Starts `node --import <tsx loader> <script> ...args`: a TypeScript file of this repository. */
export function startTypeScript(
  name: string,
  script: string,
  args: readonly string[],
  options: StartOptions = {},
): TrackedChild {
  return startNode(name, ['--import', tsxLoader, script, ...args], options);
}

/**
 * Starts a TypeScript script and waits for the JSON line `ready` accepts. A child that has printed
 * nothing after `startupMs` is killed and started again, up to `attempts` times in all: under
 * Node 20, a child whose module loader (tsx's hooks thread) deadlocks at start-up hangs for good
 * with almost no CPU, which a long run should not die of.
 */
export async function startTypeScriptReady<T>(
  name: string,
  script: string,
  args: readonly string[],
  ready: (value: Record<string, unknown>) => boolean,
  options: StartOptions & { startupMs?: number; attempts?: number } = {},
): Promise<{ child: TrackedChild; ready: T }> {
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    const child = startTypeScript(name, script, args, options);
    try {
      return { child, ready: await nextJsonLine<T>(child, ready, options.startupMs ?? 30_000) };
    } catch (error) {
      const silent = child.messages.length === 0 && isRunning(child.child);
      await stopChildren([child], 1_000);
      if (!silent || attempt >= attempts) throw error;
      process.stderr.write(
        `${name} printed nothing in ${options.startupMs ?? 30_000} ms; starting it again\n`,
      );
    }
  }
}

/** Starts the `ledgerbus` CLI with `args` (e.g. `node --config FILE`), as `cliNodeArgs` says. */
export function startCli(name: string, args: readonly string[], options: StartOptions = {}): TrackedChild {
  return startNode(name, [...cliNodeArgs(), ...args], options);
}

function readJsonLines(entry: TrackedChild): void {
  let pending = '';
  entry.child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        const value: unknown = JSON.parse(line);
        if (typeof value === 'object' && value !== null) {
          entry.messages.push(value as Record<string, unknown>);
          entry.child.emit('json');
        }
      } catch {
        // not JSON: a log line
      }
    }
  });
}

export function waitForExit(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * SIGTERM to `entries` (default: every child still running), SIGKILL to those still there after
 * `graceMs`; resolves once all have exited.
 */
export async function stopChildren(
  entries: Iterable<TrackedChild> = tracked,
  graceMs = 10_000,
): Promise<void> {
  await Promise.all(
    [...entries].map(async ({ child }) => {
      if (!isRunning(child)) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await waitForExit(child);
      clearTimeout(timer);
    }),
  );
}

/**
 * On the first SIGINT or SIGTERM: says so on stderr, runs `cleanUp` (which stops what this process
 * started and removes its files), then exits with 130 or 143. Children left running are SIGKILLed at
 * exit in any case.
 */
export function cleanUpOnSignals(what: string, cleanUp: (signal: NodeJS.Signals) => Promise<void>): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: ${what}\n`);
      void cleanUp(signal).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
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
    if (!isRunning(child)) onExit(child.exitCode, child.signalCode);
    else child.once('exit', onExit);
  });
}

/**
 * Resolves if nothing listens on `host:port`; rejects naming `what` and, if it is taken, `remedy`.
 * For benchmarks, which must not measure (or disturb) another run on a shared machine.
 */
export async function assertPortFree(
  host: string,
  port: number,
  what: string,
  remedy: string,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === 'EADDRINUSE'
            ? `${host}:${port} (${what}) is already in use: ${remedy}`
            : `cannot check ${host}:${port} (${what}): ${error.message}`,
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** The last `lines` lines of a log file, or a note that there is none. */
export function logTail(file: string, lines = 30): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return `(no log ${file})`;
  }
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined and resolves with
 * it; a probe that throws counts as "not yet". Rejects after `timeoutMs`, naming `what` and the
 * probe's last error.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}
