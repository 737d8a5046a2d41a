/**
 * PBFT wire messages: their schemas, strict decoding and signatures.
 *
 * Every message travels as a signed envelope `{ body, signature }` whose body is canonical CBOR naming
 * its type, group, epoch and sender. Decoding is strict (see src/codec): a malformed, oversize,
 * non-canonical or wrongly-shaped message is a typed error. Nested evidence (prepared certificates in a
 * view change, view changes in a new view) is kept as the original signed envelopes so that anyone can
 * check it again.
 */
import { decodeWith, encodeCanonical, t } from '../../codec/index.js';
import type { CborValue, Schema } from '../../codec/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import {
  BLOCK_HEADER_TYPE,
  BLOCK_VOTE_TYPE,
  encodeBlockHeader,
  headerSchema,
  headerToCbor,
} from '../../ledger/header.js';
import type { CertifiedHeader, PbftBlockHeader, PbftCrypto, Proposal } from './types.js';

export { BLOCK_HEADER_TYPE, BLOCK_VOTE_TYPE };
export const CLIENT_REQUEST_TYPE = 'client-request';
export const PROPOSAL_TYPE = 'pbft-proposal';

/** Limits on what a peer can make us hold. */
export const messageLimits = {
  envelopeBytesMax: 64 * 1024 * 1024,
  requestsPerProposalMax: 100_000,
  requestBytesMax: 1024 * 1024,
  replicasMax: 64,
  preparedPerViewChangeMax: 4096,
  blocksPerReplyMax: 1024,
  // A partition id is the topic name (249 characters at most) plus "/" and the partition number.
  idLengthMax: 256,
} as const;

const hash32 = t.bytes({ length: 32 });
const signature = t.bytes({ minLength: 32, maxLength: 128 });
const id = t.string({ minLength: 1, maxLength: messageLimits.idLengthMax });

const envelopeSchema = t.record({ body: t.bytes({ maxLength: messageLimits.envelopeBytesMax }), signature });
export interface Envelope {
  readonly body: Uint8Array;
  readonly signature: Uint8Array;
}

const proposalSchema = t.record({
  view: t.uint(),
  proposer: id,
  timestamp: t.uint(),
  requests: t.array(t.bytes({ maxLength: messageLimits.requestBytesMax }), {
    maxItems: messageLimits.requestsPerProposalMax,
  }),
  systemIndex: t.optional(t.uint()),
  topicIndex: t.optional(t.uint()),
});

const certificateSignatureSchema = t.record({ signer: id, signature });
const certifiedHeaderSchema = t.record({
  header: headerSchema,
  signatures: t.array(certificateSignatureSchema, { maxItems: messageLimits.replicasMax }),
});

const common = { group: id, epoch: t.uint(), from: t.uint({ max: messageLimits.replicasMax - 1 }) };

const prePrepareSchema = t.record({
  type: t.literal('pre-prepare'),
  ...common,
  view: t.uint(),
  seq: t.uint(),
  digest: hash32,
  proposal: proposalSchema,
});
const prepareSchema = t.record({
  type: t.literal('prepare'),
  ...common,
  view: t.uint(),
  seq: t.uint(),
  digest: hash32,
});
const commitSchema = t.record({
  type: t.literal('commit'),
  ...common,
  view: t.uint(),
  seq: t.uint(),
  digest: hash32,
});
const blockVoteSchema = t.record({ type: t.literal('block-vote'), ...common, header: headerSchema });
const preparedCertificateSchema = t.record({
  prePrepare: envelopeSchema,
  prepares: t.array(envelopeSchema, { maxItems: messageLimits.replicasMax }),
});
const viewChangeSchema = t.record({
  type: t.literal('view-change'),
  ...common,
  newView: t.uint(),
  stable: t.nullable(certifiedHeaderSchema),
  prepared: t.array(preparedCertificateSchema, { maxItems: messageLimits.preparedPerViewChangeMax }),
});
const newViewSchema = t.record({
  type: t.literal('new-view'),
  ...common,
  view: t.uint(),
  viewChanges: t.array(envelopeSchema, { maxItems: messageLimits.replicasMax }),
  prePrepares: t.array(envelopeSchema, { maxItems: messageLimits.preparedPerViewChangeMax }),
});
const statusSchema = t.record({
  type: t.literal('status'),
  ...common,
  view: t.uint(),
  inViewChange: t.bool(),
  lastExecuted: t.uint(),
  lastCertified: t.uint(),
  stableSeq: t.uint(),
});
const fetchBlocksSchema = t.record({
  type: t.literal('fetch-blocks'),
  ...common,
  fromSeq: t.uint(),
  count: t.uint(),
});
const transferredBlockSchema = t.record({
  certified: certifiedHeaderSchema,
  requests: t.array(t.bytes({ maxLength: messageLimits.requestBytesMax }), {
    maxItems: messageLimits.requestsPerProposalMax,
  }),
});
const blocksSchema = t.record({
  type: t.literal('blocks'),
  ...common,
  blocks: t.array(transferredBlockSchema, { maxItems: messageLimits.blocksPerReplyMax }),
});

