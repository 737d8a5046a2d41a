/**
 * Blocks of a partition's local ledger (DESIGN.md §2, layer 1): a hash-chained header, the ordered
 * transactions and their execution results, and a commit certificate of replica signatures over the
 * header hash, so that anyone holding the group's public keys can check a block offline.
 */
import { decodeWith, encodeCanonical, t } from '../codec/index.js';
import type { CborValue, Schema } from '../codec/index.js';
import {
  bytesEqual,
  domainHash,
  hashBytes,
  merkleRoot,
  publicKeyBytes,
  signatureBytes,
} from '../crypto/index.js';
import type { Signer, SigningDomain } from '../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import {
  BLOCK_HEADER_TYPE,
  BLOCK_VOTE_TYPE,
  encodeBlockHeader,
  headerSchema,
  headerToCbor,
  identifierLengthMax,
} from './header.js';
import type { BlockHeader, CertificateSignature } from './header.js';
import { resultLeaf } from './result-leaf.js';

export { BLOCK_HEADER_TYPE, BLOCK_VOTE_TYPE, encodeBlockHeader, headerSchema } from './header.js';
export type { BlockHeader, CertificateSignature } from './header.js';

export interface CommitCertificate {
  readonly signatures: readonly CertificateSignature[];
}

export interface Block {
  readonly header: BlockHeader;
  readonly certificate: CommitCertificate;
  readonly transactions: readonly Uint8Array[];
  readonly results: readonly Uint8Array[];
}

/**
 * Who certifies the blocks of one group in one epoch, in one network. A group id ("demo/0") names a
 * group only within its network, so the network is part of the membership: a certificate verifies
 * only with the signing domain of the network its replicas signed it in.
 */
export interface GroupMembership {
  /** The network the group belongs to: its replicas' block votes are signed in this domain. */
  readonly signing: SigningDomain;
  readonly partitionId: string;
  readonly configEpoch: number;
  /** Replica id → Ed25519 public key (32 bytes). */
  readonly members: ReadonlyMap<string, Uint8Array>;
}

/** Upper bounds on what a peer can make us decode and hold for one block. */
export const blockLimits = {
  /** Transactions (and, separately, results) per block. */
  transactionsMax: 100_000,
  /** Size of one transaction or one result. */
  transactionBytesMax: 1024 * 1024,
  /** Size of a whole encoded block; the default `maxBytes` of decodeBlock. */
  blockBytesMax: 64 * 1024 * 1024,
  /** Signatures in a certificate before membership is known; groups have 4 to 7 replicas. */
  signaturesMax: 64,
  /** Length of a partition id and of a replica id. */
  identifierLengthMax,
} as const;

const ZERO_HASH = new Uint8Array(hashBytes);

const identifier = t.string({ minLength: 1, maxLength: blockLimits.identifierLengthMax });

const payloadList = t.array(t.bytes({ maxLength: blockLimits.transactionBytesMax }), {
  maxItems: blockLimits.transactionsMax,
});

const blockSchema: Schema<Block> = t.record({
  header: headerSchema,
  certificate: t.record({
    signatures: t.array(t.record({ signer: identifier, signature: t.bytes({ length: signatureBytes }) }), {
      maxItems: blockLimits.signaturesMax,
    }),
  }),
  transactions: payloadList,
  results: payloadList,
});

function blockToCbor(b: Block): CborValue {
  return {
    header: headerToCbor(b.header),
    certificate: {
      signatures: b.certificate.signatures.map((s) => ({ signer: s.signer, signature: s.signature })),
    },
    transactions: b.transactions,
    results: b.results,
  };
}

/** The block's identity: domainHash('block-header', encodeBlockHeader(h)), 32 bytes. */
export function blockHash(h: BlockHeader): Uint8Array {
  return domainHash(BLOCK_HEADER_TYPE, encodeBlockHeader(h));
}

/**
 * Canonical CBOR of the whole block. Checks the shape and the limits first, so that what is encoded
 * always decodes again: throws LedgerbusError SchemaMismatch or Oversize otherwise.
 */
export function encodeBlock(b: Block): Uint8Array {
  checkBlockShape(b);
  const bytes = encodeCanonical(blockToCbor(b));
  if (bytes.length > blockLimits.blockBytesMax) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `block at height ${b.header.height} is ${bytes.length} bytes, over blockBytesMax ${blockLimits.blockBytesMax}`,
    );
  }
  return bytes;
}

/**
 * Strictly decodes a block: canonical CBOR, exact field set, every limit of `blockLimits`. Throws
 * LedgerbusError (MalformedEncoding, SchemaMismatch or Oversize). Verifies nothing cryptographic: call
 * verifyBlock on the result.
 */
