/**
 * The window of recent observations a node keeps (DESIGN §9, issue 16 item 1): a fixed ring, so a
 * flood of observations can never grow memory. Every observation is counted; within each second the
 * first `perSecondMax` are kept in full, and past that budget a uniform sample of the rest of that
 * second (reservoir sampling, seeded) is kept instead, so an overload leaves a picture of itself
 * without crowding everything else out of the ring.
 *
 * The caller learns what became of each observation ('kept', 'sampled' or 'dropped'), which is how
 * the node's anomaly service decides what its detector sees: everything in normal traffic, a sample
 * under overload. Pure: time is the observations' own `at`, randomness is seeded.
 */
import { SeededRandom } from '../consensus/seeded-random.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { observationKinds } from './observations.js';
import type { Observation, ObservationKind } from './observations.js';

export interface ObservationBufferOptions {
  /** Observations held at most: the ring and the current second's overflow sample together. */
  readonly capacity: number;
  /** Observations of one second kept in full; the rest of that second is sampled. */
  readonly perSecondMax: number;
  /** Size of the overflow sample of one second (default a tenth of `perSecondMax`, at least 1). */
  readonly overflowSample?: number;
  readonly seed: number;
}

/** What the buffer did with an observation. */
export type BufferOutcome = 'kept' | 'sampled' | 'dropped';

export interface BufferStats {
  /** Every observation offered. */
  readonly observed: number;
  /** Offered past a second's budget and not taken into its sample (or taken and later replaced). */
  readonly dropped: number;
  /** Held now. */
  readonly held: number;
  readonly capacity: number;
  readonly byKind: Readonly<Record<ObservationKind, number>>;
}

export class ObservationBuffer {
  private readonly ring: (Observation | undefined)[];
  private head = 0;
  private length = 0;
  /** Seconds since the epoch of the second being counted (observations' `at`). */
  private second = -Infinity;
  private inSecond = 0;
  /** The current second's overflow sample (reservoir), moved into the ring when the second ends. */
  private reservoir: Observation[] = [];
  private readonly overflowSample: number;
  private readonly random: SeededRandom;
  private observed = 0;
  private dropped = 0;
  private readonly byKind: Record<ObservationKind, number>;

  constructor(private readonly options: ObservationBufferOptions) {
    const overflowSample = options.overflowSample ?? Math.max(1, Math.floor(options.perSecondMax / 10));
    const whole = (value: number): boolean => Number.isSafeInteger(value) && value >= 1;
    if (
      !whole(options.capacity) ||
      !whole(options.perSecondMax) ||
      !whole(overflowSample) ||
      overflowSample >= options.capacity
    ) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `observation buffer: capacity, perSecondMax and overflowSample must be whole numbers ≥ 1 and the overflow sample smaller than the capacity (got ${options.capacity}, ${options.perSecondMax}, ${overflowSample})`,
      );
    }
    this.overflowSample = overflowSample;
    this.ring = new Array<Observation | undefined>(options.capacity - overflowSample).fill(undefined);
    this.random = new SeededRandom(options.seed);
    this.byKind = Object.fromEntries(observationKinds.map((kind) => [kind, 0])) as Record<
      ObservationKind,
      number
    >;
  }

  /** Counts `observation` and keeps it, samples it or drops it (see the file comment). */
  offer(observation: Observation): BufferOutcome {
    this.observed += 1;
    this.byKind[observation.kind] += 1;
    const second = Math.floor(observation.at / 1000);
    // Observations arrive a little out of order (a block's timestamp is older than a fetch seen now):
    // an older one counts in the current second rather than reopening a past one.
    if (second > this.second) {
      this.flushReservoir();
      this.second = second;
      this.inSecond = 0;
    }
    this.inSecond += 1;
    if (this.inSecond <= this.options.perSecondMax) {
      this.push(observation);
      return 'kept';
    }
    // Algorithm R over this second's overflow: each of the n overflowing observations ends up in the
    // sample with probability size / n.
    const n = this.inSecond - this.options.perSecondMax;
    if (this.reservoir.length < this.overflowSample) {
      this.reservoir.push(observation);
      return 'sampled';
    }
    const slot = this.random.int(0, n - 1);
    this.dropped += 1;
    if (slot >= this.overflowSample) return 'dropped';
    this.reservoir[slot] = observation;
    return 'sampled';
  }

  /** Held observations, oldest first (the current second's overflow sample last); at most `limit`, newest. */
  recent(limit = Infinity): Observation[] {
    const out: Observation[] = [];
    const size = this.ring.length;
    for (let index = 0; index < this.length; index++) {
      const observation = this.ring[(this.head - this.length + index + size) % size];
      if (observation !== undefined) out.push(observation);
    }
    out.push(...this.reservoir);
    return limit >= out.length ? out : out.slice(out.length - limit);
  }

  stats(): BufferStats {
    return {
      observed: this.observed,
      dropped: this.dropped,
      held: this.length + this.reservoir.length,
      capacity: this.options.capacity,
      byKind: { ...this.byKind },
    };
  }

  private push(observation: Observation): void {
    this.ring[this.head] = observation;
    this.head = (this.head + 1) % this.ring.length;
    if (this.length < this.ring.length) this.length += 1;
  }

  private flushReservoir(): void {
    for (const observation of this.reservoir) this.push(observation);
    this.reservoir = [];
  }
}
