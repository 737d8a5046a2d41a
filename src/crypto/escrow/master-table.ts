import { Buffer } from 'node:buffer';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import { decodeWith, encodeWith, t } from '../../codec/index.js';
import { escrowLimits } from '../../contracts/escrow/transactions.js';
import { transactionLimits } from '../../contracts/limits.js';
import { sha256 } from '../hash.js';
import { escrowKeyBytes } from './keys.js';

/*
 * The master table (DESIGN §7): for each chunk of an escrowed blob, its SHA-256, its size and the
 * holders' signed receipts for it. It goes on-chain inside the escrow metadata, encrypted with
 * AES-256-GCM under the master-table key derived from the escrowed secret, so only someone who
 * rebuilt the secret (an approved auditor) learns the chunk hashes, while the contract can still
 * bound and hash the ciphertext.
 *
 * Format: nonce (12 random bytes) || AES-256-GCM(canonical CBOR of the table) || tag (16).
 * The key is used for one table only (it is derived per message), so a random nonce is more
 * than enough; the AAD is a fixed domain string, keeping these bytes from ever authenticating as
 * another kind of object under a key that happened to be shared.
 */

const nonceBytes = 12;
const tagBytes = 16;
const aad = new TextEncoder().encode('ledgerbus/v1/escrow-master-table');

/** A holder's signed receipt for one chunk (see `chunkReceiptPayload` in the escrow contract). */
export interface ChunkReceipt {
  readonly holder: string;
  /** The connector key of `holder` that signed. */
  readonly signerKey: Uint8Array;
  readonly signature: Uint8Array;
}

export interface MasterTableChunk {
  /** SHA-256 of the chunk as escrowed. */
  readonly hash: Uint8Array;
  /** Bytes of the chunk. */
  readonly size: number;
  readonly receipts: readonly ChunkReceipt[];
}

export interface MasterTable {
  /** In chunk order: chunks[c] is chunk index c. */
  readonly chunks: readonly MasterTableChunk[];
}

/** Strict schema of a decrypted table: exact fields, bounded sizes. */
export const masterTableSchema = t.record({
  chunks: t.array(
    t.record({
      hash: t.bytes({ length: 32 }),
      size: t.uint({ min: 1, max: escrowLimits.chunkBytesMax }),
      receipts: t.array(
        t.record({
          holder: t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax }),
          signerKey: t.bytes({ length: 32 }),
          signature: t.bytes({ length: 64 }),
        }),
        { maxItems: escrowLimits.replicasMax },
      ),
    }),
    { minItems: 1, maxItems: escrowLimits.chunksMax },
  ),
});

/**
 * Encrypts `table` under `key` (the master-table key from `escrowKeys`). Returns the ciphertext
 * for the escrow metadata and its SHA-256 (`masterTableHash`). Throws LedgerbusError: BadConfig if
 * `key` is not 32 bytes; SchemaMismatch naming the field if the table does not fit the schema;
 * Oversize if the ciphertext would exceed the contract's `escrowLimits.masterTableBytesMax`.
 */
export function sealMasterTable(
  table: MasterTable,
  key: Uint8Array,
): { ciphertext: Uint8Array; hash: Uint8Array } {
  checkKey(key);
  const plaintext = encodeWith(masterTableSchema, pickTable(table));
  const ciphertextBytes = nonceBytes + plaintext.length + tagBytes;
  if (ciphertextBytes > escrowLimits.masterTableBytesMax) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `the master table of ${table.chunks.length} chunks encrypts to ${ciphertextBytes} bytes, more than ${escrowLimits.masterTableBytesMax}; use larger chunks or fewer replicas`,
    );
  }
  const nonce = randomBytes(nonceBytes);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const ciphertext = new Uint8Array(ciphertextBytes);
  ciphertext.set(nonce, 0);
  const body = cipher.update(plaintext);
  ciphertext.set(body, nonceBytes);
  const rest = cipher.final();
  ciphertext.set(rest, nonceBytes + body.length);
  ciphertext.set(cipher.getAuthTag(), nonceBytes + body.length + rest.length);
  return { ciphertext, hash: sha256(ciphertext) };
}

/**
 * Decrypts and strictly decodes a master table. Throws LedgerbusError: BadConfig if `key` is not
 * 32 bytes; BadSignature if the bytes do not authenticate under `key` (wrong key, tampered, or too
 * short to hold a nonce and tag); SchemaMismatch if the authenticated plaintext is not a table
 * (which only a sender that sealed garbage with the right key can cause).
 */
export function openMasterTable(ciphertext: Uint8Array, key: Uint8Array): MasterTable {
  checkKey(key);
  if (ciphertext.length < nonceBytes + tagBytes) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the master table is ${ciphertext.length} bytes, too short for a nonce and an authentication tag`,
    );
  }
  const decipher = createDecipheriv('aes-256-gcm', key, ciphertext.subarray(0, nonceBytes));
  decipher.setAAD(aad);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - tagBytes));
  const body = decipher.update(ciphertext.subarray(nonceBytes, ciphertext.length - tagBytes));
  let rest: Uint8Array;
  try {
    rest = decipher.final();
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      'the master table does not authenticate under this key: wrong secret or tampered table',
      { cause: error },
    );
  }
  const plaintext = rest.length === 0 ? body : Buffer.concat([body, rest]);
  try {
    return decodeWith(masterTableSchema, plaintext, { maxBytes: escrowLimits.masterTableBytesMax });
  } catch (error) {
    if (!isLedgerbusError(error)) throw error;
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `the decrypted master table is malformed: ${error.message}`,
      {
        cause: error,
      },
    );
  }
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== escrowKeyBytes) {
    throw new LedgerbusError(ErrorCode.BadConfig, `a master table key is ${escrowKeyBytes} bytes`);
  }
}

// Copy exactly the schema's fields, so extra properties on a caller's objects are never encrypted.
function pickTable(table: MasterTable): MasterTable {
  return {
    chunks: table.chunks.map((chunk) => ({
      hash: chunk.hash,
      size: chunk.size,
      receipts: chunk.receipts.map((receipt) => ({
        holder: receipt.holder,
        signerKey: receipt.signerKey,
        signature: receipt.signature,
      })),
    })),
  };
}
