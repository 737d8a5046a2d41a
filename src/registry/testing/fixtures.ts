/**
 * A small network for registry tests: deterministic keys, a genesis, signed admin entries and real
 * certified blocks of partition "t/0", so that every test builds the same bytes on every run.
 */
import { encodeWith, toHex } from '../../codec/index.js';
import { SigningDomain, merkleRoot, signingKeyFromSeed } from '../../crypto/index.js';
import type { SigningKeyPair } from '../../crypto/index.js';
import { transactionResultSchema } from '../../contracts/results.js';
import { blockHash, certifyHeader, encodeBlock } from '../../ledger/block.js';
import type { Block, BlockHeader, CommitCertificate } from '../../ledger/block.js';
import {
  SYSTEM_GROUP,
  decodeRegistryResult,
  encodeRegistryEntry,
  signAdminTransaction,
  signNodePossession,
} from '../admin-transactions.js';
import type { AdminAction, AdminTransaction, RegistryResult } from '../admin-transactions.js';
import type { Genesis } from '../genesis-schema.js';
import { SystemStateMachine } from '../system-state.js';
import type { SystemView } from '../system-state.js';
import type { GlobalLedgerSink } from '../topic-state.js';
import { resultsRoot } from '../../ledger/result-leaf.js';

export const networkName = 'testnet';
/** Where everything the fixtures sign is valid: the genesis network's domain. */
export const signing = SigningDomain.of(networkName);
export const topic = 't';
export const partition = 't/0';
export const policy = { messageBytesMax: 10_000, ttlMs: 60_000, payloadRetentionMs: 5_000 };
export const startTime = 1_700_000_000_000;

// Deriving a key costs milliseconds, and the tests ask for the same few keys thousands of times.
const keys = new Map<string, SigningKeyPair>();

/** A key derived from a label alone, so keys are stable across runs and processes. */
export function keyFor(label: string): SigningKeyPair {
  const seed = new Uint8Array(32);
  seed.set(new TextEncoder().encode(label.slice(0, 32)));
  const id = toHex(seed);
  let key = keys.get(id);
  if (key === undefined) {
    key = signingKeyFromSeed(seed);
    keys.set(id, key);
  }
  return key;
}

export function connectorKey(organization: string, n = 0): SigningKeyPair {
  return keyFor(`connector:${organization}:${n}`);
}

export function nodeKey(id: string): SigningKeyPair {
  return keyFor(`node:${id}`);
}

/**
 * A `registerNode` action of `organization` for node `id`, with the proof of possession signed by
 * `key` (the node's own key unless a test forges one).
 */
export function registerNodeAction(
  organization: string,
  id: string,
  address: string,
  key: SigningKeyPair = nodeKey(id),
  prover: SigningKeyPair = key,
  proverNetwork: SigningDomain = signing,
): Extract<AdminAction, { kind: 'registerNode' }> {
  return {
    kind: 'registerNode',
    id,
    publicKey: key.publicKey,
    address,
    proof: signNodePossession({ organization, id, address }, proverNetwork.signer(prover)),
  };
}

/** Any 32 bytes will do: the registry stores the encryption key but never uses it. */
export function encryptionKey(label: string): Uint8Array {
  const key = new Uint8Array(32);
  key.set(new TextEncoder().encode(`enc:${label}`.slice(0, 32)));
  return key;
}

/** alpha and beta are members, sup a member and supervisor, aud an auditor; n1..n6 are nodes. */
export const genesisOrganizations = {
  alpha: ['member'],
  beta: ['member'],
  sup: ['member', 'supervisor'],
  aud: ['auditor'],
} as const;
export const genesisNodes = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'] as const;
export const partitionReplicas = ['n1', 'n2', 'n3', 'n4'] as const;

export function nodeOwner(id: string): string {
  return ['alpha', 'beta', 'sup', 'aud'][(Number(id.slice(1)) - 1) % 4]!;
}

export function testGenesis(): Genesis {
  return {
    network: networkName,
    organizations: Object.entries(genesisOrganizations).map(([id, roles]) => ({
      id,
      roles: [...roles],
      signingKeys: [toHex(connectorKey(id).publicKey)],
      encryptionKey: toHex(encryptionKey(id)),
    })),
    nodes: genesisNodes.map((id, i) => ({
      id,
      organization: nodeOwner(id),
      publicKey: toHex(nodeKey(id).publicKey),
      address: `127.0.0.1:${7401 + i}`,
    })),
    topics: [
      {
        name: topic,
        partitions: [{ replicas: [...partitionReplicas] }],
        producers: ['alpha', 'beta'],
        consumers: ['alpha', 'beta'],
        policy: { ...policy },
      },
    ],
  };
}

export function replica(id: string): { id: string; publicKey: Uint8Array } {
  return { id, publicKey: nodeKey(id).publicKey };
}

