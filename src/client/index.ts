/**
 * `ledgerbus/client`: the application SDK, shaped like KafkaJS, talking to the organization's own
 * connector over its local REST/WebSocket API (see docs/sdk.md).
 *
 *   const lb = new Ledgerbus({ connector: 'http://127.0.0.1:7101', token });
 *   await lb.producer().send({ topic: 'demo', messages: [{ value: 'hi', to: ['org2'] }] });
 */
import { readFileSync } from 'node:fs';
import type { MessageStatus, ReceiptBundle, ReceiptSource } from '../connector/api-types.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { Admin } from './admin.js';
import { Alerts } from './alerts.js';
import { Consumer } from './consumer.js';
import type { ConsumerConfig } from './consumer.js';
import { Catalog } from './catalog.js';
import { Datasets } from './datasets.js';
import { Jobs } from './jobs.js';
import { LedgerbusEvents } from './events.js';
import type { EventsOptions } from './events.js';
import { Producer, checkConnection } from './producer.js';
import type { ProducerConfig } from './producer.js';
import { Transport } from './transport.js';

export { Admin, Consumer, Producer, LedgerbusEvents };
export { Alerts } from './alerts.js';
export type {
  AlertAckInput,
  AlertAckResult,
  AlertJson,
  AlertListOptions,
  AlertListResult,
  AlertPolicyJson,
  AlertPolicyResult,
} from './alerts.js';
export { Audits } from './audits.js';
export type { AuditFetchInput, AuditRequestInput } from './audits.js';
export { Catalog } from './catalog.js';
export type {
  CatalogEntryJson,
  CatalogHitJson,
  CatalogPublishInput,
  CatalogSearchInput,
  CatalogSearchResult,
  CatalogWithdrawResult,
} from './catalog.js';
export { Datasets, datasetFormatOf } from './datasets.js';
export type { DatasetAddInput } from './datasets.js';
export { Jobs } from './jobs.js';
export type {
  DatasetDescription,
  DatasetFormat,
  JobDecisionInfo,
  JobPartStatus,
  JobRecordSummary,
  JobResultAnswer,
  JobResultInfo,
  JobSpecInput,
  JobState,
  JobStatus,
  JobSubmitInput,
} from '../connector/datashare/jobs-api.js';
export type { DatasetPolicy, JobOutput, JobSpec } from '../datashare/types.js';
export type { JobReceipt, JobReceiptSummary } from '../proofs/job-receipt.js';
export type {
  AuditApproveResult,
  AuditFetchResult,
  AuditRequestResult,
  AuditSummary,
  EscrowStatus,
} from '../connector/escrow/audit-types.js';
export type {
  CreatePartitionsOptions,
  CreateTopicsOptions,
  FetchTopicMetadataOptions,
  ITopicConfig,
  ITopicPartitionConfig,
  OrganizationStatus,
  TopicAcl,
} from './admin.js';
export type {
  ConsumedMessage,
  ConsumerConfig,
  ConsumerEvents,
  ConsumerRunConfig,
  ConsumerSubscribeTopics,
  EachMessagePayload,
} from './consumer.js';
export type { ConnectorEventOf, ConnectorEventType, EventsOptions, LedgerbusEventMap } from './events.js';
export type {
  MessageValue,
  ProducerBatch,
  ProducerConfig,
  ProducerMessage,
  ProducerRecord,
} from './producer.js';
export type {
  AdminActionInput,
  AdminResult,
  ConnectorEvent,
  MessageCandidate,
  MessageLocation,
  MessageStatus,
  OrganizationDescription,
  PartitionDescription,
  ReceiptBundle,
  ReceiptSource,
  ReceivedMessage,
  SendResult,
  TopicDescription,
  TopicPolicyInput,
} from '../connector/api-types.js';
export { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';

export interface LedgerbusConfig {
  /** Base URL of this organization's connector API, e.g. http://127.0.0.1:7101. */
  readonly connector: string | URL;
  /** The connector's API token (`api.token` in connector.yaml; `connector.token` in network.json). */
  readonly token: string;
  /** Limit for requests that do not stream. Default 30 000 ms. */
  readonly requestTimeoutMs?: number;
}

export interface Health {
  readonly status: 'ok';
  readonly authenticated: boolean;
  readonly organization?: string;
}

export class Ledgerbus {
  private readonly transport: Transport;
  private eventStream: LedgerbusEvents | undefined;

  constructor(config: LedgerbusConfig) {
    if (config.token.length === 0) throw new LedgerbusError(ErrorCode.BadConfig, 'token: must not be empty');
    this.transport = new Transport({
      connector: config.connector,
      token: config.token,
      requestTimeoutMs: config.requestTimeoutMs ?? 30_000,
    });
  }

  /**
   * The connector URL and token of `organization` from a network.json (as written by `ledgerbus dev`),
   * e.g. `new Ledgerbus(Ledgerbus.configFromNetworkFile('.ledgerbus-dev/network.json', 'org1'))`.
   */
  static configFromNetworkFile(path: string, organization: string): LedgerbusConfig {
    const network = JSON.parse(readFileSync(path, 'utf8')) as {
      organizations?: { id: string; connector?: { url: string; token: string } }[];
    };
    const entry = network.organizations?.find((candidate) => candidate.id === organization);
    if (entry?.connector === undefined) {
      throw new LedgerbusError(ErrorCode.BadConfig, `${path}: no connector for organization ${organization}`);
    }
    return { connector: entry.connector.url, token: entry.connector.token };
  }

  producer(config: ProducerConfig = {}): Producer {
    return new Producer(this.transport, config);
  }

  consumer(config: ConsumerConfig): Consumer {
    return new Consumer(this.transport, config);
  }

  /** Topics and organizations (KafkaJS's `kafka.admin()`); changes are signed as this organization. */
  admin(): Admin {
    return new Admin(this.transport);
  }

  /** The data catalog: describe this organization's datasets, search everyone's (ranked, full text). */
  catalog(): Catalog {
    return new Catalog(this.transport);
  }

  /** Alerts nodes raised (about this organization, or all for a supervisor); ack and policy for supervisors. */
  alerts(): Alerts {
    return new Alerts(this.transport, () => this.events());
  }

  /** Datasets this organization shares by compute-to-data: loaded into its connector, never sent. */
  datasets(): Datasets {
    return new Datasets(this.transport);
  }

  /** Compute-to-data jobs: ask others' datasets questions, approve jobs on ours, list sharing records. */
  jobs(): Jobs {
    return new Jobs(this.transport);
  }

  /** The live event stream (one WebSocket per Ledgerbus, opened on first use; `close()` it when done). */
  events(options: EventsOptions = {}): LedgerbusEvents {
    if (this.eventStream === undefined || this.eventStream.isClosed) {
      this.eventStream = new LedgerbusEvents(this.transport, options);
    }
    return this.eventStream;
  }

  /** Reachability and whether the token is accepted; never throws UNAUTHORIZED itself. */
  async health(): Promise<Health> {
    return this.transport.json<Health>('GET', '/healthz');
  }

  /** Throws UNAUTHORIZED or CONNECTION_CLOSED unless the connector is up and accepts the token. */
  async connect(): Promise<void> {
    await checkConnection(this.transport);
  }

  /**
   * Where a message this organization sent or received is: accepted, completed (delivered to all),
   * or expired. Your own ids are unique per topic; ids others sent you are unique per partition only,
   * so for one received on several partitions of the topic name the `partition`
   * (AMBIGUOUS_MESSAGE_ID otherwise).
   */
  async status(topic: string, id: string, options: { partition?: number } = {}): Promise<MessageStatus> {
    return this.transport.json<MessageStatus>('GET', messagePath(topic, id, 'status'), {
      query: { partition: options.partition },
    });
  }

  /**
   * Deletes a message this organization received, and its payload, from its connector: recipients
   * keep what they received until they delete it. MESSAGE_NOT_CONFIRMED (retriable) while its
   * delivery is not confirmed on-chain; MESSAGE_NOT_FOUND if there is no such message (any more).
   */
  async deleteReceived(message: ReceivedLocation): Promise<ReceivedLocation> {
    return this.transport.json<ReceivedLocation>('DELETE', receivedPath(message));
  }

  /**
   * The delivery-proof bundle of a message, checked offline by `ledgerbus verify`; `source` as
   * `ReceiptSource` documents (default best), `partition` as for `status`.
   */
  async receipt(
    topic: string,
    id: string,
    options: { source?: ReceiptSource; partition?: number } = {},
  ): Promise<ReceiptBundle> {
    return this.transport.json<ReceiptBundle>('GET', messagePath(topic, id, 'receipt'), {
      query: { source: options.source, partition: options.partition },
    });
  }
}

function receivedPath(message: ReceivedLocation): string {
  return `/v1/received/${encodeURIComponent(message.topic)}/${message.partition}/${encodeURIComponent(message.id)}`;
}

/** A received message, as `eachMessage` names it: its topic, partition and id. */
export interface ReceivedLocation {
  readonly topic: string;
  readonly partition: number;
  readonly id: string;
}

function messagePath(topic: string, id: string, what: 'status' | 'receipt'): string {
  return `/v1/topics/${encodeURIComponent(topic)}/messages/${encodeURIComponent(id)}/${what}`;
}
