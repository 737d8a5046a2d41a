import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { canonicalJson } from '../canonical-json.js';
import type { AggregatePlan, Comparison, Condition, Literal, SelectItem } from '../types.js';
import { queryTextLengthMax } from '../types.js';
import {
  conditionComparisonsMax,
  conditionDepthMax,
  defaultAlias,
  parseAggregateQuery,
  parseCondition,
} from './parser.js';

function rejection(run: () => unknown): LedgerbusError {
  try {
    run();
  } catch (error) {
    if (error instanceof LedgerbusError && error.code === ErrorCode.QueryRejected) return error;
    throw error;
  }
  throw new Error('expected QUERY_REJECTED');
}

const rejectedQuery = (text: string): string => rejection(() => parseAggregateQuery(text)).message;

describe('parseAggregateQuery', () => {
  it("parses the issue's example into its plan", () => {
    const plan = parseAggregateQuery(
      "SELECT region, COUNT(*), AVG(amount) FROM loans WHERE year >= 2023 AND status = 'late' GROUP BY region",
    );
    expect(plan).toStrictEqual({
      kind: 'aggregate',
      dataset: 'loans',
      select: [
        { type: 'group', column: 'region', alias: 'region' },
        { type: 'aggregate', fn: 'count', column: null, alias: 'count(*)' },
        { type: 'aggregate', fn: 'avg', column: 'amount', alias: 'avg(amount)' },
      ],
      where: {
        op: 'and',
        args: [
          { op: 'cmp', cmp: '>=', column: 'year', value: 2023 },
          { op: 'cmp', cmp: '=', column: 'status', value: 'late' },
        ],
      },
      groupBy: ['region'],
    });
  });

  it('reads keywords in any case, lower-cases plain names and keeps quoted ones', () => {
    const plan = parseAggregateQuery(
      'select "Region" As "Area", Count(*) As n from Loans group BY "Region";',
    );
    expect(plan.dataset).toBe('loans');
    expect(plan.select).toStrictEqual([
      { type: 'group', column: 'Region', alias: 'Area' },
      { type: 'aggregate', fn: 'count', column: null, alias: 'n' },
    ]);
    expect(plan.groupBy).toStrictEqual(['Region']);
  });

  it('normalises literal-first comparisons, <>, quantile names and nested ANDs', () => {
    const written = parseAggregateQuery(
      "SELECT PERCENTILE(amount, 0.9), approx_quantile(amount, 0.1) AS low FROM loans WHERE (2023 <= year AND 'late' = status) AND (5 > grade OR 5 <> grade) AND 1 < x AND 2 >= y",
    );
    const normal = parseAggregateQuery(
      "SELECT QUANTILE(amount, 0.9), QUANTILE(amount, 0.1) AS low FROM loans WHERE year >= 2023 AND status = 'late' AND (grade < 5 OR grade != 5) AND x > 1 AND y <= 2",
    );
    expect(written).toStrictEqual(normal);
    expect(written.select[0]).toStrictEqual({
      type: 'aggregate',
      fn: 'quantile',
      column: 'amount',
      q: 0.9,
      alias: 'quantile(amount,0.9)',
    });
    expect(written.where).toStrictEqual({
      op: 'and',
      args: [
        { op: 'cmp', cmp: '>=', column: 'year', value: 2023 },
        { op: 'cmp', cmp: '=', column: 'status', value: 'late' },
        {
          op: 'or',
          args: [
            { op: 'cmp', cmp: '<', column: 'grade', value: 5 },
            { op: 'cmp', cmp: '!=', column: 'grade', value: 5 },
          ],
        },
        { op: 'cmp', cmp: '>', column: 'x', value: 1 },
        { op: 'cmp', cmp: '<=', column: 'y', value: 2 },
      ],
    });
  });

  it('reads literals: escaped quotes, negative and decimal numbers, booleans, NOT', () => {
    const plan = parseAggregateQuery(
      "SELECT COUNT(name) FROM t WHERE NOT name = 'O''Brien' OR delta > -2.5 OR flag = TRUE OR false = other",
    );
    expect(plan.where).toStrictEqual({
      op: 'or',
      args: [
        { op: 'not', arg: { op: 'cmp', cmp: '=', column: 'name', value: "O'Brien" } },
        { op: 'cmp', cmp: '>', column: 'delta', value: -2.5 },
        { op: 'cmp', cmp: '=', column: 'flag', value: true },
        { op: 'cmp', cmp: '=', column: 'other', value: false },
      ],
    });
    expect(plan.select[0]).toStrictEqual({
      type: 'aggregate',
      fn: 'count',
      column: 'name',
      alias: 'count(name)',
    });
  });

  it('binds AND tighter than OR', () => {
    expect(parseCondition('a = 1 OR b = 2 AND c = 3')).toStrictEqual({
      op: 'or',
      args: [
        { op: 'cmp', cmp: '=', column: 'a', value: 1 },
        {
          op: 'and',
          args: [
            { op: 'cmp', cmp: '=', column: 'b', value: 2 },
            { op: 'cmp', cmp: '=', column: 'c', value: 3 },
          ],
        },
      ],
    });
  });

  it.each([
    [
      'a join',
      'SELECT COUNT(*) FROM loans JOIN people ON a = b',
      /joins are not supported \("JOIN" at position 28\)/,
    ],
    ['a second table', 'SELECT COUNT(*) FROM loans, people', /unexpected "," at position 27/],
    [
      'a subquery in FROM',
      'SELECT COUNT(*) FROM (SELECT * FROM loans)',
      /subqueries are not supported \("\(" at position 22\)/,
    ],
    [
      'a subquery in WHERE',
      'SELECT COUNT(*) FROM loans WHERE a = (SELECT 1)',
      /subqueries are not supported/,
    ],
    ['another function', 'SELECT LOWER(name) FROM loans', /function "LOWER" at position 8 is not supported/],
    [
      'a function in a filter',
      "SELECT COUNT(*) FROM t WHERE lower(a) = 'x'",
      /functions are not allowed in a condition \("lower" at position 30\)/,
    ],
    ['SELECT *', 'SELECT * FROM loans', /SELECT \* is not supported \(position 8\)/],
    ['SUM(*)', 'SELECT SUM(*) FROM loans', /unexpected "\*" at position 12/],
    ['LIMIT', 'SELECT COUNT(*) FROM loans LIMIT 5', /LIMIT is not supported \("LIMIT" at position 28\)/],
    [
      'ORDER BY',
      'SELECT region FROM loans GROUP BY region ORDER BY region',
      /ORDER BY is not supported.*position 42/,
    ],
    [
      'HAVING',
      'SELECT region FROM loans GROUP BY region HAVING COUNT(*) > 1',
      /HAVING is not supported \("HAVING" at position 42\)/,
    ],
    ['addition', 'SELECT SUM(a + b) FROM loans', /unexpected character "\+" at position 14: arithmetic/],
    ['multiplication', 'SELECT SUM(a * b) FROM loans', /"\*" at position 14: arithmetic is not supported/],
    [
      'subtraction',
      'SELECT COUNT(*) FROM t WHERE a - 1 > 0',
      /unexpected character "-" at position 32: arithmetic/,
    ],
    ['arithmetic on a literal', 'SELECT COUNT(*) FROM t WHERE a > 1 -1', /unexpected "-1" at position 36/],
    ['a line comment', 'SELECT COUNT(*) FROM loans -- x', /comments are not allowed \(-- at position 28\)/],
    [
      'a block comment',
      'SELECT COUNT(*) /* x */ FROM loans',
      /comments are not allowed \(\/\* at position 17\)/,
    ],
    [
      'two statements',
      'SELECT COUNT(*) FROM loans; SELECT COUNT(*) FROM loans',
      /multiple statements are not supported \("SELECT" at position 29\)/,
    ],
    ['two semicolons', 'SELECT COUNT(*) FROM loans;;', /multiple statements/],
    ['IN', 'SELECT COUNT(*) FROM t WHERE a IN (1, 2)', /IN is not supported.*\("IN" at position 32\)/],
    ['LIKE', "SELECT COUNT(*) FROM t WHERE a LIKE 'x%'", /LIKE is not supported \("LIKE" at position 32\)/],
    ['BETWEEN', 'SELECT COUNT(*) FROM t WHERE a BETWEEN 1 AND 2', /BETWEEN is not supported.*position 32/],
    ['IS NULL', 'SELECT COUNT(*) FROM t WHERE a IS NULL', /IS is not supported/],
    [
      'UNION',
      'SELECT COUNT(*) FROM t UNION SELECT COUNT(*) FROM u',
      /set operations are not supported \("UNION" at position 24\)/,
    ],
    [
      'DISTINCT',
      'SELECT COUNT(DISTINCT a) FROM t',
      /DISTINCT is not supported \("DISTINCT" at position 14\)/,
    ],
    ['two columns compared', 'SELECT COUNT(*) FROM t WHERE a = b', /compares two columns/],
    ['two literals compared', 'SELECT COUNT(*) FROM t WHERE 1 = 1', /compares two literals/],
    ['a bare column filter', 'SELECT COUNT(*) FROM t WHERE a', /ends too early: expected a comparison/],
    [
      'an ungrouped column',
      'SELECT region, COUNT(*) FROM loans',
      /column region must be aggregated or appear in GROUP BY/,
    ],
    [
      'an unselected group',
      'SELECT COUNT(*) FROM loans GROUP BY region',
      /GROUP BY column region must also be selected/,
    ],
    [
      'a group named twice',
      'SELECT region FROM loans GROUP BY region, region',
      /GROUP BY names region twice/,
    ],
    ['a duplicate alias', 'SELECT COUNT(*), COUNT(*) FROM loans', /two select items are named count\(\*\)/],
    [
      'aliases equal but for case',
      'SELECT COUNT(*) AS n, SUM(a) AS "N" FROM loans',
      /two select items are named N/,
    ],
    ['the reserved alias', 'SELECT COUNT(*) AS __group_size FROM loans', /reserved/],
    [
      'a quantile above 1',
      'SELECT QUANTILE(a, 1.5) FROM t',
      /QUANTILE needs a number between 0 and 1, not "1.5" at position 20/,
    ],
    ['a quantile without q', 'SELECT QUANTILE(a) FROM t', /expected ", q"/],
    ['a second argument', 'SELECT AVG(a, 2) FROM t', /AVG takes one column/],
    ['an implicit alias', 'SELECT COUNT(*) n FROM t', /unexpected "n" at position 17: expected "," or FROM/],
    ['a qualified name', 'SELECT COUNT(t.a) FROM t', /unexpected character "\." at position 15/],
    ['a parameter', 'SELECT COUNT(*) FROM t WHERE a = ?', /unexpected character "\?" at position 34/],
    ['backquotes', 'SELECT COUNT(`a`) FROM t', /unexpected character "`" at position 14/],
    [
      'an unterminated string',
      "SELECT COUNT(*) FROM t WHERE a = 'x",
      /unterminated string starting at position 34/,
    ],
    ['a malformed number', 'SELECT COUNT(*) FROM t WHERE a = 1.2.3', /malformed number at position 34/],
    ['an empty query', '', /ends too early: a query starts with SELECT/],
    [
      'a number out of range',
      'SELECT COUNT(*) FROM t WHERE a > 1e999',
      /number 1e999 at position 34 is out of range/,
    ],
    ['a keyword as a name', 'SELECT COUNT(*) FROM where', /unexpected "where" at position 22/],
    ['a NUL in a quoted name', 'SELECT COUNT("a\u0000") FROM t', /control character/],
    [
      'INSERT',
      'INSERT INTO loans VALUES (1)',
      /unexpected "INSERT" at position 1: a query starts with SELECT/,
    ],
    ['a filter ending in ;', 'SELECT COUNT(*) FROM t WHERE a = 1;x', /multiple statements/],
  ])('rejects %s, naming the offending token', (_name, text, message) => {
    expect(rejectedQuery(text)).toMatch(message);
  });

  it('rejects text longer than the limit before reading it', () => {
    const text = `SELECT COUNT(*) FROM t WHERE a = '${'x'.repeat(queryTextLengthMax)}'`;
    expect(rejectedQuery(text)).toMatch(/characters long; at most 8192/);
    const padded = `SELECT COUNT(*) FROM t${' '.repeat(queryTextLengthMax - 22)}`;
    expect(padded.length).toBe(queryTextLengthMax);
    expect(parseAggregateQuery(padded).dataset).toBe('t');
  });

  it(`accepts ${conditionDepthMax} nested levels and rejects deeper nesting without overflowing the stack`, () => {
    const nested = (depth: number) => `${'('.repeat(depth)}a = 1${')'.repeat(depth)}`;
    expect(parseCondition(nested(conditionDepthMax))).toStrictEqual({
      op: 'cmp',
      cmp: '=',
      column: 'a',
      value: 1,
    });
    expect(rejection(() => parseCondition(nested(conditionDepthMax + 1))).message).toMatch(
      /nests deeper than 64/,
    );
    expect(rejection(() => parseCondition(nested(4000))).message).toMatch(/nests deeper than 64/);
    expect(rejection(() => parseCondition(`${'NOT '.repeat(2000)}a = 1`)).message).toMatch(
      /nests deeper than 64/,
    );
    const nots = `${'NOT '.repeat(conditionDepthMax)}a = 1`;
    expect(parseCondition(nots).op).toBe('not');
  });
});

