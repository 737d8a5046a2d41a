/**
 * The client requests one replica knows of: waiting to be executed (pending), waiting to be proposed
 * (unproposed), already executed (committed), and already authenticated (verified). Castro & Liskov
 * §4.2 leaves request bookkeeping to the implementation; this is ours, in one place.
 *
 * Invariants (asserted at the transitions that could break them):
 * - `unproposed` ⊆ `pending`: every unproposed entry is the very pending entry under the same key.
 *   A request leaves `unproposed` when the primary proposes it and `pending` when it executes.
 * - `pendingByClientSeq` points into `pending`: each value is the digest of a pending request whose
 *   (client, seq) is the key. It names the latest version a client sent for that (client, seq), so
 *   the version that executes also drops the other one.
 * - `pending` never holds more than `pendingRequestsMax` requests; `committed` and `verified` are
 *   capped too (oldest first out), so no peer or client can make them grow without bound.
 * - A request enters `pending` only if its (client, seq) has not committed, so a replica never
 *   queues a request it knows it executed.
 *
 * Iteration order is insertion order (JavaScript Maps), and the primary batches `unproposed` oldest
 * first: replicas fed the same inputs propose the same batches.
 */
import { ErrorCode, assert } from '../../errors.js';
import { clientRequestSignatureValid, decodeClientRequest } from './messages.js';
import type { ClientRequest } from './messages.js';
import { hexKey } from './quorum.js';
import { rejectForGood, rejectForNow } from './rejections.js';
import type { PbftConfig, PbftCrypto } from './types.js';

/** A client request waiting to execute. */
export interface PendingRequest {
  readonly bytes: Uint8Array;
  readonly digestKey: string;
  readonly clientSeqKey: string;
  /** The tick it arrived at: a partial batch waits at most `batchTicksMax` for its oldest request. */
  readonly arrivedTick: number;
}

const committedRequestsMax = 100_000;
const verifiedRequestsMax = 200_000;

export class RequestTable {
  /** At most `pendingRequestsMax`: `admit` refuses more with OVERLOADED; executing removes them. */
  private readonly pending = new Map<string, PendingRequest>();
  /**
   * Pending requests not proposed in the current view, oldest first: what the primary batches. A
   * subset of `pending`.
   */
  private readonly unproposed = new Map<string, PendingRequest>();
  /**
   * Pending digest by (client, seq): a client's other version of a committed request is dropped too.
   * At most one per pending request.
   */
  private readonly pendingByClientSeq = new Map<string, string>();
  /** The sequence number each (client, seq) committed at: the last `committedRequestsMax` of them. */
  private readonly committed = new Map<string, number>();
  /**
   * Requests whose signature and group were checked, by digest: their (client, seq) key. At most
   * `verifiedRequestsMax`, oldest out first.
   */
  private readonly verified = new Map<string, string>();
  /** Digest keys of a proposal's requests, computed once when it was checked or built; weak: gone with it. */
  private readonly proposalKeys = new WeakMap<readonly Uint8Array[], readonly string[]>();

  constructor(
    private readonly config: PbftConfig,
    private readonly crypto: PbftCrypto,
  ) {}

  /** How many requests wait to execute. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** How many requests wait to be proposed. */
  get unproposedCount(): number {
    return this.unproposed.size;
  }

  /** A request's identity in these maps: the hex of its domain-separated hash. */
  digestKey(bytes: Uint8Array): string {
    return hexKey(this.crypto.hash('client-request-digest', bytes));
  }

  isPending(digestKey: string): boolean {
    return this.pending.has(digestKey);
  }

  /** The sequence number a (client, seq) committed at, if this replica still remembers it. */
  committedAt(clientSeqKey: string): number | undefined {
    return this.committed.get(clientSeqKey);
  }

  /**
   * Decodes and authenticates a client request and returns its (client, seq) key; throws a rejection
   * for one that is malformed, for another group or badly signed. Each distinct request is decoded
   * and verified once: it arrives from the client and again in a pre-prepare.
   */
  authenticate(bytes: Uint8Array, digestKey: string): string {
    const known = this.verified.get(digestKey);
    if (known !== undefined) return known;
    const request = decodeClientRequest(bytes, this.config.requestBytesMax);
    if (request.group !== this.config.groupId) {
      throw rejectForGood(ErrorCode.WrongGroup, `request is for group ${request.group}`);
    }
    if (!clientRequestSignatureValid(this.crypto, request)) {
      throw rejectForGood(ErrorCode.BadSignature, 'client request signature does not verify');
    }
    const clientSeqKey = clientSeqKeyOf(request);
    this.verified.set(digestKey, clientSeqKey);
    if (this.verified.size > verifiedRequestsMax) {
      this.verified.delete(this.verified.keys().next().value as string);
    }
    return clientSeqKey;
  }

