import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../consensus/seeded-random.js';
import { HalfSpaceTrees, type HalfSpaceTreesOptions } from './half-space-trees.js';

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `f${i}`);
const unitRanges = (n: number) => Array.from({ length: n }, () => ({ min: 0, max: 1 }));
const model = (dimensions: number, options: Partial<HalfSpaceTreesOptions> = {}) =>
  new HalfSpaceTrees({ seed: 1, features: names(dimensions), ranges: unitRanges(dimensions), ...options });

/** Points around `center` in every dimension, roughly normal with standard deviation `spread`. */
function sampler(seed: number, dimensions: number) {
  const random = new SeededRandom(seed);
  const uniform = () => random.uniform();
  const normal = () => {
    let sum = 0;
    for (let i = 0; i < 6; i++) sum += uniform();
    return (sum - 3) / Math.sqrt(0.5);
  };
  return (center: number, spread: number): number[] =>
    Array.from({ length: dimensions }, () => center + spread * normal());
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('HalfSpaceTrees', () => {
  it('scores 0 until the first window is complete', () => {
    const hst = model(2, { windowSize: 50 });
    for (let i = 0; i < 49; i++) {
      hst.learn([0.2, 0.2]);
      expect(hst.warm).toBe(false);
      expect(hst.score([0.9, 0.9])).toBe(0);
    }
    expect(hst.explain([0.9, 0.9]).every((c) => c.contribution === 0)).toBe(true);
    hst.learn([0.2, 0.2]);
    expect(hst.warm).toBe(true);
    expect(hst.score([0.9, 0.9])).toBeGreaterThan(0.9);
  });

  it('scores a far point clearly above the points of the cluster it learned', () => {
    // Measured over these seeds: cluster means 0.31–0.44 (single points up to 0.66), far points ≥ 0.99.
    for (const seed of [1, 2, 3, 4, 5, 42]) {
      const hst = model(4, { seed });
      const draw = sampler(seed + 100, 4);
      for (let i = 0; i < 750; i++) hst.learn(draw(0.3, 0.03));
      const cluster = Array.from({ length: 200 }, () => hst.score(draw(0.3, 0.03)));
      const far = Array.from({ length: 50 }, () => hst.score(draw(0.8, 0.03)));
      expect(mean(cluster)).toBeLessThan(0.5);
      expect(Math.max(...cluster)).toBeLessThan(0.75);
      expect(Math.min(...far)).toBeGreaterThan(0.95);
      for (const s of [...cluster, ...far]) {
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThanOrEqual(1);
      }
    }
  });

  it('scores by River’s formula: Σ r_mass·2^depth down the path, stopping below 10 % of the window', () => {
    // 0 and 1 lie outside every padded split, so they always take the leftmost and rightmost paths
    // whatever the seed: 19 samples at 0 and one at 1 give masses root 20, left 19/19, right 1/1.
    const hst = model(1, { trees: 3, height: 2, windowSize: 20, seed: 9 });
    for (let i = 0; i < 19; i++) hst.learn([0]);
    hst.learn([1]);
    const max = 20 * (2 ** 3 - 1);
    // Left path: 20 + 19·2 + 19·4. Right path: 20 + 1·2, then 1 < 2 (10 % of 20) stops the walk.
    expect(hst.score([0])).toBeCloseTo(1 - 134 / max, 12);
    expect(hst.score([1])).toBeCloseTo(1 - 22 / max, 12);
  });

  it('makes the latest window the reference exactly every windowSize samples', () => {
    const windowSize = 40;
    const hst = model(2, { windowSize });
    const a = [0.1, 0.1];
    const b = [0.9, 0.9];
    for (let i = 0; i < windowSize; i++) hst.learn(a);
    for (let round = 0; round < 3; round++) {
      // windowSize − 1 samples of the other cluster: the reference is still the previous window.
      const [now, next] = round % 2 === 0 ? [a, b] : [b, a];
      for (let i = 0; i < windowSize - 1; i++) {
        hst.learn(next);
        expect(hst.samplesInWindow).toBe(i + 1);
      }
      expect(hst.score(now)).toBeLessThan(0.05);
      expect(hst.score(next)).toBeGreaterThan(0.95);
      expect(hst.snapshot(0).referenceMass[0]).toBe(windowSize);
      expect(hst.snapshot(0).latestMass[0]).toBe(windowSize - 1);
      hst.learn(next);
      expect(hst.samplesInWindow).toBe(0);
      expect(hst.snapshot(0).latestMass.every((m) => m === 0)).toBe(true);
      expect(hst.score(next)).toBeLessThan(0.05);
      expect(hst.score(now)).toBeGreaterThan(0.95);
    }
  });

  it('builds the same trees from the same seed and other trees from another', () => {
    const stream = sampler(5, 3);
    const points = Array.from({ length: 600 }, () => stream(0.5, 0.15));
    const run = (seed: number) => {
      const hst = model(3, { seed, windowSize: 100 });
      for (const p of points.slice(0, 500)) hst.learn(p);
      return { hst, scores: points.slice(500).map((p) => hst.score(p)) };
    };
    const first = run(7);
    const again = run(7);
    const other = run(8);
    expect(again.scores).toEqual(first.scores);
    for (let t = 0; t < 10; t++) expect(again.hst.snapshot(t)).toEqual(first.hst.snapshot(t));
    expect(other.hst.snapshot(0).splitValue).not.toEqual(first.hst.snapshot(0).splitValue);
    expect(other.scores).not.toEqual(first.scores);
  });

  it('follows drift: a new cluster becomes normal after a few windows of it', () => {
    const hst = model(3, { windowSize: 100, seed: 11 });
    const draw = sampler(12, 3);
    for (let i = 0; i < 500; i++) hst.learn(draw(0.25, 0.03));
    const newBefore = mean(Array.from({ length: 100 }, () => hst.score(draw(0.75, 0.03))));
    expect(newBefore).toBeGreaterThan(0.95);
    for (let i = 0; i < 300; i++) hst.learn(draw(0.75, 0.03));
    const newAfter = mean(Array.from({ length: 100 }, () => hst.score(draw(0.75, 0.03))));
    const oldAfter = mean(Array.from({ length: 100 }, () => hst.score(draw(0.25, 0.03))));
    expect(newAfter).toBeLessThan(0.5);
    expect(oldAfter).toBeGreaterThan(0.95);
  });

  it('keeps every node mass equal to its children’s and the root equal to the window (any stream)', () => {
    fc.assert(
      fc.property(
        fc.record({
          dimensions: fc.integer({ min: 1, max: 4 }),
          height: fc.integer({ min: 1, max: 5 }),
          windowSize: fc.integer({ min: 1, max: 20 }),
          trees: fc.integer({ min: 1, max: 3 }),
          seed: fc.integer(),
          length: fc.integer({ min: 0, max: 90 }),
          values: fc.array(fc.double({ min: -2, max: 3, noNaN: true }), { minLength: 360, maxLength: 360 }),
        }),
        ({ dimensions, height, windowSize, trees, seed, length, values }) => {
          const hst = model(dimensions, { height, windowSize, trees, seed });
          for (let n = 1; n <= length; n++) {
            const x = Array.from({ length: dimensions }, (_, i) => values[(n * dimensions + i) % 360]!);
            hst.learn(x);
            expect(hst.warm).toBe(n >= windowSize);
            expect(hst.samplesInWindow).toBe(n % windowSize);
            for (let t = 0; t < trees; t++) {
              const { latestMass, referenceMass } = hst.snapshot(t);
              expect(latestMass.length).toBe(2 ** (height + 1) - 1);
              expect(latestMass[0]).toBe(n % windowSize);
              expect(referenceMass[0]).toBe(n >= windowSize ? windowSize : 0);
              for (let i = 0; i < 2 ** height - 1; i++) {
                expect(latestMass[2 * i + 1]! + latestMass[2 * i + 2]!).toBe(latestMass[i]);
                expect(referenceMass[2 * i + 1]! + referenceMass[2 * i + 2]!).toBe(referenceMass[i]);
              }
            }
            const s = hst.score(x);
            expect(s).toBeGreaterThanOrEqual(0);
            expect(s).toBeLessThanOrEqual(1);
            const shares = hst.explain(x).reduce((sum, c) => sum + c.contribution, 0);
            expect(shares).toBeCloseTo(s > 0 ? 1 : 0, 9);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('reproduces River’s docstring example qualitatively: 0.0 after a cluster near 0.45 scores highest', () => {
    const X = [0.5, 0.45, 0.43, 0.44, 0.445, 0.45, 0.0];
    const run = (seed: number) => {
      const hst = new HalfSpaceTrees({
        trees: 5,
        height: 3,
        windowSize: 3,
        seed,
        features: ['x'],
        ranges: [{ min: 0, max: 1 }],
      });
      for (const x of X.slice(0, 3)) hst.learn([x]); // warming up
      return X.map((x) => {
        hst.learn([x]);
        return hst.score([x]);
      });
    };
    // River prints 0.107 0.071 0.107 0.107 0.107 0.071 0.853; ours (other PRNG) for seed 42:
    const scores = run(42);
    expect(scores.slice(0, 6).every((s) => s < 0.15)).toBe(true);
    expect(scores[6]).toBeGreaterThan(0.8);
    for (let seed = 0; seed < 30; seed++) {
      const s = run(seed);
      expect(s[6]).toBeGreaterThan(Math.max(...s.slice(0, 6)));
    }
  });

  it('explains by splitting the score exactly: each depth’s missing mass goes to the splits above it', () => {
    // Recomputes, per depth rather than per split as the implementation does, what the score misses
    // at each depth, (W − m_d)·2^d, and shares it among the splits above in proportion to the mass
    // each cut off; the total must be the score itself and the shares what explain() says.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 5, max: 30 }),
        fc.integer(),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 200, maxLength: 200 }),
        (dimensions, height, windowSize, seed, values) => {
          const trees = 2;
          const hst = model(dimensions, { trees, height, windowSize, seed });
          const point = (n: number) =>
            Array.from({ length: dimensions }, (_, i) => values[(n * dimensions + i) % 200]!);
          for (let n = 0; n < windowSize + 3; n++) hst.learn(point(n));
          const x = point(windowSize + 7);
          const byFeature = new Array<number>(dimensions).fill(0);
          let missing = 0;
          for (let t = 0; t < trees; t++) {
            const { splitFeature, splitValue, referenceMass } = hst.snapshot(t);
            const masses: number[] = [];
            const cutBy: number[] = []; // cutBy[j − 1]: feature of the split between depth j − 1 and j
            let node = 0;
            let stopped = false;
            for (let depth = 0; depth <= height; depth++) {
              masses.push(stopped ? 0 : referenceMass[node]!);
              if (masses[depth]! < 0.1 * windowSize) stopped = true;
              if (depth < height) {
                cutBy.push(splitFeature[node]!);
                node = x[splitFeature[node]!]! < splitValue[node]! ? 2 * node + 1 : 2 * node + 2;
              }
            }
            for (let depth = 0; depth <= height; depth++) {
              const lost = (windowSize - masses[depth]!) * 2 ** depth;
              missing += lost;
              for (let j = 1; j <= depth && lost > 0; j++) {
                const share = (masses[j - 1]! - masses[j]!) / (windowSize - masses[depth]!);
                byFeature[cutBy[j - 1]!] = byFeature[cutBy[j - 1]!]! + lost * share;
              }
            }
          }
          const max = trees * windowSize * (2 ** (height + 1) - 1);
          expect(hst.score(x)).toBeCloseTo(missing / max, 12);
          for (const { index, contribution } of hst.explain(x)) {
            expect(contribution).toBeCloseTo(missing > 0 ? byFeature[index]! / missing : 0, 9);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('explains a point anomalous in one feature by that feature', () => {
    const dimensions = 5;
    for (const seed of [1, 2, 3]) {
      const hst = model(dimensions, { seed });
      const draw = sampler(seed + 50, dimensions);
      for (let i = 0; i < 500; i++) hst.learn(draw(0.3, 0.03));
      const typical = hst.score(Array.from({ length: dimensions }, () => 0.3));
      for (let k = 0; k < dimensions; k++) {
        const x = Array.from({ length: dimensions }, (_, i) => (i === k ? 0.9 : 0.3));
        const explanation = hst.explain(x);
        // Measured: the centre scores 0.19–0.34, one feature off 0.70–0.98, its share 0.69–0.92.
        expect(hst.score(x)).toBeGreaterThan(Math.max(0.6, typical + 0.3));
        expect(explanation[0]!.index).toBe(k);
        expect(explanation[0]!.feature).toBe(`f${k}`);
        expect(explanation[0]!.contribution).toBeGreaterThan(0.6);
        expect(explanation[0]!.contribution).toBeGreaterThan(4 * explanation[1]!.contribution);
        expect(explanation.map((c) => c.index).sort()).toEqual([0, 1, 2, 3, 4]);
        for (let i = 1; i < explanation.length; i++) {
          expect(explanation[i]!.contribution).toBeLessThanOrEqual(explanation[i - 1]!.contribution);
        }
      }
    }
  });

  it('scales values by their range, a value outside it counting as its edge', () => {
    const hst = new HalfSpaceTrees({
      seed: 3,
      windowSize: 20,
      features: ['bytes', 'rate'],
      ranges: [
        { min: 0, max: 1000 },
        { min: 10, max: 20 },
      ],
    });
    for (let i = 0; i < 20; i++) hst.learn([100 + i, 12]);
    expect(hst.score([5000, 12])).toBe(hst.score([1000, 12]));
    expect(hst.score([-5, 0])).toBe(hst.score([0, 10]));
    expect(hst.score([110, 12])).toBeLessThan(hst.score([1000, 12]));
  });

  it('refuses a wrong dimension, a non-finite value and bad options', () => {
    const hst = model(3);
    expect(() => hst.learn([0.1, 0.2])).toThrow(/expected 3 features/);
    expect(() => hst.score([0.1, 0.2, 0.3, 0.4])).toThrow(/expected 3 features/);
    expect(() => hst.learn([0.1, Number.NaN, 0.3])).toThrow(/f1 is NaN/);
    expect(() => hst.explain([0.1, 0.2, Number.POSITIVE_INFINITY])).toThrow(/not a finite number/);
    expect(() => model(2, { trees: 0 })).toThrow(/trees/);
    expect(() => model(2, { height: 0 })).toThrow(/height/);
    expect(() => model(2, { windowSize: 2.5 })).toThrow(/windowSize/);
    expect(() => model(2, { ranges: [{ min: 0, max: 1 }] })).toThrow(/one range per feature/);
    expect(() => model(1, { ranges: [{ min: 1, max: 1 }] })).toThrow(/max > min/);
  });
});
