import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesEqual, decodeCanonical } from '../codec/index.js';
import { AdminReject } from './admin-transactions.js';
import type { AdminAction } from './admin-transactions.js';
import type { CatalogChange } from './catalog-state.js';
import type { CatalogEntry } from './catalog.js';
import { SystemStateMachine } from './system-state.js';
import {
  SystemHarness,
  adminEntry,
  connectorKey,
  encryptionKey,
  outcome,
  signedAdmin,
  startTime,
  testGenesis,
} from './testing/fixtures.js';

type Publish = Extract<AdminAction, { kind: 'catalogPublish' }>;

function publish(dataset: string, version: number, overrides: Partial<Publish> = {}): Publish {
  return {
    kind: 'catalogPublish',
    dataset,
    version,
    domain: 'finance',
    title: `Loans book ${dataset}`,
    description: 'Monthly loan repayments by region, with late payment flags.',
    tags: ['loans', 'credit'],
    columns: [
      { name: 'region', type: 'text' },
      { name: 'amount', type: 'real' },
      { name: 'late', type: 'boolean' },
    ],
    rowCount: 1200,
    contentHash: new Uint8Array(32).fill(version),
    policy: {
      allowedColumns: ['region', 'amount', 'late'],
      aggregates: ['count', 'avg'],
      models: ['logistic'],
      minGroupSize: 10,
      approval: 'auto',
    },
    ...overrides,
  };
}

function withdraw(dataset: string): AdminAction {
  return { kind: 'catalogWithdraw', dataset };
}

function setStatus(organization: string, status: 'APPROVED' | 'SUSPENDED' | 'REVOKED'): AdminAction {
  return { kind: 'setOrganizationStatus', organization, status };
}

/** Applies the entry and checks it is refused with `reason` and changes nothing (snapshot bytes equal). */
function expectRefused(
  harness: SystemHarness,
  organization: string,
  action: AdminAction,
  reason: string,
): string {
  const before = harness.machine.snapshot();
  const data = adminEntry(signedAdmin(organization, action));
  const result = harness.machine.apply(harness.applied() + 1, data);
  harness.submit(new Uint8Array()); // keeps the harness's index in step with the one just used
  expect(outcome(result)).toBe(reason);
  expect(bytesEqual(harness.machine.snapshot(), before)).toBe(true);
  return new TextDecoder().decode(result);
}

function record(machine: SystemStateMachine): CatalogChange[] {
  const changes: CatalogChange[] = [];
  machine.onCatalogChange((change) => changes.push(change));
  return changes;
}

