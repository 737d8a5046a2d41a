import { hkdfSync } from 'node:crypto';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { encodeCanonical } from '../../codec/index.js';
import { decodeScalar } from './feldman.js';

/*
 * Keys derived from the escrowed secret (DESIGN §7). The secret is the Feldman-shared scalar, so
 * whoever rebuilds it from k shares — an approved auditor — gets exactly these keys and nothing
 * else is escrowed. HKDF-SHA256 (RFC 5869) with an info that names the purpose, the network, the
 * sender and the message, so the two keys are independent of each other and a secret reused by a
 * buggy sender would still give different keys in another message.
 */

/** Domain string of every escrow key's HKDF info. */
export const escrowKeyDomain = 'ledgerbus/v1/escrow-key';
/** Bytes of each derived key (AES-256). */
export const escrowKeyBytes = 32;

const hkdfInfoBytesMax = 1024;

/** Who escrowed what: the message the keys belong to. */
export interface EscrowKeyContext {
  readonly network: string;
  readonly sender: string;
  readonly id: string;
}

/** The two keys of an escrowed message. */
export interface EscrowKeys {
  /** The payload envelope's data key (`EncryptPayloadOptions.dataKey`). */
  readonly dataKey: Uint8Array;
  /** The key of the on-chain master table (`sealMasterTable`). */
  readonly masterTableKey: Uint8Array;
}

/**
 * The data key and master-table key of message `context.id` sent by `context.sender` in
 * `context.network`, derived from `secret` (a 32-byte scalar from `splitSecret` or
 * `combineShares`). Deterministic: the sender and an auditor derive the same keys. Throws
 * LedgerbusError(BadConfig) if `secret` is not a 32-byte scalar below the group order, and
 * LedgerbusError(SchemaMismatch) if the context is too long to derive from (over 1 KiB encoded).
 */
export function escrowKeys(secret: Uint8Array, context: EscrowKeyContext): EscrowKeys {
  if (decodeScalar(secret) === undefined) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      'the escrow secret must be a 32-byte little-endian scalar below the ed25519 group order',
    );
  }
  return {
    dataKey: deriveKey(secret, context, 'data'),
    masterTableKey: deriveKey(secret, context, 'master-table'),
  };
}

function deriveKey(
  secret: Uint8Array,
  context: EscrowKeyContext,
  purpose: 'data' | 'master-table',
): Uint8Array {
  const info = encodeCanonical({
    domain: escrowKeyDomain,
    purpose,
    network: context.network,
    sender: context.sender,
    id: context.id,
  });
  // Node caps HKDF info at 1024 bytes; the contracts bound ids far below that.
  if (info.length > hkdfInfoBytesMax) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `escrow key context is too long (${info.length} bytes encoded, at most ${hkdfInfoBytesMax}); use shorter ids`,
    );
  }
  return new Uint8Array(hkdfSync('sha256', secret, new Uint8Array(0), info, escrowKeyBytes));
}
