/**
 * Half-Space Trees (Tan, Ting & Liu 2011, "Fast Anomaly Detection for Streaming Data"), the online
 * learned model of DESIGN §9. No JS package implements it, so this follows River's
 * `anomaly.HalfSpaceTrees` (river/anomaly/hst.py) step by step; where it differs, it says so below.
 *
 * The model is an ensemble of random binary trees built once, before any data: each internal node
 * splits its "work range" (a box in the [0,1]-scaled feature space) on one feature. Each node counts
 * how many samples of the latest window passed through it (`l_mass`) and how many of the previous,
 * complete window did (`r_mass`, the reference). Every `windowSize` samples the latest window becomes
 * the reference. A point that falls in nodes the reference window rarely visited is anomalous.
 *
 * As River does (and unlike the paper):
 * - Splits are random, not work-range midpoints: the feature is drawn with probability proportional to
 *   the width of its current work range (features already cut narrow are picked less), and the split
 *   point uniformly in the middle 70 % of that range (River's padding 0.15). The paper instead halves a
 *   randomly perturbed work range; River's scheme needs no perturbation and is what its users tune for.
 * - The score sums `r_mass × 2^depth` over every node on the path, down to the leaf or to the first node
 *   whose reference mass is below 10 % of the window (that node still counts); the paper counts only
 *   that last node. The sum is divided by its maximum, trees × window × (2^(height+1) − 1), and
 *   inverted, so the score is in [0, 1] and 1 is the most anomalous.
 * - Until the first window is complete there is no reference and the score is 0.
 *
 * Where this differs from River:
 * - Dense numeric vectors with declared ranges instead of dicts with optional limits: no missing
 *   features (River's "follow the heavier child" fallback is not needed), and values outside a range are
 *   clamped into it before scaling (River would let them fall off the side of the outermost split,
 *   which lands them in the same leaf anyway).
 * - The PRNG is sfc32 (src/consensus/seeded-random.ts) instead of Python's Mersenne Twister, so the
 *   same seed gives other trees than River's: the behaviour matches, the numbers do not.
 * - Trees are built in the constructor rather than on the first `learn_one`.
 * - `explain` is ours (River has none): see there.
 */
import { SeededRandom } from '../consensus/seeded-random.js';

export interface FeatureRange {
  readonly min: number;
  readonly max: number;
}

export interface HalfSpaceTreesOptions {
  /** Number of trees (default 10). */
  readonly trees?: number;
  /** Height of each tree: height + 1 levels, 2^(height+1) − 1 nodes (default 8). */
  readonly height?: number;
  /** Samples per window (default 250). */
  readonly windowSize?: number;
  /** Seed of the trees' random splits: the same seed and options give the same trees. */
  readonly seed: number;
  /** Feature names, one per dimension (used by `explain`). */
  readonly features: readonly string[];
  /** Each feature's range: values are clamped to it and scaled into [0, 1]. */
  readonly ranges: readonly FeatureRange[];
}

/** One feature's share of a score. */
export interface FeatureContribution {
  readonly feature: string;
  readonly index: number;
  /** Share of the score in [0, 1]; the shares sum to 1, or are all 0 when the score is 0. */
  readonly contribution: number;
}

/** A copy of one tree's state, for tests and debugging. */
export interface HalfSpaceTreeSnapshot {
  /** Split feature of each internal node (nodes 0 … 2^height − 2). */
  readonly splitFeature: readonly number[];
  /** Split value (in [0,1]-scaled units) of each internal node: below goes left, the rest right. */
  readonly splitValue: readonly number[];
  /** Latest-window mass of every node (2^(height+1) − 1 of them). */
  readonly latestMass: readonly number[];
  /** Reference-window mass of every node. */
  readonly referenceMass: readonly number[];
}

/** River's padding: a split never falls in the outer 15 % of either side of a node's work range. */
const SPLIT_PADDING = 0.15;
/** The paper's (and River's) sizeLimit: scoring stops at a node with less than this share of the window. */
const SIZE_LIMIT_FRACTION = 0.1;
/** Keeps memory (trees × 2^(height+1) nodes) and `explain`'s exact integer arithmetic in bounds. */
const MAX_HEIGHT = 20;

/**
 * Memory is fixed: trees × (2^(height+1) − 1) nodes, allocated up front in typed arrays. `learn` and
 * `score` allocate nothing; each costs trees × (height + 1) node visits.
 */
