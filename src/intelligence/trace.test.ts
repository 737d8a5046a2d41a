import { describe, expect, it } from 'vitest';
import { attackKinds, generateTrace } from './trace.js';

describe('generateTrace', () => {
  const trace = generateTrace({ seed: 5, events: 30_000 });

  it('is a pure function of its seed', () => {
    const again = generateTrace({ seed: 5, events: 30_000 });
    expect(again.events).toEqual(trace.events);
    expect(again.episodes).toEqual(trace.episodes);
    const other = generateTrace({ seed: 6, events: 30_000 });
    expect(other.events.slice(0, 100)).not.toEqual(trace.events.slice(0, 100));
  });

  it('has exactly the events asked for, in time order, labels matching the episodes', () => {
    expect(trace.events).toHaveLength(30_000);
    for (let i = 1; i < trace.events.length; i++)
      expect(trace.events[i]!.observation.at).toBeGreaterThanOrEqual(trace.events[i - 1]!.observation.at);
    const labelled = trace.events.filter((event) => event.attack !== undefined);
    expect(labelled).toHaveLength(trace.attackEvents);
    expect(trace.normalEvents + trace.attackEvents).toBe(30_000);
    expect(trace.episodes.reduce((sum, episode) => sum + episode.events, 0)).toBe(trace.attackEvents);
    // round(6 per 100k × 30k) = 2 episodes of each kind, all of them inside the trace.
    for (const kind of attackKinds) expect(trace.episodes.filter((e) => e.kind === kind)).toHaveLength(2);
    for (const episode of trace.episodes) {
      const events = labelled.filter((event) => event.episode === episode.id);
      expect(events.every((event) => event.attack === episode.kind)).toBe(true);
      expect(events.every((event) => event.observation.organization === episode.organization)).toBe(true);
      expect(events[0]!.observation.at).toBe(episode.startAt);
      expect(events[events.length - 1]!.observation.at).toBe(episode.endAt);
    }
    expect(trace.episodes.filter((e) => e.kind === 'sybil').every((e) => e.organization === '')).toBe(true);
    // Attacks are a small share of the events.
    expect(trace.attackEvents / trace.events.length).toBeLessThan(0.1);
  });

  it('has honest traffic with daily rhythm, several organizations, mixed sizes and honest errors', () => {
    const normal = trace.events
      .filter((event) => event.attack === undefined)
      .map((event) => event.observation);
    const publishers = new Set(normal.filter((o) => o.kind === 'publish').map((o) => o.organization));
    expect(publishers.size).toBe(8);
    const sizes = normal.flatMap((o) => (o.kind === 'publish' ? [o.bytes] : []));
    expect(Math.min(...sizes)).toBeLessThan(2_048);
    expect(Math.max(...sizes)).toBeGreaterThan(4 << 20);
    // Honest errors exist, so rules cannot simply fire on any one of them.
    const kinds = new Set(
      normal.map((o) =>
        o.kind === 'reject' ? `reject:${o.reason}` : o.kind === 'fetch' ? `fetch:${o.outcome}` : o.kind,
      ),
    );
    for (const kind of ['fetch:notRecipient', 'fetch:notFound', 'unknownKey', 'notApproved'])
      expect(kinds).toContain(kind);
    // org1's busiest hour carries several times the traffic of its quietest.
    const org = trace.organizations[0]!;
    const perHour = new Array<number>(24).fill(0);
    for (const o of normal)
      if (o.organization === org.name && o.kind === 'publish') perHour[new Date(o.at).getUTCHours()]!++;
    expect(Math.max(...perHour)).toBeGreaterThan(4 * Math.max(1, Math.min(...perHour)));
  });

  it('refuses a count that is not a whole number', () => {
    expect(() => generateTrace({ seed: 1, events: 0 })).toThrow(/events/);
  });

  it('gives attacks entry points of the same kind as honest ones, and fails over at any hour', () => {
    // The address format must not tell attacks apart: every entry point is a node of the network.
    for (const { observation } of trace.events)
      if (observation.via !== undefined) expect(observation.via).toMatch(/^node-org\d+$/);
    // A replayer or a stolen key comes through a node its victim had not used before the attack.
    for (const episode of trace.episodes.filter(
      (e) => e.kind === 'replay' || e.kind === 'credentialMisuse',
    )) {
      const via = trace.events.find((event) => event.episode === episode.id)!.observation.via!;
      const usedBefore = trace.events.some(
        ({ observation, attack }) =>
          attack === undefined &&
          observation.organization === episode.organization &&
          observation.via === via &&
          observation.at < episode.startAt,
      );
      expect(usedBefore).toBe(false);
    }
    // Honest publishes through another node happen outside working hours too (local 22:00–06:00).
    const longer = generateTrace({ seed: 5, events: 150_000 });
    const profiles = new Map(longer.organizations.map((o) => [o.name, o]));
    const nightFailovers = longer.events.filter(({ observation: o, attack }) => {
      if (attack !== undefined || o.kind !== 'publish') return false;
      const profile = profiles.get(o.organization)!;
      const hour = (((o.at / 3_600_000 + profile.utcOffsetHours) % 24) + 24) % 24;
      return o.via !== profile.node && (hour >= 22 || hour < 6);
    });
    expect(nightFailovers.length).toBeGreaterThan(0);
  });
});
