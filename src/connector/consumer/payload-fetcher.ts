/**
 * Receiving one payload (DESIGN steps 9–14, recipient side): a signed fetch request through a node
 * to the sender's connector, the envelope header checked against what the ledger accepted, then
 * every chunk verified against the on-chain root while it is decrypted into storage.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable, Transform, pipeline } from 'node:stream';
import type { InlinePayload } from '../../contracts/transactions.js';
import { encodeFetchRequest } from '../../contracts/fetch.js';
import { nonceBytes } from '../../contracts/transactions.js';
import { decodeEnvelopeHeader, decryptPayload } from '../../crypto/envelope/index.js';
import type { EnvelopeHeader } from '../../crypto/envelope/index.js';
import { chunkTagBytes } from '../../crypto/envelope/header.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import type { RpcPeer } from '../../net/index.js';
import { nodeMethods } from '../../protocol/client-methods.js';
import { TypedClient } from '../../protocol/typed-rpc.js';
import type { AcceptedMessage } from '../../proofs/index.js';
import { ByteLimit } from '../byte-limit.js';
import { secondsSince } from '../connector-metrics.js';
import type { ConnectorContext } from '../context.js';
import type { NodeSession } from '../session/node-session.js';
import type { StoredObject } from '../storage/index.js';

/** Failures of verification: the payload is corrupt (PAYLOAD_CORRUPT), whichever check caught it. */
const verificationCodes: readonly string[] = [
  ErrorCode.BadProof,
  ErrorCode.BadSignature,
  ErrorCode.MalformedEncoding,
  ErrorCode.SchemaMismatch,
];

/** A failure of verification as PAYLOAD_CORRUPT (whichever check caught it); anything else as it is. */
function asCorrupt(accepted: AcceptedMessage, error: unknown): unknown {
  if (isLedgerbusError(error) && verificationCodes.includes(error.code)) {
    return new LedgerbusError(
      ErrorCode.PayloadCorrupt,
      `payload of ${accepted.id} does not verify: ${error.message}`,
    );
  }
  return error;
}

export interface PayloadFetcherOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'encryptionKey' | 'registry' | 'storage' | 'lifecycle'
> {
  /** Counts the bytes fetched and times each fetch (ledgerbus_payload_bytes_in_total, _fetch_duration_seconds). */
  readonly metrics?: ConnectorContext['metrics'];
  readonly session: NodeSession;
}

/** Idle bulk connections kept per sender: as many as one partition's consumer fetches at once. */
const idleConnectionsMax = 32;
/** An idle bulk connection unused for this long is closed rather than reused. */
const idleConnectionMs = 30_000;

/**
 * Open bulk connections not in use, per sender, shared by every fetching worker of the connector: a
 * page of small payloads reuses the sockets of the pages before it instead of paying a TLS handshake
 * (on this connector and on the node) per payload. A connection is used by one stream at a time.
 */
export class BulkConnectionPool {
  /** At most `idleConnectionsMax` per (sender, partition), each closed after `idleConnectionMs` unused. */
  private readonly idle = new Map<string, { peer: RpcPeer; since: number }[]>();
  private closed = false;

  constructor(
    private readonly session: NodeSession,
    private readonly now: () => number,
  ) {}

  /**
   * An open connection for payloads of `sender` in `partitionId`, idle or new; give it back with
   * release. Keyed by both: the session picks the sender's node that replicates the partition.
   */
  async acquire(sender: string, partitionId: string): Promise<RpcPeer> {
    this.closeExpired();
    const list = this.idle.get(poolKey(sender, partitionId)) ?? [];
    for (let entry = list.pop(); entry !== undefined; entry = list.pop()) {
      if (!entry.peer.closed) return entry.peer;
    }
    return this.session.openBulkConnection(sender, partitionId);
  }

  /** Returns a connection whose streams all ended; kept for the next payload of `sender` in `partitionId`. */
  release(sender: string, partitionId: string, peer: RpcPeer): void {
    this.closeExpired();
    const key = poolKey(sender, partitionId);
    const list = this.idle.get(key) ?? [];
    if (this.closed || peer.closed || list.length >= idleConnectionsMax) {
      peer.close();
      return;
    }
    list.push({ peer, since: this.now() });
    this.idle.set(key, list);
  }

