/**
 * Runs one compute-to-data job in a child process of its own (DESIGN §8, issue 15: "a child
 * process with CPU-time and memory limits that is killed on time-out"). The owner's connector never
 * loads a dataset row: the child (job-runner.ts) opens the dataset file read-only, runs the job and
 * sends back only its output (and, for the owner's difference-check history, the rows it released).
 *
 * Limits, enforced from here, where a stuck SQLite query cannot stop them:
 * - wall clock: `policy.timeLimitMs` from the fork — the whole life of the child, start-up
 *   included — then SIGKILL and JOB_LIMIT_EXCEEDED. A single-threaded child uses at most as much
 *   CPU time as wall time, so this bounds its CPU time too;
 * - memory: the child's resident set (VmRSS, /proc/<pid>/status) is read every `memoryPollMs`;
 *   past `policy.memoryBytesMax`, SIGKILL and JOB_LIMIT_EXCEEDED. Its V8 heap is also capped
 *   (`--max-old-space-size`) at the same size, so a heap that outgrows it dies on its own, and that
 *   is reported the same way.
 * Nothing but Node is needed (no prlimit or cgroups). Whatever the child does — crash, hang, run
 * out of memory — this process only sees an exit; an unexpected one is JOB_FAILED with the tail of
 * the child's stderr.
 *
 * `runSandboxed` forks a runner per job; `JobSandbox` keeps one warm spare forked ahead, so a job
 * does not wait for Node to start (still one process per job).
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { FromRunner, JobRun, RunnerReply, SandboxJob, ToRunner } from './sandbox-job.js';

export type { JobRun, ReleasedRows, SandboxJob } from './sandbox-job.js';

export interface SandboxOptions {
  /** How often the child's resident memory is read; 50 ms by default. */
  readonly memoryPollMs?: number;
  /** Told, once the child is gone, what it cost (for logs, benchmarks and tests). */
  readonly observe?: (usage: SandboxUsage) => void;
}

export interface SandboxUsage {
  /** From the fork to the child's exit. */
  readonly elapsedMs: number;
  /** The largest resident set seen by the memory polls (0 if none ran or this is not Linux). */
  readonly peakResidentBytes: number;
  /** The runner's process id (undefined if it never started). */
  readonly pid: number | undefined;
}

const defaultMemoryPollMs = 50;
/** After its answer, the child exits by itself; one that does not within this is killed. */
const exitGraceMs = 1000;
const stderrTailChars = 4000;
const mib = 1024 * 1024;
/** setTimeout's largest delay; a longer limit would fire at once. */
const timerMaxMs = 2 ** 31 - 1;

/** From the TypeScript sources (tsx, vitest) the runner is forked as .ts, from the build as .js. */
const fromSources = import.meta.url.endsWith('.ts');
const runnerPath = fileURLToPath(
  new URL(fromSources ? './job-runner.ts' : './job-runner.js', import.meta.url),
);

/**
 * Children alive now: killed if this process exits, so none outlives the connector. Each leaves when
 * it exits: the job running (owner-jobs.ts runs one at a time) and the warm spare.
 */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Runs `job` in a child process forked for it alone; its wall clock starts at the fork. Resolves
 * with the job's output and the rows it released (the owner's, for its history); rejects with the job's own refusal (MIN_GROUP_SIZE, DIFFERENCE_CHECK...),
 * JOB_LIMIT_EXCEEDED when a limit killed it, or JOB_FAILED when it died without an answer.
 */
export function runSandboxed(job: SandboxJob, options: SandboxOptions = {}): Promise<JobRun> {
  const runner = new RunnerProcess(job.policy.memoryBytesMax);
  return execute(runner, job, options, runner.startedAt);
}

/**
 * `runSandboxed` with a warm spare: a runner forked ahead of time that has loaded its code and
 * waits, idle, for the next job, so a job's turnaround does not include starting Node (hundreds of
 * milliseconds; more from the TypeScript sources). Every process still runs exactly one job — the
 * spare holds no data before it gets one — and a new spare is forked once a job has finished, so it
 * does not compete with the job for the CPU. A job's clock starts when it is handed to the spare.
 * A spare is forked with one heap limit; a job whose policy asks for another gets a fresh fork.
 */
export class JobSandbox {
  private spare: RunnerProcess | undefined;
  private closed = false;

  /** `spareMemoryBytesMax`: the heap limit of the spares (the policy most jobs run under). */
  constructor(private readonly spareMemoryBytesMax: number) {
    this.replenish();
  }

