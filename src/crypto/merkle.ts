import { createHash } from 'node:crypto';
import { assert } from '../errors.js';
import { t } from '../codec/schema.js';
import type { Schema } from '../codec/schema.js';
import { bytesEqual } from '../codec/bytes.js';
import { hashBytes, prefixedHash } from './hash.js';

/*
 * RFC 9162 (Certificate Transparency v2) Merkle trees over SHA-256. Leaves and inner nodes are
 * hashed under different one-byte prefixes so that no inner node can pose as a leaf: Fabric's
 * CVE-2023-46132 forked ledgers through exactly that kind of ambiguous concatenation.
 */

const leafPrefix = new Uint8Array([0x00]);
const nodePrefix = new Uint8Array([0x01]);

/** Longest audit path we accept: enough for 2^64 leaves, far beyond any real tree. */
export const inclusionPathLengthMax = 64;

/** RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Uint8Array {
  return prefixedHash(leafPrefix, data);
}

/** RFC 9162 §2.1.1 inner node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return prefixedHash(nodePrefix, left, right);
}

/** Proof that a leaf is at `leafIndex` in a tree of `treeSize` leaves: sibling hashes, leaf first. */
export interface InclusionProof {
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly path: readonly Uint8Array[];
}

/** Strict schema for decoding an InclusionProof received from a peer. */
export const inclusionProofSchema: Schema<InclusionProof> = t.record({
  leafIndex: t.uint(),
  treeSize: t.uint({ min: 1 }),
  path: t.array(t.bytes({ length: hashBytes }), { maxItems: inclusionPathLengthMax }),
});

/**
 * A Merkle tree with every level kept, for batches where each leaf needs a proof: O(n) hashes to
 * build, then O(log n) per proof. Built bottom-up, pairing neighbours and carrying an unpaired last
 * node up unchanged, which yields exactly RFC 9162's tree (split at the largest power of two < n).
 */
export class MerkleTree {
  /** levels[0] holds the leaf hashes, the last level holds the root alone. */
  private readonly levels: readonly (readonly Uint8Array[])[];
  /** MTH of the leaves; SHA-256 of the empty string for an empty tree. */
  readonly root: Uint8Array;
  readonly size: number;

  /** Hashes `leaves` (raw leaf data, not leaf hashes). */
  constructor(leaves: readonly Uint8Array[]) {
    const levels: Uint8Array[][] = [leaves.map(leafHash)];
    for (let level = levels[0] as Uint8Array[]; level.length > 1;) {
      const parent: Uint8Array[] = [];
      for (let index = 0; index + 1 < level.length; index += 2) {
        parent.push(nodeHash(level[index] as Uint8Array, level[index + 1] as Uint8Array));
      }
      if (level.length % 2 === 1) parent.push(level[level.length - 1] as Uint8Array);
      levels.push(parent);
      level = parent;
    }
    this.levels = levels;
    this.size = leaves.length;
    this.root = leaves.length === 0 ? digest() : (levels[levels.length - 1]?.[0] as Uint8Array);
  }

  /** RFC 9162 §2.1.3.1 inclusion proof for the leaf at `leafIndex`, which must be < size. */
  proof(leafIndex: number): InclusionProof {
    assert(
      Number.isSafeInteger(leafIndex) && leafIndex >= 0 && leafIndex < this.size,
      `leaf index ${leafIndex} is outside a tree of ${this.size} leaves`,
    );
    const path: Uint8Array[] = [];
    let index = leafIndex;
    for (const level of this.levels.slice(0, -1)) {
      const sibling = index ^ 1;
      // A node without a sibling was carried up unchanged and contributes nothing to the path.
      if (sibling < level.length) path.push(level[sibling] as Uint8Array);
      index >>>= 1;
    }
    return { leafIndex, treeSize: this.size, path };
  }
}

/** RFC 9162 §2.1.1 Merkle Tree Hash of `leaves` (raw leaf data). */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return digest();
  // The same bottom-up pairing as MerkleTree, one level at a time in one array: a root needs no
  // level kept (roots are taken per block, per batch and per proof check on the hot paths).
  const level = leaves.map(leafHash);
  for (let size = level.length; size > 1; size = Math.ceil(size / 2)) {
    for (let index = 0; index + 1 < size; index += 2) {
      level[index >>> 1] = nodeHash(level[index] as Uint8Array, level[index + 1] as Uint8Array);
    }
    if (size % 2 === 1) level[(size - 1) >>> 1] = level[size - 1] as Uint8Array;
  }
  return level[0] as Uint8Array;
}

/** Inclusion proof for one leaf; O(n). Use MerkleTree when proving many leaves of the same tree. */
export function inclusionProof(leaves: readonly Uint8Array[], leafIndex: number): InclusionProof {
  return new MerkleTree(leaves).proof(leafIndex);
}

/**
 * RFC 9162 §2.1.3.2: true iff `proof` shows that `leaf` (raw leaf data) is at `proof.leafIndex` in
 * the tree of `proof.treeSize` leaves whose root is `root`. Returns false, never throws, for any
 * mismatch or malformed proof (index ≥ size, path too long or short, hashes of the wrong length).
 *
 * The root does not commit to the tree size (a proof for leaf 0 of 5 leaves also fits a claimed
 * size of 7), so callers must check `proof.treeSize` against a size taken from signed data, such
 * as the batch's message count in the block header, and never trust the proof's own claim.
 */
export function verifyInclusion(root: Uint8Array, leaf: Uint8Array, proof: InclusionProof): boolean {
  const { leafIndex, treeSize, path } = proof;
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize)) return false;
  if (leafIndex < 0 || leafIndex >= treeSize || root.length !== hashBytes) return false;
  if (!Array.isArray(path) || path.length > inclusionPathLengthMax) return false;
  // Arithmetic rather than bit operators: indexes may exceed 2^32 (up to 2^53).
  let fn = leafIndex;
  let sn = treeSize - 1;
  let hash = leafHash(leaf);
  for (const sibling of path) {
    if (!(sibling instanceof Uint8Array) || sibling.length !== hashBytes || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      hash = nodeHash(sibling, hash);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      hash = nodeHash(hash, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesEqual(hash, root);
}

function asBytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function digest(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return asBytes(hash.digest());
}
