import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import { bytesEqual } from '../../codec/bytes.js';
import { decodeWith, encodeWith, t } from '../../codec/schema.js';
import { domainHash, hashBytes } from '../hash.js';
import { publicKeyBytes } from '../keys.js';
import { merkleRoot } from '../merkle.js';
import { signatureBytes } from '../sign.js';
import type { Signer, SigningDomain } from '../sign.js';

/*
 * The envelope header. It is built in two stages because the chunk hashes and their Merkle root are
 * known only once the last chunk is encrypted, while every chunk's AAD must already bind the header:
 *
 *   context  = version, payloadId, senderOrgId, contentType, chunkBytes, keyCommitment, recipients
 *              — fixed before the first chunk; `contextHash` of it goes into every chunk's AAD;
 *   summary  = chunkCount, plaintextBytes, chunkHashes, merkleRoot — fixed after the last chunk;
 *   signature = Ed25519 by the sender over context + summary (domain "envelope-header" of the
 *               network, so a header made in one network is no sender's word in another).
 *
 * `chunkHashes` is SHA-256 of each ciphertext chunk, concatenated; `merkleRoot` is the RFC 9162
 * root over those hashes (the chunk hashes are the leaves), and it is what goes on-chain. Carrying
 * the hashes (32 bytes per chunk, like a .torrent's piece list) lets a recipient check every chunk
 * before decrypting it, with no per-chunk proofs on the wire.
 */

/** Signing domain type of envelope headers (see `domainHash`). */
export const envelopeHeaderDomain = 'envelope-header';
/** Domain of the context hash bound into every chunk's AAD. */
export const envelopeContextDomain = 'envelope-context';
/** Domain of the commitment to the data key (see `keyCommitment`). */
export const envelopeKeyCommitmentDomain = 'envelope-key-commitment';

export const envelopeVersion = 1;
/** Default plaintext bytes per chunk. */
export const defaultChunkBytes = 1024 * 1024;
/** Smallest chunk accepted; tiny chunks only make sense in tests, but they are not unsafe. */
export const chunkBytesMin = 16;
/** Largest chunk: the decryptor holds about two chunks at a time, so this bounds its memory. */
export const chunkBytesMax = 16 * 1024 * 1024;
/**
 * Most chunks in one payload: 256 GiB at the default chunk size, 4 TiB at the largest. The header
 * carries 32 bytes per chunk (8 MiB at this bound), and verifying builds the Merkle tree over them.
 */
export const chunkCountMax = 256 * 1024;
/** Most recipients of one payload. */
export const recipientsMax = 256;
/** AES-GCM tag appended to each ciphertext chunk. */
export const chunkTagBytes = 16;
/** HPKE X25519 encapsulated key. */
export const encapsulatedKeyBytes = 32;
/** HPKE seal of a 32-byte data key with AES-256-GCM: key plus 16-byte tag. */
export const wrappedKeyBytes = 32 + 16;
/** Upper bound on an encoded header: the chunk hash list plus generous room for everything else. */
export const headerBytesMax = chunkCountMax * hashBytes + 1024 * 1024;

const identifier = t.string({ minLength: 1, maxLength: 128 });

const recipientSchema = t.record({
  orgId: identifier,
  encapsulatedKey: t.bytes({ length: encapsulatedKeyBytes }),
  wrappedKey: t.bytes({ length: wrappedKeyBytes }),
});

export type EnvelopeRecipient = {
  readonly orgId: string;
  readonly encapsulatedKey: Uint8Array;
  readonly wrappedKey: Uint8Array;
};

const contextFields = {
  version: t.literal(envelopeVersion),
  payloadId: identifier,
  senderOrgId: identifier,
  contentType: t.string({ minLength: 1, maxLength: 255 }),
  chunkBytes: t.uint({ min: chunkBytesMin, max: chunkBytesMax }),
  keyCommitment: t.bytes({ length: hashBytes }),
  recipients: t.refine(t.array(recipientSchema, { minItems: 1, maxItems: recipientsMax }), (recipients) =>
    new Set(recipients.map((recipient) => recipient.orgId)).size === recipients.length
      ? undefined
      : 'recipient org ids must be distinct',
  ),
};

const summaryFields = {
  chunkCount: t.uint({ min: 1, max: chunkCountMax }),
  plaintextBytes: t.uint(),
  chunkHashes: t.bytes({ minLength: hashBytes, maxLength: chunkCountMax * hashBytes }),
  merkleRoot: t.bytes({ length: hashBytes }),
};

