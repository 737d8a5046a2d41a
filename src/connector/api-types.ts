/**
 * What a connector offers its organization's applications, independent of transport: the REST/WS
 * server (`http-api.ts`) exposes exactly this, and the SDK (`ledgerbus/client`) calls it over HTTP.
 */
import type { AlertRecord } from '../registry/alert-schemas.js';
import type { Readable } from 'node:stream';
import type { ReceiptSummary } from '../proofs/index.js';
import type { MessageLocation } from './message-location.js';

export type { MessageCandidate, MessageLocation } from './message-location.js';

export interface OutgoingMessage {
  /** Partitioning key (Kafka semantics); null/undefined for keyless (sticky) assignment. */
  readonly key?: Uint8Array | null;
  /** The payload: streamed, never held whole. */
  readonly value: Readable;
  /** Recipient organization ids. */
  readonly to: readonly string[];
  readonly id?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, Uint8Array>>;
  /**
   * Bytes `value` will yield, when known (an HTTP Content-Length): checked against the topic's
   * `messageBytesMax` before any is read, and then held to exactly. Unknown, the value is cut (and
   * the message refused) as soon as it passes what the policy allows.
   */
  readonly size?: number;
}

/** The acknowledgement of one message: where it is, and the proof (base64 canonical CBOR). */
export interface SendResult {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly height: number;
  readonly size: number;
  /** Acceptance proof: block header, certificate, inclusion proofs (base64 of canonical CBOR). */
  readonly proof: string;
}

/** A message stored in this organization's storage after verification and decryption. */
export interface ReceivedMessage {
  /** Local delivery sequence: consumers' cursors count in it. */
  readonly sequence: number;
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly sender: string;
  readonly size: number;
  /** Hex sha256 of the plaintext. */
  readonly sha256: string;
  readonly contentType: string;
  /** Base64 key, or null. */
  readonly key: string | null;
  readonly receivedAt: number;
  /** Acceptance proof (base64 of canonical CBOR). */
  readonly proof: string;
  /**
   * In a listing (`GET /v1/received`), the payload itself in base64 when it is at most 4 KiB (one
   * packed in the connector's database): no payload request is needed for it. Absent otherwise.
   */
  readonly value?: string;
}

export interface MessageStatus {
  readonly id: string;
  readonly state: 'ACCEPTED' | 'COMPLETED' | 'EXPIRED';
  readonly sender: string;
  readonly partition: number;
  readonly offset: number;
  readonly recipients: readonly { readonly organization: string; readonly state: 'PENDING' | 'DELIVERED' }[];
}

export type ConnectorEvent =
  | { readonly type: 'message.received'; readonly message: ReceivedMessage }
  | {
      readonly type: 'message.failed';
      readonly id: string;
      readonly topic: string;
      readonly partition: number;
      readonly code: string;
      readonly reason: string;
    }
  | {
      readonly type: 'delivery.confirmed';
      readonly id: string;
      readonly topic: string;
      readonly partition: number;
      readonly recipient: string;
      readonly height: number;
    }
  /** A new alert this organization may see (DESIGN §9, docs/alerts.md), as the registry holds it. */
  | { readonly type: 'alert'; readonly alert: AlertRecord };

export interface ConnectorApi {
  readonly organization: string;
  /** One producer batch per partition (one signature each); results in message order. */
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<SendResult[]>;
  /** Received messages of `topic` with sequence > `after`, oldest first, at most `limit`; waits up to waitMs for one. */
  received(options: {
    topic?: string;
    after: number;
    limit: number;
    waitMs?: number;
  }): Promise<ReceivedMessage[]>;
  /**
   * The received message `id` on `at`'s partition. Without `at`, the one received message with this
   * id; AMBIGUOUS_MESSAGE_ID (listing the candidates) when several partitions delivered one, since
   * ids are unique only within a partition.
   */
  receivedMessage(id: string, at?: MessageLocation): ReceivedMessage | undefined;
  /**
   * Deletes a received message and its payload; `at` as for `receivedMessage`. MESSAGE_NOT_CONFIRMED
   * (retriable) while its delivery is not confirmed on-chain.
   */
  deleteReceived(id: string, at?: MessageLocation): Promise<{ id: string; topic: string; partition: number }>;
  /** The decrypted payload of a received message; `at` as for `receivedMessage`. */
  payload(id: string, at?: MessageLocation): Promise<Readable>;
  /** Consumer-group cursor (committed local sequence), like Kafka committed offsets. */
  committedSequence(groupId: string, topic: string): number;
  /** The highest local delivery sequence so far (where a consumer that starts "from now" begins). */
  latestSequence(): number;
  commitSequence(groupId: string, topic: string, sequence: number): void;
  /**
   * The ledger's state of message `id` of `topic`. A sender's ids are unique per topic; one this
   * organization received may repeat on several partitions of a topic: then `partition` says which
   * (AMBIGUOUS_MESSAGE_ID without it).
   */
  status(topic: string, id: string, options?: { partition?: number }): Promise<MessageStatus>;
  /** The delivery-proof bundle for a message this org sent or received (JSON-ready); `partition` as for `status`. */
  receipt(
    topic: string,
    id: string,
    options?: { source?: ReceiptSource; partition?: number },
  ): Promise<ReceiptBundle>;
  onEvent(listener: (event: ConnectorEvent) => void): () => void;
}

