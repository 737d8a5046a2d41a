/**
 * Block votes counted towards block certificates. A block vote is a replica's signature over the
 * header of a block it executed; 2f+1 matching ones are the block's commit certificate and, every
 * K-th block, the checkpoint certificate of Castro & Liskov §4.3 (see the deviations in replica.ts).
 *
 * Invariants:
 * - One vote per replica and height: a second, different vote cannot add another tally, so a
 *   Byzantine replica cannot help two headers of one height towards a certificate.
 * - After `discardUpTo(s)` (a stable checkpoint at s) no tally at or below s is left.
 */
import { assert } from '../../errors.js';
import { hexKey } from './quorum.js';
import type { PbftBlockHeader } from './types.js';

/** The votes for one header: signatures by replica index. */
export interface VoteTally {
  readonly header: PbftBlockHeader;
  readonly signatures: ReadonlyMap<number, Uint8Array>;
}

export class BlockVotes {
  /**
   * Tallies by height, then header hash: heights above the stable checkpoint (`discardUpTo`) and within
   * twice the window of it (the replica refuses votes beyond), one vote per replica each.
   */
  private readonly byHeight = new Map<
    number,
    Map<string, { header: PbftBlockHeader; signatures: Map<number, Uint8Array> }>
  >();

  constructor(private readonly quorum: number) {}

  /**
   * Counts `from`'s vote for `header` (whose hash is `hash`). Returns the header's tally when it holds
   * at least a quorum of votes after this one, else undefined (also for a vote not counted).
   */
  add(from: number, header: PbftBlockHeader, hash: Uint8Array, signature: Uint8Array): VoteTally | undefined {
    const seq = header.height;
    const key = hexKey(hash);
    let bySeq = this.byHeight.get(seq);
    if (bySeq === undefined) {
      bySeq = new Map();
      this.byHeight.set(seq, bySeq);
    }
    for (const existing of bySeq.values()) if (existing.signatures.has(from)) return undefined;
    let tally = bySeq.get(key);
    if (tally === undefined) {
      tally = { header, signatures: new Map() };
      bySeq.set(key, tally);
    }
    tally.signatures.set(from, signature);
    assert(
      [...bySeq.values()].filter((other) => other.signatures.has(from)).length === 1,
      `replica ${from} has one block vote counted at height ${seq}`,
    );
    return tally.signatures.size < this.quorum ? undefined : tally;
  }

  /** A stable checkpoint at `seq` makes every tally up to it garbage. */
  discardUpTo(seq: number): void {
    for (const height of this.byHeight.keys()) if (height <= seq) this.byHeight.delete(height);
    assert(
      [...this.byHeight.keys()].every((height) => height > seq),
      'no block-vote tally at or below the stable checkpoint',
    );
  }
}