export class HalfSpaceTrees {
  readonly dimensions: number;
  private readonly treeCount: number;
  private readonly height: number;
  private readonly windowSize: number;
  private readonly sizeLimit: number;
  private readonly nodeCount: number;
  private readonly firstLeaf: number;
  private readonly features: readonly string[];
  private readonly mins: Float64Array;
  private readonly spans: Float64Array;
  private readonly splitFeature: Int32Array[] = [];
  private readonly splitValue: Float64Array[] = [];
  private latestMass: Int32Array[] = [];
  private referenceMass: Int32Array[] = [];
  /** The point being learned, scored or explained, after clamping and scaling. */
  private readonly scaled: Float64Array;
  private inWindow = 0;
  private hasReference = false;

  constructor(options: HalfSpaceTreesOptions) {
    const trees = options.trees ?? 10;
    const height = options.height ?? 8;
    const windowSize = options.windowSize ?? 250;
    if (!Number.isInteger(trees) || trees < 1) {
      throw new Error(`HalfSpaceTrees: trees must be a positive integer, got ${trees}`);
    }
    if (!Number.isInteger(height) || height < 1 || height > MAX_HEIGHT) {
      throw new Error(`HalfSpaceTrees: height must be an integer in 1…${MAX_HEIGHT}, got ${height}`);
    }
    if (!Number.isInteger(windowSize) || windowSize < 1 || windowSize > 0x7fffffff) {
      throw new Error(`HalfSpaceTrees: windowSize must be a positive 32-bit integer, got ${windowSize}`);
    }
    if (!Number.isInteger(options.seed)) {
      throw new Error(`HalfSpaceTrees: seed must be an integer, got ${options.seed}`);
    }
    const dimensions = options.features.length;
    if (dimensions < 1 || options.ranges.length !== dimensions) {
      throw new Error(
        `HalfSpaceTrees: give at least one feature and one range per feature (${dimensions} features, ${options.ranges.length} ranges)`,
      );
    }
    this.dimensions = dimensions;
    this.treeCount = trees;
    this.height = height;
    this.windowSize = windowSize;
    this.sizeLimit = SIZE_LIMIT_FRACTION * windowSize;
    this.nodeCount = 2 ** (height + 1) - 1;
    this.firstLeaf = 2 ** height - 1;
    this.features = [...options.features];
    this.mins = new Float64Array(dimensions);
    this.spans = new Float64Array(dimensions);
    options.ranges.forEach((range, i) => {
      if (!Number.isFinite(range.min) || !Number.isFinite(range.max) || !(range.max > range.min)) {
        throw new Error(
          `HalfSpaceTrees: range of feature ${options.features[i]} must be finite with max > min, got [${range.min}, ${range.max}]`,
        );
      }
      this.mins[i] = range.min;
      this.spans[i] = range.max - range.min;
    });
    this.scaled = new Float64Array(dimensions);

    const random = new SeededRandom(options.seed);
    const uniform = (): number => random.uniform();
    const low = new Float64Array(dimensions);
    const high = new Float64Array(dimensions).fill(1);
    for (let t = 0; t < trees; t++) {
      const features = new Int32Array(this.firstLeaf);
      const values = new Float64Array(this.firstLeaf);
      // Preorder like River's make_padded_tree, so the draws come in the same order as there.
      const build = (node: number): void => {
        if (node >= this.firstLeaf) return;
        let total = 0;
        for (let f = 0; f < dimensions; f++) total += high[f]! - low[f]!;
        let pick = uniform() * total;
        let on = dimensions - 1;
        for (let f = 0; f < dimensions; f++) {
          pick -= high[f]! - low[f]!;
          if (pick < 0) {
            on = f;
            break;
          }
        }
        const a = low[on]!;
        const b = high[on]!;
        const at = a + SPLIT_PADDING * (b - a) + uniform() * (1 - 2 * SPLIT_PADDING) * (b - a);
        features[node] = on;
        values[node] = at;
        high[on] = at;
        build(2 * node + 1);
        high[on] = b;
        low[on] = at;
        build(2 * node + 2);
        low[on] = a;
      };
      build(0);
      this.splitFeature.push(features);
      this.splitValue.push(values);
      this.latestMass.push(new Int32Array(this.nodeCount));
      this.referenceMass.push(new Int32Array(this.nodeCount));
    }
  }

  /** true once a full reference window exists (before that score() returns 0). */
  get warm(): boolean {
    return this.hasReference;
  }

  /** Samples learned into the latest (incomplete) window: 0 … windowSize − 1. */
  get samplesInWindow(): number {
    return this.inWindow;
  }

  learn(x: readonly number[]): void {
    this.scale(x);
    for (let t = 0; t < this.treeCount; t++) {
      const latest = this.latestMass[t]!;
      const features = this.splitFeature[t]!;
      const values = this.splitValue[t]!;
      let node = 0;
      for (;;) {
        latest[node]!++;
        if (node >= this.firstLeaf) break;
        node = this.scaled[features[node]!]! < values[node]! ? 2 * node + 1 : 2 * node + 2;
      }
    }
    this.inWindow++;
    if (this.inWindow === this.windowSize) {
      // The latest window becomes the reference; the old reference's arrays are reused, zeroed.
      const old = this.referenceMass;
      this.referenceMass = this.latestMass;
      this.latestMass = old;
      for (const masses of old) masses.fill(0);
      this.inWindow = 0;
      this.hasReference = true;
    }
  }

