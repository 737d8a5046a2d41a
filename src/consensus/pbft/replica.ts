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
 *
 * This class routes inputs and keeps the protocol's steps in order; its state lives in named parts
 * beside it, each with its invariants written down and asserted: view-change-state.ts (and the pure
 * new-view computation in new-view.ts), message-log.ts, chain-progress.ts, block-votes.ts,
 * request-table.ts, state-transfer.ts, retransmission.ts and authenticator.ts.
 */
import { AssertionError, ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { rejectForGood, rejectForNow, requireCurrentView, requireInWindow } from './rejections.js';
import { encodeCanonical } from '../../codec/index.js';
import {
  decodeBody,
  decodeEnvelope,
  encodeEnvelope,
  headerHash,
  proposalDigest,
  signMessage,
} from './messages.js';
import type {
  BlockVote,
  Blocks,
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
import { validateConfig } from './config.js';
import { computeNewViewPlan, newViewOf, newViewPrePrepareMatches } from './new-view.js';
import type { NewViewPlan } from './new-view.js';
import { Authenticator } from './authenticator.js';
import {
  MessageLog,
  encodePreparedRecord,
  readViewRecords,
  recordKey,
  viewDigestKey,
} from './message-log.js';
import type { AcceptedPrePrepare } from './message-log.js';
import { checkProposal } from './proposal-checks.js';
import { RequestTable } from './request-table.js';
import { ChainProgress } from './chain-progress.js';
import { RetransmissionLimiter, retransmissionFor } from './retransmission.js';
import { BlockVotes } from './block-votes.js';
import { StateTransfer, servedRange, sortTransferredBlocks } from './state-transfer.js';
import { ViewChangeState } from './view-change-state.js';
import { faultTolerance, primaryOf, quorumSize, sameBytes } from './quorum.js';
import type {
  CertificateSignature,
  CertifiedBlock,
  CertifiedHeader,
  PbftBlockHeader,
  PbftConfig,
  PbftCrypto,
  PbftInput,
  PbftReady,
  PbftRestore,
  Proposal,
  RegistryIndexes,
} from './types.js';

export { defaultPbftTuning } from './config.js';

function emptyReady(): PbftReady {
  return { persist: [], certified: [], send: [], commit: [], alreadyCommitted: [], rejected: [], serve: [] };
}

export class PbftReplica {
  readonly config: PbftConfig;
  private readonly crypto: PbftCrypto;
  private readonly n: number;
  private readonly f: number;
  private readonly quorum: number;
  private readonly selfId: string;

  // ---- state, in named parts; each module writes down and asserts its invariants ----
  /** The view and the view-change protocol (§4.4, §4.5.2); durable. */
  private readonly views = new ViewChangeState();
  /** Delivered ≥ executed ≥ certified ≥ stable, and the blocks between; rebuilt from the ledger. */
  private readonly chain: ChainProgress;
  /** Pre-prepares, prepares and commits per sequence number in the window (§4.2); durable. */
  private readonly log = new MessageLog();
  /** Block votes counted towards block certificates (§4.3). */
  private readonly votes: BlockVotes;
  /** Client requests: pending, unproposed, committed, verified. */
  private readonly requests: RequestTable;
  /** Signatures checked once per envelope, and view-change evidence. */
  private readonly authenticator: Authenticator;
  /** Who is ahead of us, and the state-transfer fetch in flight. */
  private readonly transfer: StateTransfer;
  private readonly help: RetransmissionLimiter;

  // ---- the rest of the volatile state ----
  /** The sequence number the primary proposes next. */
  private nextProposalSeq = 1;
  private ticks = 0;
  /** The driver's clock at the last tick, in ms: stamps and checks proposals only. */
  private now = 0;
  /** When the §4.4 request timer started, while some request waits to execute. */
  private requestTimerStart: number | undefined;
  private lastStatusTick = Number.NEGATIVE_INFINITY;

  private get viewNumber(): number {
    return this.views.view;
  }
  private get viewChanging(): boolean {
    return this.views.inViewChange;
  }
  private get lastExecutedSeq(): number {
    return this.chain.lastExecutedSeq;
  }
  private get lastCertifiedSeq(): number {
    return this.chain.lastCertifiedSeq;
  }
  private get stableSeq(): number {
    return this.chain.stableSeq;
  }

  /** What the current `step` asks of the driver: replaced at every step. */
  private ready: PbftReady = emptyReady();

  constructor(config: PbftConfig, crypto: PbftCrypto, restore?: PbftRestore) {
    validateConfig(config);
    this.config = config;
    this.crypto = crypto;
    this.n = config.replicas.length;
    this.f = faultTolerance(this.n);
    this.quorum = quorumSize(this.n);
    this.selfId = config.replicas[config.self]!.id;
    this.requests = new RequestTable(config, crypto);
    this.authenticator = new Authenticator(config, crypto);
    this.votes = new BlockVotes(this.quorum);
    this.chain = new ChainProgress(config.checkpointInterval);
    this.transfer = new StateTransfer(config.statusIntervalTicks);
    this.help = new RetransmissionLimiter(config.statusIntervalTicks);
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
    return this.requests.pendingCount;
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
        this.ready.rejected.push({ code: error.code, reason: error.message, retriable: error.retriable });
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
    this.transfer.expire(this.ticks);
    this.maybeFetch();
    if (this.viewChanging) {
      if (this.views.timerExpired(this.ticks)) {
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
      throw rejectForGood(ErrorCode.Oversize, `request of ${bytes.length} bytes exceeds requestBytesMax`);
    }
    const digestKey = this.requests.digestKey(bytes);
    if (this.requests.isPending(digestKey)) return;
    const clientSeqKey = this.requests.authenticate(bytes, digestKey);
    const committedAt = this.requests.committedAt(clientSeqKey);
    if (committedAt !== undefined) {
      this.ready.alreadyCommitted.push({ request: bytes, seq: committedAt });
      return;
    }
    this.requests.admit({ bytes, digestKey, clientSeqKey, arrivedTick: this.ticks });
    if (this.requestTimerStart === undefined) this.requestTimerStart = this.ticks;
    // A full batch goes out at once; a partial one waits for the tick that ends batchTicksMax.
    if (this.requests.unproposedCount >= this.config.batchRequestsMax) this.proposeBatches();
  }

  private onWireMessage(bytes: Uint8Array): void {
    const envelope = decodeEnvelope(bytes);
    const message = this.authenticator.authenticate(envelope);
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

  // ---- normal case (§4.2) ----

  private proposeBatches(): void {
    if (!this.isPrimary || this.viewChanging) return;
    while (this.nextProposalSeq <= this.stableSeq + this.config.watermarkWindow) {
      const requests = this.requests.takeBatch(this.ticks);
      if (requests === undefined) return;
      this.propose(this.nextProposalSeq, requests);
      this.nextProposalSeq += 1;
    }
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
    requireCurrentView(message.view, this.views);
    if (message.from !== primaryOf(message.view, this.n)) {
      // Not retriable, unlike a client sent to the wrong Raft leader: NOT_PRIMARY here means a
      // replica sent a message only the primary may send, a protocol violation by that sender.
      throw rejectForGood(ErrorCode.NotPrimary, `pre-prepare from ${message.from}, not the primary`);
    }
    requireInWindow(message.seq, this.stableSeq, this.config.watermarkWindow);
    checkProposal(message, {
      config: this.config,
      crypto: this.crypto,
      requests: this.requests,
      now: this.now,
      registry: this.registry,
      expectFresh: true,
    });
    const slot = this.log.slot(message.seq);
    if (slot.prePrepare !== undefined && slot.prePrepare.view === message.view) {
      if (sameBytes(slot.prePrepare.digest, message.digest)) {
        throw rejectForGood(ErrorCode.Replay, `pre-prepare ${message.view}/${message.seq} already accepted`);
      }
      // §4.2: a backup accepts at most one pre-prepare per view and sequence number.
      throw rejectForGood(
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

  /** Records a pre-prepare and, at a backup, prepares it (persisted before it is sent). */
  private acceptPrePrepare(seq: number, accepted: AcceptedPrePrepare): void {
    const slot = this.log.slot(seq);
    slot.prePrepare = accepted;
    this.persist(recordKey.prePrepare(seq), seq, encodeEnvelope(accepted.envelope));
    if (primaryOf(accepted.view, this.n) !== this.config.self) {
      const prepare = this.sign({ type: 'prepare', view: accepted.view, seq, digest: accepted.digest });
      slot.ownPrepare = prepare;
      this.persist(recordKey.prepare(seq), seq, encodeEnvelope(prepare));
      this.log.addPrepare(slot, accepted.view, accepted.digest, this.config.self, prepare);
      this.broadcast(prepare);
    }
    this.checkPrepared(seq);
  }

  private onPrepare(message: Prepare, envelope: Envelope): void {
    requireCurrentView(message.view, this.views);
    if (message.from === primaryOf(message.view, this.n)) {
      throw rejectForGood(ErrorCode.NotPrimary, 'the primary does not send prepares');
    }
    requireInWindow(message.seq, this.stableSeq, this.config.watermarkWindow);
    const slot = this.log.slot(message.seq);
    if (!this.log.addPrepare(slot, message.view, message.digest, message.from, envelope)) {
      throw rejectForGood(ErrorCode.Replay, 'prepare already counted');
    }
    this.checkPrepared(message.seq);
  }

  /** §4.2 prepared(m, v, n, i): the pre-prepare and 2f matching prepares from distinct backups. */
  private checkPrepared(seq: number): void {
    const slot = this.log.get(seq);
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
    this.persist(recordKey.prepared(seq), seq, encodePreparedRecord(certificate));
    const commit = this.sign({ type: 'commit', view: accepted.view, seq, digest: accepted.digest });
    slot.ownCommit = commit;
    this.persist(recordKey.commit(seq), seq, encodeEnvelope(commit));
    this.log.addCommit(slot, accepted.view, accepted.digest, this.config.self);
    this.broadcast(commit);
    this.checkCommitted(seq);
  }

  private onCommit(message: Commit): void {
    requireCurrentView(message.view, this.views);
    requireInWindow(message.seq, this.stableSeq, this.config.watermarkWindow);
    const slot = this.log.slot(message.seq);
    if (!this.log.addCommit(slot, message.view, message.digest, message.from)) {
      throw rejectForGood(ErrorCode.Replay, 'commit already counted');
    }
    this.checkCommitted(message.seq);
  }

  /** §4.2 committed-local: prepared and 2f+1 matching commits (possibly including its own). */
  private checkCommitted(seq: number): void {
    const slot = this.log.get(seq);
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
    this.ready.commit.push(...this.chain.deliverNext(this.log));
  }

  private onExecuted(seq: number, resultsRoot: Uint8Array): void {
    const batch = this.chain.takeDelivered(seq);
    const proposal = batch.proposal;
    const header = this.chain.nextHeader(this.config, {
      transactionsRoot: this.crypto.merkleRoot(proposal.requests),
      resultsRoot,
      proposal,
    });
    const hash = headerHash(this.crypto, header);
    if (batch.certified !== undefined && !sameBytes(hash, headerHash(this.crypto, batch.certified.header))) {
      throw new AssertionError(
        `block ${seq} executed here differs from the certified block: non-deterministic execution`,
      );
    }
    this.markExecutedRequests(seq, proposal);
    // The block vote is the one vote not persisted: it is a pure function of the committed proposal
    // (unique by §4.2's safety) and the ledger before it, both durable, so a restarted replica that
    // executes the block again signs the very same header and can never contradict itself.
    const vote = this.sign({ type: 'block-vote', header });
    this.chain.recordExecuted({ header, hash, proposal, ownVote: vote });
    this.broadcast(vote);
    if (batch.certified !== undefined) {
      this.recordCertified({ ...batch.certified, proposal });
    } else {
      this.tallyVote(this.config.self, header, vote.signature);
    }
  }

  private markExecutedRequests(seq: number, proposal: Proposal): void {
    this.requests.markExecuted(seq, proposal.requests);
    // §4.4: the timer restarts when a request executes and others wait, and stops when none wait.
    if (proposal.requests.length > 0 || this.requests.pendingCount === 0) {
      this.requestTimerStart = this.requests.pendingCount === 0 ? undefined : this.ticks;
    }
  }

  private onBlockVote(message: BlockVote, envelope: Envelope): void {
    const header = message.header;
    if (header.partitionId !== this.config.groupId || header.configEpoch !== this.config.configEpoch) {
      throw rejectForGood(ErrorCode.WrongGroup, 'block vote for another group');
    }
    if (header.height <= this.lastCertifiedSeq) return;
    if (header.height > this.stableSeq + 2 * this.config.watermarkWindow) {
      // Retriable: the vote fits once this replica's stable checkpoint has caught up.
      throw rejectForNow(ErrorCode.OutOfWindow, `block vote for ${header.height} is beyond the window`);
    }
    this.tallyVote(message.from, header, envelope.signature);
  }

  private tallyVote(from: number, header: PbftBlockHeader, signature: Uint8Array): void {
    const seq = header.height;
    const hash = headerHash(this.crypto, header);
    const tally = this.votes.add(from, header, hash, signature);
    if (tally === undefined) return;
    const own = this.chain.executed(seq);
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
    if (!this.chain.addCertified(block)) return;
    for (let next = this.chain.nextCertified(); next !== undefined; next = this.chain.nextCertified()) {
      this.ready.certified.push(next);
      if (next.header.height % this.config.checkpointInterval === 0) this.advanceStable(next);
    }
  }

  /** §4.3: a stable checkpoint discards the log up to it and moves the watermarks. */
  private advanceStable(block: CertifiedHeader): void {
    const seq = block.header.height;
    assert(seq <= this.lastCertifiedSeq, `stable checkpoint ${seq} is not certified here yet`);
    if (!this.chain.advanceStable(block)) return;
    this.log.discardUpTo(seq);
    this.votes.discardUpTo(seq);
    this.ready.persist.push({ op: 'truncate', belowSeq: seq + 1 });
    if (this.nextProposalSeq <= seq) this.nextProposalSeq = seq + 1;
    assert(this.stableSeq === seq && this.nextProposalSeq > seq, 'the window moved up to the checkpoint');
    this.proposeBatches();
  }

  // ---- view changes (§4.4) ----

  private startViewChange(newView: number): void {
    if (!this.views.begin(newView)) return;
    this.requestTimerStart = undefined;
    this.persistState();
    const prepared = this.log.preparedAbove(this.stableSeq);
    const envelope = this.sign({
      type: 'view-change',
      newView,
      stable: this.chain.stableCertificate ?? null,
      prepared,
    });
    this.views.setOwnViewChange(envelope);
    this.persist(recordKey.viewChange, 0, encodeEnvelope(envelope));
    this.broadcast(envelope);
    this.recordViewChange(this.config.self, decodeBody(envelope.body) as ViewChange, envelope);
  }

  private onViewChange(message: ViewChange, envelope: Envelope): void {
    if (message.newView < this.viewNumber || (message.newView === this.viewNumber && !this.viewChanging)) {
      // A peer still trying to reach a view we are already in: show it the new view.
      const newViewMessage = this.views.newViewMessage;
      if (!this.viewChanging && newViewMessage !== undefined && this.help.allow(message.from, this.ticks)) {
        this.sendTo(message.from, newViewMessage);
      }
      return;
    }
    this.authenticator.validateViewChange(message, envelope);
    this.recordViewChange(message.from, message, envelope);
  }

  private recordViewChange(from: number, message: ViewChange, envelope: Envelope): void {
    if (!this.views.record(from, { message, envelope })) return;
    // §4.5.2: f+1 replicas asking for higher views means at least one correct replica does: join the
    // smallest of those views rather than wait for our own timer.
    const higher = this.views.laterViewsAskedFor(this.config.self);
    if (higher.length >= this.f + 1) {
      this.startViewChange(Math.min(...higher));
      return;
    }
    if (!this.viewChanging || message.newView < this.viewNumber) return;
    // §4.5.2: the view-change timer only runs once 2f+1 replicas want this view or a later one, so
    // a lone replica does not race ahead through views.
    this.views.armTimerOnQuorum({
      ticks: this.ticks,
      quorum: this.quorum,
      timeoutTicks: this.config.viewChangeTimeoutTicks,
    });
    const collected = this.views.collectedFor(this.viewNumber);
    if (primaryOf(this.viewNumber, this.n) === this.config.self && collected.size >= this.quorum) {
      this.sendNewView();
    }
  }

  private sendNewView(): void {
    const sent = this.views.newViewMessage;
    if (sent !== undefined && newViewOf(sent) === this.viewNumber) return;
    const collected = [...this.views.collectedFor(this.viewNumber).entries()].sort(([a], [b]) => a - b);
    const chosen = collected.slice(0, this.quorum);
    const plan = computeNewViewPlan(
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
      throw rejectForGood(ErrorCode.WrongView, `new view ${message.view} is not ahead of ${this.viewNumber}`);
    }
    if (message.from !== primaryOf(message.view, this.n)) {
      throw rejectForGood(ErrorCode.NotPrimary, 'new view from a replica that is not its primary');
    }
    const changes = this.authenticator.validateNewViewChanges(message);
    // §4.4: backups recompute O from V and accept the new view only if it matches.
    const plan = computeNewViewPlan(changes, message.view);
    if (message.prePrepares.length !== plan.entries.length) {
      throw rejectForGood(ErrorCode.BadViewChange, 'new view has the wrong number of pre-prepares');
    }
    const expected = {
      view: message.view,
      primaryId: this.config.replicas[message.from]!.id,
      latestTimestamp: this.now + this.config.clockSkewMaxMs,
    };
    message.prePrepares.forEach((nested, index) => {
      const prePrepare = this.authenticator.authenticateNested(nested, 'pre-prepare') as PrePrepare;
      const entry = plan.entries[index]!;
      if (!newViewPrePrepareMatches(this.crypto, prePrepare, entry, expected)) {
        throw rejectForGood(
          ErrorCode.BadViewChange,
          `new view pre-prepare for ${entry.seq} does not match O`,
        );
      }
    });
    this.enterNewView(plan, message.prePrepares, envelope);
  }

  private enterNewView(plan: NewViewPlan, prePrepares: readonly Envelope[], newView: Envelope): void {
    assert(
      plan.view > this.viewNumber || (plan.view === this.viewNumber && this.viewChanging),
      `new view ${plan.view} is not ahead of view ${this.viewNumber}`,
    );
    assert(prePrepares.length === plan.entries.length, 'a new view carries one pre-prepare per entry of O');
    this.views.enter(plan.view, newView);
    this.persistState();
    this.persist(recordKey.newView, 0, encodeEnvelope(newView));
    // Pre-prepares of earlier views that O does not carry are void in the new view.
    for (const [seq, slot] of this.log.entries()) {
      if (seq > plan.maxSeq && slot.prePrepare !== undefined) delete slot.prePrepare;
    }
    this.requests.requeueForNewView(plan.entries.map((entry) => entry.proposal?.requests ?? []));
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
    this.checkLogHoldsO(plan);
    assert(this.nextProposalSeq > Math.max(plan.maxSeq, this.stableSeq), 'new proposals follow O');
    this.requestTimerStart = this.requests.pendingCount > 0 ? this.ticks : undefined;
    this.proposeBatches();
  }

  /** After entering a new view, the log's pre-prepares inside the window are exactly O's (§4.4). */
  private checkLogHoldsO(plan: NewViewPlan): void {
    const high = this.stableSeq + this.config.watermarkWindow;
    for (const [seq, slot] of this.log.entries()) {
      if (seq > plan.maxSeq) {
        assert(slot.prePrepare === undefined, `pre-prepare at ${seq} beyond O survived the view change`);
      } else if (seq > plan.minSeq && seq > this.stableSeq && seq <= high) {
        assert(slot.prePrepare?.view === plan.view, `pre-prepare at ${seq} is not O's`);
      }
    }
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
    const ownViewChange = this.views.ownMessage;
    if (this.viewChanging && ownViewChange !== undefined) this.broadcast(ownViewChange);
  }

  /** Helps a peer that is behind, at most once per status interval per peer. */
  private onStatus(status: Status): void {
    const previous = this.transfer.recordStatus(status);
    this.maybeFetch();
    // A peer that progressed since its last status needs nothing; one that did not may have lost messages.
    const stalled =
      previous !== undefined &&
      previous.lastExecuted === status.lastExecuted &&
      previous.lastCertified === status.lastCertified;
    if (!this.help.allow(status.from, this.ticks)) return;
    const resend = retransmissionFor(status, {
      stalled,
      view: this.viewNumber,
      inViewChange: this.viewChanging,
      newViewMessage: this.views.newViewMessage,
      ownViewChange: this.views.ownMessage,
      stableSeq: this.stableSeq,
      lastExecutedSeq: this.lastExecutedSeq,
      watermarkWindow: this.config.watermarkWindow,
      log: this.log,
      ownVote: (seq) => this.chain.executed(seq)?.ownVote,
    });
    for (const envelope of resend) this.sendTo(status.from, envelope);
  }

  /**
   * Asks one peer that claims certified blocks beyond ours for them, once we have been behind for a
   * status interval (votes still in flight are not worth a transfer); rotates if it does not answer.
   */
  private maybeFetch(): void {
    const fetch = this.transfer.nextFetch(this.ticks, this.lastCertifiedSeq);
    if (fetch === undefined) return;
    const { to, fromSeq } = fetch;
    this.sendTo(to, this.sign({ type: 'fetch-blocks', fromSeq, count: this.config.fetchBlocksMax }));
  }

  private onFetchBlocks(message: FetchBlocks): void {
    const serve = servedRange(message, this.lastCertifiedSeq, this.config.fetchBlocksMax);
    if (serve !== undefined) this.ready.serve.push(serve);
  }

  /**
   * State transfer: accepts certified blocks that continue our chain (each with 2f+1 valid signatures
   * and its transactions root, then executed like a committed batch), or certificates for blocks we
   * executed but whose votes we lost. Every block is checked before any is applied, so a reply with a
   * single bad block changes nothing.
   */
  private onBlocks(message: Blocks): void {
    const { certifyExecuted, transfer } = sortTransferredBlocks(message.blocks, {
      config: this.config,
      crypto: this.crypto,
      keysById: this.authenticator.keysById,
      quorum: this.quorum,
      lastCertifiedSeq: this.lastCertifiedSeq,
      lastExecutedSeq: this.lastExecutedSeq,
      deliveredSeq: this.chain.deliveredSeq,
      deliveredHash: this.deliveredChainHash(),
      transferredWaiting: this.chain.transferredWaiting,
      executed: (seq) => this.chain.executed(seq),
    });
    this.transfer.answered(message.from);
    for (const block of certifyExecuted) this.recordCertified(block);
    this.chain.addTransferred(transfer);
    this.deliverCommitted();
    this.maybeFetch();
  }

  /** Hash of the last delivered block, when known before its execution (it came certified). */
  private deliveredChainHash(): Uint8Array | undefined {
    if (this.chain.deliveredSeq === this.lastExecutedSeq) return this.chain.lastExecutedHash;
    const certified = this.chain.deliveredCertified();
    return certified === undefined ? undefined : headerHash(this.crypto, certified.header);
  }

  /** Signs a state-transfer reply for the driver, which reads the blocks from its ledger. */
  encodeBlocks(blocks: readonly TransferredBlock[]): Uint8Array {
    return encodeEnvelope(this.sign({ type: 'blocks', blocks: [...blocks] }));
  }

  // ---- helpers ----

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
    this.chain.startFrom({ stable: base, head: base, headHash: headerHash(this.crypto, base.header) });
    this.nextProposalSeq = Math.max(this.nextProposalSeq, this.stableSeq + 1, this.lastExecutedSeq + 1);
  }

  /**
   * Rebuilds the durable part of the state: the view, and for every sequence number above the stable
   * checkpoint the accepted pre-prepare, own prepare, prepared certificate and own commit, so that a
   * restarted replica never contradicts a vote it sent and still reports what it prepared (§4.4).
   */
  private restore(restore: PbftRestore): void {
    const { stable, head } = restore;
    this.chain.startFrom({
      ...(stable === undefined ? {} : { stable }),
      ...(head === undefined ? {} : { head, headHash: headerHash(this.crypto, head.header) }),
    });
    this.nextProposalSeq = Math.max(this.stableSeq, this.lastExecutedSeq) + 1;
    this.log.restore(restore.records, this.stableSeq, this.config.self);
    this.views.restore(readViewRecords(restore.records));
    for (const [seq, slot] of this.log.entries()) {
      // Never propose a second batch at a sequence number already pre-prepared in this view.
      if (slot.prePrepare !== undefined && slot.prePrepare.view === this.viewNumber) {
        this.nextProposalSeq = Math.max(this.nextProposalSeq, seq + 1);
      }
    }
    const restoredViewChange = this.views.ownMessage;
    if (this.viewChanging && restoredViewChange !== undefined) {
      this.recordViewChange(
        this.config.self,
        decodeBody(restoredViewChange.body) as ViewChange,
        restoredViewChange,
      );
    }
  }
}
