/**
 * Scoring detectors on a labelled trace (issue 16 item 4). Definitions, also in bench/REPORT.md:
 *
 * - An attack is an episode: the run of labelled events of one organization ('' for Sybil keys) from
 *   its first to its last event (trace.ts).
 * - An alert can match an episode when it names the episode's organization, its rule can detect the
 *   episode's kind (`rulesDetecting`: a rule counts that attack's observations; `model` may detect
 *   any kind; `detector-degraded` is about the detector, never an attack), and its [firstAt, lastAt]
 *   overlaps the episode's span widened by one window (`windowMs`) on each side. Of the episodes it
 *   can match, an alert is credited to one only: the one it overlaps longest (then the nearest, then
 *   the first), so one alert never counts as the detection of two attacks.
 * - recall = episodes credited with at least one alert ÷ episodes;
 *   precision = alerts credited to some episode ÷ all alerts (per alert: alerts are what an operator
 *   reads, so cooled-down repeats over one long episode each count);
 *   episodePrecision = detected episodes ÷ (detected episodes + false-alert groups), where a
 *   false-alert group is a run of unmatched alerts of one organization each within one window of
 *   the previous one (what an operator would investigate as one false incident);
 *   falsePositivesPer10k = alerts matching none × 10,000 ÷ normal (unlabelled) events;
 *   byAttack: per attack kind, episodes, detected and recall.
 *
 * `runDetector` feeds the trace in order to an `AnomalyDetector` exactly as a node does: `observe`
 * for each observation and `tick` as (trace) time passes, then one last `tick` past the end.
 */
import type { AlertRule, AnomalyAlert } from './alert.js';
import { AnomalyDetector } from './detector.js';
import type { DetectorOptions } from './detector.js';
import { attackKinds } from './trace.js';
import type { AttackKind, Episode, Trace } from './trace.js';

/**
 * Which rules can detect which attack kind: a rule is listed when the observations it counts include
 * the attack's own (rules.ts, trace.ts), not because it tends to fire near it. `model` is allowed for
 * every kind; `detector-degraded` for none.
 * - flood: `flood` (rejections and RATE_LIMITED), `tampering` (the flood's WRONG_PARTITION
 *   rejections are integrity rejections);
 * - sybil: `unknown-key`;
 * - replay: `replay-burst` (REPLAY rejections, replayed fetches), `flood` (its rejections);
 * - unauthorizedFetch: `refused-fetches`;
 * - credentialMisuse: `credential-misuse`, `refused-fetches` (the stolen key's refused fetches);
 * - exfiltration: `new-recipient-volume`, `size-outlier` (its messages are large);
 * - tampering: `tampering`, `flood` (its rejections);
 * - suspendedActivity: `suspended-activity`.
 */
export const rulesDetecting: Readonly<Record<AttackKind, readonly AlertRule[]>> = {
  flood: ['flood', 'tampering', 'model'],
  sybil: ['unknown-key', 'model'],
  replay: ['replay-burst', 'flood', 'model'],
  unauthorizedFetch: ['refused-fetches', 'model'],
  credentialMisuse: ['credential-misuse', 'refused-fetches', 'model'],
  exfiltration: ['new-recipient-volume', 'size-outlier', 'model'],
  tampering: ['tampering', 'flood', 'model'],
  suspendedActivity: ['suspended-activity', 'model'],
};

export interface Scores {
  readonly precision: number;
  /** Detected episodes ÷ (detected episodes + false-alert groups); see the definitions above. */
  readonly episodePrecision: number;
  readonly recall: number;
  readonly f1: number;
  readonly falsePositivesPer10k: number;
  readonly alerts: number;
  readonly falsePositives: number;
  /** Runs of unmatched alerts of one organization, each within one window of the previous. */
  readonly falseAlertGroups: number;
}

export interface Evaluation extends Scores {
  readonly byAttack: Readonly<Record<AttackKind, { episodes: number; detected: number; recall: number }>>;
  /** Alerts and matched alerts per rule. */
  readonly byRule: Readonly<Record<string, { alerts: number; matched: number }>>;
  /** Episodes no alert matched (for reading what is missed). */
  readonly missed: readonly Episode[];
  /** Alerts that matched no episode. */
  readonly unmatched: readonly AnomalyAlert[];
}

