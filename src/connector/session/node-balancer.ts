/**
 * Which node a connector sends a request to (DESIGN §9): the choice among the nodes that can serve
 * it, made per request. Pure: time and randomness are injected.
 *
 * - `round-robin`: each candidate in turn (the baseline: one slow node gets its full share).
 * - `least-loaded`: the candidate with the fewest requests in flight (ties broken at random): a slow
 *   node keeps answers queued and gets fewer new ones, but still its share whenever it is idle.
 * - `adaptive`: power of two choices over peak-EWMA cost, as Finagle's and Linkerd's balancers: two
 *   distinct candidates at random, the one of lower `latency × (in flight + 1)` wins. The latency
 *   estimate is an exponentially weighted moving average that decays with time (not with the number
 *   of samples), except that a sample above it replaces it at once (the peak): one slow answer is
 *   enough to steer traffic away, and only time brings it back. An estimate read decays toward zero,
 *   so a node that has been avoided is tried again after a while and its next answer tells.
 *   Estimates and requests in flight are kept per kind of request (the caller names it, e.g. the
 *   method): a publish waits for consensus and takes a hundred times a read, and one mixed estimate
 *   would steer reads away from whichever node also takes publishes.
 *
 * Every policy skips ejected nodes (outlier ejection, as Envoy's): `failuresToEject` consecutive
 * failures eject a node for `ejectionBaseMs × (times ejected)`, at most `ejectionMaxMs`, and never
 * more than `ejectedShareMax` of the known nodes at once (so a network-wide fault does not leave the
 * connector with nothing). A node that stays clear of ejection for `ejectionMaxMs` starts over.
 *
 * Locality is a candidate-set filter: the caller gives tiers (e.g. the partition's replicas, then the
 * organization's own nodes) and the first tier with a usable node is the candidate set.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';

export const balancerPolicies = ['round-robin', 'least-loaded', 'adaptive'] as const;
export type BalancerPolicy = (typeof balancerPolicies)[number];

export interface NodeBalancerOptions {
  readonly policy: BalancerPolicy;
  /** Milliseconds, monotonic enough for latencies (the connector's clock). */
  readonly now: () => number;
  /** Uniform in [0, 1): the two choices and ties. */
  readonly random: () => number;
  /**
   * Time constant of the latency estimate's decay (default 3 s; Finagle and Linkerd use 10 s). A
   * node avoided after a spike of 200 ms gets traffic back after about `decayMs × ln(200 ms ÷ the
   * others' latency)`: with reads of ~1 ms, bench:lb measured 43 s at 10 s and 7 s at 3 s, with
   * the same p99 while the node was slow.
   */
  readonly decayMs?: number;
  /** The estimate of a node not yet heard from (default 30 ms, Linkerd's default RTT). */
  readonly initialLatencyMs?: number;
  /**
   * A failure counts as an answer this slow (default 1 s): a node that fails fast (connection
   * refused) must not look like the fastest node and draw the traffic.
   */
  readonly failurePenaltyMs?: number;
  /** Consecutive failures that eject a node (default 5, Envoy's consecutive_5xx). */
  readonly failuresToEject?: number;
  /** First ejection's length; the n-th lasts n times as long (default 10 s). */
  readonly ejectionBaseMs?: number;
  /** Longest ejection (default 5 min, Envoy's max_ejection_time). */
  readonly ejectionMaxMs?: number;
  /** Largest share of the known nodes ejected at once (default 0.5). */
  readonly ejectedShareMax?: number;
}

/** How a request ended, for the node's statistics. */
export type RequestOutcome =
  /** The node answered (an answer or a refusal of its own): its latency is a sample. */
  | 'success'
  /** The node could not be reached or dropped the request: counts toward ejection. */
  | 'failure'
  /**
   * The node refused for load (over the organization's quota there, or its queue full): it is up,
   * so no step toward ejection, but it is costed as a failure so that others take the load.
   */
  | 'overloaded'
  /** Ended without telling anything about the node (a long poll, a cancelled request). */
  | 'neutral';

export interface NodeStats {
  readonly id: string;
  /** Current latency estimate of each kind of request asked of the node (decayed to now), ms. */
  readonly latencyMs: Readonly<Record<string, number>>;
  /** Requests in flight, of every kind. */
  readonly inFlight: number;
  readonly consecutiveFailures: number;
  /** Until when the node is ejected (clock ms), if it is. */
  readonly ejectedUntil?: number;
  readonly ejections: number;
  /** Requests started on the node since the balancer began. */
  readonly requests: number;
  readonly failures: number;
}

