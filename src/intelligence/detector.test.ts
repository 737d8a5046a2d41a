import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../consensus/seeded-random.js';
import { ErrorCode } from '../errors.js';
import { refusal } from '../testing/refusal.js';
import type { AnomalyAlert } from './alert.js';
import { AnomalyDetector } from './detector.js';

const t0 = Date.UTC(2026, 0, 5);
const windowMs = 300_000;

/** Two days of org1: a few 1–8 KiB publishes to its two partners and their fetches, every window. */
function history(detector: AnomalyDetector): { alerts: AnomalyAlert[]; end: number } {
  const random = new SeededRandom(3);
  const alerts: AnomalyAlert[] = [];
  const end = t0 + 2 * 86_400_000;
  for (let window = t0; window < end; window += windowMs) {
    const n = random.int(2, 6);
    for (let i = 0; i < n; i++) {
      const at = window + random.int(0, windowMs - 1_000);
      const recipient = random.int(0, 1) === 0 ? 'org2' : 'org3';
      alerts.push(
        ...detector.observe({
          kind: 'publish',
          at,
          node: 'node-a',
          organization: 'org1',
          via: 'node-a',
          topic: 't',
          bytes: random.int(1_024, 8_192),
          recipients: [recipient],
        }),
        ...detector.observe({
          kind: 'fetch',
          at: at + 500,
          node: 'node-a',
          organization: 'org1',
          via: 'node-a',
          topic: 't',
          outcome: 'served',
        }),
      );
    }
    alerts.push(...detector.tick(window + windowMs));
  }
  return { alerts, end };
}

function exfiltrate(detector: AnomalyDetector, start: number): AnomalyAlert[] {
  const alerts: AnomalyAlert[] = [];
  for (let i = 0; i < 30; i++)
    alerts.push(
      ...detector.observe({
        kind: 'publish',
        at: start + i * 5_000,
        node: 'node-a',
        organization: 'org1',
        via: 'node-a',
        topic: 't',
        bytes: 20 << 20,
        recipients: ['org9'],
      }),
    );
  return [...alerts, ...detector.tick(start + windowMs)];
}

