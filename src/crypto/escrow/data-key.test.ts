import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { generateSigningKey } from '../keys.js';
import { SigningDomain } from '../sign.js';
import { decryptPayload, encryptPayload } from '../envelope/envelope.js';
import type { DecryptPayloadOptions } from '../envelope/envelope.js';
import { decodeEnvelopeHeader, encodeEnvelopeHeader, keyCommitment } from '../envelope/header.js';
import type { EnvelopeHeader } from '../envelope/header.js';
import { generateEncryptionKey } from '../envelope/keys.js';
import { MemorySink, drain, encryptToMemory, piecewise } from '../envelope/testing/streams.js';
import { cutChunks, escrowBlobPrefix, splitEscrowBlob } from './blob.js';
import { combineShares, splitSecret, verifyShare } from './feldman.js';
import { escrowKeys } from './keys.js';
import { openShare, sealShare } from './share-box.js';

/*
 * The envelope with a given data key (the escrow path of DESIGN §7), and the whole escrow round
 * trip of a payload through the pure functions: share, derive, encrypt, frame, cut, then rebuild
 * the key from k released shares, rejoin, split and decrypt without the sender.
 */

const network = SigningDomain.of('escrow-testnet');
const sender = network.signer(generateSigningKey());
const recipientKey = generateEncryptionKey();
const chunkBytes = 64;

function seal(plaintext: Uint8Array, dataKey: Uint8Array) {
  return encryptToMemory({
    plaintext,
    signer: sender,
    senderOrgId: 'org-a',
    recipients: [{ orgId: 'org-r', publicKey: recipientKey.publicKey }],
    payloadId: 'message-1',
    contentType: 'application/octet-stream',
    chunkBytes,
    dataKey,
    pieces: [13, 50],
  });
}

async function open(
  header: EnvelopeHeader,
  ciphertext: Uint8Array | AsyncIterable<Uint8Array>,
  access: { dataKey: Uint8Array } | { recipientOrgId: string; recipientKey: typeof recipientKey },
) {
  const options: DecryptPayloadOptions = {
    header,
    ciphertext: ciphertext instanceof Uint8Array ? piecewise(ciphertext, [29]) : ciphertext,
    senderPublicKey: sender.publicKey,
    signing: network,
    expectedRoot: header.merkleRoot,
    ...access,
  };
  const { output, error } = await drain(decryptPayload(options));
  if (error !== undefined && !isLedgerbusError(error)) throw error;
  return { output, error };
}

describe('envelope with a given data key', () => {
  it('decrypts with the data key and still with a recipient key; the caller key is left intact', async () => {
    const dataKey = new Uint8Array(randomBytes(32));
    const copy = Uint8Array.from(dataKey);
    const plaintext = randomBytes(5 * chunkBytes + 3);
    const { header, ciphertext } = await seal(plaintext, dataKey);
    expect(dataKey).toEqual(copy);
    expect(header.keyCommitment).toEqual(keyCommitment(dataKey));

    const withKey = await open(header, ciphertext, { dataKey });
    expect(withKey.error).toBeUndefined();
    expect(withKey.output.equals(plaintext)).toBe(true);
    const asRecipient = await open(header, ciphertext, { recipientOrgId: 'org-r', recipientKey });
    expect(asRecipient.error).toBeUndefined();
    expect(asRecipient.output.equals(plaintext)).toBe(true);
  });

  it('releases nothing under a wrong data key, and refuses a key of the wrong length', async () => {
    const dataKey = new Uint8Array(randomBytes(32));
    const { header, ciphertext } = await seal(randomBytes(200), dataKey);
    const wrong = await open(header, ciphertext, { dataKey: new Uint8Array(randomBytes(32)) });
    expect(wrong.error?.code).toBe(ErrorCode.BadSignature);
    // Refused by the key commitment, before any chunk is read (not only by the first chunk's tag).
    expect(wrong.error?.message).toMatch(/not the key the sender .* committed to/);
    expect(wrong.output.length).toBe(0);
    const short = await open(header, ciphertext, { dataKey: dataKey.subarray(1) });
    expect(short.error?.code).toBe(ErrorCode.BadConfig);
  });

  it('refuses to encrypt with a data key that is not 32 bytes, before writing anything', async () => {
    const sink = new MemorySink();
    const failure = await encryptPayload({
      source: piecewise(randomBytes(10)),
      sink,
      signer: sender,
      senderOrgId: 'org-a',
      recipients: [{ orgId: 'org-r', publicKey: recipientKey.publicKey }],
      payloadId: 'message-1',
      contentType: 'application/octet-stream',
      dataKey: new Uint8Array(31),
    }).catch((error: unknown) => error);
    expect(isLedgerbusError(failure, ErrorCode.BadConfig)).toBe(true);
    expect(sink.pieces).toHaveLength(0);
    expect(sink.destroyed).toBe(true);
  });
});

describe('escrow round trip through the pure functions', () => {
  it('rebuilds the key from k released shares and decrypts the rejoined chunks, without the sender', async () => {
    const context = { network: network.network, sender: 'org-a', id: 'message-1' };
    const holders = [generateEncryptionKey(), generateEncryptionKey(), generateEncryptionKey()];
    const auditor = generateEncryptionKey();

    // Sender: share a secret 2-of-3, derive the data key, encrypt, frame, cut.
    const sharing = splitSecret(2, 3);
    const sealedShares = await Promise.all(
      sharing.shares.map((share, index) =>
        sealShare(share.value, (holders[index] as typeof auditor).publicKey, {
          ...context,
          holder: `holder-${index}`,
          purpose: 'escrow',
        }),
      ),
    );
    const plaintext = randomBytes(7 * chunkBytes + 11);
    const { header, ciphertext } = await seal(plaintext, escrowKeys(sharing.secret, context).dataKey);
    const blob = Readable.from([Buffer.from(escrowBlobPrefix(encodeEnvelopeHeader(header))), ciphertext]);
    const chunks: Uint8Array[] = [];
    for await (const chunk of cutChunks(blob, 100)) chunks.push(chunk);

    // Holders 0 and 2 open their shares, check them and release them to the auditor.
    const released = [];
    for (const index of [2, 0]) {
      const holderContext = { ...context, holder: `holder-${index}`, purpose: 'escrow' as const };
      const value = await openShare(
        sealedShares[index] as (typeof sealedShares)[0],
        holders[index] as typeof auditor,
        holderContext,
      );
      expect(verifyShare(sharing.commitments, { index: index + 1, value })).toBe(true);
      const releaseContext = {
        ...context,
        holder: 'auditor',
        purpose: 'release' as const,
        requestId: 'request-1',
      };
      released.push({ index: index + 1, sealed: await sealShare(value, auditor.publicKey, releaseContext) });
    }

    // Auditor: open and verify the released shares, rebuild, rejoin, split, decrypt.
    const shares = [];
    for (const { index, sealed } of released) {
      const value = await openShare(sealed, auditor, {
        ...context,
        holder: 'auditor',
        purpose: 'release',
        requestId: 'request-1',
      });
      expect(verifyShare(sharing.commitments, { index, value })).toBe(true);
      shares.push({ index, value });
    }
    const { dataKey } = escrowKeys(combineShares(shares, 2), context);
    const split = await splitEscrowBlob(Readable.from(chunks.map((chunk) => Buffer.from(chunk))));
    const { output, error } = await open(decodeEnvelopeHeader(split.header), split.ciphertext, { dataKey });
    expect(error).toBeUndefined();
    expect(output.equals(plaintext)).toBe(true);
  });
});