export function decodeBlock(bytes: Uint8Array, opts: { maxBytes?: number } = {}): Block {
  return decodeWith(blockSchema, bytes, { maxBytes: opts.maxBytes ?? blockLimits.blockBytesMax });
}

/**
 * Faults tolerated by a group of n replicas: f = floor((n-1)/3). Throws BadConfig unless n is a
 * positive safe integer.
 */
export function faultTolerance(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new LedgerbusError(ErrorCode.BadConfig, `group size must be a positive integer, got ${n}`);
  }
  return Math.floor((n - 1) / 3);
}

/**
 * Signatures a commit certificate needs in a group of n replicas: ceil((n+f+1)/2). This is 2f+1
 * whenever n = 3f+1 (n = 4, 7, ...). For the other sizes 2f+1 is unsafe: with n = 6 (f = 1) two
 * disjoint sets of 3 could certify conflicting blocks; ceil((n+f+1)/2) makes any two quorums share at
 * least f+1 replicas, hence one correct replica, for every n.
 */
export function certificateQuorum(n: number): number {
  const f = faultTolerance(n);
  return Math.ceil((n + f + 1) / 2);
}

/**
 * Verifies a block's shape, group, link, certificate and contents. Throws LedgerbusError with:
 * SchemaMismatch / Oversize (shape or limits), WrongGroup (partition or epoch differ from
 * `membership`), BrokenChain (height 0, height 1 with a non-zero previousHash, or — when `previous` is
 * given — a height that is not previous+1, a previousHash that is not blockHash(previous), or a lower
 * config epoch), NonMember (a signer or the proposer outside the group), DuplicateSigner, Oversize
 * (more signatures than members), InsufficientSignatures (fewer than certificateQuorum(n) signers),
 * BadSignature (any signature in the certificate fails — one made in another network than
 * `membership.signing`'s among them: a forged signature makes the certificate malformed even if the
 * others reach the quorum), RootMismatch (transactions or results root).
 * The certificate is checked before the Merkle roots so that a junk block costs at most n signature
 * checks, not a hash over its whole contents. Returns normally only if the block is valid.
 */
export function verifyBlock(block: Block, membership: GroupMembership, previous?: BlockHeader): void {
  checkBlockShape(block);
  checkMembership(membership);
  const header = block.header;
  if (header.partitionId !== membership.partitionId || header.configEpoch !== membership.configEpoch) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `block ${header.partitionId}@${header.height} is for epoch ${header.configEpoch}, but the membership is ` +
        `${membership.partitionId} epoch ${membership.configEpoch}`,
    );
  }
  checkLink(header, previous);
  if (!membership.members.has(header.proposer)) {
    throw new LedgerbusError(
      ErrorCode.NonMember,
      `block ${header.height} names proposer ${JSON.stringify(header.proposer)}, not a member of epoch ${membership.configEpoch}`,
    );
  }
  verifyCertificate(blockHash(header), header.height, block.certificate, membership);
  checkRoot('transactions', block.transactions, header.transactionsRoot, header.height);
  checkRoot('results', block.results.map(resultLeaf), header.resultsRoot, header.height);
}

/**
 * Verifies a contiguous run of blocks in ascending height order: the first against `previous` (or, if
 * absent, only its own rules, so a run starting at height 1 checks the genesis link), each later one
 * against the block before it. `membershipFor(epoch)` supplies the group of each block's configEpoch;
 * it may throw if the epoch is unknown. Throws the first error verifyBlock throws.
 */
export function verifyChain(
  blocks: readonly Block[],
  membershipFor: (epoch: number) => GroupMembership,
  previous?: BlockHeader,
): void {
  let prior = previous;
  for (const block of blocks) {
    verifyBlock(block, membershipFor(block.header.configEpoch), prior);
    prior = block.header;
  }
}

/**
 * Verifies a header's commit certificate alone (no block contents): the group and epoch match
 * `membership`, the proposer is a member, and the signatures reach the quorum. This is what a proof
 * carries instead of a whole block. Throws as verifyBlock does for those checks.
 */
export function verifyHeaderCertificate(
  header: BlockHeader,
  certificate: CommitCertificate,
  membership: GroupMembership,
): void {
  checkMembership(membership);
  if (header.partitionId !== membership.partitionId || header.configEpoch !== membership.configEpoch) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `block ${header.partitionId}@${header.height} epoch ${header.configEpoch} is not of ${membership.partitionId} epoch ${membership.configEpoch}`,
    );
  }
  if (header.height < 1) throw new LedgerbusError(ErrorCode.BrokenChain, 'block height 0 does not exist');
  if (!membership.members.has(header.proposer)) {
    throw new LedgerbusError(
      ErrorCode.NonMember,
      `block ${header.height} names a proposer outside the group`,
    );
  }
  verifyCertificate(blockHash(header), header.height, certificate, membership);
}