  score(x: readonly number[]): number {
    this.scale(x);
    if (!this.hasReference) return 0;
    let mass = 0;
    for (let t = 0; t < this.treeCount; t++) {
      const reference = this.referenceMass[t]!;
      const features = this.splitFeature[t]!;
      const values = this.splitValue[t]!;
      let node = 0;
      let weight = 1;
      for (;;) {
        const r = reference[node]!;
        mass += r * weight;
        if (r < this.sizeLimit || node >= this.firstLeaf) break;
        node = this.scaled[features[node]!]! < values[node]! ? 2 * node + 1 : 2 * node + 2;
        weight *= 2;
      }
    }
    return 1 - mass / (this.treeCount * this.windowSize * this.nodeCount);
  }

  /**
   * Which features made `x` anomalous: an exact additive split of its score over the features.
   *
   * One tree's shortfall from the highest possible mass is D = Σ_d (W − m_d)·2^d over depths
   * d = 0 … height, where W is the window size and m_d the reference mass `score` counted at depth d
   * on x's path (0 past the node where scoring stopped). The root holds the whole window, m_0 = W, so
   * W − m_d telescopes into the mass lost at each split above depth d: Σ_{j≤d} (m_{j−1} − m_j). The
   * drop at split j (made by the node at depth j − 1, on its feature) therefore counts at every depth
   * from j down, and D = Σ_j (m_{j−1} − m_j)·(2^(height+1) − 2^j). Each drop goes to the feature of
   * its split: the splits that cut x away from where the reference window's points went, and the
   * higher up the more (what they cut off is missed at every level below). When scoring stopped early
   * (too little mass to go on), the mass left at that node is lost at the next split on the path, and
   * is attributed to that split's feature; it is less than 10 % of the window by construction. Summed
   * over trees and divided by the total shortfall (score × maximum), the shares sum to 1 exactly.
   * Sorted largest first, ties by feature index.
   */
  explain(x: readonly number[]): FeatureContribution[] {
    this.scale(x);
    const byFeature = new Float64Array(this.dimensions);
    let total = 0;
    if (this.hasReference) {
      const full = 2 ** (this.height + 1);
      for (let t = 0; t < this.treeCount; t++) {
        const reference = this.referenceMass[t]!;
        const features = this.splitFeature[t]!;
        const values = this.splitValue[t]!;
        let node = 0;
        let depth = 0;
        let stopped = false;
        while (node < this.firstLeaf) {
          const parentMass = stopped ? 0 : reference[node]!;
          if (parentMass < this.sizeLimit) stopped = true;
          const feature = features[node]!;
          node = this.scaled[feature]! < values[node]! ? 2 * node + 1 : 2 * node + 2;
          depth++;
          const childMass = stopped ? 0 : reference[node]!;
          const drop = (parentMass - childMass) * (full - 2 ** depth);
          byFeature[feature] = byFeature[feature]! + drop;
          total += drop;
          if (stopped) break;
        }
      }
    }
    const contributions = this.features.map((feature, index) => ({
      feature,
      index,
      contribution: total > 0 ? byFeature[index]! / total : 0,
    }));
    return contributions.sort((a, b) => b.contribution - a.contribution || a.index - b.index);
  }

  /** A copy of tree `t`'s splits and masses. */
  snapshot(t: number): HalfSpaceTreeSnapshot {
    if (!Number.isInteger(t) || t < 0 || t >= this.treeCount) {
      throw new Error(`HalfSpaceTrees: no tree ${t} (there are ${this.treeCount})`);
    }
    return {
      splitFeature: [...this.splitFeature[t]!],
      splitValue: [...this.splitValue[t]!],
      latestMass: [...this.latestMass[t]!],
      referenceMass: [...this.referenceMass[t]!],
    };
  }

  private scale(x: readonly number[]): void {
    if (x.length !== this.dimensions) {
      throw new Error(`HalfSpaceTrees: expected ${this.dimensions} features, got ${x.length}`);
    }
    for (let i = 0; i < this.dimensions; i++) {
      const value = x[i]!;
      if (!Number.isFinite(value)) {
        throw new Error(`HalfSpaceTrees: feature ${this.features[i]} is ${value}, not a finite number`);
      }
      const unit = (value - this.mins[i]!) / this.spans[i]!;
      this.scaled[i] = unit < 0 ? 0 : unit > 1 ? 1 : unit;
    }
  }
}
