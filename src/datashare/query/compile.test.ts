import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { AssertionError } from '../../errors.js';
import type { ColumnInfo } from '../types.js';
import {
  compileAggregate,
  compileCondition,
  groupSizeColumn,
  quantileFunctionName,
  quantileOf,
} from './compile.js';
import { parseAggregateQuery, parseCondition } from './parser.js';

const columns: readonly ColumnInfo[] = [
  { name: 'region', type: 'text' },
  { name: 'status', type: 'text' },
  { name: 'amount', type: 'real' },
  { name: 'year', type: 'integer' },
  { name: 'late', type: 'boolean' },
  { name: 'odd "name"', type: 'integer' },
];

interface Row {
  region: string;
  status: string;
  amount: number | null;
  year: number;
  late: number;
  odd: number;
}

// A deterministic table: 300 rows over three regions, four years and two statuses.
const rows: Row[] = Array.from({ length: 300 }, (_, i) => ({
  region: ['north', 'south', 'east'][i % 3]!,
  status: i % 7 < 3 ? 'late' : 'ok',
  amount: i % 11 === 0 ? null : ((i * 37) % 101) + 0.5,
  year: 2021 + (i % 4),
  late: i % 5 === 0 ? 1 : 0,
  odd: i % 2,
}));

const db = new Database(':memory:');
db.exec(
  'CREATE TABLE data (region TEXT, status TEXT, amount REAL, year INTEGER, late INTEGER, "odd ""name""" INTEGER)',
);
const insert = db.prepare('INSERT INTO data VALUES (?, ?, ?, ?, ?, ?)');
for (const row of rows) insert.run(row.region, row.status, row.amount, row.year, row.late, row.odd);
// What the runner registers for QUANTILE: collect the column's non-NULL values, then quantileOf.
interface QuantileState {
  values: number[];
  q: number;
}
// SQLite passes the column's value and q; better-sqlite3 reads the arity from the step function's
// length, while its types name one argument.
const quantileStep = (state: QuantileState, value: unknown, q: unknown): QuantileState => {
  if (typeof value === 'number') state.values.push(value);
  state.q = q as number;
  return state;
};
db.aggregate<QuantileState>(quantileFunctionName, {
  start: () => ({ values: [], q: 0 }),
  step: quantileStep as (state: QuantileState) => QuantileState,
  result: (state) =>
    state.values.length === 0 ? null : quantileOf(Float64Array.from(state.values).sort(), state.q),
});
afterAll(() => db.close());

function run(query: string): unknown[][] {
  const compiled = compileAggregate(parseAggregateQuery(query), columns);
  const statement = db.prepare(compiled.sql).raw(true);
  expect(statement.columns().map((column) => column.name)).toStrictEqual(compiled.outputs);
  return statement.all(...compiled.params) as unknown[][];
}

