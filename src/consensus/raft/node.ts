/**
 * The Raft core (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", extended
 * version; Ongaro's thesis for pre-vote, check-quorum, read index and membership changes) as a pure
 * deterministic state machine in the style of etcd-io/raft. See `types.ts` for the step/Ready contract.
 */
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { raftMessageSchema, decodeRaftMessage } from './messages.js';
import { SeededRandom } from '../seeded-random.js';
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
  Rejection,
} from './types.js';

type MessageOf<K extends RaftMessage['type']> = Extract<RaftMessage, { type: K }>;
type Outgoing = RaftMessage extends infer M
  ? M extends RaftMessage
    ? Omit<M, 'from' | 'term'>
    : never
  : never;

/** Replication state of one peer, kept by the leader (etcd's Progress). */
interface Progress {
  match: number;
  next: number;
  /** probe: one append in flight at a time; replicate: stream optimistically; snapshot: wait. */
  state: 'probe' | 'replicate' | 'snapshot';
  paused: boolean;
  /**
   * replicate: the last index of each append still unanswered, oldest first; at most
   * maxInflightMessages of them (etcd's Inflights). Empty in the other states.
   */
  inflight: number[];
  pendingSnapshot: number;
  /** Heard from since the last check-quorum round. */
  recentActive: boolean;
}

interface PendingRead {
  readonly id: string;
  readonly index: number;
  readonly round: number;
  readonly acks: Set<string>;
}

interface Settings {
  readonly id: string;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendEntriesMax: number;
  readonly maxInflightMessages: number;
  readonly entryBytesMax: number;
  readonly uncommittedEntriesMax: number;
  readonly pendingReadsMax: number;
}

function badConfig(field: string, reason: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadConfig, `raft config ${field}: ${reason}`);
}

function validateConfig(config: RaftConfig): Settings {
  const positive = (field: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!Number.isSafeInteger(v) || v < 1) throw badConfig(field, `must be a positive integer, got ${v}`);
    return v;
  };
  if (typeof config.id !== 'string' || config.id.length === 0) throw badConfig('id', 'must be non-empty');
  const members = [...config.voters, ...(config.learners ?? [])];
  if (new Set(members).size !== members.length) throw badConfig('voters', 'a server is listed twice');
  if (!Number.isSafeInteger(config.seed)) throw badConfig('seed', 'must be an integer');
  const electionTicks = positive('electionTicks', config.electionTicks, 10);
  const heartbeatTicks = positive('heartbeatTicks', config.heartbeatTicks, 1);
  if (heartbeatTicks >= electionTicks) throw badConfig('heartbeatTicks', 'must be less than electionTicks');
  return {
    id: config.id,
    electionTicks,
    heartbeatTicks,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    appendEntriesMax: positive('appendEntriesMax', config.appendEntriesMax, 64),
    maxInflightMessages: positive('maxInflightMessages', config.maxInflightMessages, 256),
    entryBytesMax: positive('entryBytesMax', config.entryBytesMax, 1024 * 1024),
    uncommittedEntriesMax: positive('uncommittedEntriesMax', config.uncommittedEntriesMax, 1024),
    pendingReadsMax: positive('pendingReadsMax', config.pendingReadsMax, 1024),
  };
}

function sortedMembership(voters: readonly string[], learners: readonly string[]): Membership {
  return { voters: [...voters].sort(), learners: [...learners].sort() };
}

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

/** A read-only view of a node, for tests, the simulator and debugging. */
export interface RaftStatus {
  readonly id: string;
  readonly role: RaftRole;
  readonly term: number;
  readonly votedFor: string | null;
  readonly leader: string | null;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  readonly membership: Membership;
}

export class RaftNode {
  private readonly settings: Settings;
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

  /** Entries after the snapshot: log[i] has index snapshot.index + 1 + i. */
  private log: RaftEntry[] = [];
  private snapshot: RaftSnapshot;
  private membership: Membership;
  /** Highest index handed to the driver in `committed` (or covered by an installed snapshot). */
  private emitted = 0;
  private applied = 0;

