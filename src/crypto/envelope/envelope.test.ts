import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { hashBytes, sha256 } from '../hash.js';
import { generateSigningKey } from '../keys.js';
import { SigningDomain } from '../sign.js';
import { merkleRoot } from '../merkle.js';
import { decryptPayload, encryptPayload } from './envelope.js';
import { chunkHashesRoot, decodeEnvelopeHeader, encodeEnvelopeHeader, signEnvelopeHeader } from './header.js';
import type { EnvelopeHeader } from './header.js';
import { generateEncryptionKey } from './keys.js';
import type { EncryptionKeyPair } from './keys.js';
import { MemorySink, decryptFromMemory, drain, encryptToMemory, piecewise } from './testing/streams.js';
import { wrapDataKey } from './wrap.js';

const network = SigningDomain.of('envelope-testnet');
const senderKey = generateSigningKey();
const sender = network.signer(senderKey);
const impostor = network.signer(generateSigningKey());
const orgKeys: Record<'alpha' | 'beta' | 'gamma' | 'outsider', EncryptionKeyPair> = {
  alpha: generateEncryptionKey(),
  beta: generateEncryptionKey(),
  gamma: generateEncryptionKey(),
  outsider: generateEncryptionKey(),
};
const recipients = (['alpha', 'beta', 'gamma'] as const).map((orgId) => ({
  orgId,
  publicKey: orgKeys[orgId].publicKey,
}));

const chunkBytes = 64;
const tag = 16;

function seal(
  plaintext: Uint8Array,
  options: { chunkBytes?: number; pieces?: number[]; payloadId?: string } = {},
) {
  return encryptToMemory({
    plaintext,
    signer: sender,
    senderOrgId: 'sender',
    recipients,
    payloadId: options.payloadId ?? 'payload-1',
    contentType: 'application/octet-stream',
    chunkBytes: options.chunkBytes ?? chunkBytes,
    ...(options.pieces === undefined ? {} : { pieces: options.pieces }),
  });
}

function open(
  header: EnvelopeHeader,
  ciphertext: Uint8Array,
  options: {
    orgId?: 'alpha' | 'beta' | 'gamma' | 'outsider';
    key?: EncryptionKeyPair;
    senderPublicKey?: Uint8Array;
    signing?: SigningDomain;
    expectedRoot?: Uint8Array;
    pieces?: number[];
  } = {},
) {
  const orgId = options.orgId ?? 'alpha';
  return decryptFromMemory({
    header,
    ciphertext,
    recipientOrgId: orgId,
    recipientKey: options.key ?? orgKeys[orgId],
    senderPublicKey: options.senderPublicKey ?? sender.publicKey,
    signing: options.signing ?? network,
    ...(options.expectedRoot === undefined ? {} : { expectedRoot: options.expectedRoot }),
    ...(options.pieces === undefined ? {} : { pieces: options.pieces }),
  });
}

/** Ciphertext chunk boundaries of a payload encrypted with `chunkBytes`-byte chunks. */
function splitChunks(header: EnvelopeHeader, ciphertext: Uint8Array): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0, index = 0; index < header.chunkCount; index++) {
    const length =
      (index < header.chunkCount - 1
        ? header.chunkBytes
        : header.plaintextBytes - (header.chunkCount - 1) * header.chunkBytes) + tag;
    chunks.push(Buffer.from(ciphertext.subarray(offset, offset + length)));
    offset += length;
  }
  return chunks;
}

/** The sender re-signs a header it altered: only the layers below the signature can catch it. */
function resign(header: EnvelopeHeader, changes: Partial<EnvelopeHeader>): EnvelopeHeader {
  const { signature: _signature, ...unsigned } = { ...header, ...changes };
  return signEnvelopeHeader(sender, unsigned);
}

function hashesOf(chunks: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(chunks.map((chunk) => sha256(chunk))));
}

