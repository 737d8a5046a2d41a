import { describe, expect, it } from 'vitest';
import { sha256, toHex } from '../../crypto/hash.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { JobSpec } from '../types.js';
import { defaultModelIterations, planHash, planOf, saltOf, specOf } from './plan.js';

function rejected(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof LedgerbusError && error.code === ErrorCode.QueryRejected) return error.message;
    throw error;
  }
  throw new Error('expected QUERY_REJECTED');
}

const modelSpec: JobSpec = {
  kind: 'model',
  dataset: 'loans',
  model: 'logistic',
  features: ['amount', 'income'],
  target: 'defaulted',
};

describe('planOf', () => {
  it('parses an aggregate query and keeps the dataset spelling of the spec', () => {
    const plan = planOf({ kind: 'aggregate', dataset: 'Loans', query: 'SELECT COUNT(*) FROM loans' });
    expect(plan).toStrictEqual({
      kind: 'aggregate',
      dataset: 'Loans',
      select: [{ type: 'aggregate', fn: 'count', column: null, alias: 'count(*)' }],
      where: null,
      groupBy: [],
    });
  });

  it('rejects a query FROM another dataset', () => {
    expect(
      rejected(() => planOf({ kind: 'aggregate', dataset: 'loans', query: 'SELECT COUNT(*) FROM people' })),
    ).toBe('the query reads FROM people, but the job is for dataset loans');
  });

  it('fills model defaults and parses the filter', () => {
    expect(planOf({ ...modelSpec, where: 'year >= 2023' })).toStrictEqual({
      kind: 'model',
      dataset: 'loans',
      model: 'logistic',
      features: ['amount', 'income'],
      target: 'defaulted',
      where: { op: 'cmp', cmp: '>=', column: 'year', value: 2023 },
      iterations: defaultModelIterations,
      l2: 0,
    });
    expect(defaultModelIterations).toBe(25);
    const tuned = planOf({ ...modelSpec, iterations: 100, l2: 0.5 });
    expect(tuned).toMatchObject({ iterations: 100, l2: 0.5, where: null });
  });

  it.each([
    ['no features', { features: [] }, /1 to 32 features, not 0/],
    [
      'too many features',
      { features: Array.from({ length: 33 }, (_, i) => `f${i}`) },
      /1 to 32 features, not 33/,
    ],
    ['a feature twice', { features: ['a', 'a'] }, /feature a is named twice/],
    [
      'the target as a feature',
      { features: ['a', 'defaulted'] },
      /target defaulted cannot also be a feature/,
    ],
    ['zero iterations', { iterations: 0 }, /iterations must be an integer from 1 to 100, not 0/],
    ['too many iterations', { iterations: 101 }, /not 101/],
    ['fractional iterations', { iterations: 2.5 }, /not 2.5/],
    ['a negative l2', { l2: -1 }, /l2 must be a finite number ≥ 0, not -1/],
    ['an infinite l2', { l2: Infinity }, /not Infinity/],
    ['a bad filter', { where: 'year >= 2023 LIMIT 1' }, /LIMIT is not supported/],
  ])('rejects a model spec with %s', (_name, change, message) => {
    expect(rejected(() => planOf({ ...modelSpec, ...change } as JobSpec))).toMatch(message);
  });
});

const salt = new Uint8Array(32).fill(7);

