// A replica-set change starts a new epoch of a partition's group from the previous epoch's closing
// block (PbftConfig.base): the new replicas continue the same hash chain at the next height, sign
// with their own keys, and can change views although no one of them signed the base.
import { describe, expect, it } from 'vitest';
import { headerHash } from './messages.js';
import { Cluster } from '../../partition/testing/cluster.js';

function committedOld(): Cluster {
  const old = new Cluster({ replicas: 4, label: 'epoch-old' });
  for (let i = 0; i < 3; i++) {
    old.request(old.client(i).request());
    old.tickUntil(() => old.nodes.every((node) => node.ledger.length === i + 1), 50, `old block ${i + 1}`);
  }
  return old;
}

describe('a new epoch continues from its base checkpoint', () => {
  it('links its first block to the base and certifies it with the new keys', () => {
    const old = committedOld();
    const closing = old.node(0).ledger[2]!.block;
    const base = { header: closing.header, signatures: closing.signatures };
    // Every new replica holds the old epoch's ledger (the node copies it before starting the epoch).
    const next = new Cluster({
      replicas: 4,
      label: 'epoch-new',
      tuning: { base },
      ledger: old.node(0).ledger,
    });
    next.request(next.client(0).request());
    next.tickUntil(
      () => next.nodes.every((node) => node.ledger.length === 4),
      50,
      'first block of the epoch',
    );
    for (const node of next.nodes) {
      const header = node.ledger[3]!.block.header;
      expect(header.height).toBe(4);
      expect(header.previousHash).toEqual(headerHash(node.signer.crypto, closing.header));
      const signers = new Set(node.ledger[3]!.block.signatures.map((signature) => signature.signer));
      expect(signers.size).toBeGreaterThanOrEqual(3);
    }
  });

  it('changes views in the new epoch (the base stands as the stable checkpoint)', () => {
    const old = committedOld();
    const closing = old.node(0).ledger[2]!.block;
    const base = { header: closing.header, signatures: closing.signatures };
    const next = new Cluster({
      replicas: 4,
      label: 'epoch-view',
      tuning: { base },
      ledger: old.node(0).ledger,
    });
    next.crash(0);
    next.request(next.client(0).request(), [1, 2, 3]);
    next.tickUntil(
      () => [1, 2, 3].every((index) => next.node(index).ledger.length === 4),
      5_000,
      'a block after a view change',
    );
    for (const index of [1, 2, 3]) {
      expect(next.node(index).core.view).toBeGreaterThan(0);
      expect(next.node(index).ledger[3]!.block.header.height).toBe(4);
    }
    expect(next.nodes.slice(1).every((node) => !node.rejectedCodes().includes('BAD_VIEW_CHANGE'))).toBe(true);
  });
});
