/**
 * Alerts on the ledger (DESIGN §9): a node's anomaly detector raises an alert as a `raiseAlert`
 * admin transaction in the __system Raft log, signed with the NODE's key (an organization's own keys
 * cannot raise one: alerts come from the infrastructure that saw the behaviour); an approved
 * supervisor acknowledges it (`ackAlert`) and sets what automatic responses nodes may take
 * (`setAlertPolicy`). Every node holds the same alerts (alert-state.ts), bounded in number.
 *
 * An alert may carry a response within the policy's limits: tighten the subject organization's
 * request quota on every node for a while, or propose its suspension — which only a supervisor's
 * `setOrganizationStatus` carries out. Nothing here ever suspends.
 *
 * Scores travel as decimal strings: the canonical codec has no floats. A node turns what its
 * detector says (intelligence/alert.ts) into a signed `raiseAlert` with `raiseAlertTransaction`
 * below: numbers become decimal strings and text is cut to the ledger's limits, so whatever the
 * detector produced, the transaction encodes. The shapes are in alert-schemas.ts.
 */
import type { Signer } from '../crypto/index.js';
import type { AnomalyAlert } from '../intelligence/alert.js';
import { SYSTEM_GROUP, signAdminTransaction } from './admin-transactions.js';
import type { AdminTransaction } from './admin-transactions.js';
import { alertLimits } from './alert-schemas.js';
import type { AlertResponse } from './alert-schemas.js';

export * from './alert-schemas.js';

const featureNameLengthMax = 64;
const topicLengthMax = 249;
const significantDigits = 6;

/**
 * `value` as the ledger's decimal string, rounded to 6 significant digits ("0.873142", "42",
 * "1.5e-7"). Not finite: NaN is "0" and ±Infinity the largest finite double, so a rule that divided
 * by zero still reads as "very far past its limit".
 */
export function alertDecimal(value: number): string {
  const finite = Number.isNaN(value)
    ? 0
    : value === Infinity
      ? Number.MAX_VALUE
      : value === -Infinity
        ? -Number.MAX_VALUE
        : value;
  // Number(…) drops toPrecision's trailing zeros; -0 prints as "0".
  return String(Number(finite.toPrecision(significantDigits)));
}

/** `text` cut to at most `max` UTF-16 units, never in the middle of a surrogate pair. */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  const last = cut.charCodeAt(cut.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}

function wholeMs(value: number): number {
  return Number.isFinite(value) ? Math.max(0, Math.round(value)) : 0;
}

export interface RaiseAlertInput {
  readonly alert: AnomalyAlert;
  /** Unique in the network: nodes use `<node>-<sequence>`. */
  readonly id: string;
  /** This node's id: its key signs. */
  readonly node: string;
  /** This node's organization. */
  readonly organization: string;
  /** What the node asks for, within the alert policy (the registry refuses anything beyond it). */
  readonly response?: AlertResponse;
  readonly nonce: Uint8Array;
  readonly timestamp: number;
}

/**
 * The signed `raiseAlert` transaction for `input.alert`, signed by `nodeSigner` (the node's key in
 * its network's signing domain). Submit it as any admin transaction (encodeWith
 * adminTransactionSchema, then the registry's submitAdmin).
 */
export function raiseAlertTransaction(input: RaiseAlertInput, nodeSigner: Signer): AdminTransaction {
  const { alert } = input;
  const topic = alert.topic === undefined ? '' : truncateText(alert.topic, topicLengthMax);
  const firstAt = wholeMs(alert.firstAt);
  return signAdminTransaction(
    {
      group: SYSTEM_GROUP,
      organization: input.organization,
      nonce: input.nonce,
      timestamp: input.timestamp,
      action: {
        kind: 'raiseAlert',
        id: input.id,
        node: input.node,
        subject: alert.organization,
        ...(topic === '' ? {} : { topic }),
        rule: alert.rule,
        severity: alert.severity,
        score: alertDecimal(alert.score),
        threshold: alertDecimal(alert.threshold),
        features: alert.features.slice(0, alertLimits.featuresMax).map((feature) => ({
          name: truncateText(feature.name, featureNameLengthMax) || '?',
          value: alertDecimal(feature.value),
          contribution: alertDecimal(feature.contribution),
        })),
        summary: truncateText(alert.summary, alertLimits.summaryLengthMax),
        firstAt,
        lastAt: Math.max(firstAt, wholeMs(alert.lastAt)),
        observations: wholeMs(alert.observations),
        ...(input.response === undefined ? {} : { response: input.response }),
      },
    },
    nodeSigner,
  );
}
