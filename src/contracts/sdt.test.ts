import { describe, expect, it } from 'vitest';
import { decodeCanonical, encodeCanonical } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { SigningDomain, verifyInclusion } from '../crypto/index.js';
import { AssertionError } from '../errors.js';
import { RejectReason, sdtRejectReasons } from './reasons.js';
import type { RejectReason as RejectReasonType } from './reasons.js';
import { messageById, messagesByOffset, partitionStatus } from './queries.js';
import { decodeTransactionResult } from './results.js';
import type { DeliveryResult, MessageResult, TransactionResult } from './results.js';
import { executeBatch } from './sdt.js';
import {
  PUBLISH_SIGNING_TYPE,
  payloadsHash,
  publishSigningPayload,
  publishedMessageProof,
  transactionClockWindowMs,
} from './transactions.js';
import type { MessageMetadata } from './transactions.js';
import {
  Harness,
  contentRoot,
  keys,
  makeRegistry,
  message,
  partitionId,
  policy,
  signing,
} from './testing/fixtures.js';

function published(result: TransactionResult | undefined): MessageResult[] {
  expect(result?.status).toBe('OK');
  if (result?.status !== 'OK' || result.type !== 'publish') throw new Error('not a publish result');
  return [...result.messages];
}

function confirmed(result: TransactionResult | undefined): DeliveryResult[] {
  if (result?.status !== 'OK' || result.type !== 'confirmDelivery') {
    throw new Error(`not a confirmDelivery result: ${JSON.stringify(result)}`);
  }
  return [...result.deliveries];
}

function transactionReason(result: TransactionResult | undefined): string | undefined {
  return result?.status === 'REJECTED' ? result.reason : undefined;
}

function itemReason(item: MessageResult | DeliveryResult | undefined): string | undefined {
  return item?.status === 'REJECTED' ? item.reason : undefined;
}

/** Re-encodes a transaction after changing one field, keeping the (now stale) signature. */
function tamper(bytes: Uint8Array, change: (transaction: Record<string, CborValue>) => void): Uint8Array {
  const transaction = { ...(decodeCanonical(bytes) as Record<string, CborValue>) };
  change(transaction);
  return encodeCanonical(transaction);
}

/** Reason codes each exercised below, so the last test can check that none is left untested. */
const exercised = new Set<RejectReasonType>();
function expectReason(actual: string | undefined, reason: RejectReasonType): void {
  expect(actual).toBe(reason);
  exercised.add(reason);
}