export type PrePrepare = ReturnType<typeof prePrepareSchema.parse>;
export type Prepare = ReturnType<typeof prepareSchema.parse>;
export type Commit = ReturnType<typeof commitSchema.parse>;
export type BlockVote = ReturnType<typeof blockVoteSchema.parse>;
export type ViewChange = ReturnType<typeof viewChangeSchema.parse>;
export type NewView = ReturnType<typeof newViewSchema.parse>;
export type Status = ReturnType<typeof statusSchema.parse>;
export type FetchBlocks = ReturnType<typeof fetchBlocksSchema.parse>;
export type Blocks = ReturnType<typeof blocksSchema.parse>;
export type PreparedCertificate = ReturnType<typeof preparedCertificateSchema.parse>;
export type TransferredBlock = ReturnType<typeof transferredBlockSchema.parse>;

export type PbftMessage =
  PrePrepare | Prepare | Commit | BlockVote | ViewChange | NewView | Status | FetchBlocks | Blocks;
export type PbftMessageType = PbftMessage['type'];

const bodySchemas: { readonly [K in PbftMessageType]: Schema<Extract<PbftMessage, { type: K }>> } = {
  'pre-prepare': prePrepareSchema,
  prepare: prepareSchema,
  commit: commitSchema,
  'block-vote': blockVoteSchema,
  'view-change': viewChangeSchema,
  'new-view': newViewSchema,
  status: statusSchema,
  'fetch-blocks': fetchBlocksSchema,
  blocks: blocksSchema,
};

const typeProbeSchema = t.string({ maxLength: 32 });

/** Distributive Omit, so that omitting from the message union keeps each member's own fields. */
export type MessageFields<M extends PbftMessage> = M extends PbftMessage
  ? Omit<M, 'group' | 'epoch' | 'from'>
  : never;

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return encodeCanonical({ body: envelope.body, signature: envelope.signature });
}

export function decodeEnvelope(bytes: Uint8Array): Envelope {
  return decodeWith(envelopeSchema, bytes, { maxBytes: messageLimits.envelopeBytesMax });
}

/**
 * Decodes a body of a known shape. Throws LedgerbusError (MalformedEncoding, Oversize, SchemaMismatch)
 * for anything else; the type is read first so the error names the right schema.
 */
export function decodeBody(body: Uint8Array): PbftMessage {
  const raw = decodeWith(anyMapSchema, body, { maxBytes: messageLimits.envelopeBytesMax });
  const type = typeProbeSchema.parse((raw as { type?: unknown }).type, 'type');
  const schema = (bodySchemas as Record<string, Schema<PbftMessage> | undefined>)[type];
  if (schema === undefined) {
    throw new LedgerbusError(ErrorCode.SchemaMismatch, `type: unknown PBFT message type "${type}"`);
  }
  return schema.parse(raw, 'body');
}

/** Accepts any decoded CBOR map; the per-type schema then checks it exactly. */
const anyMapSchema: Schema<Record<string, unknown>> = {
  description: 'map',
  parse(value: unknown, path: string): Record<string, unknown> {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
      throw new LedgerbusError(ErrorCode.SchemaMismatch, `${path}: expected a map`);
    }
    return value as Record<string, unknown>;
  },
};

/** The signature domain of a message type. Block votes sign the header hash as the ledger expects. */
function signatureDomain(type: PbftMessageType): string {
  return `pbft-${type}`;
}

export function encodeProposal(proposal: Proposal): Uint8Array {
  return encodeCanonical(proposalToCbor(proposal));
}

function proposalToCbor(proposal: Proposal): CborValue {
  return {
    view: proposal.view,
    proposer: proposal.proposer,
    timestamp: proposal.timestamp,
    requests: [...proposal.requests],
    ...(proposal.systemIndex === undefined ? {} : { systemIndex: proposal.systemIndex }),
    ...(proposal.topicIndex === undefined ? {} : { topicIndex: proposal.topicIndex }),
  };
}

export function proposalDigest(crypto: PbftCrypto, proposal: Proposal): Uint8Array {
  return crypto.hash(PROPOSAL_TYPE, encodeProposal(proposal));
}

/** The block hash the ledger uses: domainHash('block-header', canonical CBOR of the header). */
export function headerHash(crypto: PbftCrypto, header: PbftBlockHeader): Uint8Array {
  return crypto.hash(BLOCK_HEADER_TYPE, encodeBlockHeader(header));
}