/** alpha creates topic `orders` (one partition on n1–n4; alpha produces, beta consumes). */
export function createOrders(): AdminAction {
  return {
    kind: 'createTopic',
    name: 'orders',
    partitions: [partitionReplicas.map(replica)],
    producers: ['alpha'],
    consumers: ['beta'],
    policy: { ...policy },
  };
}

let nonceCounter = 0;

/** A nonce never handed out before in this process: replays are only ever deliberate. */
export function freshNonce(): Uint8Array {
  nonceCounter++;
  const nonce = new Uint8Array(16);
  new DataView(nonce.buffer).setUint32(12, nonceCounter);
  nonce[0] = 0xa5;
  return nonce;
}

export interface AdminOptions {
  readonly group?: string;
  readonly key?: SigningKeyPair;
  /** The network the transaction is signed for; the genesis network unless a test says otherwise. */
  readonly signing?: SigningDomain;
  readonly nonce?: Uint8Array;
  readonly timestamp?: number;
}

export function signedAdmin(
  organization: string,
  action: AdminAction,
  options: AdminOptions = {},
): AdminTransaction {
  return signAdminTransaction(
    {
      group: options.group ?? SYSTEM_GROUP,
      organization,
      nonce: options.nonce ?? freshNonce(),
      timestamp: options.timestamp ?? startTime,
      action,
    },
    (options.signing ?? signing).signer(options.key ?? connectorKey(organization)),
  );
}

export function adminEntry(transaction: AdminTransaction, systemIndex?: number): Uint8Array {
  return encodeRegistryEntry(
    systemIndex === undefined ? { type: 'admin', transaction } : { type: 'admin', transaction, systemIndex },
  );
}

export function blocksEntry(partitionId: string, blocks: readonly Uint8Array[]): Uint8Array {
  return encodeRegistryEntry({ type: 'blocks', partition: partitionId, blocks: [...blocks] });
}

/** 'OK', or the reason code of a rejection. */
export function outcome(bytes: Uint8Array): string {
  const result: RegistryResult = decodeRegistryResult(bytes);
  return result.status === 'OK' ? 'OK' : result.reason;
}

/**
 * A SystemStateMachine fed as Raft would feed it: every entry at the next index, rejected or not,
 * so `applied()` is the index of the last entry seen.
 */
export class SystemHarness {
  readonly machine: SystemStateMachine;
  private index = 0;

  constructor(genesis: Genesis = testGenesis()) {
    this.machine = new SystemStateMachine(genesis);
  }

  applied(): number {
    return this.index;
  }

  /** Applies `data` at the next index and returns 'OK' or the reason code. */
  submit(data: Uint8Array): string {
    this.index++;
    return outcome(this.machine.apply(this.index, data));
  }

  admin(organization: string, action: AdminAction, options: AdminOptions = {}): string {
    return this.submit(adminEntry(signedAdmin(organization, action, options)));
  }

  /** What a TopicStateMachine reads: the network, the registry at an index and how far it is applied. */
  get reader(): { network: string; at(index: number): SystemView; applied(): number } {
    return {
      network: this.machine.network,
      at: (index) => this.machine.at(index),
      applied: () => this.index,
    };
  }
}

export interface SinkEntry {
  readonly partition: string;
  readonly height: number;
  readonly hash: string;
  readonly bytes: Uint8Array;
  readonly accepted: readonly string[];
  readonly raftIndex: number;
}

/** The global ledger in memory: what a node's SQLite would hold. */
export class MemorySink implements GlobalLedgerSink {
  readonly entries: SinkEntry[] = [];

  append(entry: Parameters<GlobalLedgerSink['append']>[0]): void {
    this.entries.push({
      partition: entry.partition,
      height: entry.block.header.height,
      hash: toHex(blockHash(entry.block.header)),
      bytes: entry.bytes,
      accepted: entry.index.accepted.map((message) => message.id),
      raftIndex: entry.raftIndex,
    });
  }

  heights(): number[] {
    return this.entries.map((entry) => entry.height);
  }
}

// ---- blocks ----

/** A replica's id and key, as a block's certificate names them. */
export interface ReplicaKey {
  readonly id: string;
  readonly key: SigningKeyPair;
}

export function replicaSigners(ids: readonly string[] = partitionReplicas): ReplicaKey[] {
  return ids.map((id) => ({ id, key: nodeKey(id) }));
}

const zeroHash = new Uint8Array(32);

export interface BlockSpec {
  readonly height: number;
  readonly previous?: BlockHeader;
  readonly previousHash?: Uint8Array;
  readonly configEpoch?: number;
  readonly partitionId?: string;
  readonly transactions?: readonly Uint8Array[];
  readonly results?: readonly Uint8Array[];
  /** Defaults to the first 3 of the 4 replicas: exactly a quorum. */
  readonly signers?: readonly ReplicaKey[];
  /** The network the replicas sign in; the genesis network unless a test says otherwise. */
  readonly signing?: SigningDomain;
  readonly proposer?: string;
}

