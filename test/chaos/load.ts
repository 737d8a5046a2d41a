// The load a chaos or power-cut run puts on a devnet, through the connectors as applications would:
// producers that retry under the same id until acknowledged (REST API), the recipients' applications
// (SDK consumers that count every message they are handed), and readers of what each recipient's
// connector stored.
import { createHash, randomBytes } from 'node:crypto';
import { Ledgerbus } from '../../src/client/index.js';
import type { ProcessNetwork } from '../support/process-network.js';
import { sleep, waitFor } from '../support/processes.js';
import { checkDeliveries } from './checker.js';
import type { AckedMessage, HandedMessage, ReceivedMessage } from './checker.js';

const sendTimeoutMs = 15_000;
const sendAttempts = 10;

export async function json<T>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

export async function receivedAll(
  net: ProcessNetwork,
  organization: string,
  topic: string,
): Promise<ReceivedMessage[]> {
  const all: ReceivedMessage[] = [];
  for (let after = 0; ;) {
    const page = await json<{ messages: ReceivedMessage[] }>(
      await net.api(organization, `/v1/received?topic=${topic}&after=${after}&limit=1000`, {
        signal: AbortSignal.timeout(sendTimeoutMs),
      }),
      `list received of ${organization}`,
    );
    const last = page.messages.at(-1);
    if (last === undefined) return all;
    all.push(...page.messages);
    after = last.sequence;
  }
}

/** An admin action through `organization`'s connector, retried while faults make it fail. */
export async function admin(
  net: ProcessNetwork,
  organization: string,
  action: object,
  stop: () => boolean,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await json(
        await net.api(organization, '/v1/admin', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(action),
          signal: AbortSignal.timeout(30_000),
        }),
        `admin ${JSON.stringify(action)}`,
      );
      return;
    } catch (error) {
      // A retry after a commit whose answer was lost is refused as already done: that is success too.
      if (/ALREADY_EXISTS|must exceed the current/.test(String(error))) return;
      if (attempt >= 20 || stop()) throw error;
      await sleep(2_000);
    }
  }
}

export interface Producer {
  readonly sender: string;
  readonly recipient: string;
  readonly topic: string;
  /** Keys spread messages over the topic's partitions (murmur2, as Kafka); none: sticky keyless. */
  readonly keyed: boolean;
}

/**
 * Publishes until `stop()` says so. An id counts only once the connector acknowledged it; a failed
 * attempt is retried under the same id, which the connector must treat idempotently.
 */
export async function produce(
  net: ProcessNetwork,
  producer: Producer,
  prefix: string,
  acked: AckedMessage[],
  stop: () => boolean,
): Promise<{ attempts: number; unacked: number }> {
  let attempts = 0;
  let unacked = 0;
  for (let index = 0; !stop(); index++) {
    const id = `${prefix}-${producer.topic}-${producer.sender}-${index}`;
    const payload = randomBytes(16 + (randomBytes(2).readUInt16BE(0) % 1008));
    const sha256 = createHash('sha256').update(payload).digest('hex');
    const key = producer.keyed ? `&key=${Buffer.from(`key-${index % 32}`).toString('base64')}` : '';
    let done = false;
    for (let attempt = 0; attempt < sendAttempts && !done; attempt++) {
      attempts += 1;
      try {
        const result = await json<{ id: string; partition: number; offset: number }>(
          await net.api(
            producer.sender,
            `/v1/topics/${producer.topic}/messages?to=${producer.recipient}&id=${encodeURIComponent(id)}${key}`,
            {
              method: 'POST',
              headers: { 'content-type': 'application/octet-stream' },
              body: payload,
              signal: AbortSignal.timeout(sendTimeoutMs),
            },
          ),
          `send ${id}`,
        );
        if (result.id !== id) throw new Error(`${id} acknowledged as ${result.id}`);
        acked.push({
          id,
          topic: producer.topic,
          recipient: producer.recipient,
          sha256,
          partition: result.partition,
          offset: result.offset,
          ackedAt: Date.now(),
        });
        done = true;
      } catch {
        // The connector or its node may be down, paused or cut off right now; the same id is retried.
        await sleep(1_000);
      }
    }
    if (!done) unacked += 1;
  }
  return { attempts, unacked };
}

/**
 * A recipient organization's application: an SDK consumer (`consumer.subscribe` + `run({ eachMessage })`)
 * of `topics` from the beginning, recording every message it is handed and whether the SDK then
 * confirmed the commit of its sequence (the `commit` event). The SDK commits after `eachMessage`
 * resolves, retrying a failed commit a few times and then crashing the consumer; a crashed consumer is
 * replaced by a new incarnation, which resumes after the group's committed sequence, so a message
 * whose commit was lost is handed again — at-least-once, which `checkDeliveries` tells apart from a
 * real duplicate. This process is never killed, so nothing else may hand a message twice.
 */
export class ApplicationConsumer {
  readonly handed: HandedMessage[] = [];
  /** Why earlier incarnations ended: the crashes the SDK reported. */
  readonly crashes: string[] = [];
  private readonly client: Ledgerbus;
  private readonly awaitingCommit = new Map<string, HandedMessage>();
  private made = 0;
  private stopping = false;
  private wake: () => void = () => {};
  private loop: Promise<void> | undefined;

