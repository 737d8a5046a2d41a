/**
 * The connector's side of the Raft layer: it keeps the organization's view of the registry current
 * (from its own node, which it trusts as it trusts its own keys), and turns an application's admin
 * request into a signed admin transaction — filling in what a person should not have to type:
 * replica assignment, replica keys, the full ACL lists, the rest of a policy.
 */
import { randomBytes } from 'node:crypto';
import { bytesEqual, encodeWith, fromHex, toHex } from '../codec/index.js';
import type { Signer } from '../crypto/index.js';
import { partitionGroupId, validateTopicPolicy } from '../contracts/registry.js';
import type { EscrowPolicy, TopicPolicy } from '../contracts/registry.js';
import { AssertionError, ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  signAdminTransaction,
  topicGroupId,
} from '../registry/admin-transactions.js';
import type { AdminAction, ReplicaRecord } from '../registry/admin-transactions.js';
import {
  DEFAULT_ESCROW_POLICY,
  DEFAULT_REPLICATION_FACTOR,
  DEFAULT_TOPIC_POLICY,
  assignReplicas,
  escrowPolicyBounds,
} from '../registry/assignment.js';
import type { LiveRegistry } from '../registry/live-registry.js';
import type { GroupStatus } from '../protocol/client-methods.js';
import { createRetry } from '../runtime/retry.js';
import type { Retrier, RetryClock, RetryPolicy } from '../runtime/retry.js';
import { RegistryView } from '../registry/registry-view.js';
import type {
  AdminActionInput,
  AdminResult,
  OrganizationDescription,
  TopicDescription,
  TopicPolicyInput,
} from './api-types.js';
import type { NodeSession } from './session/node-session.js';

export interface ConnectorAdminOptions {
  readonly organization: string;
  /** The connector key, bound to the connector's network: it signs the admin transactions. */
  readonly signer: Signer;
  readonly registry: LiveRegistry;
  /** The organization's node: its `admin` and `registry` methods, typed (NodeSession). */
  readonly node: Pick<NodeSession, 'call'>;
  /** Where the admin retries wait (default: real timers). */
  readonly clock?: RetryClock;
  /** Uniform in [0, 1), for the jitter of the retries (default Math.random). */
  readonly random?: () => number;
}

/**
 * A group may have no leader for a moment (start-up, an election), and the node may refuse this
 * organization over its quota. NOT_LEADER and RATE_LIMITED mean nothing was proposed, so asking
 * again is safe (and the nonce would stop a second commit anyway): 100 ms doubling to 1 s, for up
 * to 15 s while its group elects a leader.
 */
export const adminRetryPolicy: RetryPolicy = {
  initialRetryTimeMs: 100,
  maxRetryTimeMs: 1_000,
  jitter: 0.2,
  deadlineMs: 15_000,
};

export class ConnectorAdmin {
  // The node's last answer, replaced whole at every sync: one entry per group and per topic.
  private groups: readonly GroupStatus[] = [];
  private globalHeads = new Map<string, Readonly<Record<string, number>>>();
  /** The registry bytes last applied, to skip decoding an unchanged registry. */
  private lastRegistry: Uint8Array | undefined;

  private readonly retryUnproposed: Retrier;

