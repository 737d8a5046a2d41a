/**
 * The Raft core (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", extended
 * version; Ongaro's thesis for pre-vote, check-quorum, read index and membership changes) as a pure
 * deterministic state machine in the style of etcd-io/raft. See `types.ts` for the step/Ready contract.
 *
 * Its state is grouped in named parts, each with its invariants written down and asserted at its
 * transitions: the log and snapshot (`raft-log.ts`), each peer's replication progress
 * (`progress.ts`), linearizable reads (`read-index.ts`), a leadership transfer
 * (`leadership-transfer.ts`) and membership changes (`membership-change.ts`). This file holds
 * roles, elections, ticks and message handling, and checks after every step that the parts agree
 * with the role (`checkInvariants`).
 */
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import type { ErrorDetails } from '../../errors.js';
import { raftMessageSchema, decodeRaftMessage } from './messages.js';
import { SeededRandom } from '../seeded-random.js';
import { badConfig, validateConfig } from './config.js';
import type { RaftSettings } from './config.js';
import { LeadershipTransfer } from './leadership-transfer.js';
import { changedMembership, sortedMembership } from './membership-change.js';
import {
  acknowledged,
  becomeProbe,
  becomeReplicate,
  becomeSnapshot,
  newProgress,
  sentAppend,
} from './progress.js';
import type { Progress } from './progress.js';
import { RaftLog } from './raft-log.js';
import { ReadIndex } from './read-index.js';
import type {
  HardState,
  Membership,
  MembershipChange,
  RaftConfig,
  RaftEntry,
  RaftInput,
  RaftMessage,
  RaftPersistOp,
  RaftReady,
  RaftRestore,
  RaftRole,
  RaftSnapshot,
  RaftStatus,
  Rejection,
} from './types.js';

export type { RaftStatus };

type MessageOf<K extends RaftMessage['type']> = Extract<RaftMessage, { type: K }>;
type Outgoing = RaftMessage extends infer M
  ? M extends RaftMessage
    ? Omit<M, 'from' | 'term'>
    : never
  : never;

/** A Ready under construction. */
interface ReadyBuilder {
  persist: RaftPersistOp[];
  send: { to: string; message: RaftMessage }[];
  installSnapshot?: RaftSnapshot;
  committed: RaftEntry[];
  readStates: { id: string; index: number }[];
  rejected: Rejection[];
}

function emptyReady(): ReadyBuilder {
  return { persist: [], send: [], committed: [], readStates: [], rejected: [] };
}

export class RaftNode {
  private readonly settings: RaftSettings;
  private readonly random: SeededRandom;

  private term = 0;
  private votedFor: string | null = null;
  private commit = 0;
  private persistedHardState: HardState;

  private role: RaftRole = 'follower';
  private leader: string | null = null;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTicks = 0;

  private readonly log: RaftLog;
  private membership: Membership;
  /** Highest index handed to the driver in `committed` (or covered by an installed snapshot). */
  private emitted = 0;
  private applied = 0;

  private votes = new Map<string, boolean>();
  /** Kept by the leader only, for every other member. */
  private progress = new Map<string, Progress>();
  /** Index of the latest configuration entry the leader may not yet have committed. */
  private pendingConfigIndex = 0;
  private readonly reads = new ReadIndex();
  private readonly transfer = new LeadershipTransfer();

  private ready: ReadyBuilder = emptyReady();

