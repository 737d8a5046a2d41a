/**
 * A small certified chain whose proofs are real, for the proof tests and the fuzz suites: block 1
 * publishes m-1 (alice → bob), block 2 records bob's confirmation, both executed by the SDT contract
 * and certified by three of four Ed25519 replicas.
 */
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../../consensus/pbft/messages.js';
import { executeBatch } from '../../contracts/sdt.js';
import { MemoryContractState } from '../../contracts/state.js';
import {
  keys,
  makeRegistry,
  message,
  nonce,
  partitionId,
  signing,
  startTime,
} from '../../contracts/testing/fixtures.js';
import { encodeConfirmDelivery, encodePublish } from '../../contracts/transactions.js';
import { merkleRoot, signingKeyFromSeed } from '../../crypto/index.js';
import type { SigningDomain } from '../../crypto/index.js';
import { blockHash, certifyHeader } from '../../ledger/block.js';
import type { Block, BlockHeader } from '../../ledger/block.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { blockEvidence } from '../evidence.js';
import type { AcceptanceProofV1, DeliveryEvidenceV1, DeliveryReceipt, ProofTrust } from '../message-proof.js';
import { compactDeliveryProof } from '../compact-delivery-proof.js';
import type { DeliveryProof } from '../compact-delivery-proof.js';
import { compactMessageProofs } from '../compact-message-proof.js';
import type { MessageProof } from '../compact-message-proof.js';
import { resultsRoot } from '../../ledger/result-leaf.js';

/** The four replicas of the chain, with their keys bound to the contract fixtures' network. */
export const proofReplicas = [1, 2, 3, 4].map((index) => {
  const key = signingKeyFromSeed(new Uint8Array(32).fill(index));
  return { id: `node${index}`, key, signer: signing.signer(key) };
});

const proofRegistry = makeRegistry();

/**
 * The chain's trust bundle as a verifier in network `domain` would hold it: the very same keys,
 * so with another network than the chain's it is what a consortium reusing those keys would check.
 */
export function proofTrustIn(domain: SigningDomain): ProofTrust {
  return {
    signing: domain,
    membership: (groupId, epoch) =>
      groupId === partitionId && epoch === 0
        ? {
            signing: domain,
            partitionId,
            configEpoch: 0,
            members: new Map(proofReplicas.map((replica) => [replica.id, replica.key.publicKey])),
          }
        : undefined,
    signingKeys: (organization) => proofRegistry.organization(organization)?.signingKeys,
  };
}

/** The chain's own trust bundle (its network's). */
export const proofTrust: ProofTrust = proofTrustIn(signing);

function clientRequest(client: keyof typeof keys, seq: number, operation: Uint8Array): Uint8Array {
  const signer = signing.signer(keys[client]);
  return encodeClientRequest({ group: partitionId, client: signer.publicKey, seq, operation }, signer.sign);
}

export function proofChain(): Block[] {
  return batchChain([['m-1']], ['m-1']);
}

/** The receipt of m-1 in version 1: its acceptance in block 1 and bob's confirmation in block 2. */
export function proofReceipt(
  blocks: readonly Block[],
): DeliveryReceipt & { acceptance: AcceptanceProofV1; deliveries: DeliveryEvidenceV1[] } {
  return {
    acceptance: { block: blockEvidence(blocks[0] as Block, 0), messageIndex: 0 },
    deliveries: [{ recipient: 'bob', block: blockEvidence(blocks[1] as Block, 0), deliveryIndex: 0 }],
  };
}

/** The receipt of m-1 in version 2: the compact proofs of its acceptance and of bob's confirmation. */
export function compactProofReceipt(
  blocks: readonly Block[],
): DeliveryReceipt & { version: 2; acceptance: MessageProof; deliveries: DeliveryProof[] } {
  const [acceptance] = compactMessageProofs(blockEvidence(blocks[0] as Block, 0), [0]) ?? [];
  const delivery = compactDeliveryProof(blockEvidence(blocks[1] as Block, 0), 0, 'bob');
  if (acceptance === undefined || delivery === undefined)
    throw new LedgerbusError(ErrorCode.BadProof, 'the chain has format-1 results');
  return { version: 2, acceptance, deliveries: [delivery] };
}

/**
 * Blocks of a chain executed by the SDT contract and certified like proofChain's: block 1 holds one
 * publish by alice per entry of `batches` — a count n gives ids `b<b>-m0..n-1`, a list gives those
 * ids (the same list twice is a retry); block 2, when `confirmed` is given, bob's confirmation of
 * those ids (all messages are addressed to bob). With `inline`, every publish carries a (made-up)
 * sealed payload per message, as a connector's small messages do.
 */
export function batchChain(
  batches: readonly (number | readonly string[])[],
  confirmed?: readonly string[],
  inline = false,
): Block[] {
  const state = new MemoryContractState();
  const publishes = batches.map((batch, position) => {
    const ids =
      typeof batch === 'number'
        ? Array.from({ length: batch }, (_, index) => `b${position}-m${index}`)
        : batch;
    return clientRequest(
      'alice',
      position + 1,
      encodePublish(
        {
          sender: 'alice',
          nonce: nonce(position + 1),
          timestamp: startTime,
          messages: ids.map((id) => message({ id })),
          ...(inline
            ? {
                payloads: ids.map((_, index) => ({
                  header: new Uint8Array(40).fill(index % 256),
                  ciphertext: new Uint8Array(100).fill(7),
                })),
              }
            : {}),
        },
        signing.signer(keys.alice),
      ),
    );
  });
  const blocks: Block[] = [];
  const certify = (transactions: Uint8Array[]): void => {
    const height = blocks.length + 1;
    const operations = transactions.map(
      (transaction) => decodeClientRequest(transaction, messageLimits.requestBytesMax).operation,
    );
    const context = {
      partitionId,
      configEpoch: 0,
      height,
      timestamp: startTime + height,
      registry: proofRegistry,
    };
    const { results } = executeBatch(state, context, operations);
    const previous = blocks.at(-1);
    const header: BlockHeader = {
      partitionId,
      configEpoch: 0,
      height,
      previousHash: previous === undefined ? new Uint8Array(32) : blockHash(previous.header),
      transactionsRoot: merkleRoot(transactions),
      resultsRoot: resultsRoot(results),
      timestamp: startTime + height,
      view: 0,
      proposer: 'node1',
    };
    blocks.push({
      header,
      certificate: certifyHeader(header, proofReplicas.slice(0, 3)),
      transactions,
      results,
    });
  };
  certify(publishes);
  if (confirmed !== undefined) {
    const confirmation = encodeConfirmDelivery(
      {
        recipient: 'bob',
        nonce: nonce(1000),
        timestamp: startTime,
        deliveries: confirmed.map((id) => ({ id, contentRoot: message({ id }).contentRoot })),
      },
      signing.signer(keys.bob),
    );
    certify([clientRequest('bob', 1, confirmation)]);
  }
  return blocks;
}

/** Block 1 of batchChain(batches). */
export function batchBlock(batches: readonly (number | readonly string[])[]): Block {
  return batchChain(batches)[0] as Block;
}
