/**
 * The node's side of anomaly detection (DESIGN §9, issue 16): it takes the observations of this
 * node's client service, registry host and partition replicas, counts them as metrics, keeps a
 * bounded window of them (observation-buffer.ts), feeds the anomaly detector and acts on what the
 * detector says — logs each alert, keeps the recent ones, and writes those at or above the ledger
 * policy's severity as a `raiseAlert` transaction signed with the node's key, with a response the
 * policy allows (a tighter quota for the subject, or a suspension PROPOSAL; never a suspension).
 *
 * Detection never blocks the data path: observing is a synchronous call that counts and, within a
 * budget, feeds the detector. A flood of observations is sampled by the buffer, not queued; if the
 * detector throws or takes more than its time budget in a second, it is degraded to rules only (its
 * learned model off), which is itself an alert. Writes to the ledger go out a few a second at most,
 * from a bounded queue.
 *
 * What a committed block shows (accepted messages, contract rejections such as REPLAY, delivery
 * confirmations) is reported by one replica of the partition only — the first of its current
 * replica set by node id — so that four nodes do not raise the same alert about the same block.
 */
import { randomBytes } from 'node:crypto';
import { encodeWith } from '../codec/index.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { decodeTransactionResult } from '../contracts/results.js';
import type { SdtEvent, TransactionResult } from '../contracts/results.js';
import { decodeTransaction } from '../contracts/transactions.js';
import type { SdtTransaction } from '../contracts/transactions.js';
import type { Signer } from '../crypto/index.js';
import { AnomalyDetector } from '../intelligence/detector.js';
import type { DetectorOptions } from '../intelligence/detector.js';
import type { AlertSeverity, AnomalyAlert } from '../intelligence/alert.js';
import { ObservationBuffer } from '../intelligence/observation-buffer.js';
import type { Observation, ObservationSink } from '../intelligence/observations.js';
import type { Block } from '../ledger/block.js';
import { AdminReject, adminTransactionSchema } from '../registry/admin-transactions.js';
import type { RegistryResult } from '../registry/admin-transactions.js';
import { raiseAlertTransaction } from '../registry/alerts.js';
import type { AlertPolicy, AlertResponse } from '../registry/alerts.js';
import type { NetworkRegistry } from '../registry/types.js';
import type { Logger } from '../runtime/logger.js';
import { Counter, Gauge, Registry } from 'prom-client';
import { LogThrottle } from './log-throttle.js';
import { RateLimiter } from './rate-limit.js';

/** What the service reads of the ledger's alert state (the __system state machine). */
export interface AlertLedger {
  alertPolicy(): AlertPolicy;
}

export interface AnomalyServiceOptions {
  readonly nodeId: string;
  /** The node's organization: the acting organization of the raiseAlert transactions it signs. */
  readonly organization: string;
  /** The node key, bound to the network: raiseAlert is signed with it. */
  readonly signer: Signer;
  readonly registry: NetworkRegistry;
  readonly ledger: AlertLedger;
  /** Submits an encoded admin transaction (the registry host's `submitAdmin`). */
  readonly submit: (transaction: Uint8Array) => Promise<{ index: number; result: RegistryResult }>;
  readonly logger: Logger;
  /** Where the counters go (the node's /metrics registry); a registry of its own if not given. */
  readonly metrics?: Registry;
  readonly detector?: Partial<DetectorOptions>;
  /** Observations held; per second kept in full (the rest sampled). */
  readonly bufferCapacity?: number;
  readonly perSecondMax?: number;
  /** Time the detector may take in one second before it is degraded to rules only. Default 200 ms. */
  readonly detectorBudgetMs?: number;
  /** raiseAlert transactions a second at most, and how many may wait. Defaults 2 and 64. */
  readonly raisePerSecond?: number;
  readonly raiseQueueMax?: number;
  /** Wall clock (observation times, the detector's ticks) and monotonic clock (budgets). */
  readonly now?: () => number;
  readonly monotonic?: () => number;
}

