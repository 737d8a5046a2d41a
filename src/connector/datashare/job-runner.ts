/**
 * The job runner: the child process job-sandbox.ts forks for each job (never a worker thread: a
 * SQLite query cannot be interrupted from inside its process, so a job over its limits must be a
 * process that can be killed). It says `ready`, takes one job over the IPC channel, runs it on the
 * dataset file opened read-only (job-execution.ts) and answers with the output or the error's code
 * and message, then exits. Nothing is printed: stdout is not read, stderr only on a crash.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { executeJob } from './job-execution.js';
import { openDatasetReadOnly } from './job-database.js';
import { warmUp } from './runner-warm-up.js';
import type { FromRunner, RunnerReply, ToRunner } from './sandbox-job.js';

function run(message: ToRunner): RunnerReply {
  try {
    const db = openDatasetReadOnly(message.job.datasetFile);
    try {
      return { ok: true, ...executeJob(db, message.job) };
    } finally {
      db.close();
    }
  } catch (error) {
    if (error instanceof LedgerbusError) return { ok: false, code: error.code, message: error.message };
    return {
      ok: false,
      code: ErrorCode.JobFailed,
      message: `the job failed in its runner: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

function send(message: FromRunner, then?: () => void): void {
  process.send!(message, undefined, {}, () => then?.());
}

if (process.send === undefined) {
  process.stderr.write('job-runner.ts is started by job-sandbox.ts over an IPC channel, not by hand\n');
  process.exit(2);
}
// The parent is gone (or gave up on this job): nothing is waiting for the answer.
process.on('disconnect', () => process.exit(1));
process.once('message', (message: ToRunner) => {
  const reply = run(message);
  send({ type: 'reply', ...reply }, () => process.exit(0));
});
// A spare (JobSandbox) warms its code up while nobody waits for it (runner-warm-up.ts).
// Its failure would be a bug, but not one that should cost the job: say it and go on.
if (process.argv.includes('--warm-up')) {
  try {
    warmUp();
  } catch (error) {
    process.stderr.write(
      `job runner warm-up failed: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
  }
}
send({ type: 'ready' });
