import { describe, expect, it } from 'vitest';
import { bytesEqual, decodeCanonical, decodeWith, encodeWith } from '../codec/index.js';
import type { SigningKeyPair } from '../crypto/index.js';
import type { AnomalyAlert } from '../intelligence/alert.js';
import { AdminReject, adminTransactionSchema, decodeRegistryResult } from './admin-transactions.js';
import type { AdminAction } from './admin-transactions.js';
import { AlertState } from './alert-state.js';
import type { AlertChange } from './alert-state.js';
import { alertLimits, defaultAlertPolicy, raiseAlertTransaction } from './alerts.js';
import type { AlertPolicy, AlertResponse } from './alerts.js';
import { SystemStateMachine } from './system-state.js';
import {
  SystemHarness,
  adminEntry,
  freshNonce,
  nodeKey,
  nodeOwner,
  outcome,
  signedAdmin,
  signing,
  startTime,
  testGenesis,
} from './testing/fixtures.js';

type Raise = Extract<AdminAction, { kind: 'raiseAlert' }>;

let sequence = 0;

/** A raiseAlert by `node` about `subject` (default: beta, a member), a `flood` warning. */
function raise(node: string, overrides: Partial<Raise> = {}): Raise {
  sequence++;
  return {
    kind: 'raiseAlert',
    id: `${node}-${sequence}`,
    node,
    subject: 'beta',
    topic: 't',
    rule: 'flood',
    severity: 'warning',
    score: '412',
    threshold: '100',
    features: [{ name: 'requests', value: '412', contribution: '4.12' }],
    summary: 'beta sent 412 requests in 10 s (limit 100)',
    firstAt: startTime - 10_000,
    lastAt: startTime,
    observations: 412,
    ...overrides,
  };
}

/** Raised by `node` as its organization, signed with its node key, at `timestamp`. */
function byNode(harness: SystemHarness, action: Raise, timestamp = startTime): string {
  return harness.admin(nodeOwner(action.node), action, { key: nodeKey(action.node), timestamp });
}

/** `refused` for a raise signed as its node would sign it. */
function refusedRaise(harness: SystemHarness, action: Raise): { reason: string; detail: string } {
  return refused(harness, nodeOwner(action.node), action, nodeKey(action.node));
}

function rateLimit(requestsPerSecond: number, durationMs: number): AlertResponse {
  return { kind: 'rateLimit', requestsPerSecond, durationMs };
}

/**
 * Applies `organization`'s `action` signed with `key` (default: the organization's connector key):
 * its reason and detail, checking that nothing changed.
 */
function refused(
  harness: SystemHarness,
  organization: string,
  action: AdminAction,
  key?: SigningKeyPair,
): { reason: string; detail: string } {
  const before = harness.machine.snapshot();
  const index = harness.applied() + 1;
  const result = decodeRegistryResult(
    harness.machine.apply(
      index,
      adminEntry(signedAdmin(organization, action, key === undefined ? {} : { key })),
    ),
  );
  harness.submit(new Uint8Array()); // keeps the harness's index in step with the one just used
  expect(bytesEqual(harness.machine.snapshot(), before)).toBe(true);
  if (result.status !== 'REJECTED') throw new Error('expected a refusal');
  return { reason: result.reason, detail: result.detail ?? '' };
}

function record(machine: SystemStateMachine): AlertChange[] {
  const changes: AlertChange[] = [];
  machine.onAlert((change) => changes.push(change));
  return changes;
}

const policy = (overrides: Partial<AlertPolicy> = {}): AdminAction => ({
  kind: 'setAlertPolicy',
  policy: { ...defaultAlertPolicy, ...overrides },
});

