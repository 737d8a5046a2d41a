/**
 * What a job does inside the runner's child process (job-runner.ts), on the dataset file opened
 * read-only (job-database.ts). In order:
 *
 * 1. The plan is checked against the columns and the policy once more (policy.ts `checkPlan`): the
 *    child trusts nothing it was not shown to be allowed.
 * 2. Row limit: the filter may select at most `maxRows` rows (counted with a LIMIT, so a filter
 *    selecting far more costs only maxRows + 1 rows of counting; not counted at all when the whole
 *    table is within the limit).
 * 3. Difference check: for every earlier filter F0 on this dataset unlike the new F1, the rows in
 *    F1 but not F0, and in F0 but not F1, are counted per group of the new query's GROUP BY. A count
 *    from 1 to minGroupSize − 1 means comparing the two results would isolate fewer rows than the
 *    minimum group (the textbook attack: everyone in the north, then everyone in the north but
 *    person 17): refused, without saying which rows or groups.
 * 4. The aggregate query compiled from the plan runs; groups of fewer than minGroupSize rows are
 *    dropped and counted; the hidden group-size column is removed. If there were groups and every
 *    one was dropped, the job is MIN_GROUP_SIZE. Or: a model is fitted on the filtered rows (rows
 *    with a NULL feature or target are skipped), if there are at least minGroupSize of them.
 *
 * A filter's NULL (a comparison with a NULL cell) counts as false everywhere, as SQL's WHERE does.
 */
import type Database from 'better-sqlite3';
import { canonicalJson } from '../../datashare/canonical-json.js';
import { LinearAccumulator } from '../../datashare/models/linear.js';
import { fitLogistic } from '../../datashare/models/logistic.js';
import { compileAggregate, compileCondition } from '../../datashare/query/compile.js';
import { checkPlan } from '../../datashare/query/policy.js';
import type {
  AggregatePlan,
  Cell,
  ColumnInfo,
  CompiledCondition,
  Condition,
  DatasetPolicy,
  JobOutput,
  ModelPlan,
} from '../../datashare/types.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { quoteIdentifier } from './job-database.js';
import type { SandboxJob } from './sandbox-job.js';

export function executeJob(db: Database.Database, job: SandboxJob): JobOutput {
  const { plan, columns, policy } = job;
  checkPlan(plan, columns, policy);
  const filter = compileCondition(plan.where, columns);
  checkRowLimit(db, filter, columns, policy);
  const groupBy = plan.kind === 'aggregate' ? plan.groupBy : [];
  if (policy.differenceCheck) checkDifferences(db, plan.where, job.history, groupBy, columns, policy);
  return plan.kind === 'aggregate'
    ? runAggregate(db, plan, columns, policy)
    : runModel(db, plan, filter, columns, policy);
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

function checkDifferences(
  db: Database.Database,
  where: Condition | null,
  history: readonly (Condition | null)[],
  groupBy: readonly string[],
  columns: readonly ColumnInfo[],
  policy: DatasetPolicy,
): void {
  const smallest = 1;
  const largest = policy.minGroupSize - 1;
  const current = canonicalJson(where);
  const compared = new Set<string>([current]);
  const newer = compileCondition(where, columns);
  const groups = groupBy.map((name) => {
    assert(
      columns.some((column) => column.name === name),
      `group column ${name} is not in the dataset (checkPlan ran first)`,
    );
    return quoteIdentifier(name);
  });
  const groupList = groups.map((group) => `${group}, `).join('');
  const grouping = groups.length === 0 ? '' : ` GROUP BY ${groups.join(', ')}`;
  for (const earlier of history) {
    const key = canonicalJson(earlier);
    // The same filter selects the same rows: nothing to tell apart. Each earlier one once.
    if (compared.has(key)) continue;
    compared.add(key);
    const older = compileCondition(earlier, columns);
    const sql =
      `SELECT 1 FROM (SELECT SUM(in_new AND NOT in_old) AS only_new, SUM(in_old AND NOT in_new) AS only_old` +
      ` FROM (SELECT ${groupList}COALESCE((${newer.sql}), 0) AS in_new, COALESCE((${older.sql}), 0) AS in_old FROM "data")` +
      ` WHERE in_new <> in_old${grouping})` +
      ` WHERE (only_new BETWEEN ? AND ?) OR (only_old BETWEEN ? AND ?) LIMIT 1`;
    const found = db.prepare(sql).get(...newer.params, ...older.params, smallest, largest, smallest, largest);
    if (found !== undefined)
      throw new LedgerbusError(
        ErrorCode.DifferenceCheck,
        `the filter differs from an earlier query on this dataset by fewer than ${policy.minGroupSize} rows in a group: comparing the two results could single out individual rows`,
      );
  }
}

function runAggregate(
  db: Database.Database,
  plan: AggregatePlan,
  columns: readonly ColumnInfo[],
  policy: DatasetPolicy,
): JobOutput {
  const compiled = compileAggregate(plan, columns);
  const sizeIndex = compiled.outputs.indexOf(compiled.groupSizeColumn);
  assert(sizeIndex >= 0, 'the compiled query has no group size column');
  const booleanOutputs = plan.select.map((item) => {
    const column = item.type === 'group' || item.fn === 'min' || item.fn === 'max' ? item.column : null;
    return column !== null && columns.find((c) => c.name === column)?.type === 'boolean';
  });
  const rows: Cell[][] = [];
  let groups = 0;
  let suppressedGroups = 0;
  const statement = db.prepare<unknown[], unknown[]>(compiled.sql).raw(true);
  for (const row of statement.iterate(...compiled.params)) {
    groups += 1;
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
  if (groups > 0 && rows.length === 0)
    throw new LedgerbusError(
      ErrorCode.MinGroupSize,
      `every group of the result holds fewer than ${policy.minGroupSize} rows (${suppressedGroups} suppressed): nothing can be returned`,
    );
  return {
    kind: 'aggregate',
    columns: plan.select.map((item) => item.alias),
    rows,
    suppressedGroups,
    minGroupSize: policy.minGroupSize,
  };
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
  const tooFew = (): LedgerbusError =>
    new LedgerbusError(
      ErrorCode.MinGroupSize,
      `the filter leaves fewer than ${policy.minGroupSize} rows with every feature and the target set: a model needs at least that many`,
    );
  if (plan.model === 'linear') {
    const accumulator = new LinearAccumulator(p);
    const features = new Float64Array(p);
    for (const row of statement.iterate(...filter.params)) {
      for (let j = 0; j < p; j++) features[j] = row[j]!;
      accumulator.add(features, row[p]!);
    }
    if (accumulator.n < policy.minGroupSize) throw tooFew();
    const fit = accumulator.fit(plan.l2);
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
  if (n < policy.minGroupSize) throw tooFew();
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