describe('publish', () => {
  it('records a batch at consecutive offsets with one signature, and each message is provable', () => {
    const harness = new Harness();
    const batch = [
      message({ id: 'a' }),
      message({ id: 'b', recipients: ['bob', 'carol'] }),
      message({ id: 'c' }),
    ];
    const transaction = harness.publish('alice', batch);
    const { decoded, events } = harness.run([
      harness.publish('bob', [message({ id: 'first' })]),
      transaction,
    ]);
    expect(published(decoded[0])).toEqual([
      { id: 'first', status: 'ACCEPTED', offset: 0, height: 1, transactionIndex: 0, messageIndex: 0 },
    ]);
    expect(published(decoded[1])).toEqual(
      ['a', 'b', 'c'].map((id, index) => ({
        id,
        status: 'ACCEPTED',
        offset: index + 1,
        height: 1,
        transactionIndex: 1,
        messageIndex: index,
      })),
    );
    expect(events.map((event) => [event.type, event.id, event.offset])).toEqual([
      ['MessageAccepted', 'first', 0],
      ['MessageAccepted', 'a', 1],
      ['MessageAccepted', 'b', 2],
      ['MessageAccepted', 'c', 3],
    ]);

    // Offline check of message "b": sender signature over the batch header, leaf under its root.
    const result = decoded[1];
    if (result?.status !== 'OK' || result.type !== 'publish') throw new Error('unreachable');
    const { header, signature, leaf, proof } = publishedMessageProof(transaction, 1);
    expect(header.messagesRoot).toEqual(result.messagesRoot);
    expect(header.messageCount).toBe(3);
    expect(
      signing.verify(header.signerKey, PUBLISH_SIGNING_TYPE, publishSigningPayload(header), signature),
    ).toBe(true);
    expect(verifyInclusion(result.messagesRoot, leaf, proof)).toBe(true);
    expect(proof.treeSize).toBe(result.messageCount);
    expect(partitionStatus(harness.state, partitionId)).toEqual({
      height: 1,
      time: harness.time,
      nextOffset: 4,
    });
  });

  it('lets a connector use any of its organization’s registered keys', () => {
    const registry = makeRegistry();
    const second = keys.stranger;
    registry.putOrganization({
      id: 'alice',
      roles: ['member'],
      status: 'APPROVED',
      signingKeys: [keys.alice.publicKey, second.publicKey],
    });
    const harness = new Harness(registry);
    const { decoded } = harness.run([harness.publish('alice', [message()], { key: second })]);
    expect(published(decoded[0])[0]?.status).toBe('ACCEPTED');
  });

  it('returns the FIRST result to a retry of the same id, without a new offset or event', () => {
    const harness = new Harness();
    const first = harness.run([harness.publish('alice', [message({ id: 'x' }), message({ id: 'y' })])]);
    // The connector retries "y" in a new batch (new nonce, new timestamp), next to a new message.
    const retry = harness.run([harness.publish('alice', [message({ id: 'z' }), message({ id: 'y' })])]);
    const firstResults = published(first.decoded[0]);
    const retryResults = published(retry.decoded[0]);
    expect(retryResults[1]).toEqual(firstResults[1]);
    expect(encodeCanonical(retryResults[1] as unknown as CborValue)).toEqual(
      encodeCanonical(firstResults[1] as unknown as CborValue),
    );
    expect(retryResults[0]).toMatchObject({ id: 'z', status: 'ACCEPTED', offset: 2, height: 2 });
    expect(retry.events.map((event) => event.id)).toEqual(['z']);
    // A retry within the same batch gets the same answer too.
    const twice = harness.run([harness.publish('alice', [message({ id: 'w' }), message({ id: 'w' })])]);
    const [once, again] = published(twice.decoded[0]);
    expect(again).toEqual(once);
    expect(partitionStatus(harness.state, partitionId).nextOffset).toBe(4);
  });

  it('refuses to reuse an id with different metadata, or from another sender', () => {
    const harness = new Harness();
    harness.run([harness.publish('alice', [message({ id: 'x' })])]);
    const { decoded } = harness.run([
      harness.publish('alice', [message({ id: 'x', size: 999 })]),
      harness.publish('bob', [message({ id: 'x', recipients: ['bob'] })]),
    ]);
    expectReason(itemReason(published(decoded[0])[0]), RejectReason.MessageIdConflict);
    expectReason(itemReason(published(decoded[1])[0]), RejectReason.MessageIdConflict);
  });

  it('checks each message on its own and rejects only the bad ones, with a reason code each', () => {
    const harness = new Harness();
    const cases: [ReturnType<typeof message>, RejectReasonType, string?][] = [
      [message({ id: 'topic', topic: 'payroll' }), RejectReason.TopicUnknown, 'payroll'],
      [message({ id: 'partition', partition: 1 }), RejectReason.WrongPartition],
      [message({ id: 'partition-range', partition: 7 }), RejectReason.WrongPartition],
      [message({ id: 'unknown', recipients: ['bob', 'mallory'] }), RejectReason.RecipientUnknown, 'mallory'],
      [message({ id: 'pending', recipients: ['dave'] }), RejectReason.RecipientNotApproved, 'dave'],
      [message({ id: 'suspended', recipients: ['erin'] }), RejectReason.RecipientNotApproved, 'erin'],
      [message({ id: 'acl', recipients: ['grace'] }), RejectReason.RecipientNotAllowed, 'grace'],
      [message({ id: 'role', recipients: ['regulator'] }), RejectReason.RecipientNotAllowed, 'regulator'],
      [message({ id: 'big', size: policy.messageBytesMax + 1 }), RejectReason.MessageTooLarge],
    ];
    const batch = [
      message({ id: 'ok-1' }),
      ...cases.map(([m]) => m),
      message({ id: 'ok-2', size: policy.messageBytesMax }),
    ];
    const { decoded } = harness.run([harness.publish('alice', batch)]);
    const results = published(decoded[0]);
    expect(results[0]).toMatchObject({ status: 'ACCEPTED', offset: 0 });
    cases.forEach(([m, reason, detail], index) => {
      const result = results[index + 1];
      expect(result?.id).toBe(m.id);
      expectReason(itemReason(result), reason);
      if (detail !== undefined) expect(result).toMatchObject({ detail });
    });
    expect(results.at(-1)).toMatchObject({ id: 'ok-2', status: 'ACCEPTED', offset: 1 });
    expect(messageById(harness.state, partitionId, 'big')).toBeUndefined();
  });

  it('refuses producers outside the topic ACL or without the member role', () => {
    const harness = new Harness();
    harness.registry.putOrganization({
      id: 'carol',
      roles: ['member'],
      status: 'APPROVED',
      signingKeys: [keys.carol.publicKey],
    });
    const { decoded } = harness.run([
      harness.publish('carol', [message()]),
      harness.publish('regulator', [message({ id: 'm-2' })]),
    ]);
    expectReason(itemReason(published(decoded[0])[0]), RejectReason.ProduceNotAllowed);
    expectReason(itemReason(published(decoded[1])[0]), RejectReason.ProduceNotAllowed);
  });

  it('rejects the whole batch, and records nothing, for transaction-level failures', () => {
    const harness = new Harness();
    const good = harness.publish('alice', [message()]);
    const cases: [Uint8Array, RejectReasonType][] = [
      [new Uint8Array([0xff, 0x00, 0x13]), RejectReason.Malformed],
      [encodeCanonical({ type: 'publish' }), RejectReason.Malformed],
      [tamper(good, (transaction) => (transaction['extra'] = 1)), RejectReason.Malformed],
      [tamper(good, (transaction) => (transaction['sender'] = 'mallory')), RejectReason.OrganizationUnknown],
      [harness.publish('alice', [message()], { key: keys.stranger }), RejectReason.SigningKeyUnknown],
      // Signed by alice's registered key, but for another network whose alice uses the same key.
      [
        harness.publish('alice', [message()], { signing: SigningDomain.of('another-network') }),
        RejectReason.BadSignature,
      ],
      [
        tamper(good, (transaction) => {
          const messages = transaction['messages'] as Record<string, CborValue>[];
          transaction['messages'] = [{ ...messages[0], size: 1 } as Record<string, CborValue>];
        }),
        RejectReason.BadSignature,
      ],
      [
        tamper(good, (transaction) => {
          const signature = Uint8Array.from(transaction['signature'] as Uint8Array);
          signature[10] = (signature[10] ?? 0) ^ 1;
          transaction['signature'] = signature;
        }),
        RejectReason.BadSignature,
      ],
      [harness.publish('dave', [message()]), RejectReason.OrganizationPending],
      [harness.publish('erin', [message()]), RejectReason.OrganizationSuspended],
      [harness.publish('frank', [message()]), RejectReason.OrganizationRevoked],
      [
        harness.publish('alice', [message()], { timestamp: harness.time - transactionClockWindowMs }),
        RejectReason.TimestampOutOfWindow,
      ],
      [
        harness.publish('alice', [message()], { timestamp: harness.time + 2 * transactionClockWindowMs }),
        RejectReason.TimestampOutOfWindow,
      ],
    ];
    const before = harness.state.snapshot();
    const { decoded, events } = harness.run(cases.map(([bytes]) => bytes));
    cases.forEach(([, reason], index) => expectReason(transactionReason(decoded[index]), reason));
    expect(events).toEqual([]);
    // Only the block bookkeeping (height, contract time) moved.
    const after = harness.state.snapshot();
    expect(after.map(([key]) => key)).toEqual(
      before.length === 0 ? [`sdt/${partitionId.length}:${partitionId}/meta`] : before.map(([key]) => key),
    );
    expect(partitionStatus(harness.state, partitionId).nextOffset).toBe(0);
    // The signature is checked before the registry status, so a forged claim learns nothing more.
    const forged = harness.publish('erin', [message()], { key: keys.alice });
    expect(transactionReason(harness.run([forged]).decoded[0])).toBe(RejectReason.SigningKeyUnknown);
  });

  it('carries inline payloads under the batch signature: changed, dropped, miscounted or format-1 ones refuse the whole batch', () => {
    const harness = new Harness();
    const payloads = [{ header: new Uint8Array(12).fill(1), ciphertext: new Uint8Array(30).fill(2) }, null];
    const batch = (tag: string): MessageMetadata[] => [
      message({ id: `${tag}-a` }),
      message({ id: `${tag}-b` }),
    ];
    const good = harness.publish('alice', batch('good'), { payloads });
    const cases: [Uint8Array, RejectReasonType][] = [
      [
        tamper(harness.publish('alice', batch('changed'), { payloads }), (transaction) => {
          const list = transaction['payloads'] as Record<string, CborValue>[];
          transaction['payloads'] = [{ ...list[0], ciphertext: new Uint8Array(30).fill(3) }, null];
        }),
        RejectReason.BadSignature,
      ],
      [
        tamper(harness.publish('alice', batch('dropped'), { payloads }), (transaction) => {
          delete transaction['payloads'];
        }),
        RejectReason.BadSignature,
      ],
      [harness.publish('alice', batch('miscounted'), { payloads: [payloads[0]!] }), RejectReason.Malformed],
      [
        tamper(harness.publish('alice', batch('format1'), { payloads }), (transaction) => {
          delete transaction['format'];
        }),
        RejectReason.Malformed,
      ],
    ];
    const { decoded } = harness.run([good, ...cases.map(([bytes]) => bytes)]);
    const result = decoded[0];
    if (result?.status !== 'OK' || result.type !== 'publish' || !('payloadsHash' in result))
      throw new Error('not a publish result with a payloadsHash');
    expect(result.payloadsHash).toEqual(payloadsHash(payloads));
    expect(published(result).map((item) => item.status)).toEqual(['ACCEPTED', 'ACCEPTED']);
    cases.forEach(([, reason], index) => expectReason(transactionReason(decoded[index + 1]), reason));
    expect(partitionStatus(harness.state, partitionId).nextOffset).toBe(2);
  });

  it('rejects a replayed nonce, whether the bytes are identical or not', () => {
    const harness = new Harness();
    const original = harness.publish('alice', [message({ id: 'a' })], { nonce: new Uint8Array(16).fill(7) });
    const sameNonce = harness.publish('alice', [message({ id: 'b' })], { nonce: new Uint8Array(16).fill(7) });
    const first = harness.run([original]);
    expect(published(first.decoded[0])[0]?.status).toBe('ACCEPTED');
    const { decoded } = harness.run([original, sameNonce]);
    expectReason(transactionReason(decoded[0]), RejectReason.Replay);
    expectReason(transactionReason(decoded[1]), RejectReason.Replay);
    // Within one batch, too.
    const twin = harness.publish('bob', [message({ id: 'c' })], { nonce: new Uint8Array(16).fill(9) });
    const inBatch = harness.run([twin, twin]);
    expect(published(inBatch.decoded[0])[0]?.status).toBe('ACCEPTED');
    expect(transactionReason(inBatch.decoded[1])).toBe(RejectReason.Replay);
    // Another organization may pick the same nonce.
    const other = harness.publish('bob', [message({ id: 'd' })], { nonce: new Uint8Array(16).fill(7) });
    expect(published(harness.run([other]).decoded[0])[0]?.status).toBe('ACCEPTED');
  });

  it('forgets nonces after two windows, when the timestamp check alone stops a replay', () => {
    const harness = new Harness();
    const original = harness.publish('alice', [message({ id: 'a' })]);
    harness.run([original]);
    const nonceKeys = () => harness.state.snapshot().filter(([key]) => key.includes('/nonce')).length;
    expect(nonceKeys()).toBe(2); // the nonce and its pruning-queue entry
    harness.run([], transactionClockWindowMs - 2000);
    expect(transactionReason(harness.run([original], 1).decoded[0])).toBe(RejectReason.Replay);
    harness.run([], transactionClockWindowMs);
    // Past one window the timestamp alone stops a replay, but the nonce is kept for two windows.
    expect(nonceKeys()).toBe(2);
    harness.run([], transactionClockWindowMs);
    expect(nonceKeys()).toBe(0);
    expect(transactionReason(harness.run([original]).decoded[0])).toBe(RejectReason.TimestampOutOfWindow);
  });

  it('rejects a suspended organization’s later publish, and its retries', () => {
    const harness = new Harness();
    const first = harness.run([harness.publish('alice', [message({ id: 'before' })])]);
    expect(published(first.decoded[0])[0]?.status).toBe('ACCEPTED');
    harness.registry.setStatus('alice', 'SUSPENDED');
    const { decoded } = harness.run([
      harness.publish('alice', [message({ id: 'after' })]),
      harness.publish('alice', [message({ id: 'before' })]),
      harness.publish('bob', [message({ id: 'to-alice', recipients: ['alice'] })]),
    ]);
    expect(transactionReason(decoded[0])).toBe(RejectReason.OrganizationSuspended);
    expect(transactionReason(decoded[1])).toBe(RejectReason.OrganizationSuspended);
    expect(itemReason(published(decoded[2])[0])).toBe(RejectReason.RecipientNotApproved);
    // Approved again, it may publish again.
    harness.registry.setStatus('alice', 'APPROVED');
    expect(
      published(harness.run([harness.publish('alice', [message({ id: 'after' })])]).decoded[0])[0],
    ).toMatchObject({
      status: 'ACCEPTED',
      offset: 1,
    });
  });
});

