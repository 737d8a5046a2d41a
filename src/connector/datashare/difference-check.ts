/**
 * The difference check over RELEASED rows (job-execution.ts, step 4). Comparing two results
 * subtracts the rows behind one from the rows behind the other; what matters is therefore the rows
 * each result was computed from — its filter less the groups it suppressed — not its filter: the
 * total of a table and the same table grouped by department, one department of one person
 * suppressed, differ by that person although their filters are the same.
 *
 * For the new job's released rows R1 and every earlier job's R0 on the dataset, the rows in R1∖R0
 * and in R0∖R1 are counted per group of the new query; a count from 1 to minGroupSize − 1 is
 * DIFFERENCE_CHECK. Many earlier jobs are counted in one scan of the table (two SUM columns each),
 * `entriesPerScan` at most, so a history of h entries costs ⌈h / entriesPerScan⌉ scans.
 *
 * NULL-safe throughout: a filter's NULL counts as false (COALESCE), and group keys are compared as
 * (IS NULL, IFNULL(value, 0)) pairs, so a NULL key matches a NULL key as GROUP BY groups them.
 * An earlier entry naming a column the dataset no longer has is skipped: it described other data.
 */
import type Database from 'better-sqlite3';
import { canonicalJson } from '../../datashare/canonical-json.js';
import { compileCondition } from '../../datashare/query/compile.js';
import type { ColumnInfo, Condition, DatasetPolicy } from '../../datashare/types.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { quoteIdentifier } from './job-database.js';
import type { ReleasedRows } from './sandbox-job.js';

/** Earlier jobs compared in one scan of the table. */
export const entriesPerScan = 200;
/** Bound parameters of one scan: SQLite allows 32766. */
const paramsPerScanMax = 30_000;

export function checkReleasedDifferences(
  db: Database.Database,
  released: ReleasedRows,
  history: readonly ReleasedRows[],
  columns: readonly ColumnInfo[],
  policy: DatasetPolicy,
): void {
  const newer = releasedSql(released, columns);
  const groups = released.groupBy.map(quoteIdentifier);
  // A released set equal to this one differs from it by no row, and equal entries differ alike:
  // each distinct earlier set is compared once, and the same query asked again costs no scan.
  const own = canonicalJson(released);
  const seen = new Set<string>([own]);
  const usable = history.filter((entry) => {
    const key = canonicalJson(entry);
    if (seen.has(key)) return false;
    seen.add(key);
    return fitsDataset(entry, columns);
  });
  let batch: { sql: string; params: unknown[] }[] = [];
  let batchParams = newer.params.length;
  const flush = (): void => {
    if (batch.length > 0) scan(db, groups, newer, batch, policy);
    batch = [];
    batchParams = newer.params.length;
  };
  for (const entry of usable) {
    const older = releasedSql(entry, columns);
    if (batch.length >= entriesPerScan || batchParams + older.params.length > paramsPerScanMax) flush();
    batch.push(older);
    batchParams += older.params.length;
  }
  flush();
}

function scan(
  db: Database.Database,
  groups: readonly string[],
  newer: { sql: string; params: unknown[] },
  older: readonly { sql: string; params: unknown[] }[],
  policy: DatasetPolicy,
): void {
  const inner = [
    ...groups.map((group, i) => `${group} AS g${i}`),
    `${newer.sql} AS n`,
    ...older.map((entry, i) => `${entry.sql} AS o${i}`),
  ];
  const sums = older.flatMap((_, i) => [`SUM(n AND NOT o${i})`, `SUM(o${i} AND NOT n)`]);
  const grouping = groups.length === 0 ? '' : ` GROUP BY ${groups.map((_, i) => `g${i}`).join(', ')}`;
  const sql = `SELECT ${sums.join(', ')} FROM (SELECT ${inner.join(', ')} FROM "data")${grouping}`;
  const params = [...newer.params, ...older.flatMap((entry) => entry.params)];
  const statement = db.prepare<unknown[], (number | null)[]>(sql).raw(true);
  for (const row of statement.iterate(...params)) {
    if (row.some((count) => count !== null && count >= 1 && count < policy.minGroupSize))
      throw new LedgerbusError(
        ErrorCode.DifferenceCheck,
        `the rows behind this result differ from those behind an earlier result on this dataset by fewer than ${policy.minGroupSize} in a group: comparing the two could single out individual rows`,
      );
  }
}

/** A 0/1 SQL expression: whether a row of `data` is among `released`'s rows. */
function releasedSql(
  released: ReleasedRows,
  columns: readonly ColumnInfo[],
): { sql: string; params: unknown[] } {
  const filter = compileCondition(released.where, columns);
  // Without groups, a suppressed (single) group means nothing was released.
  if (released.suppressed.length > 0 && released.groupBy.length === 0) return { sql: '0', params: [] };
  if (released.suppressed.length === 0)
    return { sql: `COALESCE((${filter.sql}), 0)`, params: [...filter.params] };
  const keys = released.groupBy.flatMap((name) => {
    const column = quoteIdentifier(name);
    return [`${column} IS NULL`, `IFNULL(${column}, 0)`];
  });
  const suppressedKeys = released.groupBy.flatMap((_, i) => {
    const value = `json_extract(value, '$[${i}]')`;
    return [`${value} IS NULL`, `IFNULL(${value}, 0)`];
  });
  return {
    sql: `(COALESCE((${filter.sql}), 0) AND NOT ((${keys.join(', ')}) IN (SELECT ${suppressedKeys.join(', ')} FROM json_each(?))))`,
    params: [...filter.params, JSON.stringify(released.suppressed)],
  };
}

/** Whether every column `entry` names is still a column of the dataset, and its keys fit its groups. */
function fitsDataset(entry: ReleasedRows, columns: readonly ColumnInfo[]): boolean {
  const names = new Set(columns.map((column) => column.name));
  return (
    entry.groupBy.every((name) => names.has(name)) &&
    conditionColumns(entry.where).every((name) => names.has(name)) &&
    entry.suppressed.every((key) => key.length === entry.groupBy.length)
  );
}

function conditionColumns(condition: Condition | null): string[] {
  if (condition === null) return [];
  switch (condition.op) {
    case 'and':
    case 'or':
      return condition.args.flatMap(conditionColumns);
    case 'not':
      return conditionColumns(condition.arg);
    case 'cmp':
      return [condition.column];
  }
}