/**
 * Builds a certificate by signing the header hash with every given signer (a replica key bound to
 * its network), in the given order. Meant for tests, benches and simulators; replicas collect their
 * votes through consensus instead.
 */
export function certifyHeader(
  header: BlockHeader,
  signers: readonly { readonly id: string; readonly signer: Signer }[],
): CommitCertificate {
  const hash = blockHash(header);
  return {
    signatures: signers.map(({ id, signer }) => ({
      signer: id,
      signature: signer.sign(BLOCK_VOTE_TYPE, hash),
    })),
  };
}

/** Throws SchemaMismatch or Oversize unless `block` has exactly the shape decodeBlock accepts. */
function checkBlockShape(block: Block): void {
  // The decoded CBOR value and the in-memory Block have the same shape, so one schema checks both a
  // block from the wire and one built in this process (which could otherwise store unreadable bytes).
  blockSchema.parse(blockToCbor(block), 'block');
}

function checkMembership(membership: GroupMembership): void {
  if (membership.members.size === 0) {
    throw new LedgerbusError(ErrorCode.BadConfig, `membership of ${membership.partitionId} has no members`);
  }
  for (const [id, key] of membership.members) {
    if (key.length !== publicKeyBytes) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `membership.members: key of ${JSON.stringify(id)} is ${key.length} bytes, expected ${publicKeyBytes}`,
      );
    }
  }
}

function checkLink(header: BlockHeader, previous: BlockHeader | undefined): void {
  if (header.height < 1) {
    throw new LedgerbusError(ErrorCode.BrokenChain, 'block height 0 does not exist; heights start at 1');
  }
  if (previous === undefined) {
    if (header.height === 1 && !bytesEqual(header.previousHash, ZERO_HASH)) {
      throw new LedgerbusError(ErrorCode.BrokenChain, 'block 1 must have an all-zero previousHash');
    }
    return;
  }
  if (header.partitionId !== previous.partitionId) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `block of ${header.partitionId} cannot follow a block of ${previous.partitionId}`,
    );
  }
  if (header.height !== previous.height + 1) {
    throw new LedgerbusError(
      ErrorCode.BrokenChain,
      `block height ${header.height} does not follow height ${previous.height}`,
    );
  }
  if (!bytesEqual(header.previousHash, blockHash(previous))) {
    throw new LedgerbusError(
      ErrorCode.BrokenChain,
      `block ${header.height} does not link to the hash of block ${previous.height}`,
    );
  }
  if (header.configEpoch < previous.configEpoch) {
    throw new LedgerbusError(
      ErrorCode.BrokenChain,
      `block ${header.height} has config epoch ${header.configEpoch}, below ${previous.configEpoch} of its predecessor`,
    );
  }
}

function verifyCertificate(
  hash: Uint8Array,
  height: number,
  certificate: CommitCertificate,
  membership: GroupMembership,
): void {
  const n = membership.members.size;
  const signatures = certificate.signatures;
  if (signatures.length > n) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `certificate of block ${height} has ${signatures.length} signatures for a group of ${n}`,
    );
  }
  // Structure first (cheap), signatures last (expensive), so a malformed certificate costs no crypto.
  const seen = new Set<string>();
  for (const { signer } of signatures) {
    if (!membership.members.has(signer)) {
      throw new LedgerbusError(
        ErrorCode.NonMember,
        `certificate of block ${height} is signed by ${JSON.stringify(signer)}, not a member of epoch ${membership.configEpoch}`,
      );
    }
    if (seen.has(signer)) {
      throw new LedgerbusError(
        ErrorCode.DuplicateSigner,
        `certificate of block ${height} lists ${JSON.stringify(signer)} more than once`,
      );
    }
    seen.add(signer);
  }
  const quorum = certificateQuorum(n);
  if (seen.size < quorum) {
    throw new LedgerbusError(
      ErrorCode.InsufficientSignatures,
      `certificate of block ${height} has ${seen.size} signers, needs ${quorum} of ${n}`,
    );
  }
  for (const { signer, signature } of signatures) {
    const publicKey = membership.members.get(signer);
    if (publicKey === undefined || !membership.signing.verify(publicKey, BLOCK_VOTE_TYPE, hash, signature)) {
      throw new LedgerbusError(
        ErrorCode.BadSignature,
        `signature of ${JSON.stringify(signer)} on block ${height} does not verify in network ${membership.signing.network}`,
      );
    }
  }
}

function checkRoot(
  what: 'transactions' | 'results',
  leaves: readonly Uint8Array[],
  expected: Uint8Array,
  height: number,
): void {
  if (!bytesEqual(merkleRoot(leaves), expected)) {
    throw new LedgerbusError(
      ErrorCode.RootMismatch,
      `${what} of block ${height} do not match its ${what}Root`,
    );
  }
}
