/**
 * SQLite SQL for a checked plan, over the table `data` of a dataset file. Nothing of the query text
 * reaches the SQL: every identifier is looked up in the dataset's own column list and written from
 * it, double-quoted; every literal (and a quantile's q) is a bound parameter; aliases are quoted.
 * A column the list lacks is a bug here (checkPlan ran first): AssertionError.
 *
 * The query adds a hidden `COUNT(*)` per group (`groupSizeColumn`) for the runner's small-group
 * suppression, and orders the result by the group columns so that every run returns one order.
 */
import { assert } from '../../errors.js';
import type { AggregatePlan, ColumnInfo, CompiledCondition, CompiledQuery, Condition } from '../types.js';
import { reservedAlias } from './parser.js';

export const groupSizeColumn = reservedAlias;

/** The application-defined aggregate the runner registers for QUANTILE (its step is `quantileOf`). */
export const quantileFunctionName = 'lb_quantile';

const aggregateSql = { count: 'COUNT', sum: 'SUM', avg: 'AVG', min: 'MIN', max: 'MAX' } as const;

export function compileAggregate(plan: AggregatePlan, columns: readonly ColumnInfo[]): CompiledQuery {
  const params: (string | number)[] = [];
  const selected = plan.select.map((item) => {
    let expression: string;
    if (item.type === 'group') {
      expression = columnSql(item.column, columns);
    } else if (item.fn === 'quantile') {
      assert(item.column !== null && item.q !== undefined, `quantile ${item.alias} without a column or q`);
      expression = `${quantileFunctionName}(${columnSql(item.column, columns)}, ?)`;
      params.push(item.q);
    } else {
      expression = `${aggregateSql[item.fn]}(${item.column === null ? '*' : columnSql(item.column, columns)})`;
    }
    assert(item.alias.toLowerCase() !== groupSizeColumn, `alias ${item.alias} is reserved`);
    return `${expression} AS ${quoted(item.alias)}`;
  });
  selected.push(`COUNT(*) AS ${quoted(groupSizeColumn)}`);
  const where = compileCondition(plan.where, columns);
  params.push(...where.params);
  const groups = plan.groupBy.map((name) => columnSql(name, columns)).join(', ');
  const grouping = groups === '' ? '' : ` GROUP BY ${groups} ORDER BY ${groups}`;
  return {
    sql: `SELECT ${selected.join(', ')} FROM "data" WHERE ${where.sql}${grouping}`,
    params,
    outputs: [...plan.select.map((item) => item.alias), groupSizeColumn],
    groupSizeColumn,
  };
}

export function compileCondition(
  condition: Condition | null,
  columns: readonly ColumnInfo[],
): CompiledCondition {
  const params: (string | number)[] = [];
  const sql = condition === null ? '1' : conditionSql(condition, columns, params);
  return { sql, params };
}

function conditionSql(
  condition: Condition,
  columns: readonly ColumnInfo[],
  params: (string | number)[],
): string {
  switch (condition.op) {
    case 'and':
    case 'or': {
      assert(condition.args.length > 0, `an empty ${condition.op}`);
      const joiner = condition.op === 'and' ? ' AND ' : ' OR ';
      return `(${condition.args.map((arg) => conditionSql(arg, columns, params)).join(joiner)})`;
    }
    case 'not':
      return `(NOT ${conditionSql(condition.arg, columns, params)})`;
    case 'cmp': {
      const value = condition.value;
      params.push(typeof value === 'boolean' ? (value ? 1 : 0) : value);
      return `(${columnSql(condition.column, columns)} ${condition.cmp} ?)`;
    }
  }
}

/** The dataset's own name of the column, quoted: never text taken from the query. */
function columnSql(name: string, columns: readonly ColumnInfo[]): string {
  const column = columns.find((c) => c.name === name);
  assert(column !== undefined, `column ${name} is not in the dataset (checkPlan runs before compile)`);
  return quoted(column.name);
}

function quoted(identifier: string): string {
  // A NUL would end the SQL text where SQLite reads it; the lexer and the loader never let one in.
  assert(!identifier.includes('\u0000'), 'an identifier holds NUL');
  return `"${identifier.replaceAll('"', '""')}"`;
}

/**
 * The q-quantile of ascending, NaN-free values by linear interpolation between order statistics
 * (Hyndman & Fan type 7, R's and NumPy's default): h = (n − 1)·q, x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
 * The caller answers NULL for no values, as SQL aggregates do.
 */
export function quantileOf(sortedValues: Float64Array, q: number): number {
  const n = sortedValues.length;
  assert(n > 0, 'quantile of no values');
  assert(q >= 0 && q <= 1, `quantile ${q} is outside [0, 1]`);
  const h = (n - 1) * q;
  const lower = Math.floor(h);
  const below = sortedValues[lower]!;
  if (lower + 1 >= n) return below;
  const above = sortedValues[lower + 1]!;
  const fraction = h - lower;
  return fraction === 0 ? below : below + fraction * (above - below);
}
