/**
 * Shared pieces of the fuzz suites: byte mutations driven by fast-check, the "only LedgerbusError"
 * oracle, and (re-exported) the certified proof chain of src/proofs/testing.
 */
import { expect } from 'vitest';
import { toHex } from '../../src/codec/index.js';
import type { PbftCrypto } from '../../src/consensus/pbft/types.js';
import { SigningDomain, domainHash, merkleRoot, signingKeyFromSeed } from '../../src/crypto/index.js';
import { isLedgerbusError } from '../../src/errors.js';

export { mutate, mutateAll, mutation, mutations } from '../../src/codec/testing/mutations.js';
export type { Mutation } from '../../src/codec/testing/mutations.js';

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

/** The network every fuzzed signature is made and checked in. */
export const fuzzNetwork = SigningDomain.of('fuzz');

/**
 * The PBFT crypto interface over the real primitives, in `fuzzNetwork`. Its `sign` returns zeros: it only re-encodes
 * decoded bodies, whose signature the round trip discards; `signingCrypto` signs for real.
 */
export const pbftCrypto: PbftCrypto = {
  sign: () => new Uint8Array(64),
  verify: (publicKey, type, payload, signature) => fuzzNetwork.verify(publicKey, type, payload, signature),
  hash: domainHash,
  merkleRoot,
};

export function signingCrypto(seed: number): PbftCrypto {
  const key = signingKeyFromSeed(new Uint8Array(32).fill(seed));
  return { ...pbftCrypto, sign: fuzzNetwork.signer(key).sign };
}

export {
  compactProofReceipt,
  proofChain,
  proofReceipt,
  proofReplicas,
  proofTrust,
} from '../../src/proofs/testing/proof-chain.js';