describe('payload envelope round trips', () => {
  const sizes = [0, 1, chunkBytes - 1, chunkBytes, chunkBytes + 1, 5 * chunkBytes + 7, 6 * chunkBytes];

  it.each(sizes)('round-trips %i bytes for every recipient', async (size) => {
    const plaintext = randomBytes(size);
    const { header, ciphertext } = await seal(plaintext, { pieces: [7, 1, 100] });
    expect(header.plaintextBytes).toBe(size);
    expect(header.chunkCount).toBe(Math.max(1, Math.ceil(size / chunkBytes)));
    expect(ciphertext.length).toBe(size + header.chunkCount * tag);
    for (const orgId of ['alpha', 'beta', 'gamma'] as const) {
      const { output, error } = await open(header, ciphertext, { orgId, expectedRoot: header.merkleRoot });
      expect(error).toBeUndefined();
      expect(output.equals(plaintext)).toBe(true);
    }
  });

  // The sealer's buffer starts at 64 KiB and doubles up to the chunk size: sizes around each step,
  // with a chunk size that is no power-of-two multiple of the start.
  it.each([1024, 64 * 1024, 64 * 1024 + 1, 200 * 1024, 200 * 1024 + 1, 450 * 1024 + 3])(
    'round-trips %i bytes in chunks of 200 KiB, fed in uneven pieces',
    async (size) => {
      const plaintext = randomBytes(size);
      const big = 200 * 1024;
      const { header, ciphertext } = await seal(plaintext, { chunkBytes: big, pieces: [7, 70_000, 100] });
      expect(header.chunkCount).toBe(Math.max(1, Math.ceil(size / big)));
      expect(ciphertext.length).toBe(size + header.chunkCount * tag);
      const { output, error } = await open(header, ciphertext, { orgId: 'beta', pieces: [5000, 3] });
      expect(error).toBeUndefined();
      expect(output.equals(plaintext)).toBe(true);
    },
  );

  it('puts on chain the RFC 9162 root over the SHA-256 of each ciphertext chunk', async () => {
    const { header, ciphertext } = await seal(randomBytes(3 * chunkBytes + 5));
    const chunkHashes = splitChunks(header, ciphertext).map((chunk) => sha256(chunk));
    expect(header.merkleRoot).toEqual(merkleRoot(chunkHashes));
    expect(Buffer.from(header.chunkHashes).equals(Buffer.concat(chunkHashes))).toBe(true);
  });

  it('round-trips any payload, chunk size and stream cutting (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 1500 }),
        fc.integer({ min: 16, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 5 }),
        async (plaintext, size, inPieces, outPieces) => {
          const { header, ciphertext } = await seal(plaintext, { chunkBytes: size, pieces: inPieces });
          const { output, error } = await open(header, ciphertext, { orgId: 'beta', pieces: outPieces });
          expect(error).toBeUndefined();
          expect(output.equals(Buffer.from(plaintext))).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('uses a fresh data key per payload: the same plaintext never gives the same ciphertext', async () => {
    const plaintext = randomBytes(100);
    const first = await seal(plaintext);
    const second = await seal(plaintext);
    expect(first.ciphertext.equals(second.ciphertext)).toBe(false);
    expect(first.header.keyCommitment).not.toEqual(second.header.keyCommitment);
  });

  it('survives an encode/decode of the header, as it would over the wire', async () => {
    const plaintext = randomBytes(200);
    const { header, ciphertext } = await seal(plaintext);
    const decoded = decodeEnvelopeHeader(encodeEnvelopeHeader(header));
    const { output, error } = await open(decoded, ciphertext);
    expect(error).toBeUndefined();
    expect(output.equals(plaintext)).toBe(true);
  });

  it('honours backpressure of a slow sink and a slow reader', async () => {
    const plaintext = randomBytes(40 * chunkBytes);
    const sink = new MemorySink(1);
    const { header } = await encryptPayload({
      source: piecewise(plaintext, [33]),
      sink,
      signer: sender,
      senderOrgId: 'sender',
      recipients,
      payloadId: 'slow',
      contentType: 'text/plain',
      chunkBytes,
    });
    const stream = decryptPayload({
      header,
      ciphertext: piecewise(sink.bytes(), [5]),
      recipientOrgId: 'gamma',
      recipientKey: orgKeys.gamma,
      senderPublicKey: sender.publicKey,
      signing: network,
    });
    const pieces: Buffer[] = [];
    for await (const piece of stream) {
      // A reader slower than the producer: the stream must buffer at most about one chunk ahead.
      expect(stream.readableLength).toBeLessThanOrEqual(2 * chunkBytes);
      pieces.push(piece as Buffer);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(Buffer.concat(pieces).equals(plaintext)).toBe(true);
  });
});

describe('who can decrypt', () => {
  let header: EnvelopeHeader;
  let ciphertext: Buffer;
  beforeAll(async () => {
    ({ header, ciphertext } = await seal(randomBytes(300)));
  });

  it('refuses an org that is not a recipient, and releases the ciphertext stream', async () => {
    const { output, error } = await open(header, ciphertext, { orgId: 'outsider' });
    expect(error?.code).toBe(ErrorCode.BadCertificate);
    expect(output.length).toBe(0);
    const source = piecewise(ciphertext);
    const stream = decryptPayload({
      header,
      ciphertext: source,
      recipientOrgId: 'outsider',
      recipientKey: orgKeys.outsider,
      senderPublicKey: sender.publicKey,
      signing: network,
    });
    expect((await drain(stream)).error).toBeDefined();
    expect(source.destroyed).toBe(true);
  });

  it("refuses a recipient's org id with another org's private key", async () => {
    const { output, error } = await open(header, ciphertext, { orgId: 'alpha', key: orgKeys.outsider });
    expect(error?.code).toBe(ErrorCode.BadSignature);
    expect(output.length).toBe(0);
  });

  it('refuses a header signed by anyone but the claimed sender', async () => {
    const { output, error } = await open(header, ciphertext, { senderPublicKey: impostor.publicKey });
    expect(error?.code).toBe(ErrorCode.BadSignature);
    expect(output.length).toBe(0);
    const forged = { ...header, signature: signEnvelopeHeader(impostor, header).signature };
    expect((await open(forged, ciphertext)).error?.code).toBe(ErrorCode.BadSignature);
  });

  it('refuses a header its sender signed in another network with the same key', async () => {
    const elsewhere = SigningDomain.of('envelope-testnet-2');
    const { output, error } = await open(header, ciphertext, { signing: elsewhere });
    expect(error?.code).toBe(ErrorCode.BadSignature);
    expect(error?.message).toMatch(/envelope-testnet-2/);
    expect(output.length).toBe(0);
    // And the other way: the same key signing for the other network is refused here.
    const { signature: _signature, ...unsigned } = header;
    const theirs = signEnvelopeHeader(elsewhere.signer(senderKey), unsigned);
    expect((await open(theirs, ciphertext, { signing: elsewhere })).error).toBeUndefined();
    expect((await open(theirs, ciphertext)).error?.code).toBe(ErrorCode.BadSignature);
  });

  it('refuses a header whose root is not the one on chain', async () => {
    const { error } = await open(header, ciphertext, { expectedRoot: sha256(new Uint8Array(1)) });
    expect(error?.code).toBe(ErrorCode.RootMismatch);
  });

  it('refuses a signed header whose root does not fit its chunk hashes', async () => {
    const { error } = await open(resign(header, { merkleRoot: new Uint8Array(hashBytes) }), ciphertext);
    expect(error?.code).toBe(ErrorCode.RootMismatch);
  });

  it('refuses a sender who wraps different data keys for different recipients', async () => {
    // Without the key commitment, AES-GCM (not key-committing) would let a malicious sender show
    // two recipients different plaintexts under one signed root.
    const otherKey = new Uint8Array(randomBytes(32));
    const rogue = await wrapDataKey(
      otherKey,
      { payloadId: header.payloadId, senderOrgId: 'sender' },
      recipients[1]!,
    );
    const altered = resign(header, {
      recipients: header.recipients.map((entry) => (entry.orgId === 'beta' ? rogue : entry)),
    });
    const { output, error } = await open(altered, ciphertext, { orgId: 'beta' });
    expect(error?.code).toBe(ErrorCode.BadSignature);
    expect(error?.message).toMatch(/committed/);
    expect(output.length).toBe(0);
  });
});

describe('tampering', () => {
  let plaintext: Buffer;
  let header: EnvelopeHeader;
  let ciphertext: Buffer;
  beforeAll(async () => {
    plaintext = randomBytes(4 * chunkBytes + 20);
    ({ header, ciphertext } = await seal(plaintext));
  });

  it('detects one flipped bit anywhere in the ciphertext and releases nothing of that chunk', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: ciphertext.length - 1 }),
        fc.integer({ min: 0, max: 7 }),
        async (position, bit) => {
          const tampered = Buffer.from(ciphertext);
          tampered[position]! ^= 1 << bit;
          const { output, error } = await open(header, tampered);
          expect(error?.code).toBe(ErrorCode.BadProof);
          const badChunk = Math.floor(position / (chunkBytes + tag));
          // Only the chunks before the tampered one were released, and they are genuine.
          expect(output.length).toBe(badChunk * chunkBytes);
          expect(output.equals(plaintext.subarray(0, output.length))).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('detects one flipped bit anywhere in the encoded header', async () => {
    const encoded = encodeEnvelopeHeader(header);
    const random = fc.sample(fc.integer({ min: 0, max: 7 }), { numRuns: encoded.length, seed: 42 });
    const codes = new Set<string>();
    for (let position = 0; position < encoded.length; position++) {
      const tampered = Uint8Array.from(encoded);
      tampered[position]! ^= 1 << random[position]!;
      let decoded: EnvelopeHeader;
      try {
        decoded = decodeEnvelopeHeader(tampered);
      } catch (error) {
        expect(isLedgerbusError(error)).toBe(true);
        codes.add((error as { code: string }).code);
        continue;
      }
      const { output, error } = await open(decoded, ciphertext);
      expect(isLedgerbusError(error), `bit flipped at byte ${position}`).toBe(true);
      codes.add(error!.code);
      expect(output.length).toBe(0);
    }
    expect(codes).toContain(ErrorCode.BadSignature);
  });

  it('detects a flipped bit in any wrapped key or encapsulated key', async () => {
    for (const index of [0, 1, 2]) {
      for (const field of ['wrappedKey', 'encapsulatedKey'] as const) {
        const entries = header.recipients.map((entry, position) => {
          if (position !== index) return entry;
          const bytes = Uint8Array.from(entry[field]);
          bytes[5]! ^= 0x10;
          return { ...entry, [field]: bytes };
        });
        const orgId = header.recipients[index]!.orgId as 'alpha' | 'beta' | 'gamma';
        // As delivered: the header signature catches it.
        expect((await open({ ...header, recipients: entries }, ciphertext, { orgId })).error?.code).toBe(
          ErrorCode.BadSignature,
        );
        // Even signed by the sender, HPKE's tag catches it.
        const signed = await open(resign(header, { recipients: entries }), ciphertext, { orgId });
        expect(signed.error?.code).toBe(ErrorCode.BadSignature);
        expect(signed.output.length).toBe(0);
      }
    }
  });

  it('detects a stream truncated anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: ciphertext.length - 1 }), async (length) => {
        const { output, error } = await open(header, ciphertext.subarray(0, length));
        expect(error?.code).toBe(ErrorCode.MalformedEncoding);
        expect(output.length).toBeLessThan(plaintext.length);
        expect(output.equals(plaintext.subarray(0, output.length))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('detects a dropped last chunk, and a header re-signed to match the shorter stream', async () => {
    const chunks = splitChunks(header, ciphertext);
    const shorter = Buffer.concat(chunks.slice(0, -1));
    expect((await open(header, shorter)).error?.code).toBe(ErrorCode.MalformedEncoding);
    // The sender's own signature over a shortened list: the last-chunk flag in the AAD still fails.
    const kept = chunks.slice(0, -1);
    const chunkHashes = hashesOf(kept);
    const resigned = resign(header, {
      chunkCount: kept.length,
      plaintextBytes: kept.length * chunkBytes,
      chunkHashes,
      merkleRoot: chunkHashesRoot(chunkHashes),
    });
    const { output, error } = await open(resigned, shorter);
    expect(error?.code).toBe(ErrorCode.BadSignature);
    expect(output.length).toBe((kept.length - 1) * chunkBytes);
  });

  it('detects appended bytes before releasing the last chunk', async () => {
    for (const extra of [Buffer.alloc(1), randomBytes(chunkBytes + tag), ciphertext.subarray(0, 80)]) {
      const { output, error } = await open(header, Buffer.concat([ciphertext, extra]));
      expect(error?.code).toBe(ErrorCode.MalformedEncoding);
      expect(output.length).toBe((header.chunkCount - 1) * chunkBytes);
    }
  });

  it('detects reordered chunks, and a header re-signed to match the new order', async () => {
    const chunks = splitChunks(header, ciphertext);
    const swapped = [chunks[1]!, chunks[0]!, ...chunks.slice(2)];
    const { output, error } = await open(header, Buffer.concat(swapped));
    expect(error?.code).toBe(ErrorCode.BadProof);
    expect(output.length).toBe(0);
    // The index in the AAD catches a reorder even when the hashes were re-signed in the new order.
    const chunkHashes = hashesOf(swapped);
    const resigned = resign(header, { chunkHashes, merkleRoot: chunkHashesRoot(chunkHashes) });
    const again = await open(resigned, Buffer.concat(swapped));
    expect(again.error?.code).toBe(ErrorCode.BadSignature);
    expect(again.output.length).toBe(0);
  });

  it('detects a chunk taken from another payload', async () => {
    const other = await seal(randomBytes(plaintext.length), { payloadId: 'payload-2' });
    const chunks = splitChunks(header, ciphertext);
    const foreign = splitChunks(other.header, other.ciphertext);
    const mixed = [chunks[0]!, foreign[1]!, ...chunks.slice(2)];
    const { output, error } = await open(header, Buffer.concat(mixed));
    expect(error?.code).toBe(ErrorCode.BadProof);
    expect(output.length).toBe(chunkBytes);
    const chunkHashes = hashesOf(mixed);
    const resigned = resign(header, { chunkHashes, merkleRoot: chunkHashesRoot(chunkHashes) });
    expect((await open(resigned, Buffer.concat(mixed))).error?.code).toBe(ErrorCode.BadSignature);
  });
});

describe('encryption input checks', () => {
  const base = {
    signer: sender,
    senderOrgId: 'sender',
    recipients,
    payloadId: 'p',
    contentType: 'text/plain',
  };

  async function failure(changes: Record<string, unknown>) {
    const sink = new MemorySink();
    const error: unknown = await encryptPayload({
      ...base,
      source: Readable.from([Buffer.from('hello')]),
      sink,
      ...changes,
    }).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(sink.destroyed).toBe(true);
    expect(sink.pieces).toHaveLength(0);
    return error as { code?: string; message: string };
  }

  it('rejects a chunk size out of bounds, naming the field', async () => {
    for (const size of [0, 15, 16 * 1024 * 1024 + 1, 1.5]) {
      const error = await failure({ chunkBytes: size });
      expect(error.code).toBe(ErrorCode.BadConfig);
      expect(error.message).toMatch(/chunkBytes/);
    }
  });

  it('rejects no recipients, duplicate recipients and malformed public keys', async () => {
    expect((await failure({ recipients: [] })).code).toBe(ErrorCode.BadConfig);
    expect((await failure({ recipients: [recipients[0], recipients[0]] })).code).toBe(ErrorCode.BadConfig);
    const short = await failure({ recipients: [{ orgId: 'alpha', publicKey: new Uint8Array(31) }] });
    expect(short.code).toBe(ErrorCode.SchemaMismatch);
    expect(short.message).toMatch(/alpha/);
  });

  it('rejects malformed ids and content types before writing anything', async () => {
    expect((await failure({ payloadId: '' })).code).toBe(ErrorCode.SchemaMismatch);
    expect((await failure({ senderOrgId: 'x'.repeat(129) })).code).toBe(ErrorCode.SchemaMismatch);
    expect((await failure({ contentType: '' })).code).toBe(ErrorCode.SchemaMismatch);
  });

  it('passes a source failure through and destroys the sink', async () => {
    const sink = new MemorySink();
    const source = new Readable({
      read() {
        this.destroy(new Error('disk on fire'));
      },
    });
    await expect(encryptPayload({ ...base, source, sink })).rejects.toThrow('disk on fire');
    expect(sink.destroyed).toBe(true);
  });

  it('decrypt reports a ciphertext source failure unchanged', async () => {
    const { header } = await seal(randomBytes(10));
    const ciphertext = new Readable({
      read() {
        this.destroy(new Error('connection reset'));
      },
    });
    const { error } = await drain(
      decryptPayload({
        header,
        ciphertext,
        recipientOrgId: 'alpha',
        recipientKey: orgKeys.alpha,
        senderPublicKey: sender.publicKey,
        signing: network,
      }),
    );
    expect((error as Error).message).toBe('connection reset');
  });
});