  /** Closes every idle connection unused for idleConnectionMs, whichever sender it was for. */
  private closeExpired(): void {
    const now = this.now();
    for (const [key, list] of this.idle) {
      const kept = list.filter(({ peer, since }) => {
        if (!peer.closed && now - since < idleConnectionMs) return true;
        peer.close();
        return false;
      });
      if (kept.length === 0) this.idle.delete(key);
      else this.idle.set(key, kept);
    }
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const { peer } of list) peer.close();
    this.idle.clear();
  }
}

/**
 * Bulk connections of one fetching worker, one per sender: reused for its next payloads (streams
 * never share a socket) and handed back to the pool when the worker is done.
 */
export class BulkConnections {
  /** One per (sender, partition) this worker fetched from; all go back to the pool when it is done. */
  private readonly peers = new Map<string, { sender: string; partitionId: string; peer: RpcPeer }>();

  constructor(private readonly pool: BulkConnectionPool) {}

  /** An open connection for payloads of `sender` in `partitionId`. */
  async for(sender: string, partitionId: string): Promise<RpcPeer> {
    const key = poolKey(sender, partitionId);
    let bulk = this.peers.get(key)?.peer;
    if (bulk === undefined || bulk.closed) {
      bulk = await this.pool.acquire(sender, partitionId);
      this.peers.set(key, { sender, partitionId, peer: bulk });
    }
    return bulk;
  }

  /** Drops the connection for `sender` in `partitionId` (it may still carry the rest of a cancelled stream). */
  discard(sender: string, partitionId: string): void {
    const key = poolKey(sender, partitionId);
    this.peers.get(key)?.peer.close();
    this.peers.delete(key);
  }

  /** Gives every connection back to the pool. */
  close(): void {
    for (const { sender, partitionId, peer } of this.peers.values())
      this.pool.release(sender, partitionId, peer);
    this.peers.clear();
  }
}

function poolKey(sender: string, partitionId: string): string {
  return JSON.stringify([sender, partitionId]);
}

export class PayloadFetcher {
  private readonly pool: BulkConnectionPool;

  constructor(private readonly options: PayloadFetcherOptions) {
    this.pool = new BulkConnectionPool(options.session, () => options.lifecycle.clock.now());
  }

  /** Bulk connections for one worker's fetches. */
  connections(): BulkConnections {
    return new BulkConnections(this.pool);
  }

  /** Closes the idle bulk connections (the connector stops). */
  close(): void {
    this.pool.close();
  }