  async run(job: SandboxJob, options: SandboxOptions = {}): Promise<JobRun> {
    if (this.closed) throw new Error('the job sandbox is closed');
    let runner = this.spare;
    if (runner !== undefined && !runner.exited && runner.memoryBytesMax === job.policy.memoryBytesMax) {
      this.spare = undefined;
      runner.hold();
    } else {
      runner = new RunnerProcess(job.policy.memoryBytesMax);
    }
    const clockStartsAt = runner.isReady ? performance.now() : runner.startedAt;
    try {
      return await execute(runner, job, options, clockStartsAt);
    } finally {
      // Forking takes tens of milliseconds: after the caller has its answer, not before.
      setImmediate(() => this.replenish());
    }
  }

  /** Resolves once a spare has started and waits for a job (or has died trying). */
  async warm(): Promise<void> {
    this.replenish();
    const spare = this.spare;
    if (spare === undefined) return;
    // Waiting on it must keep this process alive; idle again, it must not.
    spare.hold();
    try {
      await Promise.race([spare.ready, spare.closed]);
    } finally {
      if (this.spare === spare) spare.release();
    }
  }

  /** Stops the spare; jobs already running go on. */
  close(): void {
    this.closed = true;
    this.spare?.child.kill('SIGKILL');
    this.spare = undefined;
  }

  private replenish(): void {
    if (this.closed || (this.spare !== undefined && !this.spare.exited)) return;
    this.spare = new RunnerProcess(this.spareMemoryBytesMax, true);
    // An idle spare must not keep the connector's event loop alive.
    this.spare.release();
  }
}

/** One forked runner (job-runner.ts), from its fork to its exit. */
class RunnerProcess {
  readonly child: ChildProcess;
  readonly startedAt = performance.now();
  readonly ready: Promise<void>;
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isReady = false;
  exited = false;
  stderrTail = '';
  /** Where the runner's one answer goes. */
  onReply: ((reply: RunnerReply) => void) | undefined;
  spawnError: Error | undefined;

  /** `warmUp`: a spare, which runs a synthetic job before it says ready (runner-warm-up.ts). */
  constructor(
    readonly memoryBytesMax: number,
    warmUp = false,
  ) {
    installExitHook();
    this.child = fork(runnerPath, warmUp ? ['--warm-up'] : [], {
      execArgv: runnerExecArgv(memoryBytesMax),
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // Structured clone: numbers stay numbers (NaN and ±Infinity included) both ways.
      serialization: 'advanced',
    });
    running.add(this.child);
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-stderrTailChars);
    });
    this.ready = new Promise<void>((resolve) => {
      this.child.on('message', (message: FromRunner) => {
        if (message.type === 'ready') {
          this.isReady = true;
          resolve();
        } else {
          const { type: _type, ...reply } = message;
          this.onReply?.(reply);
        }
      });
    });
    this.closed = new Promise((resolve) => {
      // 'close' comes after 'exit' and after stderr has ended, so the tail is complete.
      this.child.on('close', (code, signal) => {
        this.exited = true;
        running.delete(this.child);
        resolve({ code, signal });
      });
      this.child.on('error', (error) => {
        this.spawnError ??= error;
        // A fork that never started has no process to wait for.
        if (this.child.pid === undefined) {
          this.exited = true;
          running.delete(this.child);
          resolve({ code: null, signal: null });
        }
      });
    });
  }

  /** Keeps this process's event loop alive while the runner works. */
  hold(): void {
    this.child.ref();
    (this.child.channel as { ref?: () => void } | null | undefined)?.ref?.();
  }

  /** Lets this process exit although the runner waits. */
  release(): void {
    this.child.unref();
    (this.child.channel as { unref?: () => void } | null | undefined)?.unref?.();
  }
}