export function transactionBytes(height: number, n: number): Uint8Array {
  return new TextEncoder().encode(`tx ${height}.${n}`);
}

/** A certified block, built the way a partition's replicas would. */
export function buildBlock(spec: BlockSpec): Block {
  const transactions = spec.transactions ?? [
    transactionBytes(spec.height, 0),
    transactionBytes(spec.height, 1),
  ];
  const results = spec.results ?? transactions.map((_, n) => new TextEncoder().encode(`result ${n}`));
  const header: BlockHeader = {
    partitionId: spec.partitionId ?? partition,
    configEpoch: spec.configEpoch ?? 0,
    height: spec.height,
    previousHash: spec.previousHash ?? (spec.previous === undefined ? zeroHash : blockHash(spec.previous)),
    transactionsRoot: merkleRoot(transactions),
    resultsRoot: resultsRoot(results),
    timestamp: startTime + spec.height * 1000,
    view: 0,
    proposer: spec.proposer ?? 'n1',
  };
  const domain = spec.signing ?? signing;
  const certificate = certifyHeader(
    header,
    (spec.signers ?? replicaSigners().slice(0, 3)).map(({ id, key }) => ({ id, signer: domain.signer(key) })),
  );
  return { header, certificate, transactions: [...transactions], results: [...results] };
}

/** `count` consecutive valid blocks from height 1. */
export function validChain(count: number, signers?: readonly ReplicaKey[]): Block[] {
  const blocks: Block[] = [];
  for (let height = 1; height <= count; height++) {
    const previous = blocks.at(-1)?.header;
    blocks.push(
      buildBlock({
        height,
        ...(previous === undefined ? {} : { previous }),
        ...(signers === undefined ? {} : { signers }),
      }),
    );
  }
  return blocks;
}

export const outsider: ReplicaKey = { id: 'n9', key: keyFor('node:outsider') };

/** Every way the tests make a block that must not enter the global ledger. */
export const lieKinds = [
  'twoSignatures',
  'nonMemberSigner',
  'nonMemberKey',
  'forgedSignatureByte',
  'tamperedTransaction',
  'wrongPreviousHash',
  'unknownEpoch',
  'undecodable',
] as const;
export type LieKind = (typeof lieKinds)[number];

function withCertificate(block: Block, certificate: CommitCertificate): Block {
  return { ...block, certificate };
}

/**
 * The encoded lie for the block at `height` whose predecessor is `previous`: each differs from the
 * valid block in exactly one respect, so a rejection can only come from the check under test.
 */
export function lie(kind: LieKind, height: number, previous: BlockHeader | undefined): Uint8Array {
  const base = { height, ...(previous === undefined ? {} : { previous }) };
  const valid = buildBlock(base);
  const signers = replicaSigners();
  switch (kind) {
    case 'twoSignatures':
      return encodeBlock(buildBlock({ ...base, signers: signers.slice(0, 2) }));
    case 'nonMemberSigner':
      return encodeBlock(buildBlock({ ...base, signers: [signers[0]!, signers[1]!, outsider] }));
    case 'nonMemberKey':
      // A member's name on a signature made with a key that is not the member's.
      return encodeBlock(
        buildBlock({ ...base, signers: [signers[0]!, signers[1]!, { id: 'n3', key: outsider.key }] }),
      );
    case 'forgedSignatureByte': {
      const signatures = valid.certificate.signatures.map((signature, i) => {
        if (i !== 1) return signature;
        const forged = Uint8Array.from(signature.signature);
        forged[10] = forged[10]! ^ 0x01;
        return { signer: signature.signer, signature: forged };
      });
      return encodeBlock(withCertificate(valid, { signatures }));
    }
    case 'tamperedTransaction':
      return encodeBlock({
        ...valid,
        transactions: [new TextEncoder().encode(`forged ${height}`), ...valid.transactions.slice(1)],
      });
    case 'wrongPreviousHash':
      return encodeBlock(buildBlock({ ...base, previousHash: new Uint8Array(32).fill(height % 255 || 1) }));
    case 'unknownEpoch':
      return encodeBlock(buildBlock({ ...base, configEpoch: 7 }));
    case 'undecodable': {
      const bytes = encodeBlock(valid);
      return bytes.subarray(0, bytes.length - 5);
    }
  }
}

/** An encoded publish result accepting message `id` at `offset`, as the SDT contract writes it. */
export function publishResult(id: string, sender: string, offset: number, height: number): Uint8Array {
  return encodeWith(transactionResultSchema, {
    status: 'OK',
    type: 'publish',
    sender,
    messagesRoot: new Uint8Array(32).fill(7),
    messageCount: 1,
    messages: [{ id, status: 'ACCEPTED', offset, height, transactionIndex: 0, messageIndex: 0 }],
  });
}
