// Acceptance proofs and delivery receipts over real blocks: executed by the SDT contract, certified
// with real Ed25519 replica signatures, checked offline; every tampering is refused with a reason.
import { describe, expect, it } from 'vitest';
import { codeOf } from '../testing/code-of.js';
import { startTime } from '../contracts/testing/fixtures.js';
import { SigningDomain } from '../crypto/index.js';
import { proofChain, proofReceipt, proofTrust, proofTrustIn } from './testing/proof-chain.js';
import {
  decodeDeliveryReceipt,
  encodeDeliveryReceipt,
  verifyAcceptance,
  verifyDeliveryReceipt,
} from './message-proof.js';
import type { ProofTrust } from './message-proof.js';

const trust = proofTrust;

describe('message proofs', () => {
  it('prove acceptance at an offset and delivery to a recipient, offline, after an encode/decode round trip', () => {
    const receipt = decodeDeliveryReceipt(encodeDeliveryReceipt(proofReceipt(proofChain())));
    const verified = verifyDeliveryReceipt(receipt, trust);
    expect(verified.message).toMatchObject({
      id: 'm-1',
      sender: 'alice',
      offset: 0,
      height: 1,
      recipients: ['bob'],
    });
    expect(verified.deliveries).toEqual([{ recipient: 'bob', height: 2, confirmedAt: startTime + 2 }]);
  });

  it("refuses a receipt checked against another network's trust bundle holding the very same keys", () => {
    const receipt = proofReceipt(proofChain());
    const elsewhere = proofTrustIn(SigningDomain.of('another-network'));
    expect(codeOf(() => verifyDeliveryReceipt(receipt, elsewhere))).toBe('BAD_SIGNATURE');
    expect(codeOf(() => verifyAcceptance(receipt.acceptance, elsewhere))).toBe('BAD_SIGNATURE');
  });

  it('refuses a certificate below quorum, a foreign group, a swapped result and a confirmation by someone else', () => {
    const blocks = proofChain();
    const good = proofReceipt(blocks);
    const weak = { ...good.acceptance.block, signatures: good.acceptance.block.signatures.slice(0, 2) };
    expect(codeOf(() => verifyAcceptance({ block: weak, messageIndex: 0 }, trust))).toBe(
      'INSUFFICIENT_SIGNATURES',
    );
    const foreign: ProofTrust = { ...trust, membership: () => undefined };
    expect(codeOf(() => verifyAcceptance(good.acceptance, foreign))).toBe('WRONG_GROUP');
    const swapped = {
      ...good.acceptance.block,
      result: good.deliveries[0]!.block.result,
    };
    expect(codeOf(() => verifyAcceptance({ block: swapped, messageIndex: 0 }, trust))).toBe('BAD_PROOF');
    const wrongRecipient = {
      ...good,
      deliveries: [{ ...good.deliveries[0]!, recipient: 'carol' }],
    };
    expect(codeOf(() => verifyDeliveryReceipt(wrongRecipient, trust))).toBe('BAD_PROOF');
    const outOfBatch = { ...good.acceptance, messageIndex: 1 };
    expect(codeOf(() => verifyAcceptance(outOfBatch, trust))).toBe('BAD_PROOF');
  });

  it('refuses every single flipped byte of an encoded receipt (sampled)', () => {
    const bytes = encodeDeliveryReceipt(proofReceipt(proofChain()));
    for (let position = 0; position < bytes.length; position += 37) {
      const copy = Uint8Array.from(bytes);
      copy[position] = (copy[position] ?? 0) ^ 0x01;
      expect(
        codeOf(() => verifyDeliveryReceipt(decodeDeliveryReceipt(copy), trust)),
        `byte ${position}`,
      ).not.toBe('VALID');
    }
  });
});
