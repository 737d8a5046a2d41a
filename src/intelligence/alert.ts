/**
 * What a detector says (DESIGN §9): an alert about one organization, with the rule or model that
 * raised it and the features that drove it, so an operator can see why. Numbers are plain here; the
 * ledger's `raiseAlert` carries them as decimal strings (the codec has no floats, registry/alerts.ts).
 */

export type AlertSeverity = 'info' | 'warning' | 'critical';

/**
 * Stable ids of what raises alerts. Rules are hard violations; `model` is the learned per-organization
 * model (Half-Space Trees) over windows of features; `detector-degraded` is the detector itself
 * falling back to rules only (overload or failure).
 */
export const alertRules = [
  'refused-fetches',
  'replay-burst',
  'suspended-activity',
  'unknown-key',
  'flood',
  'size-outlier',
  'new-recipient-volume',
  'tampering',
  'credential-misuse',
  'model',
  'detector-degraded',
] as const;
export type AlertRule = (typeof alertRules)[number];

/** One feature's part in an alert: its value in the window and how much it drove the score. */
export interface AlertFeature {
  readonly name: string;
  readonly value: number;
  /** Share of the score (model) or how far past its limit the value is (rule: value / limit). */
  readonly contribution: number;
}

/** What a detector may suggest; the network's alert policy decides what is done (registry/alerts.ts). */
export type SuggestedResponse = 'none' | 'rateLimit' | 'proposeSuspension';

export interface AnomalyAlert {
  /** The organization the alert is about ('' for an unknown key). */
  readonly organization: string;
  readonly topic?: string;
  readonly rule: AlertRule;
  readonly severity: AlertSeverity;
  /** Rule: the count or value observed. Model: the anomaly score in [0, 1] (1 = most anomalous). */
  readonly score: number;
  /** What the score was compared with. */
  readonly threshold: number;
  /** The features that drove it, most important first (at most 8). */
  readonly features: readonly AlertFeature[];
  /** One sentence for a person: what happened, how much, over what time. */
  readonly summary: string;
  /** Time of the first and last observation the alert covers (ms). */
  readonly firstAt: number;
  readonly lastAt: number;
  /** Observations the alert covers. */
  readonly observations: number;
  readonly suggested: SuggestedResponse;
}
