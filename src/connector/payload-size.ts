/**
 * Sizes a topic's policy bounds. The ledger records, and `messageBytesMax` bounds, the ENCRYPTED
 * size of a payload: its plaintext plus one AES-GCM tag per chunk. The chunking is fixed by the
 * plaintext size and the chunk size (src/crypto/envelope), so either size determines the other, and
 * a connector can refuse a payload the ledger would refuse before encrypting or storing any of it.
 */
import { chunkTagBytes, expectedChunkCount } from '../crypto/envelope/header.js';
import { defaultChunkBytes } from '../crypto/envelope/index.js';
import { RejectReason } from '../contracts/reasons.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';

/** The chunk size this connector encrypts with. */
export const sendChunkBytes = defaultChunkBytes;

/** Encrypted size of a `plaintextBytes`-byte payload cut into `chunkBytes`-byte chunks. */
export function ciphertextBytesFor(plaintextBytes: number, chunkBytes = sendChunkBytes): number {
  return plaintextBytes + expectedChunkCount(plaintextBytes, chunkBytes) * chunkTagBytes;
}

/**
 * The largest plaintext whose encrypted size is at most `ciphertextBytesMax`, or -1 when not even an
 * empty payload (one tag) fits.
 */
export function plaintextBytesMaxFor(ciphertextBytesMax: number, chunkBytes = sendChunkBytes): number {
  const fullChunks = Math.floor(ciphertextBytesMax / (chunkBytes + chunkTagBytes));
  const rest = ciphertextBytesMax - fullChunks * (chunkBytes + chunkTagBytes);
  let largest: number;
  if (rest > chunkTagBytes)
    largest = fullChunks * chunkBytes + rest - chunkTagBytes; // and a partial chunk
  else if (fullChunks > 0)
    largest = fullChunks * chunkBytes; // the rest holds no tag and byte
  else largest = rest === chunkTagBytes ? 0 : -1; // an empty payload is one tag
  assert(
    largest === -1
      ? ciphertextBytesFor(0, chunkBytes) > ciphertextBytesMax
      : ciphertextBytesFor(largest, chunkBytes) <= ciphertextBytesMax &&
          ciphertextBytesFor(largest + 1, chunkBytes) > ciphertextBytesMax,
    'plaintextBytesMaxFor is the largest plaintext that fits',
  );
  return largest;
}

/**
 * The refusal of a message over its topic's policy, worded as the ledger's own (MESSAGE_REJECTED,
 * reason MESSAGE_TOO_LARGE), so an application sees one error whichever of the two refused it.
 */
export function messageTooLarge(
  label: string,
  topic: string,
  messageBytesMax: number,
  detail: string,
): LedgerbusError {
  return new LedgerbusError(
    ErrorCode.MessageRejected,
    `message ${label}: MESSAGE_TOO_LARGE (${detail}; topic ${topic} allows ${messageBytesMax} bytes encrypted)`,
    { details: { reason: RejectReason.MessageTooLarge } },
  );
}