describe('raiseAlert: only a node of the organization it names raises one', () => {
  it('records an alert signed with the node key, making no registry version', () => {
    const harness = new SystemHarness();
    const changes = record(harness.machine);
    const version = harness.machine.latest;
    const action = raise('n1');
    expect(byNode(harness, action)).toBe('OK');
    const { kind: _kind, ...fields } = action;
    expect(harness.machine.alert(action.id)).toEqual({
      ...fields,
      raisedAt: startTime,
      index: 1,
      corroboratedBy: [],
    });
    expect([...harness.machine.alerts()].map((alert) => alert.id)).toEqual([action.id]);
    expect(harness.machine.latest).toBe(version);
    expect(changes).toEqual([{ type: 'raised', alert: harness.machine.alert(action.id) }]);
  });

  it("refuses an organization's own signing key, the supervisor's included (NOT_ALLOWED)", () => {
    const harness = new SystemHarness();
    for (const organization of ['alpha', 'sup']) {
      const { reason, detail } = refused(
        harness,
        organization,
        raise(organization === 'alpha' ? 'n1' : 'n3'),
      );
      expect(reason).toBe(AdminReject.NotAllowed);
      expect(detail).toContain('alerts are raised by nodes');
    }
    expect([...harness.machine.alerts()]).toEqual([]);
  });

  it("refuses another organization's node, an unknown node and another node's key", () => {
    const harness = new SystemHarness();
    // n2 is beta's: alpha cannot name it, whoever signs.
    expect(refused(harness, 'alpha', raise('n2'), nodeKey('n2'))).toMatchObject({
      reason: AdminReject.NotAllowed,
      detail: 'node n2 belongs to beta, not alpha',
    });
    expect(refused(harness, 'alpha', raise('n9'), nodeKey('n9')).reason).toBe(AdminReject.NodeUnknown);
    // n5 is alpha's too, but the transaction names n1.
    expect(refused(harness, 'alpha', raise('n1'), nodeKey('n5'))).toMatchObject({
      reason: AdminReject.NotAllowed,
      detail: 'not signed with the key of node n1',
    });
    // beta's node key cannot raise an alert as alpha.
    expect(refused(harness, 'alpha', raise('n1'), nodeKey('n2')).reason).toBe(AdminReject.NotAllowed);
  });

  it('refuses alerts from the nodes of an organization that is not approved', () => {
    const harness = new SystemHarness();
    expect(
      harness.admin('sup', { kind: 'setOrganizationStatus', organization: 'alpha', status: 'SUSPENDED' }),
    ).toBe('OK');
    expect(refusedRaise(harness, raise('n1')).reason).toBe(AdminReject.NotAllowed);
  });

  it('refuses a second alert with the same id (ALREADY_EXISTS)', () => {
    const harness = new SystemHarness();
    const first = raise('n1');
    expect(byNode(harness, first)).toBe('OK');
    expect(refusedRaise(harness, raise('n1', { id: first.id, rule: 'tampering' })).reason).toBe(
      AdminReject.AlreadyExists,
    );
  });

  it("refuses an id that is not its node's (NOT_ALLOWED): a node cannot take another's ids", () => {
    const harness = new SystemHarness();
    expect(refusedRaise(harness, raise('n1', { id: 'n2-7' }))).toMatchObject({
      reason: AdminReject.NotAllowed,
      detail: expect.stringContaining('n1-') as unknown as string,
    });
    // n1 itself prefixed: "n1-" is no prefix of "n10-…", nor "n1" of "n1x-…".
    expect(refusedRaise(harness, raise('n1', { id: 'n1x-7' })).reason).toBe(AdminReject.NotAllowed);
    expect(byNode(harness, raise('n2', { id: 'n2-7' }))).toBe('OK');
  });
});