describe('AnomalyDetector', () => {
  it('model only: learns an organization, then flags a clear exfiltration window and says why', () => {
    const detector = new AnomalyDetector({ seed: 1, rules: false });
    const { alerts, end } = history(detector);
    expect(alerts).toEqual([]);
    const flagged = exfiltrate(detector, end);
    expect(flagged).toHaveLength(1);
    const alert = flagged[0]!;
    expect(alert).toMatchObject({ organization: 'org1', rule: 'model', firstAt: end, observations: 30 });
    expect(alert.score).toBeGreaterThanOrEqual(alert.threshold);
    const top = alert.features.slice(0, 3).map((feature) => feature.name);
    expect(
      top.some((name) =>
        [
          'newRecipientBytesLog',
          'bytesLogMean',
          'bytesLogMax',
          'bytesTotalLog',
          'newRecipientShare',
        ].includes(name),
      ),
    ).toBe(true);
    expect(alert.features.length).toBeLessThanOrEqual(8);
    const shares = alert.features.map((feature) => feature.contribution);
    expect(shares).toEqual([...shares].sort((a, b) => b - a));
    expect(alert.summary).toContain('org1');
    expect(alert.features.find((feature) => feature.name === 'newRecipientBytesLog')?.value).toBeCloseTo(
      Math.log2(1 + 30 * (20 << 20)),
      3,
    );
  });

  it('an ordinary window after the same history raises nothing', () => {
    const detector = new AnomalyDetector({ seed: 1, rules: false });
    const { end } = history(detector);
    const alerts = [
      ...detector.observe({
        kind: 'publish',
        at: end + 1_000,
        node: 'node-a',
        organization: 'org1',
        via: 'node-a',
        topic: 't',
        bytes: 4_000,
        recipients: ['org2'],
      }),
      ...detector.tick(end + windowMs),
    ];
    expect(alerts).toEqual([]);
  });

  it('degrade() switches to rules only, says so, and the model stops alerting while rules go on', () => {
    const detector = new AnomalyDetector({ seed: 1 });
    const { end } = history(detector);
    expect(detector.mode).toBe('full');
    const alert = detector.degrade('observation backlog over budget', end);
    expect(alert).toMatchObject({
      organization: '',
      rule: 'detector-degraded',
      firstAt: end,
      suggested: 'none',
    });
    expect(alert.summary).toContain('observation backlog over budget');
    expect(detector.mode).toBe('rulesOnly');
    expect(detector.stats().mode).toBe('rulesOnly');
    const after = exfiltrate(detector, end);
    const rules = new Set(after.map((a) => a.rule));
    expect(rules.has('new-recipient-volume')).toBe(true);
    expect(rules.has('model')).toBe(false);
  });

  it('a failing model degrades the detector to rules only with an alert instead of throwing', () => {
    const detector = new AnomalyDetector({ seed: 1 });
    const at = t0 + 1_000;
    detector.observe({
      kind: 'publish',
      at,
      node: 'n',
      organization: 'org1',
      topic: 't',
      bytes: Number.NaN,
      recipients: ['org2'],
    });
    const alerts = detector.tick(at + windowMs);
    expect(alerts.map((a) => a.rule)).toEqual(['detector-degraded']);
    expect(detector.mode).toBe('rulesOnly');
    expect(detector.stats().alerts).toBe(1);
  });

  it('keeps at most organizationsMax organizations, evicting the least recently seen', () => {
    const detector = new AnomalyDetector({ seed: 1, organizationsMax: 100 });
    for (let i = 0; i < 1_000; i++)
      detector.observe({
        kind: 'admin',
        at: t0 + i,
        node: 'n',
        organization: `org${i}`,
        action: 'x',
        outcome: 'OK',
      });
    expect(detector.stats()).toMatchObject({ observations: 1_000, organizations: 100 });
    // org0 was evicted: its refused fetches count from zero again.
    const refused = (organization: string, at: number): AnomalyAlert[] =>
      detector.observe({ kind: 'fetch', at, node: 'n', organization, outcome: 'notRecipient' });
    for (let i = 0; i < 3; i++) refused('org999', t0 + 2_000 + i);
    for (let i = 0; i < 100; i++)
      detector.observe({
        kind: 'admin',
        at: t0 + 3_000 + i,
        node: 'n',
        organization: `other${i}`,
        action: 'x',
        outcome: 'OK',
      });
    expect(refused('org999', t0 + 4_000)).toEqual([]);
  });

  it('raises one alert per organization and rule per cooldown', () => {
    const detector = new AnomalyDetector({ seed: 1, cooldownMs: 60_000 });
    const alerts: AnomalyAlert[] = [];
    for (let i = 0; i < 200; i++)
      alerts.push(
        ...detector.observe({
          kind: 'rateLimited',
          at: t0 + i * 500,
          node: 'n',
          organization: 'org1',
          method: 'publish',
        }),
      );
    // 100 s of flooding: one alert at the 40th request, the next a minute later.
    expect(alerts.map((a) => a.rule)).toEqual(['flood', 'flood']);
    expect(alerts[1]!.lastAt - alerts[0]!.lastAt).toBeGreaterThanOrEqual(60_000);
    expect(detector.stats().alerts).toBe(2);
  });

  it('refuses nonsensical options with BAD_CONFIG', async () => {
    expect((await refusal(() => new AnomalyDetector({ seed: 1, windowMs: 0 }))).code).toBe(
      ErrorCode.BadConfig,
    );
    expect((await refusal(() => new AnomalyDetector({ seed: 1, modelThreshold: 1.5 }))).code).toBe(
      ErrorCode.BadConfig,
    );
  });
});
