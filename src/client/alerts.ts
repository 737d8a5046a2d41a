/**
 * Alerts (DESIGN §9, docs/alerts.md) from an application: what nodes' anomaly detectors raised on
 * the ledger — every alert for a supervisor, the alerts about itself for anyone else — and, for a
 * supervisor, acknowledging them and setting what nodes may do on their own. Every call goes to this
 * organization's connector.
 *
 *   const alerts = lb.alerts();
 *   const { alerts: latest } = await alerts.list({ since: Date.now() - 10 * 60_000 });
 *   await alerts.ack(latest[0].id, { note: 'known batch job' });     // supervisors only
 *   await alerts.ack(id, { suspend: true });                          // confirm a proposed suspension
 *   const stop = alerts.watch((alert) => console.log(alert.summary)); // new alerts, live
 */
import type {
  AlertAckInput,
  AlertAckResult,
  AlertJson,
  AlertListResult,
  AlertPolicyJson,
  AlertPolicyResult,
} from '../connector/alert-follower.js';
import type { ConnectorEventOf, LedgerbusEvents } from './events.js';
import type { Transport } from './transport.js';

export type {
  AlertAckInput,
  AlertAckResult,
  AlertJson,
  AlertListResult,
  AlertPolicyJson,
  AlertPolicyResult,
} from '../connector/alert-follower.js';

export interface AlertListOptions {
  /** Only alerts about this organization (others than a supervisor may name only themselves). */
  readonly organization?: string;
  /** Only alerts raised at or after this time. */
  readonly since?: Date | number;
  /** Default 100, at most 1000. */
  readonly limit?: number;
}

export class Alerts {
  /**
   * `events` gives the event stream `watch` listens on (Ledgerbus hands in its own, shared with
   * `lb.events()`); close that stream when done.
   */
  constructor(
    private readonly transport: Transport,
    private readonly events: () => LedgerbusEvents,
  ) {}

  /** Alerts this organization may see, newest first; `more` when older ones match past `limit`. */
  async list(options: AlertListOptions = {}): Promise<AlertListResult> {
    const since = options.since instanceof Date ? options.since.getTime() : options.since;
    return this.transport.json<AlertListResult>('GET', '/v1/alerts', {
      query: { org: options.organization, since, limit: options.limit },
    });
  }

  /**
   * Acknowledges alert `id` (supervisors only), lifting any quota it imposed; `suspend` also
   * suspends its subject. ALERT_NOT_FOUND for an id this organization cannot see.
   */
  async ack(id: string, input: AlertAckInput = {}): Promise<AlertAckResult> {
    return this.transport.json<AlertAckResult>('POST', `/v1/alerts/${encodeURIComponent(id)}/ack`, {
      json: {
        ...(input.note === undefined ? {} : { note: input.note }),
        ...(input.suspend === undefined ? {} : { suspend: input.suspend }),
      },
    });
  }

  /** The alert policy in force. */
  async policy(): Promise<AlertPolicyResult> {
    return this.transport.json<AlertPolicyResult>('GET', '/v1/alerts/policy');
  }

  /** Sets the whole alert policy (supervisors only). */
  async setPolicy(policy: AlertPolicyJson): Promise<AlertPolicyResult> {
    return this.transport.json<AlertPolicyResult>('PUT', '/v1/alerts/policy', { json: policy });
  }

  /**
   * Calls `listener` with each new alert this organization may see, as the connector announces it on
   * its event stream (a notification: alerts raised while disconnected are not replayed; `list`
   * them). Returns a function that stops listening.
   */
  watch(listener: (alert: AlertJson) => void): () => void {
    const stream = this.events();
    const handler = (event: ConnectorEventOf<'alert'>): void => listener(event.alert);
    stream.on('alert', handler);
    return () => {
      stream.off('alert', handler);
    };
  }
}