const severityRank: Record<AlertSeverity, number> = { info: 0, warning: 1, critical: 2 };

/** Whether an alert goes to the ledger under `policy`. */
export function reachesLedger(alert: Pick<AnomalyAlert, 'severity'>, policy: AlertPolicy): boolean {
  return severityRank[alert.severity] >= severityRank[policy.ledgerSeverityMin];
}

/**
 * The response a node asks for, within `policy`: a flood (or a suggested rate limit) holds the
 * subject to the policy's lowest quota for the longest time it allows; a suggested suspension is
 * proposed if the policy lets alerts propose one. An alert about no registered organization, or
 * about a supervisor, asks for nothing (the ledger would refuse the whole alert otherwise).
 */
export function chooseResponse(
  alert: Pick<AnomalyAlert, 'organization' | 'rule' | 'suggested'>,
  policy: AlertPolicy,
  subject: { readonly registered: boolean; readonly supervisor: boolean },
): AlertResponse | undefined {
  if (alert.organization === '' || !subject.registered || subject.supervisor) return undefined;
  if (alert.suggested === 'proposeSuspension' && policy.proposeSuspension)
    return { kind: 'proposeSuspension' };
  if ((alert.rule === 'flood' || alert.suggested === 'rateLimit') && policy.rateLimit !== undefined) {
    return {
      kind: 'rateLimit',
      requestsPerSecond: policy.rateLimit.requestsPerSecondMin,
      durationMs: policy.rateLimit.durationMsMax,
    };
  }
  return undefined;
}

/**
 * Refusals the registry gives before it knows who signed an admin transaction (or whether the
 * organization it names signed this copy of it): anyone can earn them in another's name.
 */
const unauthenticatedOutcomes: ReadonlySet<string> = new Set([
  AdminReject.WrongGroup,
  AdminReject.OrganizationUnknown,
  AdminReject.SigningKeyUnknown,
  AdminReject.NodeUnknown,
  AdminReject.BadSignature,
  AdminReject.Replay,
  // A captured old transaction, submitted again by anyone.
  AdminReject.Stale,
]);

/**
 * The organization an admin transaction's `outcome` is laid to: the one it names once the registry
 * authenticated it, else nobody (''). A registration is signed by the keys it brings, so the name it
 * claims is its own only once it is registered.
 */
export function adminActor(
  transaction: { readonly organization: string; readonly action: { readonly kind: string } },
  outcome: string,
): string {
  if (unauthenticatedOutcomes.has(outcome)) return '';
  if (transaction.action.kind === 'registerOrganization' && outcome !== 'OK') return '';
  return transaction.organization;
}

/** What a block's observations need besides the block. */
export interface BlockContext {
  readonly node: string;
  readonly topic: string;
  /** The organization owning a client key (connector or node key), if any. */
  readonly organizationOfKey: (key: Uint8Array) => string | undefined;
  /** When recently accepted messages were accepted (`group/id` → ms), for confirmation delays. */
  readonly acceptedAt: Map<string, number>;
  readonly acceptedAtMax?: number;
}

/**
 * The observations a committed block holds: each message it accepted (size, recipients), each
 * refusal by reason code (a whole transaction's, a message's, a confirmation's), each confirmation's
 * delay, and a client key no organization holds. Pure.
 */