  /** Throws LedgerbusError(BadConfig) naming the field if `config` or `restore` is invalid. */
  constructor(config: RaftConfig, restore?: RaftRestore) {
    this.settings = validateConfig(config);
    this.random = new SeededRandom(config.seed);
    const initial = sortedMembership(config.voters, config.learners ?? []);
    let snapshot: RaftSnapshot = { index: 0, term: 0, membership: initial, data: new Uint8Array(0) };
    if (restore?.snapshot !== undefined) snapshot = restore.snapshot;
    let expected = snapshot.index + 1;
    for (const entry of restore?.entries ?? []) {
      if (entry.index !== expected) throw badConfig('restore.entries', `expected index ${expected}`);
      expected++;
    }
    this.log = new RaftLog(snapshot, restore?.entries ?? []);
    if (restore !== undefined) {
      this.term = restore.hardState.term;
      this.votedFor = restore.hardState.votedFor;
      this.commit = Math.max(restore.hardState.commit, snapshot.index);
      if (this.commit > this.lastIndex())
        throw badConfig('restore.hardState.commit', 'beyond the last entry');
    }
    this.emitted = snapshot.index;
    this.applied = snapshot.index;
    this.membership = this.log.membershipAt(this.lastIndex());
    this.persistedHardState = this.hardState();
    this.resetRandomizedElectionTicks();
  }

  /**
   * Feeds one input and returns what the driver must do, in the order `RaftReady` documents. Bad
   * input (malformed bytes, a proposal to a follower, an invalid membership change) never throws:
   * it comes back in `rejected` and leaves the state unchanged. A broken invariant throws.
   */
  step(input: RaftInput): RaftReady {
    this.ready = emptyReady();
    try {
      this.dispatch(input);
    } catch (error) {
      if (!(error instanceof LedgerbusError)) throw error;
      this.reject(error.code, error.message, error.retriable, error.details);
    }
    return this.finishReady();
  }

  status(): RaftStatus {
    return {
      id: this.settings.id,
      role: this.role,
      term: this.term,
      votedFor: this.votedFor,
      leader: this.leader,
      commit: this.commit,
      applied: this.applied,
      firstIndex: this.log.snapshot.index + 1,
      lastIndex: this.lastIndex(),
      snapshotIndex: this.log.snapshot.index,
      snapshotTerm: this.log.snapshot.term,
      membership: this.membership,
    };
  }

  /** The entries held after the snapshot (a copy). */
  entries(): RaftEntry[] {
    return [...this.log.held];
  }

  /** Term of the entry at `index`, or undefined if it is compacted or beyond the log. */
  termAt(index: number): number | undefined {
    return this.log.termAt(index);
  }

  /**
   * Everything that determines future behaviour, as a plain value: two nodes with equal
   * `debugState()` produce identical Readys for identical inputs.
   */
  debugState(): unknown {
    const reads = this.reads.debug();
    return {
      status: this.status(),
      log: this.log.held,
      snapshot: this.log.snapshot,
      emitted: this.emitted,
      electionElapsed: this.electionElapsed,
      heartbeatElapsed: this.heartbeatElapsed,
      randomizedElectionTicks: this.randomizedElectionTicks,
      random: this.random.state(),
      votes: [...this.votes],
      progress: [...this.progress],
      pendingConfigIndex: this.pendingConfigIndex,
      readRound: reads.readRound,
      pendingReads: reads.pendingReads,
      readsAwaitingCommit: reads.readsAwaitingCommit,
      transferee: this.transfer.target,
      transferElapsed: this.transfer.elapsed,
      persistedHardState: this.persistedHardState,
    };
  }

  // ---- input dispatch -------------------------------------------------------------------------

  private dispatch(input: RaftInput): void {
    switch (input.kind) {
      case 'tick':
        return this.tick();
      case 'message':
        return this.handleMessage(raftMessageSchema.parse(input.message, 'message'));
      case 'bytes':
        return this.handleMessage(decodeRaftMessage(input.bytes));
      case 'propose':
        return this.propose(input.data);
      case 'readIndex':
        return this.readIndex(input.id);
      case 'applied':
        return this.markApplied(input.index);
      case 'snapshot':
        return this.compact(input.index, input.data);
      case 'changeMembership':
        return this.changeMembership(input.change);
      case 'transferLeadership':
        return this.transferLeadership(input.to);
      default:
        throw new LedgerbusError(ErrorCode.SchemaMismatch, 'input: unknown kind');
    }
  }

