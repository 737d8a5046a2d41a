import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { encodeCanonical } from '../codec/index.js';
import type { SealedBox } from '../contracts/datashare/transactions.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { sha256 } from './hash.js';
import { encryptionPrivateBytes, encryptionPublicKeyBytes } from './envelope/keys.js';
import type { EncryptionKeyPair } from './envelope/keys.js';

/*
 * A job's spec sealed to its dataset's owner, and its result sealed back to the requester (DESIGN
 * §8): HPKE (RFC 9180) base mode with the suite the payload envelope wraps data keys with
 * (DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, see envelope/wrap.ts). The HPKE info is
 * the canonical CBOR of the job's context — network, job id, requester, owner and purpose — under a
 * domain string of its own, so a sealed spec cannot be opened as a result (or the other way round),
 * in another job, between other parties or in another network: the AEAD fails before any byte of
 * plaintext is released.
 *
 * A spec goes on the ledger and is bounded by the transaction schema (16 KiB); a result travels off
 * the ledger and may be far larger, so the box itself only refuses what no job produces.
 */

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** Domain string of every job box's HPKE info. */
export const jobBoxDomain = 'ledgerbus/v1/job-box';
/** Largest plaintext a job box seals or opens: far past any job result, short of exhausting memory. */
export const jobBoxPlaintextBytesMax = 64 * 1024 * 1024;
const encapsulatedKeyBytes = 32;
/** AES-256-GCM's tag. */
const tagBytes = 16;

/** What a job box is bound to. Sealing and opening must use the same context. */
export interface JobBoxContext {
  /** The network (genesis `network`) the job is in. */
  readonly network: string;
  readonly jobId: string;
  /** The organization that asked for the job. */
  readonly requester: string;
  /** The dataset's owner, which runs the job. */
  readonly owner: string;
  /** 'spec': the requester's job, sealed to the owner; 'result': the owner's result, sealed to the requester. */
  readonly purpose: 'spec' | 'result';
}

function boxInfo(context: JobBoxContext): Uint8Array {
  if (context.purpose !== 'spec' && context.purpose !== 'result') {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `a job box's purpose is 'spec' or 'result', not ${String(context.purpose)}`,
    );
  }
  return encodeCanonical({
    domain: jobBoxDomain,
    network: context.network,
    jobId: context.jobId,
    requester: context.requester,
    owner: context.owner,
    purpose: context.purpose,
  });
}

/** Who a box of `context` is sealed to, for messages. */
function recipientOf(context: JobBoxContext): string {
  return context.purpose === 'spec' ? context.owner : context.requester;
}

/**
 * HPKE-seals `plaintext` to `recipientPublicKey` (raw X25519, as in the registry): the owner's key
 * for a spec, the requester's for a result. Throws LedgerbusError: SchemaMismatch naming the
 * recipient if the key is not a usable X25519 public key (wrong length, or a low-order point HPKE
 * refuses); Oversize past `jobBoxPlaintextBytesMax`; BadConfig for an unknown purpose.
 */
export async function sealJobBox(
  plaintext: Uint8Array,
  recipientPublicKey: Uint8Array,
  context: JobBoxContext,
): Promise<SealedBox> {
  const info = boxInfo(context);
  if (plaintext.length > jobBoxPlaintextBytesMax) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `a job ${context.purpose} of ${plaintext.length} bytes is over the ${jobBoxPlaintextBytesMax}-byte limit`,
    );
  }
  if (!(recipientPublicKey instanceof Uint8Array) || recipientPublicKey.length !== encryptionPublicKeyBytes) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `${recipientOf(context)}: encryption public key must be ${encryptionPublicKeyBytes} raw X25519 bytes`,
    );
  }
  let sealed: { ct: ArrayBuffer; enc: ArrayBuffer };
  try {
    const publicKey = await suite.kem.deserializePublicKey(recipientPublicKey);
    sealed = await suite.seal({ recipientPublicKey: publicKey, info }, plaintext);
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `${recipientOf(context)}: cannot seal a job ${context.purpose} to this encryption public key`,
      { cause: error },
    );
  }
  const encapsulatedKey = new Uint8Array(sealed.enc);
  const ciphertext = new Uint8Array(sealed.ct);
  assert(encapsulatedKey.length === encapsulatedKeyBytes, 'HPKE X25519 enc is 32 bytes');
  assert(ciphertext.length === plaintext.length + tagBytes, 'HPKE ciphertext is the plaintext plus a tag');
  return { encapsulatedKey, ciphertext };
}

/**
 * Opens a box sealed with `sealJobBox` for the same `context`, with the recipient's own key pair.
 * Throws LedgerbusError(PayloadCorrupt) if it does not authenticate: another key, another context
 * (job, parties, purpose or network), or tampered bytes; or if it is larger than any box
 * `sealJobBox` makes. Nothing of the plaintext is returned unless the whole box authenticates.
 */
export async function openJobBox(
  box: SealedBox,
  recipientKeyPair: EncryptionKeyPair,
  context: JobBoxContext,
): Promise<Uint8Array> {
  const info = boxInfo(context);
  const what = `the job ${context.purpose} of ${context.jobId} sealed to ${recipientOf(context)}`;
  if (
    box.encapsulatedKey.length !== encapsulatedKeyBytes ||
    box.ciphertext.length < tagBytes ||
    box.ciphertext.length > jobBoxPlaintextBytesMax + tagBytes
  ) {
    throw new LedgerbusError(ErrorCode.PayloadCorrupt, `${what} is not a sealed box of a valid size`);
  }
  let opened: ArrayBuffer;
  try {
    const privateKey = await suite.kem.deserializePrivateKey(encryptionPrivateBytes(recipientKeyPair));
    opened = await suite.open({ recipientKey: privateKey, enc: box.encapsulatedKey, info }, box.ciphertext);
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.PayloadCorrupt,
      `${what} does not open with this key: another job, party or purpose, or tampered bytes`,
      { cause: error },
    );
  }
  return new Uint8Array(opened);
}

/**
 * What the ledger records of a job's result (`jobResult.resultHash`): SHA-256 of the sealed box
 * (encapsulated key, then ciphertext), not of the result. A hash of the plaintext could be confirmed
 * by anyone who reads the ledger and guesses the result — an aggregate's shape is public in the
 * catalog, and a count has few digits; the box is random. The requester checks this digest before
 * it opens the box, and the AEAD then binds the result to it.
 */
export function sealedBoxDigest(box: SealedBox): Uint8Array {
  const bytes = new Uint8Array(box.encapsulatedKey.length + box.ciphertext.length);
  bytes.set(box.encapsulatedKey, 0);
  bytes.set(box.ciphertext, box.encapsulatedKey.length);
  return sha256(bytes);
}

/** Results are padded with spaces (JSON ignores them) to a multiple of this, so their size tells little. */
export const resultPaddingBytes = 1024;

/** `json` followed by spaces up to the next multiple of `resultPaddingBytes`. */
export function padJson(json: Uint8Array): Uint8Array {
  const length = Math.ceil(Math.max(json.length, 1) / resultPaddingBytes) * resultPaddingBytes;
  const padded = new Uint8Array(length).fill(0x20);
  padded.set(json, 0);
  return padded;
}