export function blockObservations(
  block: Block,
  events: readonly SdtEvent[],
  context: BlockContext,
): Observation[] {
  const at = block.header.timestamp;
  const group = block.header.partitionId;
  const { node, topic } = context;
  const out: Observation[] = [];
  const recipientsOf = new Map<string, readonly string[]>();
  for (const event of events)
    if (event.type === 'MessageAccepted') recipientsOf.set(event.id, event.recipients);
  block.transactions.forEach((bytes, index) => {
    let client: Uint8Array;
    let operation: Uint8Array;
    try {
      ({ client, operation } = decodeClientRequest(bytes, messageLimits.requestBytesMax));
    } catch {
      return;
    }
    // An empty operation is a node's nudge closing an epoch (node.ts), not anyone's request.
    if (operation.length === 0) return;
    let transaction: SdtTransaction | undefined;
    try {
      transaction = decodeTransaction(operation);
    } catch {
      transaction = undefined;
    }
    let result: TransactionResult;
    try {
      result = decodeTransactionResult(block.results[index] ?? new Uint8Array(0));
    } catch {
      return;
    }
    // Who ordered the transaction: the organization holding the client key (PBFT checked its
    // signature), or nobody. Never a name the transaction carries — that is the signer's word, and a
    // forged one would pin alerts on a victim.
    const organization = context.organizationOfKey(client) ?? '';
    const rejected = (reason: string): void => {
      out.push({ kind: 'reject', at, node, organization, topic, reason, stage: 'contract' });
    };
    if (organization === '') {
      out.push({
        kind: 'unknownKey',
        at,
        node,
        organization: '',
        key: Buffer.from(client.subarray(0, 8)).toString('hex'),
      });
    }
    if (result.status === 'REJECTED') {
      rejected(result.reason);
      return;
    }
    if (result.type === 'publish' && transaction?.type === 'publish') {
      result.messages.forEach((message, position) => {
        const metadata = transaction.messages[position];
        if (message.status === 'REJECTED') {
          rejected(message.reason);
          return;
        }
        // A retry of an accepted message points at its first acceptance: not a new publish.
        if (message.height !== block.header.height || message.transactionIndex !== index) return;
        if (metadata === undefined) return;
        out.push({
          kind: 'publish',
          at,
          node,
          organization,
          topic,
          bytes: metadata.size,
          recipients: recipientsOf.get(message.id) ?? metadata.recipients,
        });
        context.acceptedAt.set(`${group}/${message.id}`, at);
        if (context.acceptedAt.size > (context.acceptedAtMax ?? 10_000)) {
          context.acceptedAt.delete(context.acceptedAt.keys().next().value as string);
        }
      });
    } else if (result.type === 'confirmDelivery') {
      for (const delivery of result.deliveries) {
        if (delivery.status === 'REJECTED') {
          rejected(delivery.reason);
          continue;
        }
        if (delivery.height !== block.header.height) continue;
        const acceptedAt = context.acceptedAt.get(`${group}/${delivery.id}`);
        if (acceptedAt === undefined) continue;
        out.push({ kind: 'confirm', at, node, organization, topic, delayMs: Math.max(0, at - acceptedAt) });
      }
    }
  });
  return out;
}

/** A replica whose committed blocks the service reads. */
export interface ObservedReplica {
  readonly partition: { readonly groupId: string; readonly topic: string };
  onBlock(listener: (block: Block, events: readonly SdtEvent[]) => void): () => void;
}

/** Registered organizations get a label of their own, up to this many; the rest share 'other'. */
const organizationLabelsMax = 64;
const recentAlertsMax = 256;
/** Submissions of one alert before it is given up (it stays in the node's log and recent list). */
const raiseAttemptsMax = 5;

export class AnomalyService {
  readonly metrics: Registry;
  private readonly detector: AnomalyDetector;
  private readonly buffer: ObservationBuffer;
  private readonly observationsTotal: Counter<'kind' | 'organization'>;
  private readonly alertsTotal: Counter<'rule' | 'severity'>;
  private readonly shedTotal: Counter;
  private readonly ledgerTotal: Counter<'outcome'>;
  private readonly modeGauge: Gauge;
  /** Organizations with a metric label of their own: at most `organizationLabelsMax`. */
  private readonly labelled = new Set<string>();
  /** The last `recentAlertsMax` alerts, oldest out first. */
  private readonly recent: AnomalyAlert[] = [];
  /**
   * Alerts waiting for the ledger, with their id and how many submissions failed so far: at most
   * `raiseQueueMax` (more are dropped and counted).
   */
  private readonly queue: { readonly alert: AnomalyAlert; readonly id: string; failures: number }[] = [];
  private readonly raiseLimiter: RateLimiter;
  private readonly raiseQueueMax: number;
  private readonly budgetMs: number;
  /** When recent messages were accepted: the last 10,000 (`acceptedAtMax`), oldest out first. */
  private readonly acceptedAt = new Map<string, number>();
  private readonly now: () => number;
  private readonly monotonic: () => number;
  private readonly failureLog: LogThrottle;
  /** Start of the current budget second (monotonic ms) and detector time spent in it. */
  private budgetStart = 0;
  private spentMs = 0;
  private overBudget = false;
  private sequence = 0;
  /** Alert ids are `<node>-<start>-<sequence>`: unique across this node's restarts too. */
  private readonly idPrefix: string;
  private timer: NodeJS.Timeout | undefined;
  private submitting = false;
  private stopped = false;

