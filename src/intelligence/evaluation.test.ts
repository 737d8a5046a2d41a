import { describe, expect, it } from 'vitest';
import type { AlertRule, AnomalyAlert } from './alert.js';
import { defaultWindowMs } from './detector.js';
import { evaluate, runDetector } from './evaluation.js';
import { generateTrace } from './trace.js';
import type { AttackKind, Episode, Trace } from './trace.js';

const minute = 60_000;

function alertOf(organization: string, rule: AlertRule, firstAt: number, lastAt = firstAt): AnomalyAlert {
  return {
    organization,
    rule,
    severity: 'warning',
    score: 1,
    threshold: 1,
    features: [],
    summary: '',
    firstAt,
    lastAt,
    observations: 1,
    suggested: 'none',
  };
}

/** A trace with only the given episodes (evaluate reads episodes and the normal-event count). */
function traceOf(episodes: readonly [AttackKind, string, number, number][]): Trace {
  const list: Episode[] = episodes.map(([kind, organization, startAt, endAt], id) => ({
    id,
    kind,
    organization,
    startAt,
    endAt,
    events: 10,
    description: '',
  }));
  return {
    events: [],
    episodes: list,
    normalEvents: 10_000,
    attackEvents: 10 * list.length,
    startAt: 0,
    durationMs: 1_000 * minute,
    organizations: [],
  };
}

describe('evaluation', () => {
  it('smoke: the node detector on a small labelled trace is far better than chance', () => {
    // 40,000 events (about 18 hours, 16 episodes): the credential-misuse rule needs a day of history
    // and the model 250 windows per organization, so this floor is below the full-size figures.
    const trace = generateTrace({ seed: 7, events: 40_000 });
    const result = evaluate(trace, runDetector(trace, { seed: 1 }), defaultWindowMs);
    expect(result.f1).toBeGreaterThan(0.8);
    expect(result.precision).toBeGreaterThan(0.9);
    expect(result.byAttack.flood.detected).toBe(result.byAttack.flood.episodes);
  });

  it('matches an alert to an episode of its organization within one window, and counts the rest as false', () => {
    const trace = generateTrace({ seed: 7, events: 20_000 });
    const episode = trace.episodes.find((e) => e.kind === 'flood')!;
    const alert = (organization: string, at: number): AnomalyAlert => ({
      organization,
      rule: 'flood',
      severity: 'warning',
      score: 1,
      threshold: 1,
      features: [],
      summary: '',
      firstAt: at,
      lastAt: at,
      observations: 1,
      suggested: 'none',
    });
    const other = trace.organizations.map((o) => o.name).find((name) => name !== episode.organization)!;
    const result = evaluate(
      trace,
      [
        alert(episode.organization, episode.endAt + defaultWindowMs),
        alert(episode.organization, episode.startAt - defaultWindowMs),
        alert(episode.organization, episode.endAt + defaultWindowMs + 1),
        alert(other, episode.startAt),
      ],
      defaultWindowMs,
    );
    expect(result.byAttack.flood.detected).toBe(1);
    expect(result.falsePositives).toBe(2);
    expect(result.precision).toBeCloseTo(2 / 4);
    expect(result.recall).toBeCloseTo(1 / trace.episodes.length);
    expect(result.falsePositivesPer10k).toBeCloseTo((2 * 10_000) / trace.normalEvents);
  });

  it('credits an alert only to episodes of a kind its rule detects, and never a detector-degraded alert', () => {
    // A flood next to a credential misuse of the same organization, and a Sybil episode ('' keys).
    const trace = traceOf([
      ['flood', 'org1', 100 * minute, 102 * minute],
      ['credentialMisuse', 'org1', 101 * minute, 110 * minute],
      ['sybil', '', 200 * minute, 205 * minute],
    ]);
    const result = evaluate(
      trace,
      [
        alertOf('org1', 'flood', 101 * minute),
        alertOf('org1', 'flood', 106 * minute),
        alertOf('', 'detector-degraded', 201 * minute),
      ],
      defaultWindowMs,
    );
    expect(result.byAttack.flood.detected).toBe(1);
    expect(result.byAttack.credentialMisuse.detected).toBe(0);
    expect(result.byAttack.sybil.detected).toBe(0);
    // The second flood alert is within one window of the flood episode, so it is still a true alert.
    expect(result.falsePositives).toBe(1);
    expect(result.unmatched.map((alert) => alert.rule)).toEqual(['detector-degraded']);
    expect(result.byRule.flood).toEqual({ alerts: 2, matched: 2 });
    // The model may detect any kind.
    const model = evaluate(trace, [alertOf('org1', 'model', 105 * minute)], defaultWindowMs);
    expect(model.byAttack.credentialMisuse.detected).toBe(1);
    expect(model.byAttack.flood.detected).toBe(0);
  });

  it('credits each alert to one episode at most, the one it overlaps best', () => {
    const trace = traceOf([
      ['unauthorizedFetch', 'org2', 100 * minute, 110 * minute],
      ['unauthorizedFetch', 'org2', 112 * minute, 140 * minute],
    ]);
    const result = evaluate(
      trace,
      [alertOf('org2', 'refused-fetches', 108 * minute, 130 * minute)],
      defaultWindowMs,
    );
    expect(result.byAttack.unauthorizedFetch.detected).toBe(1);
    expect(result.missed.map((episode) => episode.id)).toEqual([0]);
    expect(result.recall).toBeCloseTo(1 / 2);
  });

  it('reports episode precision: matched episodes against matched episodes plus false-alert groups', () => {
    const trace = traceOf([['tampering', 'org3', 100 * minute, 101 * minute]]);
    const alerts = [
      // Three alerts of one episode: one detection.
      alertOf('org3', 'tampering', 100 * minute),
      alertOf('org3', 'tampering', 102 * minute),
      alertOf('org3', 'model', 103 * minute),
      // Two false alerts of org4 within one window of each other: one group; a third much later: another.
      alertOf('org4', 'flood', 300 * minute),
      alertOf('org4', 'model', 303 * minute),
      alertOf('org4', 'flood', 400 * minute),
      // A false alert of another organization at the same time: its own group.
      alertOf('org5', 'flood', 300 * minute),
    ];
    const result = evaluate(trace, alerts, defaultWindowMs);
    expect(result.precision).toBeCloseTo(3 / 7);
    expect(result.falsePositives).toBe(4);
    expect(result.falseAlertGroups).toBe(3);
    expect(result.episodePrecision).toBeCloseTo(1 / (1 + 3));
  });
});