  constructor(
    net: ProcessNetwork,
    readonly recipient: string,
    readonly topics: readonly string[],
    private readonly groupId = 'ledgerbus-test-application',
  ) {
    const { url, token } = net.connector(recipient);
    this.client = new Ledgerbus({ connector: url, token, requestTimeoutMs: 15_000 });
  }

  /** Consumers made so far: one, and one more after each crash. */
  get incarnations(): number {
    return this.made;
  }

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  /** Stops consuming; a message being handed out is finished and committed first. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const incarnation = this.made++;
      const consumer = this.client.consumer({
        groupId: this.groupId,
        maxWaitTimeInMs: 2_000,
        retry: { initialRetryTime: 200, maxRetryTime: 2_000 },
      });
      const ended = new Promise<string | undefined>((resolve) => {
        this.wake = () => resolve(undefined);
        consumer.on('crash', (error) => resolve(`#${incarnation} crashed: ${String(error)}`));
      });
      // A commit moves the group's position: every message handed out up to it is committed.
      consumer.on('commit', ({ topic, sequence }) => {
        for (const [key, copy] of this.awaitingCommit) {
          if (copy.incarnation !== incarnation || copy.topic !== topic || copy.sequence > sequence) continue;
          copy.committed = true;
          this.awaitingCommit.delete(key);
        }
      });
      // Where to start: the group's committed sequence, asked until the connector answers.
      for (;;) {
        if (this.stopping) return;
        try {
          await consumer.subscribe({ topics: [...this.topics], fromBeginning: true });
          break;
        } catch {
          await sleep(500); // the connector is down or restarting
        }
      }
      await consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          const value = message.value ?? Buffer.concat(await (await message.stream()).toArray());
          const copy: HandedMessage = {
            recipient: this.recipient,
            incarnation,
            committed: false,
            sequence: message.sequence,
            id: message.id,
            topic,
            partition,
            offset: message.offset,
            sha256: createHash('sha256').update(value).digest('hex'),
          };
          this.handed.push(copy);
          this.awaitingCommit.set(`${incarnation} ${topic} ${message.sequence}`, copy);
        },
      });
      const crash = await ended;
      await consumer.stop();
      if (crash !== undefined) this.crashes.push(crash);
    }
  }

  /** What this recipient's connector stored of the consumed topics. */
  async stored(net: ProcessNetwork): Promise<ReceivedMessage[]> {
    const all: ReceivedMessage[] = [];
    for (const topic of this.topics) all.push(...(await receivedAll(net, this.recipient, topic)));
    return all;
  }
}

/** Resolves once `count` more messages than now are acknowledged (a cut of an idle network tests nothing). */
export function ackedMore(acked: readonly AckedMessage[], count: number, what: string): Promise<true> {
  const before = acked.length;
  return waitFor(what, () => (acked.length >= before + count ? true : undefined), 90_000, 100);
}

/**
 * The load of a power-cut or power-loss run: three keyless producers org1 → org2 and three org3 →
 * org4 on demo (ids prefixed `prefix`), and the recipients' applications consuming throughout.
 */
export function startCutLoad(
  net: ProcessNetwork,
  prefix: string,
  acked: AckedMessage[],
  stop: () => boolean,
): { load: Promise<{ attempts: number; unacked: number }[]>; consumers: ApplicationConsumer[] } {
  const producers: Producer[] = [
    ...[0, 1, 2].map(() => ({ sender: 'org1', recipient: 'org2', topic: 'demo', keyed: false })),
    ...[0, 1, 2].map(() => ({ sender: 'org3', recipient: 'org4', topic: 'demo', keyed: false })),
  ];
  const consumers = ['org2', 'org4'].map((recipient) =>
    new ApplicationConsumer(net, recipient, ['demo']).start(),
  );
  const load = Promise.all(
    producers.map((producer, index) => produce(net, producer, `${prefix}-${index}`, acked, stop)),
  );
  return { load, consumers };
}

/**
 * Waits until the applications were handed every acknowledged message and everything their
 * connectors had stored when last asked (or `timeoutMs` passes), then stops them. Returns every
 * hand-out and that last view of the connectors' storage, for `checkDeliveries`. A duplicate the
 * connector stores, or hands out, is among them: no fixed wait is needed for it to show.
 */
export async function drainApplications(
  net: ProcessNetwork,
  consumers: readonly ApplicationConsumer[],
  acked: readonly AckedMessage[],
  timeoutMs: number,
  progress: (pending: number) => void = () => {},
  /** Gives up waiting at once (an interrupted run). */
  stop: () => boolean = () => false,
): Promise<{ handed: HandedMessage[]; stored: Map<string, ReceivedMessage[]> }> {
  const stored = new Map<string, ReceivedMessage[]>();
  const handed = (): HandedMessage[] => consumers.flatMap((consumer) => consumer.handed);
  const until = Date.now() + timeoutMs;
  for (;;) {
    // Storage first, then what was handed: everything stored by now must be handed by the check.
    for (const consumer of consumers) {
      const entries = await consumer.stored(net).catch(() => undefined); // a connector restarting
      if (entries !== undefined) stored.set(consumer.recipient, entries);
    }
    const pending = checkDeliveries(acked, handed(), stored).problems.filter(
      (problem) => problem.kind === 'lost' || problem.kind === 'storedNotHanded',
    ).length;
    if (pending === 0 || Date.now() > until || stop()) break;
    progress(pending);
    await sleep(1_000);
  }
  await Promise.all(consumers.map((consumer) => consumer.stop()));
  return { handed: handed(), stored };
}
