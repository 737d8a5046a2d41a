/**
 * Linearizable reads by read index (Ongaro's thesis §6.4), the leader's bookkeeping of them:
 * 1. a read that arrives before the leader committed an entry of its own term waits for it
 *    (`awaitingCommit`), since until then the leader's commit index may be behind;
 * 2. otherwise it records the commit index and a round number, and the leader sends a heartbeat
 *    round carrying that number;
 * 3. once a quorum of voters answered a round at or after the read's, leadership held at an
 *    instant after the read arrived, and the read may be served at its recorded index.
 *
 * Invariants, asserted where reads are started or confirmed:
 * - pending reads are in arrival order, so their rounds and their indexes never go down;
 * - no pending read has a round beyond the current one;
 * - the bookkeeping is empty on a server that is not the leader (the node aborts it on every
 *   role change, and asserts this after each step).
 */
import { assert } from '../../errors.js';

interface PendingRead {
  readonly id: string;
  readonly index: number;
  readonly round: number;
  readonly acks: Set<string>;
}

export class ReadIndex {
  /** The latest heartbeat round that carries reads. */
  round = 0;
  private pending: PendingRead[] = [];
  private awaiting: string[] = [];

  /** Reads started or waiting: the total the leader bounds with pendingReadsMax. */
  get size(): number {
    return this.pending.length + this.awaiting.length;
  }

  /** Holds read `id` until the leader commits an entry of its term (step 1). */
  awaitCommit(id: string): void {
    this.awaiting.push(id);
  }

  /** The reads held by `awaitCommit`, which are then forgotten here. */
  takeAwaitingCommit(): string[] {
    const waiting = this.awaiting;
    this.awaiting = [];
    return waiting;
  }

  /**
   * Starts a new round for `ids` at commit index `index` (step 2); `self` is the leader's own id
   * when it is a voter, its acknowledgement counting at once. Returns the round to send.
   */
  start(ids: readonly string[], index: number, self: string | undefined): number {
    const last = this.pending.at(-1);
    assert(last === undefined || last.index <= index, 'read indexes never go down');
    this.round++;
    for (const id of ids) {
      const acks = new Set<string>(self === undefined ? [] : [self]);
      this.pending.push({ id, index, round: this.round, acks });
    }
    return this.round;
  }

  /**
   * `from` answered heartbeat round `round` (step 3). Returns the reads now confirmed, oldest
   * first: those whose acknowledgements from voters (as `isVoter` says) reach `quorum`, and every
   * read before them, since a later confirmation proves leadership at a later instant.
   */
  acknowledge(
    from: string,
    round: number,
    isVoter: (id: string) => boolean,
    quorum: number,
  ): { id: string; index: number }[] {
    let confirmed = -1;
    for (let i = 0; i < this.pending.length; i++) {
      const read = this.pending[i]!;
      assert(read.round <= this.round, 'a pending read is of a round already sent');
      if (read.round <= round) read.acks.add(from);
      if ([...read.acks].filter((id) => isVoter(id)).length >= quorum) confirmed = i;
    }
    return this.pending.splice(0, confirmed + 1).map((read) => ({ id: read.id, index: read.index }));
  }

  /** Forgets every read (leadership lost); returns their ids, started ones first. */
  abort(): string[] {
    const ids = [...this.pending.map((read) => read.id), ...this.awaiting];
    this.pending = [];
    this.awaiting = [];
    return ids;
  }

  /** The state as `RaftNode.debugState()` shows it. */
  debug(): { readRound: number; pendingReads: unknown[]; readsAwaitingCommit: string[] } {
    return {
      readRound: this.round,
      pendingReads: this.pending.map((r) => ({ ...r, acks: [...r.acks].sort() })),
      readsAwaitingCommit: this.awaiting,
    };
  }
}