  private reject(code: ErrorCode, reason: string, retriable: boolean, details?: ErrorDetails): void {
    this.ready.rejected.push({ code, reason, retriable, ...(details === undefined ? {} : { details }) });
  }

  private finishReady(): RaftReady {
    const hardState = this.hardState();
    const last = this.persistedHardState;
    if (
      hardState.term !== last.term ||
      hardState.votedFor !== last.votedFor ||
      hardState.commit !== last.commit
    ) {
      this.ready.persist.push({ op: 'hardState', hardState });
      this.persistedHardState = hardState;
    }
    for (let index = this.emitted + 1; index <= this.commit; index++) {
      this.ready.committed.push(this.log.entryAt(index));
    }
    this.emitted = Math.max(this.emitted, this.commit);
    this.checkInvariants();
    const ready = this.ready;
    this.ready = emptyReady();
    return ready;
  }

  /**
   * What must hold between steps, whatever the input: the parts agree with the role, and the
   * indexes are ordered snapshot ≤ applied ≤ emitted, commit ≤ last index.
   */
  private checkInvariants(): void {
    const snapshotIndex = this.log.snapshot.index;
    assert(snapshotIndex <= this.applied && this.applied <= this.emitted, 'snapshot ≤ applied ≤ emitted');
    assert(this.commit <= this.lastIndex(), 'commit ≤ last index');
    if (this.role !== 'leader') {
      assert(this.reads.size === 0, 'only a leader holds reads');
      assert(this.transfer.target === null, 'only a leader transfers leadership');
      assert(this.progress.size === 0, 'only a leader tracks progress');
    }
  }

  // ---- log helpers ------------------------------------------------------------------------------

  private hardState(): HardState {
    return { term: this.term, votedFor: this.votedFor, commit: this.commit };
  }

  private lastIndex(): number {
    return this.log.lastIndex();
  }

  private appendEntries(entries: readonly RaftEntry[]): void {
    if (entries.length === 0) return;
    const hasConfig = this.log.append(entries);
    this.ready.persist.push({ op: 'append', entries: [...entries] });
    if (hasConfig) this.onMembershipChanged();
  }

  private truncateFrom(index: number): void {
    assert(index > this.commit, `never truncate committed entry ${index} (commit ${this.commit})`);
    const hadConfig = this.log.truncateFrom(index);
    this.ready.persist.push({ op: 'truncate', fromIndex: index });
    if (hadConfig) this.onMembershipChanged();
  }

  private onMembershipChanged(): void {
    this.membership = this.log.membershipAt(this.lastIndex());
    if (this.role !== 'leader') return;
    const members = new Set([...this.membership.voters, ...this.membership.learners]);
    for (const id of members) {
      if (id !== this.settings.id && !this.progress.has(id))
        this.progress.set(id, newProgress(this.lastIndex() + 1));
    }
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
  }

  /** Raft §5.4.1: a candidate's log is at least as up-to-date as ours. */
  private isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.log.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  private isVoter(id: string = this.settings.id): boolean {
    return this.membership.voters.includes(id);
  }

  private quorum(): number {
    return Math.floor(this.membership.voters.length / 2) + 1;
  }

  private commitTo(index: number): void {
    if (index > this.commit) {
      assert(index <= this.lastIndex(), 'commit within the log');
      this.commit = index;
    }
  }

  // ---- roles ------------------------------------------------------------------------------------

