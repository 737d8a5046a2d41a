import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ColumnInfo, JobSpec, PolicySummary } from '../types.js';
import { defaultDatasetPolicy, policySummary } from '../types.js';
import { planOf } from './plan.js';
import { checkPlan, parseDatasetPolicy } from './policy.js';

const columns: readonly ColumnInfo[] = [
  { name: 'region', type: 'text' },
  { name: 'status', type: 'text' },
  { name: 'amount', type: 'real' },
  { name: 'year', type: 'integer' },
  { name: 'late', type: 'boolean' },
  { name: 'ssn', type: 'text' },
  { name: 'Mixed', type: 'real' },
];

const open: PolicySummary = policySummary(defaultDatasetPolicy);
const strict: PolicySummary = {
  ...open,
  allowedColumns: ['region', 'status', 'amount', 'year', 'late'],
  aggregates: ['count', 'avg'],
  models: ['linear'],
};

function check(query: string, policy: PolicySummary = open): void {
  checkPlan(planOf({ kind: 'aggregate', dataset: 'loans', query }), columns, policy);
}

function checkModel(spec: Partial<Extract<JobSpec, { kind: 'model' }>>, policy: PolicySummary = open): void {
  const full: JobSpec = {
    kind: 'model',
    dataset: 'loans',
    model: 'linear',
    features: ['year'],
    target: 'amount',
    ...spec,
  };
  checkPlan(planOf(full), columns, policy);
}

function rejected(run: () => unknown, code: ErrorCode = ErrorCode.QueryRejected): string {
  try {
    run();
  } catch (error) {
    if (error instanceof LedgerbusError && error.code === code) return error.message;
    throw error;
  }
  throw new Error(`expected ${code}`);
}

describe('checkPlan', () => {
  it("passes the issue's example and plans within a strict policy", () => {
    const example =
      "SELECT region, COUNT(*), AVG(amount) FROM loans WHERE year >= 2023 AND status = 'late' GROUP BY region";
    expect(() => check(example)).not.toThrow();
    expect(() => check(example, strict)).not.toThrow();
    expect(() =>
      check('SELECT MIN(region), MAX(status), COUNT(ssn), SUM(late), QUANTILE(year, 0.5) FROM loans'),
    ).not.toThrow();
    expect(() =>
      check('SELECT COUNT(*) FROM loans WHERE late = TRUE AND year != 3 AND late = 1'),
    ).not.toThrow();
    expect(() =>
      checkModel({ features: ['year', 'late'], target: 'amount', where: "region = 'north'" }, strict),
    ).not.toThrow();
    expect(() => checkModel({ model: 'logistic', features: ['amount'], target: 'late' })).not.toThrow();
    expect(() => checkModel({ model: 'logistic', features: ['amount'], target: 'year' })).not.toThrow();
  });

  it.each([
    [
      'an unknown group',
      'SELECT country FROM loans GROUP BY country',
      'column country (a group) is not in dataset loans',
    ],
    [
      'an unknown aggregate column',
      'SELECT AVG(income) FROM loans',
      'column income (avg(income)) is not in dataset loans',
    ],
    [
      'an unknown filter column',
      'SELECT COUNT(*) FROM loans WHERE NOT (x = 1)',
      'column x (in the filter) is not in dataset loans',
    ],
    [
      'a name in the wrong case',
      'SELECT AVG(mixed) FROM loans',
      'column mixed (avg(mixed)) is not in dataset loans (it has Mixed: quote the name to keep its case)',
    ],
    [
      'SUM of text',
      'SELECT SUM(region) FROM loans',
      'sum(region): SUM needs a numeric column, and region is text',
    ],
    [
      'AVG of text',
      'SELECT AVG(status) AS s FROM loans',
      's: AVG needs a numeric column, and status is text',
    ],
    ['QUANTILE of text', 'SELECT QUANTILE(status, 0.5) FROM loans', /QUANTILE needs a numeric column/],
    [
      'text compared with a number',
      'SELECT COUNT(*) FROM loans WHERE region = 5',
      'column region is text and cannot be compared with 5',
    ],
    [
      'text compared with a boolean',
      'SELECT COUNT(*) FROM loans WHERE region = TRUE',
      /region is text and cannot be compared with true/,
    ],
    [
      'a number compared with text',
      "SELECT COUNT(*) FROM loans WHERE 'x' < amount",
      "column amount is real and cannot be compared with 'x'",
    ],
    ['an integer compared with text', "SELECT COUNT(*) FROM loans WHERE year = '2023'", /year is integer/],
    ['a boolean compared with text', "SELECT COUNT(*) FROM loans WHERE late = 'yes'", /late is boolean/],
    ['a real compared with a boolean', 'SELECT COUNT(*) FROM loans WHERE amount = FALSE', /amount is real/],
  ])('rejects %s', (_name, query, message) => {
    expect(rejected(() => check(query))).toMatch(message);
  });

  it.each([
    [
      'a column outside the allowed list',
      'SELECT COUNT(ssn) FROM loans',
      "column ssn (count(ssn)) is not allowed by the owner's policy",
    ],
    ['a disallowed group', 'SELECT ssn FROM loans GROUP BY ssn', /column ssn \(a group\) is not allowed/],
    [
      'a disallowed filter column',
      "SELECT COUNT(*) FROM loans WHERE ssn = '1'",
      /column ssn \(in the filter\) is not allowed/,
    ],
    [
      'a disallowed aggregate',
      'SELECT SUM(amount) AS total FROM loans',
      "SUM is not allowed by the owner's policy (total)",
    ],
    ['MAX outside the allowed aggregates', 'SELECT MAX(year) FROM loans', /MAX is not allowed/],
  ])('rejects %s under a strict policy', (_name, query, message) => {
    expect(rejected(() => check(query, strict))).toMatch(message);
  });

  it('a quantile near 0 needs MIN allowed, near 1 MAX: QUANTILE is not a way around them', () => {
    const noExtremes: PolicySummary = { ...open, aggregates: ['count', 'avg', 'quantile'] };
    expect(rejected(() => check('SELECT QUANTILE(amount, 0) FROM loans', noExtremes))).toMatch(
      /below 0.05 is close to the smallest value.*does not allow MIN/,
    );
    expect(rejected(() => check('SELECT QUANTILE(amount, 0.99) FROM loans', noExtremes))).toMatch(
      /above 0.95 is close to the largest value.*does not allow MAX/,
    );
    expect(() =>
      check('SELECT QUANTILE(amount, 0.05), QUANTILE(amount, 0.95) FROM loans', noExtremes),
    ).not.toThrow();
    expect(() =>
      check('SELECT QUANTILE(amount, 0), QUANTILE(amount, 1) FROM loans', {
        ...noExtremes,
        aggregates: ['quantile', 'min', 'max'],
      }),
    ).not.toThrow();
  });

  it('rejects COUNT(*) when the policy has no COUNT', () => {
    expect(rejected(() => check('SELECT COUNT(*) FROM loans', { ...open, aggregates: ['avg'] }))).toMatch(
      /COUNT is not allowed/,
    );
  });

  it.each([
    [
      'a disallowed model kind',
      { model: 'logistic' as const, target: 'late' },
      "logistic models are not allowed by the owner's policy",
    ],
    [
      'a text feature',
      { features: ['year', 'region'] },
      "feature region is text: a model's features must be numeric",
    ],
    [
      'a text target',
      { target: 'status' },
      'the target status is text: a linear model needs integer or real or boolean',
    ],
    ['an unknown feature', { features: ['income'] }, 'column income (a feature) is not in dataset loans'],
    ['a disallowed target', { target: 'ssn' }, /column ssn \(the target\) is not allowed/],
    ['a text comparison in the filter', { where: 'region > 3' }, /region is text/],
  ])('rejects a model with %s', (_name, spec, message) => {
    expect(rejected(() => checkModel(spec, strict))).toMatch(message);
  });

  it('rejects a logistic model on a real target', () => {
    expect(rejected(() => checkModel({ model: 'logistic', features: ['year'], target: 'amount' }))).toBe(
      'the target amount is real: a logistic model needs boolean or integer',
    );
  });

  it('refuses every model when the policy lists none', () => {
    expect(rejected(() => checkModel({}, { ...open, models: [] }))).toMatch(/linear models are not allowed/);
  });
});