function matching(where: string): Row[] {
  const condition = compileCondition(parseCondition(where), columns);
  const keep = new Set(
    (
      db
        .prepare(`SELECT rowid FROM "data" WHERE ${condition.sql}`)
        .pluck()
        .all(...condition.params) as number[]
    ).map((rowid) => rowid - 1),
  );
  return rows.filter((_, i) => keep.has(i));
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

describe('compileAggregate', () => {
  it("compiles the issue's example to quoted identifiers and bound literals", () => {
    const compiled = compileAggregate(
      parseAggregateQuery(
        "SELECT region, COUNT(*), AVG(amount) FROM loans WHERE year >= 2023 AND status = 'late' GROUP BY region",
      ),
      columns,
    );
    expect(compiled).toStrictEqual({
      sql:
        'SELECT "region" AS "region", COUNT(*) AS "count(*)", AVG("amount") AS "avg(amount)", COUNT(*) AS "__group_size" ' +
        'FROM "data" WHERE (("year" >= ?) AND ("status" = ?)) GROUP BY "region" ORDER BY "region"',
      params: [2023, 'late'],
      outputs: ['region', 'count(*)', 'avg(amount)', '__group_size'],
      groupSizeColumn: '__group_size',
    });
    expect(groupSizeColumn).toBe('__group_size');
  });

  it("runs the issue's example and agrees with the rows, ordered by group", () => {
    const result = run(
      "SELECT region, COUNT(*), AVG(amount) FROM loans WHERE year >= 2023 AND status = 'late' GROUP BY region",
    );
    const selected = rows.filter((row) => row.year >= 2023 && row.status === 'late');
    const expected = ['east', 'north', 'south'].map((region) => {
      const group = selected.filter((row) => row.region === region);
      const amounts = group.flatMap((row) => (row.amount === null ? [] : [row.amount]));
      return [region, group.length, mean(amounts), group.length];
    });
    expect(result.length).toBe(3);
    result.forEach((row, i) => {
      expect(row.slice(0, 2)).toStrictEqual(expected[i]!.slice(0, 2));
      expect(row[2]).toBeCloseTo(expected[i]![2] as number, 9);
      expect(row[3]).toBe(expected[i]![3]);
    });
  });

  it('runs every aggregate, quantiles through the registered function', () => {
    const [row] = run(
      'SELECT COUNT(*) AS n, COUNT(amount) AS c, SUM(year) AS s, MIN(amount) AS lo, MAX(region) AS hi, ' +
        'QUANTILE(amount, 0.5) AS median, PERCENTILE(amount, 0.9) AS p90 FROM loans WHERE late = TRUE',
    );
    const selected = rows.filter((row) => row.late === 1);
    const amounts = selected.flatMap((r) => (r.amount === null ? [] : [r.amount])).sort((a, b) => a - b);
    expect(row).toStrictEqual([
      selected.length,
      amounts.length,
      selected.reduce((sum, r) => sum + r.year, 0),
      amounts[0],
      'south',
      quantileOf(Float64Array.from(amounts), 0.5),
      quantileOf(Float64Array.from(amounts), 0.9),
      selected.length,
    ]);
  });

  it('groups by several columns, in order, and answers one row without GROUP BY', () => {
    const grouped = run('SELECT status, COUNT(*) AS n, region FROM loans GROUP BY region, status');
    expect(grouped.map((row) => [row[2], row[0]])).toStrictEqual([
      ['east', 'late'],
      ['east', 'ok'],
      ['north', 'late'],
      ['north', 'ok'],
      ['south', 'late'],
      ['south', 'ok'],
    ]);
    expect(grouped.reduce((sum, row) => sum + (row[1] as number), 0)).toBe(rows.length);
    expect(run('SELECT COUNT(*) FROM loans WHERE year > 3000')).toStrictEqual([[0, 0]]);
  });

  it('filters with NOT, OR, flipped comparisons and booleans as the rows say', () => {
    expect(matching("NOT (region = 'north' OR 2022 >= year) AND late = FALSE")).toStrictEqual(
      rows.filter((row) => !(row.region === 'north' || row.year <= 2022) && row.late === 0),
    );
    expect(matching('amount != 10.5')).toStrictEqual(
      rows.filter((row) => row.amount !== null && row.amount !== 10.5),
    );
    expect(matching('"odd ""name""" = 1')).toStrictEqual(rows.filter((row) => row.odd === 1));
  });

  it('keeps a literal a literal: an injection attempt matches nothing', () => {
    expect(run("SELECT COUNT(*) FROM loans WHERE status = 'x'' OR 1=1 --'")).toStrictEqual([[0, 0]]);
    expect(matching("region = 'north'' OR ''a''=''a'")).toStrictEqual([]);
    const aliased = run('SELECT COUNT(*) AS "n"" FROM data; DROP TABLE data; --" FROM loans');
    expect(aliased).toStrictEqual([[rows.length, rows.length]]);
    expect(db.prepare('SELECT COUNT(*) FROM data').pluck().get()).toBe(rows.length);
  });

  it('takes identifiers from the dataset only: a column it lacks is a bug', () => {
    expect(() => compileAggregate(parseAggregateQuery('SELECT COUNT(x) FROM loans'), columns)).toThrow(
      AssertionError,
    );
    expect(() => compileCondition(parseCondition('x = 1'), columns)).toThrow(AssertionError);
  });

  it('compiles no filter to 1', () => {
    expect(compileCondition(null, columns)).toStrictEqual({ sql: '1', params: [] });
  });
});

describe('quantileOf', () => {
  const values = Float64Array.from([1, 2, 4, 8, 16]);
  it('interpolates between order statistics (type 7)', () => {
    expect(quantileOf(values, 0)).toBe(1);
    expect(quantileOf(values, 1)).toBe(16);
    expect(quantileOf(values, 0.5)).toBe(4);
    // h = 4·0.3 = 1.2: 2 + 0.2·(4 − 2)
    expect(quantileOf(values, 0.3)).toBeCloseTo(2.4, 12);
    expect(quantileOf(values, 0.9)).toBeCloseTo(8 + 0.6 * 8, 12);
    expect(quantileOf(Float64Array.from([7]), 0.42)).toBe(7);
    expect(quantileOf(Float64Array.from([1, 2]), 0.5)).toBe(1.5);
  });

  it('refuses no values and q outside [0, 1]', () => {
    expect(() => quantileOf(new Float64Array(0), 0.5)).toThrow(AssertionError);
    expect(() => quantileOf(values, 1.5)).toThrow(AssertionError);
  });
});
