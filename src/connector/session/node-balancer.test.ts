import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { SeededRandom } from '../../consensus/seeded-random.js';
import { NodeBalancer } from './node-balancer.js';
import type { BalancerPolicy, NodeBalancerOptions } from './node-balancer.js';

/** Seeded uniform draws in [0, 1): every run makes the same choices. */
function seeded(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.uniform();
}

function balancer(
  policy: BalancerPolicy,
  extra: Partial<NodeBalancerOptions> = {},
): { balancer: NodeBalancer; clock: { now: number } } {
  const clock = { now: 0 };
  return {
    balancer: new NodeBalancer({ policy, now: () => clock.now, random: seeded(7), ...extra }),
    clock,
  };
}

/**
 * Drives `rounds` request arrivals one ms apart; a request on node `id` takes `latency(id)` ms. The
 * requests overlap as they would with concurrent callers. Returns how many each node got.
 */
function simulate(
  subject: NodeBalancer,
  clock: { now: number },
  nodes: readonly string[],
  latency: (id: string) => number,
  rounds: number,
): Map<string, number> {
  const counts = new Map(nodes.map((id) => [id, 0]));
  const pending: { due: number; end: (outcome: 'success') => void }[] = [];
  for (let round = 0; round < rounds; round++) {
    clock.now += 1;
    for (const entry of pending.filter((candidate) => candidate.due <= clock.now)) {
      entry.end('success');
      pending.splice(pending.indexOf(entry), 1);
    }
    const id = subject.pick([nodes])!;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    pending.push({ due: clock.now + latency(id), end: subject.begin(id) });
  }
  return counts;
}

const nodes = ['a', 'b', 'c', 'd'];
const slowD = (id: string): number => (id === 'd' ? 200 : 5);