describe('raiseAlert: responses within the policy', () => {
  it('refuses a response beyond the policy, naming the limit (NOT_ALLOWED)', () => {
    const harness = new SystemHarness();
    const { requestsPerSecondMin, durationMsMax } = defaultAlertPolicy.rateLimit!;
    expect(
      refusedRaise(harness, raise('n1', { response: rateLimit(requestsPerSecondMin - 1, 1000) })).detail,
    ).toContain(`requestsPerSecondMin ${requestsPerSecondMin}`);
    expect(
      refusedRaise(harness, raise('n1', { response: rateLimit(requestsPerSecondMin, durationMsMax + 1) }))
        .detail,
    ).toContain(`durationMsMax ${durationMsMax}`);
    expect(byNode(harness, raise('n1', { response: rateLimit(requestsPerSecondMin, durationMsMax) }))).toBe(
      'OK',
    );

    expect(harness.admin('sup', policy({ rateLimit: undefined, proposeSuspension: false }))).toBe('OK');
    expect(refusedRaise(harness, raise('n1', { response: rateLimit(100, 1000) })).detail).toBe(
      'the alert policy allows no rateLimit',
    );
    expect(refusedRaise(harness, raise('n1', { response: { kind: 'proposeSuspension' } })).detail).toBe(
      'the alert policy allows no proposeSuspension',
    );
    expect(byNode(harness, raise('n1'))).toBe('OK');
  });

  it('keeps below-minimum severities off the ledger, and responses off supervisors and unknown keys', () => {
    const harness = new SystemHarness();
    expect(refusedRaise(harness, raise('n1', { severity: 'info' })).detail).toBe(
      "severity info is below the policy's ledger minimum warning",
    );
    expect(harness.admin('sup', policy({ ledgerSeverityMin: 'info' }))).toBe('OK');
    expect(byNode(harness, raise('n1', { severity: 'info' }))).toBe('OK');

    const onSupervisor = raise('n1', { subject: 'sup', response: rateLimit(50, 1000) });
    expect(refusedRaise(harness, onSupervisor).reason).toBe(AdminReject.NotAllowed);
    expect(byNode(harness, { ...onSupervisor, response: undefined })).toBe('OK');
    expect(
      refusedRaise(harness, raise('n1', { subject: '', rule: 'unknown-key', response: rateLimit(50, 1) }))
        .reason,
    ).toBe(AdminReject.OrganizationUnknown);
    expect(byNode(harness, raise('n1', { subject: '', rule: 'unknown-key' }))).toBe('OK');
  });

  it('lets only an approved supervisor set the policy and acknowledge alerts', () => {
    const harness = new SystemHarness();
    const alert = raise('n1');
    expect(byNode(harness, alert)).toBe('OK');
    for (const organization of ['alpha', 'aud']) {
      expect(refused(harness, organization, policy({ proposeSuspension: false })).reason).toBe(
        AdminReject.NotAllowed,
      );
      expect(refused(harness, organization, { kind: 'ackAlert', id: alert.id }).reason).toBe(
        AdminReject.NotAllowed,
      );
    }
    expect(harness.machine.alertPolicy()).toEqual(defaultAlertPolicy);
    expect(harness.admin('sup', { kind: 'ackAlert', id: 'nope' })).toBe(AdminReject.AlertUnknown);
    expect(harness.admin('sup', { kind: 'ackAlert', id: alert.id, note: 'known batch job' })).toBe('OK');
    expect(harness.machine.alert(alert.id)?.ack).toEqual({
      by: 'sup',
      at: startTime,
      note: 'known batch job',
    });
    expect(harness.admin('sup', { kind: 'ackAlert', id: alert.id })).toBe(AdminReject.AlreadyExists);
    expect(harness.admin('sup', policy({ proposeSuspension: false }))).toBe('OK');
    expect(harness.machine.alertPolicy().proposeSuspension).toBe(false);
  });
});