describe('parseDatasetPolicy', () => {
  it('fills every absent field from the defaults', () => {
    expect(parseDatasetPolicy({})).toStrictEqual(defaultDatasetPolicy);
    const policy = parseDatasetPolicy({
      allowedColumns: ['region', 'amount'],
      aggregates: ['count', 'avg'],
      models: [],
      minGroupSize: 50,
      maxRows: 1000,
      timeLimitMs: 5000,
      memoryBytesMax: 64 * 1024 * 1024,
      resultRowsMax: 100,
      approval: 'manual',
      differenceCheck: false,
    });
    expect(policy).toStrictEqual({
      allowedColumns: ['region', 'amount'],
      aggregates: ['count', 'avg'],
      models: [],
      minGroupSize: 50,
      maxRows: 1000,
      timeLimitMs: 5000,
      memoryBytesMax: 64 * 1024 * 1024,
      resultRowsMax: 100,
      approval: 'manual',
      differenceCheck: false,
    });
    expect(parseDatasetPolicy({ allowedColumns: '*', minGroupSize: 10 }).allowedColumns).toBe('*');
  });

  it.each([
    ['not an object', [], /the policy must be a JSON object/],
    ['an unknown field', { minGroupSise: 50 }, /unknown field "minGroupSise"/],
    [
      'a group size under the floor',
      { minGroupSize: 9 },
      /minGroupSize must be an integer of at least 10, not 9/,
    ],
    ['a fractional group size', { minGroupSize: 10.5 }, /minGroupSize must be an integer/],
    ['a zero row limit', { maxRows: 0 }, /maxRows must be an integer of at least 1, not 0/],
    ['a negative time limit', { timeLimitMs: -5 }, /timeLimitMs must be/],
    [
      'a string memory limit',
      { memoryBytesMax: '512M' },
      /memoryBytesMax must be an integer of at least 1, not "512M"/,
    ],
    ['a zero result limit', { resultRowsMax: 0 }, /resultRowsMax must be/],
    ['an unknown aggregate', { aggregates: ['count', 'median'] }, /aggregates holds "median"/],
    ['an aggregate twice', { aggregates: ['count', 'count'] }, /aggregates names an entry twice/],
    ['an unknown model', { models: ['tree'] }, /models holds "tree"/],
    ['models not a list', { models: 'linear' }, /models must be a list/],
    ['bad allowed columns', { allowedColumns: 'all' }, /allowedColumns must be "\*" or a list/],
    ['an empty column name', { allowedColumns: [''] }, /allowedColumns must be/],
    ['a column twice', { allowedColumns: ['a', 'a'] }, /allowedColumns names a column twice/],
    ['an unknown approval', { approval: 'always' }, /approval must be "auto" or "manual"/],
    ['a null approval', { approval: null }, /approval must be/],
    ['a string differenceCheck', { differenceCheck: 'yes' }, /differenceCheck must be true or false/],
  ])('rejects %s with BAD_CONFIG naming the field', (_name, value, message) => {
    expect(rejected(() => parseDatasetPolicy(value), ErrorCode.BadConfig)).toMatch(message);
  });
});