describe('a long OR chain', () => {
  it(`accepts ${conditionComparisonsMax} comparisons and refuses more as QUERY_REJECTED, not later in SQLite`, () => {
    const chain = (n: number) => Array.from({ length: n }, () => 'a=1').join(' OR ');
    const most = parseCondition(chain(conditionComparisonsMax));
    expect(most.op === 'or' && most.args.length).toBe(conditionComparisonsMax);
    // 1150 comparisons fit in the query length limit; SQLite would refuse the tree (depth > 1000).
    for (const n of [conditionComparisonsMax + 1, 1150]) {
      const error = rejection(() => parseAggregateQuery(`SELECT COUNT(*) FROM t WHERE ${chain(n)}`));
      expect(error.code).toBe(ErrorCode.QueryRejected);
      expect(error.message).toMatch(/more than 256 comparisons/);
    }
  });
});

describe('parseCondition', () => {
  it('parses a filter alone and refuses trailing text', () => {
    expect(parseCondition("status = 'late'")).toStrictEqual({
      op: 'cmp',
      cmp: '=',
      column: 'status',
      value: 'late',
    });
    expect(rejection(() => parseCondition('a = 1)')).message).toMatch(/unexpected "\)" at position 6/);
    expect(rejection(() => parseCondition('a = 1;')).message).toMatch(/a filter is one condition/);
    expect(rejection(() => parseCondition('')).message).toMatch(/ends too early/);
  });
});