describe('corroboration', () => {
  it("records another node's alert of the same subject and rule within the window as corroboration", () => {
    const harness = new SystemHarness();
    const changes = record(harness.machine);
    const first = raise('n1');
    expect(byNode(harness, first)).toBe('OK');
    const second = raise('n2');
    const result = decodeRegistryResult(
      harness.machine.apply(
        harness.applied() + 1,
        adminEntry(
          signedAdmin('beta', second, {
            key: nodeKey('n2'),
            timestamp: startTime + alertLimits.corroborateWindowMs - 1,
          }),
        ),
      ),
    );
    harness.submit(new Uint8Array());
    expect(result).toEqual({ status: 'OK', detail: `corroborates alert ${first.id}` });
    expect(harness.machine.alert(second.id)).toBeUndefined();
    expect(harness.machine.alert(first.id)?.corroboratedBy).toEqual(['n2']);
    expect(changes.at(-1)).toMatchObject({ type: 'corroborated', node: 'n2', alert: { id: first.id } });

    // The same node again is a new alert, not a corroboration of its own.
    const again = raise('n1');
    expect(byNode(harness, again)).toBe('OK');
    expect(harness.machine.alert(again.id)?.corroboratedBy).toEqual([]);
    // Another rule or subject is another alert.
    expect(byNode(harness, raise('n3', { rule: 'tampering' }))).toBe('OK');
    expect(byNode(harness, raise('n3', { subject: 'alpha' }))).toBe('OK');
    expect([...harness.machine.alerts()]).toHaveLength(4);
  });

  it('starts a new alert once the window has passed or the open one was acknowledged', () => {
    const harness = new SystemHarness();
    const first = raise('n1');
    expect(byNode(harness, first)).toBe('OK');
    const late = raise('n2');
    expect(byNode(harness, late, startTime + alertLimits.corroborateWindowMs)).toBe('OK');
    expect(harness.machine.alert(late.id)).toBeDefined();

    expect(harness.admin('sup', { kind: 'ackAlert', id: late.id })).toBe('OK');
    const afterAck = raise('n3');
    expect(byNode(harness, afterAck, startTime + alertLimits.corroborateWindowMs)).toBe('OK');
    expect(harness.machine.alert(afterAck.id)).toBeDefined();
    expect(harness.machine.alert(late.id)?.corroboratedBy).toEqual([]);
  });
});

describe('rate-limit responses', () => {
  it('impose the lowest unacknowledged, unexpired quota; an ack lifts one, and each expires', () => {
    const harness = new SystemHarness();
    const loose = raise('n1', { response: rateLimit(80, 60_000) });
    const tight = raise('n2', { rule: 'replay-burst', response: rateLimit(30, 10_000) });
    expect(byNode(harness, loose)).toBe('OK');
    expect(harness.machine.activeRateLimit('beta', startTime)).toBe(80);
    expect(byNode(harness, tight)).toBe('OK');
    expect(harness.machine.activeRateLimit('beta', startTime + 9_999)).toBe(30);
    expect(harness.machine.activeRateLimit('alpha', startTime)).toBeUndefined();
    // The tight one expires first; then the loose one applies until it expires too.
    expect(harness.machine.activeRateLimit('beta', startTime + 10_000)).toBe(80);
    expect(harness.machine.activeRateLimit('beta', startTime + 60_000)).toBeUndefined();

    expect(harness.admin('sup', { kind: 'ackAlert', id: tight.id })).toBe('OK');
    expect(harness.machine.activeRateLimit('beta', startTime + 5_000)).toBe(80);
    expect(harness.admin('sup', { kind: 'ackAlert', id: loose.id })).toBe('OK');
    expect(harness.machine.activeRateLimit('beta', startTime + 5_000)).toBeUndefined();
  });

  it("impose nothing while dated ahead of the reader's clock by more than the allowed skew", () => {
    const harness = new SystemHarness();
    // A node's clock (or a lie) dates its alert a year ahead: the response must not wait until then.
    const year = 365 * 24 * 3_600_000;
    const future = raise('n1', { response: rateLimit(20, 60_000) });
    expect(byNode(harness, future, startTime + year)).toBe('OK');
    expect(harness.machine.activeRateLimit('beta', startTime)).toBeUndefined();
    expect(harness.machine.activeRateLimit('beta', startTime + year)).toBe(20);
    // Within the skew it applies at once, and for its duration from the date it carries.
    const skewed = raise('n2', { rule: 'replay-burst', response: rateLimit(30, 120_000) });
    expect(byNode(harness, skewed, startTime + 60_000)).toBe('OK');
    expect(harness.machine.activeRateLimit('beta', startTime)).toBe(30);
    expect(harness.machine.activeRateLimit('beta', startTime + 179_999)).toBe(30);
    expect(harness.machine.activeRateLimit('beta', startTime + 180_000)).toBeUndefined();
  });
});