  /**
   * Queues an authenticated, not yet committed request to be proposed; throws a retriable OVERLOADED
   * rejection when `pendingRequestsMax` requests already wait.
   */
  admit(request: PendingRequest): void {
    assert(!this.pending.has(request.digestKey), 'admitted a request that is already pending');
    assert(!this.committed.has(request.clientSeqKey), 'admitted a request that already committed');
    if (this.pending.size >= this.config.pendingRequestsMax) {
      throw rejectForNow(ErrorCode.Overloaded, 'too many pending requests; retry later');
    }
    this.pending.set(request.digestKey, request);
    this.unproposed.set(request.digestKey, request);
    this.pendingByClientSeq.set(request.clientSeqKey, request.digestKey);
    assert(this.pending.size <= this.config.pendingRequestsMax, 'pending requests over their limit');
    assert(this.unproposed.size <= this.pending.size, 'more unproposed requests than pending ones');
  }

  /**
   * The next batch for the primary to propose, taken out of `unproposed`: full, or partial once its
   * oldest request waited `batchTicksMax`. Undefined when there is none to propose yet.
   */
  takeBatch(ticks: number): readonly Uint8Array[] | undefined {
    const batch: PendingRequest[] = [];
    let bytes = 0;
    let oldest = Number.POSITIVE_INFINITY;
    for (const entry of this.unproposed.values()) {
      if (this.committed.has(entry.clientSeqKey)) continue;
      if (batch.length >= this.config.batchRequestsMax) break;
      if (batch.length > 0 && bytes + entry.bytes.length > this.config.batchBytesMax) break;
      batch.push(entry);
      bytes += entry.bytes.length;
      oldest = Math.min(oldest, entry.arrivedTick);
    }
    if (batch.length === 0) return undefined;
    const full = batch.length >= this.config.batchRequestsMax || bytes >= this.config.batchBytesMax;
    const waited = ticks - oldest >= this.config.batchTicksMax;
    if (!full && !waited) return undefined;
    const requests = batch.map((entry) => entry.bytes);
    this.proposalKeys.set(
      requests,
      batch.map((entry) => entry.digestKey),
    );
    for (const entry of batch) {
      assert(this.pending.get(entry.digestKey) === entry, 'proposing a request that is not pending');
      this.unproposed.delete(entry.digestKey);
    }
    return requests;
  }

  /** Remembers the digest keys of a checked proposal's requests, so execution need not hash them again. */
  rememberProposalKeys(requests: readonly Uint8Array[], keys: readonly string[]): void {
    assert(requests.length === keys.length, 'one digest key per request');
    this.proposalKeys.set(requests, keys);
  }

  /**
   * Records that a batch executed at `seq`: its requests (and any other version of them a client
   * sent) leave `pending`, and their (client, seq) is remembered as committed.
   */
  markExecuted(seq: number, requests: readonly Uint8Array[]): void {
    const keys = this.proposalKeys.get(requests);
    requests.forEach((bytes, index) => {
      const digestKey = keys?.[index] ?? this.digestKey(bytes);
      const clientSeqKey =
        this.pending.get(digestKey)?.clientSeqKey ??
        this.verified.get(digestKey) ??
        clientSeqKeyOf(decodeClientRequest(bytes, this.config.requestBytesMax));
      this.drop(digestKey);
      const otherVersion = this.pendingByClientSeq.get(clientSeqKey);
      if (otherVersion !== undefined) this.drop(otherVersion);
      this.pendingByClientSeq.delete(clientSeqKey);
      this.committed.set(clientSeqKey, seq);
      assert(!this.pending.has(digestKey), `request executed at ${seq} is still pending`);
    });
    while (this.committed.size > committedRequestsMax) {
      this.committed.delete(this.committed.keys().next().value as string);
    }
    assert(this.unproposed.size <= this.pending.size, 'more unproposed requests than pending ones');
  }

  /**
   * On entering a new view (§4.4): requests proposed in the old view may be lost with it, so every
   * pending request is eligible again, oldest first, except those the new view carries already
   * (proposing them again would execute them twice).
   */
  requeueForNewView(carried: readonly (readonly Uint8Array[])[]): void {
    this.unproposed.clear();
    for (const [key, entry] of this.pending) this.unproposed.set(key, entry);
    for (const requests of carried) {
      for (const bytes of requests) this.unproposed.delete(this.digestKey(bytes));
    }
    assert(this.unproposed.size <= this.pending.size, 'more unproposed requests than pending ones');
  }

  private drop(digestKey: string): void {
    this.pending.delete(digestKey);
    this.unproposed.delete(digestKey);
  }
}

function clientSeqKeyOf(request: ClientRequest): string {
  return `${hexKey(request.client)}:${request.seq}`;
}