describe('confirmDelivery', () => {
  function accepted(harness: Harness, recipients = ['bob', 'carol']) {
    harness.run([harness.publish('alice', [message({ id: 'm', recipients })])]);
    return contentRoot('content of m');
  }

  it("refuses a confirmation its recipient's key signed for another network: BAD_SIGNATURE, still pending", () => {
    const harness = new Harness();
    const root = accepted(harness);
    const elsewhere = harness.run([
      harness.confirm('bob', [{ id: 'm', contentRoot: root }], {
        signing: SigningDomain.of('another-network'),
      }),
    ]);
    expect(elsewhere.decoded[0]).toMatchObject({ status: 'REJECTED', reason: RejectReason.BadSignature });
    expect(elsewhere.events).toEqual([]);
    expect(messageById(harness.state, partitionId, 'm')).toMatchObject({
      recipients: [
        { organization: 'bob', state: 'PENDING' },
        { organization: 'carol', state: 'PENDING' },
      ],
    });
  });

  it('marks each recipient DELIVERED and the message COMPLETED when all have confirmed', () => {
    const harness = new Harness();
    const root = accepted(harness);
    const bob = harness.run([harness.confirm('bob', [{ id: 'm', contentRoot: root }])]);
    expect(confirmed(bob.decoded[0])).toEqual([
      { id: 'm', status: 'DELIVERED', height: 2, transactionIndex: 0, deliveryIndex: 0 },
    ]);
    expect(bob.events.map((event) => event.type)).toEqual(['DeliveryConfirmed']);
    expect(messageById(harness.state, partitionId, 'm')).toMatchObject({
      state: 'ACCEPTED',
      recipients: [
        { organization: 'bob', state: 'DELIVERED', height: 2 },
        { organization: 'carol', state: 'PENDING' },
      ],
    });
    const carol = harness.run([harness.confirm('carol', [{ id: 'm', contentRoot: root }])]);
    expect(carol.events).toEqual([
      {
        type: 'DeliveryConfirmed',
        partitionId,
        height: 3,
        id: 'm',
        offset: 0,
        sender: 'alice',
        recipient: 'carol',
        transactionIndex: 0,
        deliveryIndex: 0,
      },
      {
        type: 'MessageCompleted',
        partitionId,
        height: 3,
        id: 'm',
        offset: 0,
        sender: 'alice',
        transactionIndex: 0,
        payloadRetainUntil: harness.time + policy.payloadRetentionMs,
      },
    ]);
    expect(messageById(harness.state, partitionId, 'm')).toMatchObject({
      state: 'COMPLETED',
      closedHeight: 3,
      closedAt: harness.time,
    });
  });

  it('is idempotent: a repeated confirmation returns the first result and changes nothing', () => {
    const harness = new Harness();
    const root = accepted(harness);
    const first = harness.run([harness.confirm('bob', [{ id: 'm', contentRoot: root }])]);
    const repeat = harness.run([
      harness.confirm('bob', [
        { id: 'm', contentRoot: root },
        { id: 'm', contentRoot: root },
      ]),
    ]);
    const [once] = confirmed(first.decoded[0]);
    expect(confirmed(repeat.decoded[0])).toEqual([once, once]);
    expect(repeat.events).toEqual([]);
  });

  it('accepts confirmations only from recipients, with the published root, for known live messages', () => {
    const harness = new Harness();
    const root = accepted(harness, ['bob']);
    const { decoded } = harness.run([
      harness.confirm('carol', [{ id: 'm', contentRoot: root }]),
      harness.confirm('bob', [
        { id: 'm', contentRoot: contentRoot('something else') },
        { id: 'nope', contentRoot: root },
      ]),
    ]);
    expectReason(itemReason(confirmed(decoded[0])[0]), RejectReason.NotRecipient);
    const [wrongRoot, unknown] = confirmed(decoded[1]);
    expectReason(itemReason(wrongRoot), RejectReason.ContentRootMismatch);
    expectReason(itemReason(unknown), RejectReason.MessageUnknown);
    expect(messageById(harness.state, partitionId, 'm')?.recipients).toEqual([
      { organization: 'bob', state: 'PENDING' },
    ]);
    // Authentication applies as for publish.
    const forged = harness.confirm('bob', [{ id: 'm', contentRoot: root }], { key: keys.carol });
    expect(transactionReason(harness.run([forged]).decoded[0])).toBe(RejectReason.SigningKeyUnknown);
  });
});