/** What the balancer knows of one kind of request on one node. */
interface Estimate {
  latencyMs: number;
  stamp: number;
  inFlight: number;
}

interface NodeState {
  readonly id: string;
  /** One per kind of request (an RPC method): a fixed few. */
  readonly estimates: Map<string, Estimate>;
  consecutiveFailures: number;
  ejectedUntil: number;
  ejections: number;
  lastEjectedAt: number;
  requests: number;
  failures: number;
}

export class NodeBalancer {
  /** One per registered node requests went to. */
  private readonly nodes = new Map<string, NodeState>();
  private nextIndex = 0;
  private readonly decayMs: number;
  private readonly initialLatencyMs: number;
  private readonly failurePenaltyMs: number;
  private readonly failuresToEject: number;
  private readonly ejectionBaseMs: number;
  private readonly ejectionMaxMs: number;
  private readonly ejectedShareMax: number;

  constructor(private readonly options: NodeBalancerOptions) {
    this.decayMs = options.decayMs ?? 3_000;
    this.initialLatencyMs = options.initialLatencyMs ?? 30;
    this.failurePenaltyMs = options.failurePenaltyMs ?? 1_000;
    this.failuresToEject = options.failuresToEject ?? 5;
    this.ejectionBaseMs = options.ejectionBaseMs ?? 10_000;
    this.ejectionMaxMs = options.ejectionMaxMs ?? 300_000;
    this.ejectedShareMax = options.ejectedShareMax ?? 0.5;
    if (!balancerPolicies.includes(options.policy)) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `unknown balancer policy ${JSON.stringify(options.policy)}: use one of ${balancerPolicies.join(', ')}`,
      );
    }
  }

  get policy(): BalancerPolicy {
    return this.options.policy;
  }

  /**
   * The node for the next request: from the first of `tiers` that has a node neither in `exclude`
   * nor ejected; when every node left is ejected, the one whose ejection ends first (a request is
   * better tried than refused). Undefined when every node of every tier is excluded.
   */
  pick(
    tiers: readonly (readonly string[])[],
    exclude: ReadonlySet<string> = new Set(),
    kind = 'request',
  ): string | undefined {
    const now = this.options.now();
    let fallback: NodeState | undefined;
    for (const tier of tiers) {
      const candidates: NodeState[] = [];
      for (const id of new Set(tier)) {
        if (exclude.has(id)) continue;
        const state = this.state(id);
        if (state.ejectedUntil > now) {
          if (fallback === undefined || state.ejectedUntil < fallback.ejectedUntil) fallback = state;
        } else {
          candidates.push(state);
        }
      }
      if (candidates.length > 0) return this.choose(candidates, now, kind).id;
    }
    return fallback?.id;
  }

  /**
   * Counts a request started on `id` (in flight until `end`); `end` records how it went. A `long`
   * request (a long poll, whose time is the server's wait, not its latency) is not in flight for the
   * choice and its time is no sample; its failures still count.
   */
  begin(
    id: string,
    options: { readonly long?: boolean; readonly kind?: string } = {},
  ): (outcome: RequestOutcome) => void {
    const state = this.state(id);
    const estimate = this.estimate(state, options.kind ?? 'request');
    const started = this.options.now();
    const long = options.long === true;
    state.requests += 1;
    if (!long) estimate.inFlight += 1;
    let ended = false;
    return (outcome) => {
      if (ended) return;
      ended = true;
      if (!long) estimate.inFlight -= 1;
      const now = this.options.now();
      if (outcome === 'success') {
        state.consecutiveFailures = 0;
        if (now - state.lastEjectedAt >= this.ejectionMaxMs) state.ejections = 0;
        // A wall-clock step backwards must not make a negative sample (and a node that always wins).
        if (!long) this.observe(estimate, Math.max(0, now - started), now);
      } else if (outcome === 'overloaded') {
        this.observe(estimate, Math.max(now - started, this.failurePenaltyMs), now);
      } else if (outcome === 'failure') {
        state.failures += 1;
        state.consecutiveFailures += 1;
        this.observe(estimate, Math.max(now - started, this.failurePenaltyMs), now);
        if (state.consecutiveFailures >= this.failuresToEject) this.eject(state, now);
      }
    };
  }

  /** Every node known so far, with its estimate decayed to now (status pages, the bench). */
  stats(): NodeStats[] {
    const now = this.options.now();
    return [...this.nodes.values()].map((state) => ({
      id: state.id,
      latencyMs: Object.fromEntries(
        [...state.estimates].map(([kind, estimate]) => [kind, this.decayed(estimate, now)]),
      ),
      inFlight: [...state.estimates.values()].reduce((sum, estimate) => sum + estimate.inFlight, 0),
      consecutiveFailures: state.consecutiveFailures,
      ...(state.ejectedUntil > now ? { ejectedUntil: state.ejectedUntil } : {}),
      ejections: state.ejections,
      requests: state.requests,
      failures: state.failures,
    }));
  }

  /** Whether `id` is ejected now. */
  ejected(id: string): boolean {
    return (this.nodes.get(id)?.ejectedUntil ?? 0) > this.options.now();
  }

  private choose(candidates: readonly NodeState[], now: number, kind: string): NodeState {
    if (candidates.length === 1) return candidates[0]!;
    switch (this.options.policy) {
      case 'round-robin':
        // One counter for every candidate set: the sets of different partitions overlap, and a
        // counter per set would not be round robin on a node either.
        return candidates[this.nextIndex++ % candidates.length]!;
      case 'least-loaded': {
        const inFlight = (state: NodeState): number => this.estimate(state, kind).inFlight;
        const fewest = Math.min(...candidates.map(inFlight));
        const least = candidates.filter((state) => inFlight(state) === fewest);
        return least[Math.floor(this.options.random() * least.length)]!;
      }
      case 'adaptive': {
        const first = Math.floor(this.options.random() * candidates.length);
        let second = Math.floor(this.options.random() * (candidates.length - 1));
        if (second >= first) second += 1;
        const a = candidates[first]!;
        const b = candidates[second]!;
        const cost = (state: NodeState): number => this.cost(this.estimate(state, kind), now);
        return cost(b) < cost(a) ? b : a;
      }
    }
  }

  /**
   * Peak-EWMA cost. The small constant keeps the in-flight factor biting when the estimate has
   * decayed to nothing (Finagle's penalty for a node with no estimate but requests pending).
   */
  private cost(estimate: Estimate, now: number): number {
    return (this.decayed(estimate, now) + 0.001) * (estimate.inFlight + 1);
  }

  private decayed(estimate: Estimate, now: number): number {
    const elapsed = Math.max(0, now - estimate.stamp);
    return estimate.latencyMs * Math.exp(-elapsed / this.decayMs);
  }

  private observe(estimate: Estimate, latencyMs: number, now: number): void {
    const weight = Math.exp(-Math.max(0, now - estimate.stamp) / this.decayMs);
    const current = estimate.latencyMs * weight;
    estimate.latencyMs = latencyMs > current ? latencyMs : current + latencyMs * (1 - weight);
    estimate.stamp = now;
  }

  private estimate(state: NodeState, kind: string): Estimate {
    let estimate = state.estimates.get(kind);
    if (estimate === undefined) {
      estimate = { latencyMs: this.initialLatencyMs, stamp: this.options.now(), inFlight: 0 };
      state.estimates.set(kind, estimate);
    }
    return estimate;
  }

  private eject(state: NodeState, now: number): void {
    if (state.ejectedUntil > now) return;
    const ejectedNow = [...this.nodes.values()].filter((other) => other.ejectedUntil > now).length;
    if (ejectedNow + 1 > Math.floor(this.nodes.size * this.ejectedShareMax)) return;
    state.ejections += 1;
    state.ejectedUntil = now + Math.min(this.ejectionBaseMs * state.ejections, this.ejectionMaxMs);
    state.lastEjectedAt = now;
    // Back from ejection it starts from a clean count: one more failure is not a new streak of five.
    state.consecutiveFailures = 0;
  }

  private state(id: string): NodeState {
    let state = this.nodes.get(id);
    if (state === undefined) {
      state = {
        id,
        estimates: new Map(),
        consecutiveFailures: 0,
        ejectedUntil: 0,
        ejections: 0,
        lastEjectedAt: Number.NEGATIVE_INFINITY,
        requests: 0,
        failures: 0,
      };
      this.nodes.set(id, state);
    }
    return state;
  }
}
