/**
 * Alerts as the __system state machine holds them (DESIGN §9; their shapes are alerts.ts'): the
 * alerts nodes raised, newest last and at most `alertLimits.alertsKept` of them, and the policy a
 * supervisor set. Like the data catalog it lives beside the registry versions, not in them: nothing
 * reads an old alert list, and the request path asks `activeRateLimit` on every request, which must
 * not copy anything.
 *
 * Every rule here is applied in log order from the transactions alone (their timestamps, never a
 * local clock), so every node holds the same alerts. Only `activeRateLimit` takes the caller's time:
 * it answers, it changes nothing.
 */
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { AdminReject } from './admin-transactions.js';
import type { AdminAction } from './admin-transactions.js';
import { alertLimits, alertPolicySchema, alertRecordSchema, defaultAlertPolicy } from './alert-schemas.js';
import type { AlertPolicy, AlertRecord } from './alert-schemas.js';

type RaiseAction = Extract<AdminAction, { kind: 'raiseAlert' }>;

export type AlertChange =
  /** A new alert was recorded. */
  | { readonly type: 'raised'; readonly alert: AlertRecord }
  /** Another node raised the same subject and rule while `alert` was open: it names that node now. */
  | { readonly type: 'corroborated'; readonly alert: AlertRecord; readonly node: string }
  | { readonly type: 'acked'; readonly alert: AlertRecord }
  | { readonly type: 'policy'; readonly policy: AlertPolicy }
  /** Everything was replaced (a snapshot was restored). */
  | { readonly type: 'reset' };

export type AlertListener = (change: AlertChange) => void;

/** Why an alert action is refused: a registry reason code and a sentence for whoever sent it. */
export interface AlertProblem {
  readonly reason: string;
  readonly detail: string;
}

const severityRank = { info: 0, warning: 1, critical: 2 } as const;
/**
 * How far ahead of the reader's clock an alert's date (its signer's own timestamp) may be for its
 * response to apply: past it, a node could date an alert years ahead and throttle until acknowledged.
 */
export const alertClockSkewMsMax = 60_000;
/** `corroboratedBy`'s bound in the record schema. */
const alertCorroboratorsMax = 64;

/** The alerts in a __system snapshot; optional there, so snapshots from before them still decode. */
export const alertSnapshotSchema = t.record({
  /** Oldest first (log order). */
  alerts: t.array(alertRecordSchema, { maxItems: alertLimits.alertsKept }),
  /** Absent while no supervisor has set one (the default applies). */
  policy: t.optional(alertPolicySchema),
});
export type AlertSnapshot = Infer<typeof alertSnapshotSchema>;

/** What one alertList page selects (see `AlertState.page`). */
export interface AlertQuery {
  /** Only alerts about this organization (their subject). */
  readonly subject?: string;
  /** Only alerts raised at or after this time (ms, the raising transaction's timestamp). */
  readonly sinceMs?: number;
  /** Only alerts at this __system index or later. */
  readonly fromIndex?: number;
  readonly id?: string;
  /** The newest `limit` matches, newest first; otherwise the oldest `limit` from `fromIndex`, oldest first. */
  readonly newestFirst?: boolean;
  readonly limit: number;
}

export class AlertState {
  /** By id, in log order (a Map keeps insertion order): at most `alertsKept`, the oldest dropped first. */
  private readonly records = new Map<string, AlertRecord>();
  /**
   * `subject rule` → id of the latest alert of that subject and rule: what a new one may corroborate.
   * Only alerts in `records`: leaves with its alert.
   */
  private readonly latestOf = new Map<string, string>();
  /** Subject → ids of its alerts that carry a rate-limit response (acked and dropped ones leave). */
  private readonly rateLimited = new Map<string, Set<string>>();
  private currentPolicy: AlertPolicy | undefined;
  /** One per subscriber, removed by the function `onChange` returns. */
  private readonly listeners = new Set<AlertListener>();

  get size(): number {
    return this.records.size;
  }

  get(id: string): AlertRecord | undefined {
    return this.records.get(id);
  }

  /** Every alert kept, oldest first. */
  all(): IterableIterator<AlertRecord> {
    return this.records.values();
  }

  /** The policy in force: the supervisor's, or `defaultAlertPolicy`. */
  policy(): AlertPolicy {
    return this.currentPolicy ?? defaultAlertPolicy;
  }