describe('the data catalog in the __system state machine', () => {
  it('publishes, updates, withdraws and republishes, continuing the version numbers', () => {
    const harness = new SystemHarness();
    const changes = record(harness.machine);
    const versionBefore = harness.machine.latest;

    expect(harness.admin('alpha', publish('loans', 1))).toBe('OK');
    const first = harness.machine.catalogEntry('alpha', 'loans')!;
    expect(first).toMatchObject({
      owner: 'alpha',
      dataset: 'loans',
      version: 1,
      index: 1,
      publishedAt: startTime,
    });
    expect(first.columns.map((column) => column.name)).toEqual(['region', 'amount', 'late']);
    // A catalog change is not a registry change: no new version, no copy of anything.
    expect(harness.machine.latest).toBe(versionBefore);

    expect(harness.admin('alpha', publish('loans', 2, { title: 'Loans book, revised' }))).toBe('OK');
    expect(harness.machine.catalogEntry('alpha', 'loans')).toMatchObject({
      version: 2,
      title: 'Loans book, revised',
      index: 2,
    });

    expect(harness.admin('alpha', withdraw('loans'))).toBe('OK');
    expect(harness.machine.catalogEntry('alpha', 'loans')).toBeUndefined();
    expect([...harness.machine.catalogEntries()]).toEqual([]);

    // After a withdrawal the numbering goes on from the last version: 1 again would be a conflict.
    const detail = expectRefused(harness, 'alpha', publish('loans', 1), AdminReject.VersionConflict);
    expect(detail).toContain('alpha/loans was withdrawn at version 2: publish version 3');
    expect(harness.admin('alpha', publish('loans', 3))).toBe('OK');
    expect(harness.machine.catalogEntry('alpha', 'loans')?.version).toBe(3);

    expect(changes.map((change) => [change.type, change.type === 'reset' ? '' : change.key])).toEqual([
      ['put', 'alpha/loans'],
      ['put', 'alpha/loans'],
      ['delete', 'alpha/loans'],
      ['put', 'alpha/loans'],
    ]);
  });

  it('refuses any version but the next one, naming the expected version (VERSION_CONFLICT)', () => {
    const harness = new SystemHarness();
    expect(expectRefused(harness, 'alpha', publish('loans', 2), AdminReject.VersionConflict)).toContain(
      'alpha/loans is not in the catalog: publish version 1, not 2',
    );
    expect(harness.admin('alpha', publish('loans', 1))).toBe('OK');
    expect(expectRefused(harness, 'alpha', publish('loans', 1), AdminReject.VersionConflict)).toContain(
      'alpha/loans is at version 1: publish version 2, not 1',
    );
    expectRefused(harness, 'alpha', publish('loans', 3), AdminReject.VersionConflict);
    // Entries are per owner: beta's "loans" is a new entry of its own.
    expect(harness.admin('beta', publish('loans', 1))).toBe('OK');
    expect([...harness.machine.catalogEntries()].map((entry) => entry.owner).sort()).toEqual([
      'alpha',
      'beta',
    ]);
  });

  it('refuses publishers that are not approved members (NOT_ALLOWED), and what they withdraw', () => {
    const harness = new SystemHarness();
    expect(harness.admin('alpha', publish('loans', 1))).toBe('OK');
    // aud is approved but only an auditor.
    expect(expectRefused(harness, 'aud', publish('audits', 1), AdminReject.NotAllowed)).toContain(
      'only members',
    );
    // A pending registration may not publish.
    expect(
      harness.admin('gamma', {
        kind: 'registerOrganization',
        roles: ['member'],
        signingKeys: [connectorKey('gamma').publicKey],
        encryptionKey: encryptionKey('gamma'),
      }),
    ).toBe('OK');
    expectRefused(harness, 'gamma', publish('g', 1), AdminReject.NotAllowed);
    // A suspended member may neither publish nor withdraw; its entry stays (search hides it).
    expect(harness.admin('sup', setStatus('alpha', 'SUSPENDED'))).toBe('OK');
    expect(expectRefused(harness, 'alpha', publish('loans', 2), AdminReject.NotAllowed)).toContain(
      'SUSPENDED',
    );
    expectRefused(harness, 'alpha', withdraw('loans'), AdminReject.NotAllowed);
    expect(harness.machine.catalogEntry('alpha', 'loans')?.version).toBe(1);
    expect(harness.admin('sup', setStatus('alpha', 'APPROVED'))).toBe('OK');
    expect(harness.admin('alpha', publish('loans', 2))).toBe('OK');
    // Revoked for good.
    expect(harness.admin('sup', setStatus('beta', 'REVOKED'))).toBe('OK');
    expectRefused(harness, 'beta', publish('b', 1), AdminReject.NotAllowed);
  });

  it('refuses a withdrawal of an unknown or already withdrawn entry (DATASET_UNKNOWN), also of another owner', () => {
    const harness = new SystemHarness();
    expectRefused(harness, 'alpha', withdraw('loans'), AdminReject.DatasetUnknown);
    expect(harness.admin('alpha', publish('loans', 1))).toBe('OK');
    // beta cannot withdraw alpha's entry: a withdrawal names the actor's own dataset.
    expectRefused(harness, 'beta', withdraw('loans'), AdminReject.DatasetUnknown);
    expect(harness.admin('alpha', withdraw('loans'))).toBe('OK');
    expect(expectRefused(harness, 'alpha', withdraw('loans'), AdminReject.DatasetUnknown)).toContain(
      'already withdrawn',
    );
  });

  it('refuses a policy allowing columns the dataset lacks (BAD_POLICY) and columns listed twice', () => {
    const harness = new SystemHarness();
    const base = publish('loans', 1);
    expect(
      expectRefused(
        harness,
        'alpha',
        { ...base, policy: { ...base.policy, allowedColumns: ['region', 'salary'] } },
        AdminReject.BadPolicy,
      ),
    ).toContain('salary');
    expectRefused(
      harness,
      'alpha',
      { ...base, columns: [...base.columns, { name: 'region', type: 'integer' }] },
      AdminReject.Malformed,
    );
    // A policy allowing fewer columns than the dataset has is fine.
    expect(harness.admin('alpha', { ...base, policy: { ...base.policy, allowedColumns: ['region'] } })).toBe(
      'OK',
    );
  });

  it('refuses catalog actions in a topic group and malformed descriptions', () => {
    const harness = new SystemHarness();
    // A field out of its schema does not even decode: MALFORMED.
    const tooLong = publish('loans', 1, { title: 'x'.repeat(201) });
    expect(() => signedAdmin('alpha', tooLong)).toThrow(/title/);
    const signed = signedAdmin('alpha', publish('loans', 1), { group: 'topic:t' });
    expect(harness.submit(adminEntry(signed))).toBe(AdminReject.WrongGroup);
  });
});

