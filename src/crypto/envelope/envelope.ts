import { Buffer } from 'node:buffer';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { bytesEqual } from '../../codec/bytes.js';
import { hashBytes, sha256 } from '../hash.js';
import type { Signer, SigningDomain } from '../sign.js';
import {
  chunkBytesMax,
  chunkBytesMin,
  chunkCountMax,
  chunkHashAt,
  chunkHashesRoot,
  chunkPlaintextBytes,
  chunkTagBytes,
  contextHash,
  defaultChunkBytes,
  envelopeVersion,
  keyCommitment,
  recipientsMax,
  signEnvelopeHeader,
  verifyEnvelopeHeader,
} from './header.js';
import type { EnvelopeContext, EnvelopeHeader } from './header.js';
import type { EncryptionKeyPair } from './keys.js';
import { dataKeyBytes, unwrapDataKey, wrapDataKey } from './wrap.js';
import type { WrapTarget } from './wrap.js';

/*
 * Chunk encryption (DESIGN §4). Each payload gets its own 256-bit data key — fresh random, or for
 * escrow topics derived from that message's own escrowed secret (DESIGN §7) — so the nonce can
 * simply be the chunk index (4 zero bytes || uint64-BE index, as TLS 1.3 derives nonces from its
 * sequence number): an index is never used twice under one key. Each chunk's AAD is
 *
 *   contextHash (32) || uint64-BE chunk index (8) || last-chunk flag (1)
 *
 * so a chunk moved to another index, another payload, or promoted to/demoted from last fails its tag,
 * and a stream cut after a non-last chunk is detectably incomplete. On top of the tags, every
 * ciphertext chunk must hash to its entry in the signed chunk hash list (whose Merkle root is on
 * chain), which is what protects one recipient from another: all recipients know the data key and
 * could forge valid tags, but none can forge the sender's signature over the hashes.
 *
 * Wire and storage format of the ciphertext: the ciphertext chunks (AES-GCM output || 16-byte tag)
 * concatenated, nothing else. Chunk boundaries follow from chunkBytes and plaintextBytes in the header.
 */

/** The sender's side of a payload transfer. */
export interface EncryptPayloadOptions {
  /** The plaintext. Read once, with backpressure; never held whole. */
  readonly source: Readable | AsyncIterable<Uint8Array>;
  /**
   * Where the ciphertext goes (e.g. the connector's storage write stream). Written with
   * backpressure and ended when the last chunk is written; destroyed if encryption fails.
   */
  readonly sink: Writable;
  /** The sender's connector key, bound to the network the payload is sent in; signs the header. */
  readonly signer: Signer;
  readonly senderOrgId: string;
  /** Orgs that may decrypt, each with its registered X25519 public key. Org ids must be distinct. */
  readonly recipients: readonly WrapTarget[];
  readonly payloadId: string;
  readonly contentType: string;
  /** Plaintext bytes per chunk, in [chunkBytesMin, chunkBytesMax]; default 1 MiB. */
  readonly chunkBytes?: number;
  /**
   * The 32-byte data key to use instead of a fresh random one: escrow topics derive it from the
   * message's escrowed secret (`escrowKeys` in crypto/escrow), so an auditor who rebuilds the secret
   * can decrypt. It MUST be used for this one payload only — chunk nonces are chunk indexes, so a
   * key used twice reuses nonces. It is copied; the caller's array is left as it is.
   */
  readonly dataKey?: Uint8Array;
}

/** What `encryptPayload` resolves to once the sink has finished. */
export interface EncryptedPayload {
  /** The signed header; its `merkleRoot` is what the publish transaction records on-chain. */
  readonly header: EnvelopeHeader;
  /** Bytes written to the sink: plaintextBytes + 16 per chunk. */
  readonly ciphertextBytes: number;
}

/** Decrypting as a recipient: the data key is unwrapped from the header's entry for the org. */
export interface RecipientKeyAccess {
  readonly recipientOrgId: string;
  readonly recipientKey: EncryptionKeyPair;
  readonly dataKey?: never;
}

/**
 * Decrypting with the data key itself, e.g. one an auditor rebuilt from escrowed shares; no
 * recipient entry is needed. The key is checked against the header's key commitment.
 */