  onChange(listener: AlertListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify(change: AlertChange): void {
    for (const listener of this.listeners) listener(change);
  }

  /**
   * The request quota (requests/s) alerts impose on `organization` at `nowMs`: the lowest of its
   * unacknowledged rate-limit responses that have not expired, or undefined when none applies. A
   * response dated more than `alertClockSkewMsMax` after `nowMs` imposes nothing (yet).
   */
  activeRateLimit(organization: string, nowMs: number): number | undefined {
    const ids = this.rateLimited.get(organization);
    if (ids === undefined) return undefined;
    let lowest: number | undefined;
    for (const id of ids) {
      const alert = this.records.get(id);
      const response = alert?.response;
      if (alert === undefined || response?.kind !== 'rateLimit') continue;
      if (alert.raisedAt > nowMs + alertClockSkewMsMax) continue;
      if (nowMs >= alert.raisedAt + response.durationMs) continue;
      if (lowest === undefined || response.requestsPerSecond < lowest) lowest = response.requestsPerSecond;
    }
    return lowest;
  }

  /**
   * Why `action`, raised at `timestamp`, may not be recorded, or undefined: its severity must reach
   * the policy's ledger minimum, its id be new and start with its node's id (`<node>-`), and its
   * response be one the policy allows, about a registered organization that is not a supervisor (a
   * node may not throttle the party that acknowledges alerts).
   */
  raiseProblem(
    action: RaiseAction,
    subject: { readonly registered: boolean; readonly supervisor: boolean },
  ): AlertProblem | undefined {
    const policy = this.policy();
    if (severityRank[action.severity] < severityRank[policy.ledgerSeverityMin]) {
      return {
        reason: AdminReject.NotAllowed,
        detail: `severity ${action.severity} is below the policy's ledger minimum ${policy.ledgerSeverityMin}`,
      };
    }
    // Ids are the raising node's own: another node cannot take one first (ALREADY_EXISTS for it).
    if (!action.id.startsWith(`${action.node}-`)) {
      return {
        reason: AdminReject.NotAllowed,
        detail: `alert id ${action.id} must start with ${action.node}-`,
      };
    }
    if (this.records.has(action.id)) {
      return { reason: AdminReject.AlreadyExists, detail: `alert ${action.id}` };
    }
    if (action.lastAt < action.firstAt) {
      return { reason: AdminReject.Malformed, detail: 'lastAt is before firstAt' };
    }
    const response = action.response;
    if (response === undefined) return undefined;
    if (!subject.registered) {
      return {
        reason: AdminReject.OrganizationUnknown,
        detail: `a response needs a registered subject, not ${JSON.stringify(action.subject)}`,
      };
    }
    if (subject.supervisor) {
      return {
        reason: AdminReject.NotAllowed,
        detail: `${action.subject} is a supervisor: alerts about it carry no response`,
      };
    }
    if (response.kind === 'proposeSuspension') {
      return policy.proposeSuspension
        ? undefined
        : { reason: AdminReject.NotAllowed, detail: 'the alert policy allows no proposeSuspension' };
    }
    const limits = policy.rateLimit;
    if (limits === undefined) {
      return { reason: AdminReject.NotAllowed, detail: 'the alert policy allows no rateLimit' };
    }
    if (response.requestsPerSecond < limits.requestsPerSecondMin) {
      return {
        reason: AdminReject.NotAllowed,
        detail: `rateLimit ${response.requestsPerSecond}/s is below the policy's requestsPerSecondMin ${limits.requestsPerSecondMin}`,
      };
    }
    if (response.durationMs > limits.durationMsMax) {
      return {
        reason: AdminReject.NotAllowed,
        detail: `rateLimit for ${response.durationMs} ms is longer than the policy's durationMsMax ${limits.durationMsMax}`,
      };
    }
    return undefined;
  }

  /**
   * Records `action` (checked by `raiseProblem`), raised at `raisedAt` at __system `index`: as
   * corroboration of the latest open alert of the same subject and rule raised less than
   * `corroborateWindowMs` apart by another node, else as a new alert (dropping the oldest past the
   * bound). The first alert's response stands; a corroboration adds only its node.
   */
  raise(action: RaiseAction, raisedAt: number, index: number): AlertChange {
    const key = `${action.subject} ${action.rule}`;
    const open = this.records.get(this.latestOf.get(key) ?? '');
    if (
      open !== undefined &&
      open.ack === undefined &&
      Math.abs(raisedAt - open.raisedAt) < alertLimits.corroborateWindowMs &&
      open.node !== action.node &&
      !open.corroboratedBy.includes(action.node) &&
      open.corroboratedBy.length < alertCorroboratorsMax
    ) {
      const alert: AlertRecord = { ...open, corroboratedBy: [...open.corroboratedBy, action.node] };
      this.records.set(alert.id, alert);
      return { type: 'corroborated', alert, node: action.node };
    }
    const { kind: _kind, ...fields } = action;
    const alert: AlertRecord = { ...fields, raisedAt, index, corroboratedBy: [] };
    this.add(alert);
    while (this.records.size > alertLimits.alertsKept) this.drop(this.records.keys().next().value!);
    return { type: 'raised', alert };
  }

  /** Why alert `id` may not be acknowledged, or undefined. */
  ackProblem(id: string): AlertProblem | undefined {
    const alert = this.records.get(id);
    if (alert === undefined) {
      return {
        reason: AdminReject.AlertUnknown,
        detail: `no alert ${id} (never raised, or one of the oldest, no longer kept); list them with ledgerbus alerts list`,
      };
    }
    if (alert.ack !== undefined) {
      return {
        reason: AdminReject.AlreadyExists,
        detail: `alert ${id} was acknowledged by ${alert.ack.by} at ${new Date(alert.ack.at).toISOString()}`,
      };
    }
    return undefined;
  }

  /** Acknowledges alert `id` (checked by `ackProblem`): it is closed, and its response lifted. */
  ack(id: string, by: string, at: number, note: string | undefined): AlertChange {
    const alert: AlertRecord = {
      ...this.records.get(id)!,
      ack: note === undefined ? { by, at } : { by, at, note },
    };
    this.records.set(id, alert);
    this.rateLimited.get(alert.subject)?.delete(id);
    return { type: 'acked', alert };
  }

  setPolicy(policy: AlertPolicy): AlertChange {
    this.currentPolicy = policy;
    return { type: 'policy', policy };
  }

  get empty(): boolean {
    return this.records.size === 0 && this.currentPolicy === undefined;
  }

  toSnapshot(): AlertSnapshot {
    return {
      alerts: [...this.records.values()],
      ...(this.currentPolicy === undefined ? {} : { policy: this.currentPolicy }),
    };
  }

  /** Replaces everything with `snapshot` (or nothing) and tells the listeners. */
  restore(snapshot: AlertSnapshot | undefined): void {
    this.records.clear();
    this.latestOf.clear();
    this.rateLimited.clear();
    this.currentPolicy = snapshot?.policy;
    for (const alert of snapshot?.alerts ?? []) this.add(alert);
    this.notify({ type: 'reset' });
  }

  /**
   * One page of the alerts `query` selects, and whether more match past it: the oldest from
   * `fromIndex` first, or with `newestFirst` the newest first.
   */
  page(query: AlertQuery): { alerts: AlertRecord[]; more: boolean } {
    const matches = (alert: AlertRecord): boolean =>
      (query.id === undefined || alert.id === query.id) &&
      (query.subject === undefined || alert.subject === query.subject) &&
      (query.sinceMs === undefined || alert.raisedAt >= query.sinceMs) &&
      (query.fromIndex === undefined || alert.index >= query.fromIndex);
    const all = [...this.records.values()];
    if (query.newestFirst === true) all.reverse();
    const alerts: AlertRecord[] = [];
    for (const alert of all) {
      if (!matches(alert)) continue;
      if (alerts.length === query.limit) return { alerts, more: true };
      alerts.push(alert);
    }
    return { alerts, more: false };
  }

  private add(alert: AlertRecord): void {
    this.records.set(alert.id, alert);
    this.latestOf.set(`${alert.subject} ${alert.rule}`, alert.id);
    if (alert.response?.kind === 'rateLimit' && alert.ack === undefined) {
      let ids = this.rateLimited.get(alert.subject);
      if (ids === undefined) this.rateLimited.set(alert.subject, (ids = new Set()));
      ids.add(alert.id);
    }
  }

  private drop(id: string): void {
    const alert = this.records.get(id);
    if (alert === undefined) return;
    this.records.delete(id);
    const key = `${alert.subject} ${alert.rule}`;
    if (this.latestOf.get(key) === id) this.latestOf.delete(key);
    const ids = this.rateLimited.get(alert.subject);
    ids?.delete(id);
    if (ids?.size === 0) this.rateLimited.delete(alert.subject);
  }
}
