/**
 * Contract entry points under hostile input: the SDT contract, the registry state machines and the
 * offline proof verifiers never throw anything but a LedgerbusError (the verifiers) or nothing at
 * all (the state machines, whose rejections are results), and a rejection changes no state.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/codec/index.js';
import { executeBatch } from '../../src/contracts/sdt.js';
import type { BatchContext } from '../../src/contracts/sdt.js';
import type { MemoryContractState } from '../../src/contracts/state.js';
import { decodeTransactionResult } from '../../src/contracts/results.js';
import {
  harnessWithHistory,
  contentRoot,
  makeRegistry,
  message,
  partitionId,
} from '../../src/contracts/testing/fixtures.js';
import { merkleRoot } from '../../src/crypto/index.js';
import { blockHash, certifyHeader, encodeBlock } from '../../src/ledger/block.js';
import type { Block } from '../../src/ledger/block.js';
import { blockEvidence, verifyBlockEvidence } from '../../src/proofs/evidence.js';
import {
  decodeDeliveryReceipt,
  encodeDeliveryReceipt,
  verifyAcceptance,
  verifyDeliveryReceipt,
} from '../../src/proofs/message-proof.js';
import type { DeliveryReceipt } from '../../src/proofs/message-proof.js';
import { decodeRegistryResult, topicGroupId } from '../../src/registry/admin-transactions.js';
import { SystemStateMachine } from '../../src/registry/system-state.js';
import { TopicStateMachine } from '../../src/registry/topic-state.js';
import {
  MemorySink,
  SystemHarness,
  adminEntry,
  blocksEntry,
  connectorKey,
  createOrders,
  encryptionKey,
  keyFor,
  registerNodeAction,
  partition,
  policy,
  signedAdmin,
  testGenesis,
  validChain,
} from '../../src/registry/testing/fixtures.js';
import {
  expectOnlyLedgerbusErrors,
  mutateAll,
  mutations,
  proofChain,
  compactProofReceipt,
  proofReceipt,
  proofReplicas,
  proofTrust,
} from './support.js';
import { resultsRoot } from '../../src/ledger/result-leaf.js';

/**
 * One transaction (or entry) of a generated batch: a valid one as built, a mutated valid one, or
 * random bytes. Valid ones keep the contract's accepting paths in play, so a mutant that slips
 * through schema checks meets real state.
 */
const operation = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('valid' as const), index: fc.nat() }) },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('mutated' as const), index: fc.nat(), changes: mutations }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 200 }) }),
  },
);
type Operation = typeof operation extends fc.Arbitrary<infer T> ? T : never;

function materialize(valid: readonly Uint8Array[], item: Operation): Uint8Array {
  switch (item.kind) {
    case 'valid':
      return valid[item.index % valid.length]!;
    case 'mutated':
      return mutateAll(valid[item.index % valid.length]!, item.changes);
    case 'random':
      return item.bytes;
  }
}

// ---- SDT contract --------------------------------------------------------------------------------

/** A partition with history (accepted, partly delivered messages) and transactions valid next. */
function sdtBase(): { state: MemoryContractState; height: number; time: number; valid: Uint8Array[] } {
  const { harness, valid } = harnessWithHistory();
  valid.push(
    // A retried publish (idempotent) and a confirmation of two messages, one of them not for bob.
    harness.publish('alice', [message({ id: 'a', recipients: ['bob', 'carol'] })]),
    harness.confirm('bob', [
      { id: 'a', contentRoot: contentRoot('content of a') },
      { id: 'c', contentRoot: contentRoot('content of c') },
    ]),
  );
  return { state: harness.state, height: harness.height, time: harness.time, valid };
}

