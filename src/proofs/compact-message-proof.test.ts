// Version-2 acceptance proofs: O(log n) in the batch and the block, checked offline against the same
// trust as version 1; every tampering refused with a reason; version-1 receipts written before
// results were batched still verify.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codeOf } from '../testing/code-of.js';
import { decodeCanonical, encodeCanonical } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { executeBatch } from '../contracts/sdt.js';
import { MemoryContractState } from '../contracts/state.js';
import { makeRegistry } from '../contracts/testing/fixtures.js';
import { SigningDomain, merkleRoot } from '../crypto/index.js';
import { certifyHeader } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import { batchedResult, resultsRoot } from '../ledger/result-leaf.js';
import { compactMessageProofs, verifyMessageProof } from './compact-message-proof.js';
import type { MessageProof } from './compact-message-proof.js';
import { blockEvidence } from './evidence.js';
import {
  decodeAcceptanceProof,
  decodeDeliveryReceipt,
  encodeAcceptanceProof,
  encodeDeliveryReceipt,
  verifyAcceptance,
  verifyDeliveryReceipt,
} from './message-proof.js';
import {
  batchBlock,
  batchChain,
  compactProofReceipt,
  proofChain,
  proofReplicas,
  proofTrust,
  proofTrustIn,
} from './testing/proof-chain.js';

const trust = proofTrust;

/** Compact proofs of messages `indexes` of transaction `transaction` of `block`. */
function proofsOf(block: Block, transaction: number, indexes: readonly number[]): MessageProof[] {
  const proofs = compactMessageProofs(blockEvidence(block, transaction), indexes);
  if (proofs === undefined) throw new Error('no format-2 result');
  return proofs;
}

const sizeOf = (proof: MessageProof): number => encodeAcceptanceProof(proof).length;

/** `block` with result `index` replaced by `result`, certified again by a quorum of replicas (lying ones). */
function recertified(block: Block, index: number, result: Uint8Array): Block {
  const results = block.results.map((each, position) => (position === index ? result : each));
  const header = { ...block.header, resultsRoot: resultsRoot(results) };
  return {
    header,
    certificate: certifyHeader(header, proofReplicas.slice(0, 3)),
    transactions: block.transactions,
    results,
  };
}

