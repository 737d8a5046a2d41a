/**
 * `ledgerbus connector`: an organization's gateway (DESIGN §1, §3). It holds the org's signing and
 * encryption keys and its payload storage, and keeps outbound connections to its own org's node
 * (no inbound port at the org): one control connection for publish/poll/receipts and a few
 * payload-serving connections on which the node asks for ciphertext.
 *
 * Sending (steps 1–6): encrypt the stream for the recipients into storage, sign ONE publish for the
 * batch, submit it, and check the acknowledgement's proof before reporting success.
 * Receiving (steps 7–18): long-poll each partition from a durable cursor, verify each message's
 * acceptance proof, fetch the ciphertext through the node, verify every chunk against the on-chain
 * root while decrypting into storage, record it exactly once, then confirm delivery on-chain.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { PassThrough, Writable, pipeline } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { CborValue } from '../codec/index.js';
import { bytesEqual } from '../codec/index.js';
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import {
  FetchNonceWindow,
  checkFetchFreshness,
  decodeFetchRequest,
  encodeFetchRequest,
  fetchRequestSignatureValid,
} from '../contracts/fetch.js';
import { decodeTransactionResult } from '../contracts/results.js';
import { encodeConfirmDelivery, encodePublish, nonceBytes } from '../contracts/transactions.js';
import type { MessageMetadata } from '../contracts/transactions.js';
import { SigningDomain } from '../crypto/index.js';
import type { Signer, SigningKeyPair } from '../crypto/index.js';
import {
  decodeEnvelopeHeader,
  decryptPayload,
  encodeEnvelopeHeader,
  encryptPayload,
} from '../crypto/envelope/index.js';
import type { EncryptionKeyPair, EnvelopeHeader } from '../crypto/envelope/index.js';
import { chunkTagBytes } from '../crypto/envelope/header.js';
import { ErrorCode, LedgerbusError, assert, isLedgerbusError } from '../errors.js';
import { RpcPeer, connectFramed, rpcStream } from '../net/index.js';
import { claimDataDirectory } from '../runtime/data-format.js';
import type { Logger } from '../runtime/logger.js';
import {
  blockEvidenceSchema,
  decodeAcceptanceProof,
  deliveryReceiptSchema,
  encodeAcceptanceProof,
  encodeDeliveryReceipt,
  verifyAcceptance,
  verifyAcceptances,
  receiptSummary,
  verifyDeliveryReceipt,
} from '../proofs/index.js';
import type { AcceptanceProof, AcceptedMessage, ProofTrust } from '../proofs/index.js';
import type { NodeInfo } from '../registry/types.js';
import type { LiveRegistry } from '../registry/live-registry.js';
import { ConnectorAdmin } from './admin.js';
import { proofTrustOf } from '../registry/trust.js';
import type { PayloadStorage, StoredObject } from './storage/index.js';
import type {
  AdminActionInput,
  AdminResult,
  ConnectorAdminApi,
  ConnectorApi,
  ConnectorEvent,
  OrganizationDescription,
  TopicDescription,
  MessageStatus,
  OutgoingMessage,
  ReceiptBundle,
  ReceiptSource,
  ReceivedMessage,
  SendResult,
} from './api-types.js';
import { ConnectorDatabase } from './connector-database.js';
import type { ReceivedRow, SentRow } from './connector-database.js';
import { ciphertextBytesFor, messageTooLarge, plaintextBytesMaxFor, sendChunkBytes } from './payload-size.js';
import { AmbiguousMessageIdError, topicOfGroup } from './message-location.js';
import { ByteLimit } from './byte-limit.js';
import { checkContentType } from './media-type.js';
import type { MessageLocation } from './message-location.js';
import { partitionGroupId } from '../contracts/registry.js';
import { StickyPartitioner, partitionForKey } from './partitioner.js';

export interface ConnectorOptions {
  readonly organization: string;
  readonly signingKey: SigningKeyPair;
  readonly encryptionKey: EncryptionKeyPair;
  /** Starts from genesis; the connector keeps it current from its node (see ConnectorAdmin.sync). */
  readonly registry: LiveRegistry;
  readonly storage: PayloadStorage;
  readonly dataDirectory: string;
  readonly nodeId?: string;
  readonly logger: Logger;
  /** Payload-serving connections kept open to the node (concurrent outgoing transfers). */
  readonly servingConnections?: number;
  /** Attempts before a message that fails verification is given up (it is recorded as failed). */
  readonly fetchAttemptsMax?: number;
}

const pollWaitMs = 10_000;
/** Payloads fetched at once by one partition's consumer. */
const fetchConcurrency = 8;
/** Outgoing payloads encrypted and stored at once by one send. */
const storeConcurrency = 16;
/**
 * Messages per signed publish. Every message's proof carries its whole batch transaction, so a
 * batch bounds proof size (64 × ~250 B metadata) while still sharing one signature check among many.
 */
const publishBatchMessagesMax = 64;

/** How often the connector refreshes its registry view (topics, partitions, organizations). */
const registrySyncMs = 1_000;

export class Connector implements ConnectorApi, ConnectorAdminApi {
  readonly organization: string;
  private readonly database: ConnectorDatabase;
  /** Nonces of the fetch requests this connector served payloads for, until they expire. */
  private readonly fetchNonces = new FetchNonceWindow();
  private readonly trust: ProofTrust;
  /**
   * The connector key bound to the network of the genesis it started from: all it signs (publishes,
   * confirmations, fetch requests, envelope headers, admin transactions) is valid in that network only.
   */
  private readonly signer: Signer;
  private readonly node: NodeInfo;
  private control: RpcPeer | undefined;
  private connecting: Promise<RpcPeer> | undefined;
  private readonly servingPeers = new Set<RpcPeer>();
  private readonly listeners = new Set<(event: ConnectorEvent) => void>();
  private readonly receivedWaiters = new Set<() => void>();
  private readonly sleepers = new Set<() => void>();
  private readonly sticky = new StickyPartitioner();
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private servingTimer: NodeJS.Timeout | undefined;
  private readonly adminClient: ConnectorAdmin;
  /** Partitions ("topic/p") with a consume loop running. */
  private readonly consuming = new Set<string>();

