/**
 * Per-organization features for the anomaly detectors (DESIGN §9, issue 16 item 2).
 *
 * Each organization's observations are cut into aligned windows of `windowMs` (multiples of it since
 * the epoch, so every node cuts the same windows). A closed window becomes one point for the learned
 * model: counts, sizes and "how new is this" shares, on log scales so that a burst of a thousand sits
 * a few units from a quiet window rather than off the end of the range. Next to the window the
 * organization keeps a bounded history the rules read: recipients and entry points with when each was
 * first seen, an hour-of-day histogram of its activity, and its payload sizes.
 *
 * Memory is bounded everywhere: the history maps keep their most recently used entries only, a
 * window's distinct-recipient set stops growing at `windowRecipientsMax`, and `OrganizationLru` caps
 * how many organizations are tracked at all (least recently seen go first). Pure: time is the
 * observations' own `at`.
 */
import type { FeatureRange } from './half-space-trees.js';
import type { Observation } from './observations.js';

/** The model's features, in vector order. Counts are log2(1 + n); sizes log2(1 + bytes). */
export const featureNames = [
  'publishes',
  'bytesLogMean',
  'bytesLogMax',
  'bytesTotalLog',
  'recipients',
  'newRecipientShare',
  'newRecipientBytesLog',
  'fetchesServed',
  'refusedFetches',
  'rejectsAuth',
  'rejectsReplay',
  'rejectsPolicy',
  'rejectsIntegrity',
  'rateLimited',
  'notApproved',
  'adminActions',
  'hourSin',
  'hourCos',
  'newViaShare',
] as const;
export type FeatureName = (typeof featureNames)[number];

const F = Object.fromEntries(featureNames.map((name, index) => [name, index])) as Record<FeatureName, number>;

/**
 * Ranges are where the trees put their splits (each in the middle 70 % of a node's range), so they
 * are set around what is plausible rather than what is possible: a count range of log2(1 + 63) puts
 * a window with 8 refused fetches past the root's split when the usual window has none. Values past a
 * range are clamped to its end, which is as anomalous as the model can tell anyway.
 */
const rangeOf: Record<FeatureName, FeatureRange> = {
  publishes: { min: 0, max: 10 },
  bytesLogMean: { min: 6, max: 30 },
  bytesLogMax: { min: 6, max: 32 },
  bytesTotalLog: { min: 6, max: 36 },
  recipients: { min: 0, max: 4 },
  newRecipientShare: { min: 0, max: 1 },
  newRecipientBytesLog: { min: 0, max: 36 },
  fetchesServed: { min: 0, max: 10 },
  refusedFetches: { min: 0, max: 6 },
  rejectsAuth: { min: 0, max: 6 },
  rejectsReplay: { min: 0, max: 6 },
  rejectsPolicy: { min: 0, max: 6 },
  rejectsIntegrity: { min: 0, max: 6 },
  rateLimited: { min: 0, max: 6 },
  notApproved: { min: 0, max: 6 },
  adminActions: { min: 0, max: 6 },
  hourSin: { min: -1, max: 1 },
  hourCos: { min: -1, max: 1 },
  newViaShare: { min: 0, max: 1 },
};

/** The model's range of each feature (values outside are clamped by the model). */
export const featureRanges: readonly FeatureRange[] = featureNames.map((name) => rangeOf[name]);

/** Rejection reasons by class (contract `RejectReason`, admin reasons and node `ErrorCode`s). */
export type RejectClass = 'auth' | 'replay' | 'policy' | 'integrity' | 'other';

const rejectClasses: ReadonlyMap<string, RejectClass> = new Map<string, RejectClass>([
  ['BAD_SIGNATURE', 'auth'],
  ['SIGNING_KEY_UNKNOWN', 'auth'],
  ['ORGANIZATION_UNKNOWN', 'auth'],
  ['UNAUTHENTICATED', 'auth'],
  ['REPLAY', 'replay'],
  ['TIMESTAMP_OUT_OF_WINDOW', 'replay'],
  ['PRODUCE_NOT_ALLOWED', 'policy'],
  ['RECIPIENT_UNKNOWN', 'policy'],
  ['RECIPIENT_NOT_APPROVED', 'policy'],
  ['RECIPIENT_NOT_ALLOWED', 'policy'],
  ['TOPIC_UNKNOWN', 'policy'],
  ['MESSAGE_TOO_LARGE', 'policy'],
  ['NOT_RECIPIENT', 'policy'],
  ['FORBIDDEN', 'policy'],
  ['MESSAGE_ID_CONFLICT', 'integrity'],
  ['CONTENT_ROOT_MISMATCH', 'integrity'],
  ['ATTESTATION_CONFLICT', 'integrity'],
  ['WRONG_PARTITION', 'integrity'],
]);