describe('expiry', () => {
  const ttlMs = policy.ttlMs;

  it('expires an undelivered message in the first block whose time is past its deadline', () => {
    const harness = new Harness();
    harness.run([harness.publish('alice', [message({ id: 'm', recipients: ['bob', 'carol'] })])]);
    const deadline = harness.time + ttlMs;
    expect(messageById(harness.state, partitionId, 'm')?.deadline).toBe(deadline);
    harness.run([harness.confirm('bob', [{ id: 'm', contentRoot: contentRoot('content of m') }])], ttlMs);
    expect(harness.time).toBe(deadline);
    expect(harness.run([], 0).events).toEqual([]); // at the deadline: not yet
    const late = harness.run(
      [harness.confirm('carol', [{ id: 'm', contentRoot: contentRoot('content of m') }])],
      1,
    );
    expect(late.events).toEqual([
      {
        type: 'MessageExpired',
        partitionId,
        height: harness.height,
        id: 'm',
        offset: 0,
        sender: 'alice',
        deadline,
        undelivered: ['carol'],
        payloadRetainUntil: harness.time + policy.payloadRetentionMs,
      },
    ]);
    // Expiry runs at the start of the block, so a confirmation in that block is already too late.
    expectReason(itemReason(confirmed(late.decoded[0])[0]), RejectReason.MessageExpired);
    expect(messageById(harness.state, partitionId, 'm')).toMatchObject({
      state: 'EXPIRED',
      closedHeight: harness.height,
    });
    expect(harness.run([], ttlMs * 10).events).toEqual([]);
  });

  it('never expires a completed message', () => {
    const harness = new Harness();
    harness.run([harness.publish('alice', [message({ id: 'm' })])]);
    harness.run([harness.confirm('bob', [{ id: 'm', contentRoot: contentRoot('content of m') }])]);
    expect(harness.run([], ttlMs * 2).events).toEqual([]);
    expect(messageById(harness.state, partitionId, 'm')?.state).toBe('COMPLETED');
    expect(harness.state.snapshot().some(([key]) => key.includes('/expiry/'))).toBe(false);
  });

  it('expires messages of different TTLs in deadline order, then offset order', () => {
    const harness = new Harness();
    const put = (ttl: number, ids: string[]) => {
      harness.registry.putTopic({
        name: 'invoices',
        partitionCount: 2,
        producers: ['alice'],
        consumers: ['bob'],
        policy: { ...policy, ttlMs: ttl },
      });
      harness.run(
        [
          harness.publish(
            'alice',
            ids.map((id) => message({ id })),
          ),
        ],
        0,
      );
    };
    put(5000, ['long-1', 'long-2']); // deadline T+5000
    put(1000, ['short']); // deadline T+1000
    put(5000, ['long-3']); // deadline T+5000, later offset
    expect(harness.run([], 1001).events.map((event) => event.id)).toEqual(['short']);
    expect(harness.run([], 10_000).events.map((event) => event.id)).toEqual(['long-1', 'long-2', 'long-3']);
    expect(harness.state.snapshot().some(([key]) => key.includes('/expiry/'))).toBe(false);
  });

  it('keeps contract time monotonic when a block timestamp goes back', () => {
    const harness = new Harness();
    harness.run([harness.publish('alice', [message({ id: 'm' })])]);
    const deadline = harness.time + ttlMs;
    harness.run([], ttlMs + 1);
    expect(messageById(harness.state, partitionId, 'm')?.state).toBe('EXPIRED');
    harness.run([], -ttlMs); // a new primary with a slow clock
    expect(partitionStatus(harness.state, partitionId).time).toBe(deadline + 1);
  });
});

