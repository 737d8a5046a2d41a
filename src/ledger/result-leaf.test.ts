// The results root's leaf rule: format-1 results are their own leaves (old blocks keep their roots),
// format-2 results commit to each top-level array by its Merkle root; blocks verify by that rule only.
import { describe, expect, it } from 'vitest';
import { codeOf } from '../testing/code-of.js';
import { decodeCanonical, encodeCanonical } from '../codec/index.js';
import type { MerkleTree } from '../crypto/index.js';
import { merkleRoot, verifyInclusion } from '../crypto/index.js';
import { makeBlock, makeGroup, recertify } from '../../test/ledger/fixtures.js';
import { verifyBlock } from './block.js';
import { batchedResult, resultLeaf, resultsRoot } from './result-leaf.js';

const items = Array.from({ length: 5 }, (_, index) => ({ id: `m-${index}`, offset: index }));
const batched = encodeCanonical({ format: 2, sender: 'alice', messages: items, tags: ['x', 'y'] });

describe('resultLeaf', () => {
  it('leaves format-1 results (and bytes that are not CBOR) as they are', () => {
    const v1 = encodeCanonical({ status: 'OK', messages: items });
    expect(resultLeaf(v1)).toBe(v1);
    const other = encodeCanonical({ format: 3, messages: items });
    expect(resultLeaf(other)).toBe(other);
    const junk = new Uint8Array([0xff, 0x00, 0x13]);
    expect(resultLeaf(junk)).toBe(junk);
  });

  it('replaces every top-level array of a format-2 result by the root of its encoded elements', () => {
    const leaf = decodeCanonical(resultLeaf(batched));
    expect(leaf).toEqual({
      format: 2,
      sender: 'alice',
      messages: merkleRoot(items.map((item) => encodeCanonical(item))),
      tags: merkleRoot([encodeCanonical('x'), encodeCanonical('y')]),
    });
    // Each element is proven under its array's root by its own path.
    const list = batchedResult(batched)?.lists.get('messages');
    const root = (leaf as { messages: Uint8Array }).messages;
    expect(list).toBeDefined();
    expect(
      verifyInclusion(root, encodeCanonical(items[3]!), (list as { tree: MerkleTree }).tree.proof(3)),
    ).toBe(true);
  });
});

describe('blocks with format-2 results', () => {
  const group = makeGroup({ n: 4 });
  const results = [encodeCanonical({ status: 'REJECTED' }), batched];
  const transactions = [new Uint8Array([1]), new Uint8Array([2])];

  it('verify against the root of the results’ leaves, and not against the root of their bytes', () => {
    const block = makeBlock({ group, transactions, results });
    expect(block.header.resultsRoot).toEqual(resultsRoot(results));
    expect(codeOf(() => verifyBlock(block, group.membership))).toBe('VALID');
    const signers = group.signers.slice(0, 3);
    const byBytes = recertify(block, { ...block.header, resultsRoot: merkleRoot(results) }, signers);
    expect(codeOf(() => verifyBlock(byBytes, group.membership))).toBe('ROOT_MISMATCH');
  });

  it('refuse a changed element of a batched result', () => {
    const block = makeBlock({ group, transactions, results });
    const changed = encodeCanonical({
      format: 2,
      sender: 'alice',
      messages: items.map((item, index) => (index === 4 ? { ...item, offset: 40 } : item)),
      tags: ['x', 'y'],
    });
    expect(codeOf(() => verifyBlock({ ...block, results: [results[0]!, changed] }, group.membership))).toBe(
      'ROOT_MISMATCH',
    );
  });
});
