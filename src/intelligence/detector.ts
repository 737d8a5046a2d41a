/**
 * The anomaly detector every node runs (DESIGN §9, issue 16 item 2): hard-violation rules on each
 * observation (rules.ts) and, per organization, Half-Space Trees over windows of features
 * (features.ts, half-space-trees.ts). Rules answer at once from `observe`; a window is scored when it
 * closes — by the organization's next observation past its end, or by `tick`.
 *
 * The model scores a window, then learns it unless it alerted (an attack must not teach the model that
 * it is normal). Its alert names the features that drove the score (the trees' exact split of it,
 * `HalfSpaceTrees.explain`) with their values in the window.
 *
 * Never in the data path's way: `observe` is O(1) amortised (a map lookup, a few counters, at most one
 * window scored: trees × (height + 1) node visits). If the model throws, the detector degrades to rules
 * only and says so with a 'detector-degraded' alert; the node's service may call `degrade` too (on
 * overload). Bounded: at most `organizationsMax` organizations tracked (the least recently seen go
 * first, with their models), at most `modelsMax` models (each is trees × 2^(height+1) masses, about
 * 60 KiB at the defaults), the rest of the memory bounded per organization in features.ts/rules.ts.
 */
import { ErrorCode, LedgerbusError } from '../errors.js';
import { alertRules } from './alert.js';
import type { AlertFeature, AlertRule, AnomalyAlert } from './alert.js';
import { OrganizationFeatures, RecentMap, featureNames, featureRanges } from './features.js';
import type { FeatureWindow } from './features.js';
import { HalfSpaceTrees } from './half-space-trees.js';
import type { Observation } from './observations.js';
import { OrganizationRuleState, RuleEngine } from './rules.js';
import type { RuleThresholds } from './rules.js';

export interface DetectorOptions {
  readonly seed: number;
  /** Window of the model's features (ms). Default 5 min: see `defaultWindowMs`. */
  readonly windowMs?: number;
  /** Default true; false = rules only. */
  readonly model?: boolean;
  /** Default true; false = model only (for the evaluation's comparison). */
  readonly rules?: boolean;
  /** Score at or above which a window alerts. Default `defaultModelThreshold`. */
  readonly modelThreshold?: number;
  /** One alert per (organization, rule) per cooldown. Default 60 s. */
  readonly cooldownMs?: number;
  /** Organizations tracked at most. Default 10,000. */
  readonly organizationsMax?: number;
  /** Per-organization models kept at most (least recently scored go first). Default 512. */
  readonly modelsMax?: number;
  /** Rule limits (defaults: `defaultRuleThresholds`). */
  readonly thresholds?: Partial<RuleThresholds>;
}

/**
 * Five minutes: the trees' reference is their previous 250 windows (River's default), and an active
 * organization fills about 250 five-minute windows a day, so the reference is about one daily cycle
 * rather than a morning or a night shift. Ten-second windows would make it under an hour of work.
 */
export const defaultWindowMs = 300_000;
/** Chosen on the labelled trace of seed 1 (bench/eval-anomaly.ts, bench/REPORT.md). */
export const defaultModelThreshold = 0.83;

const ruleIndex = new Map<AlertRule, number>(alertRules.map((rule, index) => [rule, index]));

interface OrganizationState {
  readonly features: OrganizationFeatures;
  readonly rules: OrganizationRuleState;
  /** Last alert time per rule (index in `alertRules`), for the cooldown. */
  readonly lastAlertAt: Float64Array;
}

export class AnomalyDetector {
  private readonly windowMs: number;
  private readonly useRules: boolean;
  private useModel: boolean;
  private readonly modelThreshold: number;
  private readonly cooldownMs: number;
  private readonly organizations: RecentMap<OrganizationState>;
  private readonly models: RecentMap<HalfSpaceTrees>;
  private readonly engine: RuleEngine;
  private readonly unknownLastAlertAt = new Float64Array(alertRules.length).fill(-Infinity);
  private observed = 0;
  private raised = 0;