describe('SDT executeBatch', () => {
  const base = sdtBase();
  const registry = makeRegistry();
  const blocks = fc.array(
    fc.record({
      advanceMs: fc.constantFrom(0, 1000, 90_000),
      operations: fc.array(operation, { maxLength: 5 }),
    }),
    { minLength: 1, maxLength: 4 },
  );

  // How often each check ran, so that a generator drifting away from a case cannot make it vacuous.
  const seen = { refusedBatches: 0, acceptedTransactions: 0 };

  /** Runs the blocks from `base`, checking on the way that refused transactions write nothing. */
  function run(sequence: readonly { advanceMs: number; operations: Operation[] }[]): {
    results: string[][];
    snapshot: [string, string][];
  } {
    const state = base.state.clone();
    let time = base.time;
    const results: string[][] = [];
    sequence.forEach((current, n) => {
      time += current.advanceMs;
      const context: BatchContext = {
        partitionId,
        configEpoch: 1,
        height: base.height + n + 1,
        timestamp: time,
        registry,
      };
      const transactions = current.operations.map((item) => materialize(base.valid, item));
      const reference = state.clone();
      let outcome: ReturnType<typeof executeBatch> | undefined;
      expectOnlyLedgerbusErrors('executeBatch (nothing may throw)', transactions, () => {
        outcome = executeBatch(state, context, transactions);
      });
      if (outcome === undefined) expect.fail('executeBatch threw a LedgerbusError; it must not throw at all');
      expect(outcome.results).toHaveLength(transactions.length);
      const decoded = outcome.results.map(decodeTransactionResult);
      if (decoded.every((result) => result.status === 'REJECTED')) {
        // Any block moves height and contract time (and may expire messages), so "wrote nothing"
        // means: the same state as executing that block with no transactions at all.
        executeBatch(reference, context, []);
        if (transactions.length > 0) seen.refusedBatches += 1;
        expect(state.snapshot(), `refused batch ${transactions.map(toHex).join(' ')}`).toEqual(
          reference.snapshot(),
        );
      }
      seen.acceptedTransactions += decoded.filter((result) => result.status === 'OK').length;
      results.push(outcome.results.map(toHex));
    });
    return { results, snapshot: state.snapshot() };
  }

  it('never throws; a batch of refused transactions writes nothing; executions are deterministic', () => {
    fc.assert(
      fc.property(blocks, (sequence) => {
        const first = run(sequence);
        const second = run(sequence);
        expect(second).toEqual(first);
      }),
      { numRuns: 150 },
    );
    expect(seen.refusedBatches).toBeGreaterThan(0);
    expect(seen.acceptedTransactions).toBeGreaterThan(0);
  });

  it('the valid transactions are accepted (the generated batches reach the accepting paths)', () => {
    const state = base.state.clone();
    const outcome = executeBatch(
      state,
      { partitionId, configEpoch: 1, height: base.height + 1, timestamp: base.time + 1000, registry },
      base.valid,
    );
    expect(outcome.results.map((result) => decodeTransactionResult(result).status)).toEqual(
      base.valid.map(() => 'OK'),
    );
  });
});

// ---- __system state machine ----------------------------------------------------------------------

const newcorp = 'newcorp';
const systemEntries = [
  adminEntry(
    signedAdmin(newcorp, {
      kind: 'registerOrganization',
      roles: ['member'],
      signingKeys: [connectorKey(newcorp).publicKey],
      encryptionKey: encryptionKey(newcorp),
    }),
  ),
  adminEntry(
    signedAdmin('sup', { kind: 'setOrganizationStatus', organization: 'beta', status: 'SUSPENDED' }),
  ),
  adminEntry(signedAdmin('alpha', { kind: 'bindKey', key: keyFor('extra key').publicKey })),
  adminEntry(signedAdmin('alpha', registerNodeAction('alpha', 'n7', '10.0.0.7:7407'))),
  adminEntry(signedAdmin('alpha', createOrders())),
];

describe('SystemStateMachine.apply', () => {
  it('random and mutated entries never throw; a REJECTED result leaves snapshot() unchanged', () => {
    const seen = { OK: 0, REJECTED: 0 };
    fc.assert(
      fc.property(fc.array(operation, { minLength: 1, maxLength: 8 }), (items) => {
        const machine = new SystemStateMachine(testGenesis());
        items.forEach((item, n) => {
          const data = materialize(systemEntries, item);
          const before = toHex(machine.snapshot());
          let result: Uint8Array | undefined;
          expectOnlyLedgerbusErrors('SystemStateMachine.apply (nothing may throw)', data, () => {
            result = machine.apply(n + 1, data);
          });
          if (result === undefined) expect.fail(`apply threw a LedgerbusError on ${toHex(data)}`);
          const status = decodeRegistryResult(result).status;
          seen[status] += 1;
          if (status === 'REJECTED') {
            expect(toHex(machine.snapshot()), `refused entry ${toHex(data)}`).toBe(before);
          }
        });
      }),
      { numRuns: 300 },
    );
    expect(seen.OK).toBeGreaterThan(0);
    expect(seen.REJECTED).toBeGreaterThan(0);
  });

  it('the valid entries are accepted (so the property reaches the accepting paths)', () => {
    const harness = new SystemHarness();
    expect(systemEntries.map((entry) => harness.submit(entry))).toEqual(systemEntries.map(() => 'OK'));
  });
});