export function rejectClass(reason: string): RejectClass {
  return rejectClasses.get(reason) ?? 'other';
}

export interface FeatureOptions {
  /** Window length (ms). */
  readonly windowMs: number;
  /** Recipients remembered per organization (least recently used go first). Default 256. */
  readonly recipientsMax?: number;
  /** Entry points remembered per organization. Default 64. */
  readonly viasMax?: number;
  /** Distinct recipients counted within one window. Default 64. */
  readonly windowRecipientsMax?: number;
  /** A recipient or entry point first seen less than this long ago is "new". Default 1 hour. */
  readonly newForMs?: number;
  /**
   * An organization's history counts (so "new" means something) once it has been seen this long and
   * this often: before that, everything would look new. Defaults 1 hour and 100 observations.
   */
  readonly establishedAfterMs?: number;
  readonly establishedAfterObservations?: number;
}

/** A closed window of one organization: the model's input and what an alert shows. */
export interface FeatureWindow {
  readonly organization: string;
  readonly startAt: number;
  readonly endAt: number;
  /** First and last observation in it. */
  readonly firstAt: number;
  readonly lastAt: number;
  readonly observations: number;
  /** One value per `featureNames` entry. */
  readonly values: readonly number[];
}

const log2p1 = (value: number): number => Math.log2(1 + value);

/**
 * A map that keeps its `max` most recently touched keys: a JavaScript Map iterates in insertion
 * order, so re-inserting on each touch keeps the least recently used first, and eviction is O(1).
 */
export class RecentMap<V> {
  private readonly map = new Map<string, V>();

  constructor(readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  /** Reads without refreshing. */
  peek(key: string): V | undefined {
    return this.map.get(key);
  }

  /** Sets (or refreshes) `key`; returns the evicted entry, if any. */
  set(key: string, value: V): [string, V] | undefined {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size <= this.max) return undefined;
    const oldest = this.map.entries().next().value as [string, V];
    this.map.delete(oldest[0]);
    return oldest;
  }

  delete(key: string): boolean {
    return this.map.delete(key);
  }

  values(): IterableIterator<V> {
    return this.map.values();
  }

  entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }
}

/** Raw accumulators of the current window, turned into `featureNames` values when it closes. */
const enum Slot {
  Publishes,
  BytesLogSum,
  BytesLogMax,
  BytesSum,
  NewRecipientBytes,
  FetchesServed,
  RefusedFetches,
  RejectsAuth,
  RejectsReplay,
  RejectsPolicy,
  RejectsIntegrity,
  RateLimited,
  NotApproved,
  Admin,
  WithVia,
  NewVia,
  Count,
}

/**
 * One organization: its open window and its history. The detector calls `roll` (close the window if
 * `at` is past it), then reads the history for its rules, then `add`s the observation.
 */
export class OrganizationFeatures {
  /** Recipient → when first seen (ms). */
  readonly recipients: RecentMap<number>;
  /** Entry point (`via`) → when first seen (ms). */
  readonly vias: RecentMap<number>;
  /** Observations per UTC hour of day, decayed (halved) when the total passes 2^20. */
  readonly hours = new Float64Array(24);
  hoursTotal = 0;
  firstSeenAt = Number.NaN;
  observations = 0;
  publishes = 0;
  /** Largest declared size of a message that was not itself flagged as an outlier. */
  maxBytes = 0;
  /** Mean declared message size (a running mean, then exponentially weighted after 1,000). */
  meanBytes = 0;

  private windowStart = Number.NaN;
  private windowFirst = 0;
  private windowLast = 0;
  private windowCount = 0;
  private readonly slots = new Float64Array(Slot.Count);
  private readonly windowRecipients = new Set<string>();
  private windowNewRecipients = 0;
  private readonly windowRecipientsMax: number;
  private readonly newForMs: number;
  private readonly establishedAfterMs: number;
  private readonly establishedAfterObservations: number;

  constructor(
    readonly organization: string,
    private readonly options: FeatureOptions,
  ) {
    this.recipients = new RecentMap(options.recipientsMax ?? 256);
    this.vias = new RecentMap(options.viasMax ?? 64);
    this.windowRecipientsMax = options.windowRecipientsMax ?? 64;
    this.newForMs = options.newForMs ?? 3_600_000;
    this.establishedAfterMs = options.establishedAfterMs ?? 3_600_000;
    this.establishedAfterObservations = options.establishedAfterObservations ?? 100;
  }