/** Trace time between two `tick`s (a node ticks about every second; 5 s changes nothing measurable). */
const tickEveryMs = 5_000;

export function runDetector(trace: Trace, options: DetectorOptions): AnomalyAlert[] {
  const detector = new AnomalyDetector(options);
  const alerts: AnomalyAlert[] = [];
  let nextTick = trace.startAt + tickEveryMs;
  for (const { observation } of trace.events) {
    if (observation.at >= nextTick) {
      for (const alert of detector.tick(observation.at)) alerts.push(alert);
      nextTick = observation.at + tickEveryMs;
    }
    for (const alert of detector.observe(observation)) alerts.push(alert);
  }
  for (const alert of detector.tick(Number.MAX_SAFE_INTEGER)) alerts.push(alert);
  return alerts;
}

export function evaluate(trace: Trace, alerts: readonly AnomalyAlert[], windowMs: number): Evaluation {
  const byOrganization = new Map<string, Episode[]>();
  for (const episode of trace.episodes) {
    const list = byOrganization.get(episode.organization) ?? [];
    list.push(episode);
    byOrganization.set(episode.organization, list);
  }
  const detected = new Set<number>();
  const unmatched: AnomalyAlert[] = [];
  const byRule: Record<string, { alerts: number; matched: number }> = {};
  for (const alert of alerts) {
    const rule = (byRule[alert.rule] ??= { alerts: 0, matched: 0 });
    rule.alerts++;
    let best: { episode: Episode; overlap: number; distance: number } | undefined;
    if (alert.rule !== 'detector-degraded') {
      for (const episode of byOrganization.get(alert.organization) ?? []) {
        if (!rulesDetecting[episode.kind].includes(alert.rule)) continue;
        const from = episode.startAt - windowMs;
        const to = episode.endAt + windowMs;
        if (alert.lastAt < from || alert.firstAt > to) continue;
        const overlap = Math.min(alert.lastAt, to) - Math.max(alert.firstAt, from);
        const distance = Math.abs(alert.firstAt + alert.lastAt - episode.startAt - episode.endAt) / 2;
        if (
          best === undefined ||
          overlap > best.overlap ||
          (overlap === best.overlap && distance < best.distance)
        )
          best = { episode, overlap, distance };
      }
    }
    if (best !== undefined) {
      rule.matched++;
      detected.add(best.episode.id);
    } else unmatched.push(alert);
  }
  const falseAlertGroups = countGroups(unmatched, windowMs);
  const byAttack = Object.fromEntries(
    attackKinds.map((kind) => {
      const episodes = trace.episodes.filter((episode) => episode.kind === kind);
      const found = episodes.filter((episode) => detected.has(episode.id)).length;
      return [kind, { episodes: episodes.length, detected: found, recall: ratio(found, episodes.length) }];
    }),
  ) as Record<AttackKind, { episodes: number; detected: number; recall: number }>;
  const precision = alerts.length === 0 ? 0 : (alerts.length - unmatched.length) / alerts.length;
  const recall = ratio(detected.size, trace.episodes.length);
  return {
    precision,
    episodePrecision: ratio(detected.size, detected.size + falseAlertGroups),
    recall,
    f1: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall),
    falsePositivesPer10k: trace.normalEvents === 0 ? 0 : (unmatched.length * 10_000) / trace.normalEvents,
    alerts: alerts.length,
    falsePositives: unmatched.length,
    falseAlertGroups,
    byAttack,
    byRule,
    missed: trace.episodes.filter((episode) => !detected.has(episode.id)),
    unmatched,
  };
}

/** Runs of alerts of one organization, each starting within `windowMs` of the previous one's end. */
function countGroups(alerts: readonly AnomalyAlert[], windowMs: number): number {
  const byOrganization = new Map<string, AnomalyAlert[]>();
  for (const alert of alerts) {
    const list = byOrganization.get(alert.organization) ?? [];
    list.push(alert);
    byOrganization.set(alert.organization, list);
  }
  let groups = 0;
  for (const list of byOrganization.values()) {
    list.sort((a, b) => a.firstAt - b.firstAt);
    let end = Number.NEGATIVE_INFINITY;
    for (const alert of list) {
      if (alert.firstAt > end + windowMs) groups++;
      end = Math.max(end, alert.lastAt);
    }
  }
  return groups;
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 0 : part / whole;
}
