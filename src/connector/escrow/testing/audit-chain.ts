/**
 * The partition the auditor's tests run on (see audit-network.ts): a genesis with an escrow topic
 * "vault" replicated by four nodes, and its blocks executed by the real SDT and escrow contracts and
 * certified by three of the four replicas' real Ed25519 keys.
 */
import { toHex } from '../../../codec/index.js';
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../../../consensus/pbft/messages.js';
import { executeBatch } from '../../../contracts/sdt.js';
import { MemoryContractState } from '../../../contracts/state.js';
import type { EncryptionKeyPair } from '../../../crypto/envelope/index.js';
import { merkleRoot, signingKeyFromSeed } from '../../../crypto/index.js';
import type { Signer, SigningDomain, SigningKeyPair } from '../../../crypto/index.js';
import { blockHash, certifyHeader } from '../../../ledger/block.js';
import type { Block, BlockHeader } from '../../../ledger/block.js';
import type { GenesisRegistry } from '../../../registry/genesis.js';
import type { Genesis } from '../../../registry/genesis-schema.js';
import { resultsRoot } from '../../../ledger/result-leaf.js';

export const topic = 'vault';
export const group = `${topic}/0`;
export const escrowChunkBytes = 4096;
/**
 * alice sends; h1–h3 hold shares and chunks, h4 chunks only; bob is a member that approves;
 * inspector is the auditor (`AuditNetwork.staleRegistry` also names others, a view the chain disagrees with).
 */
export const organizationIds = ['alice', 'h1', 'h2', 'h3', 'h4', 'bob', 'inspector'] as const;
export type OrganizationId = (typeof organizationIds)[number];

export interface TestOrganization {
  readonly key: SigningKeyPair;
  readonly encryption: EncryptionKeyPair;
}

export function seeded(name: string): Uint8Array {
  const seed = new Uint8Array(32);
  seed.set(new TextEncoder().encode(`audit-test/${name}`).subarray(0, 32));
  return seed;
}

export function genesisOf(
  organizations: Record<OrganizationId, TestOrganization>,
  auditors: readonly string[],
): Genesis {
  const replicas = [1, 2, 3, 4].map((index) => signingKeyFromSeed(seeded(`node${index}`)));
  return {
    network: 'audit-testnet',
    organizations: organizationIds.map((id) => ({
      id,
      roles: id === 'inspector' ? ['auditor'] : auditors.includes(id) ? ['member', 'auditor'] : ['member'],
      signingKeys: [toHex(organizations[id].key.publicKey)],
      encryptionKey: toHex(organizations[id].encryption.publicKey),
    })),
    nodes: replicas.map((key, index) => ({
      id: `node${index + 1}`,
      organization: organizationIds[index] as string,
      publicKey: toHex(key.publicKey),
      address: `127.0.0.1:${25701 + index}`,
    })),
    topics: [
      {
        name: topic,
        partitions: [{ replicas: ['node1', 'node2', 'node3', 'node4'] }],
        producers: ['alice'],
        consumers: [...organizationIds],
        policy: {
          messageBytesMax: 1024 * 1024,
          ttlMs: 3_600_000,
          payloadRetentionMs: 60_000,
          availability: 'escrow',
          escrow: { chunkBytes: escrowChunkBytes, replicas: 3, threshold: 2, shares: 3, auditApprovals: 1 },
        },
      },
    ],
  } as Genesis;
}

/** The partition: blocks executed by the contracts and certified by three of the four replicas. */
export class Chain {
  readonly state = new MemoryContractState();
  readonly blocks: Block[] = [];
  private previousHash: Uint8Array = new Uint8Array(32);
  private time = Date.now();
  private readonly sequences = new Map<string, number>();
  private readonly replicas: { id: string; signer: Signer }[];

  constructor(
    private readonly registry: GenesisRegistry,
    signing: SigningDomain,
  ) {
    this.replicas = [1, 2, 3].map((index) => ({
      id: `node${index}`,
      signer: signing.signer(signingKeyFromSeed(seeded(`node${index}`))),
    }));
  }

  /** Executes one block of client requests; returns it. */
  run(requests: readonly Uint8Array[]): Block {
    const height = this.blocks.length + 1;
    this.time += 10;
    const configEpoch = this.registry.partition(group)?.configEpoch ?? 0;
    const operations = requests.map(
      (request) => decodeClientRequest(request, messageLimits.requestBytesMax).operation,
    );
    const { results } = executeBatch(
      this.state,
      { partitionId: group, configEpoch, height, timestamp: this.time, registry: this.registry },
      operations,
    );
    const header: BlockHeader = {
      partitionId: group,
      configEpoch,
      height,
      previousHash: this.previousHash,
      transactionsRoot: merkleRoot([...requests]),
      resultsRoot: resultsRoot(results),
      timestamp: this.time,
      view: 0,
      proposer: 'node1',
    };
    const block: Block = {
      header,
      certificate: certifyHeader(header, this.replicas),
      transactions: [...requests],
      results,
    };
    this.blocks.push(block);
    this.previousHash = blockHash(header);
    return block;
  }

  /** `operation` wrapped in a client request of `signer`'s, with its next sequence number. */
  request(signer: Signer, operation: Uint8Array): Uint8Array {
    const client = toHex(signer.publicKey);
    const seq = (this.sequences.get(client) ?? 0) + 1;
    this.sequences.set(client, seq);
    return encodeClientRequest({ group, client: signer.publicKey, seq, operation }, signer.sign);
  }
}
