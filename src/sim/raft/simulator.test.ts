import { describe, expect, it } from 'vitest';
import { runRaftSeed, runRaftSeeds } from './simulator.js';

describe('Raft simulator', () => {
  it('seeds 1..200 on 3 servers: no invariant violated, progress after healing (Raft §5.2–§5.4, §7; thesis §4.1, §6.4)', () => {
    const result = runRaftSeeds(1, 200, 3);
    expect(result.violations).toEqual([]);
    expect(result.faultsInjected).toBeGreaterThan(1000);
  });

  it('seeds 1..200 on 5 servers: no invariant violated, progress after healing (Raft §5.2–§5.4, §7; thesis §4.1, §6.4)', () => {
    const result = runRaftSeeds(1, 200, 5);
    expect(result.violations).toEqual([]);
    expect(result.faultsInjected).toBeGreaterThan(1000);
  });

  it('exercises the faults and the paths it claims to', () => {
    const faults: Record<string, number> = {};
    const events: Record<string, number> = {};
    for (let seed = 1; seed <= 20; seed++) {
      const result = runRaftSeed(seed, { nodes: 5 });
      for (const [k, v] of Object.entries(result.faults)) faults[k] = (faults[k] ?? 0) + v;
      for (const [k, v] of Object.entries(result.events)) events[k] = (events[k] ?? 0) + v;
      expect(result.committed).toBeGreaterThan(10);
    }
    for (const kind of ['drop', 'duplicate', 'partition', 'heal', 'crash', 'restart', 'tornFrame']) {
      expect(faults[kind] ?? 0, kind).toBeGreaterThan(0);
    }
    expect(events['snapshotInstalls'] ?? 0).toBeGreaterThan(0);
    expect(events['elections'] ?? 0).toBeGreaterThan(20);
    for (const event of [
      'reads',
      'transfers',
      'snapshots',
      'membership:addLearner',
      'membership:addVoter',
      'membership:secondRefused',
      'retired',
    ]) {
      expect(events[event] ?? 0, event).toBeGreaterThan(0);
    }
  });

  it('replays a seed exactly: same seed, same result', () => {
    for (const nodes of [3, 5] as const) {
      expect(runRaftSeed(42, { nodes })).toEqual(runRaftSeed(42, { nodes }));
    }
    expect(runRaftSeed(42, { nodes: 3 })).not.toEqual(runRaftSeed(43, { nodes: 3 }));
  });
});
