/**
 * Group commit of publishes: the messages of concurrent sends bound for the same queue (a partition
 * and a recipient set) share signed batches, as a Kafka producer's `linger.ms` and
 * `max.in.flight.requests.per.connection` make concurrent sends share requests. Every batch costs
 * a signature, a PBFT request, its execution and a proof check on every replica; coalescing lets
 * batches grow with the load instead of paying that once per message.
 *
 * While fewer than `inFlightBatchesMax` batches of a queue await their answer, what is queued goes
 * out at once (or after `lingerMs`): at low load a send is not delayed. At the limit, entries wait,
 * and the next flush takes all of them.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';

/** How eagerly a queue's entries are published (connector.yaml `producer`). */
export interface CoalescingPolicy {
  /** A queue's batches submitted and not yet answered; past this, new entries wait for one to end. */
  readonly inFlightBatchesMax: number;
  /** How long entries may wait for others while a batch could go out now (0: they do not). */
  readonly lingerMs: number;
}

/**
 * One publish in flight per partition and recipient set: the next batch forms while the previous one
 * commits, and takes everything queued meanwhile. On this 2-core machine every process competes for
 * the same CPU and a node's work is mostly per block, so fewer, larger batches win: bench:e2e (64
 * callers × 1 KiB, two alternating runs each) delivered 167–179 msg/s at 13.4–13.7 messages per
 * publish and 10.8–11.5 ms CPU per message with one in flight, against 102–133 msg/s, 7.2–7.7 and
 * 14.5–19.2 ms with two; 16 callers × 200 B: 141–142 against 76–104 msg/s. (Before small payloads
 * travelled inline, two matched one.) A linger of 5 ms gained nothing measurable under load and
 * would only delay a lone send. Links with a long round trip may want 2 or more (config).
 */
export const defaultCoalescingPolicy: CoalescingPolicy = { inFlightBatchesMax: 1, lingerMs: 0 };

export interface CoalescerOptions<E, R> extends CoalescingPolicy {
  /** Entries per batch. */
  readonly batchEntriesMax: number;
  /**
   * Publishes one batch, called in queue order: one outcome per entry, in order. A rejection is
   * the outcome of every entry of the batch.
   */
  readonly submit: (batch: readonly E[]) => Promise<readonly R[]>;
  /** Waits `ms` (a lingering queue); resolving early only publishes sooner. */
  readonly wait: (ms: number) => Promise<void>;
}

export interface Added<R> {
  /**
   * Resolves once every added entry is in a submitted batch: entries added after that to another
   * queue of the same partition are submitted after these.
   */
  readonly submitted: Promise<void>;
  /** Each entry's outcome, in order; they never reject. */
  readonly outcomes: readonly Promise<PromiseSettledResult<R>>[];
}

interface Queued<E, R> {
  readonly entry: E;
  readonly settle: (outcome: PromiseSettledResult<R>) => void;
  /** Set on the last entry of an `add`. */
  submitted?: () => void;
}

interface Queue<E, R> {
  readonly entries: Queued<E, R>[];
  inFlight: number;
  /** A linger wait is under way. */
  lingering: boolean;
  /** The entries lingered, or waited for the in-flight limit: the next free slot takes them. */
  ripe: boolean;
}

export class Coalescer<E, R> {
  /**
   * By key: a queue is dropped once nothing waits or is in flight in it, and its entries are the
   * publishes callers are awaiting now.
   */
  private readonly queues = new Map<string, Queue<E, R>>();

  constructor(private readonly options: CoalescerOptions<E, R>) {
    const { inFlightBatchesMax, lingerMs, batchEntriesMax } = options;
    for (const [name, value, min] of [
      ['inFlightBatchesMax', inFlightBatchesMax, 1],
      ['lingerMs', lingerMs, 0],
      ['batchEntriesMax', batchEntriesMax, 1],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < min)
        throw new LedgerbusError(ErrorCode.BadConfig, `${name}: expected an integer of at least ${min}`);
    }
  }

  /** Queues `entries` (in order, after everything queued before) on queue `key`. */
  add(key: string, entries: readonly E[]): Added<R> {
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = { entries: [], inFlight: 0, lingering: false, ripe: false };
      this.queues.set(key, queue);
    }
    const target = queue;
    const outcomes = entries.map(
      (entry) =>
        new Promise<PromiseSettledResult<R>>((settle) => {
          target.entries.push({ entry, settle });
        }),
    );
    const last = target.entries[target.entries.length - 1];
    const submitted =
      entries.length === 0 || last === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            last.submitted = resolve;
          });
    this.schedule(key, target);
    return { submitted, outcomes };
  }

  /** Queues with entries waiting or batches in flight (a queue is dropped once it has neither). */
  get activeQueues(): number {
    return this.queues.size;
  }

  private schedule(key: string, queue: Queue<E, R>): void {
    const { inFlightBatchesMax, lingerMs, batchEntriesMax } = this.options;
    if (queue.entries.length > 0) {
      if (queue.inFlight >= inFlightBatchesMax) {
        // They wait for a batch to end already: that is their linger.
        queue.ripe = true;
      } else if (lingerMs === 0 || queue.ripe || queue.entries.length >= batchEntriesMax) {
        this.flush(key, queue);
      } else if (!queue.lingering) {
        queue.lingering = true;
        void this.options.wait(lingerMs).then(() => {
          queue.lingering = false;
          queue.ripe = queue.entries.length > 0;
          this.schedule(key, queue);
        });
      }
    }
    if (queue.entries.length === 0 && queue.inFlight === 0 && !queue.lingering) this.queues.delete(key);
  }

  /** Submits everything queued, in batches, in queue order. */
  private flush(key: string, queue: Queue<E, R>): void {
    queue.ripe = false;
    const queued = queue.entries.splice(0);
    for (let start = 0; start < queued.length; start += this.options.batchEntriesMax) {
      const batch = queued.slice(start, start + this.options.batchEntriesMax);
      queue.inFlight += 1;
      let answer: Promise<readonly R[]>;
      try {
        answer = this.options.submit(batch.map((queuedEntry) => queuedEntry.entry));
      } catch (error) {
        answer = Promise.reject(error);
      }
      for (const queuedEntry of batch) queuedEntry.submitted?.();
      void answer
        .then((outcomes) => {
          if (outcomes.length !== batch.length)
            throw new Error(`${outcomes.length} outcomes for a batch of ${batch.length}`);
          batch.forEach((queuedEntry, index) =>
            queuedEntry.settle({ status: 'fulfilled', value: outcomes[index] as R }),
          );
        })
        .catch((reason: unknown) => {
          for (const queuedEntry of batch) queuedEntry.settle({ status: 'rejected', reason });
        })
        .finally(() => {
          queue.inFlight -= 1;
          this.schedule(key, queue);
        });
    }
  }
}
