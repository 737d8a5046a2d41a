/**
 * A small consortium for escrow contract tests: deterministic keys, a registry with an escrow topic,
 * escrow metadata with real Feldman commitments, and a harness that executes blocks on one partition
 * and decodes the results.
 */
import { sha256 } from '../../../crypto/index.js';
import type { SigningKeyPair } from '../../../crypto/index.js';
import { splitSecret } from '../../../crypto/escrow/feldman.js';
import { MemoryRegistry, partitionGroupId } from '../../registry.js';
import type { EscrowPolicy, OrganizationRole, OrganizationStatus, TopicPolicy } from '../../registry.js';
import { decodeTransactionResult } from '../../results.js';
import type { TransactionResult } from '../../results.js';
import { executeBatch } from '../../sdt.js';
import type { BatchOutcome } from '../../sdt.js';
import { MemoryContractState } from '../../state.js';
import { encodePublish } from '../../transactions.js';
import type { MessageMetadata } from '../../transactions.js';
import { contentRoot, keyFor, nonce, signing, startTime } from '../../testing/fixtures.js';
import { encodeEscrowTransaction } from '../transactions.js';
import type { EscrowAction, EscrowMetadata, SealedShare } from '../transactions.js';

export { signing, startTime } from '../../testing/fixtures.js';

export const escrowTopic = 'vault';
export const plainTopic = 'plain';
export const escrowGroup = partitionGroupId(escrowTopic, 0);
export const plainGroup = partitionGroupId(plainTopic, 0);

export const escrowPolicy: EscrowPolicy = {
  chunkBytes: 4096,
  replicas: 3,
  threshold: 2,
  shares: 3,
  auditApprovals: 1,
};

export function topicPolicy(escrow: EscrowPolicy = escrowPolicy): TopicPolicy {
  return {
    messageBytesMax: 100_000,
    ttlMs: 60_000,
    payloadRetentionMs: 5_000,
    availability: 'escrow',
    escrow,
  };
}

/**
 * alice: the producer; h1–h4: approved members that hold (h1–h3 shares and chunks, h4 chunks only);
 * bob: an approved member in no escrow; regulator: approved auditor (not a member); inspector:
 * approved auditor AND member; pending: a pending member; supervisor: approved, supervisor only.
 */
export const organizations = [
  'alice',
  'h1',
  'h2',
  'h3',
  'h4',
  'bob',
  'regulator',
  'inspector',
  'pending',
  'supervisor',
] as const;
export type OrganizationName = (typeof organizations)[number];

export const keys = Object.fromEntries(organizations.map((name) => [name, keyFor(name)])) as Record<
  OrganizationName,
  SigningKeyPair
>;

export function makeEscrowRegistry(escrow: EscrowPolicy = escrowPolicy): MemoryRegistry {
  const registry = new MemoryRegistry('contract-testnet');
  const add = (id: OrganizationName, status: OrganizationStatus, roles: OrganizationRole[]) =>
    registry.putOrganization({ id, roles, status, signingKeys: [keys[id].publicKey] });
  for (const id of ['alice', 'h1', 'h2', 'h3', 'h4', 'bob'] as const) add(id, 'APPROVED', ['member']);
  add('regulator', 'APPROVED', ['auditor']);
  add('inspector', 'APPROVED', ['auditor', 'member']);
  add('pending', 'PENDING', ['member']);
  add('supervisor', 'APPROVED', ['supervisor']);
  const everyone = [...organizations];
  registry.putTopic({
    name: escrowTopic,
    partitionCount: 1,
    producers: everyone,
    consumers: everyone,
    policy: topicPolicy(escrow),
  });
  registry.putTopic({
    name: plainTopic,
    partitionCount: 1,
    producers: everyone,
    consumers: everyone,
    policy: { messageBytesMax: 100_000, ttlMs: 60_000, payloadRetentionMs: 5_000 },
  });
  return registry;
}

