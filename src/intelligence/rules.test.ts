import { describe, expect, it } from 'vitest';
import type { AnomalyAlert } from './alert.js';
import { OrganizationFeatures } from './features.js';
import type { Observation } from './observations.js';
import { OrganizationRuleState, RuleEngine, defaultRuleThresholds } from './rules.js';

const day = 86_400_000;
const t0 = Date.UTC(2026, 0, 5);
/** An observation without its time (distributed over the union, so each kind keeps its fields). */
type Template = Observation extends infer O ? (O extends Observation ? Omit<O, 'at'> : never) : never;

/** Feeds observations as the detector does: rules first, then the history takes the observation in. */
class Harness {
  readonly engine = new RuleEngine();
  readonly features = new OrganizationFeatures('org1', { windowMs: 300_000 });
  readonly state = new OrganizationRuleState();

  feed(o: Observation): AnomalyAlert[] {
    const out: AnomalyAlert[] = [];
    if (o.organization === '') this.engine.unknownKey(o, out);
    else {
      this.features.roll(o.at);
      this.engine.evaluate(o, this.features, this.state, out);
      this.features.add(o);
    }
    return out;
  }

  /** Feeds `n` copies of `template` `gapMs` apart from `start`; returns every alert. */
  repeat(template: Template, n: number, start: number, gapMs: number): AnomalyAlert[] {
    const alerts: AnomalyAlert[] = [];
    for (let i = 0; i < n; i++)
      alerts.push(...this.feed({ ...template, at: start + i * gapMs } as Observation));
    return alerts;
  }

  /** Two days of org1 publishing 1 KiB to org2 through node-a between 09:00 and 17:00 UTC. */
  history(): number {
    for (let d = 0; d < 2; d++)
      for (let m = 0; m < 480; m++)
        this.feed({
          kind: 'publish',
          at: t0 + d * day + 9 * 3_600_000 + m * 60_000,
          node: 'node-a',
          organization: 'org1',
          via: 'node-a',
          topic: 't',
          bytes: 1_024,
          recipients: ['org2'],
        });
    return t0 + 2 * day + 10 * 3_600_000;
  }
}

const base = { node: 'node-a', organization: 'org1', via: 'node-a' } as const;

describe('counted rules fire at their limit, not one below it', () => {
  const cases: [string, Template, { count: number; withinMs: number }][] = [
    [
      'refused-fetches',
      { ...base, kind: 'fetch', outcome: 'notRecipient' },
      defaultRuleThresholds.refusedFetches,
    ],
    [
      'replay-burst',
      { ...base, kind: 'reject', reason: 'REPLAY', stage: 'contract' },
      defaultRuleThresholds.replayBurst,
    ],
    [
      'suspended-activity',
      { ...base, kind: 'notApproved', status: 'SUSPENDED', method: 'publish' },
      defaultRuleThresholds.suspendedActivity,
    ],
    ['flood', { ...base, kind: 'rateLimited', method: 'publish' }, defaultRuleThresholds.flood],
    [
      'tampering',
      { ...base, kind: 'reject', reason: 'CONTENT_ROOT_MISMATCH', stage: 'contract' },
      defaultRuleThresholds.tampering,
    ],
  ];
  for (const [rule, template, limit] of cases) {
    it(rule, () => {
      const gap = Math.floor(limit.withinMs / limit.count);
      const below = new Harness().repeat(template, limit.count - 1, t0, gap);
      expect(below.filter((alert) => alert.rule === rule)).toEqual([]);
      // The same count spread wider than the span does not fire either.
      const spread = new Harness().repeat(
        template,
        limit.count,
        t0,
        Math.ceil((limit.withinMs + 1) / (limit.count - 1)),
      );
      expect(spread.filter((alert) => alert.rule === rule)).toEqual([]);
      const at = new Harness().repeat(template, limit.count, t0, gap);
      const fired = at.filter((alert) => alert.rule === rule);
      expect(fired).toHaveLength(1);
      expect(fired[0]!.organization).toBe('org1');
      expect(fired[0]!.score).toBe(limit.count);
      expect(fired[0]!.features[0]!.value).toBe(limit.count);
      expect(fired[0]!.firstAt).toBe(t0);
    });
  }

  it('suggests a rate limit for a flood and a suspension for a critical replay burst', () => {
    const flood = new Harness().repeat({ ...base, kind: 'rateLimited', method: 'publish' }, 40, t0, 10);
    expect(flood.find((alert) => alert.rule === 'flood')?.suggested).toBe('rateLimit');
    const replays = new Harness().repeat(
      { ...base, kind: 'reject', reason: 'REPLAY', stage: 'contract' },
      3,
      t0,
      100,
    );
    expect(replays[0]).toMatchObject({
      rule: 'replay-burst',
      severity: 'critical',
      suggested: 'proposeSuspension',
    });
  });

  it('does not count PENDING organizations or not-found fetches', () => {
    const pending = new Harness().repeat(
      { ...base, kind: 'notApproved', status: 'PENDING', method: 'connect' },
      10,
      t0,
      1_000,
    );
    const notFound = new Harness().repeat({ ...base, kind: 'fetch', outcome: 'notFound' }, 10, t0, 1_000);
    expect([...pending, ...notFound]).toEqual([]);
  });
});

