// A publish's messages share most of their compact acceptance proofs: the connector keeps that part
// once. Split and joined again, a proof is byte for byte the proof that was issued, and still verifies.
import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../codec/index.js';
import type { Block } from '../ledger/block.js';
import {
  acceptanceProofToCbor,
  blockEvidence,
  compactMessageProofs,
  decodeAcceptanceProof,
  encodeAcceptanceProof,
  verifyAcceptance,
} from '../proofs/index.js';
import type { MessageProof } from '../proofs/index.js';
import { batchChain, proofChain, proofReceipt, proofTrust } from '../proofs/testing/proof-chain.js';
import { joinProof, splitProof } from './proof-parts.js';

const ids = Array.from({ length: 64 }, (_, index) => `b0-m${index}`);
const [published] = batchChain([64], ids) as [Block, Block];
const proofs = (compactMessageProofs(blockEvidence(published, 0), [0, 1, 63]) as MessageProof[]).map(
  (proof) => encodeAcceptanceProof(proof),
);

describe('proof parts', () => {
  it('joins the parts of a compact proof back into exactly its bytes, which still verify', () => {
    for (const proof of proofs) {
      const split = splitProof(proof)!;
      expect(split).toBeDefined();
      const joined = joinProof(split.shared, split.own);
      expect(Buffer.from(joined).equals(Buffer.from(proof))).toBe(true);
      expect(verifyAcceptance(decodeAcceptanceProof(joined), proofTrust).id).toMatch(/-m\d+$/);
    }
  });

  it('gives the messages of one publish one shared part, and each a part of its own smaller than the proof', () => {
    const splits = proofs.map((proof) => splitProof(proof)!);
    expect(new Set(splits.map((split) => Buffer.from(split.sharedHash).toString('hex'))).size).toBe(1);
    expect(new Set(splits.map((split) => Buffer.from(split.own).toString('hex'))).size).toBe(3);
    for (const [index, split] of splits.entries()) {
      expect(split.own.length).toBeLessThan(proofs[index]!.length / 2);
    }
  });

  it('keeps a version 1 proof, and bytes that are not a proof, whole', () => {
    const v1 = encodeCanonical(acceptanceProofToCbor(proofReceipt(proofChain()).acceptance));
    expect(splitProof(v1)).toBeUndefined();
    expect(splitProof(new Uint8Array([1, 2, 3]))).toBeUndefined();
    expect(splitProof(encodeCanonical({ version: 2, header: 1 }))).toBeUndefined();
  });
});
