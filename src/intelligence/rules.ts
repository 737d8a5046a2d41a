/**
 * Hard-violation rules (DESIGN §9, issue 16 item 2): things an honest organization does now and then
 * by mistake but never many times in a short while, or never at all. Each rule counts one kind of
 * observation per organization in a sliding time span and fires when the count reaches its limit
 * (or, for sizes and volumes, when a value passes a multiple of the organization's own history).
 *
 * Counting is exact and O(1): a rule with limit n keeps the times of the last n matching observations
 * in a ring; it fires when the ring is full and its oldest entry is within the span. Rings are
 * allocated on a rule's first match, so an organization that never misbehaves costs nothing here.
 *
 * Every alert says what it counted and against what: `features` holds the counted value with
 * contribution = value ÷ limit, `summary` a sentence. Severity is 'critical' at four times a limit.
 * Suggested responses (the network's alert policy decides what is done, registry/alerts.ts):
 * - flood → 'rateLimit' (it is about load; a tighter quota is the proportionate answer);
 * - refused-fetches, replay-burst, tampering, credential-misuse, new-recipient-volume → at 'critical'
 *   'proposeSuspension' (someone is trying to read or change what is not theirs, many times, or a
 *   member is moving an abnormal volume out), else 'none';
 * - suspended-activity (already suspended), unknown-key (no organization to act on), size-outlier
 *   (one message, possibly honest) → 'none'.
 */
import type { AlertFeature, AlertRule, AlertSeverity, AnomalyAlert, SuggestedResponse } from './alert.js';
import { rejectClass } from './features.js';
import type { OrganizationFeatures } from './features.js';
import type { Observation } from './observations.js';

export interface CountLimit {
  /** Matching observations … */
  readonly count: number;
  /** … within this span (ms). */
  readonly withinMs: number;
}

export interface RuleThresholds {
  /** Fetches refused as not a recipient, bad signature or stale (not 'notFound', a benign race). */
  readonly refusedFetches: CountLimit;
  /** REPLAY / TIMESTAMP_OUT_OF_WINDOW rejections and replayed fetches. */
  readonly replayBurst: CountLimit;
  /** Requests of a SUSPENDED or REVOKED organization (PENDING ones are onboarding, not counted). */
  readonly suspendedActivity: CountLimit;
  /** Unregistered keys: fires at `distinctKeys` different keys, or `count` attempts, within `withinMs`. */
  readonly unknownKey: CountLimit & { readonly distinctKeys: number };
  /** Rejections of any kind plus RATE_LIMITED refusals. */
  readonly flood: CountLimit;
  /** One message larger than `factor` × the organization's largest so far (after `minPublishes`). */
  readonly sizeOutlier: { readonly factor: number; readonly minPublishes: number; readonly minBytes: number };
  /**
   * Bytes sent to one recipient the organization never used before (first seen within the last hour,
   * features' `newForMs`) reaching `factor` × its mean message size, and at least `minBytes`.
   */
  readonly newRecipientVolume: { readonly factor: number; readonly minBytes: number };
  /** MESSAGE_ID_CONFLICT, CONTENT_ROOT_MISMATCH and BAD_SIGNATURE on signed transactions. */
  readonly tampering: CountLimit;
  /**
   * Requests through an entry point new for the organization at an hour that holds less than
   * `offHourShare` of its past activity (once it has `minHistory` observations).
   */
  readonly credentialMisuse: CountLimit & {
    readonly offHourShare: number;
    readonly minHistory: number;
    /** How long the organization must have been seen: an hour histogram of less than a day means nothing. */
    readonly minHistoryMs: number;
    /**
     * Concurrent use ("impossible travel"): requests through a new entry point while the
     * organization's established entry point is still active. An honest failover moves traffic (the
     * old entry point goes quiet, but for requests already in flight, `graceMs`); a stolen key runs
     * next to the victim's own traffic. Counted when the established entry point was used more than
     * `graceMs` after the new one's first use and at most `withinMs` before the request, at an hour
     * holding less than `hourShare` of the organization's activity; fires at `count` within `spanMs`.
     */
    readonly concurrent: {
      readonly count: number;
      readonly spanMs: number;
      readonly withinMs: number;
      readonly graceMs: number;
      readonly hourShare: number;
    };
  };
}

