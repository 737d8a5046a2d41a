/**
 * What a job does inside the runner's child process (job-runner.ts), on the dataset file opened
 * read-only (job-database.ts). In order:
 *
 * 1. The plan is checked against the columns and the policy once more (policy.ts `checkPlan`): the
 *    child trusts nothing it was not shown to be allowed.
 * 2. Row limit: the filter may select at most `maxRows` rows (counted with a LIMIT, so a filter
 *    selecting far more costs only maxRows + 1 rows of counting; not counted at all when the whole
 *    table is within the limit).
 * 3. The aggregate query compiled from the plan runs; groups of fewer than minGroupSize rows are
 *    dropped and counted, and their keys noted; the hidden group-size column is removed. If no
 *    group is left — every one dropped, or none at all — the job is MIN_GROUP_SIZE, with one
 *    message either way: an empty success would tell "no row matches" from "1..k−1 rows match",
 *    one bit about a person per job (`WHERE id = 17 AND salary > X GROUP BY id`).
 * 4. Difference check (difference-check.ts): the rows this result is computed from — the filter's,
 *    less the dropped groups' — are compared with those of every earlier released result on the
 *    dataset; a difference of 1 to minGroupSize − 1 rows in a group is DIFFERENCE_CHECK.
 * 5. Or, for a model: the difference check over its filter's rows, then a fit on the filtered rows
 *    (rows with a NULL feature or target are skipped) if there are at least minGroupSize·(p + 1)
 *    of them and no row carries too much weight: a row whose leverage h = x̃ᵀ(X̃ᵀX̃)⁻¹x̃ (x̃ with
 *    the intercept's 1) exceeds 1/minGroupSize is refused, since a model can then reproduce its
 *    target (a feature true for one row gives that row's target exactly).
 *
 * The run returns the output and, for the owner's history alone, the rows it released.
 * A filter's NULL (a comparison with a NULL cell) counts as false everywhere, as SQL's WHERE does.
 */
import type Database from 'better-sqlite3';
import { LinearAccumulator } from '../../datashare/models/linear.js';
import { fitLogistic } from '../../datashare/models/logistic.js';
import { compileAggregate, compileCondition } from '../../datashare/query/compile.js';
import { checkPlan } from '../../datashare/query/policy.js';
import type {
  AggregatePlan,
  Cell,
  ColumnInfo,
  CompiledCondition,
  DatasetPolicy,
  JobOutput,
  ModelPlan,
} from '../../datashare/types.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { checkReleasedDifferences } from './difference-check.js';
import { quoteIdentifier } from './job-database.js';
import { RowLeverage } from './row-leverage.js';
import type { JobRun, ReleasedRows, SandboxJob } from './sandbox-job.js';

export function executeJob(db: Database.Database, job: SandboxJob): JobRun {
  const { plan, columns, policy } = job;
  checkPlan(plan, columns, policy);
  const filter = compileCondition(plan.where, columns);
  checkRowLimit(db, filter, columns, policy);
  if (plan.kind === 'aggregate') {
    const { output, released } = runAggregate(db, plan, columns, policy);
    if (policy.differenceCheck) checkReleasedDifferences(db, released, job.history, columns, policy);
    return { output, released };
  }
  const released: ReleasedRows = { where: plan.where, groupBy: [], suppressed: [] };
  if (policy.differenceCheck) checkReleasedDifferences(db, released, job.history, columns, policy);
  return { output: runModel(db, plan, filter, columns, policy), released };
}

function checkRowLimit(
  db: Database.Database,
  filter: CompiledCondition,
  columns: readonly ColumnInfo[],
  policy: DatasetPolicy,
): void {
  // Rows get rowids 1, 2, 3... when a dataset is loaded, so the largest rowid bounds how many rows
  // any filter can select; read from the table's b-tree in O(log n), it saves the counting scan
  // whenever the whole dataset is within the limit (the usual case).
  // (A column may be called rowid, oid or _rowid_, and then the name is the column's.)
  const rowid = ['rowid', '_rowid_', 'oid'].find((name) => !columns.some((column) => column.name === name));
  if (rowid !== undefined) {
    const { last } = db
      .prepare<[], { last: number | null }>(`SELECT max(${rowid}) AS last FROM "data"`)
      .get()!;
    if ((last ?? 0) <= policy.maxRows) return;
  }
  const { n } = db
    .prepare<unknown[], { n: number }>(
      `SELECT COUNT(*) AS n FROM (SELECT 1 FROM "data" WHERE ${filter.sql} LIMIT ?)`,
    )
    .get(...filter.params, policy.maxRows + 1)!;
  if (n > policy.maxRows)
    throw new LedgerbusError(
      ErrorCode.JobLimitExceeded,
      `the filter selects more than ${policy.maxRows} rows, the most the owner's policy allows (maxRows)`,
    );
}