describe('compact (version 2) acceptance proofs', () => {
  // Three publishes in one block; the middle one holds 1,000 messages.
  const block = batchBlock([2, 1000, 3]);

  it('prove any message of a 1,000-message batch with a proof that grows by hashes only', () => {
    const [first, middle, last] = proofsOf(block, 1, [0, 500, 999]) as [
      MessageProof,
      MessageProof,
      MessageProof,
    ];
    for (const [proof, index] of [
      [first, 0],
      [middle, 500],
      [last, 999],
    ] as const) {
      const accepted = verifyAcceptance(decodeAcceptanceProof(encodeAcceptanceProof(proof)), trust);
      expect(accepted).toMatchObject({ id: `b1-m${index}`, sender: 'alice', height: 1, offset: 2 + index });
    }
    // The same message proven by version 1 carries its whole batch; version 2 carries 2·log2(n) hashes.
    const whole = encodeAcceptanceProof({ block: blockEvidence(block, 1), messageIndex: 500 }).length;
    const small = sizeOf(proofsOf(block, 0, [1])[0] as MessageProof);
    expect(whole).toBeGreaterThan(200_000);
    expect(sizeOf(middle)).toBeLessThan(3_000);
    // From a batch of 2 to one of 1,000: 2 × 9 more hashes (34 encoded bytes each), plus a few bytes
    // of longer ids and wider indexes.
    expect(sizeOf(middle) - small).toBeLessThanOrEqual(2 * 9 * 34 + 32);
  });

  it('says exactly what version 1 says about the same message', () => {
    const compact = verifyAcceptance(proofsOf(block, 2, [1])[0] as MessageProof, trust);
    const whole = verifyAcceptance({ block: blockEvidence(block, 2), messageIndex: 1 }, trust);
    expect(compact).toEqual(whole);
  });

  it("refuses another message's outcome, path or batch, and a moved index", () => {
    const [mine, other] = proofsOf(block, 1, [10, 11]) as [MessageProof, MessageProof];
    expect(codeOf(() => verifyMessageProof(mine, trust))).toBe('VALID');
    // The neighbour's outcome, with its own valid path, next to my message.
    expect(
      codeOf(() =>
        verifyMessageProof({ ...mine, outcome: other.outcome, outcomeProof: other.outcomeProof }, trust),
      ),
    ).toBe('BAD_PROOF');
    // My outcome under the neighbour's message.
    expect(
      codeOf(() =>
        verifyMessageProof({ ...mine, message: other.message, messageProof: other.messageProof }, trust),
      ),
    ).toBe('BAD_PROOF');
    // My outcome's bytes on the neighbour's path.
    expect(codeOf(() => verifyMessageProof({ ...mine, outcomeProof: other.outcomeProof }, trust))).toBe(
      'BAD_PROOF',
    );
    // Another publish of the same block, with its own valid path.
    const otherBatch = proofsOf(block, 2, [0])[0] as MessageProof;
    expect(
      codeOf(() =>
        verifyMessageProof({ ...mine, batch: otherBatch.batch, batchProof: otherBatch.batchProof }, trust),
      ),
    ).toBe('BAD_PROOF');
    // A tree size that is not the signed message count.
    const resized = { ...mine.messageProof, treeSize: 1024 };
    expect(codeOf(() => verifyMessageProof({ ...mine, messageProof: resized }, trust))).toBe('BAD_PROOF');
    // Below quorum, another network, a group the trust bundle does not know.
    expect(
      codeOf(() => verifyMessageProof({ ...mine, signatures: mine.signatures.slice(0, 2) }, trust)),
    ).toBe('INSUFFICIENT_SIGNATURES');
    expect(codeOf(() => verifyMessageProof(mine, proofTrustIn(SigningDomain.of('elsewhere'))))).toBe(
      'BAD_SIGNATURE',
    );
    expect(codeOf(() => verifyMessageProof(mine, { ...trust, membership: () => undefined }))).toBe(
      'WRONG_GROUP',
    );
  });

  it('refuses a certified result whose batch signature the sender did not make (a quorum of replicas lying)', () => {
    // The replicas replace the sender's signature in the publish's result and certify the block.
    const result = decodeCanonical(block.results[1] as Uint8Array) as Record<string, CborValue>;
    const forged = encodeCanonical({ ...result, signature: new Uint8Array(64).fill(7) });
    const lying = recertified(block, 1, forged);
    expect(codeOf(() => verifyMessageProof(proofsOf(lying, 1, [3])[0] as MessageProof, trust))).toBe(
      'BAD_SIGNATURE',
    );
  });

  it('prove a message whose batch carried its payloads: the signed payloadsHash is in the leaf, and without it the signature fails', () => {
    const [carrying] = batchChain([3], undefined, true) as [Block];
    const proof = proofsOf(carrying, 0, [1])[0] as MessageProof;
    expect(verifyMessageProof(proof, trust)).toMatchObject({ id: 'b0-m1', offset: 1 });
    const leaf = decodeCanonical(proof.batch) as Record<string, CborValue>;
    expect(leaf['payloadsHash']).toBeInstanceOf(Uint8Array);
    // The payloads themselves stay out of the proof: it grows by the hash and its key only.
    expect(sizeOf(proof) - sizeOf(proofsOf(batchBlock([3]), 0, [1])[0] as MessageProof)).toBeLessThanOrEqual(
      '.payloadsHash'.length + 2 + 32,
    );
    // Replicas that leave the hash out of the result they certify: the sender's signature no longer fits.
    const result = decodeCanonical(carrying.results[0] as Uint8Array) as Record<string, CborValue>;
    const { payloadsHash: _dropped, ...withoutHash } = result;
    const lying = recertified(carrying, 0, encodeCanonical(withoutHash));
    expect(codeOf(() => verifyMessageProof(proofsOf(lying, 0, [1])[0] as MessageProof, trust))).toBe(
      'BAD_SIGNATURE',
    );
  });

  it('refuses a result leaf that is in the block but is not a publish result of format 2', () => {
    // A format-1 result is its own leaf: present under the root, but not a batch.
    const v1Result = encodeCanonical({ status: 'REJECTED', reason: 'MALFORMED' });
    const results = [v1Result];
    const header = {
      ...block.header,
      resultsRoot: resultsRoot(results),
      transactionsRoot: merkleRoot([block.transactions[0] as Uint8Array]),
    };
    const mine = proofsOf(block, 1, [0])[0] as MessageProof;
    const forged: MessageProof = {
      ...mine,
      header,
      signatures: certifyHeader(header, proofReplicas.slice(0, 3)).signatures,
      batch: v1Result,
      batchProof: { leafIndex: 0, treeSize: 1, path: [] },
    };
    expect(codeOf(() => verifyMessageProof(forged, trust))).toBe('BAD_PROOF');
  });

  it('travels in version-2 receipts; an unknown version is UNSUPPORTED_PROOF_VERSION, a mixed one a schema mismatch', () => {
    const receipt = compactProofReceipt(proofChain());
    const bytes = encodeDeliveryReceipt(receipt);
    expect(verifyDeliveryReceipt(decodeDeliveryReceipt(bytes), trust).deliveries).toHaveLength(1);
    const value = decodeCanonical(bytes) as Record<string, CborValue>;
    expect(value['version']).toBe(2);
    expect(codeOf(() => decodeDeliveryReceipt(encodeCanonical({ ...value, version: 3 })))).toBe(
      'UNSUPPORTED_PROOF_VERSION',
    );
    const acceptance = value['acceptance'] as Record<string, CborValue>;
    expect(codeOf(() => decodeAcceptanceProof(encodeCanonical({ ...acceptance, version: 7 })))).toBe(
      'UNSUPPORTED_PROOF_VERSION',
    );
    const { version: _dropped, ...unversioned } = value;
    expect(codeOf(() => decodeDeliveryReceipt(encodeCanonical(unversioned)))).toBe('SCHEMA_MISMATCH');
  });
});

