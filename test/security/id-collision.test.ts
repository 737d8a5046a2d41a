// Security issue 11, item 4: message ids are unique only within a partition (the SDT contract keys
// its idempotent producer by id per partition), and any member may create a topic. A recipient's
// connector that identifies a received message by its id alone lets one sender suppress or shadow
// another's messages to the same recipient: org1 sends `dup-1` to org2 on a topic of its own, and
// when org3 then sends `dup-1` to org2 on `demo`, org2 keeps org1's message under both names.
//
// Shows, on a 4-node network over real TLS with each organization's REST API: both messages are
// stored at org2, both are confirmed on-chain, each (topic, partition, id) path answers its own
// message and payload, status and receipt name the right sender, and the id-only route refuses to
// guess (409 AMBIGUOUS_MESSAGE_ID, listing both). A sender's own ids may repeat across topics too:
// the second is its own message, not a retry of the first.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceiptBundle, ReceivedMessage, SendResult } from '../../src/connector/api-types.js';
import type { MessageStatus } from '../../src/connector/api-types.js';
import { randomBytes } from 'node:crypto';
import { encodeClientRequest } from '../../src/consensus/pbft/messages.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import { isLedgerbusError } from '../../src/errors.js';
import { SecurityNetwork, codeOf, metadataOf, waitFor } from './support.js';
import type { ApiClient } from './support.js';

const net = new SecurityNetwork({ name: 'id-collision', basePort: 24840 });
const api: Record<'org1' | 'org2' | 'org3', ApiClient> = {} as never;
/** A topic the attacker (org1) creates and owns, on which org2 may receive. */
const ownTopic = 'org1-side';
/** A topic of org1's with two partitions, where keyless messages alternate between partitions. */
const twoPartitions = 'org1-two';

beforeAll(async () => {
  await net.startNodes();
  for (const organization of ['org1', 'org2', 'org3'] as const) {
    await net.startConnector(organization);
    api[organization] = await net.startApi(organization);
  }
  // Any approved member may create a topic: this is the attacker's whole set-up.
  await createTopic(ownTopic, 1);
  await createTopic(twoPartitions, 2);
}, 90_000);

async function createTopic(name: string, partitions: number): Promise<void> {
  await waitFor(`org1 to create ${name}`, async () => {
    const created = await api.org1.call('POST', '/v1/admin', {
      json: { kind: 'createTopic', name, partitions, producers: ['org1'], consumers: ['org2'] },
    });
    if (created.status === 200) return true;
    const { error } = created.json() as { error: { retriable: boolean } };
    if (error.retriable) return undefined;
    throw new Error(`createTopic: HTTP ${created.status} ${created.body.toString()}`);
  });
}

afterAll(async () => {
  await net.stop();
}, 60_000);

async function send(from: ApiClient, topic: string, id: string, text: string): Promise<SendResult> {
  return waitFor(`${id} on ${topic} to be accepted`, async () => {
    const answer = await from.call('POST', `/v1/topics/${topic}/messages?to=org2&id=${id}`, {
      body: text,
      headers: { 'content-type': 'text/plain' },
    });
    if (answer.status === 200) return answer.json() as SendResult;
    // A new topic's partition may still be electing its replicas: the connector says it is retriable.
    if ((answer.json() as { error: { retriable: boolean } }).error.retriable) return undefined;
    throw new Error(`send ${id} on ${topic}: HTTP ${answer.status} ${answer.body.toString()}`);
  });
}

/** Waits for org2's consumer listing of `topic` to show `id` (a route older connectors had too). */
async function receivedAt(topic: string, id: string): Promise<ReceivedMessage> {
  return waitFor(
    `org2 to store ${topic}/0/${id}`,
    async () => {
      const listed = await api.org2.json<{ messages: ReceivedMessage[] }>(
        'GET',
        `/v1/received?topic=${topic}&limit=1000`,
      );
      return listed.messages.find((message) => message.id === id);
    },
    30_000,
  );
}

async function deliveredTo(from: ApiClient, topic: string, id: string): Promise<MessageStatus> {
  return waitFor(
    `${topic}/${id} to be confirmed by org2 on-chain`,
    async () => {
      const status = await from.json<MessageStatus>('GET', `/v1/topics/${topic}/messages/${id}/status`);
      return status.recipients.every((recipient) => recipient.state === 'DELIVERED') ? status : undefined;
    },
    30_000,
  );
}