// ---- properties ----

const soupTokens = [
  'SELECT',
  'select',
  'FROM',
  'WHERE',
  'GROUP',
  'BY',
  'AND',
  'OR',
  'NOT',
  'AS',
  '(',
  ')',
  ',',
  ';',
  '*',
  '=',
  '!=',
  '<>',
  '<',
  '<=',
  '>',
  '>=',
  'COUNT',
  'SUM',
  'AVG',
  'MIN',
  'MAX',
  'QUANTILE',
  'PERCENTILE',
  'region',
  'amount',
  'loans',
  '"Quoted name"',
  '"a""b"',
  "'late'",
  "'it''s'",
  '12',
  '-3.5',
  '0.5',
  '1e3',
  'TRUE',
  'false',
  'JOIN',
  'LIMIT',
  'ORDER',
  'IN',
  'LIKE',
  'NULL',
  '--',
  '/*',
  '+',
  '-',
  '.',
  '"',
  "'",
  '?',
  '\u0000',
  'é',
  '1.',
  '__group_size',
];

function expectPlanOrRejection(run: () => unknown): void {
  try {
    const plan = run();
    // What parses is a plan canonical JSON can hash.
    canonicalJson(plan);
  } catch (error) {
    if (!(error instanceof LedgerbusError && error.code === ErrorCode.QueryRejected)) throw error;
  }
}

