import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHash, verify as verifyEd25519 } from 'node:crypto';
import { ErrorCode } from '../errors.js';
import { generateSigningKey, signingKeyFromSeed } from './keys.js';
import { SigningDomain } from './sign.js';

const domain = SigningDomain.of('consortium-a');
const other = SigningDomain.of('consortium-b');
const sign = domain.sign.bind(domain);
const verify = domain.verify.bind(domain);
const key = signingKeyFromSeed(new Uint8Array(32).fill(1));
const otherKey = signingKeyFromSeed(new Uint8Array(32).fill(2));
const payload = new TextEncoder().encode('batch root');

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7));
  return copy;
}

describe('signing domains: one network each', () => {
  it('a signature made in one network verifies there and in no other, with the same key', () => {
    const signature = domain.sign(key, 'batch', payload);
    expect(domain.verify(key.publicKey, 'batch', payload, signature)).toBe(true);
    expect(other.verify(key.publicKey, 'batch', payload, signature)).toBe(false);
    expect(other.verify(key.publicKey, 'batch', payload, other.sign(key, 'batch', payload))).toBe(true);
    expect(domain.verify(key.publicKey, 'batch', payload, other.sign(key, 'batch', payload))).toBe(false);
    // Networks that differ in case, or by a prefix, are different networks.
    expect(SigningDomain.of('Consortium-a').verify(key.publicKey, 'batch', payload, signature)).toBe(false);
    expect(SigningDomain.of('consortium').verify(key.publicKey, 'batch', payload, signature)).toBe(false);
  });

  it('signs SHA-256 of the length-prefixed "ledgerbus/v1/<network>/<type>" then the payload', () => {
    const name = Buffer.from('ledgerbus/v1/consortium-a/batch');
    const digest = createHash('sha256')
      .update(Uint8Array.of(0, name.length))
      .update(name)
      .update(payload)
      .digest();
    const signature = domain.sign(key, 'batch', payload);
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), key.publicKey]);
    expect(verifyEd25519(null, digest, { key: spki, format: 'der', type: 'spki' }, signature)).toBe(true);
  });

  it('keeps network and type apart: no (network, type) pair signs for another', () => {
    const signature = SigningDomain.of('a').sign(key, 'b-c', payload);
    expect(SigningDomain.of('a.b').verify(key.publicKey, 'c', payload, signature)).toBe(false);
    expect(SigningDomain.of('a').verify(key.publicKey, 'b', payload, signature)).toBe(false);
  });

  it('a signer is a key bound to its network', () => {
    const signer = domain.signer(key);
    expect(signer.domain).toBe(domain);
    expect(signer.publicKey).toEqual(key.publicKey);
    expect(signer.sign('batch', payload)).toEqual(domain.sign(key, 'batch', payload));
    expect(other.verify(key.publicKey, 'batch', payload, signer.sign('batch', payload))).toBe(false);
  });

  it.each(['', 'a/b', 'a b', 'ü', 'x'.repeat(129)])('refuses the network id %j with BAD_CONFIG', (id) => {
    expect(() => SigningDomain.of(id)).toThrow(expect.objectContaining({ code: ErrorCode.BadConfig }));
  });
});

describe('sign / verify', () => {
  it('verifies a signature it made, deterministically (RFC 8032)', () => {
    const signature = sign(key, 'batch', payload);
    expect(signature).toHaveLength(64);
    expect(sign(key, 'batch', payload)).toEqual(signature);
    expect(verify(key.publicKey, 'batch', payload, signature)).toBe(true);
    const fresh = generateSigningKey();
    expect(verify(fresh.publicKey, 'batch', payload, sign(fresh, 'batch', payload))).toBe(true);
  });

  it('fails for another domain type, so signatures cannot be replayed across object types', () => {
    const signature = sign(key, 'batch', payload);
    expect(verify(key.publicKey, 'block', payload, signature)).toBe(false);
    expect(verify(key.publicKey, 'batc', payload, signature)).toBe(false);
  });

  it('fails for another key', () => {
    expect(verify(otherKey.publicKey, 'batch', payload, sign(key, 'batch', payload))).toBe(false);
  });

  it('fails when any bit of the payload, signature or public key is flipped', () => {
    const signature = sign(key, 'batch', payload);
    fc.assert(
      fc.property(fc.nat({ max: 511 }), (bit) => {
        expect(verify(key.publicKey, 'batch', payload, flipBit(signature, bit))).toBe(false);
        expect(verify(flipBit(key.publicKey, bit % 256), 'batch', payload, signature)).toBe(false);
        expect(verify(key.publicKey, 'batch', flipBit(payload, bit % (payload.length * 8)), signature)).toBe(
          false,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('returns false, without throwing, for wrong-length keys and signatures', () => {
    const signature = sign(key, 'batch', payload);
    expect(verify(key.publicKey.subarray(1), 'batch', payload, signature)).toBe(false);
    expect(verify(new Uint8Array(0), 'batch', payload, signature)).toBe(false);
    expect(verify(key.publicKey, 'batch', payload, signature.subarray(1))).toBe(false);
    expect(verify(key.publicKey, 'batch', payload, new Uint8Array(65))).toBe(false);
  });

  it('returns false for arbitrary keys and signatures, never throwing', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (pub, sig) => {
          expect(verify(pub, 'batch', payload, sig)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('works on keys and signatures that are views into larger buffers', () => {
    const signature = sign(key, 'batch', payload);
    const buffer = new Uint8Array(200);
    buffer.set(key.publicKey, 5);
    buffer.set(signature, 100);
    expect(verify(buffer.subarray(5, 37), 'batch', payload, buffer.subarray(100, 164))).toBe(true);
  });

  it('throws on an invalid domain type, which is a caller bug', () => {
    expect(() => sign(key, 'Batch', payload)).toThrow(/invariant violated/);
    expect(() => verify(key.publicKey, 'ledgerbus/v1/batch', payload, new Uint8Array(64))).toThrow(
      /invariant violated/,
    );
  });
});