/** Tuned on the labelled trace of seed 1 (bench/eval-anomaly.ts); seeds 2 and 3 are held out. */
export const defaultRuleThresholds: RuleThresholds = {
  refusedFetches: { count: 4, withinMs: 600_000 },
  replayBurst: { count: 3, withinMs: 300_000 },
  suspendedActivity: { count: 3, withinMs: 600_000 },
  unknownKey: { count: 12, withinMs: 600_000, distinctKeys: 3 },
  flood: { count: 40, withinMs: 30_000 },
  sizeOutlier: { factor: 8, minPublishes: 200, minBytes: 1 << 20 },
  newRecipientVolume: { factor: 100, minBytes: 32 << 20 },
  tampering: { count: 2, withinMs: 900_000 },
  // 8 within 5 min (was 3 within 15): honest failovers happen at night too, and an organization's
  // ordinary night traffic through its failover node reached 3 in 15 min (seed 1).
  credentialMisuse: {
    count: 8,
    withinMs: 300_000,
    offHourShare: 0.02,
    minHistory: 500,
    minHistoryMs: 86_400_000,
    // Seed 1 grid (count 2–4, grace 1–2 min, window 5–10 min, hour share 2 %/4 %/any): honest traffic
    // never reached it; without an hour limit it fired on replayers coming through a new node.
    concurrent: { count: 3, spanMs: 900_000, withinMs: 300_000, graceMs: 120_000, hourShare: 0.04 },
  },
};

/** Times of the last `size` matching observations. */
class TimeRing {
  private readonly times: Float64Array;
  private head = 0;
  private length = 0;

  constructor(readonly size: number) {
    this.times = new Float64Array(size);
  }

  push(at: number): void {
    this.times[this.head] = at;
    this.head = (this.head + 1) % this.size;
    if (this.length < this.size) this.length++;
  }

  /** The oldest time kept (the ring's first). */
  get oldest(): number {
    return this.times[this.length < this.size ? 0 : this.head]!;
  }

  /** Full, and its oldest within `withinMs` of `at`. */
  reached(at: number, withinMs: number): boolean {
    return this.length === this.size && at - this.oldest <= withinMs;
  }
}

type CountedRule =
  'refused-fetches' | 'replay-burst' | 'suspended-activity' | 'flood' | 'tampering' | 'credential-misuse';

/** One organization's rule state: rings per counted rule, bytes per new recipient. */
export class OrganizationRuleState {
  readonly rings = new Map<CountedRule, TimeRing>();
  /** New recipient → bytes and messages sent to it while it is new (bounded like the history). */
  readonly newRecipientBytes = new Map<string, { bytes: number; messages: number; firstAt: number }>();
  /** Last request through an entry point that is not new for the organization. */
  establishedViaAt = Number.NEGATIVE_INFINITY;
  /** Ring of requests through a new entry point concurrent with the established one. */
  concurrentRing: TimeRing | undefined;
}

/** Unknown keys are nobody's: one state for all of them. */
class UnknownKeyState {
  readonly ring: TimeRing;
  /** Key → last seen, at most 64 kept (more distinct keys than that is far past any limit). */
  readonly keys = new Map<string, number>();

  constructor(count: number) {
    this.ring = new TimeRing(count);
  }
}

const newRecipientsTracked = 64;

function severityOf(ratio: number): AlertSeverity {
  return ratio >= 4 ? 'critical' : 'warning';
}

export class RuleEngine {
  readonly thresholds: RuleThresholds;
  private readonly unknown: UnknownKeyState;

  constructor(thresholds: Partial<RuleThresholds> = {}) {
    this.thresholds = { ...defaultRuleThresholds, ...thresholds };
    this.unknown = new UnknownKeyState(this.thresholds.unknownKey.count);
  }

