/**
 * A seeded, labelled trace of what nodes observe (issue 16 item 4): honest traffic of several
 * organizations with injected attacks from BlockTorrent's Table 2 and the SDT paper's §5.1, for
 * measuring the detectors (bench/eval-anomaly.ts). Pure: the same options give the same trace.
 *
 * Honest traffic (fixed before the detector was tuned; parameters in `traceParameters`):
 * - `organizations` publishers (default 8) and `passiveOrganizations` receivers (default 4), each
 *   publisher in its own time zone (UTC−8 … UTC+9) with a working-day rhythm: a peak rate log-uniform
 *   in 1–5 publishes/min from 09:00 to 17:00 local (ramps 07–09 and 17–19, a lunch dip), 5–12 % of it
 *   at night, a fifth of it at weekends;
 * - bursts: 3 per day per organization on average, 3–10 min at 4× the rate; 3 of 8 organizations run
 *   a nightly batch job (10–30 min at 01:00–04:00 local, 8× the peak rate, 4× larger payloads);
 * - payloads: a log-normal mixture per organization, small (median 1–8 KiB) and large (median
 *   0.5–4 MiB, 10–30 % of messages), σ = 1 each;
 * - recipients: 2–4 partners with Zipf weights, 20 % of messages to 2–3 of them; about every 2.5 days
 *   an organization adds a partner (the new partner gets an ordinary share: not an attack);
 * - each recipient fetches (served) a few seconds later and confirms; entry points are the
 *   organization's own node, with a failover to another node of the network for 20–90 min about
 *   every other day, at any hour (a node goes down at night too);
 * - honest errors: a refused fetch (wrong message id) on 0.15 % of fetches, a not-found race on
 *   0.2 %, policy rejections on 0.2 % of publishes, RATE_LIMITED on 1 % of burst and batch publishes,
 *   a clock-skewed replay (1–2 REPLAY/TIMESTAMP_OUT_OF_WINDOW) 0.25 times a day per organization, a
 *   client retry bug's MESSAGE_ID_CONFLICT 0.08 times a day, a connector with a stale key (1–5
 *   unknown-key attempts from one key) twice a day network-wide, a pending organization's connector
 *   trying before approval, and a supervisor's admin actions.
 *
 * Attacks, `episodesPerKindPer100k` episodes of each kind (default 6) per 100,000 events, starting
 * uniformly between `attackFrom` (default 30 %: the node has run for a day) and 90 % of the trace,
 * each with an intensity drawn over a range whose low end is deliberately below the rules' limits:
 * flood, sybil, replay, unauthorizedFetch, credentialMisuse, exfiltration, tampering,
 * suspendedActivity (see `generateAttack`). An episode is the run of its labelled events: one
 * organization (or '' for Sybil keys), from its first to its last event. Attacks come through the
 * same kind of entry points as honest traffic (`node-<organization>`): a stolen key or a replayer
 * uses a node of the network the organization had not used before the attack, Sybil keys any
 * node, so an address format gives nothing away.
 */
import { SeededRandom } from '../consensus/seeded-random.js';
import type { Observation } from './observations.js';

export const attackKinds = [
  'flood',
  'sybil',
  'replay',
  'unauthorizedFetch',
  'credentialMisuse',
  'exfiltration',
  'tampering',
  'suspendedActivity',
] as const;
export type AttackKind = (typeof attackKinds)[number];

export interface TraceOptions {
  readonly seed: number;
  /** Events (observations) in the trace. */
  readonly events: number;
  readonly organizations?: number;
  readonly passiveOrganizations?: number;
  /** Trace start (ms); default Monday 2026-01-05 00:00 UTC. */
  readonly startAt?: number;
  readonly episodesPerKindPer100k?: number;
  /** Share of the trace's duration before the first attack. */
  readonly attackFrom?: number;
}

export interface LabelledObservation {
  readonly observation: Observation;
  /** Present on attack events only. */
  readonly attack?: AttackKind;
  readonly episode?: number;
}

