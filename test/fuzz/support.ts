/**
 * Shared pieces of the fuzz suites: byte mutations driven by fast-check, the "only LedgerbusError"
 * oracle, and a small certified chain (publish, then confirmDelivery) whose proofs are real.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { toHex } from '../../src/codec/index.js';
import {
  decodeClientRequest,
  encodeClientRequest,
  messageLimits,
} from '../../src/consensus/pbft/messages.js';
import type { PbftCrypto } from '../../src/consensus/pbft/types.js';
import { executeBatch } from '../../src/contracts/sdt.js';
import { MemoryContractState } from '../../src/contracts/state.js';
import {
  keys,
  makeRegistry,
  message,
  nonce,
  partitionId,
  startTime,
} from '../../src/contracts/testing/fixtures.js';
import { encodeConfirmDelivery, encodePublish } from '../../src/contracts/transactions.js';
import { domainHash, merkleRoot, sign, signingKeyFromSeed, verify } from '../../src/crypto/index.js';
import { isLedgerbusError } from '../../src/errors.js';
import { blockHash, certifyHeader } from '../../src/ledger/block.js';
import type { Block, BlockHeader } from '../../src/ledger/block.js';
import { blockEvidence } from '../../src/proofs/evidence.js';
import type { DeliveryReceipt, ProofTrust } from '../../src/proofs/message-proof.js';

export const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);
export type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

/** One to four mutations: single edits find shallow bugs, stacked ones reach deeper schema paths. */
export const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

export function mutate(bytes: Uint8Array, change: Mutation): Uint8Array {
  // Inserting into an empty input is the only edit that still means something there.
  const at = bytes.length === 0 ? 0 : change.at % bytes.length;
  switch (change.kind) {
    case 'flip': {
      if (bytes.length === 0) return bytes;
      const copy = Uint8Array.from(bytes);
      copy[at] = (copy[at] as number) ^ change.mask;
      return copy;
    }
    case 'set': {
      if (bytes.length === 0) return bytes;
      const copy = Uint8Array.from(bytes);
      copy[at] = change.byte;
      return copy;
    }
    case 'insert':
      return Uint8Array.from([...bytes.subarray(0, at), change.byte, ...bytes.subarray(at)]);
    case 'delete':
      return Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
    case 'truncate':
      return Uint8Array.from(bytes.subarray(0, at));
  }
}

export function mutateAll(bytes: Uint8Array, changes: readonly Mutation[]): Uint8Array {
  return changes.reduce(mutate, bytes);
}

/**
 * Runs `action`; a LedgerbusError is an accepted outcome (typed rejection), anything else fails the
 * property with the input in hex so that the case can be replayed as a named regression.
 */
export function expectOnlyLedgerbusErrors(
  what: string,
  input: Uint8Array | readonly Uint8Array[],
  action: () => unknown,
): void {
  try {
    action();
  } catch (error) {
    if (isLedgerbusError(error)) return;
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    const hex = input instanceof Uint8Array ? toHex(input) : `[${input.map(toHex).join(', ')}]`;
    expect.fail(`${what} threw a non-LedgerbusError on input ${hex}:\n${detail}`);
  }
}

/**
 * The PBFT crypto interface over the real primitives. Its `sign` returns zeros: it only re-encodes
 * decoded bodies, whose signature the round trip discards; `signingCrypto` signs for real.
 */
export const pbftCrypto: PbftCrypto = {
  sign: () => new Uint8Array(64),
  verify,
  hash: domainHash,
  merkleRoot,
};

export function signingCrypto(seed: number): PbftCrypto {
  const key = signingKeyFromSeed(new Uint8Array(32).fill(seed));
  return { ...pbftCrypto, sign: (type, payload) => sign(key, type, payload) };
}

// ---- a certified chain with real proofs ------------------------------------------------------------

export const proofReplicas = [1, 2, 3, 4].map((index) => ({
  id: `node${index}`,
  key: signingKeyFromSeed(new Uint8Array(32).fill(index)),
}));

const proofRegistry = makeRegistry();

export const proofTrust: ProofTrust = {
  membership: (groupId, epoch) =>
    groupId === partitionId && epoch === 0
      ? {
          partitionId,
          configEpoch: 0,
          members: new Map(proofReplicas.map((replica) => [replica.id, replica.key.publicKey])),
        }
      : undefined,
  signingKeys: (organization) => proofRegistry.organization(organization)?.signingKeys,
};

export function clientRequest(client: keyof typeof keys, seq: number, operation: Uint8Array): Uint8Array {
  return encodeClientRequest(
    { group: partitionId, client: keys[client].publicKey, seq, operation },
    (type, payload) => sign(keys[client], type, payload),
  );
}

/** Block 1 publishes m-1 (alice → bob), block 2 records bob's confirmation, both executed for real. */
export function proofChain(): Block[] {
  const state = new MemoryContractState();
  const blocks: Block[] = [];
  let previousHash: Uint8Array = new Uint8Array(32);
  const operations = [
    clientRequest(
      'alice',
      1,
      encodePublish(
        { sender: 'alice', nonce: nonce(1), timestamp: startTime, messages: [message()] },
        keys.alice,
      ),
    ),
    clientRequest(
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
    const context = {
      partitionId,
      configEpoch: 0,
      height,
      timestamp: startTime + height,
      registry: proofRegistry,
    };
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
    blocks.push({
      header,
      certificate: certifyHeader(header, proofReplicas.slice(0, 3)),
      transactions: [transaction],
      results,
    });
    previousHash = blockHash(header);
  });
  return blocks;
}

export function proofReceipt(blocks: readonly Block[]): DeliveryReceipt {
  return {
    acceptance: { block: blockEvidence(blocks[0] as Block, 0), messageIndex: 0 },
    deliveries: [{ recipient: 'bob', block: blockEvidence(blocks[1] as Block, 0), deliveryIndex: 0 }],
  };
}