export function certifiedHeaderToCbor(certified: CertifiedHeader): CborValue {
  return {
    header: headerToCbor(certified.header),
    signatures: certified.signatures.map((entry) => ({ signer: entry.signer, signature: entry.signature })),
  };
}

function messageToCbor(message: PbftMessage): CborValue {
  switch (message.type) {
    case 'pre-prepare':
      return { ...message, proposal: proposalToCbor(message.proposal) };
    case 'block-vote':
      return { ...message, header: headerToCbor(message.header) };
    case 'view-change':
      return {
        ...message,
        stable: message.stable === null ? null : certifiedHeaderToCbor(message.stable),
        prepared: message.prepared.map((entry) => ({
          prePrepare: envelopeToCbor(entry.prePrepare),
          prepares: entry.prepares.map(envelopeToCbor),
        })),
      };
    case 'new-view':
      return {
        ...message,
        viewChanges: message.viewChanges.map(envelopeToCbor),
        prePrepares: message.prePrepares.map(envelopeToCbor),
      };
    case 'blocks':
      return {
        ...message,
        blocks: message.blocks.map((block) => ({
          certified: certifiedHeaderToCbor(block.certified),
          requests: [...block.requests],
        })),
      };
    default:
      return { ...message };
  }
}

function envelopeToCbor(envelope: Envelope): CborValue {
  return { body: envelope.body, signature: envelope.signature };
}

/**
 * Builds and signs a message from this replica. Block votes are signed over the block hash in the
 * ledger's `block-vote` domain, so that the votes themselves form the block's commit certificate.
 */
export function signMessage(crypto: PbftCrypto, message: PbftMessage): Envelope {
  const body = encodeCanonical(messageToCbor(message));
  const signature =
    message.type === 'block-vote'
      ? crypto.sign(BLOCK_VOTE_TYPE, headerHash(crypto, message.header))
      : crypto.sign(signatureDomain(message.type), body);
  return { body, signature };
}

/** Checks an envelope's signature against the key of the replica its body names. */
export function verifyEnvelope(
  crypto: PbftCrypto,
  envelope: Envelope,
  message: PbftMessage,
  publicKey: Uint8Array,
): boolean {
  if (message.type === 'block-vote') {
    return crypto.verify(publicKey, BLOCK_VOTE_TYPE, headerHash(crypto, message.header), envelope.signature);
  }
  return crypto.verify(publicKey, signatureDomain(message.type), envelope.body, envelope.signature);
}

/** Verifies a block certificate: 2f+1 distinct member signatures over the header hash. */
export function certificateValid(
  crypto: PbftCrypto,
  certified: CertifiedHeader,
  keysById: ReadonlyMap<string, Uint8Array>,
  quorum: number,
): boolean {
  const hash = headerHash(crypto, certified.header);
  const seen = new Set<string>();
  for (const entry of certified.signatures) {
    const key = keysById.get(entry.signer);
    if (key === undefined || seen.has(entry.signer)) return false;
    if (!crypto.verify(key, BLOCK_VOTE_TYPE, hash, entry.signature)) return false;
    seen.add(entry.signer);
  }
  return seen.size >= quorum;
}

// ---- client requests ---------------------------------------------------------------------------

const clientRequestSchema = t.record({
  group: id,
  client: t.bytes({ length: 32 }),
  seq: t.uint(),
  operation: t.bytes({ maxLength: messageLimits.requestBytesMax }),
  signature,
});
export type ClientRequest = ReturnType<typeof clientRequestSchema.parse>;

function clientRequestSigningPayload(request: Omit<ClientRequest, 'signature'>): Uint8Array {
  return encodeCanonical({
    group: request.group,
    client: request.client,
    seq: request.seq,
    operation: request.operation,
  });
}

/**
 * Encodes a client request signed by the client's Ed25519 key (`client` is its public key). The
 * encoded bytes are what goes into a block as a transaction.
 */
export function encodeClientRequest(
  request: Omit<ClientRequest, 'signature'>,
  signWithClientKey: (type: string, payload: Uint8Array) => Uint8Array,
): Uint8Array {
  const signatureBytes = signWithClientKey(CLIENT_REQUEST_TYPE, clientRequestSigningPayload(request));
  return encodeCanonical({ ...request, signature: signatureBytes });
}

export function decodeClientRequest(bytes: Uint8Array, requestBytesMax: number): ClientRequest {
  return decodeWith(clientRequestSchema, bytes, { maxBytes: requestBytesMax });
}

export function clientRequestSignatureValid(crypto: PbftCrypto, request: ClientRequest): boolean {
  return crypto.verify(
    request.client,
    CLIENT_REQUEST_TYPE,
    clientRequestSigningPayload(request),
    request.signature,
  );
}