export interface Episode {
  readonly id: number;
  readonly kind: AttackKind;
  /** The acting organization ('' for unregistered keys). */
  readonly organization: string;
  readonly startAt: number;
  readonly endAt: number;
  readonly events: number;
  /** The drawn intensity, in words. */
  readonly description: string;
}

export interface OrganizationProfile {
  readonly name: string;
  readonly node: string;
  readonly utcOffsetHours: number;
  readonly peakPerMinute: number;
  readonly nightFactor: number;
  /** Local hour the nightly batch starts, or undefined. */
  readonly batchHour: number | undefined;
  readonly batchMinutes: number;
  readonly smallMedianBytes: number;
  readonly largeMedianBytes: number;
  readonly largeShare: number;
  readonly topics: readonly string[];
  /** Initial partners (more are added over time). */
  readonly partners: readonly string[];
}

export interface Trace {
  readonly events: readonly LabelledObservation[];
  readonly episodes: readonly Episode[];
  readonly normalEvents: number;
  readonly attackEvents: number;
  readonly startAt: number;
  readonly durationMs: number;
  readonly organizations: readonly OrganizationProfile[];
}

/** The generator's fixed parameters (documented above; reported beside every evaluation). */
export const traceParameters = {
  organizations: 8,
  passiveOrganizations: 4,
  startAt: Date.UTC(2026, 0, 5),
  episodesPerKindPer100k: 6,
  attackFrom: 0.3,
  peakPerMinute: [1, 5],
  nightFactor: [0.05, 0.12],
  weekendFactor: 0.2,
  burstsPerDay: 3,
  burstMinutes: [3, 10],
  burstFactor: 4,
  batchOrganizationsShare: 3 / 8,
  batchMinutes: [10, 30],
  batchFactor: 8,
  batchSizeFactor: 4,
  smallMedianBytes: [1_024, 8_192],
  largeMedianBytes: [512 * 1_024, 4 * 1_048_576],
  largeShare: [0.1, 0.3],
  multiRecipientShare: 0.2,
  newPartnerPerDay: 0.4,
  failoverPerDay: 0.5,
  refusedFetchShare: 0.0015,
  notFoundShare: 0.002,
  policyRejectShare: 0.002,
  burstRateLimitedShare: 0.01,
  clockSkewReplaysPerDay: 0.25,
  idConflictsPerDay: 0.08,
  staleKeysPerDay: 2,
} as const;

const minuteMs = 60_000;
const hourMs = 3_600_000;
const dayMs = 86_400_000;

class Random {
  private readonly source: SeededRandom;
  private spare: number | undefined;

  constructor(seed: number) {
    this.source = new SeededRandom(seed);
  }

  uniform(): number {
    return this.source.uniform();
  }

  between(low: number, high: number): number {
    return low + (high - low) * this.uniform();
  }

  logBetween(low: number, high: number): number {
    return Math.exp(this.between(Math.log(low), Math.log(high)));
  }

  int(low: number, high: number): number {
    return this.source.int(low, high);
  }

  chance(p: number): boolean {
    return this.uniform() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  normal(): number {
    if (this.spare !== undefined) {
      const value = this.spare;
      this.spare = undefined;
      return value;
    }
    const u = Math.max(this.uniform(), 1e-12);
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * this.normal()));
    const limit = Math.exp(-mean);
    let k = 0;
    let p = this.uniform();
    while (p > limit) {
      k++;
      p *= this.uniform();
    }
    return k;
  }

  hex(bytes: number): string {
    let text = '';
    for (let i = 0; i < bytes; i++) text += this.int(0, 255).toString(16).padStart(2, '0');
    return text;
  }
}

/** Mutable per-organization state while generating. */
interface Organization extends OrganizationProfile {
  partnerList: string[];
  weights: number[];
  via: string;
  viaUntil: number;
  burstUntil: number;
  batchDay: number;
  batchStart: number;
}

const zones = [-8, -5, -3, 0, 1, 2, 3, 5.5, 8, 9];

