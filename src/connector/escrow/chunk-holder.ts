/**
 * Holding escrowed chunks for other organizations (DESIGN §7, holder side): a sender places a chunk
 * of an escrowed message here before it publishes, and gets this organization's signed receipt for
 * its master table; later the auditor of an approved audit asks for it. Both requests arrive from
 * our node on a serving connection, signed by the requesting organization: this connector checks
 * them itself (network, freshness, nonce, signature against the registry, standing), trusting no
 * node, as the payload server does for fetches. Every refusal is logged.
 */
import { Readable } from 'node:stream';
import { bytesEqual, toHex } from '../../codec/index.js';
import {
  chunkRequestSignatureValid,
  decodeChunkGetRequest,
  decodeChunkPutRequest,
} from '../../contracts/escrow/chunk-requests.js';
import type {
  ChunkGetRequest,
  ChunkPutRequest,
  ChunkRequest,
} from '../../contracts/escrow/chunk-requests.js';
import { CHUNK_RECEIPT_SIGNING_TYPE, chunkReceiptPayload } from '../../contracts/escrow/transactions.js';
import { FetchNonceWindow, checkFetchFreshness } from '../../contracts/fetch.js';
import { sha256 } from '../../crypto/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import type { ConnectorMethods, RequestOf, ResponseOf } from '../../protocol/client-methods.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import { fetchEscrowRecord, provenAudit } from './escrow-record.js';
import { HolderDatabase } from './holder-database.js';

export type ChunkHolderOptions = Pick<
  ConnectorContext,
  'organization' | 'signer' | 'registry' | 'database' | 'storage' | 'logger' | 'lifecycle' | 'trust'
> & {
  readonly session: Pick<NodeSession, 'call'>;
};

type PutBody = RequestOf<ConnectorMethods['escrowChunkPut']>;
type PutAnswer = ResponseOf<ConnectorMethods['escrowChunkPut']>;
type GetBody = RequestOf<ConnectorMethods['escrowChunkGet']>;
type GetAnswer = ResponseOf<ConnectorMethods['escrowChunkGet']>;

const requestKind = 'chunk request';
/** How long a proven APPROVED audit is taken as proven (see `provenApprovedSender`). */
const approvalProofTtlMs = 30_000;
/** Proven audits remembered at once. */
const provenApprovalsMax = 1_000;

export class ChunkHolder {
  readonly chunks: HolderDatabase;
  /** Nonces of the chunk requests (puts and gets) this connector acted on, until they expire. */
  private readonly nonces = new FetchNonceWindow(undefined, requestKind);
  /**
   * Audits proven APPROVED, by (group, id, request, requester): the message's sender and until when.
   * At most `provenApprovalsMax`: full, it drops the expired ones, or else everything.
   */
  private readonly provenApprovals = new Map<string, { sender: string; until: number }>();

  constructor(private readonly options: ChunkHolderOptions) {
    this.chunks = new HolderDatabase(options.database);
  }

  /**
   * Stores chunk `chunkIndex` of message `id` placed by the requester and answers this holder's
   * signed receipt. Refused, storing nothing: a request for another holder, or for a partition that
   * is not an escrow topic's here (WRONG_GROUP); another network or a stale request (WRONG_NETWORK,
   * REQUEST_EXPIRED); not signed by a registered key of the requester (BAD_SIGNATURE); a requester
   * that is not an approved member (NOT_APPROVED, FORBIDDEN) or not a producer of the topic
   * (FORBIDDEN); a request used before (REPLAY); a chunk whose size or SHA-256 is not the one
   * signed (HASH_MISMATCH). The chunk is durable in storage, and its row written, BEFORE the receipt.
   */
  async put(body: PutBody): Promise<PutAnswer> {
    let request: ChunkPutRequest | undefined;
    try {
      request = decodeChunkPutRequest(body.request);
      this.admit(request);
      this.checkPlacer(request);
      this.nonces.admit(request, this.now());
      return await this.store(request, body.chunk);
    } catch (error) {
      this.logRefusal('refused a chunk placement', request, error);
      throw error;
    }
  }

