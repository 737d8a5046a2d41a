import { describe, expect, it } from 'vitest';
import type { AnomalyAlert } from './alert.js';
import { defaultWindowMs } from './detector.js';
import { evaluate, runDetector } from './evaluation.js';
import { generateTrace } from './trace.js';

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
});
