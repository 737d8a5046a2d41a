/**
 * Logistic regression with an intercept for model jobs, by Newton's method (IRLS) on the penalised
 * log-likelihood:  minimise Σ softplus(zᵢ) − yᵢ·zᵢ + (l2/2)·‖β‖²,  zᵢ = b + xᵢ·β.
 *
 * Features are centred first (which moves only the intercept, so the fit is the same) to keep the
 * Hessian well conditioned. A tiny extra ridge, 1e-8 of each feature's centred sum of squares,
 * keeps the Hessian invertible on separable data, where the unpenalised optimum lies at infinity;
 * it is scaled per feature so that it means the same whatever a feature's units. Each Newton step
 * is halved until the objective does not rise, and the loop stops once the Newton decrement is
 * negligible or after `iterations` steps. The intercept is not penalised.
 */
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { solveSymmetric } from './linear.js';

export interface LogisticFit {
  readonly coefficients: number[];
  readonly intercept: number;
  readonly metrics: { readonly logLoss: number; readonly accuracy: number; readonly iterations: number };
}

const stabilityRidge = 1e-8;
/** Converged when the Newton decrement gᵀH⁻¹g is below this per row: the objective cannot drop by more. */
const decrementTolerance = 1e-12;
const halvingsMax = 30;

export function fitLogistic(
  x: Float64Array,
  y: Float64Array,
  n: number,
  p: number,
  options: { readonly iterations: number; readonly l2: number },
): LogisticFit {
  assert(x.length === n * p && y.length === n && p >= 1, 'fitLogistic: x must be n×p and y of length n');
  const { iterations, l2 } = options;
  assert(
    Number.isInteger(iterations) && iterations >= 1,
    `iterations ${iterations} is not a positive integer`,
  );
  assert(Number.isFinite(l2) && l2 >= 0, `l2 penalty ${l2} is not a finite number ≥ 0`);
  if (n === 0) throw rejected('no rows to fit the model on');
  const positives = countPositives(y);
  if (positives === 0 || positives === n) {
    throw rejected(
      `the target is ${positives === 0 ? 0 : 1} on every selected row: a logistic model needs both classes`,
    );
  }
  const data = centred(x, y, n, p);
  // The stability ridge would hide collinear features; without a penalty of the caller's, refuse them.
  if (l2 === 0) checkNotCollinear(data);
  const penalty = new Float64Array(p + 1);
  for (let j = 0; j < p; j++) penalty[j + 1] = l2 + stabilityRidge * data.sumSquares[j]!;

  // w[0] is the intercept of the centred features, w[1..p] the coefficients.
  let w = new Float64Array(p + 1);
  w[0] = Math.log(positives / (n - positives));
  let objective = objectiveOf(data, w, penalty);
  let steps = 0;
  while (steps < iterations) {
    const { gradient, hessian } = derivatives(data, w, penalty);
    const solved = solveSymmetric(hessian, gradient, p + 1);
    // The ridge keeps every feature's pivot positive; only vanishing weights (a fit run off to
    // infinity) can fail here.
    if (!solved.ok) break;
    const step = solved.solution;
    let decrement = 0;
    for (let j = 0; j <= p; j++) decrement += gradient[j]! * step[j]!;
    let scale = 1;
    let next = w.map((value, j) => value - step[j]!);
    let nextObjective = objectiveOf(data, next, penalty);
    for (let halving = 0; !(nextObjective <= objective) && halving < halvingsMax; halving++) {
      scale /= 2;
      next = w.map((value, j) => value - scale * step[j]!);
      nextObjective = objectiveOf(data, next, penalty);
    }
    if (!(nextObjective <= objective)) break;
    steps++;
    w = next;
    objective = nextObjective;
    if (decrement <= decrementTolerance * n) break;
  }

  const coefficients = Array.from(w.subarray(1));
  let intercept = w[0]!;
  for (let j = 0; j < p; j++) intercept -= coefficients[j]! * data.mean[j]!;
  return { coefficients, intercept, metrics: { ...trainingMetrics(data, w), iterations: steps } };
}