  private resetRandomizedElectionTicks(): void {
    const base = this.settings.electionTicks;
    this.randomizedElectionTicks = base + this.random.int(0, base - 1);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.votedFor = null;
    }
    this.leader = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTicks();
    this.votes.clear();
    this.progress.clear();
    this.transfer.clear();
    // Reads not yet confirmed may no longer be served: leadership may have passed to another.
    for (const id of this.reads.abort()) {
      this.reject(ErrorCode.NotLeader, `read ${id} aborted: leadership lost; retry at the leader`, true);
    }
  }

  private becomeFollower(term: number, leader: string | null): void {
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    // Pre-vote changes neither term nor vote (thesis §9.6), so a server that cannot win disturbs nobody.
    this.reset(this.term);
    this.role = 'preCandidate';
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.votedFor = this.settings.id;
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.leader = this.settings.id;
    for (const id of [...this.membership.voters, ...this.membership.learners]) {
      if (id !== this.settings.id) this.progress.set(id, newProgress(this.lastIndex() + 1));
    }
    // A configuration entry from an earlier term may be uncommitted; allow no change until the
    // entry below (and so everything before it) commits.
    this.pendingConfigIndex = this.lastIndex() + 1;
    // Raft §5.4.2 / §8: an empty entry of the new term lets earlier entries commit.
    this.appendEntries([
      { index: this.lastIndex() + 1, term: this.term, type: 'normal', data: new Uint8Array(0) },
    ]);
    this.maybeCommit();
    this.broadcastAppend();
  }

  private send(message: Outgoing): void {
    this.ready.send.push({
      to: message.to,
      message: { ...message, from: this.settings.id, term: this.term } as RaftMessage,
    });
  }

  /** Starts an election: a pre-vote round first if enabled (thesis §9.6), else a real one (Raft §5.2). */
  private campaign(preVote: boolean, transfer = false): void {
    if (preVote) this.becomePreCandidate();
    else this.becomeCandidate();
    this.votes.set(this.settings.id, true);
    if (this.tallyVotes() === 'won') return this.winElection(preVote);
    const term = preVote ? this.term + 1 : this.term;
    for (const to of this.membership.voters) {
      if (to === this.settings.id) continue;
      const ask = {
        term,
        from: this.settings.id,
        to,
        lastIndex: this.lastIndex(),
        lastTerm: this.log.lastTerm(),
      };
      const message: RaftMessage = preVote
        ? { type: 'preVote', ...ask }
        : { type: 'vote', ...ask, ...(transfer ? { transfer: true } : {}) };
      this.ready.send.push({ to, message });
    }
  }

  private winElection(preVote: boolean): void {
    if (preVote) this.campaign(false);
    else this.becomeLeader();
  }

  private tallyVotes(): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const voter of this.membership.voters) {
      const vote = this.votes.get(voter);
      if (vote === true) granted++;
      if (vote === false) rejected++;
    }
    if (granted >= this.quorum()) return 'won';
    if (rejected >= this.quorum()) return 'lost';
    return 'pending';
  }

  // ---- ticks ------------------------------------------------------------------------------------

  private tick(): void {
    if (this.role === 'leader') return this.tickLeader();
    this.electionElapsed++;
    // Learners and removed servers never campaign.
    if (this.electionElapsed >= this.randomizedElectionTicks && this.isVoter()) {
      this.campaign(this.settings.preVote);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    // The target did not take over in time: keep leading.
    this.transfer.tick(this.settings.electionTicks);
    if (this.electionElapsed >= this.settings.electionTicks) {
      this.electionElapsed = 0;
      if (this.settings.checkQuorum) {
        // Check-quorum (thesis §6.2): without recent contact with a quorum, stop serving as leader.
        let active = this.isVoter() ? 1 : 0;
        for (const [id, pr] of this.progress) if (pr.recentActive && this.isVoter(id)) active++;
        for (const pr of this.progress.values()) pr.recentActive = false;
        if (active < this.quorum()) return this.becomeFollower(this.term, null);
      }
    }
    if (this.heartbeatElapsed >= this.settings.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private broadcastHeartbeat(): void {
    for (const [to, pr] of this.progress) {
      // Never tell a follower to commit beyond what it is known to hold.
      this.send({
        type: 'heartbeat',
        to,
        commit: Math.min(pr.match, this.commit),
        readRound: this.reads.round,
      });
    }
  }

  // ---- client requests --------------------------------------------------------------------------

  /** NOT_LEADER, retriable, with the leader this server knows of as a typed field. */
  private notLeader(what: string): LedgerbusError {
    const leader = this.leader === null ? 'unknown' : this.leader;
    return new LedgerbusError(ErrorCode.NotLeader, `${what}: not the leader (leader: ${leader})`, {
      retriable: true,
      ...(this.leader === null ? {} : { details: { leader: this.leader } }),
    });
  }

  private propose(data: Uint8Array): void {
    if (!(data instanceof Uint8Array))
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'propose.data: not bytes');
    if (this.role !== 'leader') throw this.notLeader('propose');
    if (data.length > this.settings.entryBytesMax) {
      throw new LedgerbusError(ErrorCode.Oversize, `proposal of ${data.length} bytes exceeds entryBytesMax`);
    }
    this.appendAsLeader({ type: 'normal', data });
  }

  private appendAsLeader(entry: { type: 'normal' | 'config'; data: Uint8Array; config?: Membership }): void {
    if (this.transfer.target !== null) {
      throw new LedgerbusError(ErrorCode.Overloaded, 'leadership transfer in progress; retry later', {
        retriable: true,
      });
    }
    if (this.lastIndex() - this.commit >= this.settings.uncommittedEntriesMax) {
      throw new LedgerbusError(ErrorCode.Overloaded, 'too many uncommitted entries; retry later', {
        retriable: true,
      });
    }
    const full: RaftEntry = { index: this.lastIndex() + 1, term: this.term, ...entry };
    this.appendEntries([full]);
    this.maybeCommit();
    this.broadcastAppend();
  }

  private changeMembership(change: MembershipChange): void {
    if (this.role !== 'leader') throw this.notLeader('changeMembership');
    if (typeof change?.id !== 'string' || change.id.length === 0) {
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'change.id: must be a non-empty string');
    }
    if (this.pendingConfigIndex > this.commit) {
      throw new LedgerbusError(ErrorCode.BadConfig, 'a membership change is still uncommitted; retry later', {
        retriable: true,
      });
    }
    const config = changedMembership(this.membership, change);
    this.appendAsLeader({ type: 'config', data: new Uint8Array(0), config });
    this.pendingConfigIndex = this.lastIndex();
  }

  private transferLeadership(to: string): void {
    if (this.role !== 'leader') throw this.notLeader('transferLeadership');
    if (to === this.settings.id || !this.isVoter(to) || !this.progress.has(to)) {
      throw badConfig('transferLeadership.to', `${String(to)} is not another voter`);
    }
    this.transfer.start(to);
    const pr = this.progress.get(to)!;
    if (pr.match === this.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(to, pr);
  }

  private readIndex(id: string): void {
    if (typeof id !== 'string')
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'readIndex.id: not a string');
    if (this.role !== 'leader') throw this.notLeader(`read ${id}`);
    if (this.reads.size >= this.settings.pendingReadsMax) {
      throw new LedgerbusError(ErrorCode.Overloaded, 'too many pending reads; retry later', {
        retriable: true,
      });
    }
    if (this.log.termAt(this.commit) !== this.term) {
      this.reads.awaitCommit(id);
      return;
    }
    this.startReads([id]);
  }

  /** Thesis §6.4: record the commit index, then confirm leadership with a heartbeat round. */
  private startReads(ids: readonly string[]): void {
    if (ids.length === 0) return;
    if (this.isVoter() && this.quorum() === 1) {
      for (const id of ids) this.ready.readStates.push({ id, index: this.commit });
      return;
    }
    this.reads.start(ids, this.commit, this.isVoter() ? this.settings.id : undefined);
    this.broadcastHeartbeat();
  }

  private markApplied(index: number): void {
    if (!Number.isSafeInteger(index) || index < this.applied || index > this.emitted) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `applied.index: ${index} is outside [${this.applied}, ${this.emitted}] (applied, handed out)`,
      );
    }
    this.applied = index;
  }

  /** The driver snapshotted its state machine at `index`: drop the entries it covers (Raft §7). */
  private compact(index: number, data: Uint8Array): void {
    const held = this.log.snapshot.index;
    if (!Number.isSafeInteger(index) || index <= held || index > this.applied) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `snapshot.index: ${index} must be in (${held}, ${this.applied}] (snapshot, applied)`,
      );
    }
    if (!(data instanceof Uint8Array))
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'snapshot.data: not bytes');
    const snapshot: RaftSnapshot = {
      index,
      term: this.log.termAt(index)!,
      membership: this.log.membershipAt(index),
      data,
    };
    this.log.compact(snapshot);
    this.ready.persist.push({ op: 'snapshot', snapshot });
  }

  // ---- messages ---------------------------------------------------------------------------------

  private handleMessage(m: RaftMessage): void {
    if (m.to !== this.settings.id) {
      throw new LedgerbusError(ErrorCode.SchemaMismatch, `message.to: ${m.to} is not this server`);
    }
    if (m.from === this.settings.id) {
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'message.from: a message from ourselves');
    }
    if (m.term > this.term) {
      if (m.type === 'preVote' || m.type === 'vote') {
        // Thesis §4.2.3 / §6.2: while we hear from a leader, ignore requests to replace it.
        const inLease =
          !(m.type === 'vote' && m.transfer === true) &&
          this.settings.checkQuorum &&
          this.leader !== null &&
          this.electionElapsed < this.settings.electionTicks;
        if (inLease) return;
      }
      if (m.type === 'preVote' || (m.type === 'preVoteResponse' && m.granted)) {
        // A pre-vote does not change anyone's term (thesis §9.6).
      } else {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      if (
        (this.settings.checkQuorum || this.settings.preVote) &&
        (m.type === 'append' || m.type === 'heartbeat')
      ) {
        // A stale leader cut off by a partition learns the new term from this answer and steps down.
        this.answerAppend(m.from, false, 0);
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResponse', to: m.from, granted: false });
      }
      return;
    }

    switch (m.type) {
      case 'preVote':
      case 'vote':
        return this.handleVoteRequest(m);
      case 'preVoteResponse':
        if (
          this.role === 'preCandidate' &&
          (m.term === this.term + 1 || (!m.granted && m.term === this.term))
        ) {
          this.handleVoteResponse(m.from, m.granted, true);
        }
        return;
      case 'voteResponse':
        if (this.role === 'candidate' && m.term === this.term)
          this.handleVoteResponse(m.from, m.granted, false);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        this.followLeader(m.from);
        if (m.type === 'append') return this.handleAppend(m);
        if (m.type === 'heartbeat') return this.handleHeartbeat(m);
        return this.handleSnapshot(m);
      case 'appendResponse':
        if (this.role === 'leader') this.handleAppendResponse(m);
        return;
      case 'heartbeatResponse':
        if (this.role === 'leader') this.handleHeartbeatResponse(m);
        return;
      case 'timeoutNow':
        // Thesis §3.10: the leader says our log is current; campaign at once, skipping pre-vote.
        if (this.role !== 'leader' && this.isVoter()) this.campaign(false, true);
        return;
    }
  }

  private followLeader(leader: string): void {
    if (this.role === 'leader') {
      // Election safety (Raft §5.2) makes this impossible among correct servers. NOT_PRIMARY, not
      // NOT_LEADER: the sender did what only the leader of the term may do.
      throw new LedgerbusError(
        ErrorCode.NotPrimary,
        `message from ${leader}, a second leader in term ${this.term}`,
        { retriable: false },
      );
    }
    // Raft §5.2: a candidate that hears from the leader of its term returns to follower.
    if (this.role !== 'follower') this.becomeFollower(this.term, leader);
    this.leader = leader;
    this.electionElapsed = 0;
  }

  private handleVoteRequest(m: MessageOf<'preVote'> | MessageOf<'vote'>): void {
    const canVote =
      this.votedFor === m.from ||
      (this.votedFor === null && this.leader === null) ||
      (m.type === 'preVote' && m.term > this.term);
    const type = m.type === 'preVote' ? 'preVoteResponse' : 'voteResponse';
    if (canVote && this.isUpToDate(m.lastIndex, m.lastTerm)) {
      // A granted pre-vote answers in the term asked about, so the pre-candidate can count it.
      this.ready.send.push({
        to: m.from,
        message: { type, term: m.term, from: this.settings.id, to: m.from, granted: true },
      });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.votedFor = m.from;
      }
    } else {
      this.send({ type, to: m.from, granted: false });
    }
  }

  private handleVoteResponse(from: string, granted: boolean, preVote: boolean): void {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const result = this.tallyVotes();
    if (result === 'won') this.winElection(preVote);
    else if (result === 'lost') this.becomeFollower(this.term, null);
  }

  private handleAppend(m: MessageOf<'append'>): void {
    // Already committed here: tell the leader how far we are.
    if (m.prevIndex < this.commit) return this.answerAppend(m.from, true, this.commit);
    const prevTerm = this.log.termAt(m.prevIndex);
    if (prevTerm !== m.prevTerm) {
      const hint = this.log.conflictHint(m.prevIndex, this.commit);
      return this.answerAppend(m.from, false, 0, { rejectedIndex: m.prevIndex, ...hint });
    }
    let fresh: RaftEntry[] = [];
    for (let i = 0; i < m.entries.length; i++) {
      const entry = m.entries[i]!;
      const existing = this.log.termAt(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) this.truncateFrom(entry.index);
      fresh = m.entries.slice(i);
      break;
    }
    this.appendEntries(fresh);
    const lastNew = m.prevIndex + m.entries.length;
    this.commitTo(Math.min(m.commit, lastNew));
    this.answerAppend(m.from, true, lastNew);
  }

  /**
   * An appendResponse (also the answer to a snapshot): success up to `matchIndex`, or a refusal with
   * where to retry (Raft §5.3); a refusal without a hint is a stale-term notice.
   */
  private answerAppend(
    to: string,
    success: boolean,
    matchIndex: number,
    hint = { rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0 },
  ): void {
    this.send({ type: 'appendResponse', to, success, matchIndex, ...hint });
  }

  private handleHeartbeat(m: MessageOf<'heartbeat'>): void {
    this.commitTo(Math.min(m.commit, this.lastIndex()));
    this.send({ type: 'heartbeatResponse', to: m.from, readRound: m.readRound });
  }

  /** Raft §7: install a snapshot from the leader unless our log already covers it. */
  private handleSnapshot(m: MessageOf<'snapshot'>): void {
    const snapshot = m.snapshot;
    const ack = (matchIndex: number): void => this.answerAppend(m.from, true, matchIndex);
    if (snapshot.index <= this.commit) return ack(this.commit);
    if (this.log.termAt(snapshot.index) === snapshot.term) {
      // Our log holds the snapshot's last entry, so the prefix matches: keep what follows it.
      this.commitTo(snapshot.index);
      return ack(this.commit);
    }
    this.log.install(snapshot);
    this.commit = snapshot.index;
    this.emitted = snapshot.index;
    this.applied = snapshot.index;
    this.membership = snapshot.membership;
    this.ready.persist.push({ op: 'snapshot', snapshot }, { op: 'truncate', fromIndex: snapshot.index + 1 });
    this.ready.installSnapshot = snapshot;
    ack(snapshot.index);
  }

  private handleAppendResponse(m: MessageOf<'appendResponse'>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (!m.success) {
      if (m.rejectedIndex === 0 && m.conflictIndex === 0) return; // a stale-term notice, handled above
      if (pr.state === 'snapshot' || m.rejectedIndex <= pr.match) return; // stale
      if (pr.state === 'probe' && m.rejectedIndex !== pr.next - 1) return; // answers an older probe
      let next = m.conflictIndex;
      if (m.conflictTerm > 0) {
        const last = this.log.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
        if (last !== undefined) next = last + 1;
      }
      becomeProbe(pr, Math.max(pr.match + 1, Math.min(next, m.rejectedIndex)));
      this.sendAppend(m.from, pr);
      return;
    }
    const advanced = m.matchIndex > pr.match;
    if (advanced) pr.match = m.matchIndex;
    pr.next = Math.max(pr.next, pr.match + 1);
    if (pr.state === 'probe' || (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot)) {
      becomeReplicate(pr);
    }
    // Every append up to the acknowledged index has been answered (or overtaken).
    acknowledged(pr);
    if (advanced && this.maybeCommit()) {
      this.broadcastAppend();
    } else if (this.role === 'leader' && pr.next <= this.lastIndex()) {
      this.sendAppend(m.from, pr);
    }
    if (this.role === 'leader' && this.transfer.target === m.from && pr.match === this.lastIndex()) {
      this.send({ type: 'timeoutNow', to: m.from });
    }
  }

  private handleHeartbeatResponse(m: MessageOf<'heartbeatResponse'>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (pr.match < this.lastIndex()) {
      // Retransmit what may have been lost: restart probing from what the peer is known to hold.
      becomeProbe(pr, pr.state === 'probe' ? pr.next : pr.match + 1);
      this.sendAppend(m.from, pr);
    }
    if (!this.isVoter(m.from)) return;
    // A confirmed round confirms every earlier one too: leadership held at a later instant.
    const confirmed = this.reads.acknowledge(m.from, m.readRound, (id) => this.isVoter(id), this.quorum());
    this.ready.readStates.push(...confirmed);
  }

  // ---- replication ------------------------------------------------------------------------------

  private broadcastAppend(): void {
    for (const [to, pr] of this.progress) this.sendAppend(to, pr);
  }

  private sendAppend(to: string, pr: Progress): void {
    if (pr.state === 'snapshot' || (pr.state === 'probe' && pr.paused)) return;
    // Flow control (etcd's Inflights): a slow follower gets at most maxInflightMessages unanswered appends.
    if (pr.state === 'replicate' && pr.inflight.length >= this.settings.maxInflightMessages) return;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.termAt(prevIndex);
    if (prevTerm === undefined) {
      // The entries the peer needs are compacted away (Raft §7).
      const snapshot = this.log.snapshot;
      assert(prevIndex < snapshot.index, 'next is within the log');
      becomeSnapshot(pr, snapshot.index);
      this.send({ type: 'snapshot', to, snapshot });
      return;
    }
    const last = Math.min(this.lastIndex(), prevIndex + this.settings.appendEntriesMax);
    const entries = this.log.between(pr.next, last);
    this.send({ type: 'append', to, prevIndex, prevTerm, entries, commit: this.commit });
    sentAppend(pr, last);
  }

  /**
   * Advances the commit index to the highest index a quorum of voters holds, but only if that
   * entry is from the current term (Raft §5.4.2); earlier entries then commit with it.
   */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    if (this.isVoter()) matches.push(this.lastIndex());
    for (const [id, pr] of this.progress) if (this.isVoter(id)) matches.push(pr.match);
    if (matches.length < this.quorum()) return false;
    matches.sort((a, b) => b - a);
    const candidate = matches[this.quorum() - 1]!;
    if (candidate <= this.commit || this.log.termAt(candidate) !== this.term) return false;
    this.commitTo(candidate);
    this.startReads(this.reads.takeAwaitingCommit());
    // Thesis §4.2.2: a leader that removed itself steps down once the change commits.
    if (!this.isVoter() && this.pendingConfigIndex <= this.commit) {
      this.broadcastAppend();
      this.becomeFollower(this.term, null);
      return false;
    }
    return true;
  }
}
