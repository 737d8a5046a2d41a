/**
 * The connector's side of alerts (DESIGN §9; registry/alerts.ts, docs/alerts.md): listing the alerts
 * this organization may see (a supervisor all of them, anyone else those about itself), a
 * supervisor's acknowledgement — with, if it says so, the suspension an alert proposed, which only
 * a supervisor ever carries out — and the alert policy.
 *
 * It also follows the alerts: about once a second it asks its node for those past the last
 * __system index it saw, and emits an `alert` event on the connector's event stream (/v1/events)
 * for each new one. It starts from the index its node has applied when the connector starts: alerts
 * raised before are listed, not announced.
 */
import { randomBytes } from 'node:crypto';
import { encodeWith } from '../codec/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import {
  AdminReject,
  SYSTEM_GROUP,
  adminTransactionSchema,
  signAdminTransaction,
} from '../registry/admin-transactions.js';
import type { AdminAction } from '../registry/admin-transactions.js';
import { alertLimits } from '../registry/alert-schemas.js';
import type { AlertPolicy, AlertRecord } from '../registry/alert-schemas.js';
import type { AdminResult } from './api-types.js';
import type { ConnectorContext } from './context.js';
import { describeError } from './lifecycle.js';
import type { NodeSession } from './session/node-session.js';

/** An alert as the REST API, the SDK and the event stream carry it: the registry's record. */
export type AlertJson = AlertRecord;
export type AlertPolicyJson = AlertPolicy;

export interface AlertListInput {
  /** Only alerts about this organization (a supervisor may name any; others only themselves). */
  readonly organization?: string;
  /** Only alerts raised at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Default 100, at most 1000. */
  readonly limit?: number;
}

export interface AlertListResult {
  /** Newest first. */
  readonly alerts: readonly AlertJson[];
  /** The __system index the node answered at. */
  readonly index: number;
  /** More alerts match than `limit` let through (older ones). */
  readonly more: boolean;
}

export interface AlertAckInput {
  readonly note?: string;
  /** Also suspend the alert's subject (setOrganizationStatus SUSPENDED): a supervisor's decision. */
  readonly suspend?: boolean;
}

export interface AlertAckResult {
  readonly id: string;
  /** The organization the alert is about ('' for an unknown key). */
  readonly subject: string;
  /**
   * The __system index of the acknowledgement; of the suspension when `suspend` found the alert
   * acknowledged already.
   */
  readonly index: number;
  /** Present when `suspend` was asked: the suspension's __system index. */
  readonly suspended?: { readonly organization: string; readonly index: number };
}

export interface AlertPolicyResult {
  readonly policy: AlertPolicyJson;
  readonly index: number;
}

export interface ConnectorAlertsOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'events' | 'lifecycle' | 'logger'
> {
  /** The organization's node: its alertList and alertPolicy methods. */
  readonly session: Pick<NodeSession, 'call'>;
  /** Commits signed admin transactions (ConnectorAdmin). */
  readonly admin: { submit(transaction: Uint8Array): Promise<AdminResult> };
  /** Between polls of the follower; default 1 s. */
  readonly pollIntervalMs?: number;
}

/** The follower's wait after a failure at most (doubling from the poll interval). */
const failureBackoffMaxMs = 30_000;
const listLimitDefault = 100;

export class ConnectorAlerts {
  private readonly pollIntervalMs: number;

  constructor(private readonly options: ConnectorAlertsOptions) {
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
  }

  /** The alerts this organization may see that `input` selects, newest first. */
  async list(input: AlertListInput = {}): Promise<AlertListResult> {
    const { alerts, index, more } = await this.options.session.call('alertList', {
      ...(input.organization === undefined ? {} : { organization: input.organization }),
      ...(input.since === undefined ? {} : { sinceMs: Math.max(0, Math.floor(input.since)) }),
      limit: Math.max(1, Math.min(input.limit ?? listLimitDefault, alertLimits.pageMax)),
      newestFirst: true,
    });
    return { alerts, index, more: more === true };
  }

  /** Alert `id`, if this organization may see it; ALERT_NOT_FOUND otherwise. */
  async get(id: string): Promise<AlertJson> {
    const { alerts } = await this.options.session.call('alertList', { id, limit: 1 });
    const alert = alerts[0];
    if (alert === undefined) {
      throw new LedgerbusError(
        ErrorCode.AlertNotFound,
        `no alert ${id} that ${this.options.organization} may see (never raised, no longer kept, or about another organization)`,
      );
    }
    return alert;
  }

