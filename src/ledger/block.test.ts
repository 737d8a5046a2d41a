import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../codec/index.js';
import { bytesEqual } from '../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { ErrorCode as ErrorCodeType } from '../errors.js';
import { makeBlock, makeChain, makeGroup, recertify, transactionsFor } from '../../test/ledger/fixtures.js';
import {
  BLOCK_VOTE_TYPE,
  blockHash,
  certificateQuorum,
  decodeBlock,
  encodeBlock,
  encodeBlockHeader,
  faultTolerance,
  verifyBlock,
  verifyChain,
} from './block.js';
import type { Block, GroupMembership } from './block.js';

function expectCode(run: () => unknown, code: ErrorCodeType): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ${code}`).toBeInstanceOf(LedgerbusError);
  expect((thrown as LedgerbusError).code).toBe(code);
}

describe('group arithmetic', () => {
  it('tolerates f = floor((n-1)/3) faults and needs 2f+1 signatures when n = 3f+1', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map(faultTolerance)).toEqual([0, 0, 0, 1, 1, 1, 2, 3]);
    expect(certificateQuorum(4)).toBe(3);
    expect(certificateQuorum(7)).toBe(5);
    expect(certificateQuorum(10)).toBe(7);
  });

  it('needs ceil((n+f+1)/2) for other sizes, so any two quorums share a correct replica', () => {
    for (let n = 1; n <= 31; n++) {
      const f = faultTolerance(n);
      const q = certificateQuorum(n);
      expect(2 * q - n, `n=${n}`).toBeGreaterThanOrEqual(f + 1);
      expect(q, `n=${n}`).toBeLessThanOrEqual(n - f); // live with f replicas silent
    }
    expect(certificateQuorum(5)).toBe(4);
    expect(certificateQuorum(6)).toBe(4);
  });

  it('rejects a group size that is not a positive integer', () => {
    expectCode(() => faultTolerance(0), ErrorCode.BadConfig);
    expectCode(() => faultTolerance(2.5), ErrorCode.BadConfig);
  });
});

describe('encoding', () => {
  const group = makeGroup({ n: 4 });

  it('round-trips a block and encodes deterministically', () => {
    const block = makeBlock({ group });
    const bytes = encodeBlock(block);
    const decoded = decodeBlock(bytes);
    expect(decoded).toEqual(block);
    expect(encodeBlock(decoded)).toEqual(bytes);
    expect(blockHash(decoded.header)).toEqual(blockHash(block.header));
    expect(blockHash(block.header)).toHaveLength(32);
  });

  it('leaves extra properties of the caller’s objects out of the signed bytes', () => {
    const block = makeBlock({ group });
    const withExtra = { ...block.header, note: 'not signed' };
    expect(encodeBlockHeader(withExtra)).toEqual(encodeBlockHeader(block.header));
  });

  it('rejects unknown fields, missing fields and wrong sizes with typed errors', () => {
    const block = makeBlock({ group });
    const header = {
      partitionId: block.header.partitionId,
      configEpoch: block.header.configEpoch,
      height: block.header.height,
      previousHash: block.header.previousHash,
      transactionsRoot: block.header.transactionsRoot,
      resultsRoot: block.header.resultsRoot,
      timestamp: block.header.timestamp,
      view: block.header.view,
      proposer: block.header.proposer,
    };
    const body = { certificate: { signatures: [] }, transactions: [], results: [] };
    expectCode(
      () => decodeBlock(encodeCanonical({ ...body, header: { ...header, extra: 1 } })),
      ErrorCode.SchemaMismatch,
    );
    const { view: _view, ...missing } = header;
    expectCode(() => decodeBlock(encodeCanonical({ ...body, header: missing })), ErrorCode.SchemaMismatch);
    expectCode(
      () =>
        decodeBlock(encodeCanonical({ ...body, header: { ...header, previousHash: new Uint8Array(31) } })),
      ErrorCode.SchemaMismatch,
    );
    expectCode(
      () => encodeBlock({ ...block, header: { ...block.header, height: -1 } }),
      ErrorCode.SchemaMismatch,
    );
    expectCode(() => decodeBlock(encodeBlock(block), { maxBytes: 16 }), ErrorCode.Oversize);
  });
});

describe('verifyBlock', () => {
  for (const n of [4, 7]) {
    describe(`with ${n} members`, () => {
      const group = makeGroup({ n });
      const quorum = certificateQuorum(n);
      const chain = makeChain(group, 3);
      const [first, second] = chain as [Block, Block, Block];

      it('accepts a block signed by exactly a quorum, and by every member', () => {
        verifyBlock(first, group.membership);
        verifyBlock(second, group.membership, first.header);
        const everyone = makeBlock({
          group,
          previous: first.header,
          signerIndexes: [...Array(n).keys()].reverse(),
        });
        verifyBlock(everyone, group.membership, first.header);
        verifyChain(chain, () => group.membership);
      });

      it('rejects too few signers', () => {
        const short = makeBlock({ group, signerIndexes: [...Array(quorum - 1).keys()] });
        expectCode(() => verifyBlock(short, group.membership), ErrorCode.InsufficientSignatures);
        const none = makeBlock({ group, signerIndexes: [] });
        expectCode(() => verifyBlock(none, group.membership), ErrorCode.InsufficientSignatures);
      });

      it('rejects a duplicate signer even when the distinct signers reach the quorum', () => {
        const indexes = [...Array(quorum).keys()];
        const duplicated = makeBlock({ group, signerIndexes: [...indexes, 0] });
        expectCode(() => verifyBlock(duplicated, group.membership), ErrorCode.DuplicateSigner);
      });

      it('rejects a signer outside the group, even a correctly signing one', () => {
        const outsider = makeGroup({ n: 1, keySeed: 99 }).signers[0]!;
        const block = makeBlock({ group });
        const mallory = {
          signer: 'mallory',
          signature: outsider.signer.sign(BLOCK_VOTE_TYPE, blockHash(block.header)),
        };
        const withOutsider = {
          ...block,
          certificate: { signatures: [...block.certificate.signatures.slice(0, quorum - 1), mallory] },
        };
        expectCode(() => verifyBlock(withOutsider, group.membership), ErrorCode.NonMember);
        const proposerOutside = recertify(block, { ...block.header, proposer: 'mallory' }, group.signers);
        expectCode(() => verifyBlock(proposerOutside, group.membership), ErrorCode.NonMember);
      });

      it('rejects a block certified in another network by the very same replica keys', () => {
        // Two consortia whose replicas reuse their keys: same ids, keys, partition and epoch.
        const twin = makeGroup({ n, network: 'ledger-testnet-2' });
        expect(twin.membership.members).toEqual(group.membership.members);
        const theirs = makeBlock({ group: twin, signerIndexes: [...Array(n).keys()] });
        verifyBlock(theirs, twin.membership);
        expectCode(() => verifyBlock(theirs, group.membership), ErrorCode.BadSignature);
        expectCode(() => verifyBlock(first, twin.membership), ErrorCode.BadSignature);
        expectCode(() => verifyChain(makeChain(twin, 2), () => group.membership), ErrorCode.BadSignature);
      });

      it('rejects a forged signature even when the others reach the quorum', () => {
        const block = makeBlock({ group, signerIndexes: [...Array(n).keys()] });
        const forge = (index: number, signature: Uint8Array): Block => {
          const signatures = [...block.certificate.signatures];
          signatures[index] = { signer: signatures[index]!.signer, signature };
          return { ...block, certificate: { signatures } };
        };
        // r1's id with r2's signature: valid Ed25519 over the right hash, wrong key.
        const swapped = forge(1, block.certificate.signatures[2]!.signature);
        expectCode(() => verifyBlock(swapped, group.membership), ErrorCode.BadSignature);
        // A real signature of r0, over another header.
        const other = makeBlock({ group, previous: first.header });
        const replayed = forge(0, other.certificate.signatures[0]!.signature);
        expectCode(() => verifyBlock(replayed, group.membership), ErrorCode.BadSignature);
        expectCode(
          () => verifyBlock(forge(n - 1, new Uint8Array(64)), group.membership),
          ErrorCode.BadSignature,
        );
      });

      it('rejects more signatures than members', () => {
        const block = makeBlock({ group, signerIndexes: [...Array(n).keys(), 0] });
        expectCode(() => verifyBlock(block, group.membership), ErrorCode.Oversize);
      });

      it('rejects a wrong previous hash, a wrong height and a non-zero genesis link', () => {
        const badLink = recertify(
          second,
          { ...second.header, previousHash: new Uint8Array(32).fill(7) },
          group.signers,
        );
        expectCode(() => verifyBlock(badLink, group.membership, first.header), ErrorCode.BrokenChain);
        const third = chain[2]!;
        expectCode(() => verifyBlock(third, group.membership, first.header), ErrorCode.BrokenChain);
        const skipped = recertify(
          third,
          { ...third.header, previousHash: blockHash(first.header) },
          group.signers,
        );
        expectCode(() => verifyBlock(skipped, group.membership, first.header), ErrorCode.BrokenChain);
        const badGenesis = recertify(
          first,
          { ...first.header, previousHash: new Uint8Array(32).fill(1) },
          group.signers,
        );
        expectCode(() => verifyBlock(badGenesis, group.membership), ErrorCode.BrokenChain);
        const zero = recertify(first, { ...first.header, height: 0 }, group.signers);
        expectCode(() => verifyBlock(zero, group.membership), ErrorCode.BrokenChain);
      });

      it('rejects contents that do not match the certified roots', () => {
        const swappedTransactions = { ...second, transactions: transactionsFor(99, 2) };
        expectCode(
          () => verifyBlock(swappedTransactions, group.membership, first.header),
          ErrorCode.RootMismatch,
        );
        const droppedResult = { ...second, results: second.results.slice(1) };
        expectCode(() => verifyBlock(droppedResult, group.membership, first.header), ErrorCode.RootMismatch);
        // A header certified with a wrong root is just as bad: the contents are what counts.
        const lyingRoot = recertify(
          second,
          { ...second.header, resultsRoot: new Uint8Array(32) },
          group.signers,
        );
        expectCode(() => verifyBlock(lyingRoot, group.membership, first.header), ErrorCode.RootMismatch);
      });

      it('rejects a membership of another epoch or partition', () => {
        const nextEpoch: GroupMembership = { ...group.membership, configEpoch: 2 };
        expectCode(() => verifyBlock(first, nextEpoch), ErrorCode.WrongGroup);
        const otherPartition: GroupMembership = { ...group.membership, partitionId: 'demo/1' };
        expectCode(() => verifyBlock(first, otherPartition), ErrorCode.WrongGroup);
      });
    });
  }

  it('rejects an empty or malformed membership as configuration', () => {
    const block = makeBlock({ group: makeGroup({ n: 4 }) });
    const signing = makeGroup({ n: 4 }).membership.signing;
    const empty: GroupMembership = { signing, partitionId: 'demo/0', configEpoch: 1, members: new Map() };
    expectCode(() => verifyBlock(block, empty), ErrorCode.BadConfig);
    const shortKey: GroupMembership = {
      signing,
      partitionId: 'demo/0',
      configEpoch: 1,
      members: new Map([['r0', new Uint8Array(3)]]),
    };
    expectCode(() => verifyBlock(block, shortKey), ErrorCode.BadConfig);
  });
});

describe('verifyChain', () => {
  const epoch1 = makeGroup({ n: 4, configEpoch: 1, keySeed: 1 });
  const epoch2 = makeGroup({ n: 7, configEpoch: 2, keySeed: 2 });
  const membershipFor = (epoch: number): GroupMembership => {
    if (epoch === 1) return epoch1.membership;
    if (epoch === 2) return epoch2.membership;
    throw new LedgerbusError(ErrorCode.WrongGroup, `unknown epoch ${epoch}`);
  };
  const before = makeChain(epoch1, 5);
  const after = makeChain(epoch2, 5, before[4]!.header);
  const chain = [...before, ...after];

  it('accepts a chain across a membership change, whole or from any verified block', () => {
    verifyChain(chain, membershipFor);
    verifyChain(chain.slice(6), membershipFor, chain[5]!.header);
    verifyChain([], membershipFor);
  });

  it('rejects a block certified by the old group after the epoch changed', () => {
    const stale = makeBlock({ group: epoch1, previous: after[4]!.header });
    expectCode(() => verifyChain([...chain, stale], membershipFor), ErrorCode.BrokenChain);
    // The same ids r0..r4, but keys that are not those of epoch 2.
    const impostors = makeGroup({ n: 7, configEpoch: 2, keySeed: 1 }).signers.slice(0, 5);
    const forged = recertify(after[0]!, after[0]!.header, impostors);
    expectCode(() => verifyChain([...before, forged], membershipFor), ErrorCode.BadSignature);
  });

  it('rejects a gap, a reordering and a replaced block in the middle', () => {
    expectCode(
      () => verifyChain([...chain.slice(0, 3), ...chain.slice(4)], membershipFor),
      ErrorCode.BrokenChain,
    );
    expectCode(() => verifyChain([chain[1]!, chain[0]!], membershipFor), ErrorCode.BrokenChain);
    const replaced = makeBlock({
      group: epoch1,
      previous: chain[1]!.header,
      transactions: transactionsFor(7, 1),
    });
    expectCode(
      () => verifyChain([...chain.slice(0, 2), replaced, ...chain.slice(3)], membershipFor),
      ErrorCode.BrokenChain,
    );
  });
});

describe('tampering', () => {
  const group = makeGroup({ n: 4 });
  const previous = makeBlock({ group });
  const block = makeBlock({
    group,
    previous: previous.header,
    transactions: transactionsFor(2, 3).map((t) => t.subarray(0, 24)),
    signerIndexes: [0, 1, 2, 3],
  });
  const bytes = encodeBlock(block);

  function decodeAndVerify(mutated: Uint8Array): void {
    verifyBlock(decodeBlock(mutated), group.membership, previous.header);
  }

  it('starts from a valid block', () => {
    decodeAndVerify(bytes);
  });

  it('detects every single-byte change at every position with a typed error', () => {
    for (let position = 0; position < bytes.length; position++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const mutated = bytes.slice();
        mutated[position]! ^= mask;
        expect(() => decodeAndVerify(mutated), `byte ${position} ^ ${mask}`).toThrow(LedgerbusError);
      }
    }
  });

  it('detects random byte changes, insertions and truncations (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.oneof(
          fc.constant('flip' as const),
          fc.constant('truncate' as const),
          fc.constant('insert' as const),
        ),
        (changes, kind) => {
          let mutated = bytes.slice();
          const [position, value] = changes[0]!;
          if (kind === 'truncate') mutated = mutated.subarray(0, position);
          else if (kind === 'insert')
            mutated = Uint8Array.of(...bytes.subarray(0, position), value, ...bytes.subarray(position));
          else for (const [p, mask] of changes) mutated[p]! ^= mask;
          fc.pre(!bytesEqual(mutated, bytes)); // two flips of one byte may cancel out
          expect(() => decodeAndVerify(mutated)).toThrow(LedgerbusError);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
