import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { LinearAccumulator, fitLinear } from './linear.js';
import { linearData, rowsOf } from './testing/synthetic.js';
import type { Dataset, Truth } from './testing/synthetic.js';

// y = 3 + 2a − b, with features far from zero so that a fit that mishandles the intercept shows.
const truth: Truth = {
  intercept: 3,
  coefficients: [2, -1],
  features: [
    { mean: 5, sd: 2 },
    { mean: -20, sd: 7 },
  ],
};

function fit(data: Dataset, l2 = 0) {
  return fitLinear(data.x, data.y, data.n, data.p, l2);
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

describe('fitLinear', () => {
  it('recovers the coefficients and intercept the data was drawn from', () => {
    const model = fit(linearData(1, 2000, truth, 0.05));
    expect(model.coefficients[0]).toBeCloseTo(2, 2);
    expect(model.coefficients[1]).toBeCloseTo(-1, 2);
    expect(Math.abs(model.intercept - 3)).toBeLessThan(1e-2);
    expect(model.metrics.r2).toBeGreaterThan(0.999);
    expect(model.metrics.rmse).toBeGreaterThan(0.04);
    expect(model.metrics.rmse).toBeLessThan(0.06);
  });

  it('is exact on noiseless data and reports R² and RMSE as the residuals say', () => {
    const exact = fit(linearData(2, 50, truth, 0));
    expect(exact.coefficients[0]).toBeCloseTo(2, 9);
    expect(exact.coefficients[1]).toBeCloseTo(-1, 9);
    expect(exact.intercept).toBeCloseTo(3, 8);
    expect(exact.metrics.r2).toBeCloseTo(1, 12);
    expect(exact.metrics.rmse).toBeLessThan(1e-6);

    const data = linearData(3, 400, truth, 4);
    const model = fit(data);
    let sse = 0;
    let sst = 0;
    const meanY = data.y.reduce((a, b) => a + b, 0) / data.n;
    for (let i = 0; i < data.n; i++) {
      const predicted =
        model.intercept +
        model.coefficients[0]! * data.x[2 * i]! +
        model.coefficients[1]! * data.x[2 * i + 1]!;
      sse += (data.y[i]! - predicted) ** 2;
      sst += (data.y[i]! - meanY) ** 2;
    }
    expect(model.metrics.rmse).toBeCloseTo(Math.sqrt(sse / data.n), 9);
    expect(model.metrics.r2).toBeCloseTo(1 - sse / sst, 9);
    expect(model.metrics.r2).toBeLessThan(0.99);
  });

  it('stays accurate when values are large next to their spread', () => {
    const far: Truth = {
      ...truth,
      features: [
        { mean: 1e7, sd: 1 },
        { mean: -3e6, sd: 2 },
      ],
    };
    const model = fit(linearData(4, 3000, far, 0.01));
    expect(model.coefficients[0]).toBeCloseTo(2, 2);
    expect(model.coefficients[1]).toBeCloseTo(-1, 2);
    expect(model.metrics.r2).toBeGreaterThan(0.9999);
  });

  it('shrinks the coefficients by the ridge penalty but never the intercept', () => {
    const data = linearData(5, 500, { ...truth, coefficients: [2], features: [{ mean: 10, sd: 3 }] }, 0.5);
    let meanX = 0;
    let meanY = 0;
    for (let i = 0; i < data.n; i++) {
      meanX += data.x[i]! / data.n;
      meanY += data.y[i]! / data.n;
    }
    let sxx = 0;
    let sxy = 0;
    for (let i = 0; i < data.n; i++) {
      sxx += (data.x[i]! - meanX) ** 2;
      sxy += (data.x[i]! - meanX) * (data.y[i]! - meanY);
    }
    const l2 = 2000;
    const model = fit(data, l2);
    const beta = sxy / (sxx + l2);
    expect(model.coefficients[0]).toBeCloseTo(beta, 9);
    expect(model.intercept).toBeCloseTo(meanY - beta * meanX, 8);
    expect(model.coefficients[0]!).toBeLessThan(fit(data).coefficients[0]! - 0.1);
    // An overwhelming penalty leaves the mean: the intercept carries it alone.
    const flat = fit(data, 1e15);
    expect(Math.abs(flat.coefficients[0]!)).toBeLessThan(1e-9);
    expect(flat.intercept).toBeCloseTo(meanY, 6);
  });

  it('rejects collinear and constant features unless penalised', () => {
    const data = linearData(6, 100, truth, 0.1);
    const doubled = new Float64Array(data.n * 3);
    const constant = new Float64Array(data.n * 2);
    for (let i = 0; i < data.n; i++) {
      doubled.set([data.x[2 * i]!, data.x[2 * i + 1]!, 2 * data.x[2 * i]! - data.x[2 * i + 1]!], 3 * i);
      constant.set([data.x[2 * i]!, 7], 2 * i);
    }
    expect(rejected(() => fitLinear(doubled, data.y, data.n, 3, 0))).toMatch(
      /^features are collinear: feature 3 /,
    );
    expect(rejected(() => fitLinear(constant, data.y, data.n, 2, 0))).toMatch(/feature 2 is constant/);
    expect(fitLinear(constant, data.y, data.n, 2, 1).coefficients[1]).toBe(0);
    expect(Number.isFinite(fitLinear(doubled, data.y, data.n, 3, 1).coefficients[2])).toBe(true);
    // Fewer rows than features is collinear too.
    const few = rowsOf(data, 0, 2);
    expect(rejected(() => fitLinear(few.x, few.y, 2, 2, 0))).toMatch(/collinear/);
  });

  it('rejects non-finite values and no rows', () => {
    const data = linearData(7, 20, truth, 0.1);
    const x = data.x.slice();
    x[5] = Number.NaN;
    expect(rejected(() => fitLinear(x, data.y, data.n, 2, 0))).toMatch(/not a finite number/);
    const y = data.y.slice();
    y[3] = Infinity;
    expect(rejected(() => fitLinear(data.x, y, data.n, 2, 0))).toMatch(/not a finite number/);
    expect(rejected(() => fitLinear(new Float64Array(0), new Float64Array(0), 0, 2, 0))).toMatch(/no rows/);
  });
});

describe('LinearAccumulator', () => {
  it('streams rows in any order to the fit of them all', () => {
    const data = linearData(8, 1000, truth, 1);
    const whole = fit(data);
    const accumulator = new LinearAccumulator(2);
    // Backwards, one row at a time, through a reused buffer as a runner would.
    const row = new Float64Array(2);
    for (let i = data.n - 1; i >= 0; i--) {
      row.set(data.x.subarray(2 * i, 2 * i + 2));
      accumulator.add(row, data.y[i]!);
    }
    expect(accumulator.n).toBe(1000);
    const streamed = accumulator.fit(0);
    expect(streamed.coefficients[0]).toBeCloseTo(whole.coefficients[0]!, 10);
    expect(streamed.coefficients[1]).toBeCloseTo(whole.coefficients[1]!, 10);
    expect(streamed.intercept).toBeCloseTo(whole.intercept, 9);
    expect(streamed.metrics.r2).toBeCloseTo(whole.metrics.r2, 10);
    // A fit does not consume the accumulator.
    expect(accumulator.fit(0).intercept).toBe(streamed.intercept);
  });
});