  /**
   * Checks `o` against the rules of its organization, BEFORE `features` has taken `o` in (so "new"
   * and "largest so far" mean before this observation). Pushes what fires onto `out`.
   */
  evaluate(
    o: Observation,
    features: OrganizationFeatures,
    state: OrganizationRuleState,
    out: AnomalyAlert[],
  ): void {
    const t = this.thresholds;
    switch (o.kind) {
      case 'fetch':
        if (o.outcome === 'replay') this.count(o, state, 'replay-burst', t.replayBurst, out);
        else if (o.outcome !== 'served' && o.outcome !== 'notFound')
          this.count(o, state, 'refused-fetches', t.refusedFetches, out);
        break;
      case 'reject': {
        this.count(o, state, 'flood', t.flood, out);
        const reasonClass = rejectClass(o.reason);
        if (reasonClass === 'replay') this.count(o, state, 'replay-burst', t.replayBurst, out);
        else if (reasonClass === 'integrity' || (o.reason === 'BAD_SIGNATURE' && o.stage === 'contract'))
          this.count(o, state, 'tampering', t.tampering, out);
        break;
      }
      case 'rateLimited':
        this.count(o, state, 'flood', t.flood, out);
        break;
      case 'notApproved':
        if (o.status === 'SUSPENDED' || o.status === 'REVOKED')
          this.count(o, state, 'suspended-activity', t.suspendedActivity, out);
        break;
      case 'publish':
        this.size(o, features, out);
        this.newRecipients(o, features, state, out);
        break;
      default:
        break;
    }
    this.credentialMisuse(o, features, state, out);
  }

  /** An observation of an unregistered key (organization ''). */
  unknownKey(o: Observation, out: AnomalyAlert[]): void {
    const limit = this.thresholds.unknownKey;
    const state = this.unknown;
    const key = o.kind === 'unknownKey' ? o.key : `${o.kind}:${o.via ?? '?'}`;
    state.ring.push(o.at);
    state.keys.delete(key);
    state.keys.set(key, o.at);
    if (state.keys.size > 64) state.keys.delete(state.keys.keys().next().value as string);
    let distinct = 0;
    let firstAt = o.at;
    for (const last of state.keys.values()) {
      if (o.at - last <= limit.withinMs) {
        distinct++;
        if (last < firstAt) firstAt = last;
      }
    }
    const byCount = state.ring.reached(o.at, limit.withinMs);
    if (distinct < limit.distinctKeys && !byCount) return;
    const countFirst = byCount ? state.ring.oldest : firstAt;
    const ratio = Math.max(distinct / limit.distinctKeys, byCount ? 1 : 0);
    out.push({
      organization: o.organization,
      rule: 'unknown-key',
      severity: severityOf(ratio),
      score: distinct,
      threshold: limit.distinctKeys,
      features: [
        { name: 'distinctUnknownKeys', value: distinct, contribution: distinct / limit.distinctKeys },
        {
          name: 'unknownKeyAttempts',
          value: byCount ? limit.count : distinct,
          contribution: byCount ? 1 : distinct / limit.count,
        },
      ],
      summary: `${distinct} unregistered key(s) tried to connect or transact within ${minutes(limit.withinMs)} (limit ${limit.distinctKeys} keys or ${limit.count} attempts); latest key ${key}.`,
      firstAt: Math.min(firstAt, countFirst),
      lastAt: o.at,
      observations: byCount ? limit.count : distinct,
      suggested: 'none',
    });
  }

