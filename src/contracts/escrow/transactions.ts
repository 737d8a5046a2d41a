/**
 * The escrow contract's wire formats (DESIGN §7, BlockTorrent): what a sender states about an
 * escrowed message (inside its signed message metadata, so the batch signature and the message proof
 * cover it), and the transactions holders, auditors and approving members sign afterwards. Like the
 * SDT's, every transaction is canonical CBOR signed by a registered connector key of its
 * organization over a domain-separated hash of its network, with a nonce and a timestamp.
 *
 * What is public and what is not: the placement (which holder organizations keep which chunk index)
 * and the Feldman commitments are in the clear, so the contract and every holder can check them;
 * the chunk hashes and receipts are in the master table, encrypted under a key derived from the
 * escrowed secret; each key share is HPKE-sealed to its holder's organization key.
 */
import { encodeCanonical, encodeWith, t } from '../../codec/index.js';
import type { Infer, Schema } from '../../codec/index.js';
import type { Signer } from '../../crypto/index.js';
import { nonceBytes, transactionLimits } from '../limits.js';

export const ESCROW_SIGNING_TYPE = 'escrow-transaction';

export const escrowLimits = {
  /** Feldman threshold k and share count n: far above any consortium's choice. */
  sharesMax: 16,
  /** Distinct chunk holder organizations one message may use. */
  holdersMax: 64,
  /** Holders per chunk a policy may ask for. */
  replicasMax: 16,
  /**
   * Chunks of one escrowed message: keeps the master table (≈ 460 bytes a chunk with 3 replicas and
   * short organization ids) within `masterTableBytesMax`.
   */
  chunksMax: 1536,
  /** Bytes of the encrypted master table. */
  masterTableBytesMax: 768 * 1024,
  /** Smallest and largest chunk a policy may set. */
  chunkBytesMin: 4 * 1024,
  chunkBytesMax: 8 * 1024 * 1024,
  attestationsPerTransactionMax: 1024,
  requestIdLengthMax: 128,
  reasonLengthMax: 1024,
  detailLengthMax: 1024,
} as const;

const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const messageId = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });
const requestId = t.string({ minLength: 1, maxLength: escrowLimits.requestIdLengthMax });
const bytes32 = t.bytes({ length: 32 });

/** One key share, HPKE-sealed (X25519, HKDF-SHA256, AES-256-GCM) to an organization's encryption key. */
export const sealedShareSchema = t.record({
  /** HPKE encapsulated key. */
  encapsulatedKey: bytes32,
  /** The 32-byte share scalar (little-endian) sealed: 32 + 16 bytes. */
  sealedShare: t.bytes({ length: 48 }),
});
export type SealedShare = Infer<typeof sealedShareSchema>;

/**
 * What a sender states about an escrowed message. The contract checks it against the topic's
 * escrow policy and the registry (see the escrow contract); holders check their shares against
 * `commitments` and their chunks against `placement`.
 */
export const escrowMetadataSchema = t.record({
  /** The topic policy's chunk size; every chunk but the last is exactly this long. */
  chunkBytes: t.uint({ min: 1 }),
  /** Bytes escrowed: the framed envelope header followed by the ciphertext (see crypto/escrow). */
  blobBytes: t.uint({ min: 1 }),
  /** ceil(blobBytes / chunkBytes). */
  chunkCount: t.uint({ min: 1, max: escrowLimits.chunksMax }),
  /** Feldman commitments C_j = a_j·G of the sharing polynomial, j = 0..k-1 (k = threshold). */
  commitments: t.array(bytes32, { minItems: 1, maxItems: escrowLimits.sharesMax }),
  /** Share i+1 (evaluation point x = i+1) goes to `shares[i].holder`. */
  shares: t.array(t.record({ holder: organizationId, share: sealedShareSchema }), {
    minItems: 1,
    maxItems: escrowLimits.sharesMax,
  }),
  /** The distinct organizations that hold chunks, referred to by index in `placement`. */
  holders: t.array(organizationId, { minItems: 1, maxItems: escrowLimits.holdersMax }),
  /**
   * chunkCount × replicas bytes: for chunk c, bytes [c·r, (c+1)·r) are indexes into `holders`, in
   * the order the sender's placement ranked them.
   */
  placement: t.bytes({ minLength: 1, maxLength: escrowLimits.chunksMax * escrowLimits.replicasMax }),
  /** SHA-256 of `masterTable`. */
  masterTableHash: bytes32,
  /** The master table (chunk hashes, holders' receipts), AES-256-GCM under a key derived from the secret. */
  masterTable: t.bytes({ minLength: 1, maxLength: escrowLimits.masterTableBytesMax }),
});
export type EscrowMetadata = Infer<typeof escrowMetadataSchema>;

/** The canonical map of escrow metadata as it enters a message's leaf. */
export function escrowMetadataValue(escrow: EscrowMetadata): Record<string, unknown> {
  return {
    chunkBytes: escrow.chunkBytes,
    blobBytes: escrow.blobBytes,
    chunkCount: escrow.chunkCount,
    commitments: [...escrow.commitments],
    shares: escrow.shares.map((entry) => ({
      holder: entry.holder,
      share: { encapsulatedKey: entry.share.encapsulatedKey, sealedShare: entry.share.sealedShare },
    })),
    holders: [...escrow.holders],
    placement: escrow.placement,
    masterTableHash: escrow.masterTableHash,
    masterTable: escrow.masterTable,
  };
}

