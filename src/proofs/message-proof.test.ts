// Acceptance proofs and delivery receipts over real blocks: executed by the SDT contract, certified
// with real Ed25519 replica signatures, checked offline; every tampering is refused with a reason.
import { describe, expect, it } from 'vitest';
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { executeBatch } from '../contracts/sdt.js';
import { MemoryContractState } from '../contracts/state.js';
import { encodeConfirmDelivery, encodePublish } from '../contracts/transactions.js';
import { keys, makeRegistry, message, nonce, partitionId, startTime } from '../contracts/testing/fixtures.js';
import { merkleRoot, sign, signingKeyFromSeed } from '../crypto/index.js';
import { blockHash, certifyHeader } from '../ledger/block.js';
import type { Block, BlockHeader } from '../ledger/block.js';
import { isLedgerbusError } from '../errors.js';
import { blockEvidence } from './evidence.js';
import {
  decodeDeliveryReceipt,
  encodeDeliveryReceipt,
  verifyAcceptance,
  verifyDeliveryReceipt,
} from './message-proof.js';
import type { DeliveryReceipt, ProofTrust } from './message-proof.js';

const replicas = [1, 2, 3, 4].map((index) => ({
  id: `node${index}`,
  key: signingKeyFromSeed(new Uint8Array(32).fill(index)),
}));
const registry = makeRegistry();
const trust: ProofTrust = {
  membership: (groupId, epoch) =>
    groupId === partitionId && epoch === 0
      ? {
          partitionId,
          configEpoch: 0,
          members: new Map(replicas.map((replica) => [replica.id, replica.key.publicKey])),
        }
      : undefined,
  signingKeys: (organization) => registry.organization(organization)?.signingKeys,
};

/** Builds the chain: block 1 publishes m-1 (alice → bob), block 2 confirms it (bob). */
function chain(): Block[] {
  const state = new MemoryContractState();
  const blocks: Block[] = [];
  let previousHash: Uint8Array = new Uint8Array(32);
  const request = (client: keyof typeof keys, seq: number, operation: Uint8Array): Uint8Array =>
    encodeClientRequest(
      { group: partitionId, client: keys[client].publicKey, seq, operation },
      (type, payload) => sign(keys[client], type, payload),
    );
  const operations = [
    request(
      'alice',
      1,
      encodePublish(
        { sender: 'alice', nonce: nonce(1), timestamp: startTime, messages: [message()] },
        keys.alice,
      ),
    ),
    request(
      'bob',
      1,
      encodeConfirmDelivery(
        {
          recipient: 'bob',
          nonce: nonce(2),
          timestamp: startTime,
          deliveries: [{ id: 'm-1', contentRoot: message().contentRoot }],
        },
        keys.bob,
      ),
    ),
  ];
  operations.forEach((transaction, index) => {
    const height = index + 1;
    const operation = decodeClientRequest(transaction, messageLimits.requestBytesMax).operation;
    const context = { partitionId, configEpoch: 0, height, timestamp: startTime + height, registry };
    const { results } = executeBatch(state, context, [operation]);
    const header: BlockHeader = {
      partitionId,
      configEpoch: 0,
      height,
      previousHash,
      transactionsRoot: merkleRoot([transaction]),
      resultsRoot: merkleRoot(results),
      timestamp: startTime + height,
      view: 0,
      proposer: 'node1',
    };
    const certificate = certifyHeader(header, replicas.slice(0, 3));
    blocks.push({ header, certificate, transactions: [transaction], results });
    previousHash = blockHash(header);
  });
  return blocks;
}

function receiptOf(blocks: Block[]): DeliveryReceipt {
  return {
    acceptance: { block: blockEvidence(blocks[0] as Block, 0), messageIndex: 0 },
    deliveries: [{ recipient: 'bob', block: blockEvidence(blocks[1] as Block, 0), deliveryIndex: 0 }],
  };
}

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
  return 'VALID';
}

describe('message proofs', () => {
  it('prove acceptance at an offset and delivery to a recipient, offline, after an encode/decode round trip', () => {
    const receipt = decodeDeliveryReceipt(encodeDeliveryReceipt(receiptOf(chain())));
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

  it('refuses a certificate below quorum, a foreign group, a swapped result and a confirmation by someone else', () => {
    const blocks = chain();
    const good = receiptOf(blocks);
    const weak = { ...good.acceptance.block, signatures: good.acceptance.block.signatures.slice(0, 2) };
    expect(codeOf(() => verifyAcceptance({ block: weak, messageIndex: 0 }, trust))).toBe(
      'INSUFFICIENT_SIGNATURES',
    );
    const foreign: ProofTrust = { ...trust, membership: () => undefined };
    expect(codeOf(() => verifyAcceptance(good.acceptance, foreign))).toBe('WRONG_GROUP');
    const swapped = {
      ...good.acceptance.block,
      result: (good.deliveries[0] as DeliveryReceipt['deliveries'][number]).block.result,
    };
    expect(codeOf(() => verifyAcceptance({ block: swapped, messageIndex: 0 }, trust))).toBe('BAD_PROOF');
    const wrongRecipient = {
      ...good,
      deliveries: [{ ...(good.deliveries[0] as DeliveryReceipt['deliveries'][number]), recipient: 'carol' }],
    };
    expect(codeOf(() => verifyDeliveryReceipt(wrongRecipient, trust))).toBe('BAD_PROOF');
    const outOfBatch = { ...good.acceptance, messageIndex: 1 };
    expect(codeOf(() => verifyAcceptance(outOfBatch, trust))).toBe('BAD_PROOF');
  });

  it('refuses every single flipped byte of an encoded receipt (sampled)', () => {
    const bytes = encodeDeliveryReceipt(receiptOf(chain()));
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
