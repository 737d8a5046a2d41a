/**
 * Scoring detectors on a labelled trace (issue 16 item 4). Definitions, also in bench/REPORT.md:
 *
 * - An attack is an episode: the run of labelled events of one organization ('' for Sybil keys) from
 *   its first to its last event (trace.ts).
 * - An alert matches an episode when it names the episode's organization and its [firstAt, lastAt]
 *   overlaps the episode's span widened by one window (`windowMs`) on each side.
 * - recall = episodes matched by at least one alert ÷ episodes;
 *   precision = alerts matching some episode ÷ all alerts;
 *   falsePositivesPer10k = alerts matching none × 10,000 ÷ normal (unlabelled) events;
 *   byAttack: per attack kind, episodes, detected and recall.
 *
 * `runDetector` feeds the trace in order to an `AnomalyDetector` exactly as a node does: `observe`
 * for each observation and `tick` as (trace) time passes, then one last `tick` past the end.
 */
import type { AnomalyAlert } from './alert.js';
import { AnomalyDetector } from './detector.js';
import type { DetectorOptions } from './detector.js';
import { attackKinds } from './trace.js';
import type { AttackKind, Episode, Trace } from './trace.js';

export interface Scores {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  readonly falsePositivesPer10k: number;
  readonly alerts: number;
  readonly falsePositives: number;
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
    let matched = false;
    for (const episode of byOrganization.get(alert.organization) ?? []) {
      if (alert.lastAt >= episode.startAt - windowMs && alert.firstAt <= episode.endAt + windowMs) {
        matched = true;
        detected.add(episode.id);
      }
    }
    if (matched) rule.matched++;
    else unmatched.push(alert);
  }
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
    recall,
    f1: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall),
    falsePositivesPer10k: trace.normalEvents === 0 ? 0 : (unmatched.length * 10_000) / trace.normalEvents,
    alerts: alerts.length,
    falsePositives: unmatched.length,
    byAttack,
    byRule,
    missed: trace.episodes.filter((episode) => !detected.has(episode.id)),
    unmatched,
  };
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 0 : part / whole;
}
