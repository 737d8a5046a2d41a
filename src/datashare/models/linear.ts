/**
 * Linear regression with an intercept, optionally ridge (L2) penalised, for model jobs.
 *
 * Rows stream through `LinearAccumulator`, which keeps only the means and the centred
 * cross-products (Welford's co-moment updates), so a runner never holds the dataset and the sums
 * stay accurate when values are large next to their spread. Fitting solves the centred normal
 * equations (Cxx + l2·I)·β = Cxy by Cholesky; the intercept is ȳ − x̄·β, so it is never penalised.
 */
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';

export interface LinearFit {
  readonly coefficients: number[];
  readonly intercept: number;
  readonly metrics: { readonly r2: number; readonly rmse: number };
}

/**
 * A Cholesky pivot at most this fraction of its diagonal means the feature is (nearly) a linear
 * combination of the ones before it: the pivot over the diagonal is 1 − R² of that regression.
 */
const collinearityTolerance = 1e-10;

/** Fits `y ≈ intercept + x·coefficients` on n rows of p features (`x` row-major, n×p). */
export function fitLinear(x: Float64Array, y: Float64Array, n: number, p: number, l2: number): LinearFit {
  assert(x.length === n * p && y.length === n, 'fitLinear: x must be n×p and y of length n');
  const accumulator = new LinearAccumulator(p);
  for (let i = 0; i < n; i++) accumulator.add(x.subarray(i * p, (i + 1) * p), y[i]!);
  return accumulator.fit(l2);
}

export class LinearAccumulator {
  private count = 0;
  private readonly meanX: Float64Array;
  private meanY = 0;
  /** Upper triangle of Σ (x − x̄)(x − x̄)ᵀ, row-major p×p. */
  private readonly cxx: Float64Array;
  private readonly cxy: Float64Array;
  private cyy = 0;
  private readonly delta: Float64Array;

  constructor(readonly p: number) {
    assert(Number.isInteger(p) && p >= 1, 'a linear model needs at least one feature');
    this.meanX = new Float64Array(p);
    this.cxx = new Float64Array(p * p);
    this.cxy = new Float64Array(p);
    this.delta = new Float64Array(p);
  }

  get n(): number {
    return this.count;
  }

  add(row: ArrayLike<number>, y: number): void {
    const p = this.p;
    assert(row.length === p, `a row of ${row.length} values for ${p} features`);
    for (let j = 0; j < p; j++) {
      if (!Number.isFinite(row[j]!)) throw notFinite();
    }
    if (!Number.isFinite(y)) throw notFinite();
    this.count++;
    const n = this.count;
    // C += (v − mean_old)(w − mean_new)ᵀ is exact for co-moments (Welford).
    for (let j = 0; j < p; j++) {
      this.delta[j] = row[j]! - this.meanX[j]!;
      this.meanX[j]! += this.delta[j]! / n;
    }
    const deltaY = y - this.meanY;
    this.meanY += deltaY / n;
    const afterY = y - this.meanY;
    for (let j = 0; j < p; j++) {
      const dj = this.delta[j]!;
      for (let k = j; k < p; k++) this.cxx[j * p + k]! += dj * (row[k]! - this.meanX[k]!);
      this.cxy[j]! += dj * afterY;
    }
    this.cyy += deltaY * afterY;
  }

  fit(l2: number): LinearFit {
    assert(Number.isFinite(l2) && l2 >= 0, `l2 penalty ${l2} is not a finite number ≥ 0`);
    const p = this.p;
    const n = this.count;
    if (n === 0) throw new LedgerbusError(ErrorCode.QueryRejected, 'no rows to fit the model on');
    const matrix = new Float64Array(p * p);
    for (let j = 0; j < p; j++) {
      for (let k = j; k < p; k++) {
        matrix[j * p + k] = this.cxx[j * p + k]!;
        matrix[k * p + j] = this.cxx[j * p + k]!;
      }
      matrix[j * p + j]! += l2;
    }
    const solved = solveSymmetric(matrix, this.cxy, p);
    if (!solved.ok) throw collinear(solved.column);
    const beta = solved.solution;
    let intercept = this.meanY;
    for (let j = 0; j < p; j++) intercept -= this.meanX[j]! * beta[j]!;
    // Training error from the co-moments: SSE = Cyy − 2β·Cxy + β·Cxx·β.
    let sse = this.cyy;
    for (let j = 0; j < p; j++) {
      const bj = beta[j]!;
      sse -= 2 * bj * this.cxy[j]!;
      for (let k = 0; k < p; k++) {
        const c = j <= k ? this.cxx[j * p + k]! : this.cxx[k * p + j]!;
        sse += bj * c * beta[k]!;
      }
    }
    sse = Math.max(0, sse);
    // A constant target: R² is 1 when the fit is exact, else 0 (scikit-learn's convention).
    const r2 = this.cyy > 0 ? 1 - sse / this.cyy : sse === 0 ? 1 : 0;
    return { coefficients: Array.from(beta), intercept, metrics: { r2, rmse: Math.sqrt(sse / n) } };
  }
}

/**
 * Solves A·x = b for a symmetric positive definite p×p `matrix` (row-major) by Cholesky. When A is
 * not (numerically) positive definite it names the first column whose pivot failed: the variable
 * that is (nearly) a combination of the ones before it.
 */
export function solveSymmetric(
  matrix: Float64Array,
  b: ArrayLike<number>,
  p: number,
): { ok: true; solution: Float64Array } | { ok: false; column: number } {
  const lower = new Float64Array(p * p);
  for (let j = 0; j < p; j++) {
    const diagonal = matrix[j * p + j]!;
    let pivot = diagonal;
    for (let k = 0; k < j; k++) pivot -= lower[j * p + k]! ** 2;
    if (!(diagonal > 0) || !(pivot > collinearityTolerance * diagonal)) return { ok: false, column: j };
    const root = Math.sqrt(pivot);
    lower[j * p + j] = root;
    for (let i = j + 1; i < p; i++) {
      let sum = matrix[i * p + j]!;
      for (let k = 0; k < j; k++) sum -= lower[i * p + k]! * lower[j * p + k]!;
      lower[i * p + j] = sum / root;
    }
  }
  const solution = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let sum = b[i]!;
    for (let k = 0; k < i; k++) sum -= lower[i * p + k]! * solution[k]!;
    solution[i] = sum / lower[i * p + i]!;
  }
  for (let i = p - 1; i >= 0; i--) {
    let sum = solution[i]!;
    for (let k = i + 1; k < p; k++) sum -= lower[k * p + i]! * solution[k]!;
    solution[i] = sum / lower[i * p + i]!;
  }
  return { ok: true, solution };
}

function notFinite(): LedgerbusError {
  return new LedgerbusError(ErrorCode.QueryRejected, 'a feature or target value is not a finite number');
}

function collinear(column: number): LedgerbusError {
  return new LedgerbusError(
    ErrorCode.QueryRejected,
    `features are collinear: feature ${column + 1} is constant or determined by the ones before it ` +
      '(or there are fewer rows than features); drop it or set l2 > 0',
  );
}