// ---- topic state machine -------------------------------------------------------------------------

const chainBlocks = validChain(3).map(encodeBlock);
const topicEntries = [
  adminEntry(
    signedAdmin(
      'sup',
      { kind: 'setPolicy', policy: { ...policy, ttlMs: 90_000 } },
      { group: topicGroupId('t') },
    ),
    0,
  ),
  adminEntry(
    signedAdmin(
      'sup',
      { kind: 'setAcl', producers: ['alpha'], consumers: ['alpha', 'beta'] },
      { group: topicGroupId('t') },
    ),
    0,
  ),
  blocksEntry(partition, chainBlocks.slice(0, 1)),
  blocksEntry(partition, chainBlocks),
  blocksEntry(partition, chainBlocks.slice(1)),
];

function topicMachine(): { machine: TopicStateMachine; sink: MemorySink } {
  const system = new SystemHarness();
  const topic = system.machine.latest.topics.get('t');
  if (topic === undefined) expect.fail('the test genesis has topic t');
  const sink = new MemorySink();
  return { machine: new TopicStateMachine(topic, system.reader, sink), sink };
}

describe('TopicStateMachine.apply', () => {
  it('random and mutated entries never throw; a REJECTED result changes snapshot() only by a valid block prefix', () => {
    const seen = { OK: 0, REJECTED: 0, partialRuns: 0 };
    fc.assert(
      fc.property(fc.array(operation, { minLength: 1, maxLength: 6 }), (items) => {
        const { machine, sink } = topicMachine();
        const history: Uint8Array[] = [];
        items.forEach((item, n) => {
          const data = materialize(topicEntries, item);
          const before = toHex(machine.snapshot());
          const held = sink.entries.length;
          let result: Uint8Array | undefined;
          expectOnlyLedgerbusErrors('TopicStateMachine.apply (nothing may throw)', data, () => {
            result = machine.apply(n + 1, data);
          });
          if (result === undefined) expect.fail(`apply threw a LedgerbusError on ${toHex(data)}`);
          history.push(data);
          const status = decodeRegistryResult(result).status;
          seen[status] += 1;
          if (status !== 'REJECTED') return;
          if (sink.entries.length === held) {
            expect(toHex(machine.snapshot()), `refused entry ${toHex(data)}`).toBe(before);
            return;
          }
          // By design a block run keeps its valid blocks before the first bad one (every replica
          // keeps the same): the refused entry must act exactly as a run of that prefix alone.
          seen.partialRuns += 1;
          const prefix = sink.entries.slice(held).map((entry) => entry.bytes);
          const reference = topicMachine().machine;
          history.slice(0, -1).forEach((entry, i) => reference.apply(i + 1, entry));
          reference.apply(n + 1, blocksEntry(partition, prefix));
          expect(toHex(machine.snapshot())).toBe(toHex(reference.snapshot()));
        });
      }),
      { numRuns: 200 },
    );
    expect(seen.OK).toBeGreaterThan(0);
    expect(seen.REJECTED).toBeGreaterThan(0);
    expect(seen.partialRuns).toBeGreaterThan(0);
  });

  it('the valid entries are accepted (so the property reaches the accepting paths)', () => {
    const { machine, sink } = topicMachine();
    const outcomes = topicEntries.map((entry, n) => decodeRegistryResult(machine.apply(n + 1, entry)).status);
    expect(outcomes).toEqual(topicEntries.map(() => 'OK'));
    expect(sink.heights()).toEqual([1, 2, 3]);
  });
});

// ---- proof verifiers -----------------------------------------------------------------------------

const chain = proofChain();
const receipt = proofReceipt(chain);
const receiptBytes = encodeDeliveryReceipt(receipt);
const compactReceiptBytes = encodeDeliveryReceipt(compactProofReceipt(chain));