describe('the catalog in snapshots', () => {
  function populated(): SystemHarness {
    const harness = new SystemHarness();
    expect(harness.admin('alpha', publish('loans', 1))).toBe('OK');
    expect(harness.admin('alpha', publish('loans', 2))).toBe('OK');
    expect(harness.admin('beta', publish('claims', 1, { domain: 'insurance' }))).toBe('OK');
    expect(harness.admin('beta', publish('old', 1))).toBe('OK');
    expect(harness.admin('beta', publish('old', 2))).toBe('OK');
    expect(harness.admin('beta', withdraw('old'))).toBe('OK');
    return harness;
  }

  it('round-trips the entries and the withdrawn versions, and tells listeners to rebuild', () => {
    const harness = populated();
    const snapshot = harness.machine.snapshot();
    const fresh = new SystemStateMachine(testGenesis());
    const changes = record(fresh);
    fresh.restore(harness.applied(), snapshot);
    expect(catalogPart(fresh.snapshot())).toEqual(catalogPart(snapshot));
    const keys = (machine: SystemStateMachine): string[] =>
      [...machine.catalogEntries()].map((entry) => `${entry.owner}/${entry.dataset}@${entry.version}`).sort();
    expect(keys(fresh)).toEqual(['alpha/loans@2', 'beta/claims@1']);
    expect(fresh.catalogEntry('alpha', 'loans')).toEqual(harness.machine.catalogEntry('alpha', 'loans'));
    expect(changes).toHaveLength(1);
    const reset = changes[0]!;
    expect(reset.type).toBe('reset');
    expect(reset.type === 'reset' ? reset.entries.length : 0).toBe(2);
    // The withdrawn version travelled: old continues at 3 on the restored machine too.
    const next = adminEntry(signedAdmin('beta', publish('old', 2)));
    expect(outcome(fresh.apply(harness.applied() + 1, next))).toBe(AdminReject.VersionConflict);
    expect(
      outcome(fresh.apply(harness.applied() + 2, adminEntry(signedAdmin('beta', publish('old', 3))))),
    ).toBe('OK');
  });

  it('leaves the catalog out while empty, and restores a snapshot without one as an empty catalog', () => {
    const empty = new SystemHarness();
    expect(empty.admin('sup', setStatus('beta', 'SUSPENDED'))).toBe('OK');
    const before = empty.machine.snapshot();
    // Without a catalog the snapshot has no catalog field at all, as before the catalog existed.
    const fields = decodeCanonical(before, { maxBytes: 1 << 24 }) as Record<string, unknown>;
    expect(Object.keys(fields).sort()).toEqual(['network', 'replayWindow', 'versions']);
    const populatedMachine = populated().machine;
    const changes = record(populatedMachine);
    populatedMachine.restore(empty.applied(), before);
    expect([...populatedMachine.catalogEntries()]).toEqual([]);
    expect(changes).toEqual([{ type: 'reset', entries: [] }]);
    expect(bytesEqual(populatedMachine.snapshot(), before)).toBe(true);
  });
});

describe('the catalog: determinism (property)', () => {
  const organizations = ['alpha', 'beta', 'aud'];
  const datasets = ['loans', 'claims'];
  // Signing is the slow part: every action signed once, then drawn.
  const pool: Uint8Array[] = [];
  for (const organization of organizations) {
    for (const dataset of datasets) {
      for (let version = 1; version <= 3; version++) {
        pool.push(adminEntry(signedAdmin(organization, publish(dataset, version))));
      }
      pool.push(adminEntry(signedAdmin(organization, withdraw(dataset))));
    }
  }
  pool.push(adminEntry(signedAdmin('sup', setStatus('alpha', 'SUSPENDED'))));
  pool.push(adminEntry(signedAdmin('sup', setStatus('alpha', 'APPROVED'))));

  it('the same entries give the same results, catalog and snapshot, and a restore agrees', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(pool.length - 1), { maxLength: 40 }), (picks) => {
        const one = new SystemStateMachine(testGenesis());
        const two = new SystemStateMachine(testGenesis());
        const mirror = new Map<string, CatalogEntry>();
        one.onCatalogChange((change) => {
          if (change.type === 'put') mirror.set(change.key, change.entry);
          else if (change.type === 'delete') mirror.delete(change.key);
        });
        picks.forEach((pick, i) => {
          const a = one.apply(i + 1, pool[pick]!);
          const b = two.apply(i + 1, pool[pick]!);
          expect(bytesEqual(a, b)).toBe(true);
        });
        expect(bytesEqual(one.snapshot(), two.snapshot())).toBe(true);
        // The changes the listeners heard add up to the catalog.
        expect([...mirror.values()].sort(byKey)).toEqual([...one.catalogEntries()].sort(byKey));
        for (const entry of one.catalogEntries()) {
          expect(entry.version).toBeGreaterThanOrEqual(1);
        }
        const restored = new SystemStateMachine(testGenesis());
        restored.restore(picks.length, one.snapshot());
        expect(catalogPart(restored.snapshot())).toEqual(catalogPart(one.snapshot()));
        expect([...restored.catalogEntries()].sort(byKey)).toEqual([...one.catalogEntries()].sort(byKey));
      }),
      { numRuns: 100 },
    );
  });
});

/**
 * The catalog and replay window of a snapshot, decoded. (A restore at an index past the last registry
 * version adds a version at that index, so whole snapshots differ in that one version.)
 */
function catalogPart(snapshot: Uint8Array): unknown {
  const fields = decodeCanonical(snapshot, { maxBytes: 1 << 26 }) as Record<string, unknown>;
  return { catalog: fields['catalog'], replayWindow: fields['replayWindow'] };
}

function byKey(a: CatalogEntry, b: CatalogEntry): number {
  const left = `${a.owner}/${a.dataset}`;
  const right = `${b.owner}/${b.dataset}`;
  return left < right ? -1 : left > right ? 1 : 0;
}