function workShape(localHour: number): number {
  if (localHour < 7 || localHour >= 19) return 0;
  if (localHour < 9) return (localHour - 7) / 2;
  if (localHour >= 17) return (19 - localHour) / 2;
  if (localHour >= 12 && localHour < 13) return 0.7;
  return 1;
}

function localTime(organization: OrganizationProfile, at: number): { hour: number; weekday: number } {
  const local = at + organization.utcOffsetHours * hourMs;
  const hour = (((local % dayMs) + dayMs) % dayMs) / hourMs;
  // 1970-01-01 was a Thursday: day 0 → 3 (Monday = 0).
  const weekday = (Math.floor(local / dayMs) + 3) % 7;
  return { hour, weekday };
}

/** Publishes per minute of `organization` at `at`, without bursts and batches. */
function baseRate(organization: OrganizationProfile, at: number): number {
  const { hour, weekday } = localTime(organization, at);
  const shape = organization.nightFactor + (1 - organization.nightFactor) * workShape(hour);
  return organization.peakPerMinute * shape * (weekday >= 5 ? traceParameters.weekendFactor : 1);
}

export function generateTrace(options: TraceOptions): Trace {
  if (!Number.isSafeInteger(options.events) || options.events < 1) {
    throw new Error(`generateTrace: events must be a whole number ≥ 1, not ${options.events}`);
  }
  const p = traceParameters;
  const random = new Random(options.seed);
  const startAt = options.startAt ?? p.startAt;
  const publishers = options.organizations ?? p.organizations;
  const passives = options.passiveOrganizations ?? p.passiveOrganizations;
  const allNames = Array.from({ length: publishers + passives }, (_, i) => `org${i + 1}`);
  const passiveNames = allNames.slice(publishers);
  const batchCount = Math.round(publishers * p.batchOrganizationsShare);

  const organizations: Organization[] = allNames.slice(0, publishers).map((name, i) => {
    const others = allNames.filter((other) => other !== name);
    const partnerCount = random.int(2, 4);
    const partners: string[] = [];
    while (partners.length < partnerCount) {
      const candidate = random.pick(others);
      if (!partners.includes(candidate)) partners.push(candidate);
    }
    const topicCount = random.int(1, 3);
    return {
      name,
      node: `node-${name}`,
      utcOffsetHours: zones[(i * 3 + random.int(0, zones.length - 1)) % zones.length]!,
      peakPerMinute: random.logBetween(p.peakPerMinute[0], p.peakPerMinute[1]),
      nightFactor: random.between(p.nightFactor[0], p.nightFactor[1]),
      batchHour: i < batchCount ? random.between(1, 4) : undefined,
      batchMinutes: random.between(p.batchMinutes[0], p.batchMinutes[1]),
      smallMedianBytes: random.logBetween(p.smallMedianBytes[0], p.smallMedianBytes[1]),
      largeMedianBytes: random.logBetween(p.largeMedianBytes[0], p.largeMedianBytes[1]),
      largeShare: random.between(p.largeShare[0], p.largeShare[1]),
      topics: Array.from({ length: topicCount }, (_, k) => `${name}.stream${k + 1}`),
      partners,
      partnerList: [...partners],
      weights: partners.map((_, k) => 1 / (k + 1)),
      via: `node-${name}`,
      viaUntil: 0,
      burstUntil: 0,
      batchDay: -1,
      batchStart: 0,
    };
  });
  const byName = new Map(organizations.map((o) => [o.name, o]));
  const viaOf = (name: string): string => byName.get(name)?.via ?? `node-${name}`;
  const networkNodes = allNames.map((name) => `node-${name}`);
  /** Organization → entry point → first used (ms), so attacks can pick a node new to their victim. */
  const viaFirstUsed = new Map<string, Map<string, number>>();

  const normal: LabelledObservation[] = [];
  const push = (observation: Observation): void => {
    normal.push({ observation });
    if (observation.via === undefined) return;
    let used = viaFirstUsed.get(observation.organization);
    if (used === undefined) viaFirstUsed.set(observation.organization, (used = new Map()));
    const first = used.get(observation.via);
    if (first === undefined || observation.at < first) used.set(observation.via, observation.at);
  };
  const payloadSize = (o: Organization, batch: boolean): number => {
    const large = random.chance(o.largeShare);
    const median = large ? o.largeMedianBytes : o.smallMedianBytes;
    return Math.max(64, Math.round(random.logNormal(median * (batch ? p.batchSizeFactor : 1), 1)));
  };
  const pickRecipients = (o: Organization): string[] => {
    const total = o.weights.reduce((a, b) => a + b, 0);
    const draw = (): string => {
      let x = random.uniform() * total;
      for (let k = 0; k < o.partnerList.length; k++) {
        x -= o.weights[k]!;
        if (x < 0) return o.partnerList[k]!;
      }
      return o.partnerList[o.partnerList.length - 1]!;
    };
    const count = random.chance(p.multiRecipientShare) ? random.int(2, Math.min(3, o.partnerList.length)) : 1;
    const chosen = new Set<string>();
    for (let tries = 0; chosen.size < count && tries < 20; tries++) chosen.add(draw());
    return [...chosen];
  };

  const publish = (o: Organization, at: number, heavy: boolean, batch: boolean): void => {
    const topic = random.pick(o.topics);
    const via = o.via;
    if (heavy && random.chance(p.burstRateLimitedShare)) {
      push({ kind: 'rateLimited', at, node: via, organization: o.name, via, method: 'publish' });
      at += random.int(200, 2_000);
    }
    const recipients = pickRecipients(o);
    if (random.chance(p.policyRejectShare)) {
      const reason = random.pick(['RECIPIENT_NOT_ALLOWED', 'PRODUCE_NOT_ALLOWED', 'MESSAGE_TOO_LARGE']);
      push({ kind: 'reject', at, node: via, organization: o.name, via, topic, reason, stage: 'contract' });
      return;
    }
    const bytes = payloadSize(o, batch);
    push({ kind: 'publish', at, node: via, organization: o.name, via, topic, bytes, recipients });
    for (const recipient of recipients) {
      const recipientVia = viaOf(recipient);
      let fetchAt = at + Math.round(random.logNormal(3_000, 1));
      if (random.chance(p.notFoundShare)) {
        push({
          kind: 'fetch',
          at: fetchAt,
          node: recipientVia,
          organization: recipient,
          via: recipientVia,
          topic,
          outcome: 'notFound',
        });
        fetchAt += random.int(500, 5_000);
      }
      if (random.chance(p.refusedFetchShare)) {
        push({
          kind: 'fetch',
          at: fetchAt,
          node: recipientVia,
          organization: recipient,
          via: recipientVia,
          topic,
          outcome: 'notRecipient',
        });
        fetchAt += random.int(100, 2_000);
      }
      push({
        kind: 'fetch',
        at: fetchAt,
        node: recipientVia,
        organization: recipient,
        via: recipientVia,
        topic,
        outcome: 'served',
      });
      const delayMs = fetchAt - at + random.int(100, 2_000);
      push({
        kind: 'confirm',
        at: at + delayMs,
        node: recipientVia,
        organization: recipient,
        via: recipientVia,
        topic,
        delayMs,
      });
    }
  };

  // Honest traffic minute by minute until well past the requested count (the tail is cut later).
  const pendingName = `org${allNames.length + 1}`;
  const pendingAt = startAt + random.between(0.2, 0.6) * dayMs;
  let pendingDone = false;
  let at = startAt;
  let countReachedAt = Number.NaN;
  const supervisor = organizations[0]!;
  while (normal.length < options.events * 1.08 + 50) {
    if (Number.isNaN(countReachedAt) && normal.length >= options.events) countReachedAt = at;
    const perMinute = (perDay: number): number => perDay / 1_440;
    for (const o of organizations) {
      const { hour, weekday } = localTime(o, at);
      const working = workShape(hour) >= 1 && weekday < 5;
      if (o.viaUntil !== 0 && at >= o.viaUntil) {
        o.via = o.node;
        o.viaUntil = 0;
      }
      if (o.viaUntil === 0 && random.chance(perMinute(p.failoverPerDay))) {
        const others = organizations.filter((other) => other !== o);
        o.via = random.pick(others).node;
        o.viaUntil = at + random.between(20, 90) * minuteMs;
      }
      if (random.chance(perMinute(p.newPartnerPerDay))) {
        const candidates = allNames.filter((name) => name !== o.name && !o.partnerList.includes(name));
        if (candidates.length > 0) {
          o.partnerList.push(random.pick(candidates));
          o.weights.push(1 / o.partnerList.length);
        }
      }
      if (at >= o.burstUntil && random.chance(perMinute(p.burstsPerDay) * (working ? 2 : 0.3))) {
        o.burstUntil = at + random.between(p.burstMinutes[0], p.burstMinutes[1]) * minuteMs;
      }
      let rate = baseRate(o, at);
      const bursting = at < o.burstUntil;
      if (bursting) rate *= p.burstFactor;
      let batch = false;
      if (o.batchHour !== undefined) {
        const day = Math.floor((at + o.utcOffsetHours * hourMs) / dayMs);
        if (o.batchDay !== day && hour >= o.batchHour) {
          o.batchDay = day;
          o.batchStart = at;
        }
        if (o.batchDay === day && at < o.batchStart + o.batchMinutes * minuteMs) {
          rate += o.peakPerMinute * p.batchFactor;
          batch = true;
        }
      }
      const count = random.poisson(rate);
      for (let k = 0; k < count; k++) publish(o, at + random.int(0, minuteMs - 1), bursting || batch, batch);
      // Honest mistakes that look like the attacks' first steps.
      if (random.chance(perMinute(p.clockSkewReplaysPerDay))) {
        const n = random.chance(0.7) ? 1 : 2;
        for (let k = 0; k < n; k++) {
          const reason = random.pick(['REPLAY', 'TIMESTAMP_OUT_OF_WINDOW']);
          push({
            kind: 'reject',
            at: at + random.int(0, minuteMs - 1),
            node: o.via,
            organization: o.name,
            via: o.via,
            topic: random.pick(o.topics),
            reason,
            stage: 'contract',
          });
        }
      }
      if (random.chance(perMinute(p.idConflictsPerDay))) {
        push({
          kind: 'reject',
          at: at + random.int(0, minuteMs - 1),
          node: o.via,
          organization: o.name,
          via: o.via,
          topic: random.pick(o.topics),
          reason: 'MESSAGE_ID_CONFLICT',
          stage: 'contract',
        });
      }
    }
    if (random.chance(p.staleKeysPerDay / 1_440)) {
      const key = random.hex(8);
      const n = random.int(1, 5);
      const via = random.pick(organizations).node;
      let t = at + random.int(0, minuteMs - 1);
      for (let k = 0; k < n; k++) {
        push({ kind: 'unknownKey', at: t, node: via, organization: '', via, key });
        t += 1_000 * 2 ** k + random.int(0, 500);
      }
    }
    const supervisorTime = localTime(supervisor, at);
    if (workShape(supervisorTime.hour) >= 1 && random.chance(3 / 480)) {
      const action = random.pick(['setTopicPolicy', 'addTopic', 'setQuota', 'ackAlert']);
      push({
        kind: 'admin',
        at: at + random.int(0, minuteMs - 1),
        node: supervisor.via,
        organization: supervisor.name,
        via: supervisor.via,
        action,
        outcome: 'OK',
      });
    }
    if (!pendingDone && at >= pendingAt) {
      pendingDone = true;
      let t = at;
      const via = random.pick(organizations).node;
      for (let k = random.int(2, 6); k > 0; k--) {
        push({
          kind: 'notApproved',
          at: t,
          node: via,
          organization: pendingName,
          via,
          status: 'PENDING',
          method: 'connect',
        });
        t += random.int(5_000, 60_000);
      }
      push({
        kind: 'registry',
        at: t,
        node: supervisor.via,
        organization: supervisor.name,
        change: `approve ${pendingName}`,
      });
    }
    at += minuteMs;
  }
  const durationMs = countReachedAt - startAt;

  // Attacks.
  const attacks: LabelledObservation[] = [];
  const removals: { organization: string; from: number; to: number }[] = [];
  const episodesPerKind = Math.max(
    1,
    Math.round(((options.episodesPerKindPer100k ?? p.episodesPerKindPer100k) * options.events) / 100_000),
  );
  const attackFrom = options.attackFrom ?? p.attackFrom;
  const unusedNode = (o: Organization, before: number): string => {
    const used = viaFirstUsed.get(o.name);
    const fresh = networkNodes.filter(
      (node) => node !== o.node && !((used?.get(node) ?? Infinity) <= before),
    );
    return random.pick(fresh.length > 0 ? fresh : networkNodes.filter((node) => node !== o.node));
  };
  const descriptions = new Map<number, string>();
  let episodeId = 0;
  for (const kind of attackKinds) {
    for (let k = 0; k < episodesPerKind; k++) {
      const id = episodeId++;
      const begin = startAt + random.between(attackFrom, 0.9) * durationMs;
      const description = generateAttack(
        kind,
        id,
        begin,
        random,
        organizations,
        passiveNames,
        supervisor,
        attacks,
        removals,
        unusedNode,
      );
      descriptions.set(id, description);
    }
  }

  const kept = normal.filter(
    ({ observation: o }) =>
      !removals.some((r) => o.organization === r.organization && o.at >= r.from && o.at <= r.to),
  );
  const all = [...kept, ...attacks].sort((a, b) => a.observation.at - b.observation.at);
  const events = all.slice(0, options.events);

  const spans = new Map<
    number,
    { kind: AttackKind; organization: string; first: number; last: number; events: number }
  >();
  let attackEvents = 0;
  for (const event of events) {
    if (event.episode === undefined || event.attack === undefined) continue;
    attackEvents++;
    const span = spans.get(event.episode);
    const when = event.observation.at;
    if (span === undefined)
      spans.set(event.episode, {
        kind: event.attack,
        organization: event.observation.organization,
        first: when,
        last: when,
        events: 1,
      });
    else {
      span.first = Math.min(span.first, when);
      span.last = Math.max(span.last, when);
      span.events++;
    }
  }
  const episodes: Episode[] = [...spans.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([id, span]) => ({
      id,
      kind: span.kind,
      organization: span.organization,
      startAt: span.first,
      endAt: span.last,
      events: span.events,
      description: descriptions.get(id) ?? '',
    }));
  const last = events[events.length - 1]?.observation.at ?? startAt;
  return {
    events,
    episodes,
    normalEvents: events.length - attackEvents,
    attackEvents,
    startAt,
    durationMs: last - startAt,
    organizations: organizations.map((o) => ({
      name: o.name,
      node: o.node,
      utcOffsetHours: o.utcOffsetHours,
      peakPerMinute: o.peakPerMinute,
      nightFactor: o.nightFactor,
      batchHour: o.batchHour,
      batchMinutes: o.batchMinutes,
      smallMedianBytes: o.smallMedianBytes,
      largeMedianBytes: o.largeMedianBytes,
      largeShare: o.largeShare,
      topics: o.topics,
      partners: o.partners,
    })),
  };
}