  constructor(private readonly options: ConnectorOptions) {
    this.organization = options.organization;
    const organization = options.registry.organization(options.organization);
    // An organization registered after genesis is checked once the node's registry arrives.
    if (
      organization !== undefined &&
      !organization.signingKeys.some((key) => bytesEqual(key, options.signingKey.publicKey))
    ) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `the signing key is not registered for ${options.organization}`,
      );
    }
    const encryptionKey = options.registry.encryptionKey(options.organization);
    if (
      organization !== undefined &&
      (encryptionKey === undefined || !bytesEqual(encryptionKey, options.encryptionKey.publicKey))
    ) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `the encryption key is not the one registered for ${options.organization}`,
      );
    }
    const node =
      options.nodeId === undefined
        ? options.registry.nodes().find((candidate) => candidate.organization === options.organization)
        : options.registry.node(options.nodeId);
    // An explicit nodeId may be another organization's node: a new organization's connector uses a
    // sponsor's node until it registers nodes of its own.
    if (node === undefined || (options.nodeId === undefined && node.organization !== options.organization)) {
      throw new LedgerbusError(ErrorCode.BadConfig, `no node of ${options.organization} to connect to`);
    }
    this.node = node;
    this.signer = SigningDomain.of(options.registry.network).signer(options.signingKey);
    this.trust = proofTrustOf(options.registry);
    // Before the database is opened: data this version cannot verify, or another network's, stops
    // the connector here.
    claimDataDirectory({
      directory: options.dataDirectory,
      role: 'connector',
      network: options.registry.network,
    });
    this.database = new ConnectorDatabase(options.dataDirectory);
    this.adminClient = new ConnectorAdmin({
      organization: options.organization,
      signer: this.signer,
      registry: options.registry,
      request: async (method, body) => (await this.controlPeer()).request(method, body),
    });
  }

  // ---- administration (ConnectorAdminApi) ----

  admin(action: AdminActionInput): Promise<AdminResult> {
    return this.adminClient.admin(action);
  }
  submitAdminTransaction(transaction: Uint8Array): Promise<AdminResult> {
    return this.adminClient.submit(transaction);
  }
  organizations(): Promise<OrganizationDescription[]> {
    return this.adminClient.organizations();
  }
  topics(): Promise<TopicDescription[]> {
    return this.adminClient.topics();
  }
  describeTopic(name: string): Promise<TopicDescription> {
    return this.adminClient.describeTopic(name);
  }

  /** Keeps the registry current and starts consuming partitions that appear (new topics, added partitions). */
  private async registryLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.adminClient.sync();
        this.startConsumeLoops();
      } catch (error) {
        this.options.logger.debug({ error: describe(error) }, 'registry refresh failed; retrying');
      }
      await this.pause(registrySyncMs);
    }
  }

  private startConsumeLoops(): void {
    for (const topic of this.options.registry.topics()) {
      if (!topic.consumers.has(this.organization)) continue;
      for (let partition = 0; partition < topic.partitionCount; partition++) {
        const key = `${topic.name}/${partition}`;
        if (this.consuming.has(key)) continue;
        this.consuming.add(key);
        this.loops.push(this.consumeLoop(topic.name, partition));
      }
    }
  }

  /** Connects, opens the serving connections and starts one consume loop per consumable partition. */
  start(): void {
    const keepServing = (): void => {
      const wanted = this.options.servingConnections ?? 8;
      for (let index = this.servingPeers.size; index < wanted; index++) void this.openServingConnection();
    };
    keepServing();
    this.servingTimer = setInterval(keepServing, 1_000);
    this.loops.push(this.deliveryWatchLoop());
    this.startConsumeLoops();
    this.loops.push(this.registryLoop());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.servingTimer !== undefined) clearInterval(this.servingTimer);
    for (const wake of this.receivedWaiters) wake();
    for (const wake of this.sleepers) wake();
    this.control?.close();
    for (const peer of this.servingPeers) peer.close();
    await Promise.allSettled(this.loops);
    this.database.close();
    await this.options.storage.close();
  }

  /** Waits `ms`, or less if the connector stops meanwhile (so stop() never waits out a backoff). */
  private pause(ms: number): Promise<void> {
    return this.stopped ? Promise.resolve() : this.waitForWake(this.sleepers, ms);
  }

  /** Resolves after `ms`, or as soon as someone calls the waker it put in `wakers`. */
  private waitForWake(wakers: Set<() => void>, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      wakers.add(wake);
    });
  }

  onEvent(listener: (event: ConnectorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- sending ----

  /**
   * Sends `messages` on `topic`: every check that needs no payload byte first (content types,
   * declared sizes against the topic's `messageBytesMax`), then each payload encrypted into storage
   * with its size bounded as it streams, then one signed batch per partition. Whatever this call
   * stored for a message that is not published — a refusal by this connector or by the ledger — is
   * deleted before it throws, and every value it did not finish reading is destroyed.
   */
  async send(topicName: string, messages: readonly OutgoingMessage[]): Promise<SendResult[]> {
    const stored: OutgoingStored[] = [];
    try {
      return await this.sendStored(topicName, messages, stored);
    } catch (error) {
      for (const message of messages) if (!message.value.readableEnded) message.value.destroy();
      await this.discardUnpublished(stored.filter((entry) => entry.created));
      throw error;
    }
  }

  private async sendStored(
    topicName: string,
    messages: readonly OutgoingMessage[],
    stored: OutgoingStored[],
  ): Promise<SendResult[]> {
    const topic = this.options.registry.topic(topicName);
    if (topic === undefined)
      throw new LedgerbusError(ErrorCode.SchemaMismatch, `topic ${topicName} does not exist`);
    if (messages.length === 0) return [];
    if (messages.length > 1024)
      throw new LedgerbusError(ErrorCode.Oversize, 'at most 1024 messages per send');
    const bytesMax = topic.policy.messageBytesMax;
    const plaintextMax = plaintextBytesMaxFor(bytesMax);
    // Everything checkable is checked before a byte of any payload is read or stored.
    const limits = messages.map((message, index) => {
      const field = messages.length === 1 ? '' : `messages[${index}].`;
      if (message.contentType !== undefined) checkContentType(message.contentType, `${field}contentType`);
      const label = message.id ?? (messages.length === 1 ? 'to send' : `${index}`);
      if (message.size === undefined) return { label, plaintextMax, declared: undefined };
      if (!Number.isSafeInteger(message.size) || message.size < 0) {
        throw new LedgerbusError(ErrorCode.SchemaMismatch, `${field}size: expected a non-negative integer`);
      }
      const encrypted = ciphertextBytesFor(message.size);
      if (encrypted > bytesMax) {
        throw messageTooLarge(label, topicName, bytesMax, `${message.size} bytes, ${encrypted} encrypted`);
      }
      return { label, plaintextMax: message.size, declared: message.size };
    });
    // Encrypt and store every payload first (steps 1–2); then one signed batch per partition.
    // Payloads are encrypted and stored several at a time (their fsyncs overlap); each keeps its
    // place in the batch, so offsets follow the order the application gave. After one fails, no
    // other starts, and the call waits for those under way (so it can delete what they stored).
    const prepared: { entry: OutgoingStored; partition: number; index: number }[] = new Array(
      messages.length,
    );
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < messages.length && !failed) {
        const index = next++;
        const message = messages[index] as OutgoingMessage;
        const partition =
          message.key === undefined || message.key === null
            ? this.sticky.partition(topicName, topic.partitionCount)
            : partitionForKey(message.key, topic.partitionCount);
        try {
          const entry = await this.storeOutgoing(topicName, partition, message, {
            ...(limits[index] as (typeof limits)[number]),
            bytesMax,
          });
          stored.push(entry);
          prepared[index] = { entry, partition: entry.metadata.partition, index };
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    const workers = await Promise.allSettled(
      Array.from({ length: Math.min(storeConcurrency, messages.length) }, worker),
    );
    const refusal = workers.find((outcome) => outcome.status === 'rejected');
    if (refusal !== undefined) throw refusal.reason;
    // From here on a payload is deleted only when the ledger refuses its message (publishBatch): a
    // publish that failed otherwise (a timeout) may have been accepted, and its payload is needed.
    stored.length = 0;
    const results: SendResult[] = new Array<SendResult>(messages.length);
    const byPartition = new Map<number, typeof prepared>();
    for (const entry of prepared)
      byPartition.set(entry.partition, [...(byPartition.get(entry.partition) ?? []), entry]);
    const published = await Promise.allSettled(
      [...byPartition].flatMap(([partition, entries]) => {
        // Submitted together over one connection, in order: the batches are pipelined, not serialized.
        // A message's proof carries its whole batch transaction, so a batch holds only messages with
        // the same recipients: a recipient's proof shows no metadata of messages addressed to others.
        const batches: (typeof entries)[] = [];
        for (const run of runsOfSameRecipients(entries, (entry) => entry.entry.metadata.recipients)) {
          for (let start = 0; start < run.length; start += publishBatchMessagesMax) {
            batches.push(run.slice(start, start + publishBatchMessagesMax));
          }
        }
        return batches.map(async (batch) => {
          const accepted = await this.publishBatch(
            topicName,
            partition,
            batch.map((entry) => entry.entry),
          );
          batch.forEach((entry, position) => {
            results[entry.index] = accepted[position] as SendResult;
          });
        });
      }),
    );
    const failure = published.find((outcome) => outcome.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
    this.sticky.next(topicName, topic.partitionCount);
    return results;
  }

  /**
   * Deletes what was stored for messages the ledger never accepted: their sent rows (only while
   * they have no offset) and their ciphertext (only while no row refers to it).
   */
  private async discardUnpublished(entries: readonly OutgoingStored[]): Promise<void> {
    for (const { metadata, storageKey } of entries) {
      this.database.deleteUnpublished(metadata.topic, metadata.id, storageKey);
      if (this.database.sentReferences(storageKey)) continue;
      try {
        await this.options.storage.delete(storageKey);
      } catch (error) {
        this.options.logger.warn(
          { id: metadata.id, storageKey, error: describe(error) },
          'could not delete the payload of a refused message',
        );
      }
    }
  }

  /**
   * Encrypts and stores one message's payload, reading at most `limit.plaintextMax` bytes of it (and
   * exactly `limit.declared`, when declared), or finds it stored by an earlier attempt of the same
   * (topic, id). `created` says whether this call stored it.
   */
  private async storeOutgoing(
    topic: string,
    partition: number,
    message: OutgoingMessage,
    limit: { label: string; plaintextMax: number; declared: number | undefined; bytesMax: number },
  ): Promise<OutgoingStored> {
    const id = message.id ?? randomUUID();
    const recipients = [...message.to];
    const targets = recipients.map((orgId) => {
      const publicKey = this.options.registry.encryptionKey(orgId);
      if (publicKey === undefined)
        throw new LedgerbusError(ErrorCode.SchemaMismatch, `recipient ${orgId} is not in the network`);
      return { orgId, publicKey };
    });
    const bounded = (): Readable =>
      pipeline(
        message.value,
        new ByteLimit(limit.plaintextMax, (total) =>
          limit.declared === undefined
            ? messageTooLarge(limit.label, topic, limit.bytesMax, `more than ${limit.plaintextMax} bytes`)
            : new LedgerbusError(
                ErrorCode.SchemaMismatch,
                `message ${limit.label}: the value runs past the ${limit.declared} bytes declared (${total} so far)`,
              ),
        ),
        () => {},
      );
    const existing = this.database.sent(topic, id);
    if (existing !== undefined) {
      // A retry of a message already encrypted and stored: its value is read (within the bound) and
      // dropped, and the first attempt's metadata is published again, on the partition that attempt
      // chose (a keyless retry must not land on another partition, where the contract would accept
      // the id as a new message).
      await drain(bounded());
      return {
        metadata: this.metadataOfSent(existing, message, recipients),
        storageKey: existing.storage_key,
        created: false,
      };
    }
    const contentType = message.contentType ?? 'application/octet-stream';
    const sink = new PassThrough({ highWaterMark: 1024 * 1024 });
    const stored = this.options.storage.put(sink);
    const [encryption, storing] = await Promise.allSettled([
      encryptPayload({
        source: bounded(),
        sink,
        signer: this.signer,
        senderOrgId: this.organization,
        recipients: targets,
        payloadId: id,
        contentType,
        chunkBytes: sendChunkBytes,
      }),
      stored,
    ]);
    // A failed encryption destroys the sink, which fails the put: it is awaited, so that the put has
    // removed its temporary file before the refusal reaches the caller (nothing of it outlives send).
    if (encryption.status === 'rejected') {
      if (storing.status === 'fulfilled') await this.options.storage.delete(storing.value.key);
      throw encryption.reason;
    }
    if (storing.status === 'rejected') throw storing.reason;
    const encrypted = encryption.value;
    const object = storing.value;
    const created: OutgoingStored = {
      metadata: this.metadataFor(
        id,
        topic,
        partition,
        message,
        recipients,
        object.size,
        encrypted.header.merkleRoot,
        contentType,
      ),
      storageKey: object.key,
      created: true,
    };
    if (limit.declared !== undefined && encrypted.header.plaintextBytes !== limit.declared) {
      stored.catch(() => undefined);
      await this.discardUnpublished([created]);
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `message ${limit.label}: the value ended after ${encrypted.header.plaintextBytes} of the ${limit.declared} bytes declared`,
      );
    }
    this.database.insertSent({
      id,
      topic,
      partition,
      group_id: `${topic}/${partition}`,
      header: encodeEnvelopeHeader(encrypted.header),
      storage_key: object.key,
      size: object.size,
      recipients: JSON.stringify(recipients),
      created_at: Date.now(),
    });
    const row = this.database.sent(topic, id);
    assert(row !== undefined, 'a sent row exists once inserted');
    if (row.storage_key !== object.key) {
      // Another send of the same (topic, id) stored its payload first: this one is its retry.
      await this.discardUnpublished([created]);
      return {
        metadata: this.metadataOfSent(row, message, recipients),
        storageKey: row.storage_key,
        created: false,
      };
    }
    return created;
  }

  /** The metadata a message stored earlier is published with again. */
  private metadataOfSent(row: SentRow, message: OutgoingMessage, recipients: string[]): MessageMetadata {
    const header = decodeEnvelopeHeader(row.header);
    return this.metadataFor(
      row.id,
      row.topic,
      row.partition,
      message,
      recipients,
      row.size,
      header.merkleRoot,
      header.contentType,
    );
  }

  private metadataFor(
    id: string,
    topic: string,
    partition: number,
    message: OutgoingMessage,
    recipients: string[],
    size: number,
    contentRoot: Uint8Array,
    contentType: string,
  ): MessageMetadata {
    return {
      id,
      topic,
      partition,
      key: message.key ?? null,
      recipients,
      size,
      contentRoot,
      contentType,
      headers: { ...(message.headers ?? {}) },
    };
  }

  /**
   * Signs one publish for the batch, submits it, verifies every message's acceptance proof. What
   * the ledger refused is discarded (if this send stored it) before the refusal is thrown; what it
   * accepted is recorded as sent first, whatever else in the batch was refused.
   */
  private async publishBatch(
    topic: string,
    partition: number,
    entries: readonly OutgoingStored[],
  ): Promise<SendResult[]> {
    const group = `${topic}/${partition}`;
    const metadata = entries.map((entry) => entry.metadata);
    const { answer, result } = await this.publishUntilEpochOpen(group, metadata);
    if (result.status === 'REJECTED') {
      await this.discardUnpublished(entries.filter((entry) => entry.created));
      throw new LedgerbusError(
        ErrorCode.MessageRejected,
        `${result.reason}${result.detail === undefined ? '' : ` (${result.detail})`}`,
      );
    }
    if (result.type !== 'publish')
      throw new LedgerbusError(ErrorCode.BadProof, 'the node answered with another transaction');
    // Retries of messages accepted earlier (an id sent again) are proven by their first block.
    const firstAcceptance = new Map<string, AcceptanceProof>();
    for (const outcome of result.messages) {
      if (outcome.status !== 'ACCEPTED' || outcome.height === answer.evidence.header.height) continue;
      const stored = this.database.sent(topic, outcome.id)?.proof;
      firstAcceptance.set(
        outcome.id,
        stored === null || stored === undefined
          ? await this.acceptanceFromNode(group, outcome.id)
          : decodeAcceptanceProof(stored),
      );
    }
    // Everything first accepted in this block is verified in one pass over the batch.
    const freshIndexes = result.messages.flatMap((outcome, messageIndex) =>
      outcome.status === 'ACCEPTED' && outcome.height === answer.evidence.header.height ? [messageIndex] : [],
    );
    const fresh = new Map(
      verifyAcceptances(answer.evidence, freshIndexes, this.trust).map((accepted, position) => [
        freshIndexes[position] as number,
        accepted,
      ]),
    );
    const refused: { entry: OutgoingStored; error: LedgerbusError }[] = [];
    const results = metadata.map((message, messageIndex): SendResult | undefined => {
      const outcome = result.messages[messageIndex];
      if (outcome === undefined) throw new LedgerbusError(ErrorCode.BadProof, 'missing message result');
      if (outcome.status === 'REJECTED') {
        refused.push({
          entry: entries[messageIndex] as OutgoingStored,
          error: new LedgerbusError(
            ErrorCode.MessageRejected,
            `message ${message.id}: ${outcome.reason}${outcome.detail === undefined ? '' : ` (${outcome.detail})`}`,
          ),
        });
        return undefined;
      }
      // A retry's result points at the first acceptance: prove that block instead.
      const retried = firstAcceptance.get(message.id);
      const proof: AcceptanceProof = retried ?? { block: answer.evidence, messageIndex };
      const accepted =
        retried === undefined ? fresh.get(messageIndex) : verifyAcceptance(retried, this.trust);
      if (accepted === undefined || accepted.id !== message.id) {
        throw new LedgerbusError(ErrorCode.BadProof, `no proof of the acceptance of ${message.id}`);
      }
      const proofBytes = encodeAcceptanceProof(proof);
      this.database.markSent(topic, message.id, accepted.offset, accepted.height, proofBytes);
      return {
        id: message.id,
        topic,
        partition,
        offset: accepted.offset,
        height: accepted.height,
        size: message.size,
        proof: Buffer.from(proofBytes).toString('base64'),
      };
    });
    const [first] = refused;
    if (first !== undefined) {
      await this.discardUnpublished(refused.map(({ entry }) => entry).filter((entry) => entry.created));
      throw first.error;
    }
    return results as SendResult[];
  }

  /**
   * Publishes the batch; if the partition's epoch closed under it (it is moving to a new replica
   * set), publishes it again, with a fresh nonce, once the new replicas run. Message ids keep a
   * message that was in fact accepted before from being accepted twice.
   */
  private async publishUntilEpochOpen(
    group: string,
    metadata: MessageMetadata[],
  ): Promise<{
    answer: Awaited<ReturnType<Connector['submit']>>;
    result: ReturnType<typeof decodeTransactionResult>;
  }> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const operation = encodePublish(
        {
          sender: this.organization,
          nonce: randomBytes(nonceBytes),
          timestamp: Date.now(),
          messages: metadata,
        },
        this.signer,
      );
      const answer = await this.submit(group, operation);
      const result = decodeTransactionResult(answer.evidence.result);
      if (result.status !== 'REJECTED' || result.reason !== 'EPOCH_CLOSED' || Date.now() > deadline) {
        return { answer, result };
      }
      this.options.logger.info({ group }, 'partition moved to a new replica set; publishing again');
      await this.pause(500);
      await this.adminClient.sync().catch(() => undefined);
    }
  }

  /** Wraps an SDT transaction in a signed client request and submits it, retrying retriable failures. */
  private async submit(
    group: string,
    operation: Uint8Array,
  ): Promise<{ height: number; evidence: ReturnType<typeof blockEvidenceSchema.parse> }> {
    const seq = this.database.reserveSequence(1);
    const request = encodeClientRequest(
      { group, client: this.signer.publicKey, seq, operation },
      this.signer.sign,
    );
    decodeClientRequest(request, messageLimits.requestBytesMax);
    let delayMs = 200;
    for (let attempt = 1; ; attempt++) {
      try {
        const control = await this.controlPeer();
        const answer = (await control.request('publish', { group, request })) as Record<string, CborValue>;
        const evidence = blockEvidenceSchema.parse(answer['evidence'], 'evidence');
        return { height: evidence.header.height, evidence };
      } catch (error) {
        const retriable = isLedgerbusError(error) && error.retriable;
        if (!retriable || attempt >= 8 || this.stopped) throw error;
        await this.pause(delayMs);
        delayMs = Math.min(delayMs * 2, 5_000);
      }
    }
  }

  private async acceptanceFromNode(group: string, id: string): Promise<AcceptanceProof> {
    const control = await this.controlPeer();
    const answer = (await control.request('receipt', { group, id })) as Record<string, CborValue>;
    return decodeAcceptanceProofValue(answer['acceptance']);
  }

  // ---- receiving ----

  /**
   * One partition's consumer: long-polls a page of messages from the durable cursor, verifies each
   * acceptance proof, fetches the payloads addressed to this organization (several at once, each over
   * a bulk connection reused within the page), records them in offset order (so applications see
   * partition order), confirms them on-chain in one transaction, then moves the cursor. A payload
   * that failed for a retriable reason stops the page there: the cursor stays on it and it is retried.
   */
  private async consumeLoop(topic: string, partition: number): Promise<void> {
    const group = `${topic}/${partition}`;
    let backoffMs = 1_000;
    while (!this.stopped) {
      try {
        const control = await this.controlPeer();
        const fromOffset = this.database.cursor(group);
        const page = (await control.request('poll', {
          group,
          fromOffset,
          limit: 200,
          waitMs: pollWaitMs,
        })) as Record<string, CborValue>;
        const evidences = (page['evidences'] as CborValue[] | undefined) ?? [];
        const listed = (page['messages'] as Record<string, CborValue>[] | undefined) ?? [];
        // Verify each evidence once for all of its messages (a page is often one producer batch).
        const byEvidence = new Map<number, { offset: number; messageIndex: number }[]>();
        for (const entry of listed) {
          const index = entry['evidence'];
          const messageIndex = entry['messageIndex'];
          const offset = entry['offset'];
          if (typeof index !== 'number' || typeof messageIndex !== 'number' || typeof offset !== 'number') {
            throw new LedgerbusError(ErrorCode.SchemaMismatch, 'poll: malformed message entry');
          }
          byEvidence.set(index, [...(byEvidence.get(index) ?? []), { offset, messageIndex }]);
        }
        const entries: { accepted: AcceptedMessage; proof: AcceptanceProof }[] = [];
        for (const [index, items] of byEvidence) {
          const block = decodeAcceptanceProofValue({
            block: evidences[index] ?? null,
            messageIndex: 0,
          }).block;
          const verified = verifyAcceptances(
            block,
            items.map((item) => item.messageIndex),
            this.trust,
          );
          verified.forEach((accepted, position) => {
            const item = items[position] as { offset: number; messageIndex: number };
            if (accepted.offset !== item.offset || accepted.partitionId !== group) {
              throw new LedgerbusError(
                ErrorCode.BadProof,
                `the node's proof is for another offset than ${item.offset}`,
              );
            }
            entries.push({ accepted, proof: { block, messageIndex: item.messageIndex } });
          });
        }
        entries.sort((a, b) => a.accepted.offset - b.accepted.offset);
        const mine = entries.filter((entry) => entry.accepted.recipients.includes(this.organization));
        const blockedAt = await this.receivePage(mine);
        const stored = mine.filter((entry) => entry.accepted.offset < (blockedAt ?? Number.MAX_SAFE_INTEGER));
        await this.confirmStored(stored.map((entry) => entry.accepted));
        const nextOffset = page['nextOffset'];
        const end = blockedAt ?? (typeof nextOffset === 'number' ? nextOffset : fromOffset);
        if (end > this.database.cursor(group)) this.database.setCursor(group, end);
        if (blockedAt !== undefined) await this.pause(1_000);
        backoffMs = 1_000;
      } catch (error) {
        if (this.stopped) return;
        this.options.logger.warn(
          { group, error: describe(error), retryInMs: backoffMs },
          'consume loop error; retrying',
        );
        await this.pause(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 30_000);
      }
    }
  }

  /**
   * Fetches and stores the page's new payloads, then records them in offset order. Returns the offset
   * of the first message that must be retried (nothing from it on is recorded), or undefined.
   */
  private async receivePage(
    entries: { accepted: AcceptedMessage; proof: AcceptanceProof }[],
  ): Promise<number | undefined> {
    const pending = entries.filter(
      (entry) => this.database.received(entry.accepted.partitionId, entry.accepted.id) === undefined,
    );
    const outcomes = new Map<string, StoredObject | Error>();
    let next = 0;
    // Each worker reuses its bulk connections (one per node it fetches from) for its next payloads:
    // streams never share a socket, and small payloads do not pay a TLS handshake each.
    const worker = async (): Promise<void> => {
      const connections = new Map<string, RpcPeer>();
      try {
        while (next < pending.length && !this.stopped) {
          const { accepted } = pending[next++] as (typeof pending)[number];
          try {
            outcomes.set(accepted.id, await this.fetchToStorage(accepted, connections));
          } catch (error) {
            outcomes.set(accepted.id, error instanceof Error ? error : new Error(String(error)));
          }
        }
      } finally {
        for (const peer of connections.values()) peer.close();
      }
    };
    await Promise.all(Array.from({ length: Math.min(fetchConcurrency, pending.length) }, worker));
    for (const { accepted, proof } of pending) {
      const outcome = outcomes.get(accepted.id);
      if (outcome === undefined) return accepted.offset; // stopping
      if (outcome instanceof Error) {
        const code = isLedgerbusError(outcome) ? outcome.code : 'INTERNAL';
        const attempts = this.database.recordFailure(
          accepted.id,
          accepted.partitionId,
          accepted.offset,
          code,
          describe(outcome),
        );
        this.options.logger.warn(
          { id: accepted.id, attempts, error: describe(outcome) },
          'payload fetch failed; nothing stored',
        );
        // Not retriable: the payload is corrupt, or its sender does not have it; retrying cannot help.
        const permanent = !isLedgerbusError(outcome) || !outcome.retriable;
        if (permanent && attempts >= (this.options.fetchAttemptsMax ?? 3)) {
          this.emit({
            type: 'message.failed',
            id: accepted.id,
            topic: accepted.topic,
            partition: accepted.partition,
            code,
            reason: describe(outcome),
          });
          continue; // given up: recorded as failed, the cursor moves past it
        }
        return accepted.offset;
      }
      const row = this.database.insertReceived({
        id: accepted.id,
        topic: accepted.topic,
        partition: accepted.partition,
        group_id: accepted.partitionId,
        offset: accepted.offset,
        sender: accepted.sender,
        size: outcome.size,
        sha256: outcome.key,
        storage_key: outcome.key,
        content_type: accepted.contentType,
        message_key: accepted.key,
        proof: encodeAcceptanceProof(proof),
        received_at: Date.now(),
      });
      this.emit({ type: 'message.received', message: toReceivedMessage(row) });
      for (const wake of this.receivedWaiters) wake();
    }
    return undefined;
  }

  /** Streams one payload from the sender's side, verifying and decrypting it into storage. */
  private async fetchToStorage(
    accepted: AcceptedMessage,
    connections: Map<string, RpcPeer>,
  ): Promise<StoredObject> {
    const fetchRequest = encodeFetchRequest(
      {
        requester: this.organization,
        partitionId: accepted.partitionId,
        id: accepted.id,
        nonce: randomBytes(nonceBytes),
        timestamp: Date.now(),
      },
      this.signer,
    );
    const key = accepted.sender;
    let bulk = connections.get(key);
    if (bulk === undefined || bulk.closed) {
      bulk = await this.openBulkConnection(accepted);
      connections.set(key, bulk);
    }
    let failed = true;
    try {
      const { head, stream } = await bulk.requestStream('fetchPayload', {
        group: accepted.partitionId,
        fetchRequest,
      });
      let header: EnvelopeHeader;
      let ciphertextBytes: number;
      try {
        const headerBytes = (head as Record<string, CborValue>)['header'];
        if (!(headerBytes instanceof Uint8Array))
          throw new LedgerbusError(ErrorCode.PayloadCorrupt, 'the payload came without its envelope header');
        header = decodeEnvelopeHeader(headerBytes);
        ciphertextBytes = this.checkServedSize(accepted, header);
      } catch (error) {
        // Refused before a byte of it is read: cancel the stream quietly (nobody listens to it yet).
        stream.destroy();
        throw error;
      }
      // The header is not trusted for the bound (the envelope checks it only as the chunks come):
      // past the size the ledger and the header agree on, the stream is cut at the crossing byte.
      const bounded = pipeline(
        stream,
        new ByteLimit(
          ciphertextBytes,
          (total) =>
            new LedgerbusError(
              ErrorCode.Oversize,
              `payload ${accepted.id} from ${accepted.sender} runs past the ${ciphertextBytes} bytes declared on-chain (${total} so far); stopped`,
            ),
        ),
        () => {},
      );
      const plaintext = await decryptPayload({
        header,
        ciphertext: bounded,
        recipientOrgId: this.organization,
        recipientKey: this.options.encryptionKey,
        senderPublicKey: accepted.signerKey,
        signing: this.signer.domain,
        expectedRoot: accepted.contentRoot,
        expectedPayloadId: accepted.id,
        expectedSenderOrgId: accepted.sender,
      });
      // Content-addressed storage: the key IS the plaintext's sha256.
      const stored = await this.options.storage.put(plaintext, { sizeMax: header.plaintextBytes });
      failed = false;
      return stored;
    } catch (error) {
      if (
        isLedgerbusError(error) &&
        [
          ErrorCode.BadProof,
          ErrorCode.BadSignature,
          ErrorCode.MalformedEncoding,
          ErrorCode.SchemaMismatch,
        ].includes(error.code as never)
      ) {
        throw new LedgerbusError(
          ErrorCode.PayloadCorrupt,
          `payload of ${accepted.id} does not verify: ${error.message}`,
        );
      }
      throw error;
    } finally {
      // After a failure the connection may still carry the rest of a cancelled stream: drop it.
      if (failed) {
        connections.delete(key);
        bulk.close();
      }
    }
  }

  /**
   * The ciphertext length the served envelope header implies (its chunking is fixed by its plaintext
   * size and chunk size), once it is known to be exactly the size the ledger accepted and within the
   * topic's `messageBytesMax`. The ledger checked only the sender's declared size, and the envelope
   * alone allows terabytes: without this a sender could publish a small size and serve anything.
   * OVERSIZE (more than declared or allowed) and PAYLOAD_CORRUPT (less) are not retriable.
   */
  private checkServedSize(accepted: AcceptedMessage, header: EnvelopeHeader): number {
    const implied = header.plaintextBytes + header.chunkCount * chunkTagBytes;
    const allowed = this.options.registry.topic(accepted.topic)?.policy.messageBytesMax ?? accepted.size;
    if (implied > accepted.size || implied > allowed) {
      throw new LedgerbusError(
        ErrorCode.Oversize,
        `payload ${accepted.id} from ${accepted.sender}: its envelope holds ${implied} bytes, but ${accepted.size} were declared on-chain (topic ${accepted.topic} allows ${allowed}); not fetched`,
      );
    }
    if (implied < accepted.size) {
      throw new LedgerbusError(
        ErrorCode.PayloadCorrupt,
        `payload ${accepted.id} from ${accepted.sender}: its envelope holds ${implied} bytes, not the ${accepted.size} declared on-chain`,
      );
    }
    return implied;
  }

  /** Confirms on-chain every stored message of `accepted` not confirmed yet, in one transaction per 1024. */
  private async confirmStored(accepted: readonly AcceptedMessage[]): Promise<void> {
    const unconfirmed = accepted.filter(
      (message) => this.database.received(message.partitionId, message.id)?.confirmed === 0,
    );
    // A sender's receipt carries the whole confirmDelivery transaction: one per sender, so a receipt
    // names no other sender's messages.
    const bySender = new Map<string, AcceptedMessage[]>();
    for (const message of unconfirmed) {
      bySender.set(message.sender, [...(bySender.get(message.sender) ?? []), message]);
    }
    for (const messages of bySender.values()) {
      for (let start = 0; start < messages.length; start += 1024) {
        const batch = messages.slice(start, start + 1024);
        await this.confirm(batch);
        for (const message of batch) this.database.markConfirmed(message.partitionId, message.id);
      }
    }
  }

  /** Records the deliveries of `messages` (one partition) on-chain in one confirmDelivery. */
  private async confirm(messages: readonly AcceptedMessage[]): Promise<void> {
    const first = messages[0];
    if (first === undefined) return;
    const operation = encodeConfirmDelivery(
      {
        recipient: this.organization,
        nonce: randomBytes(nonceBytes),
        timestamp: Date.now(),
        deliveries: messages.map((message) => ({ id: message.id, contentRoot: message.contentRoot })),
      },
      this.signer,
    );
    const answer = await this.submit(first.partitionId, operation);
    const result = decodeTransactionResult(answer.evidence.result);
    if (result.status !== 'OK' || result.type !== 'confirmDelivery') {
      throw new LedgerbusError(
        ErrorCode.MessageRejected,
        `confirmDelivery refused: ${result.status === 'REJECTED' ? result.reason : 'unexpected result'}`,
      );
    }
    result.deliveries.forEach((delivery, index) => {
      const { id, topic, partition } = messages[index] as AcceptedMessage;
      if (delivery.status === 'DELIVERED') {
        this.emit({
          type: 'delivery.confirmed',
          id,
          topic,
          partition,
          recipient: this.organization,
          height: delivery.height,
        });
      } else {
        // Expired before we stored it, typically: the payload is kept, the ledger says why.
        this.options.logger.warn({ id, reason: delivery.reason }, 'delivery confirmation refused');
      }
    });
  }

  /**
   * Steps 19–22 on the sender's side: follows the lifecycle of what this organization sent and emits
   * `delivery.confirmed` once per recipient as the confirmations commit. State is on-chain; what was
   * already reported is kept in the database, so a restart reports nothing twice.
   */
  private async deliveryWatchLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        const open = this.database.openSent(100);
        if (open.length > 0) {
          const control = await this.controlPeer();
          for (const row of open) {
            const answer = (await control.request('message', { group: row.group_id, id: row.id })) as Record<
              string,
              CborValue
            >;
            const reported = JSON.parse(row.delivered_to) as string[];
            const delivered = [...reported];
            for (const recipient of (answer['recipients'] as Record<string, CborValue>[] | undefined) ?? []) {
              const organization = recipient['organization'] as string;
              if (recipient['state'] !== 'DELIVERED' || delivered.includes(organization)) continue;
              delivered.push(organization);
              this.emit({
                type: 'delivery.confirmed',
                id: row.id,
                topic: row.topic,
                partition: row.partition,
                recipient: organization,
                height: typeof recipient['height'] === 'number' ? recipient['height'] : 0,
              });
            }
            const state = typeof answer['state'] === 'string' ? answer['state'] : 'ACCEPTED';
            if (state !== 'ACCEPTED' || delivered.length !== reported.length) {
              this.database.updateLifecycle(row.topic, row.id, state, delivered);
            }
          }
        }
      } catch (error) {
        if (this.stopped) return;
        this.options.logger.debug({ error: describe(error) }, 'delivery watch: retrying');
      }
      await this.pause(1_000);
    }
  }

  // ---- serving payloads to recipients (steps 9–12, sender side) ----

  private servePayload(
    body: CborValue,
  ): ReturnType<typeof rpcStream> | Promise<ReturnType<typeof rpcStream>> {
    const record = body as Record<string, CborValue>;
    const fetchBytes = record['fetchRequest'];
    if (!(fetchBytes instanceof Uint8Array))
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'fetchRequest: expected bytes');
    const request = decodeFetchRequest(fetchBytes);
    // Re-checked here, not taken from the node: the requester signed it with one of its own keys,
    // for this network, recently, once; and is approved in this connector's view of the registry.
    const now = Date.now();
    checkFetchFreshness(request, this.signer.domain.network, now);
    const requester = this.options.registry.organization(request.requester);
    const keys = requester?.signingKeys ?? [];
    if (
      !keys.some((key) => bytesEqual(key, request.signerKey)) ||
      !fetchRequestSignatureValid(request, this.signer.domain)
    ) {
      throw new LedgerbusError(ErrorCode.BadSignature, 'fetch request is not signed by its requester');
    }
    if (requester?.status !== 'APPROVED') {
      throw new LedgerbusError(
        ErrorCode.NotApproved,
        `${request.requester} is ${requester?.status ?? 'not registered'}; only approved organizations read`,
      );
    }
    this.fetchNonces.admit(request, now);
    const sent = this.database.sent(topicOfGroup(request.partitionId), request.id);
    if (sent === undefined || sent.group_id !== request.partitionId) {
      throw new LedgerbusError(ErrorCode.PayloadNotFound, `no payload ${request.id} was sent from here`);
    }
    if (!(JSON.parse(sent.recipients) as string[]).includes(request.requester)) {
      this.options.logger.warn(
        { id: request.id, requester: request.requester },
        'refused a payload fetch by a non-recipient',
      );
      throw new LedgerbusError(
        ErrorCode.NotRecipient,
        `${request.requester} is not a recipient of ${request.id}`,
      );
    }
    return this.options.storage
      .get(sent.storage_key)
      .then((stream) => rpcStream(stream, { header: sent.header }));
  }

  // ---- reads for applications ----

  async received(options: {
    topic?: string;
    after: number;
    limit: number;
    waitMs?: number;
  }): Promise<ReceivedMessage[]> {
    const limit = Math.max(1, Math.min(options.limit, 1000));
    let rows = this.database.receivedAfter(options.after, limit, options.topic);
    if (rows.length === 0 && (options.waitMs ?? 0) > 0 && !this.stopped) {
      await this.waitForWake(this.receivedWaiters, options.waitMs ?? 0);
      rows = this.database.receivedAfter(options.after, limit, options.topic);
    }
    return rows.map(toReceivedMessage);
  }

  receivedMessage(id: string, at?: MessageLocation): ReceivedMessage | undefined {
    const row = this.receivedRow(id, at);
    return row === undefined ? undefined : toReceivedMessage(row);
  }

  async payload(id: string, at?: MessageLocation): Promise<Readable> {
    const row = this.receivedRow(id, at);
    if (row === undefined) throw new LedgerbusError(ErrorCode.MessageNotFound, `no received message ${id}`);
    return this.options.storage.get(row.storage_key);
  }

  /** The received message `id` at `at`, or the only one with that id (AMBIGUOUS_MESSAGE_ID if several). */
  private receivedRow(id: string, at: MessageLocation | undefined): ReceivedRow | undefined {
    if (at !== undefined) return this.database.received(partitionGroupId(at.topic, at.partition), id);
    const rows = this.database.receivedWithId(id);
    if (rows.length > 1) {
      throw new AmbiguousMessageIdError(
        id,
        rows.map((row) => ({ topic: row.topic, partition: row.partition, id, sender: row.sender })),
        'name one, as GET /v1/received/{topic}/{partition}/{id}',
      );
    }
    return rows[0];
  }

  committedSequence(groupId: string, topic: string): number {
    return this.database.consumerSequence(groupId, topic) ?? 0;
  }

  commitSequence(groupId: string, topic: string, sequence: number): void {
    if (!Number.isSafeInteger(sequence) || sequence < 0)
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'sequence: expected a non-negative integer');
    this.database.setConsumerSequence(groupId, topic, sequence);
  }

  latestSequence(): number {
    return this.database.lastSequence();
  }

  async status(topic: string, id: string, options: { partition?: number } = {}): Promise<MessageStatus> {
    const group = this.groupOf(topic, id, options.partition);
    const control = await this.controlPeer();
    const answer = (await control.request('message', { group, id })) as Record<string, CborValue>;
    return {
      id,
      state: answer['state'] as MessageStatus['state'],
      sender: answer['sender'] as string,
      partition: Number(group.slice(group.lastIndexOf('/') + 1)),
      offset: answer['offset'] as number,
      recipients: (answer['recipients'] as Record<string, CborValue>[]).map((recipient) => ({
        organization: recipient['organization'] as string,
        state: recipient['state'] as 'PENDING' | 'DELIVERED',
      })),
    };
  }

  async receipt(
    topic: string,
    id: string,
    options: { source?: ReceiptSource; partition?: number } = {},
  ): Promise<ReceiptBundle> {
    const control = await this.controlPeer();
    const source = options.source ?? 'best';
    // The global ledger can find a message this connector neither sent nor received (a supervisor's
    // question) without knowing its partition; when the partition is known, both sources are pinned
    // to it, or the node could answer with another partition's message of the same id.
    let group: string | undefined;
    try {
      group = this.groupOf(topic, id, options.partition);
    } catch (error) {
      if (source !== 'global' || !isLedgerbusError(error, ErrorCode.MessageNotFound)) throw error;
    }
    // From the topic's global ledger any node of the topic answers, hosting the partition or not.
    const fromGlobal = async (): Promise<Record<string, CborValue>> =>
      (await control.request('globalReceipt', {
        topic,
        id,
        ...(group === undefined ? {} : { partition: group }),
      })) as Record<string, CborValue>;
    const fromPartition = async (): Promise<Record<string, CborValue>> =>
      (await control.request('receipt', { group: group as string, id })) as Record<string, CborValue>;
    let answer: Record<string, CborValue>;
    let answeredFrom: 'global' | 'partition';
    if (source === 'global') [answer, answeredFrom] = [await fromGlobal(), 'global'];
    else if (source === 'partition') [answer, answeredFrom] = [await fromPartition(), 'partition'];
    else {
      const [global, partition] = await Promise.allSettled([fromGlobal(), fromPartition()]);
      const deliveries = (settled: PromiseSettledResult<Record<string, CborValue>>): number =>
        settled.status === 'fulfilled' && Array.isArray(settled.value['deliveries'])
          ? settled.value['deliveries'].length
          : -1;
      if (global.status === 'rejected' && partition.status === 'rejected') throw partition.reason;
      [answer, answeredFrom] =
        deliveries(global) >= deliveries(partition)
          ? [(global as PromiseFulfilledResult<Record<string, CborValue>>).value, 'global']
          : [(partition as PromiseFulfilledResult<Record<string, CborValue>>).value, 'partition'];
    }
    const receipt = deliveryReceiptSchema.parse(
      { acceptance: answer['acceptance'], deliveries: answer['deliveries'] },
      'receipt',
    );
    const verified = verifyDeliveryReceipt(receipt, this.trust);
    const message = verified.message;
    if (
      message.id !== id ||
      message.topic !== topic ||
      (group !== undefined && message.partitionId !== group)
    ) {
      throw new LedgerbusError(
        ErrorCode.BadProof,
        `the node proved ${message.partitionId}/${message.id}, not ${group ?? topic}/${id}`,
      );
    }
    return {
      format: 'ledgerbus-receipt/v1',
      network: this.options.registry.network,
      source: answeredFrom,
      message: receiptSummary(message),
      deliveredTo: verified.deliveries.map((delivery) => delivery.recipient),
      proof: Buffer.from(encodeDeliveryReceipt(receipt)).toString('base64'),
    };
  }

  /** Messages whose payload could not be received, newest last; `attempts` counts the tries so far. */
  failures(): {
    id: string;
    topic: string;
    partition: number;
    code: string;
    reason: string;
    attempts: number;
  }[] {
    return this.database.failures().map((row) => ({
      id: row.id,
      topic: topicOfGroup(row.group_id),
      partition: Number(row.group_id.slice(row.group_id.lastIndexOf('/') + 1)),
      code: row.code,
      reason: row.reason,
      attempts: row.attempts,
    }));
  }

  /**
   * The partition ("topic/p") of message `id` of `topic` that this organization sent or received:
   * `partition` when given; else the one partition where it has such a message (AMBIGUOUS_MESSAGE_ID
   * when it has several: its own ids are unique per topic, but what others sent it is unique per
   * partition only); else partition 0 of a one-partition topic (a supervisor may ask about anything).
   */
  private groupOf(topic: string, id: string, partition?: number): string {
    if (partition !== undefined) return partitionGroupId(topic, partition);
    const candidates = new Map<string, { partition: number; sender: string }>();
    const sent = this.database.sent(topic, id);
    if (sent !== undefined)
      candidates.set(sent.group_id, { partition: sent.partition, sender: this.organization });
    for (const row of this.database.receivedWithId(id, topic)) {
      candidates.set(row.group_id, { partition: row.partition, sender: row.sender });
    }
    if (candidates.size > 1) {
      throw new AmbiguousMessageIdError(
        id,
        [...candidates.values()].map((candidate) => ({ topic, id, ...candidate })),
        `name the partition (?partition=N)`,
      );
    }
    const [only] = candidates.keys();
    if (only !== undefined) return only;
    const partitions = this.options.registry.topic(topic)?.partitionCount;
    if (partitions === 1) return `${topic}/0`;
    throw new LedgerbusError(
      ErrorCode.MessageNotFound,
      `message ${id} of ${topic} was neither sent nor received by ${this.organization}`,
    );
  }

  // ---- connections ----

  private async openConnection(node: NodeInfo = this.node): Promise<RpcPeer> {
    const connection = await connectFramed({
      host: node.host,
      port: node.port,
      identity: this.options.signingKey,
      expectedPublicKey: node.publicKey,
      timeoutMs: 5_000,
    });
    return new RpcPeer(connection, { requestTimeoutMs: 60_000 });
  }

  /**
   * Where to fetch a payload from. The sender organization's node serves it from its own connector
   * with one relay hop; when that node does not replicate the partition (it could not check the
   * request against committed state) or cannot be reached, our own node relays it (two hops).
   */
  private async openBulkConnection(accepted: AcceptedMessage): Promise<RpcPeer> {
    const senderNode = this.options.registry
      .nodes()
      .find(
        (node) => node.organization === accepted.sender && this.replicates(node.id, accepted.partitionId),
      );
    if (senderNode !== undefined && senderNode.id !== this.node.id) {
      try {
        return await this.openConnection(senderNode);
      } catch (error) {
        this.options.logger.debug(
          { node: senderNode.id, error: describe(error) },
          'fetching through our own node',
        );
      }
    }
    return this.openConnection();
  }

  private replicates(nodeId: string, partitionId: string): boolean {
    return this.options.registry.partition(partitionId)?.replicas.includes(nodeId) ?? false;
  }

  private controlPeer(): Promise<RpcPeer> {
    if (this.control !== undefined && !this.control.closed) return Promise.resolve(this.control);
    if (this.stopped)
      return Promise.reject(new LedgerbusError(ErrorCode.ConnectionClosed, 'connector stopped'));
    this.connecting ??= this.openConnection()
      .then((peer) => {
        this.control = peer;
        return peer;
      })
      .catch((error: unknown) => {
        throw new LedgerbusError(
          ErrorCode.ConnectionClosed,
          `cannot reach node ${this.node.id}: ${describe(error)}`,
          { retriable: true },
        );
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private async openServingConnection(): Promise<void> {
    if (this.stopped) return;
    let peer: RpcPeer;
    try {
      peer = await this.openConnection();
    } catch {
      return; // the timer tries again
    }
    this.servingPeers.add(peer);
    peer.onClose(() => this.servingPeers.delete(peer));
    peer.handle('servePayload', (body) => this.servePayload(body));
    try {
      await peer.request('serve', {});
    } catch {
      peer.close();
    }
  }

  private emit(event: ConnectorEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.options.logger.warn({ error: describe(error) }, 'event listener failed');
      }
    }
  }
}