  private votes = new Map<string, boolean>();
  private progress = new Map<string, Progress>();
  /** Index of the latest configuration entry the leader may not yet have committed. */
  private pendingConfigIndex = 0;
  private readRound = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads received before the leader committed an entry of its own term (thesis §6.4 step 1). */
  private readsAwaitingCommit: string[] = [];
  /** The server leadership is being handed to, and for how many ticks (thesis §3.10). */
  private transferee: string | null = null;
  private transferElapsed = 0;

  private ready: ReadyBuilder = emptyReady();

  /** Throws LedgerbusError(BadConfig) naming the field if `config` or `restore` is invalid. */
  constructor(config: RaftConfig, restore?: RaftRestore) {
    this.settings = validateConfig(config);
    this.random = new SeededRandom(config.seed);
    const initial = sortedMembership(config.voters, config.learners ?? []);
    this.snapshot = { index: 0, term: 0, membership: initial, data: new Uint8Array(0) };
    if (restore !== undefined) {
      if (restore.snapshot !== undefined) this.snapshot = restore.snapshot;
      let expected = this.snapshot.index + 1;
      for (const entry of restore.entries) {
        if (entry.index !== expected) throw badConfig('restore.entries', `expected index ${expected}`);
        expected++;
      }
      this.log = [...restore.entries];
      this.term = restore.hardState.term;
      this.votedFor = restore.hardState.votedFor;
      this.commit = Math.max(restore.hardState.commit, this.snapshot.index);
      if (this.commit > this.lastIndex())
        throw badConfig('restore.hardState.commit', 'beyond the last entry');
    }
    this.emitted = this.snapshot.index;
    this.applied = this.snapshot.index;
    this.membership = this.membershipAt(this.lastIndex());
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
      this.reject(error.code, error.message);
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
      firstIndex: this.snapshot.index + 1,
      lastIndex: this.lastIndex(),
      snapshotIndex: this.snapshot.index,
      snapshotTerm: this.snapshot.term,
      membership: this.membership,
    };
  }

  /** The entries held after the snapshot (a copy). */
  entries(): RaftEntry[] {
    return [...this.log];
  }

  /** Term of the entry at `index`, or undefined if it is compacted or beyond the log. */
  termAt(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.lastIndex()) return undefined;
    return this.log[index - this.snapshot.index - 1]!.term;
  }

  /**
   * Everything that determines future behaviour, as a plain value: two nodes with equal
   * `debugState()` produce identical Readys for identical inputs.
   */
  debugState(): unknown {
    return {
      status: this.status(),
      log: this.log,
      snapshot: this.snapshot,
      emitted: this.emitted,
      electionElapsed: this.electionElapsed,
      heartbeatElapsed: this.heartbeatElapsed,
      randomizedElectionTicks: this.randomizedElectionTicks,
      random: this.random.state(),
      votes: [...this.votes],
      progress: [...this.progress],
      pendingConfigIndex: this.pendingConfigIndex,
      readRound: this.readRound,
      pendingReads: this.pendingReads.map((r) => ({ ...r, acks: [...r.acks].sort() })),
      readsAwaitingCommit: this.readsAwaitingCommit,
      transferee: this.transferee,
      transferElapsed: this.transferElapsed,
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

  private reject(code: ErrorCode, reason: string): void {
    this.ready.rejected.push({ code, reason });
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
      this.ready.committed.push(this.entryAt(index));
    }
    this.emitted = Math.max(this.emitted, this.commit);
    const ready = this.ready;
    this.ready = emptyReady();
    return ready;
  }

  // ---- log helpers ------------------------------------------------------------------------------

  private hardState(): HardState {
    return { term: this.term, votedFor: this.votedFor, commit: this.commit };
  }

  private lastIndex(): number {
    return this.snapshot.index + this.log.length;
  }

  private lastTerm(): number {
    return this.termAt(this.lastIndex())!;
  }

  private entryAt(index: number): RaftEntry {
    const entry = this.log[index - this.snapshot.index - 1];
    assert(entry !== undefined && entry.index === index, `entry ${index} is in the log`);
    return entry;
  }

  /** The configuration in force once the log up to `index` is appended. */
  private membershipAt(index: number): Membership {
    for (let i = Math.min(index, this.lastIndex()); i > this.snapshot.index; i--) {
      const entry = this.entryAt(i);
      if (entry.config !== undefined) return entry.config;
    }
    return this.snapshot.membership;
  }

  private appendEntries(entries: readonly RaftEntry[]): void {
    if (entries.length === 0) return;
    assert(entries[0]!.index === this.lastIndex() + 1, 'appended entries follow the log');
    this.log.push(...entries);
    this.ready.persist.push({ op: 'append', entries: [...entries] });
    if (entries.some((e) => e.config !== undefined)) this.onMembershipChanged();
  }

  private truncateFrom(index: number): void {
    assert(index > this.commit, `never truncate committed entry ${index} (commit ${this.commit})`);
    const hadConfig = this.log.slice(index - this.snapshot.index - 1).some((e) => e.config !== undefined);
    this.log.length = index - this.snapshot.index - 1;
    this.ready.persist.push({ op: 'truncate', fromIndex: index });
    if (hadConfig) this.onMembershipChanged();
  }

  private onMembershipChanged(): void {
    this.membership = this.membershipAt(this.lastIndex());
    if (this.role !== 'leader') return;
    const members = new Set([...this.membership.voters, ...this.membership.learners]);
    for (const id of members) {
      if (id !== this.settings.id && !this.progress.has(id)) this.progress.set(id, this.newProgress());
    }
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
  }

  /** Raft §5.4.1: a candidate's log is at least as up-to-date as ours. */
  private isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm() || (lastTerm === this.lastTerm() && lastIndex >= this.lastIndex());
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
    this.transferee = null;
    this.transferElapsed = 0;
    this.abortReads();
  }

  private abortReads(): void {
    for (const read of this.pendingReads) {
      this.reject(ErrorCode.NotPrimary, `read ${read.id} aborted: leadership lost; retry at the leader`);
    }
    for (const id of this.readsAwaitingCommit) {
      this.reject(ErrorCode.NotPrimary, `read ${id} aborted: leadership lost; retry at the leader`);
    }
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
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
      if (id !== this.settings.id) this.progress.set(id, this.newProgress());
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

  private newProgress(): Progress {
    return {
      match: 0,
      next: this.lastIndex() + 1,
      state: 'probe',
      paused: false,
      inflight: [],
      pendingSnapshot: 0,
      recentActive: false,
    };
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
        lastTerm: this.lastTerm(),
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
    if (this.transferee !== null && ++this.transferElapsed >= this.settings.electionTicks) {
      this.transferee = null; // the target did not take over in time: keep leading
    }
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
        readRound: this.readRound,
      });
    }
  }

  // ---- client requests --------------------------------------------------------------------------

  private notLeader(what: string): LedgerbusError {
    const leader = this.leader === null ? 'unknown' : this.leader;
    return new LedgerbusError(ErrorCode.NotPrimary, `${what}: not the leader (leader: ${leader})`, {
      retriable: true,
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
    if (this.transferee !== null) {
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
    const voters = this.membership.voters.filter((id) => id !== change.id);
    const learners = this.membership.learners.filter((id) => id !== change.id);
    const isMember =
      voters.length + learners.length < this.membership.voters.length + this.membership.learners.length;
    switch (change.type) {
      case 'addVoter':
        if (this.membership.voters.includes(change.id))
          throw badConfig('change.id', `${change.id} is a voter`);
        voters.push(change.id);
        break;
      case 'addLearner':
        if (isMember) throw badConfig('change.id', `${change.id} is already a member`);
        learners.push(change.id);
        break;
      case 'removeServer':
        if (!isMember) throw badConfig('change.id', `${change.id} is not a member`);
        if (voters.length === 0) throw badConfig('change.id', 'cannot remove the last voter');
        break;
      default:
        throw new LedgerbusError(ErrorCode.SchemaMismatch, 'change.type: unknown');
    }
    const config = sortedMembership(voters, learners);
    this.appendAsLeader({ type: 'config', data: new Uint8Array(0), config });
    this.pendingConfigIndex = this.lastIndex();
  }

  private transferLeadership(to: string): void {
    if (this.role !== 'leader') throw this.notLeader('transferLeadership');
    if (to === this.settings.id || !this.isVoter(to) || !this.progress.has(to)) {
      throw badConfig('transferLeadership.to', `${String(to)} is not another voter`);
    }
    this.transferee = to;
    this.transferElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(to, pr);
  }

  private readIndex(id: string): void {
    if (typeof id !== 'string')
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'readIndex.id: not a string');
    if (this.role !== 'leader') throw this.notLeader(`read ${id}`);
    if (this.pendingReads.length + this.readsAwaitingCommit.length >= this.settings.pendingReadsMax) {
      throw new LedgerbusError(ErrorCode.Overloaded, 'too many pending reads; retry later', {
        retriable: true,
      });
    }
    if (this.termAt(this.commit) !== this.term) {
      this.readsAwaitingCommit.push(id);
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
    this.readRound++;
    for (const id of ids) {
      const acks = new Set<string>(this.isVoter() ? [this.settings.id] : []);
      this.pendingReads.push({ id, index: this.commit, round: this.readRound, acks });
    }
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
    if (!Number.isSafeInteger(index) || index <= this.snapshot.index || index > this.applied) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `snapshot.index: ${index} must be in (${this.snapshot.index}, ${this.applied}] (snapshot, applied)`,
      );
    }
    if (!(data instanceof Uint8Array))
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'snapshot.data: not bytes');
    const snapshot: RaftSnapshot = {
      index,
      term: this.termAt(index)!,
      membership: this.membershipAt(index),
      data,
    };
    this.log = this.log.slice(index - this.snapshot.index);
    this.snapshot = snapshot;
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
        this.send({
          type: 'appendResponse',
          to: m.from,
          success: false,
          matchIndex: 0,
          rejectedIndex: 0,
          conflictIndex: 0,
          conflictTerm: 0,
        });
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
      // Election safety (Raft §5.2) makes this impossible among correct servers.
      throw new LedgerbusError(
        ErrorCode.NotPrimary,
        `message from ${leader}, a second leader in term ${this.term}`,
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
    const respond = (fields: Omit<MessageOf<'appendResponse'>, 'type' | 'to' | 'from' | 'term'>): void =>
      this.send({ type: 'appendResponse', to: m.from, ...fields });
    if (m.prevIndex < this.commit) {
      // Already committed here: tell the leader how far we are.
      respond({
        success: true,
        matchIndex: this.commit,
        rejectedIndex: 0,
        conflictIndex: 0,
        conflictTerm: 0,
      });
      return;
    }
    const prevTerm = this.termAt(m.prevIndex);
    if (prevTerm !== m.prevTerm) {
      // Raft §5.3 with the conflict optimization: point the leader at the start of the conflicting term.
      let conflictIndex = this.lastIndex() + 1;
      let conflictTerm = 0;
      if (prevTerm !== undefined) {
        conflictTerm = prevTerm;
        conflictIndex = m.prevIndex;
        while (conflictIndex - 1 > this.commit && this.termAt(conflictIndex - 1) === conflictTerm)
          conflictIndex--;
      }
      respond({ success: false, matchIndex: 0, rejectedIndex: m.prevIndex, conflictIndex, conflictTerm });
      return;
    }
    let fresh: RaftEntry[] = [];
    for (let i = 0; i < m.entries.length; i++) {
      const entry = m.entries[i]!;
      const existing = this.termAt(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) this.truncateFrom(entry.index);
      fresh = m.entries.slice(i);
      break;
    }
    this.appendEntries(fresh);
    const lastNew = m.prevIndex + m.entries.length;
    this.commitTo(Math.min(m.commit, lastNew));
    respond({ success: true, matchIndex: lastNew, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0 });
  }

  private handleHeartbeat(m: MessageOf<'heartbeat'>): void {
    this.commitTo(Math.min(m.commit, this.lastIndex()));
    this.send({ type: 'heartbeatResponse', to: m.from, readRound: m.readRound });
  }

  /** Raft §7: install a snapshot from the leader unless our log already covers it. */
  private handleSnapshot(m: MessageOf<'snapshot'>): void {
    const snapshot = m.snapshot;
    const ack = (matchIndex: number): void =>
      this.send({
        type: 'appendResponse',
        to: m.from,
        success: true,
        matchIndex,
        rejectedIndex: 0,
        conflictIndex: 0,
        conflictTerm: 0,
      });
    if (snapshot.index <= this.commit) return ack(this.commit);
    if (this.termAt(snapshot.index) === snapshot.term) {
      // Our log holds the snapshot's last entry, so the prefix matches: keep what follows it.
      this.commitTo(snapshot.index);
      return ack(this.commit);
    }
    this.log = [];
    this.snapshot = snapshot;
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
        const last = this.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
        if (last !== undefined) next = last + 1;
      }
      pr.next = Math.max(pr.match + 1, Math.min(next, m.rejectedIndex));
      pr.state = 'probe';
      pr.paused = false;
      pr.inflight = [];
      this.sendAppend(m.from, pr);
      return;
    }
    const advanced = m.matchIndex > pr.match;
    if (advanced) pr.match = m.matchIndex;
    pr.next = Math.max(pr.next, pr.match + 1);
    if (pr.state === 'probe' || (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot)) {
      pr.state = 'replicate';
      pr.next = pr.match + 1;
      pr.inflight = [];
    }
    // Every append up to the acknowledged index has been answered (or overtaken).
    while (pr.inflight.length > 0 && pr.inflight[0]! <= pr.match) pr.inflight.shift();
    pr.paused = false;
    if (advanced && this.maybeCommit()) {
      this.broadcastAppend();
    } else if (this.role === 'leader' && pr.next <= this.lastIndex()) {
      this.sendAppend(m.from, pr);
    }
    if (this.role === 'leader' && this.transferee === m.from && pr.match === this.lastIndex()) {
      this.send({ type: 'timeoutNow', to: m.from });
    }
  }

  private handleHeartbeatResponse(m: MessageOf<'heartbeatResponse'>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (pr.match < this.lastIndex()) {
      // Retransmit what may have been lost: restart probing from what the peer is known to hold.
      if (pr.state !== 'probe') pr.next = pr.match + 1;
      pr.state = 'probe';
      pr.paused = false;
      pr.inflight = [];
      this.sendAppend(m.from, pr);
    }
    if (!this.isVoter(m.from)) return;
    let confirmed = -1;
    for (let i = 0; i < this.pendingReads.length; i++) {
      const read = this.pendingReads[i]!;
      if (read.round <= m.readRound) read.acks.add(m.from);
      if ([...read.acks].filter((id) => this.isVoter(id)).length >= this.quorum()) confirmed = i;
    }
    // A confirmed round confirms every earlier one too: leadership held at a later instant.
    for (const read of this.pendingReads.splice(0, confirmed + 1)) {
      this.ready.readStates.push({ id: read.id, index: read.index });
    }
  }

  private lastIndexOfTerm(term: number, atMost: number): number | undefined {
    for (let i = Math.min(atMost, this.lastIndex()); i >= this.snapshot.index; i--) {
      const t = this.termAt(i)!;
      if (t === term) return i;
      if (t < term) return undefined;
    }
    return undefined;
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
    const prevTerm = this.termAt(prevIndex);
    if (prevTerm === undefined) {
      // The entries the peer needs are compacted away (Raft §7).
      assert(prevIndex < this.snapshot.index, 'next is within the log');
      pr.state = 'snapshot';
      pr.inflight = [];
      pr.pendingSnapshot = this.snapshot.index;
      this.send({ type: 'snapshot', to, snapshot: this.snapshot });
      return;
    }
    const last = Math.min(this.lastIndex(), prevIndex + this.settings.appendEntriesMax);
    const entries = this.log.slice(pr.next - this.snapshot.index - 1, last - this.snapshot.index);
    this.send({ type: 'append', to, prevIndex, prevTerm, entries, commit: this.commit });
    if (pr.state === 'replicate') {
      pr.next = last + 1;
      pr.inflight.push(last);
    } else pr.paused = true;
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
    if (candidate <= this.commit || this.termAt(candidate) !== this.term) return false;
    this.commitTo(candidate);
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    this.startReads(waiting);
    // Thesis §4.2.2: a leader that removed itself steps down once the change commits.
    if (!this.isVoter() && this.pendingConfigIndex <= this.commit) {
      this.broadcastAppend();
      this.becomeFollower(this.term, null);
      return false;
    }
    return true;
  }
}
