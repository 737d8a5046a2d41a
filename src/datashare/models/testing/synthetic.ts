/**
 * Seeded synthetic datasets with known parameters for the model tests: a fit must recover what the
 * data was drawn from. Deterministic, so a failing case replays exactly.
 */
import { SeededRandom } from '../../../consensus/seeded-random.js';

export class SyntheticRandom extends SeededRandom {
  /** Normal by Box–Muller. */
  normal(mean = 0, sd = 1): number {
    const u = 1 - this.uniform();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
}

export interface Dataset {
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly n: number;
  readonly p: number;
}

export interface Truth {
  readonly intercept: number;
  readonly coefficients: readonly number[];
  /** Each feature is normal with this mean and standard deviation. */
  readonly features: readonly { readonly mean: number; readonly sd: number }[];
}

function features(random: SyntheticRandom, n: number, truth: Truth): { x: Float64Array; z: Float64Array } {
  const p = truth.coefficients.length;
  const x = new Float64Array(n * p);
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = truth.intercept;
    for (let j = 0; j < p; j++) {
      const { mean, sd } = truth.features[j]!;
      const value = random.normal(mean, sd);
      x[i * p + j] = value;
      sum += truth.coefficients[j]! * value;
    }
    z[i] = sum;
  }
  return { x, z };
}

/** y = intercept + x·coefficients + normal noise of standard deviation `noise`. */
export function linearData(seed: number, n: number, truth: Truth, noise: number): Dataset {
  const random = new SyntheticRandom(seed);
  const { x, z } = features(random, n, truth);
  const y = z.map((value) => value + random.normal(0, noise));
  return { x, y, n, p: truth.coefficients.length };
}

/** y ~ Bernoulli(σ(intercept + x·coefficients)). */
export function logisticData(seed: number, n: number, truth: Truth): Dataset {
  const random = new SyntheticRandom(seed);
  const { x, z } = features(random, n, truth);
  const y = z.map((value) => (random.uniform() < 1 / (1 + Math.exp(-value)) ? 1 : 0));
  return { x, y, n, p: truth.coefficients.length };
}

/** Rows [from, to) of a dataset. */
export function rowsOf(data: Dataset, from: number, to: number): Dataset {
  return { x: data.x.slice(from * data.p, to * data.p), y: data.y.slice(from, to), n: to - from, p: data.p };
}