/** A message of a send, encrypted and stored (by this send, when `created`), ready to publish. */
interface OutgoingStored {
  readonly metadata: MessageMetadata;
  readonly storageKey: string;
  readonly created: boolean;
}

/** Reads `stream` to its end, dropping the bytes; rejects with its error. */
function drain(stream: Readable): Promise<void> {
  return pipelineAsync(
    stream,
    new Writable({
      write(_chunk: Buffer, _encoding, callback) {
        callback();
      },
    }),
  );
}

function decodeAcceptanceProofValue(value: CborValue | undefined): AcceptanceProof {
  return deliveryReceiptSchema.parse({ acceptance: value, deliveries: [] }, 'proof').acceptance;
}

function toReceivedMessage(row: ReceivedRow): ReceivedMessage {
  return {
    sequence: row.sequence,
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    offset: row.offset,
    sender: row.sender,
    size: row.size,
    sha256: row.sha256,
    contentType: row.content_type,
    key: row.message_key === null ? null : Buffer.from(row.message_key).toString('base64'),
    receivedAt: row.received_at,
    proof: Buffer.from(row.proof).toString('base64'),
  };
}

function describe(error: unknown): string {
  return isLedgerbusError(error)
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);
}

/**
 * Splits `items` into maximal runs of consecutive items with the same recipient set (in any order),
 * keeping their order: batches cut from the runs are submitted in order, so offsets still follow
 * the order the application gave.
 */
export function runsOfSameRecipients<T>(
  items: readonly T[],
  recipientsOf: (item: T) => readonly string[],
): T[][] {
  const runs: T[][] = [];
  let previous: string | undefined;
  for (const item of items) {
    const key = JSON.stringify([...new Set(recipientsOf(item))].sort());
    if (key !== previous || runs.length === 0) runs.push([]);
    runs[runs.length - 1]!.push(item);
    previous = key;
  }
  return runs;
}