  /**
   * Acknowledges alert `id` (supervisors only: ADMIN_REJECTED NOT_ALLOWED otherwise), lifting any
   * quota it imposed; with `suspend`, then suspends its subject (even when the alert was acknowledged
   * already, so a retried `ack --suspend` completes). ALERT_NOT_FOUND for an unknown id.
   */
  async ack(id: string, input: AlertAckInput = {}): Promise<AlertAckResult> {
    const alert = await this.get(id);
    if (input.suspend === true && alert.subject === '') {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `alert ${id} is about an unregistered key: there is no organization to suspend; acknowledge it without --suspend`,
      );
    }
    let acked: AdminResult | undefined;
    try {
      acked = await this.submit({
        kind: 'ackAlert',
        id,
        ...(input.note === undefined ? {} : { note: input.note }),
      });
    } catch (error) {
      if (
        isLedgerbusError(error, ErrorCode.AdminRejected) &&
        error.details?.reason === AdminReject.AlertUnknown
      ) {
        throw new LedgerbusError(ErrorCode.AlertNotFound, error.message);
      }
      // The ack and the suspension are two transactions: an `ack --suspend` whose suspension was
      // lost is retried as a whole, and must then still suspend.
      const alreadyAcked =
        isLedgerbusError(error, ErrorCode.AdminRejected) &&
        error.details?.reason === AdminReject.AlreadyExists;
      if (!alreadyAcked || input.suspend !== true) throw error;
    }
    if (input.suspend !== true) return { id, subject: alert.subject, index: acked!.index };
    const suspended = await this.submit({
      kind: 'setOrganizationStatus',
      organization: alert.subject,
      status: 'SUSPENDED',
    });
    return {
      id,
      subject: alert.subject,
      // Acknowledged before: the suspension is the change this call made.
      index: acked?.index ?? suspended.index,
      suspended: { organization: alert.subject, index: suspended.index },
    };
  }

  async policy(): Promise<AlertPolicyResult> {
    const { policy, index } = await this.options.session.call('alertPolicy', {});
    return { policy, index };
  }

  /** Sets the whole alert policy (supervisors only). Resolves with the policy now in force. */
  async setPolicy(policy: AlertPolicyJson): Promise<AlertPolicyResult> {
    const { index } = await this.submit({ kind: 'setAlertPolicy', policy });
    return { policy, index };
  }

  /**
   * Follows the alerts until the connector stops, emitting an `alert` event for each new one. A
   * failure (a node that does not serve alerts, a suspension) is logged once and retried with
   * back-off; nothing else waits on this loop.
   */
  async run(): Promise<void> {
    const { lifecycle, logger, session, events } = this.options;
    // Undefined until the node first answers: alerts from before the start are not news.
    let fromIndex: number | undefined;
    let failures = 0;
    while (!lifecycle.stopped) {
      let more = false;
      try {
        if (fromIndex === undefined) {
          const { index } = await session.call('alertList', { fromIndex: Number.MAX_SAFE_INTEGER, limit: 1 });
          fromIndex = index + 1;
        } else {
          const page = await session.call('alertList', { fromIndex, limit: alertLimits.pageMax });
          for (const alert of page.alerts) {
            fromIndex = Math.max(fromIndex, alert.index + 1);
            events.emit({ type: 'alert', alert });
          }
          more = page.more === true;
          // Every alert up to the index the node answered at was in a page that was not cut short.
          if (!more) fromIndex = Math.max(fromIndex, page.index + 1);
        }
        failures = 0;
      } catch (error) {
        if (lifecycle.stopped) return;
        failures++;
        const log = failures === 1 ? logger.warn.bind(logger) : logger.debug.bind(logger);
        log({ error: describeError(error), failures }, 'following alerts failed; retrying');
      }
      if (more) continue;
      const wait =
        failures === 0
          ? this.pollIntervalMs
          : Math.min(failureBackoffMaxMs, this.pollIntervalMs * 2 ** Math.min(failures, 16));
      await lifecycle.pause(wait);
    }
  }

  private submit(action: AdminAction): Promise<AdminResult> {
    const transaction = signAdminTransaction(
      {
        group: SYSTEM_GROUP,
        organization: this.options.organization,
        nonce: randomBytes(16),
        timestamp: this.options.lifecycle.clock.now(),
        action,
      },
      this.options.signer,
    );
    return this.options.admin.submit(encodeWith(adminTransactionSchema, transaction));
  }
}