/** Fields fixed before the first chunk is encrypted. */
export interface EnvelopeContext {
  readonly version: typeof envelopeVersion;
  readonly payloadId: string;
  readonly senderOrgId: string;
  readonly contentType: string;
  readonly chunkBytes: number;
  /** domainHash('envelope-key-commitment', dataKey): every recipient provably gets the same key. */
  readonly keyCommitment: Uint8Array;
  readonly recipients: readonly EnvelopeRecipient[];
}

/** The signed header of an encrypted payload. Decode untrusted bytes with `decodeEnvelopeHeader`. */
export interface EnvelopeHeader extends EnvelopeContext {
  readonly chunkCount: number;
  readonly plaintextBytes: number;
  /** SHA-256 of each ciphertext chunk (ciphertext || tag), concatenated in chunk order. */
  readonly chunkHashes: Uint8Array;
  /** RFC 9162 Merkle root over the chunk hashes; this is the root recorded on-chain. */
  readonly merkleRoot: Uint8Array;
  readonly signature: Uint8Array;
}

/** The shape every chunk count, size and hash list must agree on; see `chunkLayout`. */
function summaryIsConsistent(header: {
  chunkBytes: number;
  chunkCount: number;
  plaintextBytes: number;
  chunkHashes: Uint8Array;
}): string | undefined {
  if (header.chunkCount !== expectedChunkCount(header.plaintextBytes, header.chunkBytes)) {
    return `chunkCount ${header.chunkCount} does not fit plaintextBytes ${header.plaintextBytes} in chunks of ${header.chunkBytes}`;
  }
  if (header.chunkHashes.length !== header.chunkCount * hashBytes) {
    return `chunkHashes holds ${header.chunkHashes.length} bytes, expected ${header.chunkCount * hashBytes}`;
  }
  return undefined;
}

const contextSchema = t.record(contextFields);
const unsignedHeaderSchema = t.refine(t.record({ ...contextFields, ...summaryFields }), summaryIsConsistent);

/** Strict schema of an encoded header: exact fields, bounded sizes, consistent chunk layout. */
export const envelopeHeaderSchema = t.refine(
  t.record({ ...contextFields, ...summaryFields, signature: t.bytes({ length: signatureBytes }) }),
  summaryIsConsistent,
);

/** Number of chunks of a payload: an empty payload still has one (empty, authenticated) chunk. */
export function expectedChunkCount(plaintextBytes: number, chunkBytes: number): number {
  return Math.max(1, Math.ceil(plaintextBytes / chunkBytes));
}

/** Plaintext bytes of chunk `index` of the payload `header` describes. */
export function chunkPlaintextBytes(header: EnvelopeHeader, index: number): number {
  return index < header.chunkCount - 1
    ? header.chunkBytes
    : header.plaintextBytes - (header.chunkCount - 1) * header.chunkBytes;
}

/** The hash bound into every chunk's AAD: commits to the sender, payload, key and recipients. */
export function contextHash(context: EnvelopeContext): Uint8Array {
  return domainHash(envelopeContextDomain, encodeWith(contextSchema, pickContext(context)));
}

/** The commitment to the data key stored in the header (a hash of a uniformly random 256-bit key). */
export function keyCommitment(dataKey: Uint8Array): Uint8Array {
  return domainHash(envelopeKeyCommitmentDomain, dataKey);
}

/** Hash `index` (0-based) of the header's chunk hash list, as a view. */
export function chunkHashAt(header: EnvelopeHeader, index: number): Uint8Array {
  return header.chunkHashes.subarray(index * hashBytes, (index + 1) * hashBytes);
}

/** The Merkle root over a concatenated chunk hash list (each hash is one leaf). */
export function chunkHashesRoot(chunkHashes: Uint8Array): Uint8Array {
  const leaves: Uint8Array[] = [];
  for (let offset = 0; offset < chunkHashes.length; offset += hashBytes) {
    leaves.push(chunkHashes.subarray(offset, offset + hashBytes));
  }
  return merkleRoot(leaves);
}

/**
 * Signs context + summary with the sender's Ed25519 key, for the signer's network. Throws
 * LedgerbusError(SchemaMismatch) naming the field if the result would not pass `envelopeHeaderSchema`.
 */
export function signEnvelopeHeader(
  signer: Signer,
  unsigned: Omit<EnvelopeHeader, 'signature'>,
): EnvelopeHeader {
  const fields = pickUnsigned(unsigned);
  const signature = signer.sign(envelopeHeaderDomain, encodeWith(unsignedHeaderSchema, fields));
  return Object.freeze({ ...fields, signature });
}

