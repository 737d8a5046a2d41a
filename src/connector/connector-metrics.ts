/**
 * The connector's Prometheus metrics (issue 19), served at `GET /metrics` on its API address with
 * the API token (labels name topics and organizations' consumer groups). One registry per connector:
 * several connectors share a test process, and each must count only its own messages. Every name
 * starts with `ledgerbus_`; label values are topics, consumer groups, contract reason codes and
 * storage components, never message ids, so the number of series stays bounded.
 *
 * Counters are exact and count each message once: the message counters are bumped where the
 * connector's database records the event for the first time (a row inserted, an offset or a state
 * that was not set), after that write committed, so a retry, a replayed acknowledgement or a second
 * watcher round finds it recorded already and counts nothing; a refusal is counted from the ledger's
 * answer to the publish it refused (nothing is recorded for it). Counters start at zero with the
 * connector (Prometheus' `rate()` and `increase()` handle the reset). Parts of a large value
 * (parts.ts) are not messages of their own: only the message that binds them is counted.
 */
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const metricsPrefix = 'ledgerbus_';

/** One consumer group's backlog on one topic (see ConnectorDatabase.consumeLag). */
export interface ConsumeLag {
  readonly group: string;
  readonly topic: string;
  readonly messages: number;
}

/** What the scrape-time gauges read; each is optional so that a part can be tested alone. */
export interface ConnectorMetricsSources {
  /** Topics to show at zero before their first message: rate() needs a sample before the first increment. */
  readonly topics?: () => { readonly produced: readonly string[]; readonly consumed: readonly string[] };
  readonly consumeLag?: () => readonly ConsumeLag[];
  /** Bytes per storage component; a component left out has no sample at this scrape. */
  readonly storageBytes?: () => Promise<Readonly<Record<string, number>>>;
}

/** What `GET /metrics` answers with. */
export interface MetricsExposition {
  readonly contentType: string;
  readonly text: string;
}

/** A send through the API waits for consensus: milliseconds on a LAN, seconds under load or for large values. */
const publishBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** One payload from a sender's connector: a round trip for a small one, minutes for gigabytes. */
const fetchBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

type TopicChild = Counter.Internal;

/** `counter`'s child of each topic, made once: no label object or hash per increment after the first. */
function perTopic(counter: Counter<'topic'>): (topic: string) => TopicChild {
  const children = new Map<string, TopicChild>();
  return (topic) => {
    let child = children.get(topic);
    if (child === undefined) {
      child = counter.labels(topic);
      children.set(topic, child);
    }
    return child;
  };
}

export class ConnectorMetrics {
  readonly registry = new Registry();
  private readonly accepted: (topic: string) => TopicChild;
  private readonly delivered: (topic: string) => TopicChild;
  private readonly completed: (topic: string) => TopicChild;
  private readonly expired: (topic: string) => TopicChild;
  private readonly received: (topic: string) => TopicChild;
  private readonly rejectedCounter: Counter<'topic' | 'reason'>;
  /** By topic, then reason code: rejections are rare, but a reason is still one of a fixed few. */
  private readonly rejectedChildren = new Map<string, Map<string, TopicChild>>();
  private readonly bytesOut: Counter;
  private readonly bytesIn: Counter;
  private readonly publishDuration: Histogram;
  private readonly fetchDuration: Histogram;