export interface DataKeyAccess {
  readonly dataKey: Uint8Array;
  readonly recipientOrgId?: never;
  readonly recipientKey?: never;
}

/** A reader's side of a payload transfer: a recipient's key, or the data key (see the two access types). */
export type DecryptPayloadOptions = DecryptPayloadSource & (RecipientKeyAccess | DataKeyAccess);

/** What every reader passes, however it gets the data key. */
export interface DecryptPayloadSource {
  readonly header: EnvelopeHeader;
  /** The ciphertext exactly as the sender's sink received it. Read with backpressure. */
  readonly ciphertext: Readable | AsyncIterable<Uint8Array>;
  /** The registry's Ed25519 key of `header.senderOrgId`. */
  readonly senderPublicKey: Uint8Array;
  /** The recipient's network: a header signed for another network is refused (BadSignature). */
  readonly signing: SigningDomain;
  /** The Merkle root recorded on-chain for this message; strongly recommended. */
  readonly expectedRoot?: Uint8Array;
  /** The message id recorded on-chain. */
  readonly expectedPayloadId?: string;
  /** The sender org recorded on-chain. */
  readonly expectedSenderOrgId?: string;
}

/**
 * `plaintext`, held whole, encrypted as `encryptPayload` does into a buffer: for payloads small
 * enough to keep in memory (a connector's payloads carried inside their publish).
 */
export async function encryptPayloadToBytes(
  options: Omit<EncryptPayloadOptions, 'source' | 'sink'>,
  plaintext: Uint8Array,
): Promise<EncryptedPayload & { readonly ciphertext: Buffer }> {
  const parts: Buffer[] = [];
  const encrypted = await encryptPayload({
    ...options,
    source: Readable.from([plaintext], { objectMode: false }),
    sink: new Writable({
      write(part: Buffer, _encoding, callback) {
        parts.push(part);
        callback();
      },
    }),
  });
  return { ...encrypted, ciphertext: Buffer.concat(parts) };
}

/**
 * Encrypts `source` for `recipients` and writes the ciphertext to `sink`; resolves with the signed
 * header once the sink has finished (flushed). The header depends on every ciphertext chunk (hashes
 * and Merkle root), so it can only exist after the last byte is written: store the ciphertext, then
 * publish the header's root. This is the two-pass shape of DESIGN §3 steps 1–4 (encrypt and store,
 * then publish metadata); no trailer is needed in the ciphertext stream.
 *
 * Throws (rejects with) LedgerbusError: BadConfig if `chunkBytes`, `recipients` or `dataKey` are
 * invalid (the message names the field), SchemaMismatch if an id, content type or recipient public
 * key is malformed — all before anything is written — and Oversize if the payload needs more than
 * `chunkCountMax` chunks. Errors of `source` or `sink` pass through unchanged; on any failure the
 * sink (and `source`, if a stream) is destroyed and what the sink received must be discarded.
 */
export async function encryptPayload(options: EncryptPayloadOptions): Promise<EncryptedPayload> {
  const chunkBytes = options.chunkBytes ?? defaultChunkBytes;
  try {
    validateEncryptOptions(options, chunkBytes);
  } catch (error) {
    destroyStream(options.source);
    options.sink.destroy();
    throw error;
  }
  // A copy even when given: it is zeroed below, and the caller's key is not ours to wipe.
  const dataKey =
    options.dataKey === undefined
      ? new Uint8Array(randomBytes(dataKeyBytes))
      : Uint8Array.from(options.dataKey);
  try {
    const keyContext = { payloadId: options.payloadId, senderOrgId: options.senderOrgId };
    const recipients = [];
    for (const target of options.recipients) recipients.push(await wrapDataKey(dataKey, keyContext, target));
    const context: EnvelopeContext = {
      version: envelopeVersion,
      payloadId: options.payloadId,
      senderOrgId: options.senderOrgId,
      contentType: options.contentType,
      chunkBytes,
      keyCommitment: keyCommitment(dataKey),
      recipients,
    };
    // Validates every context field (SchemaMismatch naming it) before a single byte is written.
    const binding = contextHash(context);
    const sealer = new ChunkSealer(createSecretKey(dataKey), binding, chunkBytes);
    await pipeline(options.source, (source: AsyncIterable<unknown>) => sealer.seal(source), options.sink);
    const chunkHashes = Buffer.concat(sealer.chunkHashes);
    const header = signEnvelopeHeader(options.signer, {
      ...context,
      chunkCount: sealer.chunkHashes.length,
      plaintextBytes: sealer.plaintextBytes,
      chunkHashes: new Uint8Array(chunkHashes.buffer, chunkHashes.byteOffset, chunkHashes.byteLength),
      merkleRoot: chunkHashesRoot(chunkHashes),
    });
    return { header, ciphertextBytes: sealer.plaintextBytes + sealer.chunkHashes.length * chunkTagBytes };
  } catch (error) {
    destroyStream(options.source);
    options.sink.destroy();
    throw error;
  } finally {
    dataKey.fill(0);
  }
}