/** Every verifier over one receipt; only a LedgerbusError may come out of any of them. */
function verifyAll(proof: DeliveryReceipt, input: Uint8Array): void {
  expectOnlyLedgerbusErrors('verifyBlockEvidence', input, () => {
    if (!('block' in proof.acceptance)) return;
    const { block } = proof.acceptance;
    const membership = proofTrust.membership(block.header.partitionId, block.header.configEpoch);
    if (membership !== undefined) verifyBlockEvidence(block, membership);
  });
  expectOnlyLedgerbusErrors('verifyAcceptance', input, () => verifyAcceptance(proof.acceptance, proofTrust));
  expectOnlyLedgerbusErrors('verifyDeliveryReceipt', input, () => verifyDeliveryReceipt(proof, proofTrust));
}

/** `block` with transaction 0 or its result replaced, re-rooted and re-certified by the real replicas. */
function recertified(block: Block, transaction: Uint8Array, result: Uint8Array, previous?: Block): Block {
  const header = {
    ...block.header,
    previousHash: previous === undefined ? block.header.previousHash : blockHash(previous.header),
    transactionsRoot: merkleRoot([transaction]),
    resultsRoot: resultsRoot([result]),
  };
  return {
    header,
    certificate: certifyHeader(header, proofReplicas.slice(0, 3)),
    transactions: [transaction],
    results: [result],
  };
}

describe('proof verifiers', () => {
  it('the unmutated receipt verifies', () => {
    expect(verifyDeliveryReceipt(decodeDeliveryReceipt(receiptBytes), proofTrust).message.id).toBe('m-1');
  });

  it('mutated encoded receipts: decode and every verifier throw only LedgerbusError', () => {
    fc.assert(
      fc.property(mutations, (changes) => {
        const bytes = mutateAll(receiptBytes, changes);
        let decoded: DeliveryReceipt | undefined;
        expectOnlyLedgerbusErrors('decodeDeliveryReceipt', bytes, () => {
          decoded = decodeDeliveryReceipt(bytes);
        });
        if (decoded !== undefined) verifyAll(decoded, bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('mutated encoded compact (version 2) receipts: decode and every verifier throw only LedgerbusError', () => {
    expect(verifyDeliveryReceipt(decodeDeliveryReceipt(compactReceiptBytes), proofTrust).message.id).toBe(
      'm-1',
    );
    fc.assert(
      fc.property(mutations, (changes) => {
        const bytes = mutateAll(compactReceiptBytes, changes);
        let decoded: DeliveryReceipt | undefined;
        expectOnlyLedgerbusErrors('decodeDeliveryReceipt', bytes, () => {
          decoded = decodeDeliveryReceipt(bytes);
        });
        if (decoded !== undefined) verifyAll(decoded, bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('certified blocks holding mutated transactions or results: only LedgerbusError', () => {
    // Mutating the encoded receipt almost always breaks a signature or an inclusion proof first; here
    // the mutant is re-certified, so the verifiers go on to decode and check what is inside.
    const targets = fc.record({
      block: fc.constantFrom(0, 1),
      field: fc.constantFrom('transaction' as const, 'result' as const),
      changes: mutations,
    });
    fc.assert(
      fc.property(targets, (target) => {
        const blocks = [...chain];
        const original = blocks[target.block]!;
        const transaction = original.transactions[0]!;
        const result = original.results[0]!;
        const mutated =
          target.field === 'transaction'
            ? recertified(original, mutateAll(transaction, target.changes), result, blocks[target.block - 1])
            : recertified(original, transaction, mutateAll(result, target.changes), blocks[target.block - 1]);
        blocks[target.block] = mutated;
        const proof = proofReceipt(blocks);
        const input = target.field === 'transaction' ? mutated.transactions[0]! : mutated.results[0]!;
        verifyAll(proof, input);
        if (target.block === 0) {
          // The compact proof is cut from the mutant's evidence the way a connector cuts it.
          let compact: DeliveryReceipt | undefined;
          expectOnlyLedgerbusErrors('compactProofReceipt', input, () => {
            compact = compactProofReceipt(blocks);
          });
          if (compact !== undefined) verifyAll(compact, input);
        }
        // Evidence built from the mutant must also survive its own encoding round trip unharmed.
        verifyAll(decodeDeliveryReceipt(encodeDeliveryReceipt(proof)), input);
        expect(blockEvidence(mutated, 0).transaction).toEqual(mutated.transactions[0]);
      }),
      { numRuns: 300 },
    );
  });
});