describe('message ids that repeat across topics, at the recipient', () => {
  it("stores, confirms and serves both org1's and org3's dup-1, each under its own topic and partition", async () => {
    await send(api.org1, ownTopic, 'dup-1', 'from org1');
    const first = await receivedAt(ownTopic, 'dup-1');
    expect(first).toMatchObject({ topic: ownTopic, partition: 0, sender: 'org1' });

    // The victim's real correspondent now sends with the same id on another topic.
    await send(api.org3, 'demo', 'dup-1', 'from org3');
    const second = await receivedAt('demo', 'dup-1');
    expect(second).toMatchObject({ topic: 'demo', partition: 0, sender: 'org3' });
    expect(second.sequence).not.toBe(first.sequence);

    // Each path answers its own payload.
    expect((await api.org2.call('GET', `/v1/received/${ownTopic}/0/dup-1/payload`)).body.toString()).toBe(
      'from org1',
    );
    expect((await api.org2.call('GET', '/v1/received/demo/0/dup-1/payload')).body.toString()).toBe(
      'from org3',
    );
    // The listing carries each small payload as its own `value`; one message's entry is the rest.
    expect(Buffer.from(first.value ?? '', 'base64').toString()).toBe('from org1');
    expect(Buffer.from(second.value ?? '', 'base64').toString()).toBe('from org3');
    const { value: _firstValue, ...firstEntry } = first;
    const { value: _secondValue, ...secondEntry } = second;
    expect(await api.org2.json('GET', `/v1/received/${ownTopic}/0/dup-1`)).toEqual(firstEntry);
    expect(await api.org2.json('GET', '/v1/received/demo/0/dup-1')).toEqual(secondEntry);

    // Both confirmed on-chain (neither stays PENDING until its TTL).
    expect((await deliveredTo(api.org3, 'demo', 'dup-1')).sender).toBe('org3');
    expect((await deliveredTo(api.org1, ownTopic, 'dup-1')).sender).toBe('org1');

    // The recipient's status and receipt of demo/dup-1 are org3's message, not org1's.
    const status = await api.org2.json<MessageStatus>('GET', '/v1/topics/demo/messages/dup-1/status');
    expect(status).toMatchObject({ sender: 'org3', partition: 0, offset: second.offset });
    const receipt = await api.org2.json<ReceiptBundle>('GET', '/v1/topics/demo/messages/dup-1/receipt');
    expect(receipt.message).toMatchObject({ topic: 'demo', sender: 'org3', id: 'dup-1' });

    // The id alone no longer names one message: the old route says so and lists both, never guesses.
    const ambiguous = await api.org2.call('GET', '/v1/received/dup-1');
    expect(ambiguous.status).toBe(409);
    const { error } = ambiguous.json() as {
      error: { code: string; retriable: boolean; candidates: { topic: string; partition: number }[] };
    };
    expect(error.code).toBe('AMBIGUOUS_MESSAGE_ID');
    expect(error.retriable).toBe(false);
    expect(error.candidates.map((candidate) => `${candidate.topic}/${candidate.partition}`).sort()).toEqual([
      'demo/0',
      `${ownTopic}/0`,
    ]);
    expect((await api.org2.call('GET', '/v1/received/dup-1/payload')).status).toBe(409);
    // An id that only one message has is still found by the old route.
    await send(api.org3, 'demo', 'only-once', 'unique');
    await receivedAt('demo', 'only-once');
    expect((await api.org2.call('GET', '/v1/received/only-once/payload')).body.toString()).toBe('unique');
  });
});