  /**
   * Answers chunk `chunkIndex` of message `id` to the auditor of approved audit `requestId`. Checked
   * as `put` (holder, network, freshness, signature, standing, nonce); then, from our node's escrow
   * record with the message's acceptance and the audit's block evidences verified (provenAudit: a
   * state or auditor no evidence proves does not count): the audit must be the requester's by its
   * proven request (FORBIDDEN; BAD_PROOF when even the request is not proven), proven APPROVED
   * (AUDIT_NOT_APPROVED while only PENDING is proven, FORBIDDEN once CLOSED), and the chunk one held
   * here for the message's sender (PAYLOAD_NOT_FOUND).
   */
  async get(body: GetBody): Promise<GetAnswer> {
    let request: ChunkGetRequest | undefined;
    try {
      request = decodeChunkGetRequest(body.request);
      this.admit(request);
      this.nonces.admit(request, this.now());
      return await this.serve(request);
    } catch (error) {
      this.logRefusal('refused a chunk request', request, error);
      throw error;
    }
  }

  /** The checks every chunk request passes: ours, fresh, signed by its requester, who is approved. */
  private admit(request: ChunkRequest): void {
    const { organization, registry, signer } = this.options;
    if (request.holder !== organization) {
      throw new LedgerbusError(
        ErrorCode.WrongGroup,
        `the chunk request is for holder ${request.holder}; this connector is ${organization}'s`,
      );
    }
    checkFetchFreshness(request, signer.domain.network, this.now(), requestKind);
    const requester = registry.organization(request.requester);
    const keys = requester?.signingKeys ?? [];
    if (
      !keys.some((key) => bytesEqual(key, request.signerKey)) ||
      !chunkRequestSignatureValid(request, signer.domain)
    ) {
      throw new LedgerbusError(ErrorCode.BadSignature, 'the chunk request is not signed by its requester');
    }
    if (requester?.status !== 'APPROVED') {
      throw new LedgerbusError(
        ErrorCode.NotApproved,
        `${request.requester} is ${requester?.status ?? 'not registered'}; only approved organizations escrow or audit`,
      );
    }
  }

