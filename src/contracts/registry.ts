/**
 * What the SDT contract needs to know about organizations and topics. In the running network this
 * comes from the __system Raft group (organizations) and the topic's Raft group (ACLs, policy), read
 * at the index that the PBFT batch names, so every replica of a partition decides against the same
 * registry. The contract only reads it; `MemoryRegistry` is the implementation used by tests.
 */
import { assert } from '../errors.js';
import { escrowLimits } from './escrow/transactions.js';

export type OrganizationRole = 'member' | 'supervisor' | 'auditor';
/** DESIGN §8: `register` gives PENDING; a supervisor sets APPROVED, SUSPENDED or REVOKED. */
export type OrganizationStatus = 'APPROVED' | 'PENDING' | 'SUSPENDED' | 'REVOKED';

export interface Organization {
  readonly id: string;
  readonly roles: readonly OrganizationRole[];
  readonly status: OrganizationStatus;
  /** Raw Ed25519 public keys (32 bytes) of the organization's connectors; any one may sign. */
  readonly signingKeys: readonly Uint8Array[];
}

/**
 * Auditor availability (DESIGN §7): each message's ciphertext is cut into `chunkBytes` chunks, each
 * kept by `replicas` distinct organizations other than the sender, and its key is escrowed
 * `threshold`-of-`shares` with Feldman VSS among organizations other than the sender; an audit is
 * released once `auditApprovals` distinct members other than the auditor (and the sender) approve.
 */
export interface EscrowPolicy {
  readonly chunkBytes: number;
  /** Holders per chunk (default 3). */
  readonly replicas: number;
  /** k: shares needed to rebuild the key (default 2). */
  readonly threshold: number;
  /** n: shares made, one per share holder (default 3); threshold ≤ shares. */
  readonly shares: number;
  /** Member approvals an audit request needs (default 1). */
  readonly auditApprovals: number;
}

export interface TopicPolicy {
  /** Largest message (the `size` a producer declares, in bytes) the topic accepts. */
  readonly messageBytesMax: number;
  /** A message not delivered to every recipient within this long after acceptance expires. ≥ 1. */
  readonly ttlMs: number;
  /** How long the sender keeps the payload after the message completes or expires. */
  readonly payloadRetentionMs: number;
  /** 'escrow': every message is escrowed for auditors (`escrow` then holds how); absent: 'standard'. */
  readonly availability?: 'standard' | 'escrow';
  /** Present exactly when `availability` is 'escrow'. */
  readonly escrow?: EscrowPolicy;
}

export interface Topic {
  readonly name: string;
  /** Partition p of the topic is the PBFT group `partitionGroupId(name, p)`, for p < partitionCount. */
  readonly partitionCount: number;
  /** Organizations allowed to produce on the topic. */
  readonly producers: ReadonlySet<string>;
  /** Organizations allowed to consume from the topic (so: to be named as recipients). */
  readonly consumers: ReadonlySet<string>;
  readonly policy: TopicPolicy;
}

/** Read-only view of the registry at one index. Must be deterministic: same index, same answers. */
export interface Registry {
  /**
   * The network (genesis `network`) this registry is of. Signatures verify only in its domain, so a
   * transaction signed in another network whose organizations use the same keys is BAD_SIGNATURE.
   */
  readonly network: string;
  organization(id: string): Organization | undefined;
  topic(name: string): Topic | undefined;
}

/**
 * The consensus group id of a topic partition, e.g. "invoices/0". A publish for partition p of topic
 * t is executed only by the group with this id.
 */
export function partitionGroupId(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

/** Largest TTL or retention a policy may set: about 100 years, so deadlines stay safe integers. */
export const policyDurationMsMax = 100 * 365 * 24 * 3600 * 1000;

/**
 * Checks a policy's numbers up front (etcd's `Config.validate()` habit); a registry must never hand
 * the contract a policy that fails this. Throws AssertionError naming the field.
 */
export function validateTopicPolicy(policy: TopicPolicy): void {
  const { messageBytesMax, ttlMs, payloadRetentionMs } = policy;
  assert(Number.isSafeInteger(messageBytesMax) && messageBytesMax >= 0, 'policy.messageBytesMax');
  assert(Number.isSafeInteger(ttlMs) && ttlMs >= 1 && ttlMs <= policyDurationMsMax, 'policy.ttlMs');
  assert(
    Number.isSafeInteger(payloadRetentionMs) &&
      payloadRetentionMs >= 0 &&
      payloadRetentionMs <= policyDurationMsMax,
    'policy.payloadRetentionMs',
  );
  if (policy.availability !== 'escrow') {
    assert(policy.escrow === undefined, 'policy.escrow is set on a topic whose availability is not escrow');
    return;
  }
  assert(policy.escrow !== undefined, 'policy.escrow is missing on an escrow topic');
  const { chunkBytes, replicas, threshold, shares, auditApprovals } = policy.escrow;
  const within = (value: number, min: number, max: number) =>
    Number.isSafeInteger(value) && value >= min && value <= max;
  assert(
    within(chunkBytes, escrowLimits.chunkBytesMin, escrowLimits.chunkBytesMax),
    'policy.escrow.chunkBytes',
  );
  assert(within(replicas, 1, escrowLimits.replicasMax), 'policy.escrow.replicas');
  assert(within(shares, 1, escrowLimits.sharesMax), 'policy.escrow.shares');
  assert(within(threshold, 1, shares), 'policy.escrow.threshold');
  // An audit records approvals only until it is approved, so this also bounds its approval list
  // (64 fits the 80 the audit view allows).
  assert(within(auditApprovals, 0, 64), 'policy.escrow.auditApprovals');
}

/** An in-memory registry for tests and the simulator. Mutations model registry transactions. */
export class MemoryRegistry implements Registry {
  /** One per organization the test registers. */
  private readonly organizations = new Map<string, Organization>();
  /** One per topic the test creates. */
  private readonly topics = new Map<string, Topic>();

  constructor(readonly network: string) {}

  organization(id: string): Organization | undefined {
    return this.organizations.get(id);
  }

  topic(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  /** Adds or replaces an organization. */
  putOrganization(organization: Organization): this {
    this.organizations.set(organization.id, organization);
    return this;
  }

  /** Changes an organization's status (what a supervisor's decision does). */
  setStatus(id: string, status: OrganizationStatus): this {
    const organization = this.organizations.get(id);
    assert(organization !== undefined, `unknown organization ${id}`);
    this.organizations.set(id, { ...organization, status });
    return this;
  }

  /** Adds or replaces a topic; `producers`/`consumers` may be given as arrays. */
  putTopic(topic: {
    name: string;
    partitionCount: number;
    producers: Iterable<string>;
    consumers: Iterable<string>;
    policy: TopicPolicy;
  }): this {
    validateTopicPolicy(topic.policy);
    assert(Number.isSafeInteger(topic.partitionCount) && topic.partitionCount >= 1, 'partitionCount');
    this.topics.set(topic.name, {
      name: topic.name,
      partitionCount: topic.partitionCount,
      producers: new Set(topic.producers),
      consumers: new Set(topic.consumers),
      policy: {
        ...topic.policy,
        ...(topic.policy.escrow === undefined ? {} : { escrow: { ...topic.policy.escrow } }),
      },
    });
    return this;
  }
}
