import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { encodeCanonical } from '../../codec/index.js';
import type { SealedShare } from '../../contracts/escrow/transactions.js';
import { encryptionPrivateBytes, encryptionPublicKeyBytes } from '../envelope/keys.js';
import type { EncryptionKeyPair } from '../envelope/keys.js';
import { scalarBytes } from './feldman.js';

/*
 * A key share sealed to one organization's X25519 encryption key: HPKE (RFC 9180) base mode with
 * the suite the payload envelope wraps data keys with (DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
 * AES-256-GCM, see envelope/wrap.ts). The HPKE info names the network, the message, the holder it
 * is sealed to and why (escrowed by the sender, or released by a holder to an auditor for one audit
 * request), so a sealed share cannot be replayed into another message, to another holder, or from
 * one audit request into another — the AEAD fails before any share is looked at.
 */

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** Domain string of every share box's HPKE info. */
export const shareBoxDomain = 'ledgerbus/v1/escrow-share';
const encapsulatedKeyBytes = 32;
const sealedShareBytes = scalarBytes + 16;

/** What a sealed share is bound to. Sealing and opening must use the same context. */
export interface ShareBoxContext {
  readonly network: string;
  /** The organization that escrowed the message. */
  readonly sender: string;
  /** The message id. */
  readonly id: string;
  /**
   * The share holder whose share it is: the organization it is sealed to for 'escrow', the releasing
   * holder for 'release' (sealed to the auditor, who is bound by the recipient key alone).
   */
  readonly holder: string;
  /** 'escrow': the sender to a holder; 'release': a holder to an auditor, for `requestId`. */
  readonly purpose: 'escrow' | 'release';
  /** The audit request a release is for; required for 'release', absent for 'escrow'. */
  readonly requestId?: string;
}

function shareInfo(context: ShareBoxContext): Uint8Array {
  const hasRequest = context.requestId !== undefined;
  if (hasRequest !== (context.purpose === 'release')) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `a share box for purpose '${context.purpose}' ${hasRequest ? 'must not name' : 'must name'} an audit requestId`,
    );
  }
  return encodeCanonical({
    domain: shareBoxDomain,
    network: context.network,
    sender: context.sender,
    id: context.id,
    holder: context.holder,
    purpose: context.purpose,
    ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
  });
}

/**
 * HPKE-seals the 32-byte share `value` to `recipientPublicKey` (raw X25519, as in the registry).
 * Throws LedgerbusError: SchemaMismatch naming the holder if the key is not a usable X25519 public
 * key (wrong length, or a low-order point HPKE refuses); BadConfig if `value` is not 32 bytes or a
 * requestId is given for 'escrow' / missing for 'release'.
 */
export async function sealShare(
  value: Uint8Array,
  recipientPublicKey: Uint8Array,
  context: ShareBoxContext,
): Promise<SealedShare> {
  if (!(value instanceof Uint8Array) || value.length !== scalarBytes) {
    throw new LedgerbusError(ErrorCode.BadConfig, `a share value is ${scalarBytes} bytes`);
  }
  const info = shareInfo(context);
  if (!(recipientPublicKey instanceof Uint8Array) || recipientPublicKey.length !== encryptionPublicKeyBytes) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `holder ${context.holder}: encryption public key must be ${encryptionPublicKeyBytes} raw X25519 bytes`,
    );
  }
  let sealed: { ct: ArrayBuffer; enc: ArrayBuffer };
  try {
    const publicKey = await suite.kem.deserializePublicKey(recipientPublicKey);
    sealed = await suite.seal({ recipientPublicKey: publicKey, info }, value);
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `holder ${context.holder}: cannot seal a key share to this encryption public key`,
      { cause: error },
    );
  }
  const encapsulatedKey = new Uint8Array(sealed.enc);
  const sealedShare = new Uint8Array(sealed.ct);
  assert(encapsulatedKey.length === encapsulatedKeyBytes, 'HPKE X25519 enc is 32 bytes');
  assert(sealedShare.length === sealedShareBytes, 'an HPKE-sealed share is 48 bytes');
  return { encapsulatedKey, sealedShare };
}

/**
 * Opens a share sealed with `sealShare` for the same `context`, with the holder's own key pair.
 * Throws LedgerbusError(BadSignature) if it does not authenticate: another key, another context
 * (message, holder, purpose or request), or tampered bytes; BadConfig for a requestId mismatch
 * with the purpose, as `sealShare`. The result is only the 32 bytes that were sealed: check it
 * with `verifyShare` before trusting it.
 */
export async function openShare(
  sealed: SealedShare,
  key: EncryptionKeyPair,
  context: ShareBoxContext,
): Promise<Uint8Array> {
  const info = shareInfo(context);
  let opened: ArrayBuffer;
  try {
    const privateKey = await suite.kem.deserializePrivateKey(encryptionPrivateBytes(key));
    opened = await suite.open(
      { recipientKey: privateKey, enc: sealed.encapsulatedKey, info },
      sealed.sealedShare,
    );
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the key share of message ${context.id} sealed to ${context.holder} (${context.purpose}) does not open with this key`,
      { cause: error },
    );
  }
  const value = new Uint8Array(opened);
  if (value.length !== scalarBytes) {
    throw new LedgerbusError(ErrorCode.BadSignature, `the sealed key share is not ${scalarBytes} bytes`);
  }
  return value;
}
