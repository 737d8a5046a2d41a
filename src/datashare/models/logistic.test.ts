import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { fitLogistic } from './logistic.js';
import { logisticData } from './testing/synthetic.js';
import type { Dataset, Truth } from './testing/synthetic.js';

// P(y = 1) = σ(−1 + 4a − 3b): well separated but not perfectly, features off zero.
const truth: Truth = {
  intercept: -1,
  coefficients: [4, -3],
  features: [
    { mean: 1, sd: 1 },
    { mean: 2, sd: 1.5 },
  ],
};

function fit(data: Dataset, options = { iterations: 25, l2: 0 }) {
  return fitLogistic(data.x, data.y, data.n, data.p, options);
}

function rejected(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof LedgerbusError && error.code === ErrorCode.QueryRejected) return error.message;
    throw error;
  }
  throw new Error('expected QUERY_REJECTED');
}

/** The gradient of the penalised log-likelihood at the fit: zero at the optimum. */
function gradient(data: Dataset, coefficients: readonly number[], intercept: number, l2: number): number[] {
  const g = new Array<number>(data.p + 1).fill(0);
  for (let i = 0; i < data.n; i++) {
    let z = intercept;
    for (let j = 0; j < data.p; j++) z += coefficients[j]! * data.x[i * data.p + j]!;
    const residual = 1 / (1 + Math.exp(-z)) - data.y[i]!;
    g[0]! += residual;
    for (let j = 0; j < data.p; j++) g[j + 1]! += residual * data.x[i * data.p + j]!;
  }
  for (let j = 0; j < data.p; j++) g[j + 1]! += l2 * coefficients[j]!;
  return g;
}

describe('fitLogistic', () => {
  it('recovers the signs and sizes of the coefficients, and classifies well', () => {
    const data = logisticData(11, 20_000, truth);
    const model = fit(data);
    expect(model.coefficients[0]).toBeGreaterThan(0);
    expect(model.coefficients[1]).toBeLessThan(0);
    expect(Math.abs(model.coefficients[0]! - 4)).toBeLessThan(0.15);
    expect(Math.abs(model.coefficients[1]! + 3)).toBeLessThan(0.15);
    expect(Math.abs(model.intercept + 1)).toBeLessThan(0.15);
    expect(model.metrics.accuracy).toBeGreaterThan(0.9);
    expect(model.metrics.logLoss).toBeGreaterThan(0.05);
    expect(model.metrics.logLoss).toBeLessThan(0.3);
    expect(model.metrics.iterations).toBeLessThan(25);
  });

  it('reaches the optimum: the gradient vanishes, with or without a penalty', () => {
    const data = logisticData(12, 3000, truth);
    for (const l2 of [0, 50]) {
      const model = fit(data, { iterations: 100, l2 });
      for (const component of gradient(data, model.coefficients, model.intercept, l2)) {
        // The stability ridge (1e-8 of each feature's spread) leaves far less than this.
        expect(Math.abs(component)).toBeLessThan(1e-3);
      }
    }
    expect(Math.abs(fit(data, { iterations: 100, l2: 50 }).coefficients[0]!)).toBeLessThan(
      fit(data, { iterations: 100, l2: 0 }).coefficients[0]!,
    );
  });

  it('stops at the iteration limit, and a capped fit is worse', () => {
    const data = logisticData(13, 2000, truth);
    const capped = fit(data, { iterations: 1, l2: 0 });
    const full = fit(data);
    expect(capped.metrics.iterations).toBe(1);
    expect(full.metrics.iterations).toBeGreaterThan(1);
    expect(capped.metrics.logLoss).toBeGreaterThan(full.metrics.logLoss);
  });

  it('stays finite on perfectly separable data', () => {
    const data = logisticData(14, 500, truth);
    const y = data.y.map((_, i) => (data.x[2 * i]! > 1 ? 1 : 0));
    const model = fitLogistic(data.x, y, data.n, 2, { iterations: 100, l2: 0 });
    expect(model.metrics.accuracy).toBe(1);
    expect(model.coefficients[0]).toBeGreaterThan(0);
    expect([...model.coefficients, model.intercept].every(Number.isFinite)).toBe(true);
  });

  it('rejects a target that is not 0/1, one class only, collinear features and no rows', () => {
    const data = logisticData(15, 200, truth);
    const y = data.y.slice();
    y[7] = 2;
    expect(rejected(() => fitLogistic(data.x, y, data.n, 2, { iterations: 5, l2: 0 }))).toMatch(
      /must be 0 or 1, not 2/,
    );
    const ones = new Float64Array(data.n).fill(1);
    expect(rejected(() => fitLogistic(data.x, ones, data.n, 2, { iterations: 5, l2: 0 }))).toMatch(
      /the target is 1 on every selected row/,
    );
    const doubled = new Float64Array(data.n * 2);
    for (let i = 0; i < data.n; i++) doubled.set([data.x[2 * i]!, 3 * data.x[2 * i]!], 2 * i);
    expect(rejected(() => fitLogistic(doubled, data.y, data.n, 2, { iterations: 5, l2: 0 }))).toMatch(
      /features are collinear: feature 2/,
    );
    expect(
      fitLogistic(doubled, data.y, data.n, 2, { iterations: 5, l2: 1 }).coefficients.every(Number.isFinite),
    ).toBe(true);
    const x = data.x.slice();
    x[0] = Number.NaN;
    expect(rejected(() => fitLogistic(x, data.y, data.n, 2, { iterations: 5, l2: 0 }))).toMatch(
      /not a finite number/,
    );
    expect(
      rejected(() => fitLogistic(new Float64Array(0), new Float64Array(0), 0, 2, { iterations: 5, l2: 0 })),
    ).toMatch(/no rows/);
  });
});