  constructor(private readonly options: AnomalyServiceOptions) {
    this.now = options.now ?? Date.now;
    this.monotonic = options.monotonic ?? (() => performance.now());
    this.metrics = options.metrics ?? new Registry();
    this.detector = new AnomalyDetector({ seed: 1, ...options.detector });
    this.buffer = new ObservationBuffer({
      capacity: options.bufferCapacity ?? 10_000,
      perSecondMax: options.perSecondMax ?? 5_000,
      seed: options.detector?.seed ?? 1,
    });
    this.budgetMs = options.detectorBudgetMs ?? 200;
    this.raiseQueueMax = options.raiseQueueMax ?? 64;
    const raisePerSecond = options.raisePerSecond ?? 2;
    this.raiseLimiter = new RateLimiter(
      { requestsPerSecond: raisePerSecond, burst: Math.max(1, raisePerSecond * 2) },
      this.monotonic,
    );
    this.failureLog = new LogThrottle(10_000, this.monotonic);
    this.idPrefix = `${options.nodeId}-${this.now().toString(36)}`;
    this.observationsTotal = new Counter({
      name: 'ledgerbus_observations_total',
      help: "Observations this node made, by kind and acting organization (registered organizations up to 64, then 'other'; 'unknown' for no organization).",
      labelNames: ['kind', 'organization'],
      registers: [this.metrics],
    });
    this.alertsTotal = new Counter({
      name: 'ledgerbus_alerts_total',
      help: "Alerts this node's anomaly detector raised, by rule and severity.",
      labelNames: ['rule', 'severity'],
      registers: [this.metrics],
    });
    this.shedTotal = new Counter({
      name: 'ledgerbus_observations_shed_total',
      help: 'Observations counted but not given to the detector (over the per-second budget, sampled out).',
      registers: [this.metrics],
    });
    this.ledgerTotal = new Counter({
      name: 'ledgerbus_alerts_ledger_total',
      help: 'raiseAlert transactions by outcome: OK, a rejection reason, ERROR (not submitted), or DROPPED (queue full).',
      labelNames: ['outcome'],
      registers: [this.metrics],
    });
    this.modeGauge = new Gauge({
      name: 'ledgerbus_detector_mode',
      help: 'The anomaly detector mode: 1 full (rules and learned model), 0 rules only (degraded).',
      registers: [this.metrics],
    });
    this.modeGauge.set(1);
  }

  /** Where the node's components send what they see. Never throws. */
  readonly sink: ObservationSink = (observation) => this.observe(observation);

