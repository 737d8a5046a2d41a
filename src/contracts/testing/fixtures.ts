/**
 * A small consortium for SDT contract tests: deterministic keys, a registry, and a harness that
 * executes blocks at chosen times and decodes the results.
 */
import { SigningDomain, signingKeyFromSeed } from '../../crypto/index.js';
import type { SigningKeyPair } from '../../crypto/index.js';
import { MemoryRegistry } from '../registry.js';
import type { OrganizationRole, OrganizationStatus, TopicPolicy } from '../registry.js';
import { executeBatch } from '../sdt.js';
import type { BatchOutcome } from '../sdt.js';
import { MemoryContractState } from '../state.js';
import { decodeTransactionResult } from '../results.js';
import type { TransactionResult } from '../results.js';
import { encodeConfirmDelivery, encodePublish, nonceBytes } from '../transactions.js';
import type { InlinePayload, MessageMetadata } from '../transactions.js';

/** The network of the contract tests' registry: what the harness signs is valid in it. */
export const network = 'contract-testnet';
export const signing = SigningDomain.of(network);
export const partitionId = 'invoices/0';
export const topicName = 'invoices';
export const startTime = 1_700_000_000_000;
export const policy: TopicPolicy = { messageBytesMax: 10_000, ttlMs: 60_000, payloadRetentionMs: 5_000 };

export function keyFor(name: string): SigningKeyPair {
  const seed = new Uint8Array(32);
  seed.set(new TextEncoder().encode(name.slice(0, 32)));
  return signingKeyFromSeed(seed);
}

/** A deterministic nonce: `n` big-endian in the last bytes, `tag` in the first. */
export function nonce(n: number, tag = 0): Uint8Array {
  const bytes = new Uint8Array(nonceBytes);
  new DataView(bytes.buffer).setUint32(nonceBytes - 4, n);
  bytes[0] = tag;
  return bytes;
}

export function contentRoot(label: string): Uint8Array {
  const root = new Uint8Array(32);
  root.set(new TextEncoder().encode(label.slice(0, 32)));
  return root;
}

export const keys = {
  alice: keyFor('alice'),
  bob: keyFor('bob'),
  carol: keyFor('carol'),
  dave: keyFor('dave'),
  erin: keyFor('erin'),
  frank: keyFor('frank'),
  grace: keyFor('grace'),
  regulator: keyFor('regulator'),
  stranger: keyFor('stranger'),
};

/**
 * alice, bob: approved members that produce and consume; carol: approved member that only consumes;
 * dave: pending; erin: suspended; frank: revoked (all three in both ACLs); grace: approved member in
 * no ACL; regulator: supervisor only, in both ACLs (it lacks the member role).
 */
export function makeRegistry(topicPolicy: TopicPolicy = policy): MemoryRegistry {
  const registry = new MemoryRegistry(network);
  const add = (id: keyof typeof keys, status: OrganizationStatus, roles: OrganizationRole[] = ['member']) =>
    registry.putOrganization({ id, roles, status, signingKeys: [keys[id].publicKey] });
  add('alice', 'APPROVED');
  add('bob', 'APPROVED');
  add('carol', 'APPROVED');
  add('dave', 'PENDING');
  add('erin', 'SUSPENDED');
  add('frank', 'REVOKED');
  add('grace', 'APPROVED');
  add('regulator', 'APPROVED', ['supervisor', 'auditor']);
  registry.putTopic({
    name: topicName,
    partitionCount: 2,
    producers: ['alice', 'bob', 'dave', 'erin', 'frank', 'regulator'],
    consumers: ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'regulator'],
    policy: topicPolicy,
  });
  return registry;
}

export function message(overrides: Partial<MessageMetadata> = {}): MessageMetadata {
  const id = overrides.id ?? 'm-1';
  return {
    id,
    topic: topicName,
    partition: 0,
    key: new TextEncoder().encode('customer-42'),
    recipients: ['bob'],
    size: 1000,
    contentRoot: contentRoot(`content of ${id}`),
    contentType: 'application/json',
    headers: { 'trace-id': new TextEncoder().encode('abc') },
    ...overrides,
  };
}

/** Executes blocks on one partition, keeping height and time. */
export class Harness {
  readonly state = new MemoryContractState();
  readonly registry: MemoryRegistry;
  height = 0;
  time = startTime;
  private nonceCounter = 0;

  constructor(registry: MemoryRegistry = makeRegistry()) {
    this.registry = registry;
  }

  /** A fresh nonce each call. */
  nextNonce(): Uint8Array {
    this.nonceCounter += 1;
    return nonce(this.nonceCounter);
  }

  /** `options.signing`: sign for another network than the registry's (default: the registry's). */
  publish(
    sender: keyof typeof keys,
    messages: MessageMetadata[],
    options: {
      key?: SigningKeyPair;
      signing?: SigningDomain;
      nonce?: Uint8Array;
      timestamp?: number;
      payloads?: (InlinePayload | null)[];
    } = {},
  ): Uint8Array {
    return encodePublish(
      {
        sender,
        nonce: options.nonce ?? this.nextNonce(),
        timestamp: options.timestamp ?? this.time,
        messages,
        ...(options.payloads === undefined ? {} : { payloads: options.payloads }),
      },
      (options.signing ?? signing).signer(options.key ?? keys[sender]),
    );
  }

  confirm(
    recipient: keyof typeof keys,
    deliveries: { id: string; contentRoot: Uint8Array }[],
    options: { key?: SigningKeyPair; signing?: SigningDomain; nonce?: Uint8Array; timestamp?: number } = {},
  ): Uint8Array {
    return encodeConfirmDelivery(
      {
        recipient,
        nonce: options.nonce ?? this.nextNonce(),
        timestamp: options.timestamp ?? this.time,
        deliveries,
      },
      (options.signing ?? signing).signer(options.key ?? keys[recipient]),
    );
  }

  /** Executes the next block, `advanceMs` after the previous one. */
  run(transactions: Uint8Array[], advanceMs = 1000): BatchOutcome & { decoded: TransactionResult[] } {
    this.time += advanceMs;
    this.height += 1;
    const outcome = executeBatch(
      this.state,
      {
        partitionId,
        configEpoch: 1,
        height: this.height,
        timestamp: this.time,
        registry: this.registry,
      },
      transactions,
    );
    return { ...outcome, decoded: outcome.results.map(decodeTransactionResult) };
  }
}

/**
 * A partition with some history — m "a" (alice → bob, carol) and "b" accepted, "b" confirmed by bob —
 * and transactions each of which is valid in the next block and changes state, to mutate.
 */
export function harnessWithHistory(): { harness: Harness; valid: Uint8Array[] } {
  const harness = new Harness();
  harness.run([
    harness.publish('alice', [message({ id: 'a', recipients: ['bob', 'carol'] }), message({ id: 'b' })]),
  ]);
  harness.run([harness.confirm('bob', [{ id: 'b', contentRoot: contentRoot('content of b') }])]);
  const valid = [
    harness.publish('alice', [message({ id: 'c' }), message({ id: 'd', recipients: ['carol'] })]),
    harness.publish('bob', [message({ id: 'e', recipients: ['alice'] })]),
    harness.confirm('carol', [{ id: 'a', contentRoot: contentRoot('content of a') }]),
    harness.confirm('bob', [{ id: 'a', contentRoot: contentRoot('content of a') }]),
  ];
  return { harness, valid };
}
