import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeWith, encodeCanonical, encodeWith } from '../codec/index.js';
import { fromHex, toHex } from './hash.js';
import { MerkleTree, inclusionProof, inclusionProofSchema, merkleRoot, verifyInclusion } from './merkle.js';
import type { InclusionProof } from './merkle.js';

function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** RFC 9162 §2.1.1 MTH, transcribed literally as the reference the fast implementation must match. */
function referenceRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sha256(new Uint8Array());
  if (leaves.length === 1) return sha256(Uint8Array.of(0), leaves[0] as Uint8Array);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256(Uint8Array.of(1), referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}

/** Distinct leaves, so that moving a proof to another position can never legitimately succeed. */
function leavesOf(count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => new TextEncoder().encode(`leaf ${index}`));
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7));
  return copy;
}

function flipNumberBit(n: number, bit: number): number {
  const value = 2 ** bit;
  return Math.floor(n / value) % 2 === 1 ? n - value : n + value;
}

/** RFC 9162 §2.1.3.1 audit path length for `index` in a tree of `size` leaves, from the recursion. */
function pathLength(index: number, size: number): number {
  if (size <= 1) return 0;
  let k = 1;
  while (k * 2 < size) k *= 2;
  return 1 + (index < k ? pathLength(index, k) : pathLength(index - k, size - k));
}

function forEachProof(
  sizeMax: number,
  check: (leaf: Uint8Array, proof: InclusionProof, root: Uint8Array) => void,
): void {
  for (let size = 1; size <= sizeMax; size++) {
    const leaves = leavesOf(size);
    const tree = new MerkleTree(leaves);
    leaves.forEach((leaf, index) => check(leaf, tree.proof(index), tree.root));
  }
}