describe('AlertState bounds', () => {
  it(`keeps at most ${alertLimits.alertsKept} alerts, dropping the oldest and its rate limit`, () => {
    const state = new AlertState();
    const first = raise('n1', { response: rateLimit(40, 60_000) });
    state.raise(first, startTime, 1);
    // Each from its own subject so none corroborates another.
    for (let n = 0; n < alertLimits.alertsKept - 1; n++) {
      state.raise(raise('n1', { subject: `s${n}` }), startTime, n + 2);
    }
    expect(state.size).toBe(alertLimits.alertsKept);
    expect(state.activeRateLimit('beta', startTime)).toBe(40);
    const last = raise('n1', { subject: 'last' });
    expect(state.raise(last, startTime, alertLimits.alertsKept + 1).type).toBe('raised');
    expect(state.size).toBe(alertLimits.alertsKept);
    expect(state.get(first.id)).toBeUndefined();
    expect(state.get(last.id)).toBeDefined();
    expect(state.activeRateLimit('beta', startTime)).toBeUndefined();
    expect(state.all().next().value?.subject).toBe('s0');
  });

  it('pages oldest first from an index, or newest first, filtered', () => {
    const state = new AlertState();
    const actions = [raise('n1'), raise('n1', { subject: 'alpha' }), raise('n1'), raise('n1')];
    actions.forEach((action, n) => state.raise(action, startTime + n * 1000, 10 + n));
    const ids = (page: { alerts: { id: string }[] }): string[] => page.alerts.map((alert) => alert.id);
    expect(state.page({ fromIndex: 11, limit: 2 })).toMatchObject({ more: true });
    expect(ids(state.page({ fromIndex: 11, limit: 2 }))).toEqual([actions[1]!.id, actions[2]!.id]);
    expect(ids(state.page({ subject: 'beta', newestFirst: true, limit: 2 }))).toEqual([
      actions[3]!.id,
      actions[2]!.id,
    ]);
    expect(ids(state.page({ sinceMs: startTime + 2000, limit: 10 }))).toEqual([
      actions[2]!.id,
      actions[3]!.id,
    ]);
    expect(state.page({ id: actions[0]!.id, limit: 10 }).alerts).toHaveLength(1);
    expect(state.page({ sinceMs: startTime + 2000, limit: 10 }).more).toBe(false);
  });
});