describe('parser properties', () => {
  it('gives only a plan or QUERY_REJECTED on random text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        expectPlanOrRejection(() => parseAggregateQuery(text));
        expectPlanOrRejection(() => parseCondition(text));
        expectPlanOrRejection(() => parseAggregateQuery(`SELECT COUNT(*) FROM t WHERE ${text}`));
      }),
      { numRuns: 2000 },
    );
  });

  it('gives only a plan or QUERY_REJECTED on token soups', () => {
    const soup = fc.tuple(
      fc.array(fc.constantFrom(...soupTokens), { maxLength: 40 }),
      fc.constantFrom(' ', '', '\n'),
    );
    fc.assert(
      fc.property(soup, ([tokens, gap]) => {
        expectPlanOrRejection(() => parseAggregateQuery(tokens.join(gap)));
        expectPlanOrRejection(() => parseAggregateQuery(`SELECT ${tokens.join(gap)}`));
        expectPlanOrRejection(() => parseCondition(tokens.join(gap)));
      }),
      { numRuns: 3000 },
    );
  });

  it('parses a printed plan back into the same plan', () => {
    fc.assert(
      fc.property(planArbitrary, fc.integer(), (plan, seed) => {
        const text = printPlan(plan, new Style(seed));
        // fast-check's records have no prototype: compare as the plan hash does.
        expect(canonicalJson(parseAggregateQuery(text))).toBe(canonicalJson(plan));
      }),
      { numRuns: 1000 },
    );
  });

  it('parses a printed condition back into the same condition', () => {
    fc.assert(
      fc.property(conditionArbitrary, fc.integer(), (condition, seed) => {
        const parsed = parseCondition(printCondition(condition, new Style(seed)));
        expect(canonicalJson(parsed)).toBe(canonicalJson(condition));
      }),
      { numRuns: 1000 },
    );
  });
});

