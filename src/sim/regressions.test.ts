/**
 * Seeds that once failed, kept so the bug they found stays fixed. A failing seed replays exactly
 * (`npm run sim -- --seeds 1 --seed S --replicas N`); add it here with what it found. Seeds found
 * before the simulator drove the production partition driver replay with the classic faults.
 */
import { describe, expect, it } from 'vitest';
import { SimWorld } from './world.js';
import type { FaultSet } from './world.js';

const regressions: readonly { seed: number; replicas: number; found: string; faults?: FaultSet }[] = [
  {
    seed: 6,
    replicas: 4,
    faults: 'classic',
    found: 'a replica that executed blocks whose votes were lost never got their certificates',
  },
  {
    seed: 8,
    replicas: 4,
    faults: 'classic',
    found: 'same: certificates below a peer’s stable checkpoint were unreachable',
  },
  {
    seed: 15,
    replicas: 4,
    faults: 'classic',
    found: 'a lone replica in a view change could not catch up its certificates',
  },
  {
    seed: 20,
    replicas: 4,
    faults: 'classic',
    found: 'state transfer keyed on delivered, not certified, height',
  },
  {
    seed: 1135,
    replicas: 4,
    faults: 'classic',
    found: 'liveness check ended before an acknowledged block reached every replica',
  },
  // Found once the simulator drove the production partition driver (its faults on, the default).
  {
    seed: 8,
    replicas: 4,
    found: 'a block certified after the closing block, in the same Ready, was stored in the old epoch',
  },
  {
    seed: 416,
    replicas: 4,
    found: 'a replica restarted after storing its closing block did not know its epoch had closed',
  },
  // A Byzantine replica stored the closing block alone and left the old epoch for good (f silent
  // replicas); one correct replica asked for view v+1 while the others waited at v for a quorum of
  // exactly v that could no longer form. A request for a later view now counts towards v's timer.
  ...[
    { seed: 535, replicas: 4 },
    { seed: 4124, replicas: 4 },
    { seed: 4161, replicas: 4 },
    { seed: 3025, replicas: 7 },
  ].map((failing) => ({
    ...failing,
    found: 'correct replicas split across two views stayed in the view change with f replicas silent',
  })),
];

describe('simulator regressions', () => {
  for (const { seed, replicas, found, faults = 'all' } of regressions) {
    it(`seed ${seed}, ${replicas} replicas, ${faults} faults: ${found}`, () => {
      const result = new SimWorld({ seed, replicas, faults }).run();
      expect(result.violations).toEqual([]);
      expect(result.acked).toBe(result.requests);
    });
  }

  it('replays a seed exactly', () => {
    const first = new SimWorld({ seed: 4242, replicas: 4 }).run();
    const second = new SimWorld({ seed: 4242, replicas: 4 }).run();
    expect(second).toEqual(first);
  });
});
