import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeWith, encodeWith } from '../codec/index.js';
import { sealedBoxSchema } from '../contracts/datashare/transactions.js';
import { ErrorCode, isLedgerbusError } from '../errors.js';
import { generateEncryptionKey } from './envelope/index.js';
import { jobBoxPlaintextBytesMax, openJobBox, sealJobBox } from './job-box.js';
import type { JobBoxContext } from './job-box.js';

const owner = generateEncryptionKey();
const requester = generateEncryptionKey();
const spec: JobBoxContext = {
  network: 'job-testnet',
  jobId: 'job-0001-abcdef',
  requester: 'org1',
  owner: 'org2',
  purpose: 'spec',
};
const result: JobBoxContext = { ...spec, purpose: 'result' };

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
  return 'OPENED';
}

describe('job boxes', () => {
  it('seal a spec to the owner and a result to the requester, each opening only for its recipient', async () => {
    const text = new TextEncoder().encode(
      '{"kind":"aggregate","query":"SELECT region, COUNT(*) FROM loans"}',
    );
    const box = await sealJobBox(text, owner.publicKey, spec);
    // What goes on the ledger fits the transaction's schema and survives its encoding.
    const onChain = decodeWith(sealedBoxSchema, encodeWith(sealedBoxSchema, box));
    expect(await openJobBox(onChain, owner, spec)).toEqual(text);
    expect(await code(openJobBox(box, requester, spec))).toBe(ErrorCode.PayloadCorrupt);

    const output = randomBytes(1000);
    const back = await sealJobBox(output, requester.publicKey, result);
    expect(Buffer.from(await openJobBox(back, requester, result)).equals(output)).toBe(true);
    // Two seals of the same plaintext differ (a fresh ephemeral key each time).
    const again = await sealJobBox(output, requester.publicKey, result);
    expect(Buffer.from(again.encapsulatedKey).equals(back.encapsulatedKey)).toBe(false);
  });

  it('cannot be replayed: a spec is no result, nor a box of another job, party or network', async () => {
    // Sealed to the requester's key as a spec: only its context differs from a real result box.
    const box = await sealJobBox(Uint8Array.of(1, 2, 3), requester.publicKey, spec);
    expect(await openJobBox(box, requester, spec)).toEqual(Uint8Array.of(1, 2, 3));
    const others: JobBoxContext[] = [
      result,
      { ...spec, jobId: 'job-0002-abcdef' },
      { ...spec, requester: 'org3' },
      { ...spec, owner: 'org3' },
      { ...spec, network: 'other-net' },
    ];
    for (const context of others)
      expect(await code(openJobBox(box, requester, context))).toBe(ErrorCode.PayloadCorrupt);
  });

  it('refuses tampered bytes, boxes of no valid size, bad keys and unknown purposes', async () => {
    const box = await sealJobBox(randomBytes(64), owner.publicKey, spec);
    const flipped = Uint8Array.from(box.ciphertext);
    flipped[10] = (flipped[10] as number) ^ 1;
    expect(await code(openJobBox({ ...box, ciphertext: flipped }, owner, spec))).toBe(
      ErrorCode.PayloadCorrupt,
    );
    const otherKey = Uint8Array.from(box.encapsulatedKey);
    otherKey[0] = (otherKey[0] as number) ^ 1;
    expect(await code(openJobBox({ ...box, encapsulatedKey: otherKey }, owner, spec))).toBe(
      ErrorCode.PayloadCorrupt,
    );
    expect(await code(openJobBox({ ...box, ciphertext: new Uint8Array(8) }, owner, spec))).toBe(
      ErrorCode.PayloadCorrupt,
    );
    expect(await code(openJobBox({ ...box, encapsulatedKey: new Uint8Array(31) }, owner, spec))).toBe(
      ErrorCode.PayloadCorrupt,
    );
    expect(await code(sealJobBox(Uint8Array.of(1), new Uint8Array(31), spec))).toBe(ErrorCode.SchemaMismatch);
    // An all-zero X25519 key is a low-order point HPKE refuses.
    expect(await code(sealJobBox(Uint8Array.of(1), new Uint8Array(32), spec))).toBe(ErrorCode.SchemaMismatch);
    const purpose = { ...spec, purpose: 'audit' } as unknown as JobBoxContext;
    expect(await code(sealJobBox(Uint8Array.of(1), owner.publicKey, purpose))).toBe(ErrorCode.BadConfig);
  });

  it('carries results far larger than a transaction, up to its limit', async () => {
    const large = randomBytes(20 * 1024 * 1024);
    const box = await sealJobBox(large, requester.publicKey, result);
    expect(box.ciphertext.length).toBe(large.length + 16);
    expect(Buffer.from(await openJobBox(box, requester, result)).equals(large)).toBe(true);
    expect(
      await code(sealJobBox(new Uint8Array(jobBoxPlaintextBytesMax + 1), requester.publicKey, result)),
    ).toBe(ErrorCode.Oversize);
  });
});