interface Centred {
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly n: number;
  readonly p: number;
  readonly mean: Float64Array;
  /** Σᵢ (xᵢⱼ − x̄ⱼ)² per feature. */
  readonly sumSquares: Float64Array;
}

function rejected(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.QueryRejected, message);
}

function countPositives(y: Float64Array): number {
  let positives = 0;
  for (const label of y) {
    if (label !== 0 && label !== 1) {
      throw rejected(`the target of a logistic model must be 0 or 1, not ${label}`);
    }
    positives += label;
  }
  return positives;
}

/** The features' means and centred sums of squares; the rows stay where they are. */
function centred(x: Float64Array, y: Float64Array, n: number, p: number): Centred {
  const mean = new Float64Array(p);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p; j++) {
      const value = x[i * p + j]!;
      if (!Number.isFinite(value)) throw rejected('a feature value is not a finite number');
      mean[j]! += value;
    }
  }
  for (let j = 0; j < p; j++) mean[j]! /= n;
  const sumSquares = new Float64Array(p);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) sumSquares[j]! += (x[i * p + j]! - mean[j]!) ** 2;
  return { x, y, n, p, mean, sumSquares };
}

function checkNotCollinear(data: Centred): void {
  const { x, n, p, mean } = data;
  const gram = new Float64Array(p * p);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p; j++) {
      const dj = x[i * p + j]! - mean[j]!;
      for (let k = j; k < p; k++) gram[j * p + k]! += dj * (x[i * p + k]! - mean[k]!);
    }
  }
  for (let j = 0; j < p; j++) for (let k = 0; k < j; k++) gram[j * p + k] = gram[k * p + j]!;
  const solved = solveSymmetric(gram, new Float64Array(p), p);
  if (!solved.ok) {
    throw rejected(
      `features are collinear: feature ${solved.column + 1} is constant or determined by the ones before it ` +
        '(or there are fewer rows than features); drop it or set l2 > 0',
    );
  }
}

function linearPart(data: Centred, w: Float64Array, i: number): number {
  const { x, p, mean } = data;
  let z = w[0]!;
  for (let j = 0; j < p; j++) z += (x[i * p + j]! - mean[j]!) * w[j + 1]!;
  return z;
}

/** log(1 + eᶻ) without overflow. */
function softplus(z: number): number {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

function objectiveOf(data: Centred, w: Float64Array, penalty: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < data.n; i++) {
    const z = linearPart(data, w, i);
    sum += softplus(z) - data.y[i]! * z;
  }
  for (let j = 1; j <= data.p; j++) sum += (penalty[j]! / 2) * w[j]! ** 2;
  return sum;
}

function derivatives(data: Centred, w: Float64Array, penalty: Float64Array) {
  const { x, y, n, p, mean } = data;
  const size = p + 1;
  const gradient = new Float64Array(size);
  const hessian = new Float64Array(size * size);
  const row = new Float64Array(size);
  row[0] = 1;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p; j++) row[j + 1] = x[i * p + j]! - mean[j]!;
    const probability = sigmoid(linearPart(data, w, i));
    const residual = probability - y[i]!;
    const weight = probability * (1 - probability);
    for (let j = 0; j < size; j++) {
      gradient[j]! += residual * row[j]!;
      for (let k = j; k < size; k++) hessian[j * size + k]! += weight * row[j]! * row[k]!;
    }
  }
  for (let j = 0; j < size; j++) {
    gradient[j]! += penalty[j]! * w[j]!;
    hessian[j * size + j]! += penalty[j]!;
    for (let k = 0; k < j; k++) hessian[j * size + k] = hessian[k * size + j]!;
  }
  return { gradient, hessian };
}

function trainingMetrics(data: Centred, w: Float64Array): { logLoss: number; accuracy: number } {
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < data.n; i++) {
    const z = linearPart(data, w, i);
    loss += softplus(z) - data.y[i]! * z;
    if ((z >= 0 ? 1 : 0) === data.y[i]) correct++;
  }
  return { logLoss: loss / data.n, accuracy: correct / data.n };
}