/** Hands `job` to `runner` and enforces its limits until it answers or is gone. */
function execute(
  runner: RunnerProcess,
  job: SandboxJob,
  options: SandboxOptions,
  clockStartsAt: number,
): Promise<JobRun> {
  const { timeLimitMs, memoryBytesMax } = job.policy;
  const memoryPollMs = options.memoryPollMs ?? defaultMemoryPollMs;
  const child = runner.child;
  return new Promise<JobRun>((resolve, reject) => {
    // The first outcome decided wins.
    let outcome: { readonly run: JobRun } | { readonly error: LedgerbusError } | undefined;
    const decide = (decided: { readonly run: JobRun } | { readonly error: LedgerbusError }): void => {
      outcome ??= decided;
    };
    const kill = (error: LedgerbusError): void => {
      decide({ error });
      child.kill('SIGKILL');
    };
    const elapsed = (): number => Math.round(performance.now() - clockStartsAt);

    const timer = setTimeout(
      () =>
        kill(
          new LedgerbusError(
            ErrorCode.JobLimitExceeded,
            `the job was killed after ${elapsed()} ms: over its time limit of ${timeLimitMs} ms (policy timeLimitMs)`,
          ),
        ),
      Math.max(0, Math.min(timeLimitMs - (performance.now() - clockStartsAt), timerMaxMs)),
    );
    let peakResidentBytes = 0;
    const poll = setInterval(() => {
      const resident = child.pid === undefined ? undefined : residentBytes(child.pid);
      if (resident !== undefined) peakResidentBytes = Math.max(peakResidentBytes, resident);
      if (resident !== undefined && resident > memoryBytesMax)
        kill(
          new LedgerbusError(
            ErrorCode.JobLimitExceeded,
            `the job was killed after ${elapsed()} ms at ${(resident / mib).toFixed(0)} MiB resident: over its memory limit of ${(memoryBytesMax / mib).toFixed(0)} MiB (policy memoryBytesMax)`,
          ),
        );
    }, memoryPollMs);

    // Settles once: at the runner's answer (it exits by itself; `exitGraceMs` later it is killed
    // if it has not), or when the child is gone without one (killed at a limit, or crashed).
    let settled = false;
    const settle = (decided: { readonly run: JobRun } | { readonly error: LedgerbusError }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(poll);
      try {
        options.observe?.({ elapsedMs: elapsed(), peakResidentBytes, pid: child.pid });
      } finally {
        if ('run' in decided) resolve(decided.run);
        else reject(decided.error);
      }
    };
    runner.onReply = (reply) => {
      decide(
        reply.ok
          ? { run: { output: reply.output, released: reply.released } }
          : { error: new LedgerbusError(knownCode(reply.code), reply.message) },
      );
      setTimeout(() => child.kill('SIGKILL'), exitGraceMs).unref();
      settle(outcome!);
    };
    void runner.ready.then(() => {
      const toRunner: ToRunner = { type: 'job', job };
      child.send(toRunner, (error) => {
        if (error !== null && error !== undefined)
          kill(
            new LedgerbusError(
              ErrorCode.JobFailed,
              `the job could not be handed to its runner: ${error.message}`,
            ),
          );
      });
    });
    void runner.closed.then(({ code, signal }) =>
      settle(
        outcome ??
          (runner.spawnError === undefined
            ? { error: unexpectedExit(code, signal, runner.stderrTail, memoryBytesMax) }
            : {
                error: new LedgerbusError(
                  ErrorCode.JobFailed,
                  `the job's runner process could not start: ${runner.spawnError.message}`,
                ),
              }),
      ),
    );
  });
}

/**
 * This process's Node flags, less its own heap limit and inspector, plus the child's heap limit;
 * from the sources, the tsx loader if this process was not started with it (vitest).
 */
function runnerExecArgv(memoryBytesMax: number): string[] {
  const inherited = process.execArgv.filter(
    (arg) => !arg.startsWith('--max-old-space-size') && !arg.startsWith('--inspect'),
  );
  const loader =
    fromSources && !inherited.some((arg) => arg.includes('tsx'))
      ? ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href]
      : [];
  return [...inherited, ...loader, `--max-old-space-size=${Math.max(16, Math.floor(memoryBytesMax / mib))}`];
}

/** VmRSS of `pid` in bytes, or undefined if it is gone or this is not Linux. */
function residentBytes(pid: number): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

function unexpectedExit(
  code: number | null,
  signal: NodeJS.Signals | null,
  stderrTail: string,
  memoryBytesMax: number,
): LedgerbusError {
  if (/heap out of memory|Allocation failed/i.test(stderrTail))
    return new LedgerbusError(
      ErrorCode.JobLimitExceeded,
      `the job ran out of its memory limit of ${(memoryBytesMax / mib).toFixed(0)} MiB (policy memoryBytesMax)`,
    );
  const how = signal === null ? `with code ${code}` : `on ${signal}`;
  const tail = stderrTail.trim();
  return new LedgerbusError(
    ErrorCode.JobFailed,
    `the job's runner exited ${how} without an answer${tail === '' ? '' : `; its stderr ended with:\n${tail}`}`,
  );
}

function knownCode(code: unknown): ErrorCode {
  return (Object.values(ErrorCode) as unknown[]).includes(code) ? (code as ErrorCode) : ErrorCode.JobFailed;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}