/** Generates one episode's events into `out`; returns its intensity in words. */
function generateAttack(
  kind: AttackKind,
  episode: number,
  begin: number,
  random: Random,
  organizations: readonly Organization[],
  passiveNames: readonly string[],
  supervisor: Organization,
  out: LabelledObservation[],
  removals: { organization: string; from: number; to: number }[],
  unusedNode: (o: Organization, before: number) => string,
): string {
  const o = random.pick(organizations);
  const label = (observation: Observation): void => {
    out.push({ observation, attack: kind, episode });
  };
  const spread = (n: number, spanMs: number): number[] => {
    const times = Array.from({ length: n }, () => Math.floor(begin + random.uniform() * spanMs));
    return times.sort((a, b) => a - b);
  };
  switch (kind) {
    case 'flood': {
      // A member's connector (compromised or broken) sends invalid transactions; slow floods exist.
      const perSecond = random.logBetween(0.3, 20);
      const seconds = random.logBetween(60, 300);
      const n = Math.min(1_500, Math.max(10, Math.round(perSecond * seconds)));
      for (const at of spread(n, seconds * 1_000)) {
        if (random.chance(0.3))
          label({
            kind: 'rateLimited',
            at,
            node: o.node,
            organization: o.name,
            via: o.node,
            method: 'publish',
          });
        else
          label({
            kind: 'reject',
            at,
            node: o.node,
            organization: o.name,
            via: o.node,
            topic: random.pick(o.topics),
            reason: random.pick([
              'MALFORMED',
              'TOPIC_UNKNOWN',
              'WRONG_PARTITION',
              'RECIPIENT_UNKNOWN',
              'MESSAGE_TOO_LARGE',
            ]),
            stage: random.chance(0.5) ? 'node' : 'contract',
          });
      }
      return `${n} invalid or rate-limited requests from ${o.name} in ${Math.round(seconds)} s`;
    }
    case 'sybil': {
      // Several unregistered identities try to join or transact (Table 2, row 2).
      const keys = random.int(2, 10);
      const spanMs = random.logBetween(1, 15) * minuteMs;
      let n = 0;
      for (let k = 0; k < keys; k++) {
        const key = random.hex(8);
        const via = random.pick(organizations).node;
        for (const at of spread(random.int(1, 4), spanMs)) {
          label({
            kind: 'unknownKey',
            at,
            node: via,
            organization: '',
            via,
            key,
          });
          n++;
        }
      }
      return `${keys} unregistered keys, ${n} attempts over ${Math.round(spanMs / minuteMs)} min`;
    }
    case 'replay': {
      // Captured signed transactions and fetch requests of `o` replayed by someone else.
      const n = Math.round(random.logBetween(3, 40));
      const spanMs = random.logBetween(1, 20) * minuteMs;
      const via = unusedNode(o, begin);
      for (const at of spread(n, spanMs)) {
        if (random.chance(0.3))
          label({
            kind: 'fetch',
            at,
            node: via,
            organization: o.name,
            via,
            topic: random.pick(o.topics),
            outcome: 'replay',
          });
        else
          label({
            kind: 'reject',
            at,
            node: via,
            organization: o.name,
            via,
            topic: random.pick(o.topics),
            reason: 'REPLAY',
            stage: 'contract',
          });
      }
      return `${n} replays of ${o.name}'s requests over ${Math.round(spanMs / minuteMs)} min`;
    }
    case 'unauthorizedFetch': {
      // A member asks for payloads addressed to others (§5.1 abnormal access patterns).
      const n = Math.round(random.logBetween(3, 60));
      const spanMs = random.logBetween(2, 40) * minuteMs;
      for (const at of spread(n, spanMs)) {
        const outcome = random.chance(0.9) ? 'notRecipient' : random.pick(['badSignature', 'stale'] as const);
        label({
          kind: 'fetch',
          at,
          node: o.via,
          organization: o.name,
          via: o.via,
          topic: random.pick(organizations).topics[0]!,
          outcome,
        });
      }
      return `${n} refused fetches by ${o.name} over ${Math.round(spanMs / minuteMs)} min`;
    }
    case 'credentialMisuse': {
      // A stolen key used from a new entry point at an hour the organization sleeps.
      const day = Math.floor((begin + o.utcOffsetHours * hourMs) / dayMs);
      let startLocal = day * dayMs + random.between(1, 5) * hourMs;
      if (o.batchHour !== undefined && Math.abs(startLocal / hourMs - day * 24 - o.batchHour) < 1)
        startLocal += 1.5 * hourMs;
      const start = startLocal - o.utcOffsetHours * hourMs;
      const n = Math.round(random.logBetween(5, 40));
      const spanMs = random.logBetween(5, 30) * minuteMs;
      const via = unusedNode(o, start);
      const times = Array.from({ length: n }, () => Math.floor(start + random.uniform() * spanMs)).sort(
        (a, b) => a - b,
      );
      for (const at of times) {
        const roll = random.uniform();
        const topic = random.pick(organizations).topics[0]!;
        if (roll < 0.6)
          label({ kind: 'fetch', at, node: via, organization: o.name, via, topic, outcome: 'served' });
        else if (roll < 0.85)
          label({
            kind: 'publish',
            at,
            node: via,
            organization: o.name,
            via,
            topic: random.pick(o.topics),
            bytes: Math.round(random.logNormal(o.smallMedianBytes, 1)),
            recipients: [random.pick(o.partners)],
          });
        else
          label({
            kind: 'fetch',
            at,
            node: via,
            organization: o.name,
            via,
            topic,
            outcome: 'notRecipient',
          });
      }
      return `${o.name}'s key used ${n} times from ${via} at local ${((startLocal % dayMs) / hourMs).toFixed(1)} h over ${Math.round(spanMs / minuteMs)} min`;
    }
    case 'exfiltration': {
      // A member moves an abnormal volume to a recipient it never used.
      const candidates = [...passiveNames, ...organizations.map((x) => x.name)].filter(
        (name) => name !== o.name && !o.partnerList.includes(name),
      );
      const recipient = candidates.length > 0 ? random.pick(candidates) : `org-outside-${episode}`;
      const n = Math.round(random.logBetween(10, 150));
      const median = random.logBetween(4, 40) * 1_048_576;
      const spanMs = random.logBetween(5, 60) * minuteMs;
      let total = 0;
      for (const at of spread(n, spanMs)) {
        const bytes = Math.round(random.logNormal(median, 0.5));
        total += bytes;
        label({
          kind: 'publish',
          at,
          node: o.via,
          organization: o.name,
          via: o.via,
          topic: random.pick(o.topics),
          bytes,
          recipients: [recipient],
        });
      }
      return `${o.name} sent ${n} messages, ${Math.round(total / 1_048_576)} MiB, to new recipient ${recipient} over ${Math.round(spanMs / minuteMs)} min`;
    }
    case 'tampering': {
      // Attempts to change recorded metadata or content (§5.1 unvalidated metadata changes).
      const n = random.int(2, 12);
      const spanMs = random.logBetween(1, 30) * minuteMs;
      for (const at of spread(n, spanMs)) {
        const reason = random.pick([
          'MESSAGE_ID_CONFLICT',
          'MESSAGE_ID_CONFLICT',
          'CONTENT_ROOT_MISMATCH',
          'BAD_SIGNATURE',
        ]);
        label({
          kind: 'reject',
          at,
          node: o.via,
          organization: o.name,
          via: o.via,
          topic: random.pick(o.topics),
          reason,
          stage: 'contract',
        });
      }
      return `${n} tampering attempts by ${o.name} over ${Math.round(spanMs / minuteMs)} min`;
    }
    case 'suspendedActivity': {
      // Suspended by the supervisor, the organization keeps trying (its honest traffic stops).
      const n = Math.round(random.logBetween(3, 50));
      const spanMs = random.logBetween(5, 60) * minuteMs;
      out.push({
        observation: {
          kind: 'registry',
          at: Math.floor(begin) - 1,
          node: supervisor.node,
          organization: supervisor.name,
          change: `suspend ${o.name}`,
        },
      });
      for (const at of spread(n, spanMs)) {
        label({
          kind: 'notApproved',
          at,
          node: o.node,
          organization: o.name,
          via: o.node,
          status: 'SUSPENDED',
          method: random.pick(['publish', 'fetch', 'connect']),
        });
      }
      out.push({
        observation: {
          kind: 'registry',
          at: Math.floor(begin + spanMs) + 1,
          node: supervisor.node,
          organization: supervisor.name,
          change: `reinstate ${o.name}`,
        },
      });
      removals.push({ organization: o.name, from: begin, to: begin + spanMs });
      return `${o.name} suspended, ${n} attempts over ${Math.round(spanMs / minuteMs)} min`;
    }
  }
}