  /** Whether the history is long enough for "new" and "unusual hour" to mean anything. */
  established(at: number): boolean {
    return (
      this.observations >= this.establishedAfterObservations &&
      at - this.firstSeenAt >= this.establishedAfterMs
    );
  }

  /** A recipient this organization never sent to, or first did less than `newForMs` ago. */
  isNewRecipient(recipient: string, at: number): boolean {
    const first = this.recipients.peek(recipient);
    return first === undefined || at - first < this.newForMs;
  }

  /** Same for an entry point. */
  isNewVia(via: string, at: number): boolean {
    const first = this.vias.peek(via);
    return first === undefined || at - first < this.newForMs;
  }

  /** Share of this organization's past activity in the UTC hour of `at` (1/24 when it has none). */
  hourShare(at: number): number {
    if (this.hoursTotal === 0) return 1 / 24;
    return this.hours[utcHour(at)]! / this.hoursTotal;
  }

  /** When the open window ends (NaN when none is open). */
  get windowEndsAt(): number {
    return this.windowStart + this.options.windowMs;
  }

  get windowOpen(): boolean {
    return this.windowCount > 0;
  }

  /** Closes the open window if `at` is at or past its end; returns it. */
  roll(at: number): FeatureWindow | undefined {
    if (this.windowCount === 0 || at < this.windowStart + this.options.windowMs) return undefined;
    return this.close();
  }

  /** Closes the open window now, whatever the time (a detector's tick past its end). */
  close(): FeatureWindow | undefined {
    if (this.windowCount === 0) return undefined;
    const s = this.slots;
    const values = new Array<number>(featureNames.length).fill(0);
    const publishes = s[Slot.Publishes]!;
    values[F.publishes] = log2p1(publishes);
    values[F.bytesLogMean] = publishes > 0 ? s[Slot.BytesLogSum]! / publishes : 0;
    values[F.bytesLogMax] = s[Slot.BytesLogMax]!;
    values[F.bytesTotalLog] = log2p1(s[Slot.BytesSum]!);
    values[F.recipients] = log2p1(this.windowRecipients.size);
    values[F.newRecipientShare] =
      this.windowRecipients.size > 0 ? this.windowNewRecipients / this.windowRecipients.size : 0;
    values[F.newRecipientBytesLog] = log2p1(s[Slot.NewRecipientBytes]!);
    values[F.fetchesServed] = log2p1(s[Slot.FetchesServed]!);
    values[F.refusedFetches] = log2p1(s[Slot.RefusedFetches]!);
    values[F.rejectsAuth] = log2p1(s[Slot.RejectsAuth]!);
    values[F.rejectsReplay] = log2p1(s[Slot.RejectsReplay]!);
    values[F.rejectsPolicy] = log2p1(s[Slot.RejectsPolicy]!);
    values[F.rejectsIntegrity] = log2p1(s[Slot.RejectsIntegrity]!);
    values[F.rateLimited] = log2p1(s[Slot.RateLimited]!);
    values[F.notApproved] = log2p1(s[Slot.NotApproved]!);
    values[F.adminActions] = log2p1(s[Slot.Admin]!);
    const hour = ((this.windowStart % 86_400_000) + 86_400_000) % 86_400_000;
    const angle = (2 * Math.PI * hour) / 86_400_000;
    values[F.hourSin] = Math.sin(angle);
    values[F.hourCos] = Math.cos(angle);
    values[F.newViaShare] = s[Slot.WithVia]! > 0 ? s[Slot.NewVia]! / s[Slot.WithVia]! : 0;
    const window: FeatureWindow = {
      organization: this.organization,
      startAt: this.windowStart,
      endAt: this.windowStart + this.options.windowMs,
      firstAt: this.windowFirst,
      lastAt: this.windowLast,
      observations: this.windowCount,
      values,
    };
    s.fill(0);
    this.windowRecipients.clear();
    this.windowNewRecipients = 0;
    this.windowCount = 0;
    return window;
  }

