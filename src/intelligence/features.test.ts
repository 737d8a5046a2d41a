import { describe, expect, it } from 'vitest';
import { FeatureExtractor, OrganizationFeatures, RecentMap, featureNames } from './features.js';
import type { Observation } from './observations.js';

const windowMs = 60_000;
const t0 = Date.UTC(2026, 0, 5, 10);
const index = (name: (typeof featureNames)[number]): number => featureNames.indexOf(name);

function publish(at: number, recipients: string[], bytes = 1_000, via = 'node-a'): Observation {
  return { kind: 'publish', at, node: via, organization: 'org1', via, topic: 't', bytes, recipients };
}

/** An organization seen for two hours with 200 publishes to org2 through node-a. */
function established(): OrganizationFeatures {
  const features = new OrganizationFeatures('org1', { windowMs });
  for (let i = 0; i < 200; i++) {
    const o = publish(t0 + i * 36_000, ['org2']);
    features.roll(o.at);
    features.add(o);
  }
  return features;
}

describe('OrganizationFeatures', () => {
  it('closes an aligned window with its counts on a log scale', () => {
    const features = new OrganizationFeatures('org1', { windowMs });
    const start = t0 + 5 * windowMs;
    features.add(publish(start + 1_000, ['org2'], 1_023));
    features.add(publish(start + 2_000, ['org2', 'org3'], 1_023));
    features.add({
      kind: 'fetch',
      at: start + 3_000,
      node: 'n',
      organization: 'org1',
      outcome: 'notRecipient',
    });
    features.add({
      kind: 'reject',
      at: start + 4_000,
      node: 'n',
      organization: 'org1',
      reason: 'REPLAY',
      stage: 'contract',
    });
    expect(features.roll(start + windowMs - 1)).toBeUndefined();
    const window = features.roll(start + windowMs)!;
    expect(window.startAt).toBe(start);
    expect(window.observations).toBe(4);
    expect(window.values[index('publishes')]).toBeCloseTo(Math.log2(3));
    expect(window.values[index('bytesLogMean')]).toBeCloseTo(10);
    expect(window.values[index('recipients')]).toBeCloseTo(Math.log2(3));
    expect(window.values[index('refusedFetches')]).toBeCloseTo(1);
    expect(window.values[index('rejectsReplay')]).toBeCloseTo(1);
    // Not established yet: nothing counts as new.
    expect(window.values[index('newRecipientShare')]).toBe(0);
    expect(features.windowOpen).toBe(false);
  });

  it('counts recipients and entry points as new only once the history is established', () => {
    const features = established();
    const at = t0 + 3 * 3_600_000;
    features.roll(at);
    features.add(publish(at, ['org2', 'org9'], 4_095, 'node-z'));
    const window = features.close()!;
    expect(window.values[index('newRecipientShare')]).toBeCloseTo(0.5);
    expect(window.values[index('newRecipientBytesLog')]).toBeCloseTo(12);
    expect(window.values[index('newViaShare')]).toBe(1);
    expect(features.isNewRecipient('org9', at + 1)).toBe(true);
    expect(features.isNewRecipient('org9', at + 3_600_000)).toBe(false);
    expect(features.isNewRecipient('org2', at)).toBe(false);
  });

  it('keeps the most recently used recipients only', () => {
    const features = new OrganizationFeatures('org1', { windowMs, recipientsMax: 3 });
    for (const [i, recipient] of ['a', 'b', 'c', 'a', 'd'].entries())
      features.add(publish(t0 + i, [recipient]));
    expect(features.recipients.size).toBe(3);
    expect(features.recipients.peek('b')).toBeUndefined();
    expect(features.recipients.peek('a')).toBe(t0);
  });
});

describe('RecentMap', () => {
  it('evicts the least recently set key and reports it', () => {
    const map = new RecentMap<number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.set('a', 3);
    expect(map.set('c', 4)).toEqual(['b', 2]);
    expect([...map.entries()]).toEqual([
      ['a', 3],
      ['c', 4],
    ]);
  });
});

describe('FeatureExtractor', () => {
  it('tracks at most organizationsMax organizations, evicting the least recently seen', () => {
    const extractor = new FeatureExtractor({ windowMs, organizationsMax: 2 });
    const seen = (organization: string, at: number): void => {
      extractor.observe({ kind: 'admin', at, node: 'n', organization, action: 'x', outcome: 'OK' });
    };
    seen('org1', t0);
    seen('org2', t0 + 1);
    seen('org1', t0 + 2);
    seen('org3', t0 + 3);
    expect(extractor.size).toBe(2);
    expect(extractor.has('org2')).toBe(false);
    expect(extractor.has('org1')).toBe(true);
    const closed = extractor.closeBefore(t0 + windowMs);
    expect(closed.map((window) => window.organization).sort()).toEqual(['org1', 'org3']);
  });
});