/** A sealed share whose bytes are all `fill` (the contract stores sealed shares, never opens them). */
export function sealed(fill: number): SealedShare {
  return { encapsulatedKey: new Uint8Array(32).fill(fill), sealedShare: new Uint8Array(48).fill(fill) };
}

/**
 * Valid escrow metadata for `escrowPolicy`: a real 2-of-3 Feldman sharing for h1, h2, h3, and
 * 3 chunks (blob 10 000 bytes) placed on h1..h4 as [h1 h2 h3] [h2 h3 h4] [h4 h1 h2], so h1 holds
 * 2 chunks, h2 3, h3 2, h4 2.
 */
export function escrowMetadata(overrides: Partial<EscrowMetadata> = {}): EscrowMetadata {
  const sharing = splitSecret(escrowPolicy.threshold, escrowPolicy.shares);
  const masterTable = new TextEncoder().encode('encrypted master table');
  return {
    chunkBytes: escrowPolicy.chunkBytes,
    blobBytes: 10_000,
    chunkCount: 3,
    commitments: sharing.commitments,
    shares: ['h1', 'h2', 'h3'].map((holder, index) => ({ holder, share: sealed(index + 1) })),
    holders: ['h1', 'h2', 'h3', 'h4'],
    placement: Uint8Array.of(0, 1, 2, 1, 2, 3, 3, 0, 1),
    masterTableHash: sha256(masterTable),
    masterTable,
    ...overrides,
  };
}

/** Chunks `placement` gives each holder in `escrowMetadata()`. */
export const chunksOf: Record<string, number> = { h1: 2, h2: 3, h3: 2, h4: 2 };

export function escrowMessage(overrides: Partial<MessageMetadata> = {}): MessageMetadata {
  const id = overrides.id ?? 'm-1';
  return {
    id,
    topic: escrowTopic,
    partition: 0,
    key: null,
    recipients: ['bob'],
    size: 9_000,
    contentRoot: contentRoot(`content of ${id}`),
    contentType: 'application/octet-stream',
    headers: {},
    escrow: escrowMetadata(),
    ...overrides,
  };
}

export type Decoded = BatchOutcome & { decoded: TransactionResult[] };

/** Executes blocks on one partition, keeping height and time. */
export class EscrowHarness {
  state = new MemoryContractState();
  height = 0;
  time = startTime;
  private nonceCounter = 0;

  constructor(
    readonly registry: MemoryRegistry = makeEscrowRegistry(),
    readonly group: string = escrowGroup,
  ) {}

  nextNonce(): Uint8Array {
    this.nonceCounter += 1;
    return nonce(this.nonceCounter, 7);
  }

  publish(sender: OrganizationName, messages: MessageMetadata[]): Uint8Array {
    return encodePublish(
      { sender, nonce: this.nextNonce(), timestamp: this.time, messages },
      signing.signer(keys[sender]),
    );
  }

  /** An escrow transaction signed by `organization` (or by `options.key`, for a forged one). */
  escrow(
    organization: OrganizationName,
    action: EscrowAction,
    options: { key?: SigningKeyPair; nonce?: Uint8Array } = {},
  ): Uint8Array {
    return encodeEscrowTransaction(
      { organization, nonce: options.nonce ?? this.nextNonce(), timestamp: this.time, action },
      signing.signer(options.key ?? keys[organization]),
    );
  }

  /** Executes the next block, `advanceMs` after the previous one. */
  run(transactions: Uint8Array[], advanceMs = 1000): Decoded {
    this.time += advanceMs;
    this.height += 1;
    const outcome = executeBatch(
      this.state,
      {
        partitionId: this.group,
        configEpoch: 1,
        height: this.height,
        timestamp: this.time,
        registry: this.registry,
      },
      transactions,
    );
    return { ...outcome, decoded: outcome.results.map(decodeTransactionResult) };
  }

  /** Executes one transaction alone in the next block and returns its result. */
  one(transaction: Uint8Array): TransactionResult {
    const result = this.run([transaction]).decoded[0];
    if (result === undefined) throw new Error('a block of one transaction has one result');
    return result;
  }
}