/**
 * Where a receipt is built from: the topic's GLOBAL ledger (any node of the topic can answer, from the
 * index the Raft layer keeps), the message's partition (its replicas), or `best` — both, keeping
 * whichever shows more deliveries (the global ledger trails the partitions by a replication round).
 */
export type ReceiptSource = 'global' | 'partition' | 'best';

/** `ledgerbus receipt` output, checked offline by `ledgerbus verify`. */
export interface ReceiptBundle {
  readonly format: 'ledgerbus-receipt/v1';
  readonly network: string;
  /** Which ledger the node built it from. */
  readonly source?: 'global' | 'partition';
  readonly message: ReceiptSummary;
  readonly deliveredTo: readonly string[];
  /** Base64 of the canonical CBOR DeliveryReceipt. */
  readonly proof: string;
}

// ---- administration (the Raft layer: registry and topic configuration) ----

/**
 * How an escrow topic escrows each message for auditors (DESIGN §7): its ciphertext cut into
 * `chunkBytes` chunks, each kept by `replicas` distinct organizations other than the sender; its key
 * escrowed `threshold`-of-`shares` with Feldman VSS; an audit released after `auditApprovals` member
 * approvals. `shares` and `replicas` are not checked against the organizations registered when the
 * policy is set (organizations join later): a send fails with NOT_ENOUGH_HOLDERS while too few
 * organizations other than the sender can hold.
 */
export interface EscrowPolicyDescription {
  /** 4096 to 8388608 bytes. */
  readonly chunkBytes: number;
  /** 1 to 16. */
  readonly replicas: number;
  /** k: 1 to `shares`. */
  readonly threshold: number;
  /** n: 1 to 16. */
  readonly shares: number;
  /** 0 to 64. */
  readonly auditApprovals: number;
}

/** Topic policy fields; omitted ones take the network defaults (see DEFAULT_TOPIC_POLICY). */
export interface TopicPolicyInput {
  readonly messageBytesMax?: number;
  readonly ttlMs?: number;
  readonly payloadRetentionMs?: number;
  /**
   * 'escrow' escrows every message for auditors; 'standard' does not. Omitted: 'standard' for a new
   * topic, unchanged for `setPolicy`.
   */
  readonly availability?: 'standard' | 'escrow';
  /**
   * Escrow parameters, for an escrow topic only (availability 'escrow', given or kept). Omitted
   * fields take the topic's current ones, else DEFAULT_ESCROW_POLICY (replicas 3, threshold 2,
   * shares 3, chunkBytes 1 MiB, auditApprovals 1).
   */
  readonly escrow?: Partial<EscrowPolicyDescription>;
}

/** What an application or the CLI asks its connector to sign and submit as its organization. */
export type AdminActionInput =
  | {
      readonly kind: 'setOrganizationStatus';
      readonly organization: string;
      readonly status: 'APPROVED' | 'SUSPENDED' | 'REVOKED';
      /** Roles granted from now on; absent keeps them (approving a registration grants `member` if requested). */
      readonly roles?: readonly ('member' | 'supervisor' | 'auditor')[];
    }
  | {
      readonly kind: 'createTopic';
      readonly name: string;
      readonly partitions: number;
      /** Replicas per partition (4–7); default 4. Assigned round-robin over nodes of distinct organizations. */
      readonly replicationFactor?: number;
      readonly producers: readonly string[];
      readonly consumers: readonly string[];
      readonly policy?: TopicPolicyInput;
    }
  /** `count` is the new total, as `kafka-topics --alter --partitions`. */
  | {
      readonly kind: 'addPartitions';
      readonly topic: string;
      readonly count: number;
      readonly replicationFactor?: number;
    }
  | {
      readonly kind: 'setAcl';
      readonly topic: string;
      readonly producers: readonly string[];
      readonly consumers: readonly string[];
    }
  | { readonly kind: 'setPolicy'; readonly topic: string; readonly policy: TopicPolicyInput }
  /** Moves a partition to another replica set (a new epoch of its PBFT group). */
  | {
      readonly kind: 'setReplicas';
      readonly topic: string;
      readonly partition: number;
      readonly replicas: readonly string[];
    }
  /**
   * Registers a node of this organization; `publicKey` is hex, `proof` the node key's signature
   * (hex) over the registration (`signNodePossession`), so nobody registers a key it does not hold.
   */
  | {
      readonly kind: 'registerNode';
      readonly id: string;
      readonly publicKey: string;
      readonly address: string;
      readonly proof: string;
    }
  /** Removes a node (its organization, or a supervisor); refused while it replicates a topic. */
  | { readonly kind: 'removeNode'; readonly id: string }
  /** Sets what one organization may make every node hold (supervisors only). */
  | {
      readonly kind: 'setQuotas';
      readonly quotas: {
        readonly topicsPerOrganizationMax: number;
        readonly nodesPerOrganizationMax: number;
        readonly pendingRegistrationsMax: number;
        readonly partitionsPerTopicMax: number;
      };
    }
  /** Binds another connector signing key (hex) to this organization. */
  | { readonly kind: 'bindKey'; readonly key: string }
  /**
   * Describes one of this organization's datasets in the data catalog (DESIGN §8; registry/catalog.ts):
   * `version` is 1 for a new entry, else the entry's last version + 1 (VERSION_CONFLICT otherwise).
   * Approved members only. `contentHash` is the hex SHA-256 of the dataset as loaded.
   */
  | {
      readonly kind: 'catalogPublish';
      readonly dataset: string;
      readonly version: number;
      readonly domain: string;
      readonly title: string;
      readonly description: string;
      readonly tags: readonly string[];
      readonly columns: readonly CatalogColumnInput[];
      readonly rowCount: number;
      readonly contentHash: string;
      readonly policy: CatalogPolicyInput;
    }
  /** Withdraws this organization's catalog entry for `dataset` (DATASET_UNKNOWN if it has none). */
  | { readonly kind: 'catalogWithdraw'; readonly dataset: string };