describe('queries', () => {
  it('pages through a partition by offset', () => {
    const harness = new Harness();
    const ids = Array.from({ length: 7 }, (_, index) => `m-${index}`);
    harness.run([
      harness.publish(
        'alice',
        ids.slice(0, 4).map((id) => message({ id })),
      ),
    ]);
    harness.run([
      harness.publish(
        'bob',
        ids.slice(4).map((id) => message({ id, recipients: ['alice'] })),
      ),
    ]);
    const page = messagesByOffset(harness.state, partitionId, { fromOffset: 2, limit: 3 });
    expect(page.messages.map((view) => [view.metadata.id, view.offset, view.height, view.sender])).toEqual([
      ['m-2', 2, 1, 'alice'],
      ['m-3', 3, 1, 'alice'],
      ['m-4', 4, 2, 'bob'],
    ]);
    expect(page.nextOffset).toBe(5);
    expect(
      messagesByOffset(harness.state, partitionId, { fromOffset: 5 }).messages.map((view) => view.offset),
    ).toEqual([5, 6]);
    expect(messagesByOffset(harness.state, partitionId, { fromOffset: 1, toOffset: 3 }).nextOffset).toBe(3);
    expect(messagesByOffset(harness.state, partitionId, { fromOffset: 50 })).toEqual({
      messages: [],
      nextOffset: 50,
    });
    expect(messagesByOffset(harness.state, 'invoices/1', { fromOffset: 0 }).messages).toEqual([]);
  });
});