  private credentialMisuse(
    o: Observation,
    features: OrganizationFeatures,
    state: OrganizationRuleState,
    out: AnomalyAlert[],
  ): void {
    const limit = this.thresholds.credentialMisuse;
    if (o.via === undefined || o.kind === 'registry' || !features.established(o.at)) return;
    if (!features.isNewVia(o.via, o.at)) {
      state.establishedViaAt = Math.max(state.establishedViaAt, o.at);
      return;
    }
    if (features.hoursTotal < limit.minHistory || o.at - features.firstSeenAt < limit.minHistoryMs) return;
    const hourShare = features.hourShare(o.at);
    if (hourShare < limit.offHourShare) this.count(o, state, 'credential-misuse', limit, out);
    const c = limit.concurrent;
    const firstUse = features.vias.peek(o.via) ?? o.at;
    if (
      hourShare >= c.hourShare ||
      state.establishedViaAt - firstUse <= c.graceMs ||
      o.at - state.establishedViaAt > c.withinMs
    )
      return;
    let ring = state.concurrentRing;
    if (ring === undefined) state.concurrentRing = ring = new TimeRing(c.count);
    ring.push(o.at);
    if (!ring.reached(o.at, c.spanMs)) return;
    const spanMs = Math.max(1, o.at - ring.oldest);
    const ratio = c.spanMs / Math.max(spanMs, c.spanMs / 16);
    const severity = severityOf(ratio);
    out.push({
      organization: o.organization,
      ...(topicOf(o) === undefined ? {} : { topic: topicOf(o) }),
      rule: 'credential-misuse',
      severity,
      score: c.count,
      threshold: c.count,
      features: [
        { name: 'concurrentRequestsViaNewEntryPoint', value: c.count, contribution: ratio },
        { name: 'spanMs', value: spanMs, contribution: c.spanMs / spanMs },
        {
          name: 'establishedEntryPointLastUsedMsAgo',
          value: o.at - state.establishedViaAt,
          contribution: c.withinMs / Math.max(1, o.at - state.establishedViaAt),
        },
      ],
      summary: `${o.organization}: ${c.count} requests through ${o.via}, an entry point new for it, within ${seconds(spanMs)} while its usual entry point was still in use (${seconds(o.at - state.establishedViaAt)} before), at an hour it is rarely active (limit ${c.count} within ${minutes(c.spanMs)}).`,
      firstAt: ring.oldest,
      lastAt: o.at,
      observations: c.count,
      suggested: suggestedFor('credential-misuse', severity),
    });
  }

  private count(
    o: Observation,
    state: OrganizationRuleState,
    rule: CountedRule,
    limit: CountLimit,
    out: AnomalyAlert[],
  ): void {
    let ring = state.rings.get(rule);
    if (ring === undefined) {
      ring = new TimeRing(limit.count);
      state.rings.set(rule, ring);
    }
    ring.push(o.at);
    if (!ring.reached(o.at, limit.withinMs)) return;
    const spanMs = Math.max(1, o.at - ring.oldest);
    // How far past the limit: the same count in a shorter span is a faster rate (capped at 16×).
    const ratio = limit.withinMs / Math.max(spanMs, limit.withinMs / 16);
    const severity = severityOf(ratio);
    const feature: AlertFeature = { name: featureOf[rule], value: limit.count, contribution: ratio };
    out.push({
      organization: o.organization,
      ...(topicOf(o) === undefined ? {} : { topic: topicOf(o) }),
      rule,
      severity,
      score: limit.count,
      threshold: limit.count,
      features: [feature, { name: 'spanMs', value: spanMs, contribution: limit.withinMs / spanMs }],
      summary: `${o.organization}: ${limit.count} ${describe[rule]} within ${seconds(spanMs)} (limit ${limit.count} within ${minutes(limit.withinMs)}).`,
      firstAt: ring.oldest,
      lastAt: o.at,
      observations: limit.count,
      suggested: suggestedFor(rule, severity),
    });
  }

  private size(
    o: Extract<Observation, { kind: 'publish' }>,
    features: OrganizationFeatures,
    out: AnomalyAlert[],
  ): void {
    const limit = this.thresholds.sizeOutlier;
    const bar = Math.max(limit.minBytes, limit.factor * features.maxBytes);
    const flagged = features.publishes >= limit.minPublishes && o.bytes > bar;
    features.noteSize(o.bytes, flagged);
    if (!flagged) return;
    const ratio = o.bytes / Math.max(1, features.maxBytes);
    out.push({
      organization: o.organization,
      topic: o.topic,
      rule: 'size-outlier',
      severity: o.bytes >= 4 * bar ? 'critical' : 'warning',
      score: o.bytes,
      threshold: bar,
      features: [
        { name: 'bytes', value: o.bytes, contribution: o.bytes / bar },
        { name: 'largestBefore', value: features.maxBytes, contribution: ratio },
      ],
      summary: `${o.organization} declared a ${mib(o.bytes)} message on ${o.topic}, ${ratio.toFixed(1)}× the largest of its previous ${features.publishes} messages.`,
      firstAt: o.at,
      lastAt: o.at,
      observations: 1,
      suggested: 'none',
    });
  }