/** A dataset column as the catalog lists it. */
export interface CatalogColumnInput {
  readonly name: string;
  readonly type: 'integer' | 'real' | 'text' | 'boolean';
}

/** What a catalog entry shows of its owner's policy, with every allowed column named. */
export interface CatalogPolicyInput {
  readonly allowedColumns: readonly string[];
  readonly aggregates: readonly ('count' | 'sum' | 'avg' | 'min' | 'max' | 'quantile')[];
  readonly models: readonly ('linear' | 'logistic')[];
  readonly minGroupSize: number;
  readonly approval: 'auto' | 'manual';
}

/** The outcome of an admin transaction that committed (a refusal is an ADMIN_REJECTED error). */
export interface AdminResult {
  /** "__system" or "topic:<name>". */
  readonly group: string;
  /** Raft index at which it committed. */
  readonly index: number;
  readonly status: 'OK';
  readonly detail?: string;
}

export interface OrganizationDescription {
  readonly id: string;
  readonly roles: readonly string[];
  readonly status: 'APPROVED' | 'PENDING' | 'SUSPENDED' | 'REVOKED';
  /** Hex Ed25519 keys. */
  readonly signingKeys: readonly string[];
  /** Hex X25519 key. */
  readonly encryptionKey: string;
}

export interface PartitionDescription {
  readonly partition: number;
  /** PBFT group id, "<topic>/<partition>". */
  readonly group: string;
  readonly configEpoch: number;
  readonly replicas: readonly string[];
  /** Highest block of this partition in the topic's global ledger, as the connector's node knows it. */
  readonly globalHeight: number;
}

export interface TopicDescription {
  readonly name: string;
  /** Organization that created it (may administer it); null for genesis topics (supervisors only). */
  readonly owner: string | null;
  readonly partitions: readonly PartitionDescription[];
  readonly producers: readonly string[];
  readonly consumers: readonly string[];
  readonly policy: {
    readonly messageBytesMax: number;
    readonly ttlMs: number;
    readonly payloadRetentionMs: number;
    /** Always present: 'standard' for a topic whose policy leaves it out. */
    readonly availability: 'standard' | 'escrow';
    /** Present exactly when availability is 'escrow'. */
    readonly escrow?: EscrowPolicyDescription;
  };
  /** Index of the topic's Raft group this description is at. */
  readonly topicIndex: number;
  readonly raft: {
    readonly voters: readonly string[];
    readonly learners: readonly string[];
    readonly leader: string;
  };
}

export interface ConnectorAdminApi {
  /** Signs `action` with this organization's key and commits it in its Raft group. */
  admin(action: AdminActionInput): Promise<AdminResult>;
  /** Relays an admin transaction signed elsewhere (a new organization's registration). */
  submitAdminTransaction(transaction: Uint8Array): Promise<AdminResult>;
  organizations(): Promise<OrganizationDescription[]>;
  topics(): Promise<TopicDescription[]>;
  /** TOPIC_UNKNOWN-style NotFound error if there is no such topic. */
  describeTopic(name: string): Promise<TopicDescription>;
}

/** What `GET /readyz` checks (see Connector.readiness). */
export type ReadinessCheck = 'started' | 'database' | 'storage' | 'nodes';

/** Whether the connector can do its work now; `failing` names each check that did not pass, and why. */
export interface Readiness {
  readonly ready: boolean;
  readonly failing: readonly { readonly check: ReadinessCheck; readonly reason: string }[];
}