  constructor(sources: ConnectorMetricsSources = {}) {
    const registers = [this.registry];
    const producedTopics = (): readonly string[] => sources.topics?.().produced ?? [];
    const consumedTopics = (): readonly string[] => sources.topics?.().consumed ?? [];
    const topicCounter = (name: string, help: string, topics: () => readonly string[]): Counter<'topic'> =>
      new Counter({
        name: `${metricsPrefix}${name}`,
        help,
        labelNames: ['topic'],
        registers,
        collect() {
          // inc by 0 creates the series at zero and leaves an existing one as it is.
          for (const topic of topics()) this.inc({ topic }, 0);
        },
      });
    this.accepted = perTopic(
      topicCounter(
        'messages_accepted_total',
        'Messages this connector sent that the ledger accepted, once each, when their acceptance is first recorded (not again for a retry or a replayed acknowledgement of the same id).',
        producedTopics,
      ),
    );
    this.rejectedCounter = new Counter({
      name: `${metricsPrefix}messages_rejected_total`,
      help: "Messages this connector sent that the ledger refused, once per refused publish of the message, by the contract's reason code.",
      labelNames: ['topic', 'reason'],
      registers,
    });
    this.delivered = perTopic(
      topicCounter(
        'messages_delivered_total',
        'Messages this connector sent whose delivery a first recipient confirmed on the ledger (ACCEPTED to DELIVERED), once per message however many recipients it has.',
        producedTopics,
      ),
    );
    this.completed = perTopic(
      topicCounter(
        'messages_completed_total',
        'Messages this connector sent that every recipient confirmed (COMPLETED), once each.',
        producedTopics,
      ),
    );
    this.expired = perTopic(
      topicCounter(
        'messages_expired_total',
        "Messages this connector sent that expired (their topic's ttlMs) before every recipient confirmed them, once each.",
        producedTopics,
      ),
    );
    this.received = perTopic(
      topicCounter(
        'messages_received_total',
        'Messages addressed to this organization that this connector received, verified and stored for its applications, once each.',
        consumedTopics,
      ),
    );
    this.bytesOut = new Counter({
      name: `${metricsPrefix}payload_bytes_out_total`,
      help: "Payload bytes this connector served to other organizations' connectors: ciphertext as it goes on the wire, envelope headers and payloads carried inside their publish not included.",
      registers,
    });
    this.bytesIn = new Counter({
      name: `${metricsPrefix}payload_bytes_in_total`,
      help: "Payload bytes this connector fetched from senders' connectors: ciphertext as it came off the wire, envelope headers and payloads carried inside their publish not included.",
      registers,
    });
    this.publishDuration = new Histogram({
      name: `${metricsPrefix}publish_duration_seconds`,
      help: 'Seconds from a send reaching the connector until the ledger accepted every message of it and their proofs were checked (successful sends only; the payload upload is included).',
      buckets: publishBuckets,
      registers,
    });
    this.fetchDuration = new Histogram({
      name: `${metricsPrefix}payload_fetch_duration_seconds`,
      help: "Seconds to fetch one payload from its sender's connector, verify, decrypt and store it (successful fetches only).",
      buckets: fetchBuckets,
      registers,
    });
    new Gauge({
      name: `${metricsPrefix}consume_lag_messages`,
      help: "Received messages a consumer group has not consumed yet: those of the topic this connector holds whose receive sequence is past the group's committed sequence on the topic (PUT /v1/consumer-groups/{group}/topics/{topic}, as the SDK consumer commits). Only groups that committed a position have a sample; applications that keep their own position are not seen.",
      labelNames: ['group', 'topic'],
      registers,
      collect() {
        // Recomputed whole at each scrape: a group or topic gone since the last one leaves no stale sample.
        this.reset();
        for (const lag of sources.consumeLag?.() ?? [])
          this.set({ group: lag.group, topic: lag.topic }, lag.messages);
      },
    });
    new Gauge({
      name: `${metricsPrefix}storage_bytes`,
      help: 'Bytes this connector keeps on disk, by component: database (connector.sqlite with its WAL and shared-memory files) and payloads (the payload storage: file sizes, or table sizes on PostgreSQL; refreshed at most every 10 s).',
      labelNames: ['component'],
      registers,
      async collect() {
        const sizes = (await sources.storageBytes?.()) ?? {};
        this.reset();
        for (const [component, bytes] of Object.entries(sizes)) this.set({ component }, bytes);
      },
    });
  }

  /** `topic`'s message was accepted, seen here for the first time (see the class comment). */
  messageAccepted(topic: string): void {
    this.accepted(topic).inc();
  }

