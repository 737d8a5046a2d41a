import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { federatedAverage } from './federated.js';
import type { ModelPart } from './federated.js';
import { fitLinear } from './linear.js';
import { fitLogistic } from './logistic.js';
import { linearData, logisticData, rowsOf } from './testing/synthetic.js';
import type { Dataset } from './testing/synthetic.js';

function failed(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof LedgerbusError && error.code === ErrorCode.JobFailed) return error.message;
    throw error;
  }
  throw new Error('expected JOB_FAILED');
}

const part = (
  coefficients: number[],
  intercept: number,
  n: number,
  metrics: Record<string, number> = {},
): ModelPart => ({
  coefficients,
  intercept,
  n,
  metrics,
});

describe('federatedAverage', () => {
  it('weights every parameter and shared metric by rows', () => {
    const model = federatedAverage([
      part([1, 10], 0, 1, { r2: 0.5, rmse: 2, only: 1 }),
      part([3, 20], 4, 3, { r2: 0.9, rmse: 1 }),
    ]);
    expect(model).toStrictEqual({
      coefficients: [2.5, 17.5],
      intercept: 3,
      n: 4,
      metrics: { r2: 0.8, rmse: 1.25 },
    });
  });

  it('is close to the linear fit of all rows for owners holding halves of one distribution', () => {
    const truth = {
      intercept: 3,
      coefficients: [2, -1],
      features: [
        { mean: 5, sd: 2 },
        { mean: -20, sd: 7 },
      ],
    };
    const data = linearData(21, 4000, truth, 0.5);
    const fit = (d: Dataset) => ({ ...fitLinear(d.x, d.y, d.n, d.p, 0), n: d.n });
    const whole = fit(data);
    // Unequal halves, so the row weights matter.
    const combined = federatedAverage([fit(rowsOf(data, 0, 1000)), fit(rowsOf(data, 1000, 4000))]);
    expect(combined.n).toBe(4000);
    for (let j = 0; j < 2; j++)
      expect(Math.abs(combined.coefficients[j]! - whole.coefficients[j]!)).toBeLessThan(1e-2);
    expect(Math.abs(combined.intercept - whole.intercept)).toBeLessThan(5e-2);
    expect(combined.metrics.r2).toBeCloseTo(whole.metrics.r2, 3);
    expect(Object.keys(combined.metrics)).toStrictEqual(['r2', 'rmse']);
  });

  it('is close to the logistic fit of all rows too', () => {
    const truth = {
      intercept: -1,
      coefficients: [4, -3],
      features: [
        { mean: 1, sd: 1 },
        { mean: 2, sd: 1.5 },
      ],
    };
    const data = logisticData(22, 20_000, truth);
    const fit = (d: Dataset) => ({ ...fitLogistic(d.x, d.y, d.n, d.p, { iterations: 25, l2: 0 }), n: d.n });
    const whole = fit(data);
    const combined = federatedAverage([fit(rowsOf(data, 0, 8000)), fit(rowsOf(data, 8000, 20_000))]);
    for (let j = 0; j < 2; j++)
      expect(Math.abs(combined.coefficients[j]! - whole.coefficients[j]!)).toBeLessThan(0.2);
    expect(combined.metrics.accuracy).toBeCloseTo(whole.metrics.accuracy, 2);
  });

  it.each([
    ['no parts', [], /no owner returned a model/],
    [
      'parts of different sizes',
      [part([1], 0, 5), part([1, 2], 0, 5)],
      /owner 2 returned 2 coefficients, the first 1/,
    ],
    ['no rows', [part([1], 0, 5), part([1], 0, 0)], /owner 2 returned a row count of 0/],
    ['a fractional row count', [part([1], 0, 2.5)], /row count of 2.5/],
    ['a non-finite parameter', [part([Number.NaN], 0, 5)], /not a finite number/],
    ['a non-finite intercept', [part([1], Infinity, 5)], /not a finite number/],
  ])('fails on %s', (_name, parts, message) => {
    expect(failed(() => federatedAverage(parts))).toMatch(message);
  });
});