describe('Merkle tree (RFC 9162)', () => {
  // Leaves and roots of the Certificate Transparency reference implementation's test vectors.
  const ctLeaves = [
    '',
    '00',
    '10',
    '2021',
    '3031',
    '40414243',
    '5051525354555657',
    '606162636465666768696a6b6c6d6e6f',
  ];
  const ctRoots = [
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
    '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
    'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
  ];

  it.each(ctRoots.map((root, size) => [size, root] as const))(
    'root of %i leaves matches the vectors',
    (size, root) => {
      const leaves = ctLeaves.slice(0, size).map(fromHex);
      expect(toHex(merkleRoot(leaves))).toBe(root);
      expect(toHex(referenceRoot(leaves))).toBe(root);
    },
  );

  it('matches the literal recursive definition for arbitrary leaves', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 70 }), (leaves) => {
        expect(merkleRoot(leaves)).toEqual(referenceRoot(leaves));
      }),
    );
  });

  // Leaves on both sides of where a leaf stops being copied for a one-shot hash.
  it('matches the literal recursive definition for leaves of 4 KiB and more', () => {
    const leaves = [0, 4095, 4096, 4097, 10_000].map((size) =>
      Uint8Array.from({ length: size }, (_, index) => (index * 7 + size) % 256),
    );
    expect(merkleRoot(leaves)).toEqual(referenceRoot(leaves));
    expect(new MerkleTree(leaves).root).toEqual(referenceRoot(leaves));
  });

  it('every proof verifies for sizes 1..70, and proofs have RFC 9162 length', () => {
    for (let size = 1; size <= 70; size++) {
      const leaves = leavesOf(size);
      const tree = new MerkleTree(leaves);
      expect(tree.root).toEqual(referenceRoot(leaves));
      for (let index = 0; index < size; index++) {
        const proof = tree.proof(index);
        expect(proof).toEqual(inclusionProof(leaves, index));
        expect(verifyInclusion(tree.root, leaves[index] as Uint8Array, proof)).toBe(true);
        expect(proof.path.length).toBeLessThanOrEqual(Math.ceil(Math.log2(size)));
      }
    }
  });

  it('rejects a proof whose index has any single bit flipped', () => {
    forEachProof(70, (leaf, proof, root) => {
      for (let bit = 0; bit < 53; bit++) {
        expect(
          verifyInclusion(root, leaf, { ...proof, leafIndex: flipNumberBit(proof.leafIndex, bit) }),
        ).toBe(false);
      }
    });
  });

  it('rejects a proof whose size has a bit flipped, whenever that changes the audit path length', () => {
    forEachProof(70, (leaf, proof, root) => {
      for (let bit = 0; bit < 53; bit++) {
        const treeSize = flipNumberBit(proof.treeSize, bit);
        if (proof.leafIndex < treeSize && pathLength(proof.leafIndex, treeSize) === proof.path.length)
          continue;
        expect(verifyInclusion(root, leaf, { ...proof, treeSize })).toBe(false);
      }
    });
  });

  it('cannot detect every wrong size, because an RFC 9162 root does not commit to its size', () => {
    // Leaf 0's path in trees of 5 and 7 leaves has the same shape, so the same proof fits both:
    // the tree size must come from signed data (a block header), never from the proof alone.
    const leaves = leavesOf(5);
    const tree = new MerkleTree(leaves);
    expect(verifyInclusion(tree.root, leaves[0] as Uint8Array, { ...tree.proof(0), treeSize: 7 })).toBe(true);
  });

  it('rejects any single bit flip in the leaf, a path hash or the root', () => {
    const scenario = fc
      .integer({ min: 1, max: 70 })
      .chain((size) =>
        fc.tuple(fc.constant(size), fc.nat({ max: size - 1 }), fc.nat(), fc.nat({ max: 255 })),
      );
    fc.assert(
      fc.property(scenario, ([size, index, pick, bit]) => {
        const leaves = leavesOf(size);
        const tree = new MerkleTree(leaves);
        const proof = tree.proof(index);
        const leaf = leaves[index] as Uint8Array;
        expect(verifyInclusion(tree.root, flipBit(leaf, bit % (leaf.length * 8)), proof)).toBe(false);
        expect(verifyInclusion(flipBit(tree.root, bit), leaf, proof)).toBe(false);
        if (proof.path.length > 0) {
          const at = pick % proof.path.length;
          const path = proof.path.map((hash, i) => (i === at ? flipBit(hash, bit) : hash));
          expect(verifyInclusion(tree.root, leaf, { ...proof, path })).toBe(false);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('rejects a proof taken from a tree of a different size', () => {
    for (let size = 1; size <= 40; size++) {
      for (let otherSize = 1; otherSize <= 40; otherSize++) {
        if (otherSize === size) continue;
        const other = new MerkleTree(leavesOf(otherSize));
        const tree = new MerkleTree(leavesOf(size));
        for (let index = 0; index < Math.min(size, otherSize); index++) {
          const leaf = leavesOf(size)[index] as Uint8Array;
          expect(verifyInclusion(other.root, leaf, tree.proof(index))).toBe(false);
          expect(verifyInclusion(other.root, leaf, { ...tree.proof(index), treeSize: otherSize })).toBe(
            false,
          );
        }
      }
    }
  });

  it('rejects malformed proofs without throwing', () => {
    const leaves = leavesOf(5);
    const tree = new MerkleTree(leaves);
    const proof = tree.proof(2);
    const leaf = leaves[2] as Uint8Array;
    const malformed: InclusionProof[] = [
      { ...proof, path: proof.path.slice(1) },
      { ...proof, path: [...proof.path, new Uint8Array(32)] },
      { ...proof, path: [proof.path[0] as Uint8Array, new Uint8Array(31)] },
      { ...proof, leafIndex: 5 },
      { ...proof, leafIndex: -1 },
      { ...proof, leafIndex: 1.5 },
      { ...proof, treeSize: 0 },
      { ...proof, treeSize: Number.NaN },
      { ...proof, path: Array.from({ length: 65 }, () => new Uint8Array(32)) },
    ];
    for (const bad of malformed) expect(verifyInclusion(tree.root, leaf, bad)).toBe(false);
    expect(verifyInclusion(tree.root.subarray(1), leaf, proof)).toBe(false);
  });

  it('rejects a leaf of one tree posing as the inner node it hashes into (second preimage)', () => {
    const leaves = leavesOf(4);
    const tree = new MerkleTree(leaves);
    const proof = tree.proof(0);
    // Concatenating the two lower-level hashes would be a "leaf" under an unprefixed scheme.
    const forged = new Uint8Array([
      ...sha256(Uint8Array.of(0), leaves[0] as Uint8Array),
      ...(proof.path[0] as Uint8Array),
    ]);
    expect(
      verifyInclusion(tree.root, forged, { leafIndex: 0, treeSize: 2, path: [proof.path[1] as Uint8Array] }),
    ).toBe(false);
  });

  it('an empty tree has the hash of the empty string as root and no proofs', () => {
    const tree = new MerkleTree([]);
    expect(toHex(tree.root)).toBe(ctRoots[0]);
    expect(() => tree.proof(0)).toThrow(/outside a tree of 0 leaves/);
  });

  it('inclusionProofSchema round-trips a proof and rejects malformed ones', () => {
    const proof = new MerkleTree(leavesOf(9)).proof(8);
    // An interface has no index signature, so encodeWith (which also validates) is how to encode one.
    expect(decodeWith(inclusionProofSchema, encodeWith(inclusionProofSchema, proof))).toEqual(proof);
    expect(() =>
      decodeWith(inclusionProofSchema, encodeCanonical({ ...proof, path: [new Uint8Array(3)] })),
    ).toThrow(/^path\[0\]: expected exactly 32 bytes/);
  });
});