  /** Adds `o` to the open window (opening one if needed) and to the history. */
  add(o: Observation): void {
    const at = o.at;
    if (this.windowCount === 0) {
      this.windowStart =
        at - (((at % this.options.windowMs) + this.options.windowMs) % this.options.windowMs);
      this.windowFirst = at;
    }
    this.windowCount++;
    if (at > this.windowLast || this.windowCount === 1) this.windowLast = at;
    if (Number.isNaN(this.firstSeenAt)) this.firstSeenAt = at;
    const established = this.established(at);
    const s = this.slots;
    if (o.via !== undefined) {
      s[Slot.WithVia]!++;
      if (established && this.isNewVia(o.via, at)) s[Slot.NewVia]!++;
      const first = this.vias.peek(o.via);
      this.vias.set(o.via, first ?? at);
    }
    switch (o.kind) {
      case 'publish': {
        const bytes = Math.max(0, o.bytes);
        const logBytes = log2p1(bytes);
        s[Slot.Publishes]!++;
        s[Slot.BytesLogSum]! += logBytes;
        if (logBytes > s[Slot.BytesLogMax]!) s[Slot.BytesLogMax] = logBytes;
        s[Slot.BytesSum]! += bytes;
        let toNew = false;
        for (const recipient of o.recipients) {
          const isNew = established && this.isNewRecipient(recipient, at);
          if (isNew) toNew = true;
          if (
            !this.windowRecipients.has(recipient) &&
            this.windowRecipients.size < this.windowRecipientsMax
          ) {
            this.windowRecipients.add(recipient);
            if (isNew) this.windowNewRecipients++;
          }
          const first = this.recipients.peek(recipient);
          this.recipients.set(recipient, first ?? at);
        }
        if (toNew) s[Slot.NewRecipientBytes]! += bytes;
        this.publishes++;
        // A plain mean first, then a slow exponential one so that years of history still adapt.
        const weight = this.publishes < 1_000 ? 1 / this.publishes : 1 / 1_000;
        this.meanBytes += (bytes - this.meanBytes) * weight;
        break;
      }
      case 'fetch':
        if (o.outcome === 'served') s[Slot.FetchesServed]!++;
        else if (o.outcome === 'replay') s[Slot.RejectsReplay]!++;
        else if (o.outcome !== 'notFound') s[Slot.RefusedFetches]!++;
        break;
      case 'reject':
        switch (rejectClass(o.reason)) {
          case 'auth':
            s[Slot.RejectsAuth]!++;
            break;
          case 'replay':
            s[Slot.RejectsReplay]!++;
            break;
          case 'integrity':
            s[Slot.RejectsIntegrity]!++;
            break;
          default:
            s[Slot.RejectsPolicy]!++;
        }
        break;
      case 'rateLimited':
        s[Slot.RateLimited]!++;
        break;
      case 'notApproved':
        s[Slot.NotApproved]!++;
        break;
      case 'admin':
        s[Slot.Admin]!++;
        break;
      default:
        break;
    }
    this.observations++;
    const hour = utcHour(at);
    this.hours[hour]!++;
    this.hoursTotal++;
    if (this.hoursTotal > 1 << 20) {
      for (let h = 0; h < 24; h++) this.hours[h]! /= 2;
      this.hoursTotal /= 2;
    }
  }

  /** Keeps a size the rules flagged out of the maximum, so an attack does not raise its own bar. */
  noteSize(bytes: number, flagged: boolean): void {
    if (!flagged && bytes > this.maxBytes) this.maxBytes = bytes;
  }
}

export function utcHour(at: number): number {
  return Math.floor((((at % 86_400_000) + 86_400_000) % 86_400_000) / 3_600_000);
}

/**
 * Standalone extraction over many organizations (what the detector does, without the rules and the
 * model): at most `organizationsMax` tracked, the least recently seen evicted with its open window.
 */
export class FeatureExtractor {
  private readonly organizations: RecentMap<OrganizationFeatures>;

  constructor(private readonly options: FeatureOptions & { readonly organizationsMax: number }) {
    this.organizations = new RecentMap(options.organizationsMax);
  }

  get size(): number {
    return this.organizations.size;
  }

  has(organization: string): boolean {
    return this.organizations.peek(organization) !== undefined;
  }

  /** Adds `o`; returns its organization's window if `o` closed it. */
  observe(o: Observation): FeatureWindow | undefined {
    let organization = this.organizations.peek(o.organization);
    if (organization === undefined) organization = new OrganizationFeatures(o.organization, this.options);
    this.organizations.set(o.organization, organization);
    const closed = organization.roll(o.at);
    organization.add(o);
    return closed;
  }

  /** Closes every window that ended at or before `now`. */
  closeBefore(now: number): FeatureWindow[] {
    const closed: FeatureWindow[] = [];
    for (const organization of this.organizations.values()) {
      if (organization.windowOpen && organization.windowEndsAt <= now) {
        const window = organization.close();
        if (window !== undefined) closed.push(window);
      }
    }
    return closed;
  }
}