/**
 * A stream of the plaintext of the payload `header` describes, read from `ciphertext`.
 *
 * Order of checks: the header (schema, sender signature, Merkle root over the chunk hashes, and the
 * expected root/id/sender) and the data key (unwrapped with `recipientKey`, or the given `dataKey`;
 * either way against the header's key commitment) are checked before anything is read; then each
 * chunk is hashed and compared with its signed hash, and only then decrypted, and its plaintext is
 * released only after its GCM tag verifies. The last chunk is held back until `ciphertext` has
 * ended, so appended bytes fail the whole stream. A consumer must still treat the stream as valid
 * only once it ends without an error: a truncated stream fails only after the chunks before the cut
 * were released.
 *
 * Every failure is an 'error' on the returned stream (nothing throws synchronously), a LedgerbusError:
 * SchemaMismatch (malformed header), BadSignature (header not signed by `senderPublicKey`, unexpected
 * payload id or sender, data key does not open with `recipientKey`, data key does not match its
 * commitment, or a chunk's tag fails), BadConfig (a given `dataKey` is not 32 bytes),
 * BadCertificate (`recipientOrgId` is not a recipient),
 * RootMismatch (root does not fit the chunk hashes or differs from `expectedRoot`), BadProof (a
 * chunk differs from its signed hash: tampered, reordered or from another payload), and
 * MalformedEncoding (the ciphertext ends early or has bytes after the last chunk).
 * Errors of `ciphertext` itself pass through unchanged.
 */
export function decryptPayload(options: DecryptPayloadOptions): Readable {
  const plaintext = Readable.from(openChunks(options), { objectMode: false });
  // However the output ends (error before the input was touched, or a consumer that gives up),
  // release the input too, so a socket or file descriptor is never left open.
  plaintext.once('close', () => destroyStream(options.ciphertext));
  return plaintext;
}

async function* openChunks(options: DecryptPayloadOptions): AsyncGenerator<Buffer> {
  const { header } = options;
  verifyEnvelopeHeader(header, {
    signing: options.signing,
    senderPublicKey: options.senderPublicKey,
    expected: {
      ...(options.expectedRoot === undefined ? {} : { root: options.expectedRoot }),
      ...(options.expectedPayloadId === undefined ? {} : { payloadId: options.expectedPayloadId }),
      ...(options.expectedSenderOrgId === undefined ? {} : { senderOrgId: options.expectedSenderOrgId }),
    },
  });
  const key = options.dataKey === undefined ? await unwrappedKey(options) : givenKey(header, options.dataKey);
  yield* new ChunkOpener(key, contextHash(header), header).open(options.ciphertext);
}

/** The data key wrapped for the recipient, checked against the header's commitment. */
async function unwrappedKey(options: DecryptPayloadSource & RecipientKeyAccess): Promise<KeyObject> {
  const { header } = options;
  const recipient = header.recipients.find((entry) => entry.orgId === options.recipientOrgId);
  if (recipient === undefined) {
    throw new LedgerbusError(
      ErrorCode.BadCertificate,
      `payload ${header.payloadId} is not addressed to org ${options.recipientOrgId}`,
    );
  }
  const keyContext = { payloadId: header.payloadId, senderOrgId: header.senderOrgId };
  const dataKey = await unwrapDataKey(keyContext, recipient, options.recipientKey);
  try {
    if (!timingSafeEqual(keyCommitment(dataKey), header.keyCommitment)) {
      throw new LedgerbusError(
        ErrorCode.BadSignature,
        `the data key wrapped for org ${recipient.orgId} does not match the key the sender committed to`,
      );
    }
    return createSecretKey(dataKey);
  } finally {
    dataKey.fill(0);
  }
}

