/**
 * One PBFT replica as a pure, deterministic state machine (Castro & Liskov, "Practical Byzantine Fault
 * Tolerance", OSDI 1999; section numbers below refer to that paper).
 *
 * Deviations, each for a reason:
 * - Checkpoints are per block: after executing sequence number n, every replica signs the block header
 *   (a "block vote"). 2f+1 matching votes are at once the block's commit certificate, which anyone can
 *   check offline, and a checkpoint certificate (§4.3); every K-th one becomes the stable checkpoint.
 * - The digest agreed on covers the proposal (requests, timestamp, and the view and primary that first
 *   proposed it), so a batch re-proposed after a view change yields the same block header everywhere.
 * - Retransmission is driven by periodic status messages, as in Castro's implementation: a peer that
 *   is behind gets our recent votes, the current new-view message, or blocks by state transfer.
 * - State transfer moves certified blocks, which verify on their own, so one honest-looking peer is
 *   enough: a lying peer cannot make us accept a block that lacks 2f+1 signatures.
 * - Per-client de-duplication here is best effort (the primary does not propose a request twice);
 *   exactly-once execution is the application's, keyed by the request's (client, seq).
 */
import { AssertionError, ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { decodeCanonical, encodeCanonical } from '../../codec/index.js';
import {
  certificateValid,
  clientRequestSignatureValid,
  decodeBody,
  decodeClientRequest,
  decodeEnvelope,
  encodeEnvelope,
  headerHash,
  proposalDigest,
  signMessage,
  verifyEnvelope,
} from './messages.js';
import type {
  BlockVote,
  Blocks,
  ClientRequest,
  Commit,
  Envelope,
  FetchBlocks,
  MessageFields,
  NewView,
  PbftMessage,
  PreparedCertificate,
  PrePrepare,
  Prepare,
  Status,
  TransferredBlock,
  ViewChange,
} from './messages.js';
import { faultTolerance, hexKey, primaryOf, quorumSize, sameBytes } from './quorum.js';
import type {
  CertificateSignature,
  CertifiedBlock,
  CertifiedHeader,
  CommittedBatch,
  PbftBlockHeader,
  PbftConfig,
  PbftCrypto,
  PbftInput,
  PbftReady,
  PbftRestore,
  Proposal,
  RegistryIndexes,
} from './types.js';

const ZERO_HASH = new Uint8Array(32);

interface AcceptedPrePrepare {
  readonly view: number;
  readonly digest: Uint8Array;
  readonly proposal: Proposal;
  readonly envelope: Envelope;
}

interface PreparedState {
  readonly view: number;
  readonly digest: Uint8Array;
  readonly proposal: Proposal;
  readonly certificate: PreparedCertificate;
}

/** Everything known about one sequence number inside the watermark window. */
interface Slot {
  prePrepare?: AcceptedPrePrepare;
  /** Prepares by (view, digest), then by sender. */
  readonly prepares: Map<string, Map<number, Envelope>>;
  /** Commits by (view, digest): the set of senders. */
  readonly commits: Map<string, Set<number>>;
  /**
   * "prepare/view/sender" and "commit/view/sender" already counted: a sender gets one vote of each
   * kind per view, so an equivocating one cannot grow the slot with endless digests.
   */
  readonly voted: Set<string>;
  /** The highest-view prepared certificate (§4.4's P component). */
  prepared?: PreparedState;
  ownPrepare?: Envelope;
  ownCommit?: Envelope;
  committed?: { readonly digest: Uint8Array; readonly proposal: Proposal };
}

interface VoteTally {
  readonly header: PbftBlockHeader;
  readonly signatures: Map<number, Uint8Array>;
}

interface PendingRequest {
  readonly bytes: Uint8Array;
  readonly digestKey: string;
  readonly clientSeqKey: string;
  readonly arrivedTick: number;
}

interface ExecutedBlock {
  readonly header: PbftBlockHeader;
  readonly hash: Uint8Array;
  readonly proposal: Proposal;
  readonly ownVote: Envelope;
}

/** Records are keyed so that a later put replaces an earlier one for the same purpose. */
const recordKey = {
  state: 'state',
  viewChange: 'view-change',
  newView: 'new-view',
  prePrepare: (seq: number) => `pre-prepare/${seq}`,
  prepare: (seq: number) => `prepare/${seq}`,
  prepared: (seq: number) => `prepared/${seq}`,
  commit: (seq: number) => `commit/${seq}`,
} as const;

const committedRequestsMax = 100_000;
const verifiedRequestsMax = 200_000;
const authenticatedEnvelopesMax = 8192;

function viewDigestKey(view: number, digest: Uint8Array): string {
  return `${view}/${hexKey(digest)}`;
}

function emptyReady(): PbftReady {
  return { persist: [], certified: [], send: [], commit: [], alreadyCommitted: [], rejected: [], serve: [] };
}

export class PbftReplica {
  readonly config: PbftConfig;
  private readonly crypto: PbftCrypto;
  private readonly n: number;
  private readonly f: number;
  private readonly quorum: number;
  private readonly keysById: Map<string, Uint8Array>;
  private readonly selfId: string;

  // ---- durable state (restored after a restart) ----
  private viewNumber = 0;
  private viewChanging = false;
  private latestNewView: Envelope | undefined;
  private ownViewChange: Envelope | undefined;

  // ---- ledger-derived state ----
  private lastExecutedSeq = 0;
  private lastExecutedHash: Uint8Array = ZERO_HASH;
  private lastCertifiedSeq = 0;
  private stableSeq = 0;
  private stableCertificate: CertifiedHeader | undefined;

  // ---- volatile state ----
  private readonly slots = new Map<number, Slot>();
  private readonly executed = new Map<number, ExecutedBlock>();
  private readonly votes = new Map<number, Map<string, VoteTally>>();
  private readonly certifiedAhead = new Map<number, CertifiedBlock>();
  private readonly transferred = new Map<number, CertifiedBlock>();
  private deliveredSeq = 0;
  private readonly delivering = new Map<number, CommittedBatch>();
  private readonly pending = new Map<string, PendingRequest>();
  /** Pending digest by (client, seq): a client's other version of a committed request is dropped too. */
  private readonly pendingByClientSeq = new Map<string, string>();
  private readonly committedRequests = new Map<string, number>();
  /** Requests whose signature and group were checked, by digest: their (client, seq) key. */
  private readonly verifiedRequests = new Map<string, string>();
  /** Pending requests not proposed in the current view, oldest first: what the primary batches. */
  private readonly unproposed = new Map<string, PendingRequest>();
  /** Digest keys of a proposal's requests, computed once when it was checked or built. */
  private readonly requestKeys = new WeakMap<readonly Uint8Array[], readonly string[]>();
  private readonly authenticated = new Map<string, PbftMessage>();
  private readonly validViewChanges = new Set<string>();
  private nextProposalSeq = 1;
  private readonly viewChanges = new Map<number, Map<number, { message: ViewChange; envelope: Envelope }>>();
  private readonly latestViewChangeView = new Map<number, number>();
  private ticks = 0;
  private now = 0;
  private requestTimerStart: number | undefined;
  private viewChangeDeadline: number | undefined;
  private viewChangeAttempts = 0;
  private lastStatusTick = Number.NEGATIVE_INFINITY;
  private readonly peerStatus = new Map<number, Status>();
  private readonly lastHelpedTick = new Map<number, number>();
  private fetch: { readonly to: number; readonly fromSeq: number; readonly deadline: number } | undefined;
  private fetchRotation = 0;
  private behindSinceTick: number | undefined;

  private ready: PbftReady = emptyReady();

  constructor(config: PbftConfig, crypto: PbftCrypto, restore?: PbftRestore) {
    validateConfig(config);
    this.config = config;
    this.crypto = crypto;
    this.n = config.replicas.length;
    this.f = faultTolerance(this.n);
    this.quorum = quorumSize(this.n);
    this.keysById = new Map(config.replicas.map((replica) => [replica.id, replica.publicKey]));
    this.selfId = config.replicas[config.self]!.id;
    if (restore !== undefined) this.restore(restore);
    this.adoptBase();
  }

  // ---- read-only views for drivers, tests and the simulator ----

  get id(): string {
    return this.selfId;
  }
  get view(): number {
    return this.viewNumber;
  }
  get inViewChange(): boolean {
    return this.viewChanging;
  }
  get lastExecuted(): number {
    return this.lastExecutedSeq;
  }
  get lastCertified(): number {
    return this.lastCertifiedSeq;
  }
  get stable(): number {
    return this.stableSeq;
  }
  get isPrimary(): boolean {
    return primaryOf(this.viewNumber, this.n) === this.config.self;
  }
  get pendingRequests(): number {
    return this.pending.size;
  }

  /**
   * Advances the state machine by one input and returns what the driver must do, in the order
   * documented on `PbftReady`. Bad input never throws: it is reported in `rejected` and changes
   * nothing. Only a broken internal invariant (a bug) throws an AssertionError.
   */
  step(input: PbftInput): PbftReady {
    this.ready = emptyReady();
    try {
      switch (input.kind) {
        case 'tick':
          if (input.registry !== undefined) this.registry = input.registry;
          this.onTick(input.now);
          break;
        case 'message':
          this.onWireMessage(input.bytes);
          break;
        case 'request':
          this.onRequest(input.bytes);
          break;
        case 'executed':
          this.onExecuted(input.seq, input.resultsRoot);
          break;
      }
    } catch (error) {
      if (error instanceof LedgerbusError) {
        this.ready.rejected.push({ code: error.code, reason: error.message });
      } else {
        throw error;
      }
    }
    const ready = this.ready;
    this.ready = emptyReady();
    return ready;
  }

  // ---- inputs ----

  /** The registry indexes the driver last reported; named in this replica's proposals. */
  private registry: RegistryIndexes | undefined;

  private registryFields(): { systemIndex?: number; topicIndex?: number } {
    return this.registry === undefined
      ? {}
      : { systemIndex: this.registry.system, topicIndex: this.registry.topic };
  }

  private onTick(now: number): void {
    this.ticks += 1;
    this.now = now;
    if (this.ticks - this.lastStatusTick >= this.config.statusIntervalTicks) this.broadcastStatus();
    if (this.fetch !== undefined && this.ticks >= this.fetch.deadline) this.fetch = undefined;
    this.maybeFetch();
    if (this.viewChanging) {
      if (this.viewChangeDeadline !== undefined && this.ticks >= this.viewChangeDeadline) {
        // §4.5.2: no new view in time; try the next view and wait twice as long.
        this.startViewChange(this.viewNumber + 1);
      }
      return;
    }
    if (
      this.requestTimerStart !== undefined &&
      this.ticks - this.requestTimerStart >= this.config.requestTimeoutTicks
    ) {
      // §4.4: a backup whose timer expires suspects the primary.
      this.startViewChange(this.viewNumber + 1);
      return;
    }
    this.proposeBatches();
  }

  private onRequest(bytes: Uint8Array): void {
    if (bytes.length > this.config.requestBytesMax) {
      throw new LedgerbusError(
        ErrorCode.Oversize,
        `request of ${bytes.length} bytes exceeds requestBytesMax`,
      );
    }
    const digestKey = this.requestDigestKey(bytes);
    if (this.pending.has(digestKey)) return;
    const clientSeqKey = this.checkRequest(bytes, digestKey);
    const committedAt = this.committedRequests.get(clientSeqKey);
    if (committedAt !== undefined) {
      this.ready.alreadyCommitted.push({ request: bytes, seq: committedAt });
      return;
    }
    if (this.pending.size >= this.config.pendingRequestsMax) {
      throw new LedgerbusError(ErrorCode.Overloaded, 'too many pending requests; retry later', {
        retriable: true,
      });
    }
    const entry: PendingRequest = { bytes, digestKey, clientSeqKey, arrivedTick: this.ticks };
    this.pending.set(digestKey, entry);
    this.unproposed.set(digestKey, entry);
    this.pendingByClientSeq.set(clientSeqKey, digestKey);
    if (this.requestTimerStart === undefined) this.requestTimerStart = this.ticks;
    // A full batch goes out at once; a partial one waits for the tick that ends batchTicksMax.
    if (this.unproposed.size >= this.config.batchRequestsMax) this.proposeBatches();
  }

  /** A request's identity in this replica's maps: the hex of its domain-separated hash. */
  private requestDigestKey(bytes: Uint8Array): string {
    return hexKey(this.crypto.hash('client-request-digest', bytes));
  }

  /**
   * Decodes and authenticates a client request and returns its (client, seq) key. Each distinct
   * request is decoded and verified once: it arrives from the client and again in a pre-prepare.
   */
  private checkRequest(bytes: Uint8Array, digestKey: string): string {
    const known = this.verifiedRequests.get(digestKey);
    if (known !== undefined) return known;
    const request = decodeClientRequest(bytes, this.config.requestBytesMax);
    if (request.group !== this.config.groupId) {
      throw new LedgerbusError(ErrorCode.WrongGroup, `request is for group ${request.group}`);
    }
    if (!clientRequestSignatureValid(this.crypto, request)) {
      throw new LedgerbusError(ErrorCode.BadSignature, 'client request signature does not verify');
    }
    const clientSeqKey = clientSeqKeyOf(request);
    this.verifiedRequests.set(digestKey, clientSeqKey);
    if (this.verifiedRequests.size > verifiedRequestsMax) {
      this.verifiedRequests.delete(this.verifiedRequests.keys().next().value as string);
    }
    return clientSeqKey;
  }

  private onWireMessage(bytes: Uint8Array): void {
    const envelope = decodeEnvelope(bytes);
    const message = this.authenticate(envelope);
    switch (message.type) {
      case 'pre-prepare':
        return this.onPrePrepare(message, envelope);
      case 'prepare':
        return this.onPrepare(message, envelope);
      case 'commit':
        return this.onCommit(message);
      case 'block-vote':
        return this.onBlockVote(message, envelope);
      case 'view-change':
        return this.onViewChange(message, envelope);
      case 'new-view':
        return this.onNewView(message, envelope);
      case 'status':
        return this.onStatus(message);
      case 'fetch-blocks':
        return this.onFetchBlocks(message);
      case 'blocks':
        return this.onBlocks(message);
    }
  }

  /** Decodes a body, checks its group, sender and signature. Throws a typed error otherwise. */
  private authenticate(envelope: Envelope): PbftMessage {
    const cached = this.authenticated.get(this.envelopeKey(envelope));
    if (cached !== undefined) {
      if (cached.from === this.config.self) {
        throw new LedgerbusError(ErrorCode.Replay, 'message claims to come from this replica');
      }
      return cached;
    }
    const message = decodeBody(envelope.body);
    if (message.group !== this.config.groupId || message.epoch !== this.config.configEpoch) {
      throw new LedgerbusError(
        ErrorCode.WrongGroup,
        `message for ${message.group}@${message.epoch}, this replica is ${this.config.groupId}@${this.config.configEpoch}`,
      );
    }
    const sender = this.config.replicas[message.from];
    if (sender === undefined) {
      throw new LedgerbusError(ErrorCode.NonMember, `sender index ${message.from} is not a replica`);
    }
    if (message.from === this.config.self) {
      throw new LedgerbusError(ErrorCode.Replay, 'message claims to come from this replica');
    }
    if (!verifyEnvelope(this.crypto, envelope, message, sender.publicKey)) {
      throw new LedgerbusError(
        ErrorCode.BadSignature,
        `${message.type} signature from ${sender.id} does not verify`,
      );
    }
    this.rememberAuthenticated(envelope, message);
    return message;
  }

  /**
   * Identifies an envelope by its signature and body hash. Retransmissions and the evidence nested in
   * view changes repeat the same envelopes many times; decoding and verifying each once is enough.
   */
  private envelopeKey(envelope: Envelope): string {
    return hexKey(envelope.signature) + hexKey(this.crypto.hash('envelope', envelope.body));
  }

  private rememberAuthenticated(envelope: Envelope, message: PbftMessage): void {
    this.authenticated.set(this.envelopeKey(envelope), message);
    if (this.authenticated.size > authenticatedEnvelopesMax) {
      this.authenticated.delete(this.authenticated.keys().next().value as string);
    }
  }

  // ---- normal case (§4.2) ----

  private proposeBatches(): void {
    if (!this.isPrimary || this.viewChanging) return;
    while (this.nextProposalSeq <= this.stableSeq + this.config.watermarkWindow) {
      const batch = this.takeBatch();
      if (batch === undefined) return;
      const requests = batch.map((entry) => entry.bytes);
      this.requestKeys.set(
        requests,
        batch.map((entry) => entry.digestKey),
      );
      for (const entry of batch) this.unproposed.delete(entry.digestKey);
      this.propose(this.nextProposalSeq, requests);
      this.nextProposalSeq += 1;
    }
  }

  /** The next batch to propose: full, or partial once its oldest request waited batchTicksMax. */
  private takeBatch(): PendingRequest[] | undefined {
    const batch: PendingRequest[] = [];
    let bytes = 0;
    let oldest = Number.POSITIVE_INFINITY;
    for (const entry of this.unproposed.values()) {
      if (this.committedRequests.has(entry.clientSeqKey)) continue;
      if (batch.length >= this.config.batchRequestsMax) break;
      if (batch.length > 0 && bytes + entry.bytes.length > this.config.batchBytesMax) break;
      batch.push(entry);
      bytes += entry.bytes.length;
      oldest = Math.min(oldest, entry.arrivedTick);
    }
    if (batch.length === 0) return undefined;
    const full = batch.length >= this.config.batchRequestsMax || bytes >= this.config.batchBytesMax;
    const waited = this.ticks - oldest >= this.config.batchTicksMax;
    return full || waited ? batch : undefined;
  }

  private propose(seq: number, requests: readonly Uint8Array[]): void {
    const proposal: Proposal = {
      view: this.viewNumber,
      proposer: this.selfId,
      timestamp: this.now,
      requests,
      ...this.registryFields(),
    };
    this.sendPrePrepare(seq, proposal);
  }

  private sendPrePrepare(seq: number, proposal: Proposal): Envelope {
    const digest = proposalDigest(this.crypto, proposal);
    const envelope = this.sign({ type: 'pre-prepare', view: this.viewNumber, seq, digest, proposal });
    this.acceptPrePrepare(seq, { view: this.viewNumber, digest, proposal, envelope });
    this.broadcast(envelope);
    return envelope;
  }

  private onPrePrepare(message: PrePrepare, envelope: Envelope): void {
    this.requireCurrentView(message.view);
    if (message.from !== primaryOf(message.view, this.n)) {
      throw new LedgerbusError(ErrorCode.NotPrimary, `pre-prepare from ${message.from}, not the primary`);
    }
    this.requireInWindow(message.seq);
    this.checkProposal(message, { expectFresh: true });
    const slot = this.slot(message.seq);
    if (slot.prePrepare !== undefined && slot.prePrepare.view === message.view) {
      if (sameBytes(slot.prePrepare.digest, message.digest)) {
        throw new LedgerbusError(
          ErrorCode.Replay,
          `pre-prepare ${message.view}/${message.seq} already accepted`,
        );
      }
      // §4.2: a backup accepts at most one pre-prepare per view and sequence number.
      throw new LedgerbusError(
        ErrorCode.WrongDigest,
        `conflicting pre-prepare for ${message.view}/${message.seq}`,
      );
    }
    this.acceptPrePrepare(message.seq, {
      view: message.view,
      digest: message.digest,
      proposal: message.proposal,
      envelope,
    });
  }

  /** A fresh proposal must name the registry, and not one staler than `registryLagMax` (see PbftConfig). */
  private checkRegistryIndexes(proposal: Proposal): void {
    if (this.registry === undefined) return;
    const { systemIndex, topicIndex } = proposal;
    if (systemIndex === undefined || topicIndex === undefined) {
      throw new LedgerbusError(ErrorCode.WrongDigest, 'proposal does not name the registry indexes');
    }
    const lag = this.config.registryLagMax ?? 64;
    if (systemIndex + lag < this.registry.system || topicIndex + lag < this.registry.topic) {
      throw new LedgerbusError(
        ErrorCode.WrongDigest,
        `proposal names registry ${systemIndex}/${topicIndex}, staler than ${this.registry.system}/${this.registry.topic} allows`,
      );
    }
  }

  /**
   * Checks a proposal carried by a pre-prepare: its digest, its origin and every request in it.
   * A fresh proposal must name the pre-prepare's own view and primary; one re-proposed in a new view
   * is checked against the view-change evidence instead.
   */
  private checkProposal(message: PrePrepare, options: { expectFresh: boolean }): void {
    const proposal = message.proposal;
    if (!sameBytes(proposalDigest(this.crypto, proposal), message.digest)) {
      throw new LedgerbusError(ErrorCode.WrongDigest, `pre-prepare digest does not match its proposal`);
    }
    if (options.expectFresh) {
      const primary = this.config.replicas[primaryOf(message.view, this.n)]!;
      if (proposal.view !== message.view || proposal.proposer !== primary.id) {
        throw new LedgerbusError(ErrorCode.WrongDigest, 'proposal names another view or proposer');
      }
      if (proposal.timestamp > this.now + this.config.clockSkewMaxMs) {
        throw new LedgerbusError(ErrorCode.ClockSkew, 'proposal timestamp is too far in the future');
      }
      this.checkRegistryIndexes(proposal);
    }
    if (proposal.requests.length > this.config.batchRequestsMax) {
      throw new LedgerbusError(ErrorCode.Oversize, 'proposal has more requests than batchRequestsMax');
    }
    let bytes = 0;
    const seen = new Set<string>();
    const keys: string[] = [];
    for (const request of proposal.requests) {
      bytes += request.length;
      const digestKey = this.requestDigestKey(request);
      if (seen.has(digestKey)) throw new LedgerbusError(ErrorCode.Replay, 'proposal repeats a request');
      seen.add(digestKey);
      keys.push(digestKey);
      this.checkRequest(request, digestKey);
    }
    if (bytes > this.config.batchBytesMax + this.config.requestBytesMax) {
      throw new LedgerbusError(ErrorCode.Oversize, 'proposal exceeds batchBytesMax');
    }
    this.requestKeys.set(proposal.requests, keys);
  }

  /** Records a pre-prepare and, at a backup, prepares it (persisted before it is sent). */
  private acceptPrePrepare(seq: number, accepted: AcceptedPrePrepare): void {
    const slot = this.slot(seq);
    slot.prePrepare = accepted;
    this.persist(recordKey.prePrepare(seq), seq, encodeEnvelope(accepted.envelope));
    if (primaryOf(accepted.view, this.n) !== this.config.self) {
      const prepare = this.sign({ type: 'prepare', view: accepted.view, seq, digest: accepted.digest });
      slot.ownPrepare = prepare;
      this.persist(recordKey.prepare(seq), seq, encodeEnvelope(prepare));
      this.addPrepare(slot, accepted.view, accepted.digest, this.config.self, prepare);
      this.broadcast(prepare);
    }
    this.checkPrepared(seq);
  }

  private onPrepare(message: Prepare, envelope: Envelope): void {
    this.requireCurrentView(message.view);
    if (message.from === primaryOf(message.view, this.n)) {
      throw new LedgerbusError(ErrorCode.NotPrimary, 'the primary does not send prepares');
    }
    this.requireInWindow(message.seq);
    const slot = this.slot(message.seq);
    if (!this.addPrepare(slot, message.view, message.digest, message.from, envelope)) {
      throw new LedgerbusError(ErrorCode.Replay, 'prepare already counted');
    }
    this.checkPrepared(message.seq);
  }

  private addPrepare(
    slot: Slot,
    view: number,
    digest: Uint8Array,
    from: number,
    envelope: Envelope,
  ): boolean {
    const vote = `prepare/${view}/${from}`;
    if (slot.voted.has(vote)) return false;
    slot.voted.add(vote);
    const key = viewDigestKey(view, digest);
    let byFrom = slot.prepares.get(key);
    if (byFrom === undefined) {
      byFrom = new Map();
      slot.prepares.set(key, byFrom);
    }
    byFrom.set(from, envelope);
    return true;
  }

  /** §4.2 prepared(m, v, n, i): the pre-prepare and 2f matching prepares from distinct backups. */
  private checkPrepared(seq: number): void {
    const slot = this.slots.get(seq);
    const accepted = slot?.prePrepare;
    if (
      slot === undefined ||
      accepted === undefined ||
      accepted.view !== this.viewNumber ||
      this.viewChanging
    )
      return;
    if (slot.prepared !== undefined && slot.prepared.view === accepted.view) return;
    const prepares = slot.prepares.get(viewDigestKey(accepted.view, accepted.digest));
    if (prepares === undefined || prepares.size < this.quorum - 1) return;
    const certificate: PreparedCertificate = {
      prePrepare: accepted.envelope,
      prepares: [...prepares.values()].slice(0, this.quorum - 1),
    };
    slot.prepared = {
      view: accepted.view,
      digest: accepted.digest,
      proposal: accepted.proposal,
      certificate,
    };
    this.persist(
      recordKey.prepared(seq),
      seq,
      encodeCanonical({
        prePrepare: encodeEnvelope(certificate.prePrepare),
        prepares: certificate.prepares.map(encodeEnvelope),
      }),
    );
    const commit = this.sign({ type: 'commit', view: accepted.view, seq, digest: accepted.digest });
    slot.ownCommit = commit;
    this.persist(recordKey.commit(seq), seq, encodeEnvelope(commit));
    this.addCommit(slot, accepted.view, accepted.digest, this.config.self);
    this.broadcast(commit);
    this.checkCommitted(seq);
  }

  private onCommit(message: Commit): void {
    this.requireCurrentView(message.view);
    this.requireInWindow(message.seq);
    const slot = this.slot(message.seq);
    if (!this.addCommit(slot, message.view, message.digest, message.from)) {
      throw new LedgerbusError(ErrorCode.Replay, 'commit already counted');
    }
    this.checkCommitted(message.seq);
  }

  private addCommit(slot: Slot, view: number, digest: Uint8Array, from: number): boolean {
    const vote = `commit/${view}/${from}`;
    if (slot.voted.has(vote)) return false;
    slot.voted.add(vote);
    const key = viewDigestKey(view, digest);
    let senders = slot.commits.get(key);
    if (senders === undefined) {
      senders = new Set();
      slot.commits.set(key, senders);
    }
    senders.add(from);
    return true;
  }

  /** §4.2 committed-local: prepared and 2f+1 matching commits (possibly including its own). */
  private checkCommitted(seq: number): void {
    const slot = this.slots.get(seq);
    const prepared = slot?.prepared;
    if (slot === undefined || prepared === undefined || slot.committed !== undefined) return;
    if (prepared.view !== this.viewNumber) return;
    const commits = slot.commits.get(viewDigestKey(prepared.view, prepared.digest));
    if (commits === undefined || commits.size < this.quorum) return;
    slot.committed = { digest: prepared.digest, proposal: prepared.proposal };
    this.deliverCommitted();
  }

  // ---- execution and block certificates (§4.3, with a checkpoint per block) ----

  /** Hands the driver every batch that is next in order and known to be committed. */
  private deliverCommitted(): void {
    for (;;) {
      const seq = this.deliveredSeq + 1;
      const transferred = this.transferred.get(seq);
      const committed = this.slots.get(seq)?.committed;
      let batch: CommittedBatch;
      if (transferred !== undefined) {
        batch = { seq, proposal: transferred.proposal, certified: transferred };
      } else if (committed !== undefined) {
        batch = { seq, proposal: committed.proposal };
      } else {
        return;
      }
      this.deliveredSeq = seq;
      this.delivering.set(seq, batch);
      this.ready.commit.push(batch);
    }
  }

  private onExecuted(seq: number, resultsRoot: Uint8Array): void {
    const batch = this.delivering.get(seq);
    assert(batch !== undefined && seq === this.lastExecutedSeq + 1, `executed ${seq} out of order`);
    this.delivering.delete(seq);
    const proposal = batch.proposal;
    const header: PbftBlockHeader = {
      partitionId: this.config.groupId,
      configEpoch: this.config.configEpoch,
      height: seq,
      previousHash: this.lastExecutedHash,
      transactionsRoot: this.crypto.merkleRoot(proposal.requests),
      resultsRoot,
      timestamp: proposal.timestamp,
      view: proposal.view,
      proposer: proposal.proposer,
      ...(proposal.systemIndex === undefined ? {} : { systemIndex: proposal.systemIndex }),
      ...(proposal.topicIndex === undefined ? {} : { topicIndex: proposal.topicIndex }),
    };
    const hash = headerHash(this.crypto, header);
    if (batch.certified !== undefined && !sameBytes(hash, headerHash(this.crypto, batch.certified.header))) {
      throw new AssertionError(
        `block ${seq} executed here differs from the certified block: non-deterministic execution`,
      );
    }
    this.lastExecutedSeq = seq;
    this.lastExecutedHash = hash;
    this.markExecutedRequests(seq, proposal);
    // The block vote is the one vote not persisted: it is a pure function of the committed proposal
    // (unique by §4.2's safety) and the ledger before it, both durable, so a restarted replica that
    // executes the block again signs the very same header and can never contradict itself.
    const vote = this.sign({ type: 'block-vote', header });
    this.executed.set(seq, { header, hash, proposal, ownVote: vote });
    this.broadcast(vote);
    if (batch.certified !== undefined) {
      this.transferred.delete(seq);
      this.recordCertified({ ...batch.certified, proposal });
    } else {
      this.tallyVote(this.config.self, header, vote.signature);
    }
  }

  private markExecutedRequests(seq: number, proposal: Proposal): void {
    let executedAny = false;
    const keys = this.requestKeys.get(proposal.requests);
    proposal.requests.forEach((bytes, index) => {
      const digestKey = keys?.[index] ?? this.requestDigestKey(bytes);
      const clientSeqKey =
        this.pending.get(digestKey)?.clientSeqKey ??
        this.verifiedRequests.get(digestKey) ??
        clientSeqKeyOf(decodeClientRequest(bytes, this.config.requestBytesMax));
      this.dropPending(digestKey);
      const otherVersion = this.pendingByClientSeq.get(clientSeqKey);
      if (otherVersion !== undefined) this.dropPending(otherVersion);
      this.pendingByClientSeq.delete(clientSeqKey);
      this.committedRequests.set(clientSeqKey, seq);
      executedAny = true;
    });
    while (this.committedRequests.size > committedRequestsMax) {
      this.committedRequests.delete(this.committedRequests.keys().next().value as string);
    }
    // §4.4: the timer restarts when a request executes and others wait, and stops when none wait.
    if (executedAny || this.pending.size === 0) {
      this.requestTimerStart = this.pending.size === 0 ? undefined : this.ticks;
    }
  }

  private dropPending(digestKey: string): void {
    this.pending.delete(digestKey);
    this.unproposed.delete(digestKey);
  }

  private onBlockVote(message: BlockVote, envelope: Envelope): void {
    const header = message.header;
    if (header.partitionId !== this.config.groupId || header.configEpoch !== this.config.configEpoch) {
      throw new LedgerbusError(ErrorCode.WrongGroup, 'block vote for another group');
    }
    if (header.height <= this.lastCertifiedSeq) return;
    if (header.height > this.stableSeq + 2 * this.config.watermarkWindow) {
      throw new LedgerbusError(ErrorCode.OutOfWindow, `block vote for ${header.height} is beyond the window`);
    }
    this.tallyVote(message.from, header, envelope.signature);
  }

  private tallyVote(from: number, header: PbftBlockHeader, signature: Uint8Array): void {
    const seq = header.height;
    const hash = headerHash(this.crypto, header);
    const key = hexKey(hash);
    let bySeq = this.votes.get(seq);
    if (bySeq === undefined) {
      bySeq = new Map();
      this.votes.set(seq, bySeq);
    }
    // One block vote per replica and height: a second, different one cannot add another tally.
    for (const existing of bySeq.values()) if (existing.signatures.has(from)) return;
    let tally = bySeq.get(key);
    if (tally === undefined) {
      tally = { header, signatures: new Map() };
      bySeq.set(key, tally);
    }
    if (tally.signatures.has(from)) return;
    tally.signatures.set(from, signature);
    if (tally.signatures.size < this.quorum) return;
    const own = this.executed.get(seq);
    if (own === undefined) return; // certified elsewhere; state transfer will bring it
    if (!sameBytes(own.hash, hash)) {
      throw new AssertionError(`2f+1 replicas certified a different block ${seq}: this replica diverged`);
    }
    const signatures: CertificateSignature[] = [...tally.signatures.entries()]
      .sort(([a], [b]) => a - b)
      .slice(0, this.quorum)
      .map(([index, sig]) => ({ signer: this.config.replicas[index]!.id, signature: sig }));
    this.recordCertified({ header, signatures, proposal: own.proposal });
  }

  /** Emits certified blocks strictly in height order and advances the stable checkpoint. */
  private recordCertified(block: CertifiedBlock): void {
    if (block.header.height <= this.lastCertifiedSeq) return;
    this.certifiedAhead.set(block.header.height, block);
    for (;;) {
      const next = this.certifiedAhead.get(this.lastCertifiedSeq + 1);
      if (next === undefined) break;
      this.certifiedAhead.delete(next.header.height);
      this.lastCertifiedSeq = next.header.height;
      this.ready.certified.push(next);
      if (next.header.height % this.config.checkpointInterval === 0) this.advanceStable(next);
    }
  }

  /** §4.3: a stable checkpoint discards the log up to it and moves the watermarks. */
  private advanceStable(block: CertifiedHeader): void {
    const seq = block.header.height;
    if (seq <= this.stableSeq) return;
    this.stableSeq = seq;
    this.stableCertificate = { header: block.header, signatures: block.signatures };
    for (const map of [this.slots, this.executed, this.votes] as Map<number, unknown>[]) {
      for (const key of map.keys()) if (key <= seq) map.delete(key);
    }
    this.ready.persist.push({ op: 'truncate', belowSeq: seq + 1 });
    if (this.nextProposalSeq <= seq) this.nextProposalSeq = seq + 1;
    this.proposeBatches();
  }

  // ---- view changes (§4.4) ----

  private startViewChange(newView: number): void {
    if (newView < this.viewNumber || (newView === this.viewNumber && this.viewChanging)) return;
    this.viewChangeAttempts =
      newView === this.viewNumber + 1 && this.viewChanging ? this.viewChangeAttempts + 1 : 1;
    this.viewNumber = newView;
    this.viewChanging = true;
    this.viewChangeDeadline = undefined;
    this.requestTimerStart = undefined;
    this.persistState();
    const prepared: PreparedCertificate[] = [];
    for (const [seq, slot] of [...this.slots.entries()].sort(([a], [b]) => a - b)) {
      if (seq > this.stableSeq && slot.prepared !== undefined) prepared.push(slot.prepared.certificate);
    }
    const envelope = this.sign({
      type: 'view-change',
      newView,
      stable: this.stableCertificate ?? null,
      prepared,
    });
    this.ownViewChange = envelope;
    this.persist(recordKey.viewChange, 0, encodeEnvelope(envelope));
    this.broadcast(envelope);
    this.recordViewChange(this.config.self, decodeBody(envelope.body) as ViewChange, envelope);
  }

  private onViewChange(message: ViewChange, envelope: Envelope): void {
    if (message.newView < this.viewNumber || (message.newView === this.viewNumber && !this.viewChanging)) {
      // A peer still trying to reach a view we are already in: show it the new view.
      if (!this.viewChanging && this.latestNewView !== undefined && this.mayHelp(message.from)) {
        this.sendTo(message.from, this.latestNewView);
      }
      return;
    }
    this.validateViewChange(message, envelope);
    this.recordViewChange(message.from, message, envelope);
  }

  private recordViewChange(from: number, message: ViewChange, envelope: Envelope): void {
    // Only a sender's latest view change counts (a correct replica's views only grow), which also
    // bounds what a Byzantine one can make us keep to one message.
    const previousView = this.latestViewChangeView.get(from);
    if (previousView !== undefined && previousView > message.newView) return;
    if (previousView !== undefined && previousView !== message.newView) {
      const stale = this.viewChanges.get(previousView);
      stale?.delete(from);
      if (stale?.size === 0) this.viewChanges.delete(previousView);
    }
    let byFrom = this.viewChanges.get(message.newView);
    if (byFrom === undefined) {
      byFrom = new Map();
      this.viewChanges.set(message.newView, byFrom);
    }
    byFrom.set(from, { message, envelope });
    this.latestViewChangeView.set(from, message.newView);

    // §4.5.2: f+1 replicas asking for higher views means at least one correct replica does: join the
    // smallest of those views rather than wait for our own timer.
    const higher = [...this.latestViewChangeView.entries()]
      .filter(([replica, view]) => replica !== this.config.self && view > this.viewNumber)
      .map(([, view]) => view);
    if (higher.length >= this.f + 1) {
      this.startViewChange(Math.min(...higher));
      return;
    }
    if (!this.viewChanging || message.newView !== this.viewNumber) return;
    const collected = this.viewChanges.get(this.viewNumber)!;
    // §4.5.2: the view-change timer only runs once 2f+1 replicas want the same view, so a lone
    // replica does not race ahead through views.
    if (collected.size >= this.quorum && this.viewChangeDeadline === undefined) {
      this.viewChangeDeadline =
        this.ticks + this.config.viewChangeTimeoutTicks * 2 ** Math.min(this.viewChangeAttempts - 1, 6);
    }
    if (primaryOf(this.viewNumber, this.n) === this.config.self && collected.size >= this.quorum) {
      this.sendNewView();
    }
  }

  /** Checks a view-change message's stable checkpoint and every prepared certificate in it. */
  private validateViewChange(message: ViewChange, envelope: Envelope): void {
    const key = this.envelopeKey(envelope);
    if (this.validViewChanges.has(key)) return;
    this.checkViewChangeEvidence(message);
    this.validViewChanges.add(key);
    if (this.validViewChanges.size > authenticatedEnvelopesMax) {
      this.validViewChanges.delete(this.validViewChanges.values().next().value as string);
    }
  }

  private checkViewChangeEvidence(message: ViewChange): void {
    const stableSeq = message.stable === null ? 0 : message.stable.header.height;
    if (message.stable !== null && !this.isBase(message.stable)) {
      const header = message.stable.header;
      if (
        header.partitionId !== this.config.groupId ||
        header.configEpoch !== this.config.configEpoch ||
        header.height % this.config.checkpointInterval !== 0 ||
        !certificateValid(this.crypto, message.stable, this.keysById, this.quorum)
      ) {
        throw new LedgerbusError(ErrorCode.BadViewChange, 'view change carries an invalid stable checkpoint');
      }
    }
    const seen = new Set<number>();
    for (const certificate of message.prepared) {
      const prePrepare = this.checkPreparedCertificate(certificate, message.newView);
      if (prePrepare.seq <= stableSeq || prePrepare.seq > stableSeq + this.config.watermarkWindow) {
        throw new LedgerbusError(
          ErrorCode.BadViewChange,
          `prepared certificate for ${prePrepare.seq} outside the window`,
        );
      }
      if (seen.has(prePrepare.seq)) {
        throw new LedgerbusError(ErrorCode.BadViewChange, `two prepared certificates for ${prePrepare.seq}`);
      }
      seen.add(prePrepare.seq);
    }
  }

  /** A prepared certificate: a pre-prepare from its view's primary and 2f matching prepares from backups. */
  private checkPreparedCertificate(certificate: PreparedCertificate, beforeView: number): PrePrepare {
    const prePrepare = this.authenticateNested(certificate.prePrepare, 'pre-prepare') as PrePrepare;
    if (prePrepare.view >= beforeView || prePrepare.from !== primaryOf(prePrepare.view, this.n)) {
      throw new LedgerbusError(ErrorCode.BadViewChange, 'prepared certificate has a bad pre-prepare');
    }
    if (!sameBytes(proposalDigest(this.crypto, prePrepare.proposal), prePrepare.digest)) {
      throw new LedgerbusError(ErrorCode.BadViewChange, 'prepared certificate digest does not match');
    }
    const senders = new Set<number>();
    for (const envelope of certificate.prepares) {
      const prepare = this.authenticateNested(envelope, 'prepare') as Prepare;
      if (
        prepare.view !== prePrepare.view ||
        prepare.seq !== prePrepare.seq ||
        !sameBytes(prepare.digest, prePrepare.digest) ||
        prepare.from === prePrepare.from
      ) {
        throw new LedgerbusError(ErrorCode.BadViewChange, 'prepared certificate has a mismatched prepare');
      }
      senders.add(prepare.from);
    }
    if (senders.size < this.quorum - 1) {
      throw new LedgerbusError(ErrorCode.BadViewChange, 'prepared certificate has fewer than 2f prepares');
    }
    return prePrepare;
  }

  /** Authenticates evidence embedded in another message; our own messages count here too. */
  private authenticateNested(envelope: Envelope, type: PbftMessage['type']): PbftMessage {
    const cached = this.authenticated.get(this.envelopeKey(envelope));
    if (cached !== undefined && cached.type === type) return cached;
    const message = decodeBody(envelope.body);
    const sender = this.config.replicas[message.from];
    if (
      message.type !== type ||
      sender === undefined ||
      message.group !== this.config.groupId ||
      message.epoch !== this.config.configEpoch ||
      !verifyEnvelope(this.crypto, envelope, message, sender.publicKey)
    ) {
      throw new LedgerbusError(ErrorCode.BadViewChange, `embedded ${type} is not authentic`);
    }
    this.rememberAuthenticated(envelope, message);
    return message;
  }

  /**
   * §4.4 the new primary's O: for every sequence number between the highest stable checkpoint in V
   * and the highest prepared one, the batch prepared in the highest view, or a null batch.
   */
  private computeNewViewPlan(viewChanges: readonly ViewChange[], view: number): NewViewPlan {
    let minSeq = 0;
    let stable: CertifiedHeader | undefined;
    for (const change of viewChanges) {
      if (change.stable !== null && change.stable.header.height > minSeq) {
        minSeq = change.stable.header.height;
        stable = change.stable;
      }
    }
    const best = new Map<number, PrePrepare>();
    for (const change of viewChanges) {
      for (const certificate of change.prepared) {
        const prePrepare = decodeBody(certificate.prePrepare.body) as PrePrepare;
        if (prePrepare.seq <= minSeq) continue;
        const current = best.get(prePrepare.seq);
        if (current === undefined || prePrepare.view > current.view) best.set(prePrepare.seq, prePrepare);
      }
    }
    const maxSeq = Math.max(minSeq, ...best.keys());
    const entries: { seq: number; proposal?: Proposal }[] = [];
    for (let seq = minSeq + 1; seq <= maxSeq; seq++) {
      const chosen = best.get(seq);
      entries.push(chosen === undefined ? { seq } : { seq, proposal: chosen.proposal });
    }
    return { view, minSeq, maxSeq, stable, entries };
  }

  private sendNewView(): void {
    if (this.latestNewView !== undefined && this.viewOf(this.latestNewView) === this.viewNumber) return;
    const collected = [...this.viewChanges.get(this.viewNumber)!.entries()].sort(([a], [b]) => a - b);
    const chosen = collected.slice(0, this.quorum);
    const plan = this.computeNewViewPlan(
      chosen.map(([, entry]) => entry.message),
      this.viewNumber,
    );
    const prePrepares = plan.entries.map((entry) => {
      const proposal: Proposal = entry.proposal ?? {
        view: this.viewNumber,
        proposer: this.selfId,
        timestamp: this.now,
        requests: [],
        ...this.registryFields(),
      };
      const digest = proposalDigest(this.crypto, proposal);
      return this.sign({ type: 'pre-prepare', view: this.viewNumber, seq: entry.seq, digest, proposal });
    });
    const envelope = this.sign({
      type: 'new-view',
      view: this.viewNumber,
      viewChanges: chosen.map(([, entry]) => entry.envelope),
      prePrepares,
    });
    this.broadcast(envelope);
    this.enterNewView(plan, prePrepares, envelope);
  }

  private onNewView(message: NewView, envelope: Envelope): void {
    if (message.view < this.viewNumber || (message.view === this.viewNumber && !this.viewChanging)) {
      throw new LedgerbusError(
        ErrorCode.WrongView,
        `new view ${message.view} is not ahead of ${this.viewNumber}`,
      );
    }
    if (message.from !== primaryOf(message.view, this.n)) {
      throw new LedgerbusError(ErrorCode.NotPrimary, 'new view from a replica that is not its primary');
    }
    const changes: ViewChange[] = [];
    const senders = new Set<number>();
    for (const nested of message.viewChanges) {
      const change = this.authenticateNested(nested, 'view-change') as ViewChange;
      if (change.newView !== message.view || senders.has(change.from)) {
        throw new LedgerbusError(
          ErrorCode.BadViewChange,
          'new view carries a mismatched or repeated view change',
        );
      }
      this.validateViewChange(change, nested);
      senders.add(change.from);
      changes.push(change);
    }
    if (senders.size < this.quorum) {
      throw new LedgerbusError(ErrorCode.BadViewChange, 'new view carries fewer than 2f+1 view changes');
    }
    // §4.4: backups recompute O from V and accept the new view only if it matches.
    const plan = this.computeNewViewPlan(changes, message.view);
    if (message.prePrepares.length !== plan.entries.length) {
      throw new LedgerbusError(ErrorCode.BadViewChange, 'new view has the wrong number of pre-prepares');
    }
    const primaryId = this.config.replicas[message.from]!.id;
    message.prePrepares.forEach((nested, index) => {
      const prePrepare = this.authenticateNested(nested, 'pre-prepare') as PrePrepare;
      const entry = plan.entries[index]!;
      const expected =
        entry.proposal === undefined
          ? prePrepare.proposal.requests.length === 0 &&
            prePrepare.proposal.view === message.view &&
            prePrepare.proposal.proposer === primaryId &&
            prePrepare.proposal.timestamp <= this.now + this.config.clockSkewMaxMs
          : sameBytes(prePrepare.digest, proposalDigest(this.crypto, entry.proposal));
      if (
        !expected ||
        prePrepare.view !== message.view ||
        prePrepare.seq !== entry.seq ||
        !sameBytes(prePrepare.digest, proposalDigest(this.crypto, prePrepare.proposal))
      ) {
        throw new LedgerbusError(
          ErrorCode.BadViewChange,
          `new view pre-prepare for ${entry.seq} does not match O`,
        );
      }
    });
    this.enterNewView(plan, message.prePrepares, envelope);
  }

  private enterNewView(plan: NewViewPlan, prePrepares: readonly Envelope[], newView: Envelope): void {
    this.viewNumber = plan.view;
    this.viewChanging = false;
    this.viewChangeDeadline = undefined;
    this.viewChangeAttempts = 0;
    this.latestNewView = newView;
    this.persistState();
    this.persist(recordKey.newView, 0, encodeEnvelope(newView));
    for (const view of [...this.viewChanges.keys()]) if (view <= plan.view) this.viewChanges.delete(view);
    // Pre-prepares of earlier views that O does not carry are void in the new view.
    for (const [seq, slot] of this.slots) {
      if (seq > plan.maxSeq && slot.prePrepare !== undefined) delete slot.prePrepare;
    }
    // Requests proposed in the old view may be lost with it: they are all eligible again, oldest first.
    this.unproposed.clear();
    for (const [key, entry] of this.pending) this.unproposed.set(key, entry);
    // ...except those the new view carries already: proposing them again would execute them twice.
    for (const entry of plan.entries) {
      for (const bytes of entry.proposal?.requests ?? []) {
        this.unproposed.delete(this.requestDigestKey(bytes));
      }
    }
    this.nextProposalSeq = Math.max(plan.maxSeq, this.stableSeq) + 1;
    if (plan.stable !== undefined && plan.minSeq > this.lastExecutedSeq) {
      this.maybeFetch();
    }
    for (const envelope of prePrepares) {
      const prePrepare = decodeBody(envelope.body) as PrePrepare;
      if (prePrepare.seq <= this.stableSeq || prePrepare.seq > this.stableSeq + this.config.watermarkWindow)
        continue;
      this.acceptPrePrepare(prePrepare.seq, {
        view: prePrepare.view,
        digest: prePrepare.digest,
        proposal: prePrepare.proposal,
        envelope,
      });
    }
    this.requestTimerStart = this.pending.size > 0 ? this.ticks : undefined;
    this.proposeBatches();
  }

  private viewOf(newView: Envelope): number {
    return (decodeBody(newView.body) as NewView).view;
  }

  // ---- status, retransmission and state transfer ----

  private broadcastStatus(): void {
    this.lastStatusTick = this.ticks;
    this.broadcast(
      this.sign({
        type: 'status',
        view: this.viewNumber,
        inViewChange: this.viewChanging,
        lastExecuted: this.lastExecutedSeq,
        lastCertified: this.lastCertifiedSeq,
        stableSeq: this.stableSeq,
      }),
    );
    // A replica stuck in a view change repeats its request, since the first may have been lost.
    if (this.viewChanging && this.ownViewChange !== undefined) this.broadcast(this.ownViewChange);
  }

  /** Helps a peer that is behind, at most once per status interval per peer. */
  private onStatus(status: Status): void {
    const previous = this.peerStatus.get(status.from);
    this.peerStatus.set(status.from, status);
    this.maybeFetch();
    // A peer that progressed since its last status needs nothing; one that did not may have lost messages.
    const stalled =
      previous !== undefined &&
      previous.lastExecuted === status.lastExecuted &&
      previous.lastCertified === status.lastCertified;
    if (!this.mayHelp(status.from)) return;
    const peer = status.from;
    if (!this.viewChanging && this.latestNewView !== undefined) {
      if (status.view < this.viewNumber || (status.view === this.viewNumber && status.inViewChange)) {
        this.sendTo(peer, this.latestNewView);
      }
    }
    if (this.viewChanging && status.inViewChange && status.view === this.viewNumber && this.ownViewChange) {
      this.sendTo(peer, this.ownViewChange);
    }
    if (!stalled) return;
    if (status.view === this.viewNumber && !status.inViewChange && !this.viewChanging) {
      const from = Math.max(status.lastExecuted, this.stableSeq) + 1;
      const to = Math.min(
        from + this.config.watermarkWindow - 1,
        this.stableSeq + this.config.watermarkWindow,
      );
      for (let seq = from; seq <= to; seq++) {
        const slot = this.slots.get(seq);
        if (slot === undefined) continue;
        if (slot.prePrepare !== undefined && slot.prePrepare.view === this.viewNumber) {
          this.sendTo(peer, slot.prePrepare.envelope);
        }
        if (slot.ownPrepare !== undefined) this.sendTo(peer, slot.ownPrepare);
        if (slot.ownCommit !== undefined) this.sendTo(peer, slot.ownCommit);
      }
    }
    for (let seq = Math.max(status.lastCertified, this.stableSeq) + 1; seq <= this.lastExecutedSeq; seq++) {
      const own = this.executed.get(seq);
      if (own !== undefined) this.sendTo(peer, own.ownVote);
    }
  }

  /** Bounds what a peer (perhaps a lying one) can make us retransmit: once per status interval. */
  private mayHelp(peer: number): boolean {
    const last = this.lastHelpedTick.get(peer) ?? Number.NEGATIVE_INFINITY;
    if (this.ticks - last < this.config.statusIntervalTicks) return false;
    this.lastHelpedTick.set(peer, this.ticks);
    return true;
  }

  /**
   * Asks one peer that claims certified blocks beyond ours for them, once we have been behind for a
   * status interval (votes still in flight are not worth a transfer); rotates if it does not answer.
   */
  private maybeFetch(): void {
    const candidates = [...this.peerStatus.values()]
      .filter((status) => status.lastCertified > this.lastCertifiedSeq)
      .map((status) => status.from)
      .sort((a, b) => a - b);
    if (candidates.length === 0) {
      this.behindSinceTick = undefined;
      return;
    }
    this.behindSinceTick ??= this.ticks;
    if (this.fetch !== undefined || this.ticks - this.behindSinceTick < this.config.statusIntervalTicks)
      return;
    const to = candidates[this.fetchRotation++ % candidates.length]!;
    const fromSeq = this.lastCertifiedSeq + 1;
    this.fetch = { to, fromSeq, deadline: this.ticks + 4 * this.config.statusIntervalTicks };
    this.sendTo(to, this.sign({ type: 'fetch-blocks', fromSeq, count: this.config.fetchBlocksMax }));
  }

  private onFetchBlocks(message: FetchBlocks): void {
    if (message.fromSeq === 0 || message.fromSeq > this.lastCertifiedSeq) return;
    const count = Math.min(
      message.count,
      this.config.fetchBlocksMax,
      this.lastCertifiedSeq - message.fromSeq + 1,
    );
    this.ready.serve.push({ to: message.from, fromSeq: message.fromSeq, count });
  }

  /**
   * State transfer: accepts certified blocks that continue our chain (each with 2f+1 valid signatures
   * and its transactions root, then executed like a committed batch), or certificates for blocks we
   * executed but whose votes we lost. Every block is checked before any is applied, so a reply with a
   * single bad block changes nothing.
   */
  private onBlocks(message: Blocks): void {
    const certifyExecuted: CertifiedBlock[] = [];
    const transfer: CertifiedBlock[] = [];
    let previousHash = this.deliveredChainHash();
    let expected = this.deliveredSeq + 1;
    for (const block of message.blocks) {
      const header = block.certified.header;
      if (header.height <= this.lastCertifiedSeq) continue;
      if (
        header.partitionId !== this.config.groupId ||
        header.configEpoch !== this.config.configEpoch ||
        !sameBytes(header.transactionsRoot, this.crypto.merkleRoot(block.requests)) ||
        !certificateValid(this.crypto, block.certified, this.keysById, this.quorum)
      ) {
        throw new LedgerbusError(ErrorCode.BrokenChain, `transferred block ${header.height} does not verify`);
      }
      const hash = headerHash(this.crypto, header);
      if (header.height <= this.lastExecutedSeq) {
        // Executed here but its votes were lost: the certificate is all that was missing.
        const own = this.executed.get(header.height);
        if (own === undefined) continue;
        if (!sameBytes(own.hash, hash)) {
          throw new AssertionError(`block ${header.height} executed here differs from the certified block`);
        }
        certifyExecuted.push({ ...block.certified, proposal: own.proposal });
        continue;
      }
      if (previousHash === undefined || header.height !== expected) break;
      if (!sameBytes(header.previousHash, previousHash)) {
        throw new LedgerbusError(ErrorCode.BrokenChain, `transferred block ${header.height} does not link`);
      }
      const proposal: Proposal = {
        view: header.view,
        proposer: header.proposer,
        timestamp: header.timestamp,
        requests: block.requests,
        ...(header.systemIndex === undefined ? {} : { systemIndex: header.systemIndex }),
        ...(header.topicIndex === undefined ? {} : { topicIndex: header.topicIndex }),
      };
      transfer.push({ ...block.certified, proposal });
      previousHash = hash;
      expected += 1;
      if (this.transferred.size + transfer.length >= this.config.watermarkWindow + this.config.fetchBlocksMax)
        break;
    }
    if (this.fetch?.to === message.from) this.fetch = undefined;
    for (const block of certifyExecuted) this.recordCertified(block);
    for (const block of transfer) this.transferred.set(block.header.height, block);
    this.deliverCommitted();
    this.maybeFetch();
  }

  /** Hash of the last delivered block, when known before its execution (it came certified). */
  private deliveredChainHash(): Uint8Array | undefined {
    if (this.deliveredSeq === this.lastExecutedSeq) return this.lastExecutedHash;
    const certified = this.delivering.get(this.deliveredSeq)?.certified;
    return certified === undefined ? undefined : headerHash(this.crypto, certified.header);
  }

  /** Signs a state-transfer reply for the driver, which reads the blocks from its ledger. */
  encodeBlocks(blocks: readonly TransferredBlock[]): Uint8Array {
    return encodeEnvelope(this.sign({ type: 'blocks', blocks: [...blocks] }));
  }

  // ---- helpers ----

  private requireCurrentView(view: number): void {
    if (view !== this.viewNumber || this.viewChanging) {
      throw new LedgerbusError(
        ErrorCode.WrongView,
        `message for view ${view}; this replica is ${this.viewChanging ? 'changing to' : 'in'} view ${this.viewNumber}`,
      );
    }
  }

  private requireInWindow(seq: number): void {
    if (seq <= this.stableSeq || seq > this.stableSeq + this.config.watermarkWindow) {
      throw new LedgerbusError(
        ErrorCode.OutOfWindow,
        `sequence ${seq} outside (${this.stableSeq}, ${this.stableSeq + this.config.watermarkWindow}]`,
      );
    }
  }

  private slot(seq: number): Slot {
    let slot = this.slots.get(seq);
    if (slot === undefined) {
      slot = { prepares: new Map(), commits: new Map(), voted: new Set() };
      this.slots.set(seq, slot);
    }
    return slot;
  }

  private sign(fields: MessageFields<PbftMessage>): Envelope {
    const message = {
      ...fields,
      group: this.config.groupId,
      epoch: this.config.configEpoch,
      from: this.config.self,
    } as PbftMessage;
    return signMessage(this.crypto, message);
  }

  private broadcast(envelope: Envelope): void {
    this.ready.send.push({ to: 'all', bytes: encodeEnvelope(envelope) });
  }

  private sendTo(to: number, envelope: Envelope): void {
    this.ready.send.push({ to, bytes: encodeEnvelope(envelope) });
  }

  private persist(key: string, seq: number, bytes: Uint8Array): void {
    this.ready.persist.push({ op: 'put', record: { key, seq, bytes } });
  }

  private persistState(): void {
    this.persist(
      recordKey.state,
      0,
      encodeCanonical({ view: this.viewNumber, inViewChange: this.viewChanging }),
    );
  }

  /** Starts the epoch from its base checkpoint, unless the ledger already went past it. */
  private adoptBase(): void {
    const base = this.config.base;
    if (base === undefined) return;
    const height = base.header.height;
    if (height > this.stableSeq) {
      this.stableSeq = height;
      this.stableCertificate = base;
    }
    if (height > this.lastExecutedSeq) {
      this.lastExecutedSeq = height;
      this.lastCertifiedSeq = height;
      this.deliveredSeq = height;
      this.lastExecutedHash = headerHash(this.crypto, base.header);
    }
    this.nextProposalSeq = Math.max(this.nextProposalSeq, this.stableSeq + 1, this.lastExecutedSeq + 1);
  }

  /** True if `certified` is this epoch's base checkpoint (see PbftConfig.base). */
  private isBase(certified: CertifiedHeader): boolean {
    const base = this.config.base;
    return (
      base !== undefined &&
      certified.header.height === base.header.height &&
      sameBytes(headerHash(this.crypto, certified.header), headerHash(this.crypto, base.header))
    );
  }

  /**
   * Rebuilds the durable part of the state: the view, and for every sequence number above the stable
   * checkpoint the accepted pre-prepare, own prepare, prepared certificate and own commit, so that a
   * restarted replica never contradicts a vote it sent and still reports what it prepared (§4.4).
   */
  private restore(restore: PbftRestore): void {
    if (restore.stable !== undefined) {
      this.stableSeq = restore.stable.header.height;
      this.stableCertificate = restore.stable;
    }
    if (restore.head !== undefined) {
      const height = restore.head.header.height;
      this.lastExecutedSeq = height;
      this.lastCertifiedSeq = height;
      this.deliveredSeq = height;
      this.lastExecutedHash = headerHash(this.crypto, restore.head.header);
    }
    this.nextProposalSeq = Math.max(this.stableSeq, this.lastExecutedSeq) + 1;
    const records = [...restore.records].sort((a, b) => a.seq - b.seq);
    for (const record of records) {
      if (record.key === recordKey.state) {
        const state = decodeCanonical(record.bytes) as { view: number; inViewChange: boolean };
        this.viewNumber = state.view;
        this.viewChanging = state.inViewChange;
      } else if (record.key === recordKey.viewChange) {
        this.ownViewChange = decodeEnvelope(record.bytes);
      } else if (record.key === recordKey.newView) {
        this.latestNewView = decodeEnvelope(record.bytes);
      }
    }
    for (const record of records) {
      if (record.seq <= this.stableSeq) continue;
      const slot = this.slot(record.seq);
      if (record.key === recordKey.prePrepare(record.seq)) {
        const envelope = decodeEnvelope(record.bytes);
        const message = decodeBody(envelope.body) as PrePrepare;
        slot.prePrepare = {
          view: message.view,
          digest: message.digest,
          proposal: message.proposal,
          envelope,
        };
      } else if (record.key === recordKey.prepare(record.seq)) {
        slot.ownPrepare = decodeEnvelope(record.bytes);
        const message = decodeBody(slot.ownPrepare.body) as Prepare;
        this.addPrepare(slot, message.view, message.digest, this.config.self, slot.ownPrepare);
      } else if (record.key === recordKey.prepared(record.seq)) {
        const raw = decodeCanonical(record.bytes) as { prePrepare: Uint8Array; prepares: Uint8Array[] };
        const certificate: PreparedCertificate = {
          prePrepare: decodeEnvelope(raw.prePrepare),
          prepares: raw.prepares.map(decodeEnvelope),
        };
        const message = decodeBody(certificate.prePrepare.body) as PrePrepare;
        slot.prepared = {
          view: message.view,
          digest: message.digest,
          proposal: message.proposal,
          certificate,
        };
      } else if (record.key === recordKey.commit(record.seq)) {
        slot.ownCommit = decodeEnvelope(record.bytes);
        const message = decodeBody(slot.ownCommit.body) as Commit;
        this.addCommit(slot, message.view, message.digest, this.config.self);
      }
    }
    for (const [seq, slot] of this.slots) {
      // Never propose a second batch at a sequence number already pre-prepared in this view.
      if (slot.prePrepare !== undefined && slot.prePrepare.view === this.viewNumber) {
        this.nextProposalSeq = Math.max(this.nextProposalSeq, seq + 1);
      }
    }
    if (this.viewChanging && this.ownViewChange !== undefined) {
      this.recordViewChange(
        this.config.self,
        decodeBody(this.ownViewChange.body) as ViewChange,
        this.ownViewChange,
      );
    }
  }
}

interface NewViewPlan {
  readonly view: number;
  readonly minSeq: number;
  readonly maxSeq: number;
  readonly stable: CertifiedHeader | undefined;
  readonly entries: readonly { readonly seq: number; readonly proposal?: Proposal }[];
}

function clientSeqKeyOf(request: ClientRequest): string {
  return `${hexKey(request.client)}:${request.seq}`;
}

/** etcd-style up-front validation, naming the field at fault. */
export function validateConfig(config: PbftConfig): void {
  const fail = (field: string, why: string): never => {
    throw new LedgerbusError(ErrorCode.BadConfig, `pbft.${field}: ${why}`);
  };
  const n = config.replicas.length;
  if (n < 4) fail('replicas', `needs at least 4 replicas (3f+1 with f ≥ 1), got ${n}`);
  if (new Set(config.replicas.map((replica) => replica.id)).size !== n)
    fail('replicas', 'replica ids must be distinct');
  if (!Number.isInteger(config.self) || config.self < 0 || config.self >= n)
    fail('self', 'must index replicas');
  const positive: (keyof PbftConfig)[] = [
    'checkpointInterval',
    'watermarkWindow',
    'batchRequestsMax',
    'batchBytesMax',
    'batchTicksMax',
    'requestTimeoutTicks',
    'viewChangeTimeoutTicks',
    'statusIntervalTicks',
    'pendingRequestsMax',
    'requestBytesMax',
    'fetchBlocksMax',
  ];
  for (const field of positive) {
    const value = config[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
      fail(field, 'must be a positive integer');
  }
  if (config.watermarkWindow % config.checkpointInterval !== 0) {
    fail('watermarkWindow', 'must be a multiple of checkpointInterval');
  }
  if (config.watermarkWindow < 2 * config.checkpointInterval) {
    fail('watermarkWindow', 'must be at least 2 × checkpointInterval so the window moves while proposing');
  }
}

/** Sensible defaults for a real deployment; the simulator uses smaller values. */
export const defaultPbftTuning = {
  checkpointInterval: 64,
  watermarkWindow: 256,
  batchRequestsMax: 1024,
  batchBytesMax: 4 * 1024 * 1024,
  batchTicksMax: 1,
  requestTimeoutTicks: 200,
  viewChangeTimeoutTicks: 200,
  statusIntervalTicks: 20,
  pendingRequestsMax: 100_000,
  requestBytesMax: 1024 * 1024,
  clockSkewMaxMs: 5_000,
  fetchBlocksMax: 64,
} as const;