describe('planHash', () => {
  it("is the SHA-256 of the salt and the plan's canonical JSON, and the salt changes it", () => {
    const plan = planOf({ kind: 'aggregate', dataset: 'loans', query: 'SELECT COUNT(*) AS n FROM loans' });
    const json =
      '{"dataset":"loans","groupBy":[],"kind":"aggregate","select":[{"alias":"n","column":null,"fn":"count","type":"aggregate"}],"where":null}';
    const salted = new Uint8Array([...salt, ...new TextEncoder().encode(json)]);
    expect(toHex(planHash(plan, salt))).toBe(toHex(sha256(salted)));
    expect(toHex(planHash(plan, new Uint8Array(32).fill(8)))).not.toBe(toHex(planHash(plan, salt)));
    expect(() => planHash(plan, new Uint8Array(31))).toThrow(/salt/);
  });

  it('takes the salt from the spec, and refuses a spec without one', () => {
    const hex = toHex(salt);
    expect(toHex(saltOf(specOf({ kind: 'aggregate', dataset: 'loans', query: 'q', salt: hex })))).toBe(hex);
    expect(() => saltOf(specOf({ kind: 'aggregate', dataset: 'loans', query: 'q' }))).toThrow(/salt/);
    expect(() => saltOf({ kind: 'aggregate', dataset: 'loans', query: 'q', salt: 'zz' })).toThrow(/salt/);
  });

  it('is equal for equal queries however written, and differs when the query does', () => {
    const hash = (query: string) =>
      toHex(planHash(planOf({ kind: 'aggregate', dataset: 'loans', query }), salt));
    const base = hash(
      "SELECT region, AVG(amount) FROM loans WHERE year >= 2023 AND status = 'late' GROUP BY region",
    );
    expect(
      hash("select REGION, avg(Amount) from LOANS where 2023 <= year and 'late' = status group by region;"),
    ).toBe(base);
    expect(
      hash("SELECT region, AVG(amount) FROM loans WHERE year > 2023 AND status = 'late' GROUP BY region"),
    ).not.toBe(base);
    const model = toHex(planHash(planOf(modelSpec), salt));
    expect(toHex(planHash(planOf({ ...modelSpec, iterations: 25, l2: -0 }), salt))).toBe(model);
    expect(toHex(planHash(planOf({ ...modelSpec, model: 'linear' }), salt))).not.toBe(model);
  });
});

describe('specOf', () => {
  it('accepts both kinds of spec as decoded from JSON', () => {
    const aggregate = { kind: 'aggregate', dataset: 'loans', query: 'SELECT COUNT(*) FROM loans' };
    expect(specOf(JSON.parse(JSON.stringify(aggregate)))).toStrictEqual(aggregate);
    const model = { ...modelSpec, where: "status = 'late'", iterations: 10, l2: 1 };
    expect(specOf(JSON.parse(JSON.stringify(model)))).toStrictEqual(model);
    expect(specOf({ ...modelSpec })).toStrictEqual(modelSpec);
  });

  it.each([
    ['not an object', [], /the job must be a JSON object/],
    ['null', null, /the job must be a JSON object/],
    [
      'an unknown kind',
      { kind: 'sql', dataset: 'x', query: 'q' },
      /kind must be "aggregate" or "model", not "sql"/,
    ],
    [
      'an unknown field',
      { kind: 'aggregate', dataset: 'x', query: 'q', code: 'rm -rf' },
      /unknown field "code"/,
    ],
    ['a missing query', { kind: 'aggregate', dataset: 'x' }, /query must be a string/],
    ['a numeric dataset', { kind: 'aggregate', dataset: 7, query: 'q' }, /dataset must be a string/],
    ['an empty dataset', { kind: 'aggregate', dataset: '', query: 'q' }, /dataset must not be empty/],
    [
      'a long query',
      { kind: 'aggregate', dataset: 'x', query: 'x'.repeat(9000) },
      /query is longer than 8192/,
    ],
    [
      'an unknown model',
      { ...modelSpec, model: 'forest' },
      /model must be one of linear, logistic, not "forest"/,
    ],
    ['features not a list', { ...modelSpec, features: 'amount' }, /features must be a list/],
    ['a numeric feature', { ...modelSpec, features: ['a', 3] }, /features\[1\] must be a string/],
    ['a missing target', { ...modelSpec, target: undefined }, /target must be a string/],
    ['string iterations', { ...modelSpec, iterations: '5' }, /iterations must be a number/],
    ['a null l2', { ...modelSpec, l2: null }, /l2 must be a number/],
    ['a numeric filter', { ...modelSpec, where: 1 }, /where must be a string/],
  ])('rejects %s', (_name, value, message) => {
    expect(rejected(() => specOf(value))).toMatch(message);
  });
});
