// The load a chaos or power-cut run puts on a devnet, through the connectors' REST API as an
// application would: producers that retry under the same id until acknowledged, and readers of what
// each recipient's connector stored.
import { createHash, randomBytes } from 'node:crypto';
import type { ProcessNetwork } from '../support/process-network.js';
import { sleep } from '../support/process-network.js';
import type { AckedMessage, ReceivedMessage } from './checker.js';

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
