/**
 * The admin client: KafkaJS's `admin()` (createTopics, createPartitions, fetchTopicMetadata,
 * listTopics) plus what a permissioned network adds: topic ACLs and the organization registry. Every
 * change is signed by this organization's connector and committed by the network's Raft layer, which
 * decides who may do what; a refusal is an ADMIN_REJECTED error naming the reason.
 */
import type {
  AdminActionInput,
  AdminResult,
  OrganizationDescription,
  TopicDescription,
  TopicPolicyInput,
} from '../connector/api-types.js';
import { ErrorCode, isLedgerbusError } from '../errors.js';
import { checkConnection } from './producer.js';
import { Audits } from './audits.js';
import type { Transport } from './transport.js';

export interface ITopicConfig {
  readonly topic: string;
  readonly numPartitions: number;
  /** Replicas per partition (4–7); the network's default (4) when omitted. */
  readonly replicationFactor?: number;
  /** Organizations that may publish to the topic. */
  readonly producers: readonly string[];
  /** Organizations that may be recipients of its messages. */
  readonly consumers: readonly string[];
  readonly policy?: TopicPolicyInput;
}

export interface CreateTopicsOptions {
  readonly topics: readonly ITopicConfig[];
}

export interface ITopicPartitionConfig {
  readonly topic: string;
  /** The new total number of partitions, as in KafkaJS. */
  readonly count: number;
}

export interface CreatePartitionsOptions {
  readonly topicPartitions: readonly ITopicPartitionConfig[];
}

export interface FetchTopicMetadataOptions {
  /** Only these topics (TOPIC_NOT_FOUND if one does not exist); every topic when omitted. */
  readonly topics?: readonly string[];
}

export interface TopicAcl {
  readonly producers: readonly string[];
  readonly consumers: readonly string[];
}

export type OrganizationStatus = Extract<AdminActionInput, { kind: 'setOrganizationStatus' }>['status'];

export class Admin {
  /** Audits of escrowed messages (auditors request and fetch; members approve). */
  readonly audits: Audits;

  constructor(private readonly transport: Transport) {
    this.audits = new Audits(transport);
  }

  /** Checks that the connector is reachable and accepts the token (KafkaJS apps call it first). */
  async connect(): Promise<void> {
    await checkConnection(this.transport);
  }

  /** Nothing to release (every call is one HTTP request); kept for KafkaJS-shaped code. */
  async disconnect(): Promise<void> {}

  /**
   * Creates the topics one by one; this organization becomes their owner. Resolves false when one
   * already existed (as KafkaJS does); any other refusal rejects with ADMIN_REJECTED.
   */
  async createTopics(options: CreateTopicsOptions): Promise<boolean> {
    let createdAll = true;
    for (const topic of options.topics) {
      try {
        await this.execute({
          kind: 'createTopic',
          name: topic.topic,
          partitions: topic.numPartitions,
          ...(topic.replicationFactor === undefined ? {} : { replicationFactor: topic.replicationFactor }),
          producers: topic.producers,
          consumers: topic.consumers,
          ...(topic.policy === undefined ? {} : { policy: topic.policy }),
        });
      } catch (error) {
        if (!isAlreadyExists(error)) throw error;
        createdAll = false;
      }
    }
    return createdAll;
  }

  /**
   * Raises topics' partition counts to `count`. As in Kafka, keyed messages may then map to another
   * partition (murmur2(key) % count), so per-key order holds only within one partition count.
   */
  async createPartitions(options: CreatePartitionsOptions): Promise<boolean> {
    for (const { topic, count } of options.topicPartitions) {
      await this.execute({ kind: 'addPartitions', topic, count });
    }
    return true;
  }

  async fetchTopicMetadata(options: FetchTopicMetadataOptions = {}): Promise<{ topics: TopicDescription[] }> {
    if (options.topics === undefined) {
      return this.transport.json<{ topics: TopicDescription[] }>('GET', '/v1/topics');
    }
    const topics: TopicDescription[] = [];
    for (const name of options.topics) topics.push(await this.describeTopic(name));
    return { topics };
  }

  async describeTopic(name: string): Promise<TopicDescription> {
    return this.transport.json<TopicDescription>('GET', `/v1/topics/${encodeURIComponent(name)}`);
  }

  async listTopics(): Promise<string[]> {
    return (await this.fetchTopicMetadata()).topics.map((topic) => topic.name);
  }

  /** Replaces the topic's producer and consumer lists (owner or supervisor only). */
  async setTopicAcl(topic: string, acl: TopicAcl): Promise<AdminResult> {
    return this.execute({ kind: 'setAcl', topic, producers: acl.producers, consumers: acl.consumers });
  }

  /**
   * Changes a topic's policy (owner or supervisor only); fields left out stay as they are. Escrow:
   * `{ availability: 'escrow', escrow: { threshold: 3, shares: 5 } }` (escrow fields left out keep the
   * topic's, else the defaults: replicas 3, threshold 2, shares 3, chunkBytes 1 MiB, auditApprovals 1);
   * `{ availability: 'standard' }` stops escrowing new messages.
   */
  async setTopicPolicy(topic: string, policy: TopicPolicyInput): Promise<AdminResult> {
    return this.execute({ kind: 'setPolicy', topic, policy });
  }

  /** Approves, suspends or revokes an organization (approved supervisors only). */
  async setOrganizationStatus(organization: string, status: OrganizationStatus): Promise<AdminResult> {
    return this.execute({ kind: 'setOrganizationStatus', organization, status });
  }

  async listOrganizations(): Promise<OrganizationDescription[]> {
    const answer = await this.transport.json<{ organizations: OrganizationDescription[] }>(
      'GET',
      '/v1/organizations',
    );
    return answer.organizations;
  }

  /**
   * Relays an admin transaction signed by someone else, e.g. a new organization's registration
   * (`signAdminTransaction` + `encodeWith(adminTransactionSchema, ...)`), which has no connector yet.
   */
  async submitSignedTransaction(transaction: Uint8Array): Promise<AdminResult> {
    return this.transport.json<AdminResult>('POST', '/v1/admin/transactions', {
      json: { transaction: Buffer.from(transaction).toString('base64') },
    });
  }

  /** Any admin action, signed by this organization's connector (setPolicy, setReplicas, registerNode...). */
  async execute(action: AdminActionInput): Promise<AdminResult> {
    return this.transport.json<AdminResult>('POST', '/v1/admin', { json: action });
  }
}

/**
 * The registry's reason code of an ADMIN_REJECTED error is its `details.reason` (the REST error's
 * `reason`); ALREADY_EXISTS (`AdminReject.AlreadyExists`, spelled out so the SDK does not load the
 * registry's codecs) is the one KafkaJS's createTopics reports as `false` rather than an error.
 */
function isAlreadyExists(error: unknown): boolean {
  return isLedgerbusError(error, ErrorCode.AdminRejected) && error.details?.reason === 'ALREADY_EXISTS';
}