  constructor(private readonly options: ConnectorAdminOptions) {
    // Only these are known not to have been proposed; a timeout might have committed.
    this.retryUnproposed = createRetry(adminRetryPolicy, {
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.random === undefined ? {} : { random: options.random }),
      retriable: (error) =>
        isLedgerbusError(error, ErrorCode.NotLeader) || isLedgerbusError(error, ErrorCode.RateLimited),
    });
  }

  /** Fetches the node's current registry; returns true if it changed. */
  async sync(): Promise<boolean> {
    const reply = await this.options.node.call('registry', {});
    const bytes = reply.registry;
    this.groups = reply.groups;
    this.globalHeads = new Map(reply.globalHeads.map((entry) => [entry.topic, entry.heads]));
    // The node sends the same bytes until something changes: decode only then.
    if (this.lastRegistry !== undefined && bytesEqual(bytes, this.lastRegistry)) return false;
    this.options.registry.update(RegistryView.decode(bytes));
    this.lastRegistry = bytes;
    return true;
  }

  async admin(input: AdminActionInput): Promise<AdminResult> {
    await this.sync();
    const { group, action } = this.action(input);
    const transaction = signAdminTransaction(
      {
        group,
        organization: this.options.organization,
        nonce: randomBytes(16),
        timestamp: Date.now(),
        action,
      },
      this.options.signer,
    );
    return this.submit(encodeWith(adminTransactionSchema, transaction));
  }

  async submit(transaction: Uint8Array): Promise<AdminResult> {
    // Retried under adminRetryPolicy while nothing was proposed.
    const { result, group, index } = await this.retryUnproposed(() =>
      this.options.node.call('admin', { transaction }),
    );
    await this.sync();
    if (result.status !== 'OK') {
      const detail = result.detail === undefined ? '' : `: ${result.detail}`;
      // The registry's reason code travels as `details.reason` too, for callers that decide on it.
      throw new LedgerbusError(ErrorCode.AdminRejected, `${String(result.reason)}${detail}`, {
        ...(result.reason === undefined ? {} : { details: { reason: result.reason } }),
      });
    }
    return {
      group,
      index,
      status: 'OK',
      ...(result.detail === undefined ? {} : { detail: result.detail }),
    };
  }

  async organizations(): Promise<OrganizationDescription[]> {
    await this.sync();
    return this.options.registry.current.toSnapshot().organizations.map((organization) => ({
      id: organization.id,
      roles: [...organization.roles],
      status: organization.status,
      signingKeys: organization.signingKeys.map((key) => toHex(key)),
      encryptionKey: toHex(organization.encryptionKey),
    }));
  }

  async topics(): Promise<TopicDescription[]> {
    await this.sync();
    return this.options.registry.topics().map((topic) => this.describe(topic.name));
  }

  async describeTopic(name: string): Promise<TopicDescription> {
    await this.sync();
    return this.describe(name);
  }

  private describe(name: string): TopicDescription {
    const entry = this.options.registry.topicEntry(name);
    if (entry === undefined) {
      throw new LedgerbusError(
        ErrorCode.TopicNotFound,
        `no topic ${name}; create it with \`ledgerbus topic create ${name}\``,
      );
    }
    const heads = this.globalHeads.get(name) ?? {};
    return {
      name,
      owner: entry.config.owner,
      partitions: entry.config.partitions.map((partition, index) => ({
        partition: index,
        group: partitionGroupId(name, index),
        configEpoch: partition.configEpoch,
        replicas: partition.replicas.map((replica) => replica.id),
        globalHeight: heads[partitionGroupId(name, index)] ?? 0,
      })),
      producers: [...entry.config.producers],
      consumers: [...entry.config.consumers],
      policy: describePolicy(entry.config.policy),
      topicIndex: entry.topicIndex,
      raft: {
        voters: [...entry.voters],
        learners: [...entry.learners],
        leader: this.groups.find((group) => group.group === topicGroupId(name))?.leader ?? '',
      },
    };
  }

  private action(input: AdminActionInput): { group: string; action: AdminAction } {
    switch (input.kind) {
      case 'setOrganizationStatus':
        return {
          group: SYSTEM_GROUP,
          action: {
            kind: 'setOrganizationStatus',
            organization: input.organization,
            status: input.status,
            ...(input.roles === undefined ? {} : { roles: [...input.roles] }),
          },
        };
      case 'createTopic': {
        const replicas = this.assign(0, input.partitions, input.replicationFactor);
        return {
          group: SYSTEM_GROUP,
          action: {
            kind: 'createTopic',
            name: input.name,
            partitions: replicas,
            producers: [...input.producers],
            consumers: [...input.consumers],
            policy: resolveTopicPolicy(DEFAULT_TOPIC_POLICY, input.policy),
          },
        };
      }
      case 'addPartitions': {
        const current = this.requireTopic(input.topic).config.partitions.length;
        if (!Number.isSafeInteger(input.count) || input.count <= current) {
          throw new LedgerbusError(
            ErrorCode.BadConfig,
            `count is the new total and must exceed the current ${current} partitions of ${input.topic}`,
          );
        }
        return {
          group: topicGroupId(input.topic),
          action: {
            kind: 'addPartitions',
            count: input.count,
            replicas: this.assign(current, input.count - current, input.replicationFactor),
          },
        };
      }
      case 'setAcl':
        this.requireTopic(input.topic);
        return {
          group: topicGroupId(input.topic),
          action: { kind: 'setAcl', producers: [...input.producers], consumers: [...input.consumers] },
        };
      case 'setPolicy': {
        const current = this.requireTopic(input.topic).config.policy;
        return {
          group: topicGroupId(input.topic),
          action: { kind: 'setPolicy', policy: resolveTopicPolicy(current, input.policy) },
        };
      }
      case 'setReplicas':
        this.requireTopic(input.topic);
        return {
          group: topicGroupId(input.topic),
          action: { kind: 'setReplicas', partition: input.partition, replicas: this.records(input.replicas) },
        };
      case 'registerNode':
        return {
          group: SYSTEM_GROUP,
          action: {
            kind: 'registerNode',
            id: input.id,
            publicKey: fromHex(input.publicKey),
            address: input.address,
            proof: fromHex(input.proof),
          },
        };
      case 'removeNode':
        return { group: SYSTEM_GROUP, action: { kind: 'removeNode', id: input.id } };
      case 'setQuotas':
        return { group: SYSTEM_GROUP, action: { kind: 'setQuotas', quotas: { ...input.quotas } } };
      case 'bindKey':
        return { group: SYSTEM_GROUP, action: { kind: 'bindKey', key: fromHex(input.key) } };
      case 'catalogPublish':
        return {
          group: SYSTEM_GROUP,
          action: {
            kind: 'catalogPublish',
            dataset: input.dataset,
            version: input.version,
            domain: input.domain,
            title: input.title,
            description: input.description,
            tags: [...input.tags],
            columns: input.columns.map((column) => ({ name: column.name, type: column.type })),
            rowCount: input.rowCount,
            contentHash: fromHex(input.contentHash),
            policy: {
              allowedColumns: [...input.policy.allowedColumns],
              aggregates: [...input.policy.aggregates],
              models: [...input.policy.models],
              minGroupSize: input.policy.minGroupSize,
              approval: input.policy.approval,
            },
          },
        };
      case 'catalogWithdraw':
        return { group: SYSTEM_GROUP, action: { kind: 'catalogWithdraw', dataset: input.dataset } };
      default:
        throw new LedgerbusError(ErrorCode.SchemaMismatch, 'unknown admin action');
    }
  }

  private requireTopic(name: string): NonNullable<ReturnType<LiveRegistry['topicEntry']>> {
    const entry = this.options.registry.topicEntry(name);
    if (entry === undefined) throw new LedgerbusError(ErrorCode.TopicNotFound, `no topic ${name}`);
    return entry;
  }

  private assign(first: number, count: number, replicationFactor?: number): ReplicaRecord[][] {
    const nodes = this.options.registry.nodes();
    return assignReplicas(nodes, first, count, replicationFactor ?? DEFAULT_REPLICATION_FACTOR).map((ids) =>
      this.records(ids),
    );
  }

  private records(ids: readonly string[]): ReplicaRecord[] {
    return ids.map((id) => {
      const node = this.options.registry.node(id);
      if (node === undefined) throw new LedgerbusError(ErrorCode.BadConfig, `no node ${id} in the registry`);
      return { id, publicKey: node.publicKey };
    });
  }
}

