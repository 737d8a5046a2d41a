/**
 * `ledgerbus job ...` (DESIGN §8): compute-to-data jobs through an organization's connector (the
 * SDK's `Jobs`). A requester sends a query or a model to another organization's dataset and gets
 * back only the answer; an owner approves or refuses the jobs its policy leaves to a person; a
 * supervisor lists every sharing record. The connector is the `--as` organization's in the network
 * file (default: the `ledgerbus dev` network's), or `--connector` with `--token`.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { Jobs } from '../client/jobs.js';
import type {
  JobRecordSummary,
  JobSpecInput,
  JobStatus,
  JobSubmitInput,
} from '../connector/datashare/jobs-api.js';
import type { JobOutput, ModelKind } from '../datashare/types.js';
import { modelKinds } from '../datashare/types.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { connectedCommand, print, table, transportFor } from './dataset-commands.js';
import type { ConnectionOptions } from './dataset-commands.js';
import { withUsageErrors } from './usage-errors.js';

interface SubmitOptions extends ConnectionOptions {
  readonly dataset: string[];
  readonly query?: string;
  readonly model?: string;
  readonly features?: string;
  readonly target?: string;
  readonly where?: string;
  readonly iterations?: number;
  readonly l2?: number;
  readonly topic?: string;
  readonly wait: boolean;
  readonly waitSeconds?: number;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInteger(name: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < 1)
      throw new InvalidArgumentError(`${name} must be a positive integer`);
    return parsed;
  };
}

function nonNegativeNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) throw new InvalidArgumentError('--l2 must be a number ≥ 0');
  return parsed;
}

/** The job the options describe: a query, or a model with its features and target. SCHEMA_MISMATCH saying what is missing. */
export function specOfOptions(options: SubmitOptions): JobSpecInput {
  const usage = (message: string): LedgerbusError =>
    new LedgerbusError(ErrorCode.SchemaMismatch, `${message}; see \`ledgerbus job submit --help\``);
  if (options.query !== undefined) {
    if (options.model !== undefined) throw usage('give --query or --model, not both');
    for (const flag of ['features', 'target', 'where', 'iterations', 'l2'] as const) {
      if (options[flag] !== undefined)
        throw usage(`--${flag} goes with --model, not --query (put the filter in the query's WHERE)`);
    }
    return { kind: 'aggregate', query: options.query };
  }
  if (options.model === undefined)
    throw usage('give --query SQL, or --model linear|logistic with --features and --target');
  if (!modelKinds.includes(options.model as ModelKind))
    throw usage(`--model must be ${modelKinds.join(' or ')}`);
  if (options.features === undefined || options.target === undefined)
    throw usage('--model needs --features a,b,... and --target COLUMN');
  const features = options.features
    .split(',')
    .map((feature) => feature.trim())
    .filter((feature) => feature.length > 0);
  return {
    kind: 'model',
    model: options.model as ModelKind,
    features,
    target: options.target,
    ...(options.where === undefined ? {} : { where: options.where }),
    ...(options.iterations === undefined ? {} : { iterations: options.iterations }),
    ...(options.l2 === undefined ? {} : { l2: options.l2 }),
  };
}

