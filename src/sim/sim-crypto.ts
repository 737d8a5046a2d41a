/**
 * Signers for the simulator. `ed25519` uses the real signatures of src/crypto. `hmac` stands in for
 * them when thousands of seeds must run in minutes: a replica signs with HMAC-SHA-512 under its own
 * secret and the verifier looks the secret up by public key. Inside one simulated world that has the
 * property the protocol relies on — nobody can produce a valid signature for a key whose secret it
 * does not hold — while being about 50× cheaper. Both sign in one network's domain, as a node does
 * (the simulator's worlds use `simNetwork`).
 */
import { createHmac } from 'node:crypto';
import { SigningDomain, domainHash, merkleRoot, sha256, signingKeyFromSeed } from '../crypto/index.js';
import { hexKey } from '../consensus/pbft/quorum.js';
import type { PbftCrypto } from '../consensus/pbft/types.js';

export type SimCryptoKind = 'hmac' | 'ed25519';

/** The network id of every simulated world: one fixed string, so a seed replays the same bytes. */
export const simNetwork = 'ledgerbus-sim';

export interface SimSigner {
  readonly publicKey: Uint8Array;
  readonly crypto: PbftCrypto;
  /** Signs as this identity; used by clients for their requests. */
  sign(type: string, payload: Uint8Array): Uint8Array;
}

/** Creates identities that can verify each other: one keyring per simulated world. */
export class SimKeyring {
  private readonly secrets = new Map<string, Uint8Array>();
  /** The network every identity of this keyring signs in. */
  readonly signing: SigningDomain;

  constructor(
    readonly kind: SimCryptoKind,
    network: string = simNetwork,
  ) {
    this.signing = SigningDomain.of(network);
  }

  /** A deterministic identity derived from `label` (e.g. "world-7/replica-2"). */
  identity(label: string): SimSigner {
    const seed = sha256(new TextEncoder().encode(`ledgerbus-sim/${label}`));
    if (this.kind === 'ed25519') {
      const signer = this.signing.signer(signingKeyFromSeed(seed));
      return { publicKey: signer.publicKey, sign: signer.sign, crypto: this.cryptoFor(signer.sign) };
    }
    const publicKey = sha256(seed);
    this.secrets.set(hexKey(publicKey), seed);
    const network = this.signing.network;
    const signFn = (type: string, payload: Uint8Array): Uint8Array => hmacSign(seed, network, type, payload);
    return { publicKey, sign: signFn, crypto: this.cryptoFor(signFn) };
  }

  private cryptoFor(signFn: (type: string, payload: Uint8Array) => Uint8Array): PbftCrypto {
    return {
      sign: signFn,
      verify: (publicKey, type, payload, signature) => this.verify(publicKey, type, payload, signature),
      hash: domainHash,
      merkleRoot,
    };
  }

  verify(publicKey: Uint8Array, type: string, payload: Uint8Array, signature: Uint8Array): boolean {
    if (this.kind === 'ed25519') return this.signing.verify(publicKey, type, payload, signature);
    const secret = this.secrets.get(hexKey(publicKey));
    if (secret === undefined || signature.length !== 64) return false;
    const expected = hmacSign(secret, this.signing.network, type, payload);
    let difference = 0;
    for (let i = 0; i < 64; i++) difference |= expected[i]! ^ signature[i]!;
    return difference === 0;
  }
}

function hmacSign(secret: Uint8Array, network: string, type: string, payload: Uint8Array): Uint8Array {
  const mac = createHmac('sha512', secret);
  // Network and type have no '/' nor NUL: the string names one (network, type) pair.
  mac.update(`ledgerbus/v1/${network}/${type}\0`);
  mac.update(payload);
  return new Uint8Array(mac.digest());
}