/** What a holder found for one escrowed message. */
export const attestationSchema = t.record({
  id: messageId,
  /**
   * VERIFIED: its share opened and matches the commitments; INVALID: it does not (a complaint naming
   * the sender: the message becomes ESCROW_INVALID); NONE: the attester holds no share.
   */
  share: t.oneOf('VERIFIED', 'INVALID', 'NONE'),
  /** Chunks of the message this organization holds intact, out of those `placement` gives it. */
  chunksHeld: t.uint({ max: escrowLimits.chunksMax }),
});
export type Attestation = Infer<typeof attestationSchema>;

export const escrowActionSchema = t.variant('kind', {
  /** A holder's findings for messages it holds shares or chunks of. */
  attest: t.record({
    kind: t.literal('attest'),
    attestations: t.array(attestationSchema, {
      minItems: 1,
      maxItems: escrowLimits.attestationsPerTransactionMax,
    }),
  }),
  /** An auditor asks for message `id`; `requestId` is its own, unique on the partition. */
  auditRequest: t.record({
    kind: t.literal('auditRequest'),
    requestId,
    id: messageId,
    reason: t.string({ minLength: 1, maxLength: escrowLimits.reasonLengthMax }),
  }),
  /** A member organization approves an audit request. */
  auditApprove: t.record({ kind: t.literal('auditApprove'), requestId }),
  /** A share holder releases its share to the request's auditor, sealed to the auditor's key. */
  shareRelease: t.record({ kind: t.literal('shareRelease'), requestId, share: sealedShareSchema }),
  /** The auditor records how the audit ended. */
  auditOutcome: t.record({
    kind: t.literal('auditOutcome'),
    requestId,
    outcome: t.oneOf('RETRIEVED', 'FAILED'),
    /** The content root the rebuilt ciphertext matched (RETRIEVED), else null. */
    contentRoot: t.nullable(bytes32),
    /** Share holders whose released share failed the commitments. */
    badShares: t.array(organizationId, { maxItems: escrowLimits.sharesMax }),
    /** Chunk holders that served a chunk that failed its hash (or whose receipt they did not honour). */
    badHolders: t.array(organizationId, { maxItems: escrowLimits.holdersMax }),
    detail: t.string({ maxLength: escrowLimits.detailLengthMax }),
  }),
});
export type EscrowAction = Infer<typeof escrowActionSchema>;
export type EscrowActionKind = EscrowAction['kind'];

export const escrowTransactionSchema = t.record({
  type: t.literal('escrow'),
  organization: organizationId,
  signerKey: bytes32,
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: t.uint(),
  action: escrowActionSchema,
  signature: t.bytes({ length: 64 }),
});
export type EscrowTransaction = Infer<typeof escrowTransactionSchema>;

const unsignedSchema: Schema<Omit<EscrowTransaction, 'signature'>> = t.record({
  type: t.literal('escrow'),
  organization: organizationId,
  signerKey: bytes32,
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: t.uint(),
  action: escrowActionSchema,
});

/** The bytes an escrow transaction's signature is over (in the ESCROW_SIGNING_TYPE domain). */
export function escrowSigningPayload(transaction: Omit<EscrowTransaction, 'signature'>): Uint8Array {
  return encodeWith(unsignedSchema, {
    type: 'escrow',
    organization: transaction.organization,
    signerKey: transaction.signerKey,
    nonce: transaction.nonce,
    timestamp: transaction.timestamp,
    action: transaction.action,
  });
}

/**
 * Encodes and signs an escrow transaction with `signer` (a connector key registered for
 * `organization`). Throws LedgerbusError(SchemaMismatch) naming the field if it would not pass the
 * contract's schema.
 */
export function encodeEscrowTransaction(
  transaction: { organization: string; nonce: Uint8Array; timestamp: number; action: EscrowAction },
  signer: Signer,
): Uint8Array {
  const unsigned = { type: 'escrow' as const, signerKey: signer.publicKey, ...transaction };
  return encodeWith(escrowTransactionSchema, {
    ...unsigned,
    signature: signer.sign(ESCROW_SIGNING_TYPE, escrowSigningPayload(unsigned)),
  });
}

/**
 * A holder's receipt for one chunk, signed by one of its connector keys: it keeps the chunk whose
 * SHA-256 is `chunkHash` as chunk `chunkIndex` of message `id` sent by `sender`. The sender puts the
 * receipts into the master table, so an auditor can hold a holder to what it acknowledged.
 */
export const CHUNK_RECEIPT_SIGNING_TYPE = 'escrow-chunk-receipt';

export function chunkReceiptPayload(receipt: {
  holder: string;
  sender: string;
  id: string;
  chunkIndex: number;
  chunkHash: Uint8Array;
}): Uint8Array {
  return encodeCanonical({
    type: 'escrowChunkReceipt',
    holder: receipt.holder,
    sender: receipt.sender,
    id: receipt.id,
    chunkIndex: receipt.chunkIndex,
    chunkHash: receipt.chunkHash,
  });
}
