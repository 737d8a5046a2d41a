// Version-2 delivery evidence (O(log n) in the confirmation), and the position a format-2 result
// names for itself: an RFC 9162 path fits several tree sizes, so a proof's leaf index alone cannot
// say which transaction it is.
import { describe, expect, it } from 'vitest';
import { codeOf } from '../testing/code-of.js';
import { decodeCanonical, encodeCanonical } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { verifyInclusion } from '../crypto/index.js';
import { certifyHeader } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import { resultsRoot } from '../ledger/result-leaf.js';
import { compactDeliveryProof, verifyDeliveryProof } from './compact-delivery-proof.js';
import type { DeliveryProof } from './compact-delivery-proof.js';
import { compactMessageProofs, verifyMessageProof } from './compact-message-proof.js';
import type { MessageProof } from './compact-message-proof.js';
import { blockEvidence } from './evidence.js';
import { deliveryEvidenceToCbor, verifyAcceptance, verifyDelivery } from './message-proof.js';
import { batchChain, proofReplicas, proofTrust } from './testing/proof-chain.js';

const trust = proofTrust;

const sizeOf = (value: CborValue): number => encodeCanonical(value).length;

describe('compact (version 2) delivery evidence', () => {
  // 500 messages to bob in block 1; bob confirms all of them in one transaction in block 2.
  const ids = Array.from({ length: 500 }, (_, index) => `b0-m${index}`);
  const [published, confirmed] = batchChain([500], ids) as [Block, Block];
  const messageProofs = compactMessageProofs(blockEvidence(published, 0), [250, 251]) as MessageProof[];
  const message = verifyAcceptance(messageProofs[0] as MessageProof, trust);
  const other = verifyAcceptance(messageProofs[1] as MessageProof, trust);
  const evidence = blockEvidence(confirmed, 0);
  const proof = compactDeliveryProof(evidence, 250, 'bob') as DeliveryProof;

  it('proves one delivery of a 500-delivery confirmation in O(log n), saying what version 1 says', () => {
    const whole = { recipient: 'bob', block: evidence, deliveryIndex: 250 };
    expect(verifyDelivery(message, proof, trust)).toEqual(verifyDelivery(message, whole, trust));
    expect(verifyDelivery(message, proof, trust)).toMatchObject({ recipient: 'bob', height: 2 });
    expect(sizeOf(deliveryEvidenceToCbor(proof))).toBeLessThan(2_500);
    expect(sizeOf(deliveryEvidenceToCbor(whole))).toBeGreaterThan(40_000);
  });

  it("refuses another message's delivery, its outcome, another recipient and another partition", () => {
    const neighbour = compactDeliveryProof(evidence, 251, 'bob') as DeliveryProof;
    expect(codeOf(() => verifyDeliveryProof(other, neighbour, trust))).toBe('VALID');
    expect(codeOf(() => verifyDeliveryProof(message, neighbour, trust))).toBe('BAD_PROOF');
    const mixed = { ...proof, outcome: neighbour.outcome, outcomeProof: neighbour.outcomeProof };
    expect(codeOf(() => verifyDeliveryProof(message, mixed, trust))).toBe('BAD_PROOF');
    expect(codeOf(() => verifyDeliveryProof(message, { ...proof, recipient: 'carol' }, trust))).toBe(
      'BAD_PROOF',
    );
    const elsewhere = { ...message, partitionId: 'invoices/1' };
    expect(codeOf(() => verifyDeliveryProof(elsewhere, proof, trust))).toBe('BAD_PROOF');
  });

  it('refuses a certified confirmation whose signature the recipient did not make (a quorum lying)', () => {
    const result = decodeCanonical(confirmed.results[0] as Uint8Array) as Record<string, CborValue>;
    const results = [encodeCanonical({ ...result, signature: new Uint8Array(64).fill(9) })];
    const header = { ...confirmed.header, resultsRoot: resultsRoot(results) };
    const lying: Block = {
      ...confirmed,
      header,
      certificate: certifyHeader(header, proofReplicas.slice(0, 3)),
      results,
    };
    const forged = compactDeliveryProof(blockEvidence(lying, 0), 250, 'bob') as DeliveryProof;
    expect(codeOf(() => verifyDeliveryProof(message, forged, trust))).toBe('BAD_SIGNATURE');
  });
});

describe('a format-2 result names its own transaction', () => {
  it('so a path re-read for a smaller tree cannot move a retry onto its first acceptance', () => {
    // Block 1: a filler publish, x-1 first accepted in transaction 1, its retry in transaction 2
    // (other nonce, same leaf: the contract answers it with the first acceptance, transaction 1).
    const [block] = batchChain([1, ['x-1'], ['x-1']]) as [Block];
    const [retry] = compactMessageProofs(blockEvidence(block, 2), [0]) as [MessageProof];
    // Leaf 2 of a 3-leaf tree has the path of leaf 1 of a 2-leaf tree: both reach the same root.
    const moved = { ...retry.batchProof, leafIndex: 1, treeSize: 2 };
    expect(verifyInclusion(block.header.resultsRoot, retry.batch, moved)).toBe(true);
    expect(codeOf(() => verifyMessageProof({ ...retry, batchProof: moved }, trust))).toBe('BAD_PROOF');
    // The first acceptance itself proves x-1.
    const [first] = compactMessageProofs(blockEvidence(block, 1), [0]) as [MessageProof];
    expect(verifyMessageProof(first, trust)).toMatchObject({ id: 'x-1', height: 1 });
  });
});
