/**
 * `npm run eval:anomaly -- --seed S --events N`: the anomaly detectors (issue 16 item 4, DESIGN §9)
 * on a seeded, labelled trace (src/intelligence/trace.ts: 8 publishing and 4 receiving organizations
 * in their own time zones with daily rhythms, bursts, nightly batches, log-normal payload mixtures,
 * evolving partner sets and honest errors; attacks from BlockTorrent's Table 2 and the SDT paper's
 * §5.1 injected at a small share of events).
 *
 * It runs the detector the node runs (src/intelligence/detector.ts) three times over the same trace:
 * rules and model together (the node's default), rules only, model only; and scores each
 * (src/intelligence/evaluation.ts):
 * - an attack is an episode, the run of labelled events of one organization ('' for Sybil keys);
 * - an alert can match an episode when it names that organization, its rule can detect that attack
 *   kind (`rulesDetecting` in evaluation.ts; `model` any kind, `detector-degraded` none) and its
 *   [firstAt, lastAt] overlaps the episode's span ± one window (the detector's `windowMs`, 5 min);
 *   it is credited to one such episode at most, the one it overlaps longest;
 * - recall = episodes with a credited alert ÷ episodes; precision = credited alerts ÷ alerts (per
 *   alert); episodePrecision = detected episodes ÷ (detected episodes + false-alert groups, runs of
 *   unmatched alerts of one organization within a window of each other);
 *   falsePositivesPer10k = alerts matching no episode × 10,000 ÷ normal events;
 *   byAttack = per kind {episodes, detected, recall}.
 * Goal: precision ≥ 0.95, recall ≥ 0.90, ≤ 1 false positive per 10,000 normal events. The detector's
 * thresholds were tuned on seed 1; seeds 2 and 3 are held out.
 *
 * The last stdout line is one JSON object: {precision, episodePrecision, recall, f1,
 * falsePositivesPer10k, byAttack,
 * rulesOnly, modelOnly, seed, events, ms, observationsPerSecond}. The full record (missed episodes, false
 * positives, per-rule counts) goes to bench/results/eval-anomaly-<timestamp>.json and
 * eval-anomaly-latest.json. Progress goes to stderr.
 *
 * Options: --seed N (1) --events N (200000) --json (only the JSON line on stdout).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { defaultModelThreshold, defaultWindowMs } from '../src/intelligence/detector.js';
import type { DetectorOptions } from '../src/intelligence/detector.js';
import { evaluate, rulesDetecting, runDetector } from '../src/intelligence/evaluation.js';
import type { Evaluation } from '../src/intelligence/evaluation.js';
import { defaultRuleThresholds } from '../src/intelligence/rules.js';
import { generateTrace, traceParameters } from '../src/intelligence/trace.js';
import { machineInfo, resultsDirectory, round } from './lib/results.js';
import { showHelpIfAsked } from './lib/help.js';

showHelpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    events: { type: 'string', default: '200000' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});
const integer = (name: string, text: string, min: number): number => {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min)
    throw new Error(`--${name} must be an integer of at least ${min}, not "${text}"`);
  return value;
};
const seed = integer('seed', values.seed, 0);
const events = integer('events', values.events, 100);
const progress = (text: string): void => {
  process.stderr.write(`${text}\n`);
};

const started = performance.now();
const trace = generateTrace({ seed, events });
progress(
  `trace: ${trace.events.length} events (${trace.normalEvents} normal, ${trace.attackEvents} attack) over ${(trace.durationMs / 86_400_000).toFixed(2)} days, ${trace.episodes.length} episodes, generated in ${Math.round(performance.now() - started)} ms`,
);

const detectorSeed = 1;
function run(name: string, options: DetectorOptions): { evaluation: Evaluation; ms: number } {
  const at = performance.now();
  const alerts = runDetector(trace, options);
  const ms = performance.now() - at;
  const evaluation = evaluate(trace, alerts, defaultWindowMs);
  progress(
    `${name.padEnd(10)} precision ${evaluation.precision.toFixed(3)} episodePrecision ${evaluation.episodePrecision.toFixed(3)} recall ${evaluation.recall.toFixed(3)} f1 ${evaluation.f1.toFixed(3)} FP/10k ${evaluation.falsePositivesPer10k.toFixed(2)} (${evaluation.alerts} alerts, ${evaluation.falsePositives} false in ${evaluation.falseAlertGroups} groups) in ${Math.round(ms)} ms`,
  );
  return { evaluation, ms };
}

const full = run('full', { seed: detectorSeed });
const rulesOnly = run('rulesOnly', { seed: detectorSeed, model: false });
const modelOnly = run('modelOnly', { seed: detectorSeed, rules: false });
for (const [kind, figures] of Object.entries(full.evaluation.byAttack))
  progress(`  ${kind.padEnd(18)} ${figures.detected}/${figures.episodes}`);

const headline = (evaluation: Evaluation): Record<string, number> => ({
  precision: round(evaluation.precision, 4),
  episodePrecision: round(evaluation.episodePrecision, 4),
  recall: round(evaluation.recall, 4),
  f1: round(evaluation.f1, 4),
  falsePositivesPer10k: round(evaluation.falsePositivesPer10k, 3),
});
const totalMs = performance.now() - started;
const line = {
  ...headline(full.evaluation),
  byAttack: Object.fromEntries(
    Object.entries(full.evaluation.byAttack).map(([kind, figures]) => [
      kind,
      { ...figures, recall: round(figures.recall, 4) },
    ]),
  ),
  rulesOnly: headline(rulesOnly.evaluation),
  modelOnly: headline(modelOnly.evaluation),
  seed,
  events: trace.events.length,
  ms: Math.round(totalMs),
  /** The full detector (rules and model) over the whole trace, feeding and ticking included. */
  observationsPerSecond: Math.round(trace.events.length / (full.ms / 1_000)),
  goalMet:
    full.evaluation.precision >= 0.95 &&
    full.evaluation.recall >= 0.9 &&
    full.evaluation.falsePositivesPer10k <= 1,
};

