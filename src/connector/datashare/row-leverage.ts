/**
 * How much weight one row carries in a model fitted with an intercept: its leverage (hat value)
 * h = x̃ᵀ(X̃ᵀX̃)⁻¹x̃, x̃ the row's features with the intercept's 1. In the centred form used here,
 * h = 1/n + (x − x̄)ᵀ C⁻¹ (x − x̄), C the centred cross-products (Welford's updates, as
 * LinearAccumulator keeps them) plus a small ridge so that a constant feature does not make C
 * singular. A row with h near 1 is fitted (almost) exactly: a model on a feature true for one row
 * gives that row's target. Model jobs refuse rows whose leverage exceeds 1/minGroupSize
 * (job-execution.ts); logistic models use the same unweighted hat values.
 */
import { solveSymmetric } from '../../datashare/models/linear.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';

/** The ridge added to C's diagonal, relative to its mean diagonal: stability, not a penalty. */
const relativeRidge = 1e-9;
const absoluteRidge = 1e-12;

export class RowLeverage {
  private count = 0;
  private readonly mean: Float64Array;
  /** Upper triangle of Σ (x − x̄)(x − x̄)ᵀ, row-major p×p. */
  private readonly comoments: Float64Array;
  private readonly delta: Float64Array;
  private readonly centred: Float64Array;
  private inverse: Float64Array | undefined;

  constructor(readonly p: number) {
    this.mean = new Float64Array(p);
    this.comoments = new Float64Array(p * p);
    this.delta = new Float64Array(p);
    this.centred = new Float64Array(p);
  }

  get n(): number {
    return this.count;
  }

  /** First pass: every row. */
  add(row: ArrayLike<number>): void {
    const p = this.p;
    this.count += 1;
    for (let j = 0; j < p; j++) {
      this.delta[j] = row[j]! - this.mean[j]!;
      this.mean[j]! += this.delta[j]! / this.count;
    }
    for (let j = 0; j < p; j++) {
      const dj = this.delta[j]!;
      for (let k = j; k < p; k++) this.comoments[j * p + k]! += dj * (row[k]! - this.mean[k]!);
    }
  }

  /** Second pass: the leverage of a row added in the first. */
  leverage(row: ArrayLike<number>): number {
    const p = this.p;
    const inverse = (this.inverse ??= this.invert());
    for (let j = 0; j < p; j++) this.centred[j] = row[j]! - this.mean[j]!;
    let quadratic = 0;
    for (let j = 0; j < p; j++) {
      let sum = 0;
      for (let k = 0; k < p; k++) sum += inverse[j * p + k]! * this.centred[k]!;
      quadratic += this.centred[j]! * sum;
    }
    return 1 / this.count + quadratic;
  }

  private invert(): Float64Array {
    const p = this.p;
    const matrix = new Float64Array(p * p);
    let trace = 0;
    for (let j = 0; j < p; j++) trace += this.comoments[j * p + j]!;
    const ridge = (relativeRidge * trace) / p + absoluteRidge;
    for (let j = 0; j < p; j++) {
      for (let k = j; k < p; k++) {
        matrix[j * p + k] = this.comoments[j * p + k]!;
        matrix[k * p + j] = this.comoments[j * p + k]!;
      }
      matrix[j * p + j]! += ridge;
    }
    const inverse = new Float64Array(p * p);
    const unit = new Float64Array(p);
    for (let j = 0; j < p; j++) {
      unit.fill(0);
      unit[j] = 1;
      const solved = solveSymmetric(matrix, unit, p);
      // Not invertible even with the ridge: which rows carry the fit cannot be told, so none may.
      if (!solved.ok)
        throw new LedgerbusError(
          ErrorCode.QueryRejected,
          'the features are too close to collinear to tell how much weight each row carries: drop one',
        );
      for (let k = 0; k < p; k++) inverse[k * p + j] = solved.solution[k]!;
    }
    return inverse;
  }
}
