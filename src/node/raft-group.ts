/**
 * The node's Raft group: the generic driver (src/raft-group/driver.ts) built with what the node runs
 * on — the group's SQLite Raft database (one fsynced transaction per Ready), the real clock, and the
 * peer mesh (messages encoded to their wire bytes here). The driver does everything else: feeding the
 * core, carrying out each Ready (persist BEFORE send, then install a received snapshot, then apply
 * committed entries to an in-memory state machine), proposals, reads and applied-index waits. The
 * state machine is not stored: a restart restores the stored snapshot and replays the stored log after
 * it (before the constructor returns), so it is rebuilt deterministically.
 *
 * A failure of this node's storage of the group (a write of the Raft database, or a state machine's
 * own storage throwing a group storage error while applying) stops the group here (crash-stop of
 * this one group, which Raft tolerates), everything pending is rejected, and `onStorageFailure` tells
 * the owner, which may open the group again later from what is on disk.
 */
import { randomInt } from 'node:crypto';
import { encodeRaftMessage } from '../consensus/raft/index.js';
import type { Membership, MembershipChange, RaftMessage } from '../consensus/raft/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { RaftGroupDriver } from '../raft-group/driver.js';
import type { Proposed, RaftGroupLogger, ReplicatedStateMachine } from '../raft-group/driver.js';
import { processClock } from '../runtime/process-clock.js';
import { RaftDatabase } from './raft-database.js';

export type { Proposed, ReplicatedStateMachine } from '../raft-group/driver.js';

export interface RaftGroupOptions {
  readonly groupId: string;
  readonly selfNodeId: string;
  /** Initial configuration (used until the log/snapshot holds one). */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly dataDirectory: string;
  readonly stateMachine: ReplicatedStateMachine;
  /** Sends encoded Raft message bytes to a node. Must not throw; may drop. */
  readonly sendTo: (nodeId: string, bytes: Uint8Array) => void;
  /** Base election timeout in ticks. Default 20 (a node ticking every 10 ms: 200–400 ms). */
  readonly electionTicks?: number;
  /** Default 3. */
  readonly heartbeatTicks?: number;
  /** Take a snapshot (and compact the log) every this many applied entries; 0 = never. Default 0. */
  readonly snapshotEvery?: number;
  /** ... or once the entries applied since the last snapshot hold this many bytes; 0 = no limit. */
  readonly snapshotBytes?: number;
  /** How long propose, readIndex, changeMembership and waitApplied wait. Default 30 000 ms. */
  readonly commitTimeoutMs?: number;
  readonly log?: RaftGroupLogger;
  /**
   * Called once if the group stops because this node's storage of it failed (see the file comment),
   * after everything pending was rejected and the database closed. Not called on `close()`.
   */
  readonly onStorageFailure?: (error: LedgerbusError) => void;
}

export class RaftGroup {
  readonly groupId: string;
  private readonly driver: RaftGroupDriver;

  /** Opens the group's database, restores the core and replays the stored log into `stateMachine`. */
  constructor(options: RaftGroupOptions) {
    this.groupId = options.groupId;
    const snapshotEvery = options.snapshotEvery ?? 0;
    // Checked before the database file is created, so a bad config leaves nothing on disk.
    if (!Number.isSafeInteger(snapshotEvery) || snapshotEvery < 0) {
      throw new LedgerbusError(ErrorCode.BadConfig, `raft snapshotEvery: must be a non-negative integer`);
    }
    const log = options.log;
    const send = (to: string, message: RaftMessage): void => {
      let bytes: Uint8Array;
      try {
        bytes = encodeRaftMessage(message);
      } catch (error) {
        // The core built it, so this is a bug; dropping it is safe (Raft tolerates message loss).
        log?.('warn', 'raft message not encodable', { group: options.groupId, to, error: String(error) });
        return;
      }
      options.sendTo(to, bytes);
    };
    this.driver = new RaftGroupDriver({
      groupId: options.groupId,
      config: {
        id: options.selfNodeId,
        voters: options.voters,
        learners: options.learners,
        // The core is deterministic given its seed; each (re)start needs its own so that servers
        // restarted together do not time out in lockstep.
        seed: randomInt(0, 0x7fff_ffff),
        electionTicks: options.electionTicks ?? 20,
        heartbeatTicks: options.heartbeatTicks ?? 3,
      },
      storage: RaftDatabase.open(options.dataDirectory, options.groupId),
      clock: processClock,
      transport: { send },
      stateMachine: options.stateMachine,
      snapshotEvery,
      ...(options.snapshotBytes === undefined ? {} : { snapshotBytes: options.snapshotBytes }),
      ...(options.commitTimeoutMs === undefined ? {} : { commitTimeoutMs: options.commitTimeoutMs }),
      ...(log === undefined ? {} : { log }),
      ...(options.onStorageFailure === undefined ? {} : { onStorageFailure: options.onStorageFailure }),
    });
    this.driver.replay();
    log?.('info', 'raft group opened', { group: options.groupId, applied: this.driver.appliedIndex });
  }

  get leader(): string | null {
    return this.driver.leader;
  }
  get isLeader(): boolean {
    return this.driver.isLeader;
  }
  get appliedIndex(): number {
    return this.driver.appliedIndex;
  }
  /** The core's current term (for metrics: a rising term means elections). */
  get term(): number {
    return this.driver.raft.status().term;
  }
  get members(): Membership {
    return this.driver.members;
  }
  /** Why the group stopped on this node, if its storage failed. */
  get failure(): LedgerbusError | undefined {
    return this.driver.failure;
  }

  tick(): void {
    this.driver.tick();
  }

  /** Applies held entries that have become ready (see `ReplicatedStateMachine.ready`). */
  resume(): void {
    this.driver.resume();
  }

  /** Committed entries waiting for the state machine to be ready for them. */
  get heldEntries(): number {
    return this.driver.heldEntries;
  }

  /** Bytes from a peer; anything malformed is logged at debug and dropped. */
  receive(bytes: Uint8Array): void {
    this.driver.receive(bytes);
  }

  /** See `RaftGroupDriver.propose`: settles once the entry is applied here. */
  propose(data: Uint8Array): Promise<Proposed> {
    return this.driver.propose(data);
  }

  /** See `RaftGroupDriver.readIndex` (thesis §6.4). */
  readIndex(): Promise<number> {
    return this.driver.readIndex();
  }

  /** Leader only: resolves once the configuration entry is committed and applied here. */
  changeMembership(change: MembershipChange): Promise<void> {
    return this.driver.changeMembership(change);
  }

  /** See `RaftGroupDriver.onApplied`. Returns an unsubscribe function. */
  onApplied(listener: (index: number) => void): () => void {
    return this.driver.onApplied(listener);
  }

  /** Resolves once appliedIndex >= index; rejects on close, or (retriable) after `timeoutMs`. */
  waitApplied(index: number, timeoutMs?: number): Promise<void> {
    return this.driver.waitApplied(index, timeoutMs);
  }

  /** Rejects everything pending with ConnectionClosed (retriable) and closes the database. */
  close(): void {
    this.driver.close();
  }
}
