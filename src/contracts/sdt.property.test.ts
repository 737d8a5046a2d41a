import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { executeBatch } from './sdt.js';
import type { BatchContext } from './sdt.js';
import { MemoryContractState } from './state.js';
import { decodeTransactionResult } from './results.js';
import { changingMutation, mutate } from '../codec/testing/mutations.js';
import { messagesByOffset, partitionStatus } from './queries.js';
import type { Harness } from './testing/fixtures.js';
import {
  contentRoot,
  harnessWithHistory,
  keys,
  makeRegistry,
  message,
  nonce,
  partitionId,
  signing,
  startTime,
} from './testing/fixtures.js';
import { encodeConfirmDelivery, encodePublish } from './transactions.js';

type ArbitraryValue<A> = A extends fc.Arbitrary<infer T> ? T : never;

describe('bad input changes nothing', () => {
  /**
   * Each run executes the next block twice from the same state: once with the hostile transactions,
   * once with none. Executing any block moves the height and contract time, so "changes nothing"
   * means: both runs leave byte-identical states and no events.
   */
  function expectInert(harness: Harness, transactions: Uint8Array[]): void {
    const context: BatchContext = {
      partitionId,
      configEpoch: 1,
      height: harness.height + 1,
      timestamp: harness.time + 1,
      registry: harness.registry,
    };
    const hostile = harness.state.clone();
    const reference = harness.state.clone();
    const outcome = executeBatch(hostile, context, transactions);
    executeBatch(reference, context, []);
    expect(outcome.events).toEqual([]);
    expect(outcome.results).toHaveLength(transactions.length);
    for (const result of outcome.results) expect(decodeTransactionResult(result).status).toBe('REJECTED');
    expect(hostile.snapshot()).toEqual(reference.snapshot());
  }

  it('random bytes never throw and never change state', () => {
    const { harness } = harnessWithHistory();
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }),
        (transactions) => {
          expectInert(harness, transactions);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('mutated valid transactions never throw and never change state', () => {
    const { harness, valid } = harnessWithHistory();
    fc.assert(
      fc.property(fc.nat({ max: valid.length - 1 }), changingMutation, (index, change) => {
        const mutated = mutate(valid[index] as Uint8Array, change);
        expectInert(harness, [mutated]);
      }),
      { numRuns: 400 },
    );
  });

  it('the unmutated transactions do change state (so the property above has teeth)', () => {
    const { harness, valid } = harnessWithHistory();
    for (const transaction of valid) {
      expect(() => expectInert(harness, [transaction])).toThrow();
    }
  });
});

// ---- determinism ------------------------------------------------------------------------------

const organizations = ['alice', 'bob', 'carol', 'dave', 'grace'] as const;
const messageIds = ['m0', 'm1', 'm2', 'm3'];

/** Usually a fresh nonce (null: derived from the position), sometimes one of a few reused ones. */
const reusedNonce = fc.oneof(
  { weight: 4, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.nat({ max: 3 }) },
);

const publishOperation = fc.record({
  kind: fc.constant('publish' as const),
  sender: fc.constantFrom('alice', 'bob', 'alice', 'bob', ...organizations),
  messages: fc.array(
    fc.record({
      id: fc.constantFrom(...messageIds),
      recipients: fc.oneof(
        fc.subarray(['bob', 'carol'], { minLength: 1 }),
        fc.subarray([...organizations], { minLength: 1 }),
      ),
      size: fc.constantFrom(10, 10, 5000, 20_000),
      partition: fc.constantFrom(0, 0, 0, 1),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  nonce: reusedNonce,
  skewMs: fc.constantFrom(0, 0, 0, -1000, 400_000),
});
const confirmOperation = fc.record({
  kind: fc.constant('confirm' as const),
  recipient: fc.constantFrom('bob', 'carol', 'bob', 'carol', ...organizations),
  ids: fc.array(
    fc.record({ id: fc.constantFrom(...messageIds), rightRoot: fc.constantFrom(true, true, true, false) }),
    {
      minLength: 1,
      maxLength: 3,
    },
  ),
  nonce: reusedNonce,
});
const garbageOperation = fc.record({
  kind: fc.constant('garbage' as const),
  bytes: fc.uint8Array({ maxLength: 40 }),
});
const block = fc.record({
  advanceMs: fc.constantFrom(0, 1000, 1000, 1000, 1000, 1000, 30_000, 61_000, 700_000),
  operations: fc.array(
    fc.oneof(
      { weight: 3, arbitrary: publishOperation },
      { weight: 3, arbitrary: confirmOperation },
      { weight: 1, arbitrary: garbageOperation },
    ),
    {
      maxLength: 5,
    },
  ),
});

type Operation =
  | ArbitraryValue<typeof publishOperation>
  | ArbitraryValue<typeof confirmOperation>
  | ArbitraryValue<typeof garbageOperation>;

function encodeOperation(operation: Operation, time: number, position: number): Uint8Array {
  switch (operation.kind) {
    case 'publish':
      return encodePublish(
        {
          sender: operation.sender,
          nonce: nonce(operation.nonce ?? 1000 + position, 1),
          timestamp: time + operation.skewMs,
          messages: operation.messages.map((item) =>
            message({ id: item.id, recipients: item.recipients, size: item.size, partition: item.partition }),
          ),
        },
        signing.signer(keys[operation.sender]),
      );
    case 'confirm':
      return encodeConfirmDelivery(
        {
          recipient: operation.recipient,
          nonce: nonce(operation.nonce ?? 1000 + position, 2),
          timestamp: time,
          deliveries: operation.ids.map(({ id, rightRoot }) => ({
            id,
            contentRoot: contentRoot(rightRoot ? `content of ${id}` : 'wrong'),
          })),
        },
        signing.signer(keys[operation.recipient]),
      );
    case 'garbage':
      return operation.bytes;
  }
}

describe('determinism', () => {
  it('two independent replicas executing the same blocks produce identical results, events and state', () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(block, { minLength: 1, maxLength: 8 }), (blocks) => {
        const replicas = [new MemoryContractState(), new MemoryContractState()];
        const registries = [makeRegistry(), makeRegistry()];
        let time = startTime;
        blocks.forEach((current, index) => {
          time += current.advanceMs;
          const transactions = current.operations.map((operation, position) =>
            encodeOperation(operation, time, index * 10 + position),
          );
          const outcomes = replicas.map((state, replica) =>
            executeBatch(
              state,
              {
                partitionId,
                configEpoch: 1,
                height: index + 1,
                timestamp: time,
                registry: registries[replica] as ReturnType<typeof makeRegistry>,
              },
              // Each replica gets its own copy of the bytes, as it would off the wire.
              transactions.map((bytes) => Uint8Array.from(bytes)),
            ),
          );
          const [first, second] = outcomes as [(typeof outcomes)[0], (typeof outcomes)[0]];
          expect(second.results).toEqual(first.results);
          expect(second.events).toEqual(first.events);
          expect(replicas[1]?.snapshot()).toEqual(replicas[0]?.snapshot());
          for (const event of first.events) seen.set(event.type, (seen.get(event.type) ?? 0) + 1);
        });
        // Offsets are dense: every offset below the end names a message at that offset.
        const state = replicas[0] as MemoryContractState;
        const { nextOffset } = partitionStatus(state, partitionId);
        const { messages } = messagesByOffset(state, partitionId, { fromOffset: 0 });
        expect(messages.map((view) => view.offset)).toEqual([...Array(nextOffset).keys()]);
      }),
      // A fixed seed: the coverage check below must not depend on luck (completions are the rarest).
      { numRuns: 60, seed: 20261121 },
    );
    // The generated histories reach every kind of transition, so the comparison is not vacuous.
    for (const type of ['MessageAccepted', 'DeliveryConfirmed', 'MessageCompleted', 'MessageExpired']) {
      expect(seen.get(type) ?? 0, type).toBeGreaterThan(0);
    }
  });
});
