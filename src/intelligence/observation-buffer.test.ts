import { describe, expect, it } from 'vitest';
import { isLedgerbusError } from '../errors.js';
import { ObservationBuffer } from './observation-buffer.js';
import type { BufferOutcome } from './observation-buffer.js';
import type { Observation } from './observations.js';

function fetchAt(at: number, organization = 'org3'): Observation {
  return { kind: 'fetch', at, node: 'node1', organization, outcome: 'served', topic: 'demo' };
}

function offerMany(buffer: ObservationBuffer, observations: readonly Observation[]): BufferOutcome[] {
  return observations.map((observation) => buffer.offer(observation));
}

describe('ObservationBuffer', () => {
  it('keeps every observation of a quiet second and gives them back oldest first', () => {
    const buffer = new ObservationBuffer({ capacity: 100, perSecondMax: 50, seed: 1 });
    const outcomes = offerMany(
      buffer,
      Array.from({ length: 30 }, (_, index) => fetchAt(1_000 + index)),
    );
    expect(outcomes.every((outcome) => outcome === 'kept')).toBe(true);
    expect(buffer.recent().map((observation) => observation.at)).toEqual(
      Array.from({ length: 30 }, (_, index) => 1_000 + index),
    );
    expect(buffer.recent(3).map((observation) => observation.at)).toEqual([1_027, 1_028, 1_029]);
    expect(buffer.stats()).toMatchObject({ observed: 30, dropped: 0, held: 30 });
  });

  it('counts every observation of a flood, samples past the per-second budget and never grows past its capacity', () => {
    const buffer = new ObservationBuffer({ capacity: 1_000, perSecondMax: 200, overflowSample: 20, seed: 7 });
    let held = 0;
    const outcomes: Record<BufferOutcome, number> = { kept: 0, sampled: 0, dropped: 0 };
    // 50 seconds of 10,000 observations each: half a million, far past the capacity.
    for (let second = 0; second < 50; second++) {
      for (let index = 0; index < 10_000; index++) {
        outcomes[buffer.offer(fetchAt(second * 1_000 + (index % 1_000), `org${index % 4}`))] += 1;
      }
      held = Math.max(held, buffer.stats().held);
      expect(buffer.stats().held).toBeLessThanOrEqual(1_000);
    }
    const stats = buffer.stats();
    expect(stats.observed).toBe(500_000);
    expect(stats.byKind.fetch).toBe(500_000);
    expect(held).toBe(1_000);
    expect(outcomes.kept).toBe(50 * 200);
    // The sample is bounded per second: the reservoir holds 20 of each second's 9,800 overflow.
    expect(stats.dropped).toBe(50 * (9_800 - 20));
    // Offers that entered the reservoir: about 20 · (1 + ln(9800/20)) a second, not thousands.
    expect(outcomes.sampled / 50).toBeGreaterThan(20);
    expect(outcomes.sampled / 50).toBeLessThan(300);
    expect(buffer.recent().length).toBeLessThanOrEqual(1_000);
  });

  it('samples the overflow uniformly over the second, not just its beginning', () => {
    const buffer = new ObservationBuffer({ capacity: 2_000, perSecondMax: 10, overflowSample: 500, seed: 3 });
    for (let index = 0; index < 20_000; index++) buffer.offer(fetchAt(5_000 + (index % 1_000)));
    // Roll the second so the sample moves into the ring.
    buffer.offer(fetchAt(6_000));
    const sample = buffer.recent().slice(10, 510);
    expect(sample).toHaveLength(500);
    const positions = sample.map((observation) => observation.at - 5_000);
    const late = positions.filter((position) => position >= 500).length;
    // Uniform over the second: about half from its second half.
    expect(late).toBeGreaterThan(200);
    expect(late).toBeLessThan(300);
  });

  it('is a pure function of its seed and input', () => {
    const run = (): number[] => {
      const buffer = new ObservationBuffer({ capacity: 100, perSecondMax: 5, overflowSample: 10, seed: 42 });
      for (let index = 0; index < 5_000; index++) buffer.offer(fetchAt(index));
      return buffer.recent().map((observation) => observation.at);
    };
    expect(run()).toEqual(run());
  });

  it('counts a late observation in the current second instead of reopening an old one', () => {
    const buffer = new ObservationBuffer({ capacity: 100, perSecondMax: 2, overflowSample: 1, seed: 1 });
    expect(offerMany(buffer, [fetchAt(10_000), fetchAt(10_500)])).toEqual(['kept', 'kept']);
    // A block's observation stamped a second earlier still counts against this second's budget.
    expect(buffer.offer(fetchAt(9_000))).toBe('sampled');
    expect(buffer.offer(fetchAt(11_000))).toBe('kept');
  });

  it('refuses a configuration that could not hold its own sample', () => {
    expect(
      () => new ObservationBuffer({ capacity: 10, perSecondMax: 5, overflowSample: 10, seed: 1 }),
    ).toThrow(/overflow sample smaller than the capacity/);
    try {
      new ObservationBuffer({ capacity: 0, perSecondMax: 5, seed: 1 });
      expect.unreachable();
    } catch (error) {
      expect(isLedgerbusError(error) && error.code).toBe('BAD_CONFIG');
    }
  });
});
