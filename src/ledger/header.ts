/**
 * The block header and its canonical encoding: what every replica signs and every verifier hashes.
 * It depends on the codec alone, so the consensus cores share it with the ledger rather than keep a
 * copy that could drift.
 */
import { encodeCanonical, t } from '../codec/index.js';
import type { CborValue, Schema } from '../codec/index.js';

export interface BlockHeader {
  /** Consensus group id, e.g. "demo/0". */
  readonly partitionId: string;
  /** Membership epoch of the group that certified this block. */
  readonly configEpoch: number;
  /** Equals the PBFT sequence number; the first block has height 1. */
  readonly height: number;
  /** blockHash of the previous header (32 bytes); all zero for height 1. */
  readonly previousHash: Uint8Array;
  /** merkleRoot(transactions). */
  readonly transactionsRoot: Uint8Array;
  /** merkleRoot(results.map(resultLeaf)): see result-leaf.ts. */
  readonly resultsRoot: Uint8Array;
  /** Milliseconds since the epoch, stamped by the primary into the proposal. */
  readonly timestamp: number;
  /** View in which the batch was proposed. */
  readonly view: number;
  /** Replica id of that view's primary. */
  readonly proposer: string;
  /**
   * The __system and topic-group indexes whose registry the batch was executed against (DESIGN §2),
   * named by the primary. Absent in groups that run without a Raft layer (tests, simulator).
   */
  readonly systemIndex?: number;
  readonly topicIndex?: number;
}

export interface CertificateSignature {
  readonly signer: string;
  readonly signature: Uint8Array;
}

/** Signatures of a commit certificate are over blockHash(header) in this domain. */
export const BLOCK_VOTE_TYPE = 'block-vote';
/** blockHash(header) = domainHash(BLOCK_HEADER_TYPE, encodeBlockHeader(header)). */
export const BLOCK_HEADER_TYPE = 'block-header';

/** Length of a partition id and of a replica id. */
export const identifierLengthMax = 256;
const hash32 = t.bytes({ length: 32 });
const identifier = t.string({ minLength: 1, maxLength: identifierLengthMax });

export const headerSchema: Schema<BlockHeader> = t.record({
  partitionId: identifier,
  configEpoch: t.uint(),
  height: t.uint(),
  previousHash: hash32,
  transactionsRoot: hash32,
  resultsRoot: hash32,
  timestamp: t.uint(),
  view: t.uint(),
  proposer: identifier,
  systemIndex: t.optional(t.uint()),
  topicIndex: t.optional(t.uint()),
});

export function headerToCbor(h: BlockHeader): CborValue {
  // Listing the fields explicitly (rather than passing `h` through) keeps extra properties that a
  // caller's object may carry out of the signed bytes.
  return {
    partitionId: h.partitionId,
    configEpoch: h.configEpoch,
    height: h.height,
    previousHash: h.previousHash,
    transactionsRoot: h.transactionsRoot,
    resultsRoot: h.resultsRoot,
    timestamp: h.timestamp,
    view: h.view,
    proposer: h.proposer,
    ...(h.systemIndex === undefined ? {} : { systemIndex: h.systemIndex }),
    ...(h.topicIndex === undefined ? {} : { topicIndex: h.topicIndex }),
  };
}

/**
 * Canonical CBOR of the header as a map keyed by field name. Deterministic: equal headers give equal
 * bytes, which is what replicas sign (through blockHash). Throws if a number is not a safe integer.
 */
export function encodeBlockHeader(h: BlockHeader): Uint8Array {
  return encodeCanonical(headerToCbor(h));
}