  constructor(private readonly options: DetectorOptions) {
    this.windowMs = options.windowMs ?? defaultWindowMs;
    this.useRules = options.rules ?? true;
    this.useModel = options.model ?? true;
    this.modelThreshold = options.modelThreshold ?? defaultModelThreshold;
    this.cooldownMs = options.cooldownMs ?? 60_000;
    const organizationsMax = options.organizationsMax ?? 10_000;
    const modelsMax = Math.min(options.modelsMax ?? 512, organizationsMax);
    const whole = (value: number): boolean => Number.isSafeInteger(value) && value >= 1;
    if (
      !Number.isSafeInteger(options.seed) ||
      !whole(this.windowMs) ||
      !whole(organizationsMax) ||
      !whole(modelsMax) ||
      !(this.cooldownMs >= 0) ||
      !(this.modelThreshold > 0 && this.modelThreshold <= 1)
    ) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `anomaly detector: seed must be an integer, windowMs, organizationsMax and modelsMax whole numbers ≥ 1, cooldownMs ≥ 0 and modelThreshold in (0, 1] (got seed ${options.seed}, windowMs ${this.windowMs}, organizationsMax ${organizationsMax}, modelsMax ${modelsMax}, cooldownMs ${this.cooldownMs}, modelThreshold ${this.modelThreshold})`,
      );
    }
    this.organizations = new RecentMap(organizationsMax);
    this.models = new RecentMap(modelsMax);
    this.engine = new RuleEngine(options.thresholds);
  }

  get mode(): 'full' | 'rulesOnly' {
    return this.useModel ? 'full' : 'rulesOnly';
  }

  observe(observation: Observation): AnomalyAlert[] {
    this.observed++;
    const out: AnomalyAlert[] = [];
    if (observation.organization === '' || observation.kind === 'unknownKey') {
      if (this.useRules) this.engine.unknownKey(observation, out);
      return this.cooled(out, this.unknownLastAlertAt);
    }
    const state = this.stateOf(observation.organization);
    const closed = state.features.roll(observation.at);
    if (closed !== undefined) this.scoreWindow(closed, out);
    if (this.useRules) this.engine.evaluate(observation, state.features, state.rules, out);
    else if (observation.kind === 'publish') state.features.noteSize(observation.bytes, false);
    state.features.add(observation);
    return this.cooled(out, state.lastAlertAt);
  }

  tick(now: number): AnomalyAlert[] {
    const all: AnomalyAlert[] = [];
    for (const state of this.organizations.values()) {
      const features = state.features;
      if (!features.windowOpen || features.windowEndsAt > now) continue;
      const closed = features.close();
      if (closed === undefined) continue;
      const out: AnomalyAlert[] = [];
      this.scoreWindow(closed, out);
      all.push(...this.cooled(out, state.lastAlertAt));
    }
    return all;
  }

  degrade(reason: string, at: number): AnomalyAlert {
    this.useModel = false;
    // Drop the models: whatever overloaded or broke them should not keep their memory either.
    for (const [organization] of [...this.models.entries()]) this.models.delete(organization);
    this.raised++;
    return {
      organization: '',
      rule: 'detector-degraded',
      severity: 'warning',
      score: 1,
      threshold: 1,
      features: [{ name: 'observations', value: this.observed, contribution: 1 }],
      summary: `The anomaly detector runs on rules only from now on: ${reason}`.slice(0, 512),
      firstAt: at,
      lastAt: at,
      observations: this.observed,
      suggested: 'none',
    };
  }

  stats(): { observations: number; alerts: number; organizations: number; mode: 'full' | 'rulesOnly' } {
    return {
      observations: this.observed,
      alerts: this.raised,
      organizations: this.organizations.size,
      mode: this.mode,
    };
  }

  private stateOf(organization: string): OrganizationState {
    let state = this.organizations.peek(organization);
    if (state === undefined) {
      state = {
        features: new OrganizationFeatures(organization, { windowMs: this.windowMs }),
        rules: new OrganizationRuleState(),
        lastAlertAt: new Float64Array(alertRules.length).fill(-Infinity),
      };
    }
    const evicted = this.organizations.set(organization, state);
    if (evicted !== undefined) this.models.delete(evicted[0]);
    return state;
  }

  private scoreWindow(window: FeatureWindow, out: AnomalyAlert[]): void {
    if (!this.useModel) return;
    try {
      let model = this.models.peek(window.organization);
      if (model === undefined) {
        model = new HalfSpaceTrees({
          seed: this.options.seed,
          features: featureNames,
          ranges: featureRanges,
        });
      }
      this.models.set(window.organization, model);
      const score = model.warm ? model.score(window.values) : 0;
      if (score >= this.modelThreshold) {
        out.push(this.modelAlert(window, score, model));
        return;
      }
      model.learn(window.values);
    } catch (error) {
      out.push(
        this.degrade(
          `the model failed on a window of ${window.organization}: ${error instanceof Error ? error.message : String(error)}`,
          window.lastAt,
        ),
      );
      // degrade() counted it; cooled() will count it again.
      this.raised--;
    }
  }

  private modelAlert(window: FeatureWindow, score: number, model: HalfSpaceTrees): AnomalyAlert {
    const drivers = model
      .explain(window.values)
      .filter((part) => part.contribution > 0)
      .slice(0, 8);
    const features: AlertFeature[] = drivers.map((part) => ({
      name: part.feature,
      value: round(window.values[part.index]!),
      contribution: round(part.contribution),
    }));
    const described = drivers
      .slice(0, 3)
      .map(
        (part) =>
          `${part.feature} ${readable(part.feature, window.values[part.index]!)} (${Math.round(part.contribution * 100)}%)`,
      )
      .join(', ');
    return {
      organization: window.organization,
      rule: 'model',
      severity: score >= (1 + this.modelThreshold) / 2 ? 'critical' : 'warning',
      score: round(score),
      threshold: this.modelThreshold,
      features,
      summary: `${window.organization}: its ${Math.round(this.windowMs / 1_000)} s window from ${new Date(window.startAt).toISOString()} (${window.observations} observations) scored ${score.toFixed(3)} against its own history (threshold ${this.modelThreshold}), driven by ${described}.`,
      firstAt: window.firstAt,
      lastAt: window.lastAt,
      observations: window.observations,
      suggested: 'none',
    };
  }

  /** Keeps one alert per (organization, rule) per cooldown; counts what it keeps. */
  private cooled(alerts: AnomalyAlert[], lastAlertAt: Float64Array): AnomalyAlert[] {
    if (alerts.length === 0) return alerts;
    const kept: AnomalyAlert[] = [];
    for (const alert of alerts) {
      const index = ruleIndex.get(alert.rule)!;
      if (alert.rule !== 'detector-degraded' && alert.lastAt - lastAlertAt[index]! < this.cooldownMs)
        continue;
      lastAlertAt[index] = alert.lastAt;
      kept.push(alert);
    }
    this.raised += kept.length;
    return kept;
  }
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

/** A feature's window value as a person reads it: counts and bytes back from their log scale. */
function readable(feature: string, value: number): string {
  if (feature === 'hourSin' || feature === 'hourCos' || feature.endsWith('Share')) return value.toFixed(2);
  const decoded = 2 ** value - 1;
  if (feature.startsWith('bytes') || feature.endsWith('BytesLog'))
    return `${(decoded / 1_048_576).toFixed(2)} MiB`;
  return `${Math.round(decoded)}`;
}