  /**
   * Streams one payload from the sender's side, verifying and decrypting it into storage. Whatever
   * fails verification is PAYLOAD_CORRUPT (or OVERSIZE, see checkServedSize), not retriable; a
   * failure of the connection keeps its own (retriable) code.
   */
  async fetchToStorage(
    accepted: AcceptedMessage,
    connections: BulkConnections,
    /** Sees each verified plaintext chunk as it goes to storage (a part's bytes, for its value's hash). */
    observe?: (chunk: Buffer) => void,
  ): Promise<StoredObject> {
    const fetchRequest = encodeFetchRequest(
      {
        requester: this.options.organization,
        partitionId: accepted.partitionId,
        id: accepted.id,
        nonce: randomBytes(nonceBytes),
        timestamp: this.options.lifecycle.clock.now(),
      },
      this.options.signer,
    );
    const started = performance.now();
    const bulk = await connections.for(accepted.sender, accepted.partitionId);
    let failed = true;
    let limit: ByteLimit | undefined;
    try {
      // A head without its envelope header is SCHEMA_MISMATCH, hence PAYLOAD_CORRUPT below.
      const { head, stream } = await new TypedClient(nodeMethods, () => bulk).stream('fetchPayload', {
        group: accepted.partitionId,
        fetchRequest,
      });
      let header: EnvelopeHeader;
      let ciphertextBytes: number;
      try {
        header = decodeEnvelopeHeader(head.header);
        ciphertextBytes = this.checkServedSize(accepted, header);
      } catch (error) {
        // Refused before a byte of it is read: cancel the stream quietly (nobody listens to it yet).
        stream.destroy();
        throw error;
      }
      // The header is not trusted for the bound (the envelope checks it only as the chunks come):
      // past the size the ledger and the header agree on, the stream is cut at the crossing byte.
      limit = new ByteLimit(
        ciphertextBytes,
        (total) =>
          new LedgerbusError(
            ErrorCode.Oversize,
            `payload ${accepted.id} from ${accepted.sender} runs past the ${ciphertextBytes} bytes declared on-chain (${total} so far); stopped`,
          ),
      );
      const bounded = pipeline(stream, limit, () => {});
      const decrypted = this.decrypt(accepted, header, bounded);
      const plaintext =
        observe === undefined
          ? decrypted
          : pipeline(
              decrypted,
              new Transform({
                transform(chunk: Buffer, _encoding, callback) {
                  observe(chunk);
                  callback(null, chunk);
                },
              }),
              () => {},
            );
      // Content-addressed storage: the key IS the plaintext's sha256.
      const stored = await this.options.storage.put(plaintext, { sizeMax: header.plaintextBytes });
      failed = false;
      this.options.metrics?.observePayloadFetch(secondsSince(started));
      return stored;
    } catch (error) {
      throw asCorrupt(accepted, error);
    } finally {
      // What came off the wire, whether or not it verified: all of it after a success.
      this.options.metrics?.payloadBytesIn(limit?.bytes ?? 0);
      // After a failure the connection may still carry the rest of a cancelled stream: drop it.
      if (failed) connections.discard(accepted.sender, accepted.partitionId);
    }
  }

  /**
   * The plaintext of a payload carried inside its publish, checked exactly as a fetched one (its
   * header against what the ledger accepted, its size, every chunk against the on-chain root).
   * Whatever fails is PAYLOAD_CORRUPT or OVERSIZE, as for a fetch.
   */
  async openInline(accepted: AcceptedMessage, inline: InlinePayload): Promise<Buffer> {
    try {
      const header = decodeEnvelopeHeader(inline.header);
      const ciphertextBytes = this.checkServedSize(accepted, header);
      if (inline.ciphertext.length !== ciphertextBytes) {
        throw new LedgerbusError(
          ErrorCode.PayloadCorrupt,
          `payload ${accepted.id} carried in its publish holds ${inline.ciphertext.length} bytes, not the ${ciphertextBytes} its header implies`,
        );
      }
      const chunks: Buffer[] = [];
      const plaintext = this.decrypt(
        accepted,
        header,
        Readable.from([inline.ciphertext], { objectMode: false }),
      );
      for await (const chunk of plaintext) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    } catch (error) {
      throw asCorrupt(accepted, error);
    }
  }

  /** `ciphertext` decrypted, every chunk verified against what the ledger accepted for `accepted`. */
  private decrypt(accepted: AcceptedMessage, header: EnvelopeHeader, ciphertext: Readable): Readable {
    return decryptPayload({
      header,
      ciphertext,
      recipientOrgId: this.options.organization,
      recipientKey: this.options.encryptionKey,
      senderPublicKey: accepted.signerKey,
      signing: this.options.signer.domain,
      expectedRoot: accepted.contentRoot,
      expectedPayloadId: accepted.id,
      expectedSenderOrgId: accepted.sender,
    });
  }

  /**
   * The ciphertext length the served envelope header implies (its chunking is fixed by its plaintext
   * size and chunk size), once it is known to be exactly the size the ledger accepted and within the
   * topic's `messageBytesMax`. The ledger checked only the sender's declared size, and the envelope
   * alone allows terabytes: without this a sender could publish a small size and serve anything.
   * OVERSIZE (more than declared or allowed) and PAYLOAD_CORRUPT (less) are not retriable.
   */
  checkServedSize(accepted: AcceptedMessage, header: EnvelopeHeader): number {
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
}