const timestamp = new Date().toISOString();
const describeAlert = (alert: Evaluation['unmatched'][number]): Record<string, unknown> => ({
  rule: alert.rule,
  organization: alert.organization,
  firstAt: new Date(alert.firstAt).toISOString(),
  score: alert.score,
  summary: alert.summary,
});
const record = {
  name: 'eval-anomaly',
  timestamp,
  machine: machineInfo(),
  ...line,
  details: {
    trace: {
      parameters: traceParameters,
      normalEvents: trace.normalEvents,
      attackEvents: trace.attackEvents,
      days: round(trace.durationMs / 86_400_000, 2),
      organizations: trace.organizations,
    },
    detector: {
      windowMs: defaultWindowMs,
      modelThreshold: defaultModelThreshold,
      rules: defaultRuleThresholds,
      seed: detectorSeed,
    },
    rulesDetecting,
    runs: Object.fromEntries(
      (
        [
          ['full', full],
          ['rulesOnly', rulesOnly],
          ['modelOnly', modelOnly],
        ] as const
      ).map(([name, { evaluation, ms }]) => [
        name,
        {
          ...headline(evaluation),
          ms: Math.round(ms),
          alerts: evaluation.alerts,
          falsePositives: evaluation.falsePositives,
          falseAlertGroups: evaluation.falseAlertGroups,
          byAttack: evaluation.byAttack,
          byRule: evaluation.byRule,
          missed: evaluation.missed.map((episode) => ({
            kind: episode.kind,
            organization: episode.organization,
            events: episode.events,
            description: episode.description,
          })),
          falsePositiveAlerts: evaluation.unmatched.slice(0, 50).map(describeAlert),
        },
      ]),
    ),
  },
};
mkdirSync(resultsDirectory, { recursive: true });
const text = `${JSON.stringify(record, null, 2)}\n`;
const file = join(resultsDirectory, `eval-anomaly-${timestamp.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, text);
writeFileSync(join(resultsDirectory, 'eval-anomaly-latest.json'), text);
progress(`results: ${file}`);
if (!values.json) {
  for (const episode of full.evaluation.missed)
    process.stdout.write(`missed ${episode.kind} ${episode.organization || "''"}: ${episode.description}\n`);
  for (const alert of full.evaluation.unmatched.slice(0, 20))
    process.stdout.write(`false positive ${alert.rule} ${alert.organization}: ${alert.summary}\n`);
}
process.stdout.write(`${JSON.stringify(line)}\n`);
