/*
 * The payload envelope (DESIGN §4): end-to-end encryption of a payload of any size from a sender
 * org to recipient orgs, streamed chunk by chunk, with a signed header whose Merkle root goes
 * on-chain. Start with `encryptPayload` and `decryptPayload`.
 */
export { decryptPayload, encryptPayload, encryptPayloadToBytes } from './envelope.js';
export type {
  DataKeyAccess,
  DecryptPayloadOptions,
  DecryptPayloadSource,
  EncryptPayloadOptions,
  EncryptedPayload,
  RecipientKeyAccess,
} from './envelope.js';
export {
  chunkBytesMax,
  chunkBytesMin,
  chunkCountMax,
  chunkHashAt,
  chunkHashesRoot,
  decodeEnvelopeHeader,
  defaultChunkBytes,
  encodeEnvelopeHeader,
  envelopeHeaderDomain,
  envelopeHeaderSchema,
  headerBytesMax,
  recipientsMax,
  verifyEnvelopeHeader,
} from './header.js';
export type { EnvelopeContext, EnvelopeHeader, EnvelopeHeaderCheck, EnvelopeRecipient } from './header.js';
export {
  encryptionKeyFromPrivateBytes,
  encryptionKeyFromPrivateKey,
  encryptionPublicKeyBytes,
  generateEncryptionKey,
  loadEncryptionKey,
  saveEncryptionKey,
} from './keys.js';
export type { EncryptionKeyPair } from './keys.js';
export type { WrapTarget } from './wrap.js';