  private newRecipients(
    o: Extract<Observation, { kind: 'publish' }>,
    features: OrganizationFeatures,
    state: OrganizationRuleState,
    out: AnomalyAlert[],
  ): void {
    if (!features.established(o.at)) return;
    const limit = this.thresholds.newRecipientVolume;
    const bar = Math.max(limit.minBytes, limit.factor * features.meanBytes);
    for (const recipient of o.recipients) {
      if (!features.isNewRecipient(recipient, o.at)) {
        state.newRecipientBytes.delete(recipient);
        continue;
      }
      let sent = state.newRecipientBytes.get(recipient);
      if (sent === undefined) {
        sent = { bytes: 0, messages: 0, firstAt: o.at };
        state.newRecipientBytes.set(recipient, sent);
        if (state.newRecipientBytes.size > newRecipientsTracked)
          state.newRecipientBytes.delete(state.newRecipientBytes.keys().next().value as string);
      }
      const before = sent.bytes;
      sent.bytes += o.bytes;
      sent.messages++;
      // Fires once when the volume crosses the bar, then again at each doubling.
      if (
        sent.bytes < bar ||
        (before >= bar && Math.floor(Math.log2(sent.bytes / bar)) === Math.floor(Math.log2(before / bar)))
      )
        continue;
      const ratio = sent.bytes / bar;
      const severity = severityOf(ratio);
      out.push({
        organization: o.organization,
        topic: o.topic,
        rule: 'new-recipient-volume',
        severity,
        score: sent.bytes,
        threshold: bar,
        features: [
          { name: 'bytesToNewRecipient', value: sent.bytes, contribution: ratio },
          {
            name: 'messagesToNewRecipient',
            value: sent.messages,
            contribution: sent.messages / limit.factor,
          },
          { name: 'meanMessageBytes', value: features.meanBytes, contribution: 1 },
        ],
        summary: `${o.organization} sent ${mib(sent.bytes)} in ${sent.messages} messages to ${recipient}, a recipient it never used before, ${ratio.toFixed(1)}× the limit (${limit.factor} × its mean message of ${mib(features.meanBytes)}, at least ${mib(limit.minBytes)}).`,
        firstAt: sent.firstAt,
        lastAt: o.at,
        observations: sent.messages,
        suggested: suggestedFor('new-recipient-volume', severity),
      });
    }
  }
}

const featureOf: Record<CountedRule, string> = {
  'refused-fetches': 'refusedFetches',
  'replay-burst': 'replays',
  'suspended-activity': 'requestsWhileSuspended',
  flood: 'rejectedOrRateLimited',
  tampering: 'integrityRejections',
  'credential-misuse': 'offHourRequestsViaNewEntryPoint',
};

const describe: Record<CountedRule, string> = {
  'refused-fetches': 'refused fetches (not a recipient, bad signature or stale)',
  'replay-burst': 'replayed transactions or fetches',
  'suspended-activity': 'requests while suspended or revoked',
  flood: 'rejected or rate-limited requests',
  tampering: 'message-id conflicts, content-root mismatches or bad signatures on signed transactions',
  'credential-misuse': 'requests through an entry point new for it, at an hour it is rarely active',
};

function suggestedFor(rule: AlertRule, severity: AlertSeverity): SuggestedResponse {
  switch (rule) {
    case 'flood':
      return 'rateLimit';
    case 'refused-fetches':
    case 'replay-burst':
    case 'tampering':
    case 'credential-misuse':
    case 'new-recipient-volume':
      return severity === 'critical' ? 'proposeSuspension' : 'none';
    default:
      return 'none';
  }
}

function topicOf(o: Observation): string | undefined {
  return 'topic' in o ? o.topic : undefined;
}

function seconds(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${(ms / 1_000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

function minutes(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : seconds(ms);
}

function mib(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(bytes < 10_485_760 ? 2 : 0)} MiB`;
}
