/**
 * The signed requests one organization's connector sends another's through the nodes for escrowed
 * chunks (off-chain, like a payload fetch request): a sender placing a chunk on a holder, and an
 * auditor asking a holder for one. Each names its network, expires, and carries a nonce the holder
 * remembers until then, so a captured request cannot be replayed; the holder checks the signature
 * against the registry itself and trusts no node.
 */
import { decodeWith, encodeCanonical, encodeWith, t } from '../../codec/index.js';
import type { Infer, Schema } from '../../codec/index.js';
import type { Signer, SigningDomain } from '../../crypto/index.js';
import { nonceBytes, transactionLimits } from '../limits.js';
import { escrowLimits } from './transactions.js';

export const CHUNK_PUT_SIGNING_TYPE = 'escrow-chunk-put';
export const CHUNK_GET_SIGNING_TYPE = 'escrow-chunk-get';

const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const messageId = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });

const common = {
  /** The organization that signed. */
  requester: organizationId,
  signerKey: t.bytes({ length: 32 }),
  /** The organization asked: its connector refuses a request meant for another. */
  holder: organizationId,
  /** Partition group id of the message, e.g. "invoices/0". */
  group: t.string({ minLength: 1, maxLength: 512 }),
  id: messageId,
  chunkIndex: t.uint({ max: escrowLimits.chunksMax - 1 }),
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: t.uint(),
  network: t.string({ minLength: 1, maxLength: 128 }),
  expiresAt: t.uint(),
};

/** A sender places chunk `chunkIndex` (SHA-256 `chunkHash`, `chunkSize` bytes) of message `id` on `holder`. */
export const chunkPutRequestSchema = t.record({
  type: t.literal('escrowChunkPut'),
  ...common,
  chunkHash: t.bytes({ length: 32 }),
  chunkSize: t.uint({ min: 1, max: escrowLimits.chunkBytesMax }),
  signature: t.bytes({ length: 64 }),
});
export type ChunkPutRequest = Infer<typeof chunkPutRequestSchema>;

/**
 * The auditor of approved audit `requestId` asks `holder` for chunk `chunkIndex` of message `id`,
 * the one whose SHA-256 the master table names (`chunkHash`): a holder may keep several placements
 * of one place (a send and its retry), and serves only that one.
 */
export const chunkGetRequestSchema = t.record({
  type: t.literal('escrowChunkGet'),
  ...common,
  requestId: t.string({ minLength: 1, maxLength: escrowLimits.requestIdLengthMax }),
  chunkHash: t.bytes({ length: 32 }),
  signature: t.bytes({ length: 64 }),
});
export type ChunkGetRequest = Infer<typeof chunkGetRequestSchema>;

export type ChunkRequest = ChunkPutRequest | ChunkGetRequest;

function signingType(request: Pick<ChunkRequest, 'type'>): string {
  return request.type === 'escrowChunkPut' ? CHUNK_PUT_SIGNING_TYPE : CHUNK_GET_SIGNING_TYPE;
}

/** Every field but the signature, canonically encoded. */
function signingPayload(request: Omit<ChunkRequest, 'signature'>): Uint8Array {
  const fields: Record<string, unknown> = { ...request };
  delete fields['signature'];
  return encodeCanonical(fields as Parameters<typeof encodeCanonical>[0]);
}

/** What a caller states in a request; the signer fills in its key and network, and the default expiry. */
type Unsigned<R extends ChunkRequest> = Omit<
  R,
  'type' | 'signerKey' | 'network' | 'expiresAt' | 'signature'
> & {
  expiresAt?: number;
};

/** How long a chunk request is valid when its maker does not say. */
const lifetimeMsDefault = 60_000;

function encodeChunkRequest<R extends ChunkRequest>(
  type: R['type'],
  schema: Schema<R>,
  request: Unsigned<R>,
  signer: Signer,
): Uint8Array {
  const unsigned = {
    type,
    ...request,
    signerKey: signer.publicKey,
    network: signer.domain.network,
    expiresAt: request.expiresAt ?? request.timestamp + lifetimeMsDefault,
  } as unknown as Omit<R, 'signature'>;
  return encodeWith(schema, {
    ...unsigned,
    signature: signer.sign(signingType({ type }), signingPayload(unsigned)),
  } as R);
}

/** Signs a chunk placement for the signer's network; it expires a minute after `timestamp` unless told. */
export function encodeChunkPutRequest(request: Unsigned<ChunkPutRequest>, signer: Signer): Uint8Array {
  return encodeChunkRequest('escrowChunkPut', chunkPutRequestSchema, request, signer);
}

/** Signs an auditor's chunk request for the signer's network, like `encodeChunkPutRequest`. */
export function encodeChunkGetRequest(request: Unsigned<ChunkGetRequest>, signer: Signer): Uint8Array {
  return encodeChunkRequest('escrowChunkGet', chunkGetRequestSchema, request, signer);
}

/** Decodes strictly; throws LedgerbusError on malformed bytes. Does not check the signature. */
export function decodeChunkPutRequest(bytes: Uint8Array): ChunkPutRequest {
  return decodeWith(chunkPutRequestSchema, bytes, { maxBytes: 4096 });
}

export function decodeChunkGetRequest(bytes: Uint8Array): ChunkGetRequest {
  return decodeWith(chunkGetRequestSchema, bytes, { maxBytes: 4096 });
}

/** True if `request` carries a valid signature by its `signerKey` in the network of `signing`. */
export function chunkRequestSignatureValid(request: ChunkRequest, signing: SigningDomain): boolean {
  return signing.verify(request.signerKey, signingType(request), signingPayload(request), request.signature);
}