/** A data key the reader already has (e.g. rebuilt from escrowed shares), checked against the commitment. */
function givenKey(header: EnvelopeHeader, dataKey: Uint8Array): KeyObject {
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== dataKeyBytes) {
    throw new LedgerbusError(ErrorCode.BadConfig, `dataKey must be ${dataKeyBytes} bytes`);
  }
  if (!timingSafeEqual(keyCommitment(dataKey), header.keyCommitment)) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the given data key is not the key the sender of payload ${header.payloadId} committed to`,
    );
  }
  return createSecretKey(dataKey);
}

function validateEncryptOptions(options: EncryptPayloadOptions, chunkBytes: number): void {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < chunkBytesMin || chunkBytes > chunkBytesMax) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `chunkBytes must be an integer from ${chunkBytesMin} to ${chunkBytesMax}, got ${String(chunkBytes)}`,
    );
  }
  const count = options.recipients.length;
  if (count < 1 || count > recipientsMax) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `recipients must list 1 to ${recipientsMax} orgs, got ${count}`,
    );
  }
  const orgIds = new Set(options.recipients.map((recipient) => recipient.orgId));
  if (orgIds.size !== count) {
    throw new LedgerbusError(ErrorCode.BadConfig, 'recipients must name each org at most once');
  }
  const { dataKey } = options;
  if (dataKey !== undefined && (!(dataKey instanceof Uint8Array) || dataKey.length !== dataKeyBytes)) {
    throw new LedgerbusError(ErrorCode.BadConfig, `dataKey must be ${dataKeyBytes} bytes when given`);
  }
}

function destroyStream(stream: Readable | AsyncIterable<Uint8Array>): void {
  if (stream instanceof Readable && !stream.destroyed) stream.destroy();
}

function chunkNonce(index: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(index), 4);
  return nonce;
}

function chunkAad(binding: Uint8Array, index: number, last: boolean): Buffer {
  const aad = Buffer.alloc(hashBytes + 9);
  aad.set(binding, 0);
  aad.writeBigUInt64BE(BigInt(index), hashBytes);
  aad[hashBytes + 8] = last ? 1 : 0;
  return aad;
}

function asBytes(piece: unknown): Uint8Array {
  // A string here means the caller set an encoding on the stream: a bug, not bad input.
  assert(piece instanceof Uint8Array, 'payload streams must yield bytes (no encoding set)');
  return piece;
}

/** What a sealer's plaintext buffer starts at; it doubles up to the chunk size as data arrives. */
const initialSealBufferBytes = 64 * 1024;

/** Cuts a plaintext stream into chunks, seals them, and records each ciphertext chunk's hash. */
class ChunkSealer {
  readonly chunkHashes: Uint8Array[] = [];
  plaintextBytes = 0;

  constructor(
    private readonly key: KeyObject,
    private readonly binding: Uint8Array,
    private readonly chunkBytes: number,
  ) {}

  async *seal(source: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
    // One reused plaintext buffer. A full chunk is sealed only when more data arrives, because
    // whether it is the last chunk (a bit in its AAD) is not known before. The buffer starts small
    // and grows to a whole chunk only if the payload is that large: a small payload (most of them)
    // must not cost a chunk-sized allocation and wipe (1 MiB by default) of its own.
    let pending = Buffer.allocUnsafe(Math.min(this.chunkBytes, initialSealBufferBytes));
    let filled = 0;
    try {
      for await (const piece of source) {
        const bytes = asBytes(piece);
        for (let offset = 0; offset < bytes.length;) {
          if (filled === this.chunkBytes) {
            yield* this.sealChunk(pending, false);
            filled = 0;
          }
          if (filled === pending.length) {
            const larger = Buffer.allocUnsafe(Math.min(this.chunkBytes, pending.length * 2));
            pending.copy(larger, 0, 0, filled);
            pending.fill(0);
            pending = larger;
          }
          const take = Math.min(pending.length - filled, bytes.length - offset);
          pending.set(bytes.subarray(offset, offset + take), filled);
          filled += take;
          offset += take;
          this.plaintextBytes += take;
        }
      }
      yield* this.sealChunk(pending.subarray(0, filled), true);
    } finally {
      pending.fill(0);
    }
  }

  private sealChunk(plaintext: Uint8Array, last: boolean): [Buffer, Buffer] {
    const index = this.chunkHashes.length;
    if (index >= chunkCountMax) {
      throw new LedgerbusError(
        ErrorCode.Oversize,
        `payload needs more than ${chunkCountMax} chunks of ${this.chunkBytes} bytes; use larger chunks`,
      );
    }
    const cipher = createCipheriv('aes-256-gcm', this.key, chunkNonce(index));
    cipher.setAAD(chunkAad(this.binding, index, last));
    // Body and tail go out as two writes rather than one concatenated copy of the chunk.
    const body = cipher.update(plaintext);
    const tail = Buffer.concat([cipher.final(), cipher.getAuthTag()]);
    this.chunkHashes.push(createHash('sha256').update(body).update(tail).digest());
    return [body, tail];
  }
}

/** Reassembles ciphertext chunks from arbitrary stream pieces, verifies, then decrypts each. */
class ChunkOpener {
  constructor(
    private readonly key: KeyObject,
    private readonly binding: Uint8Array,
    private readonly header: EnvelopeHeader,
  ) {}

  async *open(ciphertext: Readable | AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    const { header } = this;
    let index = 0;
    let expected = this.chunkLength(0);
    // Chunk 0 is the longest one (only the last may be shorter): a small payload's buffer is its size.
    const buffer = Buffer.allocUnsafe(expected);
    let filled = 0;
    let last: Buffer | undefined;
    for await (const piece of ciphertext) {
      const bytes = asBytes(piece);
      for (let offset = 0; offset < bytes.length;) {
        if (last !== undefined) {
          throw new LedgerbusError(
            ErrorCode.MalformedEncoding,
            `payload ${header.payloadId}: ciphertext continues after its last chunk`,
          );
        }
        const take = Math.min(expected - filled, bytes.length - offset);
        buffer.set(bytes.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled < expected) continue;
        const plaintext = this.openChunk(buffer.subarray(0, expected), index);
        index += 1;
        filled = 0;
        if (index === header.chunkCount) {
          // Held back until the stream ends, so appended data fails before the last chunk is out.
          last = plaintext;
        } else {
          expected = this.chunkLength(index);
          yield plaintext;
        }
      }
    }
    if (last === undefined) {
      throw new LedgerbusError(
        ErrorCode.MalformedEncoding,
        `payload ${header.payloadId}: ciphertext ends in chunk ${index} of ${header.chunkCount}`,
      );
    }
    yield last;
  }

  private chunkLength(index: number): number {
    return chunkPlaintextBytes(this.header, index) + chunkTagBytes;
  }

  private openChunk(chunk: Buffer, index: number): Buffer {
    const { header } = this;
    if (!bytesEqual(sha256(chunk), chunkHashAt(header, index))) {
      throw new LedgerbusError(
        ErrorCode.BadProof,
        `payload ${header.payloadId}: chunk ${index} does not match its signed hash`,
      );
    }
    const tagOffset = chunk.length - chunkTagBytes;
    const decipher = createDecipheriv('aes-256-gcm', this.key, chunkNonce(index));
    decipher.setAAD(chunkAad(this.binding, index, index === header.chunkCount - 1));
    decipher.setAuthTag(chunk.subarray(tagOffset));
    // update() returns plaintext before the tag is checked; nothing leaves until final() succeeds.
    const body = decipher.update(chunk.subarray(0, tagOffset));
    let rest: Buffer;
    try {
      rest = decipher.final();
    } catch (error) {
      body.fill(0);
      throw new LedgerbusError(
        ErrorCode.BadSignature,
        `payload ${header.payloadId}: chunk ${index} fails authentication under the data key`,
        { cause: error },
      );
    }
    assert(rest.length === 0, 'AES-GCM final() checks the tag and returns no plaintext');
    return body;
  }
}