describe('NodeBalancer', () => {
  it('round robin gives every candidate its turn, the slow one too', () => {
    const { balancer: subject, clock } = balancer('round-robin');
    const counts = simulate(subject, clock, nodes, slowD, 4000);
    for (const id of nodes) expect(counts.get(id)).toBe(1000);
  });

  it('least-loaded sends fewer requests to a node whose answers queue up, but still some', () => {
    const { balancer: subject, clock } = balancer('least-loaded');
    const counts = simulate(subject, clock, nodes, slowD, 4000);
    const slowShare = counts.get('d')! / 4000;
    expect(slowShare).toBeLessThan(0.2);
    // About one each time it is idle again: every 200 ms.
    expect(counts.get('d')).toBeGreaterThanOrEqual(4000 / 200);
  });

  it('power of two choices over peak EWMA all but avoids the slow node', () => {
    const { balancer: subject, clock } = balancer('adaptive');
    const counts = simulate(subject, clock, nodes, slowD, 4000);
    expect(counts.get('d')! / 4000).toBeLessThan(0.005);
    for (const id of ['a', 'b', 'c']) expect(counts.get(id)!).toBeGreaterThan(1000);
  });

  it('weighs requests in flight: among equally fast nodes, the idle one wins', () => {
    const { balancer: subject } = balancer('adaptive');
    const busy = [subject.begin('a'), subject.begin('a'), subject.begin('a')];
    for (let round = 0; round < 20; round++) expect(subject.pick([['a', 'b']])).toBe('b');
    for (const end of busy) end('success');
  });

  it('takes a spike as the estimate at once, and lets it decay with time, not with samples', () => {
    const { balancer: subject, clock } = balancer('adaptive', { decayMs: 10_000 });
    const latencyOf = (): number => subject.stats().find((state) => state.id === 'a')!.latencyMs['request']!;
    let end = subject.begin('a');
    clock.now += 10;
    end('success');
    end = subject.begin('a');
    clock.now += 500;
    end('success');
    expect(latencyOf()).toBeCloseTo(500, 6);
    // One fast sample right after barely moves it; ten seconds of time take it to about e^-1.
    end = subject.begin('a');
    clock.now += 5;
    end('success');
    expect(latencyOf()).toBeGreaterThan(490);
    clock.now += 10_000;
    expect(latencyOf()).toBeGreaterThan(500 * Math.exp(-1) - 5);
    expect(latencyOf()).toBeLessThan(500 * Math.exp(-1) + 5);
  });

  it('ejects a node after consecutive failures, for a bounded time that grows with each ejection', () => {
    const { balancer: subject, clock } = balancer('round-robin', {
      failuresToEject: 3,
      ejectionBaseMs: 1_000,
      ejectionMaxMs: 2_500,
    });
    const fail = (id: string): void => subject.begin(id)('failure');
    subject.pick([nodes]);
    for (let index = 0; index < 2; index++) fail('a');
    subject.begin('a')('success');
    fail('a');
    fail('a');
    expect(subject.ejected('a')).toBe(false); // a success broke the streak
    fail('a');
    expect(subject.ejected('a')).toBe(true);
    for (let round = 0; round < 12; round++) expect(subject.pick([nodes])).not.toBe('a');
    clock.now += 1_000;
    expect(subject.ejected('a')).toBe(false);
    expect(subject.pick([['a']])).toBe('a');
    for (let index = 0; index < 3; index++) fail('a');
    expect(subject.stats().find((state) => state.id === 'a')!.ejectedUntil).toBe(clock.now + 2_000);
    clock.now += 2_000;
    for (let index = 0; index < 3; index++) fail('a');
    // The third would be 3 s: bounded at 2.5 s.
    expect(subject.stats().find((state) => state.id === 'a')!.ejectedUntil).toBe(clock.now + 2_500);
  });

  it('never ejects more than the maximum share of the nodes, and never refuses a pick', () => {
    const { balancer: subject, clock } = balancer('adaptive', { failuresToEject: 1, ejectedShareMax: 0.5 });
    subject.pick([nodes]);
    for (const id of nodes) subject.begin(id)('failure');
    expect(nodes.filter((id) => subject.ejected(id))).toEqual(['a', 'b']);
    // Only ejected nodes left in the tier: the one back first is tried rather than none.
    clock.now += 1;
    expect(subject.pick([['a', 'b']])).toBe('a');
    expect(subject.pick([['a', 'b']], new Set(['a', 'b']))).toBeUndefined();
  });

  it('a node that fails fast does not look fast', () => {
    const { balancer: subject } = balancer('adaptive', { failuresToEject: 100 });
    subject.begin('a')('success');
    subject.begin('b')('failure');
    for (let round = 0; round < 20; round++) expect(subject.pick([['a', 'b']])).toBe('a');
  });

  it('costs a refusal for load like a failure, without a step toward ejection', () => {
    const { balancer: subject } = balancer('adaptive', { failuresToEject: 1 });
    subject.begin('a')('success');
    subject.begin('b')('overloaded');
    expect(subject.ejected('b')).toBe(false);
    for (let round = 0; round < 20; round++) expect(subject.pick([['a', 'b']])).toBe('a');
  });

  it('prefers the first tier with a usable node: replicas first, own nodes as the fallback', () => {
    const { balancer: subject } = balancer('adaptive', { failuresToEject: 1, ejectedShareMax: 1 });
    const tiers = [['r1', 'r2'], ['own']];
    for (let round = 0; round < 20; round++) expect(['r1', 'r2']).toContain(subject.pick(tiers));
    subject.begin('r1')('failure');
    subject.begin('r2')('failure');
    expect(subject.pick(tiers)).toBe('own');
    expect(subject.pick(tiers, new Set(['own']))).toBe('r1');
    // A long poll's wait is no latency sample and holds no slot.
    const end = subject.begin('own', { long: true });
    expect(subject.stats().find((state) => state.id === 'own')!.inFlight).toBe(0);
    end('success');
    expect(subject.stats().find((state) => state.id === 'own')!.latencyMs['request']).toBeLessThanOrEqual(30);
  });

  it('keeps an estimate per kind of request: slow publishes do not steer reads away', () => {
    const { balancer: subject, clock } = balancer('adaptive');
    for (let round = 0; round < 5; round++) {
      const publish = subject.begin('a', { kind: 'publish' });
      const readA = subject.begin('a', { kind: 'read' });
      const readB = subject.begin('b', { kind: 'read' });
      clock.now += 5;
      readA('success');
      clock.now += 5;
      readB('success');
      clock.now += 300;
      publish('success');
    }
    // a answers reads faster than b: reads go to a, whatever a's publishes take.
    for (let round = 0; round < 10; round++) expect(subject.pick([['a', 'b']], new Set(), 'read')).toBe('a');
    expect(subject.pick([['a', 'b']], new Set(), 'publish')).toBe('b');
  });

  it('refuses an unknown policy with BAD_CONFIG', () => {
    expect(() => balancer('random' as BalancerPolicy)).toThrow(
      expect.objectContaining({ code: ErrorCode.BadConfig }),
    );
  });
});