// Plans in the parser's normal form: no nested AND in AND (OR in OR), no -0, quantile as 'quantile'.
const name = fc.string({
  unit: fc.constantFrom('a', 'B', 'z', '_', '1', ' ', '"', "'", 'é', '-', '.', '(', '*', '字'),
  minLength: 1,
  maxLength: 6,
});
const noNegativeZero = (value: number) => (Object.is(value, -0) ? 0 : value);
const literal: fc.Arbitrary<Literal> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.integer().map(noNegativeZero),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(noNegativeZero),
  fc.boolean(),
);
const comparison = fc.constantFrom<Comparison>('=', '!=', '<', '<=', '>', '>=');

const { condition: conditionArbitrary } = fc.letrec<{ condition: Condition }>((tie) => ({
  condition: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ op: fc.constant('cmp' as const), cmp: comparison, column: name, value: literal }),
    fc.record({ op: fc.constant('not' as const), arg: tie('condition') }),
    fc.constantFrom('and' as const, 'or' as const).chain((op) =>
      fc.record({
        op: fc.constant(op),
        args: fc.array(
          tie('condition').filter((arg) => arg.op !== op),
          { minLength: 2, maxLength: 3 },
        ),
      }),
    ),
  ),
}));

const aggregateItem: fc.Arbitrary<SelectItem> = fc
  .oneof(
    fc.constant({ fn: 'count' as const, column: null }),
    fc.record({
      fn: fc.constantFrom('count' as const, 'sum' as const, 'avg' as const, 'min' as const, 'max' as const),
      column: name,
    }),
    fc.record({
      fn: fc.constant('quantile' as const),
      column: name,
      q: fc.double({ min: 0, max: 1, noNaN: true }).map(noNegativeZero),
    }),
  )
  .chain((item) =>
    fc
      .oneof(fc.constant(defaultAlias(item.fn, item.column, 'q' in item ? item.q : undefined)), name)
      .map((alias) => ({ type: 'aggregate' as const, ...item, alias })),
  );