export function buildJobCommand(): Command {
  const job = withUsageErrors(
    new Command('job').description(
      "Compute-to-data jobs: send a query or a model to another organization's dataset and get back only the answer.",
    ),
    'job',
  );

  connectedCommand(
    job,
    'job',
    'submit',
    "Send a job to each dataset's owner (several --dataset: a federated model job). Checked against the catalog first; sealed to the owner; recorded on-chain.",
  )
    .option(
      '--dataset <owner/name>',
      'a dataset as the catalog lists it (repeat for a federated model job)',
      collect,
      [],
    )
    .option('--query <sql>', 'an aggregate query: SELECT g, COUNT(*), AVG(x) FROM name WHERE ... GROUP BY g')
    .option('--model <kind>', 'train a model: linear or logistic')
    .option('--features <columns>', 'with --model: the feature columns, comma-separated')
    .option('--target <column>', 'with --model: the column to predict')
    .option('--where <condition>', 'with --model: which rows, e.g. "year >= 2023 AND status = \'late\'"')
    .option(
      '--iterations <n>',
      'with --model logistic: Newton iterations (default 25)',
      positiveInteger('--iterations'),
    )
    .option('--l2 <x>', 'with --model: the L2 (ridge) penalty (default 0)', nonNegativeNumber)
    .option('--topic <topic>', 'the topic the job goes on (default datashare)')
    .option('--wait', 'wait for the result and print it', false)
    .option(
      '--wait-seconds <n>',
      'with --wait: stop waiting after this long and print the status (default 600)',
      positiveInteger('--wait-seconds'),
    )
    .action(async (options: SubmitOptions) => {
      if (options.dataset.length === 0) {
        throw new LedgerbusError(
          ErrorCode.SchemaMismatch,
          'name a dataset with --dataset OWNER/NAME; see `ledgerbus job submit --help`',
        );
      }
      const input: JobSubmitInput = {
        datasets: options.dataset,
        spec: specOfOptions(options),
        ...(options.topic === undefined ? {} : { topic: options.topic }),
        ...(options.wait ? { wait: true } : {}),
        ...(options.waitSeconds === undefined ? {} : { waitMs: options.waitSeconds * 1000 }),
      };
      const answer = await new Jobs(transportFor(options)).submit(input);
      if (answer.output !== undefined) {
        print(options.json, answer, `${statusLine(answer)}\n${outputText(answer.output)}`);
        return;
      }
      const follow = options.wait
        ? `still ${answer.state}; follow it: ledgerbus job status ${answer.jobId}`
        : `follow it: ledgerbus job status ${answer.jobId}; its result: ledgerbus job result ${answer.jobId}`;
      print(options.json, answer, `${statusLine(answer)}\n${follow}`);
    });

  connectedCommand(
    job,
    'job',
    'list',
    'The jobs this organization requested or ran; --all: every job record on the ledger the node shows (a supervisor sees all).',
  )
    .option('--all', 'read the job records from the ledger (every sharing record, for a supervisor)', false)
    .option('--topic <topic>', 'with --all: the job topic (default datashare)')
    .action(async (options: ConnectionOptions & { all: boolean; topic?: string }) => {
      const jobs = new Jobs(transportFor(options, 300_000));
      if (options.all) {
        const records = await jobs.listAll(options.topic === undefined ? {} : { topic: options.topic });
        print(options.json, records, records.length === 0 ? 'no jobs' : recordsTable(records));
        return;
      }
      const list = await jobs.list();
      print(options.json, list, list.length === 0 ? 'no jobs' : statusTable(list));
    });

  connectedCommand(
    job,
    'job',
    'status',
    "A job's state: its parts, the owner's decision, the result's hash on-chain.",
  )
    .argument('<job-id>', 'the job id `job submit` printed')
    .action(async (jobId: string, options: ConnectionOptions) => {
      const status = await new Jobs(transportFor(options)).status(jobId);
      print(options.json, status, statusText(status));
    });

  connectedCommand(
    job,
    'job',
    'result',
    "A finished job's result: an aggregate as a table, a model as its coefficients and fit metrics.",
  )
    .argument('<job-id>', 'the job id')
    .option('--out <file>', 'also write the result (JSON) to this file')
    .action(async (jobId: string, options: ConnectionOptions & { out?: string }) => {
      const result = await new Jobs(transportFor(options)).result(jobId);
      if (options.out !== undefined) writeAtomically(options.out, `${JSON.stringify(result, null, 2)}\n`);
      const parts = result.parts.map(
        (part) => `\n${part.owner}/${part.dataset} (${part.jobId}):\n${outputText(part.output)}`,
      );
      print(
        options.json,
        result,
        [
          outputText(result.output),
          ...(parts.length === 0 ? [] : ['\nper owner, before averaging:', ...parts]),
          ...(options.out === undefined ? [] : [`written to ${options.out}`]),
        ].join('\n'),
      );
    });

  connectedCommand(
    job,
    'job',
    'approve',
    'As the dataset\'s owner: approve a job that waits for a person (policy approval "manual"); it runs next.',
  )
    .argument('<job-id>', 'the job id (ledgerbus job list shows those PENDING_APPROVAL)')
    .action(async (jobId: string, options: ConnectionOptions) => {
      const status = await new Jobs(transportFor(options)).approve(jobId);
      print(options.json, status, `approved ${jobId}; it runs now: ledgerbus job status ${jobId}`);
    });

  connectedCommand(
    job,
    'job',
    'reject',
    "As the dataset's owner: refuse a job that waits for a person; the reason is recorded on-chain.",
  )
    .argument('<job-id>', 'the job id')
    .requiredOption('--reason <text>', 'why, for the requester and the record')
    .action(async (jobId: string, options: ConnectionOptions & { reason: string }) => {
      const status = await new Jobs(transportFor(options)).reject(jobId, options.reason);
      print(options.json, status, `rejected ${jobId} (MANUAL_REJECT: ${options.reason})`);
    });

  connectedCommand(
    job,
    'job',
    'receipt',
    "Write a job's receipt — request, decision and result with their block proofs — checkable offline with `ledgerbus verify`.",
  )
    .argument('<job-id>', "the job id (for a federated job, a part's id)")
    .requiredOption('--out <file>', 'where to write the receipt (JSON)')
    .action(async (jobId: string, options: ConnectionOptions & { out: string }) => {
      const receipt = await new Jobs(transportFor(options)).receipt(jobId);
      writeAtomically(options.out, `${JSON.stringify(receipt, null, 2)}\n`);
      const { view } = receipt;
      print(
        options.json,
        { jobId, group: receipt.group, state: view.state, file: options.out },
        [
          `job ${jobId} (${receipt.group}): ${view.requester} asked ${view.owner}/${view.dataset}, ${view.state}; written to ${options.out}`,
          `check it offline: ledgerbus verify ${options.out} --network network.json`,
        ].join('\n'),
      );
    });

  return job;
}