describe("message ids that repeat across a sender's own topics", () => {
  it('sends the second as a message of its own, not as a retry of the first', async () => {
    const onOwn = await send(api.org1, ownTopic, 'dup-2', 'first, on its own topic');
    const onDemo = await send(api.org1, 'demo', 'dup-2', 'second, on demo');
    expect(onDemo).toMatchObject({ topic: 'demo', partition: 0 });
    expect((await receivedAt(ownTopic, 'dup-2')).size).toBe('first, on its own topic'.length);
    expect((await api.org2.call('GET', `/v1/received/${ownTopic}/0/dup-2/payload`)).body.toString()).toBe(
      'first, on its own topic',
    );
    await receivedAt('demo', 'dup-2');
    expect((await api.org2.call('GET', '/v1/received/demo/0/dup-2/payload')).body.toString()).toBe(
      'second, on demo',
    );
    // The sender's status of each names its own partition and offset.
    const demoStatus = await deliveredTo(api.org1, 'demo', 'dup-2');
    expect(demoStatus.offset).toBe(onDemo.offset);
    expect((await deliveredTo(api.org1, ownTopic, 'dup-2')).offset).toBe(onOwn.offset);
    // A retry on the same topic is still a retry: the first acceptance comes back.
    const again = await send(api.org1, 'demo', 'dup-2', 'second, on demo');
    expect(again).toMatchObject({
      topic: 'demo',
      partition: 0,
      offset: onDemo.offset,
      height: onDemo.height,
    });
  });

  it('sends a keyless retry to the partition of the first attempt, not where the partitioner is now', async () => {
    const first = await send(api.org1, twoPartitions, 'retry-1', 'once');
    // The sticky partitioner moves on after every send: new keyless messages alternate partitions,
    // so after two more the partitioner points at the partition the first attempt did not use.
    const second = await send(api.org1, twoPartitions, 'retry-other-1', 'another');
    const third = await send(api.org1, twoPartitions, 'retry-other-2', 'and another');
    expect(second.partition).not.toBe(first.partition);
    expect(third.partition).toBe(first.partition);
    const again = await send(api.org1, twoPartitions, 'retry-1', 'once');
    expect(again).toMatchObject({ partition: first.partition, offset: first.offset, height: first.height });
  });

  it('makes two concurrent sends of one id on one topic one message, keeping one payload', async () => {
    const payloads = net.storedPayloads('org1');
    const connector = net.connector('org1');
    const both = await Promise.all(
      ['one body', 'another body'].map((text) =>
        connector.send('demo', [
          { id: 'concurrent-1', value: Readable.from([Buffer.from(text)]), to: ['org2'] },
        ]),
      ),
    );
    expect(both[1]?.[0]).toMatchObject({ partition: both[0]?.[0]?.partition, offset: both[0]?.[0]?.offset });
    // The payload that lost the race was not kept: one ciphertext for one message.
    expect(net.storedPayloads('org1')).toBe(payloads + 1);
  });
});

describe("a topic's global ledger", () => {
  it('answers a receipt for an id on two partitions of one topic only when told which partition', async () => {
    // The contract makes an id unique per partition: a sender may publish it on both partitions.
    const key = net.connectorKey('org1');
    const peer = await net.dial('node1', key);
    try {
      for (const partition of [0, 1]) {
        const group = `${twoPartitions}/${partition}`;
        const operation = encodePublish(
          {
            sender: 'org1',
            nonce: randomBytes(16),
            timestamp: Date.now(),
            messages: [metadataOf('twin-1', { topic: twoPartitions, partition, recipients: ['org2'] })],
          },
          net.signer('org1'),
        );
        const request = encodeClientRequest(
          { group, client: key.publicKey, seq: Date.now() * 1000 + partition, operation },
          net.signer('org1').sign,
        );
        await waitFor(`twin-1 on ${group}`, async () => {
          try {
            return await peer.request('publish', { group, request });
          } catch (error) {
            if (isLedgerbusError(error) && error.retriable) return undefined;
            throw error;
          }
        });
      }
      // Once the global ledger holds both, the id alone names no single message.
      await waitFor('the global ledger to hold twin-1 on both partitions', async () =>
        (await codeOf(peer.request('globalReceipt', { topic: twoPartitions, id: 'twin-1' }))) ===
        'AMBIGUOUS_MESSAGE_ID'
          ? true
          : undefined,
      );
      for (const partition of [0, 1]) {
        const receipt = (await peer.request('globalReceipt', {
          topic: twoPartitions,
          id: 'twin-1',
          partition: `${twoPartitions}/${partition}`,
        })) as { partition: string };
        expect(receipt.partition).toBe(`${twoPartitions}/${partition}`);
      }
    } finally {
      peer.close();
    }
  });
});
