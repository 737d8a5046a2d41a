/**
 * The shapes of alerts on the ledger (alerts.ts says what they are for). Apart from alerts.ts so
 * that admin-transactions.ts can hold the alert actions while alerts.ts builds signed transactions
 * with it: neither imports the other's importer, so there is no import cycle.
 *
 * Scores travel as decimal strings: the canonical codec has no floats.
 */
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { alertRules } from '../intelligence/alert.js';

export const alertLimits = {
  /** Alerts every node keeps (the oldest go first); the Raft log keeps them all. */
  alertsKept: 10_000,
  featuresMax: 8,
  summaryLengthMax: 512,
  noteLengthMax: 512,
  /** An alert of the same subject and rule within this time of an open one corroborates it. */
  corroborateWindowMs: 60_000,
  /** Alerts one alertList page answers at most. */
  pageMax: 1_000,
} as const;

const identifier = t.string({ minLength: 1, maxLength: 128, pattern: /^[a-zA-Z0-9._-]+$/ });
/** A decimal number as a string, e.g. "0.8731" or "42". */
const decimal = t.string({ minLength: 1, maxLength: 32, pattern: /^-?\d+(\.\d+)?(e[+-]?\d+)?$/ });
const severity = t.oneOf('info', 'warning', 'critical');

export const alertFeatureSchema = t.record({
  name: t.string({ minLength: 1, maxLength: 64 }),
  value: decimal,
  contribution: decimal,
});

/** What a node asks the network to do about the subject, within the policy. */
export const alertResponseSchema = t.variant('kind', {
  rateLimit: t.record({
    kind: t.literal('rateLimit'),
    /** The subject's quota on every node while the response lasts (never below the policy's floor). */
    requestsPerSecond: t.uint({ min: 1 }),
    /** How long (from the transaction's timestamp); never longer than the policy allows. */
    durationMs: t.uint({ min: 1 }),
  }),
  proposeSuspension: t.record({ kind: t.literal('proposeSuspension') }),
});
export type AlertResponse = Infer<typeof alertResponseSchema>;

/** What a node says about an alert: a `raiseAlert` action's fields besides `kind`. */
const raiseAlertFields = {
  /** Unique in the network; nodes use `<node>-<sequence>`. */
  id: t.string({ minLength: 1, maxLength: 160, pattern: /^[a-zA-Z0-9._-]+$/ }),
  /** The node that raised it: its key signs the transaction. */
  node: identifier,
  /** The organization the alert is about ('' for an unregistered key). */
  subject: t.string({ maxLength: 128 }),
  topic: t.optional(t.string({ minLength: 1, maxLength: 249 })),
  rule: t.oneOf(...alertRules),
  severity,
  score: decimal,
  threshold: decimal,
  features: t.array(alertFeatureSchema, { maxItems: alertLimits.featuresMax }),
  summary: t.string({ maxLength: alertLimits.summaryLengthMax }),
  firstAt: t.uint(),
  lastAt: t.uint(),
  observations: t.uint(),
  response: t.optional(alertResponseSchema),
};
export const raiseAlertActionSchema = t.record({ kind: t.literal('raiseAlert'), ...raiseAlertFields });
export type RaiseAlertAction = Infer<typeof raiseAlertActionSchema>;

export const ackAlertActionSchema = t.record({
  kind: t.literal('ackAlert'),
  id: t.string({ minLength: 1, maxLength: 160 }),
  note: t.optional(t.string({ maxLength: alertLimits.noteLengthMax })),
});

/** What a supervisor allows nodes to do on their own. */
export const alertPolicySchema = t.record({
  /** Alerts below this severity stay events on their node and are not written to the ledger. */
  ledgerSeverityMin: severity,
  /** Absent: nodes may not tighten quotas. */
  rateLimit: t.optional(
    t.record({
      /** The lowest quota a response may set (requests/s). */
      requestsPerSecondMin: t.uint({ min: 1 }),
      /** The longest a response may last. */
      durationMsMax: t.uint({ min: 1 }),
    }),
  ),
  /** Whether alerts may propose a suspension (a supervisor still decides). */
  proposeSuspension: t.bool(),
});
export type AlertPolicy = Infer<typeof alertPolicySchema>;

export const setAlertPolicyActionSchema = t.record({
  kind: t.literal('setAlertPolicy'),
  policy: alertPolicySchema,
});

/** Until a supervisor sets another: warnings and worse on the ledger, quotas down to 20/s for 5 min. */
export const defaultAlertPolicy: AlertPolicy = {
  ledgerSeverityMin: 'warning',
  rateLimit: { requestsPerSecondMin: 20, durationMsMax: 5 * 60_000 },
  proposeSuspension: true,
};

/** An alert as every node holds it. */
export const alertRecordSchema = t.record({
  ...raiseAlertFields,
  /** The raising transaction's timestamp (ms) and __system index. */
  raisedAt: t.uint(),
  index: t.uint(),
  /** Other nodes that raised the same subject and rule while it was open (see corroborateWindowMs). */
  corroboratedBy: t.array(identifier, { maxItems: 64 }),
  ack: t.optional(
    t.record({
      by: identifier,
      at: t.uint(),
      note: t.optional(t.string({ maxLength: alertLimits.noteLengthMax })),
    }),
  ),
});
export type AlertRecord = Infer<typeof alertRecordSchema>;
