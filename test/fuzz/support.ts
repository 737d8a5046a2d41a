/**
 * Shared pieces of the fuzz suites: byte mutations driven by fast-check, the "only LedgerbusError"
 * oracle, and (re-exported) the certified proof chain of src/proofs/testing.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { toHex } from '../../src/codec/index.js';
import type { PbftCrypto } from '../../src/consensus/pbft/types.js';
import { domainHash, merkleRoot, sign, signingKeyFromSeed, verify } from '../../src/crypto/index.js';
import { isLedgerbusError } from '../../src/errors.js';

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

export { proofChain, proofReceipt, proofReplicas, proofTrust } from '../../src/proofs/testing/proof-chain.js';