describe('receipts written before results were batched (version 1, format-1 results)', () => {
  // Written by the code of 5a2ed3e from proofChain(): a checked-in vector, never regenerated.
  const bytes = readFileSync(new URL('../../test/vectors/receipt-v1-format1.cbor', import.meta.url));

  it('still verify, replay byte for byte under today’s contract, and yield no compact proof', () => {
    const receipt = decodeDeliveryReceipt(bytes);
    expect('version' in receipt).toBe(false);
    const verified = verifyDeliveryReceipt(receipt, trust);
    expect(verified.message).toMatchObject({ id: 'm-1', sender: 'alice', offset: 0, height: 1 });
    expect(verified.deliveries.map((each) => each.recipient)).toEqual(['bob']);
    if (!('block' in receipt.acceptance)) throw new Error('a version-1 receipt holds block evidence');
    expect(batchedResult(receipt.acceptance.block.result)).toBeUndefined();
    expect(compactMessageProofs(receipt.acceptance.block, [0])).toBeUndefined();
    // Executed again by today's contract, the old transaction gives its old result, byte for byte:
    // the format is the transaction's, so old blocks replay (a handover re-executes copied blocks).
    const { block } = receipt.acceptance;
    const state = new MemoryContractState();
    const { results } = executeBatch(
      state,
      {
        partitionId: block.header.partitionId,
        configEpoch: block.header.configEpoch,
        height: block.header.height,
        timestamp: block.header.timestamp,
        registry: makeRegistry(),
      },
      [decodeClientRequest(block.transaction, messageLimits.requestBytesMax).operation],
    );
    expect(results).toEqual([block.result]);
    // The same message today is accepted with a format-2 result, and a different one.
    const today = proofChain()[0] as Block;
    expect(batchedResult(today.results[0] as Uint8Array)).toBeDefined();
  });
});