describe('execution discipline', () => {
  it('throws on a height out of order and writes nothing', () => {
    const harness = new Harness();
    harness.run([]);
    const before = harness.state.snapshot();
    const context = { partitionId, configEpoch: 1, timestamp: harness.time, registry: harness.registry };
    expect(() => executeBatch(harness.state, { ...context, height: 1 }, [])).toThrow(AssertionError);
    expect(() => executeBatch(harness.state, { ...context, height: 3 }, [])).toThrow(AssertionError);
    expect(harness.state.snapshot()).toEqual(before);
  });

  it('keeps partitions that share a store apart', () => {
    const harness = new Harness();
    harness.run([harness.publish('alice', [message({ id: 'm' })])]);
    const other = executeBatch(
      harness.state,
      {
        partitionId: 'invoices/1',
        configEpoch: 1,
        height: 1,
        timestamp: harness.time,
        registry: harness.registry,
      },
      [harness.publish('alice', [message({ id: 'm', partition: 1 })])],
    );
    expect(other.events.map((event) => [event.partitionId, event.offset])).toEqual([['invoices/1', 0]]);
    expect(messageById(harness.state, 'invoices/1', 'm')?.metadata.partition).toBe(1);
    expect(messageById(harness.state, partitionId, 'm')?.metadata.partition).toBe(0);
  });

  it('a batch that closes its epoch rejects every transaction and accepts nothing', () => {
    const harness = new Harness();
    harness.run([harness.publish('alice', [message({ id: 'before' })])]);
    const height = harness.height + 1;
    const outcome = executeBatch(
      harness.state,
      {
        partitionId,
        configEpoch: 1,
        height,
        timestamp: harness.time + 1000,
        registry: harness.registry,
        closesEpoch: true,
      },
      [harness.publish('alice', [message({ id: 'after' })]), Uint8Array.of(1, 2, 3)],
    );
    const decoded = outcome.results.map((bytes) => decodeTransactionResult(bytes));
    for (const result of decoded) {
      expect(result.status).toBe('REJECTED');
      expectReason(result.status === 'REJECTED' ? result.reason : undefined, RejectReason.EpochClosed);
    }
    expect(messageById(harness.state, partitionId, 'after')).toBeUndefined();
    expect(messageById(harness.state, partitionId, 'before')).toBeDefined();
    expect(partitionStatus(harness.state, partitionId).height).toBe(height);
  });

  it('every reason code is exercised by a test above', () => {
    expect([...exercised].sort()).toEqual([...sdtRejectReasons].sort());
  });
});