/**
 * The policy a createTopic (over DEFAULT_TOPIC_POLICY) or setPolicy (over the topic's current
 * policy) commits: each field given in `input`, the rest from `current`; escrow parameters not given
 * keep the topic's current ones, else DEFAULT_ESCROW_POLICY. A standard policy leaves `availability`
 * and `escrow` out, so it encodes exactly as before escrow existed. Checked with the registry's own
 * `validateTopicPolicy` before anything is signed: a bad policy is BAD_CONFIG naming the field, and
 * nothing is submitted (the registry would refuse it as BAD_POLICY anyway).
 */
export function resolveTopicPolicy(current: TopicPolicy, input: TopicPolicyInput = {}): TopicPolicy {
  const availability = input.availability ?? current.availability ?? 'standard';
  if (availability !== 'escrow' && input.escrow !== undefined) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      'policy.escrow applies to escrow topics only: set policy.availability to "escrow" too (ledgerbus topic create/set-policy --escrow)',
    );
  }
  const policy: TopicPolicy = {
    messageBytesMax: input.messageBytesMax ?? current.messageBytesMax,
    ttlMs: input.ttlMs ?? current.ttlMs,
    payloadRetentionMs: input.payloadRetentionMs ?? current.payloadRetentionMs,
    ...(availability === 'escrow'
      ? { availability, escrow: escrowFields(current.escrow ?? DEFAULT_ESCROW_POLICY, input.escrow) }
      : {}),
  };
  try {
    validateTopicPolicy(policy);
  } catch (error) {
    if (!(error instanceof AssertionError)) throw error;
    const field = error.message.replace(/^invariant violated: /, '');
    throw new LedgerbusError(ErrorCode.BadConfig, `${field} is out of range: ${policyRange(field, policy)}`);
  }
  return policy;
}

/** `base` with the fields `input` gives; only the five known ones, whatever else `input` carries. */
function escrowFields(base: EscrowPolicy, input: Partial<EscrowPolicy> = {}): EscrowPolicy {
  return {
    chunkBytes: input.chunkBytes ?? base.chunkBytes,
    replicas: input.replicas ?? base.replicas,
    threshold: input.threshold ?? base.threshold,
    shares: input.shares ?? base.shares,
    auditApprovals: input.auditApprovals ?? base.auditApprovals,
  };
}

function policyRange(field: string, policy: TopicPolicy): string {
  const name = field.slice(field.lastIndexOf('.') + 1);
  if (!field.startsWith('policy.escrow.') || !(name in escrowPolicyBounds)) {
    return `${String((policy as unknown as Record<string, unknown>)[name])} given`;
  }
  const key = name as keyof typeof escrowPolicyBounds;
  const max = key === 'threshold' ? `shares (${policy.escrow?.shares})` : String(escrowPolicyBounds[key].max);
  return `${policy.escrow?.[key]} given, allowed ${escrowPolicyBounds[key].min} to ${max}`;
}

/** A policy as `describeTopic` shows it: availability always named, escrow only for escrow topics. */
function describePolicy(policy: TopicPolicy): TopicDescription['policy'] {
  return {
    messageBytesMax: policy.messageBytesMax,
    ttlMs: policy.ttlMs,
    payloadRetentionMs: policy.payloadRetentionMs,
    availability: policy.availability ?? 'standard',
    ...(policy.escrow === undefined ? {} : { escrow: { ...policy.escrow } }),
  };
}
