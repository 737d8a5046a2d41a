/**
 * The simulator's seeded generator: the consensus cores' deterministic generator plus the helpers a
 * fault schedule needs. Every fault schedule is a pure function of the seed, so a failing seed replays
 * exactly. Never a source of cryptographic randomness.
 */
import { SeededRandom } from '../consensus/seeded-random.js';

export class Prng extends SeededRandom {
  /** Uniform in [0, 1). */
  next(): number {
    return this.uniform();
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(0, items.length - 1)]!;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** A child generator, so adding draws in one part of the simulator does not shift another. */
  fork(): Prng {
    return new Prng(this.nextUint32());
  }
}