function runAggregate(
  db: Database.Database,
  plan: AggregatePlan,
  columns: readonly ColumnInfo[],
  policy: DatasetPolicy,
): JobRun {
  const compiled = compileAggregate(plan, columns);
  const sizeIndex = compiled.outputs.indexOf(compiled.groupSizeColumn);
  assert(sizeIndex >= 0, 'the compiled query has no group size column');
  const booleanOutputs = plan.select.map((item) => {
    const column = item.type === 'group' || item.fn === 'min' || item.fn === 'max' ? item.column : null;
    return column !== null && columns.find((c) => c.name === column)?.type === 'boolean';
  });
  const rows: Cell[][] = [];
  let suppressedGroups = 0;
  const statement = db.prepare<unknown[], unknown[]>(compiled.sql).raw(true);
  for (const row of statement.iterate(...compiled.params)) {
    const size = row[sizeIndex];
    assert(typeof size === 'number', 'a group size that is not a number');
    if (size < policy.minGroupSize) {
      suppressedGroups += 1;
      continue;
    }
    const cells: Cell[] = [];
    for (let i = 0; i < row.length; i++) {
      if (i === sizeIndex) continue;
      cells.push(cellOf(row[i], booleanOutputs[cells.length] === true));
    }
    rows.push(cells);
    if (rows.length > policy.resultRowsMax)
      throw new LedgerbusError(
        ErrorCode.JobLimitExceeded,
        `the result has more than ${policy.resultRowsMax} rows, the most the owner's policy allows (resultRowsMax)`,
      );
  }
  // One answer, whatever the reason (no group at all, or every one suppressed), and no count of
  // suppressed groups: either would tell apart "no row matches" and "a few rows match".
  if (rows.length === 0)
    throw new LedgerbusError(
      ErrorCode.MinGroupSize,
      `no group of the result holds at least ${policy.minGroupSize} rows: nothing can be returned`,
    );
  return {
    output: {
      kind: 'aggregate',
      columns: plan.select.map((item) => item.alias),
      rows,
      suppressedGroups,
      minGroupSize: policy.minGroupSize,
    },
    released: {
      where: plan.where,
      groupBy: [...plan.groupBy],
      suppressed: suppressedGroups === 0 ? [] : suppressedKeys(db, plan, columns, policy),
    },
  };
}

/** The key values of the groups too small to release (a second query: the result may not select its keys). */
function suppressedKeys(
  db: Database.Database,
  plan: AggregatePlan,
  columns: readonly ColumnInfo[],
  policy: DatasetPolicy,
): Cell[][] {
  const filter = compileCondition(plan.where, columns);
  const groups = plan.groupBy.map(quoteIdentifier).join(', ');
  const booleans = plan.groupBy.map((name) => columns.find((c) => c.name === name)?.type === 'boolean');
  return db
    .prepare<unknown[], unknown[]>(
      `SELECT ${groups} FROM "data" WHERE ${filter.sql} GROUP BY ${groups} HAVING COUNT(*) < ?`,
    )
    .raw(true)
    .all(...filter.params, policy.minGroupSize)
    .map((row) => row.map((value, i) => cellOf(value, booleans[i] === true)));
}

function cellOf(value: unknown, boolean: boolean): Cell {
  if (value === null || value === undefined) return null;
  if (boolean && typeof value === 'number') return value !== 0;
  if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number(value);
  assert(false, `an aggregate cell of type ${typeof value}`);
}