/** Who must have signed a header, in which network, and what it must say. */
export interface EnvelopeHeaderCheck {
  /** The network the header must have been signed for. */
  readonly signing: SigningDomain;
  /** The registry's key of `header.senderOrgId` (the caller looks it up). */
  readonly senderPublicKey: Uint8Array;
  readonly expected?: { root?: Uint8Array; payloadId?: string; senderOrgId?: string };
}

/**
 * Accepts `header` only if it is well formed, signed by `senderPublicKey` for the network of
 * `signing`, its Merkle root is the root of its chunk hashes, and it matches every given expectation.
 * Throws LedgerbusError: SchemaMismatch (malformed), BadSignature (signature — a header signed in
 * another network among them — or expected payload id or sender org), RootMismatch (root does not
 * fit the chunk hashes, or differs from `expected.root`, the root recorded on-chain).
 */
export function verifyEnvelopeHeader(header: EnvelopeHeader, check: EnvelopeHeaderCheck): void {
  const { signing, senderPublicKey, expected = {} } = check;
  let signedBytes: Uint8Array;
  try {
    envelopeHeaderSchema.parse(header, 'header');
    signedBytes = encodeWith(unsignedHeaderSchema, pickUnsigned(header));
  } catch (error) {
    if (!isLedgerbusError(error)) throw error;
    throw new LedgerbusError(ErrorCode.SchemaMismatch, `envelope header is malformed: ${error.message}`, {
      cause: error,
    });
  }
  if (senderPublicKey.length !== publicKeyBytes) {
    throw new LedgerbusError(ErrorCode.BadSignature, `sender public key must be ${publicKeyBytes} bytes`);
  }
  if (!signing.verify(senderPublicKey, envelopeHeaderDomain, signedBytes, header.signature)) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `envelope header of payload ${header.payloadId} is not signed by this key of org ${header.senderOrgId} for network ${signing.network}`,
    );
  }
  if (expected.payloadId !== undefined && expected.payloadId !== header.payloadId) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `envelope header is for payload ${header.payloadId}, expected ${expected.payloadId}`,
    );
  }
  if (expected.senderOrgId !== undefined && expected.senderOrgId !== header.senderOrgId) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `envelope header is from org ${header.senderOrgId}, expected ${expected.senderOrgId}`,
    );
  }
  if (!bytesEqual(chunkHashesRoot(header.chunkHashes), header.merkleRoot)) {
    throw new LedgerbusError(
      ErrorCode.RootMismatch,
      `envelope header of payload ${header.payloadId}: Merkle root does not match its chunk hashes`,
    );
  }
  if (expected.root !== undefined && !bytesEqual(expected.root, header.merkleRoot)) {
    throw new LedgerbusError(
      ErrorCode.RootMismatch,
      `envelope header of payload ${header.payloadId}: Merkle root differs from the expected (on-chain) root`,
    );
  }
}

/** Canonical CBOR of `header`. Throws LedgerbusError(SchemaMismatch) if it is malformed. */
export function encodeEnvelopeHeader(header: EnvelopeHeader): Uint8Array {
  return encodeWith(envelopeHeaderSchema, header);
}

/**
 * Strictly decodes a header of at most `headerBytesMax` bytes. Throws LedgerbusError: Oversize,
 * MalformedEncoding or SchemaMismatch. Decoding checks shape only: `decryptPayload` (or
 * `verifyEnvelopeHeader`) checks the signature and root before anything in it is trusted.
 */
export function decodeEnvelopeHeader(bytes: Uint8Array): EnvelopeHeader {
  return decodeWith(envelopeHeaderSchema, bytes, { maxBytes: headerBytesMax });
}

// Copy exactly the schema's fields, so extra properties on a caller's object never reach a signature.
function pickContext(context: EnvelopeContext): EnvelopeContext {
  return {
    version: context.version,
    payloadId: context.payloadId,
    senderOrgId: context.senderOrgId,
    contentType: context.contentType,
    chunkBytes: context.chunkBytes,
    keyCommitment: context.keyCommitment,
    recipients: context.recipients.map((recipient) => ({
      orgId: recipient.orgId,
      encapsulatedKey: recipient.encapsulatedKey,
      wrappedKey: recipient.wrappedKey,
    })),
  };
}

function pickUnsigned(header: Omit<EnvelopeHeader, 'signature'>): Omit<EnvelopeHeader, 'signature'> {
  return {
    ...pickContext(header),
    chunkCount: header.chunkCount,
    plaintextBytes: header.plaintextBytes,
    chunkHashes: header.chunkHashes,
    merkleRoot: header.merkleRoot,
  };
}
