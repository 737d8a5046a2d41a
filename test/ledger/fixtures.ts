/**
 * Deterministic groups, blocks and chains for the ledger's tests and its crash-test child process.
 * Keys come from fixed seeds and every block's contents from its height, so a restarted writer
 * rebuilds exactly the block it may have been writing when it was killed.
 */
import { SigningDomain, merkleRoot, signingKeyFromSeed } from '../../src/crypto/index.js';
import type { Signer, SigningKeyPair } from '../../src/crypto/index.js';
import { blockHash, certificateQuorum, certifyHeader } from '../../src/ledger/block.js';
import type { Block, BlockHeader, GroupMembership } from '../../src/ledger/block.js';
import { resultsRoot } from '../../src/ledger/result-leaf.js';

/** A replica of a test group: its id, its key, and the key bound to the group's network. */
export interface ReplicaSigner {
  readonly id: string;
  readonly key: SigningKeyPair;
  readonly signer: Signer;
}

export interface TestGroup {
  readonly membership: GroupMembership;
  readonly signers: readonly ReplicaSigner[];
}

/** The network of every test group unless a test names another. */
export const testNetwork = 'ledger-testnet';

/**
 * A group of n replicas `r0..r{n-1}` whose keys derive from (keySeed, index), in network `network`:
 * two groups that differ only in their network have the same keys, as two consortia can.
 */
export function makeGroup(options: {
  n: number;
  partitionId?: string;
  configEpoch?: number;
  keySeed?: number;
  network?: string;
}): TestGroup {
  const partitionId = options.partitionId ?? 'demo/0';
  const configEpoch = options.configEpoch ?? 1;
  const keySeed = options.keySeed ?? 1;
  const signing = SigningDomain.of(options.network ?? testNetwork);
  const signers: ReplicaSigner[] = [];
  for (let index = 0; index < options.n; index++) {
    const seed = new Uint8Array(32);
    seed[0] = keySeed & 0xff;
    seed[1] = index;
    seed[31] = 0x5a;
    const key = signingKeyFromSeed(seed);
    signers.push({ id: `r${index}`, key, signer: signing.signer(key) });
  }
  return {
    membership: {
      signing,
      partitionId,
      configEpoch,
      members: new Map(signers.map((s) => [s.id, s.key.publicKey])),
    },
    signers,
  };
}

/** `count` transactions of varying sizes whose bytes depend only on (height, index). */
export function transactionsFor(height: number, count: number): Uint8Array[] {
  const transactions: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const text = `tx h=${height} i=${index} `;
    const size = text.length + ((height * 31 + index * 17) % 200);
    const bytes = new Uint8Array(size);
    bytes.set(new TextEncoder().encode(text));
    for (let i = text.length; i < size; i++) bytes[i] = (height + index + i) & 0xff;
    transactions.push(bytes);
  }
  return transactions;
}

export interface BlockOptions {
  readonly group: TestGroup;
  /** Header of the block this one follows; absent for height 1. */
  readonly previous?: BlockHeader;
  readonly transactions?: readonly Uint8Array[];
  readonly results?: readonly Uint8Array[];
  /** Which replicas sign (indexes into group.signers); defaults to the first certificateQuorum(n). */
  readonly signerIndexes?: readonly number[];
  readonly view?: number;
}

/** A correctly linked and certified block following `previous`. */
export function makeBlock(options: BlockOptions): Block {
  const { group, previous } = options;
  const height = previous === undefined ? 1 : previous.height + 1;
  const transactions = options.transactions ?? transactionsFor(height, 1 + (height % 5));
  const results =
    options.results ?? transactions.map((_, i) => new TextEncoder().encode(`ok ${height}/${i}`));
  const n = group.signers.length;
  const view = options.view ?? 0;
  const header: BlockHeader = {
    partitionId: group.membership.partitionId,
    configEpoch: group.membership.configEpoch,
    height,
    previousHash: previous === undefined ? new Uint8Array(32) : blockHash(previous),
    transactionsRoot: merkleRoot(transactions),
    resultsRoot: resultsRoot(results),
    timestamp: 1_700_000_000_000 + height * 1000,
    view,
    proposer: `r${view % n}`,
  };
  const indexes = options.signerIndexes ?? [...Array(certificateQuorum(n)).keys()];
  const signers = indexes.map((i) => group.signers[i]).filter((s): s is ReplicaSigner => s !== undefined);
  return { header, certificate: certifyHeader(header, signers), transactions, results };
}

/** `count` consecutive blocks after `previous` (or from height 1), all certified by `group`. */
export function makeChain(group: TestGroup, count: number, previous?: BlockHeader): Block[] {
  const blocks: Block[] = [];
  let prior = previous;
  for (let i = 0; i < count; i++) {
    const block = makeBlock({ group, previous: prior });
    blocks.push(block);
    prior = block.header;
  }
  return blocks;
}

/** Re-signs a (possibly altered) header with the given signers, keeping the rest of the block. */
export function recertify(block: Block, header: BlockHeader, signers: readonly ReplicaSigner[]): Block {
  return { ...block, header, certificate: certifyHeader(header, signers) };
}