function runModel(
  db: Database.Database,
  plan: ModelPlan,
  filter: CompiledCondition,
  columns: readonly ColumnInfo[],
  policy: DatasetPolicy,
): JobOutput {
  const names = [...plan.features, plan.target];
  for (const name of names)
    assert(
      columns.some((column) => column.name === name),
      `model column ${name} is not in the dataset (checkPlan ran first)`,
    );
  const selected = names.map(quoteIdentifier);
  const present = selected.map((name) => `${name} IS NOT NULL`).join(' AND ');
  const statement = db
    .prepare<unknown[], number[]>(
      `SELECT ${selected.join(', ')} FROM "data" WHERE (${filter.sql}) AND ${present}`,
    )
    .raw(true);
  const p = plan.features.length;
  // minGroupSize rows per parameter (the p coefficients and the intercept).
  const rowsMin = policy.minGroupSize * (p + 1);
  const tooFew = (): LedgerbusError =>
    new LedgerbusError(
      ErrorCode.MinGroupSize,
      `the filter leaves fewer than ${rowsMin} rows with every feature and the target set: a model of ${p} feature(s) needs ${policy.minGroupSize} rows per coefficient and intercept`,
    );
  const leverage = new RowLeverage(p);
  const checkLeverage = (rows: Iterable<ArrayLike<number>>): void => {
    const largest = 1 / policy.minGroupSize;
    for (const row of rows) {
      if (leverage.leverage(row) > largest)
        throw new LedgerbusError(
          ErrorCode.MinGroupSize,
          `a row carries too much weight in this model (its leverage exceeds 1/${policy.minGroupSize}): the model could reveal that row's target; use features that no small set of rows stands out on`,
        );
    }
  };
  if (plan.model === 'linear') {
    const accumulator = new LinearAccumulator(p);
    const features = new Float64Array(p);
    for (const row of statement.iterate(...filter.params)) {
      for (let j = 0; j < p; j++) features[j] = row[j]!;
      accumulator.add(features, row[p]!);
      leverage.add(features);
    }
    if (accumulator.n < rowsMin) throw tooFew();
    const fit = accumulator.fit(plan.l2);
    // The second pass: every row's weight, against the moments of the first.
    checkLeverage(statement.iterate(...filter.params));
    return modelOutput(plan, fit, accumulator.n);
  }
  // Logistic regression iterates over the rows: they are gathered into typed arrays (the memory
  // limit bounds them, and maxRows their number).
  let x = new Float64Array(1024 * p);
  let y = new Float64Array(1024);
  let n = 0;
  for (const row of statement.iterate(...filter.params)) {
    const target = row[p]!;
    if (target !== 0 && target !== 1)
      throw new LedgerbusError(
        ErrorCode.QueryRejected,
        `the target ${plan.target} holds values other than 0 and 1: a logistic model needs a boolean or 0/1 target`,
      );
    if (n === y.length) {
      const grownX = new Float64Array(x.length * 2);
      grownX.set(x);
      x = grownX;
      const grownY = new Float64Array(y.length * 2);
      grownY.set(y);
      y = grownY;
    }
    for (let j = 0; j < p; j++) x[n * p + j] = row[j]!;
    y[n] = target;
    n += 1;
  }
  if (n < rowsMin) throw tooFew();
  for (let i = 0; i < n; i++) leverage.add(x.subarray(i * p, (i + 1) * p));
  checkLeverage(
    (function* rowsOf(): Generator<Float64Array> {
      for (let i = 0; i < n; i++) yield x.subarray(i * p, (i + 1) * p);
    })(),
  );
  const fit = fitLogistic(x.subarray(0, n * p), y.subarray(0, n), n, p, {
    iterations: plan.iterations,
    l2: plan.l2,
  });
  return modelOutput(plan, fit, n);
}

function modelOutput(
  plan: ModelPlan,
  fit: { coefficients: readonly number[]; intercept: number; metrics: Readonly<Record<string, number>> },
  n: number,
): JobOutput {
  return {
    kind: 'model',
    model: plan.model,
    features: [...plan.features],
    target: plan.target,
    coefficients: [...fit.coefficients],
    intercept: fit.intercept,
    n,
    metrics: { ...fit.metrics },
  };
}