  start(): void {
    this.timer = setInterval(() => this.tick(this.now()), 1_000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** The most recent alerts, oldest first (at most 256). */
  recentAlerts(): readonly AnomalyAlert[] {
    return [...this.recent];
  }

  stats(): {
    readonly detector: ReturnType<AnomalyDetector['stats']>;
    readonly buffer: ReturnType<ObservationBuffer['stats']>;
    readonly queued: number;
  } {
    return { detector: this.detector.stats(), buffer: this.buffer.stats(), queued: this.queue.length };
  }

  observe(observation: Observation): void {
    try {
      this.observationsTotal.inc({
        kind: observation.kind,
        organization: this.label(observation.organization),
      });
      const outcome = this.buffer.offer(observation);
      if (outcome === 'dropped' || this.budgetExhausted()) {
        this.shedTotal.inc();
        return;
      }
      const alerts = this.timed(() => this.detector.observe(observation));
      if (alerts !== undefined) this.handle(alerts);
    } catch (error) {
      // Counting itself failed: nothing here may reach the caller's data path.
      this.logFailure(error, 'observing');
    }
  }

  /** Once a second: time-window rules and the model's scoring, and the queued ledger writes. */
  tick(now: number): void {
    try {
      const alerts = this.timed(() => this.detector.tick(now));
      if (alerts !== undefined) this.handle(alerts);
    } catch (error) {
      this.logFailure(error, 'ticking');
    }
    void this.drain();
  }

  /**
   * Reads `replica`'s committed blocks from now on, while this node is the partition's reporter (the
   * first of its current replica set by node id). Returns the unsubscribe.
   */
  watchReplica(replica: ObservedReplica): () => void {
    const { groupId, topic } = replica.partition;
    return replica.onBlock((block, events) => {
      try {
        if (!this.reports(groupId)) return;
        const observations = blockObservations(block, events, {
          node: this.options.nodeId,
          topic,
          organizationOfKey: (key) =>
            this.options.registry.organizationBySigningKey(key)?.id ??
            this.options.registry.nodeByKey(key)?.organization,
          acceptedAt: this.acceptedAt,
        });
        for (const observation of observations) this.observe(observation);
      } catch (error) {
        this.logFailure(error, 'reading a block');
      }
    });
  }

  /** Whether this node reports what `group`'s blocks show. */
  reports(group: string): boolean {
    const replicas = this.options.registry.partition(group)?.replicas;
    if (replicas === undefined || replicas.length === 0) return false;
    return [...replicas].sort()[0] === this.options.nodeId;
  }

  private label(organization: string): string {
    if (organization === '') return 'unknown';
    if (this.labelled.has(organization)) return organization;
    if (
      this.labelled.size < organizationLabelsMax &&
      this.options.registry.organization(organization) !== undefined
    ) {
      this.labelled.add(organization);
      return organization;
    }
    return 'other';
  }

  private budgetExhausted(): boolean {
    const now = this.monotonic();
    if (now - this.budgetStart >= 1_000) {
      this.budgetStart = now;
      this.spentMs = 0;
      this.overBudget = false;
    }
    return this.overBudget;
  }

  /**
   * Runs a detector call, timing it against the budget. A throw or an overrun degrades the detector
   * to rules only (once), which raises the degraded alert; undefined if the call threw.
   */
  private timed(call: () => AnomalyAlert[]): AnomalyAlert[] | undefined {
    const started = this.monotonic();
    let alerts: AnomalyAlert[] | undefined;
    let failure: string | undefined;
    try {
      alerts = call();
    } catch (error) {
      failure = `the detector failed: ${(error as Error).message}`;
    }
    this.spentMs += this.monotonic() - started;
    if (failure === undefined && this.spentMs > this.budgetMs) {
      this.overBudget = true;
      failure = `the detector took ${Math.round(this.spentMs)} ms within one second (budget ${this.budgetMs} ms)`;
    }
    if (failure !== undefined) this.degrade(failure);
    return alerts;
  }

  private degrade(reason: string): void {
    if (this.detector.mode !== 'full') {
      this.logFailure(new Error(reason), 'detecting in rules-only mode');
      return;
    }
    try {
      const alert = this.detector.degrade(reason, this.now());
      this.modeGauge.set(0);
      this.options.logger.error({ reason }, 'anomaly detector degraded to rules only');
      this.handle([alert]);
    } catch (error) {
      this.logFailure(error, 'degrading the detector');
    }
  }

  private handle(alerts: readonly AnomalyAlert[]): void {
    for (const alert of alerts) {
      this.alertsTotal.inc({ rule: alert.rule, severity: alert.severity });
      this.options.logger.warn(
        {
          organization: alert.organization,
          rule: alert.rule,
          severity: alert.severity,
          score: alert.score,
          threshold: alert.threshold,
          observations: alert.observations,
          suggested: alert.suggested,
        },
        `anomaly alert: ${alert.summary}`,
      );
      this.recent.push(alert);
      if (this.recent.length > recentAlertsMax) this.recent.shift();
      let policy: AlertPolicy;
      try {
        policy = this.options.ledger.alertPolicy();
      } catch (error) {
        this.logFailure(error, 'reading the alert policy');
        continue;
      }
      if (!reachesLedger(alert, policy)) continue;
      if (this.queue.length >= this.raiseQueueMax) {
        this.ledgerTotal.inc({ outcome: 'DROPPED' });
        continue;
      }
      this.sequence += 1;
      this.queue.push({ alert, id: `${this.idPrefix}-${this.sequence}`, failures: 0 });
    }
    if (alerts.length > 0) void this.drain();
  }

  /** Writes queued alerts to the ledger, one at a time, within the per-second limit. */
  private async drain(): Promise<void> {
    if (this.submitting || this.stopped) return;
    this.submitting = true;
    try {
      while (this.queue.length > 0 && !this.stopped && this.raiseLimiter.take('ledger').allowed) {
        const entry = this.queue.shift()!;
        if (!(await this.raise(entry.alert, entry.id, entry.failures > 0))) {
          // Not submitted (no leader yet, a timeout): tried again at the next tick, a few times.
          entry.failures += 1;
          if (entry.failures < raiseAttemptsMax) this.queue.unshift(entry);
          break;
        }
      }
    } finally {
      this.submitting = false;
    }
  }

  /**
   * Submits one raiseAlert (a fresh nonce each time; the id stays). False if it could not be
   * submitted at all; a ledger refusal is an answer, and true.
   */
  private async raise(alert: AnomalyAlert, id: string, retry: boolean): Promise<boolean> {
    try {
      const policy = this.options.ledger.alertPolicy();
      const subject = this.options.registry.organization(alert.organization);
      const response = chooseResponse(alert, policy, {
        registered: subject !== undefined,
        supervisor: subject?.roles.includes('supervisor') === true,
      });
      const transaction = raiseAlertTransaction(
        {
          alert,
          id,
          node: this.options.nodeId,
          organization: this.options.organization,
          ...(response === undefined ? {} : { response }),
          nonce: randomBytes(16),
          timestamp: this.now(),
        },
        this.options.signer,
      );
      const { index, result } = await this.options.submit(encodeWith(adminTransactionSchema, transaction));
      // A retry whose first submission did commit (its answer was lost) finds its own id there.
      const ok = result.status === 'OK' || (retry && result.reason === AdminReject.AlreadyExists);
      this.ledgerTotal.inc({ outcome: ok ? 'OK' : result.reason });
      if (ok) {
        this.options.logger.info(
          {
            id,
            index,
            organization: alert.organization,
            rule: alert.rule,
            response: response?.kind ?? 'none',
          },
          'alert raised on the ledger',
        );
      } else {
        this.options.logger.warn(
          {
            id,
            organization: alert.organization,
            rule: alert.rule,
            reason: result.reason,
            detail: result.detail,
          },
          'the ledger refused a raiseAlert',
        );
      }
      return true;
    } catch (error) {
      this.ledgerTotal.inc({ outcome: 'ERROR' });
      this.options.logger.warn(
        { id, organization: alert.organization, rule: alert.rule, error: (error as Error).message },
        'could not submit an alert to the ledger; retrying at the next tick (a few times, then it stays an event on this node)',
      );
      return false;
    }
  }

  private logFailure(error: unknown, what: string): void {
    const suppressed = this.failureLog.admit(what);
    if (suppressed === undefined) return;
    this.options.logger.error(
      { error: (error as Error).message, suppressed },
      `anomaly service failed ${what}`,
    );
  }
}