describe('alerts in snapshots', () => {
  it('restore into a fresh machine with the same alerts, policy and quotas', () => {
    const harness = new SystemHarness();
    expect(harness.admin('sup', policy({ ledgerSeverityMin: 'critical' }))).toBe('OK');
    const action = raise('n1', { severity: 'critical', response: rateLimit(25, 60_000) });
    expect(byNode(harness, action)).toBe('OK');
    expect(byNode(harness, raise('n2', { severity: 'critical' }))).toBe('OK');
    const snapshot = harness.machine.snapshot();

    const restored = new SystemStateMachine(testGenesis());
    const changes = record(restored);
    restored.restore(harness.applied(), snapshot);
    expect(changes).toEqual([{ type: 'reset' }]);
    expect([...restored.alerts()]).toEqual([...harness.machine.alerts()]);
    expect(restored.alertPolicy().ledgerSeverityMin).toBe('critical');
    expect(restored.activeRateLimit('beta', startTime)).toBe(25);
    const alertsOf = (bytes: Uint8Array): unknown =>
      (decodeCanonical(bytes) as Record<string, unknown>)['alerts'];
    expect(alertsOf(restored.snapshot())).toEqual(alertsOf(snapshot));
    // Corroboration goes on after a restore as before it.
    const third = raise('n3', { severity: 'critical' });
    expect(
      outcome(
        restored.apply(harness.applied() + 1, adminEntry(signedAdmin('sup', third, { key: nodeKey('n3') }))),
      ),
    ).toBe('OK');
    expect(restored.alert(action.id)?.corroboratedBy).toEqual(['n2', 'n3']);
  });

  it('leave a snapshot without alerts as it was before they existed, and such a snapshot restores', () => {
    const harness = new SystemHarness();
    const plain = harness.machine.snapshot();
    expect(Object.keys(decodeCanonical(plain) as Record<string, unknown>)).not.toContain('alerts');

    const withAlerts = new SystemHarness();
    expect(withAlerts.admin('sup', policy({ proposeSuspension: false }))).toBe('OK');
    expect(byNode(withAlerts, raise('n1', { response: rateLimit(40, 60_000) }))).toBe('OK');
    expect(Object.keys(decodeCanonical(withAlerts.machine.snapshot()) as Record<string, unknown>)).toContain(
      'alerts',
    );
    withAlerts.machine.restore(0, plain);
    expect([...withAlerts.machine.alerts()]).toEqual([]);
    expect(withAlerts.machine.alertPolicy()).toEqual(defaultAlertPolicy);
    expect(withAlerts.machine.activeRateLimit('beta', startTime)).toBeUndefined();
  });
});

describe('raiseAlertTransaction', () => {
  const detected: AnomalyAlert = {
    organization: 'beta',
    topic: 't',
    rule: 'model',
    severity: 'critical',
    score: 0.87314159,
    threshold: 2 / 3,
    features: Array.from({ length: 12 }, (_, n) => ({
      name: n === 0 ? 'x'.repeat(100) : `f${n}`,
      value: n === 1 ? Infinity : n === 2 ? Number.NaN : 1234567.89,
      contribution: 1e-9 / 3,
    })),
    summary: `${'s'.repeat(alertLimits.summaryLengthMax - 1)}😀 and more`,
    firstAt: startTime - 5000.4,
    lastAt: startTime,
    observations: 17,
    suggested: 'rateLimit',
  };

  it('signs with the node key an alert the registry accepts, numbers as decimals, text within limits', () => {
    const transaction = raiseAlertTransaction(
      {
        alert: detected,
        id: 'n1-1',
        node: 'n1',
        organization: 'alpha',
        response: rateLimit(20, 60_000),
        nonce: freshNonce(),
        timestamp: startTime,
      },
      signing.signer(nodeKey('n1')),
    );
    const action = transaction.action as Raise;
    expect(action.score).toBe('0.873142');
    expect(action.threshold).toBe('0.666667');
    expect(action.features).toHaveLength(alertLimits.featuresMax);
    expect(action.features[0]!.name).toHaveLength(64);
    expect(action.features.slice(1, 4).map((feature) => feature.value)).toEqual([
      '1.79769e+308',
      '0',
      '1234570',
    ]);
    expect(action.features[0]!.contribution).toBe('3.33333e-10');
    // Cut before the emoji rather than through it.
    expect(action.summary).toHaveLength(alertLimits.summaryLengthMax - 1);
    expect(action.firstAt).toBe(startTime - 5000);
    expect(transaction.signerKey).toEqual(nodeKey('n1').publicKey);
    // It encodes, and the registry takes it.
    const bytes = encodeWith(adminTransactionSchema, transaction);
    const harness = new SystemHarness();
    expect(harness.submit(adminEntry(decodeWith(adminTransactionSchema, bytes)))).toBe('OK');
    expect(harness.machine.activeRateLimit('beta', startTime)).toBe(20);
  });
});