  /** A placement must come from a member that produces on the escrow topic the partition belongs to. */
  private checkPlacer(request: ChunkPutRequest): void {
    const { registry } = this.options;
    const requester = registry.organization(request.requester);
    if (!(requester?.roles.includes('member') ?? false)) {
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `${request.requester} is not a member; only members escrow`,
      );
    }
    const partition = registry.partition(request.group);
    const topic = partition === undefined ? undefined : registry.topic(partition.topic);
    if (topic === undefined) {
      // Our registry may not show a topic created a moment ago yet: it syncs every second.
      throw new LedgerbusError(ErrorCode.WrongGroup, `partition ${request.group} is not known here yet`, {
        retriable: true,
      });
    }
    if (topic.policy.availability !== 'escrow') {
      throw new LedgerbusError(ErrorCode.WrongGroup, `topic ${topic.name} does not escrow its messages`);
    }
    if (!topic.producers.has(request.requester)) {
      throw new LedgerbusError(ErrorCode.Forbidden, `${request.requester} does not produce on ${topic.name}`);
    }
  }

  private async store(request: ChunkPutRequest, chunk: Uint8Array): Promise<PutAnswer> {
    const { organization, signer, storage } = this.options;
    if (chunk.length !== request.chunkSize || !bytesEqual(sha256(chunk), request.chunkHash)) {
      throw new LedgerbusError(
        ErrorCode.HashMismatch,
        `chunk ${request.chunkIndex} of ${request.id} is not the ${request.chunkSize} bytes the request signed`,
      );
    }
    const hash = toHex(request.chunkHash);
    const stored = await storage.put(Readable.from([chunk], { objectMode: false }), {
      expectedSha256: hash,
      sizeMax: request.chunkSize,
    });
    this.chunks.recordChunk({
      group_id: request.group,
      id: request.id,
      chunk_index: request.chunkIndex,
      sender: request.requester,
      hash,
      size: stored.size,
      storage_key: stored.key,
      stored_at: this.now(),
    });
    const receipt = chunkReceiptPayload({
      holder: organization,
      sender: request.requester,
      id: request.id,
      chunkIndex: request.chunkIndex,
      chunkHash: request.chunkHash,
    });
    return {
      holder: organization,
      signerKey: signer.publicKey,
      signature: signer.sign(CHUNK_RECEIPT_SIGNING_TYPE, receipt),
    };
  }

  private async serve(request: ChunkGetRequest): Promise<GetAnswer> {
    const { storage } = this.options;
    const sender = await this.provenApprovedSender(request);
    const row = this.chunks.chunk(
      request.group,
      request.id,
      request.chunkIndex,
      sender,
      toHex(request.chunkHash),
    );
    if (row === undefined) {
      throw new LedgerbusError(
        ErrorCode.PayloadNotFound,
        `no chunk ${request.chunkIndex} of ${request.id} is held here`,
      );
    }
    const chunk = await readAll(await storage.get(row.storage_key), row.size);
    // Served bytes that fail their hash would make the auditor name us a bad holder: say so here.
    if (chunk.length !== row.size || toHex(sha256(chunk)) !== row.hash) {
      this.options.logger.error(
        { group: row.group_id, id: row.id, chunk: row.chunk_index, key: row.storage_key },
        'a held chunk is corrupt in storage',
      );
      throw new LedgerbusError(
        ErrorCode.StorageCorrupt,
        `chunk ${row.chunk_index} of ${row.id} is corrupt in storage`,
      );
    }
    this.options.logger.info(
      {
        requester: request.requester,
        id: request.id,
        chunk: request.chunkIndex,
        requestId: request.requestId,
      },
      'served an escrowed chunk to an approved auditor',
    );
    return { chunk };
  }

  /**
   * The sender of message `request.id`, once the request's audit is proven APPROVED for its
   * requester (block evidence of the request and of the approval that made it so). A proof holds
   * for `approvalProofTtlMs`: a 200-chunk fetch proves its audit once, not 200 times (an audit
   * closed meanwhile is served that much longer; its auditor has the key by then anyway).
   */
  private async provenApprovedSender(request: ChunkGetRequest): Promise<string> {
    const key = [request.group, request.id, request.requestId, request.requester].join('\u0000');
    const now = this.now();
    const cached = this.provenApprovals.get(key);
    if (cached !== undefined && cached.until > now) return cached.sender;
    const { session, trust } = this.options;
    const verified = await fetchEscrowRecord(session, trust, request.group, request.id);
    const { accepted } = verified;
    const found = provenAudit(verified, request.requestId, trust);
    if (found === undefined || found.audit.auditor !== request.requester) {
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `${request.requester} has no audit ${request.requestId} of message ${request.id}`,
      );
    }
    const { audit, view, dropped } = found;
    if (dropped.length > 0) {
      this.options.logger.warn(
        {
          requestId: audit.requestId,
          id: request.id,
          unproven: dropped.map((entry) => `${entry.field}: ${entry.reason}`),
        },
        'our node showed audit fields its evidences do not prove: acting on the proven ones',
      );
    }
    if (audit.state === 'PENDING') {
      throw new LedgerbusError(
        ErrorCode.AuditNotApproved,
        `audit ${request.requestId} has ${audit.approvals.length} proven of ${view.approvalsNeeded} approvals`,
        { retriable: true },
      );
    }
    if (audit.state !== 'APPROVED') {
      throw new LedgerbusError(ErrorCode.Forbidden, `audit ${request.requestId} is ${audit.state}`);
    }
    if (this.provenApprovals.size >= provenApprovalsMax) {
      for (const [entry, value] of this.provenApprovals)
        if (value.until <= now) this.provenApprovals.delete(entry);
      if (this.provenApprovals.size >= provenApprovalsMax) this.provenApprovals.clear();
    }
    this.provenApprovals.set(key, { sender: accepted.sender, until: now + approvalProofTtlMs });
    return accepted.sender;
  }

  private logRefusal(what: string, request: ChunkRequest | undefined, error: unknown): void {
    this.options.logger.warn(
      {
        requester: request?.requester,
        id: request?.id,
        group: request?.group,
        chunk: request?.chunkIndex,
        code: isLedgerbusError(error) ? error.code : 'INTERNAL',
        error: describeError(error),
      },
      what,
    );
  }

  private now(): number {
    return this.options.lifecycle.clock.now();
  }
}

/** The bytes of `stream`, refusing more than `bytesMax` (a stored object larger than its row says). */
async function readAll(stream: Readable, bytesMax: number): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const part of stream) {
    const buffer = Buffer.isBuffer(part) ? part : Buffer.from(part as Uint8Array);
    length += buffer.length;
    if (length > bytesMax) {
      stream.destroy();
      throw new LedgerbusError(
        ErrorCode.StorageCorrupt,
        `a stored chunk is longer than its ${bytesMax} bytes`,
      );
    }
    parts.push(buffer);
  }
  return new Uint8Array(Buffer.concat(parts, length));
}
