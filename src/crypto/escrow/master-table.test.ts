import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { escrowLimits } from '../../contracts/escrow/transactions.js';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { encodeCanonical } from '../../codec/index.js';
import { openMasterTable, sealMasterTable } from './master-table.js';
import type { MasterTable } from './master-table.js';

const key = new Uint8Array(randomBytes(32));

function table(chunks: number, receipts = 3): MasterTable {
  return {
    chunks: Array.from({ length: chunks }, (_, index) => ({
      hash: new Uint8Array(randomBytes(32)),
      size: 4096 + index,
      receipts: Array.from({ length: receipts }, (_, holder) => ({
        holder: `org-${holder}`,
        signerKey: new Uint8Array(randomBytes(32)),
        signature: new Uint8Array(randomBytes(64)),
      })),
    })),
  };
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return isLedgerbusError(error) ? error.code : `other: ${String(error)}`;
  }
  return undefined;
}

/** The documented format, written out: nonce || AES-256-GCM(plaintext, AAD = domain) || tag. */
function sealRaw(plaintext: Uint8Array, withKey: Uint8Array): Uint8Array {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', withKey, nonce);
  cipher.setAAD(new TextEncoder().encode('ledgerbus/v1/escrow-master-table'));
  return Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

describe('master table', () => {
  it('round-trips, and its hash is the SHA-256 of the ciphertext', () => {
    const original = table(5);
    const { ciphertext, hash } = sealMasterTable(original, key);
    expect(hash).toEqual(new Uint8Array(createHash('sha256').update(ciphertext).digest()));
    expect(openMasterTable(ciphertext, key)).toEqual(original);
    // A fresh nonce each time: the same table never gives the same bytes.
    expect(sealMasterTable(original, key).ciphertext).not.toEqual(ciphertext);
  });

  it('is the documented format: a hand-built ciphertext of the canonical table opens', () => {
    const original = table(2);
    const plaintext = encodeCanonical({
      chunks: original.chunks.map((chunk) => ({
        hash: chunk.hash,
        size: chunk.size,
        receipts: chunk.receipts.map(({ holder, signerKey, signature }) => ({
          holder,
          signerKey,
          signature,
        })),
      })),
    });
    expect(openMasterTable(sealRaw(plaintext, key), key)).toEqual(original);
  });

  it('does not open under another key, tampered, or truncated', () => {
    const { ciphertext } = sealMasterTable(table(3), key);
    expect(codeOf(() => openMasterTable(ciphertext, new Uint8Array(randomBytes(32))))).toBe(
      ErrorCode.BadSignature,
    );
    for (const position of [0, 11, 12, ciphertext.length - 17, ciphertext.length - 1]) {
      const tampered = Uint8Array.from(ciphertext);
      tampered[position] = (tampered[position] as number) ^ 0x80;
      expect(codeOf(() => openMasterTable(tampered, key))).toBe(ErrorCode.BadSignature);
    }
    expect(codeOf(() => openMasterTable(ciphertext.subarray(0, ciphertext.length - 1), key))).toBe(
      ErrorCode.BadSignature,
    );
    expect(codeOf(() => openMasterTable(ciphertext.subarray(0, 27), key))).toBe(ErrorCode.BadSignature);
  });

  it('refuses an authentic plaintext that is not a table', () => {
    const notTables = [
      encodeCanonical({ chunks: [] }),
      encodeCanonical({ chunks: [{ hash: new Uint8Array(32), size: 1, receipts: [] }], extra: 1 }),
      encodeCanonical({ chunks: [{ hash: new Uint8Array(31), size: 1, receipts: [] }] }),
      Uint8Array.of(0xff, 0x00),
    ];
    for (const plaintext of notTables) {
      expect(codeOf(() => openMasterTable(sealRaw(plaintext, key), key))).toBe(ErrorCode.SchemaMismatch);
    }
  });

  it('refuses to seal a malformed or oversized table, or with a bad key', () => {
    const good = table(1);
    const chunk = good.chunks[0];
    if (chunk === undefined) throw new Error('table(1) has a chunk');
    expect(codeOf(() => sealMasterTable({ chunks: [] }, key))).toBe(ErrorCode.SchemaMismatch);
    expect(codeOf(() => sealMasterTable({ chunks: [{ ...chunk, hash: new Uint8Array(31) }] }, key))).toBe(
      ErrorCode.SchemaMismatch,
    );
    expect(codeOf(() => sealMasterTable({ chunks: [{ ...chunk, size: 0 }] }, key))).toBe(
      ErrorCode.SchemaMismatch,
    );
    expect(codeOf(() => sealMasterTable(good, key.subarray(1)))).toBe(ErrorCode.BadConfig);
    expect(codeOf(() => openMasterTable(sealMasterTable(good, key).ciphertext, key.subarray(1)))).toBe(
      ErrorCode.BadConfig,
    );
    // The most chunks the schema allows, with 4 receipts each, are over the contract's 768 KiB.
    expect(codeOf(() => sealMasterTable(table(escrowLimits.chunksMax, 4), key))).toBe(ErrorCode.Oversize);
  });

  it('holds 1536 chunks at 3 replicas within the contract limit of 768 KiB (about 460 bytes a chunk)', () => {
    const { ciphertext } = sealMasterTable(table(1536, 3), key);
    expect(ciphertext.length).toBeLessThanOrEqual(768 * 1024);
    expect(ciphertext.length / 1536).toBeGreaterThan(440);
    expect(openMasterTable(ciphertext, key).chunks).toHaveLength(1536);
  });
});