  messageRejected(topic: string, reason: string): void {
    let byReason = this.rejectedChildren.get(topic);
    if (byReason === undefined) {
      byReason = new Map();
      this.rejectedChildren.set(topic, byReason);
    }
    let child = byReason.get(reason);
    if (child === undefined) {
      child = this.rejectedCounter.labels(topic, reason);
      byReason.set(reason, child);
    }
    child.inc();
  }

  messageDelivered(topic: string): void {
    this.delivered(topic).inc();
  }

  messageCompleted(topic: string): void {
    this.completed(topic).inc();
  }

  messageExpired(topic: string): void {
    this.expired(topic).inc();
  }

  messageReceived(topic: string): void {
    this.received(topic).inc();
  }

  payloadBytesOut(bytes: number): void {
    if (bytes > 0) this.bytesOut.inc(bytes);
  }

  payloadBytesIn(bytes: number): void {
    if (bytes > 0) this.bytesIn.inc(bytes);
  }

  /** A send accepted whole, `seconds` after it reached the connector. */
  observePublish(seconds: number): void {
    this.publishDuration.observe(seconds);
  }

  /** A payload fetched, verified and stored in `seconds`. */
  observePayloadFetch(seconds: number): void {
    this.fetchDuration.observe(seconds);
  }

  /** This connector's metrics, then the process's (shared by every connector of the process). */
  async exposition(): Promise<MetricsExposition> {
    const own = await this.registry.metrics();
    const process = await processMetrics().metrics();
    return { contentType: this.registry.contentType, text: own + process };
  }
}

/** Seconds since `started` (a `performance.now()`): a monotonic clock, unlike the connector's. */
export function secondsSince(started: number): number {
  return (performance.now() - started) / 1000;
}

let processRegistry: Registry | undefined;

/**
 * The process's own metrics (CPU, memory, event loop, GC, file descriptors), in one registry for the
 * whole process: collectDefaultMetrics starts a GC observer and an event-loop monitor at each call
 * that nothing ever stops, so a registry per connector would leak them at every connector a process
 * (a test run) starts, and they would all report the same process anyway.
 */
function processMetrics(): Registry {
  if (processRegistry !== undefined) return processRegistry;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: metricsPrefix });
  // Gauges named like counters: `promtool check metrics` (Prometheus' naming rules) refuses a gauge
  // ending in _total, and each is the sum of its sibling without the suffix, by handle or resource type.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(`${metricsPrefix}${name}`);
  processRegistry = registry;
  return registry;
}

/** How long a payload-storage size is reused at least, and as a multiple of the time it took to read. */
const storageUsageFreshMs = 10_000;
const storageUsageCostFactor = 20;

/**
 * A size that is slow to read (a walk of the payload directory), read again only once it is stale:
 * after at least 10 s, and after 20 times as long as the last reading took, so that reading it
 * never takes more than about 5 % of the storage's time however many objects it holds. Scrapes
 * that come together share one reading; a reading that fails leaves the value unknown until the next.
 */
export class CachedSize {
  private value: number | undefined;
  private readAt = Number.NEGATIVE_INFINITY;
  private freshMs = storageUsageFreshMs;
  private reading: Promise<number | undefined> | undefined;

  constructor(
    private readonly read: () => Promise<number>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(): Promise<number | undefined> {
    if (this.now() - this.readAt < this.freshMs) return Promise.resolve(this.value);
    this.reading ??= this.refresh().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async refresh(): Promise<number | undefined> {
    const started = this.now();
    try {
      this.value = await this.read();
    } catch {
      this.value = undefined;
    }
    const took = this.now() - started;
    this.readAt = this.now();
    this.freshMs = Math.max(storageUsageFreshMs, took * storageUsageCostFactor);
    return this.value;
  }
}

/** The summed sizes of `files` that exist (SQLite's -wal and -shm files come and go). */
export async function fileBytes(files: readonly string[]): Promise<number> {
  const sizes = await Promise.all(
    files.map((file) =>
      stat(file).then(
        (found) => found.size,
        () => 0,
      ),
    ),
  );
  return sizes.reduce((total, size) => total + size, 0);
}
