/**
 * A recipient's signed request for a payload (DESIGN §3 steps 7–12). The node that relays it checks
 * the requester against committed state; the sender's connector checks the signature and its own
 * record of the recipients again, so neither has to trust the other.
 */
import { decodeWith, encodeCanonical, encodeWith, t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { sign, verify } from '../crypto/index.js';
import type { SigningKeyPair } from '../crypto/index.js';
import { nonceBytes, transactionLimits } from './transactions.js';

export const FETCH_SIGNING_TYPE = 'sdt-fetch';

export const fetchRequestSchema = t.record({
  type: t.literal('fetch'),
  requester: t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax }),
  signerKey: t.bytes({ length: 32 }),
  partitionId: t.string({ minLength: 1, maxLength: 512 }),
  id: t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax }),
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: t.uint(),
  signature: t.bytes({ length: 64 }),
});
export type FetchRequest = Infer<typeof fetchRequestSchema>;

function signingPayload(request: Omit<FetchRequest, 'signature'>): Uint8Array {
  return encodeCanonical({
    type: 'fetch',
    requester: request.requester,
    signerKey: request.signerKey,
    partitionId: request.partitionId,
    id: request.id,
    nonce: request.nonce,
    timestamp: request.timestamp,
  });
}

export function encodeFetchRequest(
  request: Omit<FetchRequest, 'signature' | 'signerKey' | 'type'>,
  key: SigningKeyPair,
): Uint8Array {
  const unsigned = { type: 'fetch' as const, ...request, signerKey: key.publicKey };
  return encodeWith(fetchRequestSchema, {
    ...unsigned,
    signature: sign(key, FETCH_SIGNING_TYPE, signingPayload(unsigned)),
  });
}

/** Decodes strictly; throws LedgerbusError on malformed bytes. Does not check the signature. */
export function decodeFetchRequest(bytes: Uint8Array): FetchRequest {
  return decodeWith(fetchRequestSchema, bytes, { maxBytes: 4096 });
}

export function fetchRequestSignatureValid(request: FetchRequest): boolean {
  return verify(request.signerKey, FETCH_SIGNING_TYPE, signingPayload(request), request.signature);
}