describe('unknown-key', () => {
  const attempt = (key: string): Template => ({
    kind: 'unknownKey',
    node: 'n',
    organization: '',
    via: 'x',
    key,
  });
  it('fires at the third distinct key, not at two', () => {
    const harness = new Harness();
    expect([
      ...harness.repeat(attempt('k1'), 5, t0, 1_000),
      ...harness.repeat(attempt('k2'), 5, t0 + 6_000, 1_000),
    ]).toEqual([]);
    const fired = harness.feed({ ...attempt('k3'), at: t0 + 20_000 } as Observation);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ rule: 'unknown-key', organization: '', score: 3 });
  });
  it('fires on many attempts from one key', () => {
    const limit = defaultRuleThresholds.unknownKey.count;
    expect(new Harness().repeat(attempt('k1'), limit - 1, t0, 1_000)).toEqual([]);
    expect(new Harness().repeat(attempt('k1'), limit, t0, 1_000)).toHaveLength(1);
  });
});

describe('history rules', () => {
  it('size-outlier: a message far larger than any before, not one just below the bar', () => {
    const harness = new Harness();
    const at = harness.history();
    const bar = Math.max(
      defaultRuleThresholds.sizeOutlier.minBytes,
      defaultRuleThresholds.sizeOutlier.factor * 1_024,
    );
    const publish = (bytes: number, when: number): Observation => ({
      ...base,
      kind: 'publish',
      at: when,
      topic: 't',
      bytes,
      recipients: ['org2'],
    });
    expect(harness.feed(publish(bar, at))).toEqual([]);
    const fired = harness.feed(publish(64 << 20, at + 1));
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ rule: 'size-outlier', score: 64 << 20 });
  });

  it('new-recipient-volume: an abnormal volume to a recipient never used, but not an ordinary new partner', () => {
    const harness = new Harness();
    const at = harness.history();
    const publish = (recipient: string, bytes: number, when: number): Observation => ({
      ...base,
      kind: 'publish',
      at: when,
      topic: 't',
      bytes,
      recipients: [recipient],
    });
    // An ordinary new partner: 50 ordinary messages.
    for (let i = 0; i < 50; i++) expect(harness.feed(publish('org7', 1_024, at + i * 1_000))).toEqual([]);
    // The same volume to an old partner never fires; to a new one it does once past the bar.
    const minBytes = defaultRuleThresholds.newRecipientVolume.minBytes;
    const volume = (alerts: AnomalyAlert[]): AnomalyAlert[] =>
      alerts.filter((alert) => alert.rule === 'new-recipient-volume');
    expect(volume(harness.feed(publish('org2', 2 * minBytes, at + 60_000)))).toEqual([]);
    expect(volume(harness.feed(publish('org8', minBytes - 1, at + 61_000)))).toEqual([]);
    const fired = volume(harness.feed(publish('org8', 2, at + 62_000)));
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ rule: 'new-recipient-volume', organization: 'org1', observations: 2 });
    expect(fired[0]!.features[0]).toMatchObject({ name: 'bytesToNewRecipient', value: minBytes + 1 });
  });

  it('credential-misuse: a new entry point at a dead hour, not at a working hour nor from the usual node', () => {
    const harness = new Harness();
    const at = harness.history();
    const fetch = (via: string, when: number): Observation => ({
      kind: 'fetch',
      at: when,
      node: 'node-a',
      organization: 'org1',
      via,
      topic: 't',
      outcome: 'served',
    });
    const night = at - 7 * 3_600_000; // 03:00 UTC, an hour org1 never used
    for (let i = 0; i < 3; i++) expect(harness.feed(fetch('node-a', night + i * 1_000))).toEqual([]);
    for (let i = 0; i < 10; i++) expect(harness.feed(fetch('node-b', at + i * 1_000))).toEqual([]);
    const { count } = defaultRuleThresholds.credentialMisuse;
    const alerts: AnomalyAlert[] = [];
    for (let i = 0; i < count; i++)
      alerts.push(...harness.feed(fetch('203.0.113.9', night + 20_000 + i * 1_000)));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ rule: 'credential-misuse', organization: 'org1' });
  });

  it('credential-misuse: a new entry point used while the usual one stays active, not a clean failover', () => {
    const { count, concurrent } = defaultRuleThresholds.credentialMisuse;
    // Fewer requests than the off-hour limit alone, so only concurrency can make the rule fire.
    const requests = Math.min(count - 1, concurrent.count + 3);
    const fetch = (via: string, when: number): Observation => ({
      kind: 'fetch',
      at: when,
      node: via,
      organization: 'org1',
      via,
      topic: 't',
      outcome: 'served',
    });
    const run = (usualKeepsGoing: boolean): AnomalyAlert[] => {
      const harness = new Harness();
      const night = harness.history() - 7 * 3_600_000; // 03:00 UTC, an hour org1 never used
      const events: Observation[] = [fetch('node-a', night - 60_000)];
      // A request already in flight when the switch happens lands on the old node seconds later.
      events.push(fetch('node-a', night + 5_000));
      if (usualKeepsGoing)
        for (let i = 1; i <= 2 * requests; i++) events.push(fetch('node-a', night + i * 30_000 + 15_000));
      for (let i = 0; i < requests; i++) events.push(fetch('node-x', night + i * 60_000));
      events.sort((a, b) => a.at - b.at);
      return events.flatMap((o) => harness.feed(o));
    };
    expect(run(false)).toEqual([]);
    const alerts = run(true);
    expect(alerts.length).toBeGreaterThan(0);
    expect(alerts[0]).toMatchObject({ rule: 'credential-misuse', organization: 'org1' });
    expect(alerts[0]!.features[0]).toMatchObject({ name: 'concurrentRequestsViaNewEntryPoint' });
  });
});
