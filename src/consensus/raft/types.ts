/**
 * Shapes shared by the Raft core and its drivers. Like the PBFT core, `RaftNode` is a pure state
 * machine in the style of etcd-io/raft: a driver feeds it inputs with `step()` and gets back a
 * `RaftReady` saying what to persist, send and apply. Time is counted in ticks; the only randomness
 * (election timeouts) comes from a generator seeded by `RaftConfig.seed`.
 */
import type { ErrorCode, ErrorDetails } from '../../errors.js';
import type { Membership, RaftEntry, RaftMessage, RaftSnapshot } from './messages.js';

export type { Membership, RaftEntry, RaftMessage, RaftSnapshot };

export interface RaftConfig {
  /** This server's id. */
  readonly id: string;
  /** The initial configuration, used until the log or a snapshot holds a configuration entry. */
  readonly voters: readonly string[];
  readonly learners?: readonly string[];
  /** Seeds the election-timeout generator. Give each server (and each restart) its own seed. */
  readonly seed: number;
  /** Base election timeout; each timeout is drawn uniformly from [electionTicks, 2·electionTicks). */
  readonly electionTicks: number;
  /** The leader sends heartbeats every this many ticks; must be less than electionTicks. */
  readonly heartbeatTicks: number;
  /** Pre-vote (thesis §9.6): campaign only after a quorum says it would vote for us. Default true. */
  readonly preVote?: boolean;
  /** Check-quorum (thesis §6.2): a leader steps down without a quorum's contact. Default true. */
  readonly checkQuorum?: boolean;
  /** Entries per append message. Default 64. */
  readonly appendEntriesMax?: number;
  /**
   * Flow control: unanswered append messages a leader keeps in flight to one follower in the
   * replicate state (a probing follower gets one at a time). Default 256.
   */
  readonly maxInflightMessages?: number;
  /** Largest proposal accepted. Default 1 MiB. */
  readonly entryBytesMax?: number;
  /** Appended but uncommitted entries a leader holds before refusing proposals. Default 1024. */
  readonly uncommittedEntriesMax?: number;
  /** Read-index requests waiting for confirmation before more are refused. Default 1024. */
  readonly pendingReadsMax?: number;
}

export interface HardState {
  readonly term: number;
  readonly votedFor: string | null;
  readonly commit: number;
}

export type MembershipChange = {
  readonly type: 'addVoter' | 'addLearner' | 'removeServer';
  readonly id: string;
};

export type RaftInput =
  /** One unit of logical time. */
  | { readonly kind: 'tick' }
  /** A message from a peer, already decoded (it is validated again). */
  | { readonly kind: 'message'; readonly message: RaftMessage }
  /** A message from a peer as received on the wire. */
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  /** A client proposal; accepted only by the leader. */
  | { readonly kind: 'propose'; readonly data: Uint8Array }
  /** Linearizable read (thesis §6.4); answered in `readStates` once leadership is confirmed. */
  | { readonly kind: 'readIndex'; readonly id: string }
  /** The driver applied every committed entry up to `index`. */
  | { readonly kind: 'applied'; readonly index: number }
  /** The driver snapshotted its state machine at applied `index`; the core compacts its log. */
  | { readonly kind: 'snapshot'; readonly index: number; readonly data: Uint8Array }
  /** One-server-at-a-time membership change (thesis §4.1); accepted only by the leader. */
  | { readonly kind: 'changeMembership'; readonly change: MembershipChange }
  /**
   * Hand leadership to voter `to` (thesis §3.10): bring it up to date, then tell it to campaign.
   * Proposals are refused meanwhile; the transfer is abandoned after an election timeout.
   */
  | { readonly kind: 'transferLeadership'; readonly to: string };

/** Durable operations, to apply in order. */
export type RaftPersistOp =
  /** Save the snapshot and delete every entry with index ≤ snapshot.index. */
  | { readonly op: 'snapshot'; readonly snapshot: RaftSnapshot }
  /** Delete every entry with index ≥ fromIndex. */
  | { readonly op: 'truncate'; readonly fromIndex: number }
  /** Append entries (consecutive, following the stored log). */
  | { readonly op: 'append'; readonly entries: readonly RaftEntry[] }
  | { readonly op: 'hardState'; readonly hardState: HardState };

/** An input the core refused; the state is as if it had not been stepped. */
export interface Rejection {
  readonly code: ErrorCode;
  /** For people (logs); decide nothing on it. */
  readonly reason: string;
  /**
   * Whether the same input may succeed later (a full queue, a leader elected, a membership change
   * committed), so that a driver passes the flag on instead of guessing it from `reason`.
   */
  readonly retriable: boolean;
  /** NOT_LEADER: the leader this server knows of, if any, for the driver to redirect to. */
  readonly details?: ErrorDetails;
}

/**
 * What the driver must do after a step, IN THIS ORDER:
 * 1. apply `persist` durably (fsync) — a vote or an appended entry is durable BEFORE it is acknowledged;
 * 2. send `send`;
 * 3. if `installSnapshot` is set, replace the state machine with it;
 * 4. apply `committed` in order, then report progress with an `applied` input;
 * 5. serve each read in `readStates` once the state machine has applied its index.
 */
export interface RaftReady {
  readonly persist: RaftPersistOp[];
  readonly send: { readonly to: string; readonly message: RaftMessage }[];
  readonly installSnapshot?: RaftSnapshot;
  readonly committed: RaftEntry[];
  readonly readStates: { readonly id: string; readonly index: number }[];
  readonly rejected: Rejection[];
}

/** What a restarting server gets back from its storage. */
export interface RaftRestore {
  readonly hardState: HardState;
  readonly snapshot?: RaftSnapshot;
  /** Every stored entry after the snapshot, in order. */
  readonly entries: readonly RaftEntry[];
}

export type RaftRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

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