/** Writes `text` to `out` through a temporary file beside it, so `out` is either absent or whole. */
function writeAtomically(out: string, text: string): void {
  const temporary = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.partial`);
  try {
    writeFileSync(temporary, text, { mode: 0o644 });
    renameSync(temporary, out);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

function statusLine(status: JobStatus): string {
  const datasets = status.parts.map((part) => `${part.owner}/${part.dataset}`).join(', ');
  return `job ${status.jobId}${status.federated ? ' (federated)' : ''}: ${status.kind} on ${datasets}, ${status.state}`;
}

function statusText(status: JobStatus): string {
  const lines = [
    `job ${status.jobId} (${status.role === 'owner' ? `for ${status.requester}, on our data` : 'ours'}): ${status.kind}${status.federated ? ', federated' : ''}, ${status.state}${status.code === null ? '' : ` (${status.code}${status.detail.length === 0 ? '' : `: ${status.detail}`})`}`,
  ];
  if (status.spec !== null) {
    lines.push(
      status.spec.kind === 'aggregate'
        ? `query      ${status.spec.query}`
        : `model      ${status.spec.model} of ${status.spec.target} on ${status.spec.features.join(', ')}${status.spec.where === undefined ? '' : ` where ${status.spec.where}`}`,
    );
  }
  for (const part of status.parts) {
    const where = `${part.topic}/${part.partition}`;
    const decision =
      part.decision === null
        ? 'undecided'
        : `${part.decision.decision}${part.decision.reason.length === 0 ? '' : ` (${part.decision.reason})`}`;
    const result =
      part.result === null
        ? 'no result yet'
        : part.result.status === 'COMPLETED'
          ? `result sha256 ${part.result.resultHash ?? '-'} (${part.result.resultBytes} bytes${part.result.suppressedGroups > 0 ? `, ${part.result.suppressedGroups} groups suppressed` : ''})${part.resultFetched ? ', here' : ''}`
          : `FAILED ${part.result.code}: ${part.result.detail}`;
    const who = `${part.owner}/${part.dataset}`;
    lines.push(`part       ${part.jobId} ${who} on ${where}: ${part.state}; ${decision}; ${result}`);
  }
  if (status.state === 'PENDING_APPROVAL')
    lines.push(
      `decide:    ledgerbus job approve ${status.jobId} | ledgerbus job reject ${status.jobId} --reason TEXT`,
    );
  if (status.role === 'requester' && status.state === 'COMPLETED')
    lines.push(`result:    ledgerbus job result ${status.jobId}`);
  return lines.join('\n');
}

function statusTable(jobs: readonly JobStatus[]): string {
  return table(
    ['JOB', 'ROLE', 'KIND', 'REQUESTER', 'DATASETS', 'STATE', 'CODE', 'CREATED'],
    jobs.map((entry) => [
      entry.jobId,
      entry.role,
      entry.federated ? `${entry.kind} (federated)` : entry.kind,
      entry.requester,
      entry.parts.map((part) => `${part.owner}/${part.dataset}`).join(','),
      entry.state,
      entry.code ?? '-',
      new Date(entry.createdAt).toISOString(),
    ]),
  );
}

function recordsTable(records: readonly JobRecordSummary[]): string {
  return table(
    [
      'JOB',
      'PARTITION',
      'REQUESTER',
      'OWNER',
      'DATASET',
      'KIND',
      'STATE',
      'DECISION',
      'RESULT',
      'FEDERATION',
    ],
    records.map((record) => [
      record.jobId,
      `${record.topic}/${record.partition}`,
      record.requester,
      record.owner,
      record.dataset,
      record.jobKind,
      record.state,
      record.decision === null ? '-' : `${record.decision.decision} ${record.decision.reason}`,
      record.result === null ? '-' : `${record.result.status} ${record.result.code}`,
      record.federation ?? '-',
    ]),
  );
}

/** A job's output as text: an aggregate's table and what was suppressed, or a model's parameters. */
export function outputText(output: JobOutput): string {
  if (output.kind === 'aggregate') {
    const rows = output.rows.map((row) => row.map(cellText));
    const suppressed =
      output.suppressedGroups === 0
        ? `(every group has at least ${output.minGroupSize} rows)`
        : `(${output.suppressedGroups} group${output.suppressedGroups === 1 ? '' : 's'} smaller than ${output.minGroupSize} rows suppressed)`;
    return `${table(output.columns, rows)}\n${output.rows.length} row${output.rows.length === 1 ? '' : 's'} ${suppressed}`;
  }
  const lines = table(
    ['TERM', 'COEFFICIENT'],
    [
      ['(intercept)', cellText(output.intercept)],
      ...output.features.map((feature, index) => [feature, cellText(output.coefficients[index] ?? null)]),
    ],
  );
  const metrics = Object.entries(output.metrics)
    .map(([name, value]) => `${name} ${cellText(value)}`)
    .join(', ');
  return `${output.model} model of ${output.target}, trained on ${output.n} rows\n${lines}\n${metrics.length === 0 ? '' : `fit: ${metrics}`}`;
}

function cellText(cell: string | number | boolean | null): string {
  if (cell === null) return 'NULL';
  if (typeof cell === 'number')
    return Number.isInteger(cell) ? String(cell) : String(Number(cell.toPrecision(8)));
  return String(cell);
}