const planArbitrary: fc.Arbitrary<AggregatePlan> = fc
  .record({
    dataset: name,
    groupBy: fc.uniqueArray(name, { maxLength: 3 }),
    aggregates: fc.array(aggregateItem, { maxLength: 4 }),
    where: fc.option(conditionArbitrary, { nil: null }),
    groupAliases: fc.array(fc.option(name, { nil: null }), { minLength: 3, maxLength: 3 }),
    order: fc.array(fc.nat(), { minLength: 7, maxLength: 7 }),
  })
  .map(({ dataset, groupBy, aggregates, where, groupAliases, order }) => {
    const groups: SelectItem[] = groupBy.map((column, i) => ({
      type: 'group',
      column,
      alias: groupAliases[i] ?? column,
    }));
    // Interleave the groups among the aggregates, in any order.
    const select = [...groups, ...aggregates]
      .map((item, i) => ({ item, key: order[i] ?? 0 }))
      .sort((a, b) => a.key - b.key)
      .map(({ item }) => item);
    return { kind: 'aggregate' as const, dataset, select, where, groupBy };
  })
  .filter((plan) => {
    if (plan.select.length === 0) return false;
    const aliases = plan.select.map((item) => item.alias.toLowerCase());
    return new Set(aliases).size === aliases.length && !aliases.includes('__group_size');
  });

/** Random choices of how to write a plan: keyword case, quantile spelling, operand order, spacing. */
class Style {
  constructor(private seed: number) {}
  pick(): boolean {
    this.seed = (Math.imul(this.seed ^ (this.seed >>> 15), 0x2c1b3c6d) + 0x9e3779b9) | 0;
    return (this.seed & 0x10000) !== 0;
  }
  keyword(word: string): string {
    return this.pick() ? word.toLowerCase() : word;
  }
  gap(): string {
    return this.pick() ? ' ' : '\n  ';
  }
}

/** Quoted, or bare (in either case) when it reads back as itself: lower case, no keyword. */
function printName(value: string, style: Style): string {
  const bare = /^[a-z_][a-z0-9_]*$/.test(value) && !['as', 'or', 'and', 'not', 'by'].includes(value);
  if (bare && style.pick()) return style.pick() ? value : value.toUpperCase();
  return `"${value.replaceAll('"', '""')}"`;
}

function printLiteral(value: Literal, style: Style): string {
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  if (typeof value === 'boolean') return style.keyword(value ? 'TRUE' : 'FALSE');
  return String(value);
}

const flip: Record<Comparison, string> = { '=': '=', '!=': '<>', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };

function printCondition(condition: Condition, style: Style): string {
  switch (condition.op) {
    case 'cmp': {
      const cmp = condition.cmp === '!=' && style.pick() ? '<>' : condition.cmp;
      return style.pick()
        ? `${printName(condition.column, style)} ${cmp} ${printLiteral(condition.value, style)}`
        : `${printLiteral(condition.value, style)} ${flip[condition.cmp]} ${printName(condition.column, style)}`;
    }
    case 'not':
      return `${style.keyword('NOT')} (${printCondition(condition.arg, style)})`;
    default:
      return condition.args
        .map((arg) => `(${printCondition(arg, style)})`)
        .join(`${style.gap()}${style.keyword(condition.op.toUpperCase())} `);
  }
}

function printPlan(plan: AggregatePlan, style: Style): string {
  const items = plan.select.map((item) => {
    let text: string;
    let implicit: string;
    if (item.type === 'group') {
      text = printName(item.column, style);
      implicit = item.column;
    } else {
      const fn =
        item.fn === 'quantile'
          ? style.pick()
            ? 'QUANTILE'
            : style.pick()
              ? 'APPROX_QUANTILE'
              : 'PERCENTILE'
          : item.fn.toUpperCase();
      const argument = item.column === null ? '*' : printName(item.column, style);
      text = `${style.keyword(fn)}(${argument}${item.q === undefined ? '' : `, ${item.q}`})`;
      implicit = defaultAlias(item.fn, item.column, item.q);
    }
    return item.alias === implicit && style.pick()
      ? text
      : `${text} ${style.keyword('AS')} ${printName(item.alias, style)}`;
  });
  let text = `${style.keyword('SELECT')} ${items.join(',' + style.gap())}${style.gap()}${style.keyword('FROM')} ${printName(plan.dataset, style)}`;
  if (plan.where !== null) {
    text += `${style.gap()}${style.keyword('WHERE')} ${printCondition(plan.where, style)}`;
  }
  if (plan.groupBy.length > 0) {
    text += `${style.gap()}${style.keyword('GROUP BY')} ${plan.groupBy.map((column) => printName(column, style)).join(', ')}`;
  }
  return style.pick() ? `${text};` : text;
}
