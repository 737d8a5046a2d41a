/**
 * How far this replica's chain has got, and the blocks in flight between the stages: batches handed
 * to the driver to execute (delivered), blocks executed here and awaiting their certificate, blocks
 * certified out of order, blocks received by state transfer and waiting to execute, and the stable
 * checkpoint (Castro & Liskov §4.3; here every K-th certified block, see replica.ts).
 *
 * Invariants (asserted at the transitions):
 * - stable ≤ certified ≤ executed ≤ delivered: a block is certified only once executed here (or
 *   received certified and executed), and the stable checkpoint is a certified block. The stable
 *   checkpoint's height is a multiple of K, or the epoch's base (see PbftConfig.base).
 * - Batches execute one at a time, in order: `takeDelivered(s)` only for s = executed + 1.
 * - Certified blocks are emitted in height order, each once.
 * - After the stable checkpoint advances to s, nothing at or below s is kept for execution or votes.
 */
import { assert } from '../../errors.js';
import type { Envelope } from './messages.js';
import type { MessageLog } from './message-log.js';
import type {
  CertifiedBlock,
  CertifiedHeader,
  CommittedBatch,
  PbftBlockHeader,
  PbftConfig,
  Proposal,
} from './types.js';

const ZERO_HASH = new Uint8Array(32);

/** A block executed here: its header, and the vote this replica signed for it (resent on request). */
export interface ExecutedBlock {
  readonly header: PbftBlockHeader;
  readonly hash: Uint8Array;
  readonly proposal: Proposal;
  readonly ownVote: Envelope;
}

export class ChainProgress {
  private delivered = 0;
  private executedSeq = 0;
  private executedHash: Uint8Array = ZERO_HASH;
  private certifiedSeq = 0;
  private stableHeight = 0;
  private stableHeader: CertifiedHeader | undefined;
  /** Batches handed to the driver and not yet reported executed: from the log's window, or transferred. */
  private readonly delivering = new Map<number, CommittedBatch>();
  /**
   * Blocks received by state transfer, waiting to be delivered and executed; state transfer stops
   * fetching at `watermarkWindow + fetchBlocksMax` of them.
   */
  private readonly transferred = new Map<number, CertifiedBlock>();
  /** Blocks certified before the one below them was: only blocks executed here, so no more than those. */
  private readonly certifiedAhead = new Map<number, CertifiedBlock>();
  /** Blocks executed above the stable checkpoint; `advanceStable` forgets the rest. */
  private readonly executedBlocks = new Map<number, ExecutedBlock>();

  constructor(private readonly checkpointInterval: number) {}

  get deliveredSeq(): number {
    return this.delivered;
  }
  get lastExecutedSeq(): number {
    return this.executedSeq;
  }
  get lastExecutedHash(): Uint8Array {
    return this.executedHash;
  }
  get lastCertifiedSeq(): number {
    return this.certifiedSeq;
  }
  get stableSeq(): number {
    return this.stableHeight;
  }
  get stableCertificate(): CertifiedHeader | undefined {
    return this.stableHeader;
  }
  /** How many transferred blocks wait to execute. */
  get transferredWaiting(): number {
    return this.transferred.size;
  }

  /** The block executed here at `seq`, while it is above the stable checkpoint. */
  executed(seq: number): ExecutedBlock | undefined {
    return this.executedBlocks.get(seq);
  }

  /** The batch delivered at `deliveredSeq`, if it came certified (by state transfer). */
  deliveredCertified(): CertifiedHeader | undefined {
    return this.delivering.get(this.delivered)?.certified;
  }

  /**
   * Starts from the ledger a restarted replica finds (its last block `head`, hashing to `headHash`,
   * and its last stable block), or from the epoch's base checkpoint. Each part moves only forwards:
   * a base the ledger already went past changes nothing.
   */
  startFrom(options: {
    readonly stable?: CertifiedHeader;
    readonly head?: CertifiedHeader;
    readonly headHash?: Uint8Array;
  }): void {
    const { stable, head, headHash } = options;
    if (stable !== undefined && stable.header.height > this.stableHeight) {
      this.stableHeight = stable.header.height;
      this.stableHeader = stable;
    }
    if (head !== undefined && headHash !== undefined && head.header.height > this.executedSeq) {
      this.executedSeq = head.header.height;
      this.certifiedSeq = head.header.height;
      this.delivered = head.header.height;
      this.executedHash = headHash;
    }
    this.checkOrder();
  }

  /**
   * Hands out every batch that is next in order and known: a transferred block first, else one the
   * log committed. The caller gives them to the driver to execute.
   */
  deliverNext(log: MessageLog): CommittedBatch[] {
    const batches: CommittedBatch[] = [];
    for (;;) {
      const seq = this.delivered + 1;
      const transferred = this.transferred.get(seq);
      const committed = log.get(seq)?.committed;
      let batch: CommittedBatch;
      if (transferred !== undefined) {
        batch = { seq, proposal: transferred.proposal, certified: transferred };
      } else if (committed !== undefined) {
        batch = { seq, proposal: committed.proposal };
      } else {
        return batches;
      }
      this.delivered = seq;
      this.delivering.set(seq, batch);
      batches.push(batch);
    }
  }

  /**
   * The header of the block the next batch makes (height `lastExecutedSeq + 1`, linked to the last
   * executed block): the header every correct replica signs for it, since all its parts are
   * functions of the committed proposal, the chain before it and the deterministic execution.
   */
  nextHeader(
    config: PbftConfig,
    block: {
      readonly transactionsRoot: Uint8Array;
      readonly resultsRoot: Uint8Array;
      readonly proposal: Proposal;
    },
  ): PbftBlockHeader {
    const { proposal } = block;
    return {
      partitionId: config.groupId,
      configEpoch: config.configEpoch,
      height: this.executedSeq + 1,
      previousHash: this.executedHash,
      transactionsRoot: block.transactionsRoot,
      resultsRoot: block.resultsRoot,
      timestamp: proposal.timestamp,
      view: proposal.view,
      proposer: proposal.proposer,
      ...(proposal.systemIndex === undefined ? {} : { systemIndex: proposal.systemIndex }),
      ...(proposal.topicIndex === undefined ? {} : { topicIndex: proposal.topicIndex }),
    };
  }

  /** The delivered batch the driver reports executed; it must be the next one in order. */
  takeDelivered(seq: number): CommittedBatch {
    const batch = this.delivering.get(seq);
    assert(batch !== undefined && seq === this.executedSeq + 1, `executed ${seq} out of order`);
    this.delivering.delete(seq);
    return batch;
  }

  /** Records the block executed at `lastExecutedSeq + 1`. */
  recordExecuted(block: ExecutedBlock): void {
    const seq = block.header.height;
    assert(seq === this.executedSeq + 1 && seq <= this.delivered, `executed ${seq} out of order`);
    this.executedSeq = seq;
    this.executedHash = block.hash;
    this.executedBlocks.set(seq, block);
    this.transferred.delete(seq);
    this.checkOrder();
  }

  /** Keeps transferred blocks that continue the delivered chain, to deliver in order. */
  addTransferred(blocks: readonly CertifiedBlock[]): void {
    for (const block of blocks) {
      assert(block.header.height > this.delivered, 'a transferred block continues the delivered chain');
      this.transferred.set(block.header.height, block);
    }
  }

  /** Takes a certified block; false if it is at or below the last certified one (nothing to do). */
  addCertified(block: CertifiedBlock): boolean {
    if (block.header.height <= this.certifiedSeq) return false;
    this.certifiedAhead.set(block.header.height, block);
    return true;
  }

  /** The next certified block in height order, if it has come; it is certified from now on. */
  nextCertified(): CertifiedBlock | undefined {
    const next = this.certifiedAhead.get(this.certifiedSeq + 1);
    if (next === undefined) return undefined;
    this.certifiedAhead.delete(next.header.height);
    this.certifiedSeq = next.header.height;
    this.checkOrder();
    return next;
  }

  /**
   * §4.3: makes the certified block `block` (a multiple of K) the stable checkpoint and forgets the
   * executed blocks up to it. False, changing nothing, if it is not above the current one.
   */
  advanceStable(block: CertifiedHeader): boolean {
    const seq = block.header.height;
    if (seq <= this.stableHeight) return false;
    assert(seq % this.checkpointInterval === 0, `stable checkpoint ${seq} is not a multiple of K`);
    assert(seq <= this.certifiedSeq, `stable checkpoint ${seq} is above the last certified block`);
    this.stableHeight = seq;
    this.stableHeader = { header: block.header, signatures: block.signatures };
    for (const key of this.executedBlocks.keys()) if (key <= seq) this.executedBlocks.delete(key);
    assert(this.stableHeight === seq, 'the stable checkpoint moved');
    this.checkOrder();
    return true;
  }

  private checkOrder(): void {
    assert(
      this.stableHeight <= this.certifiedSeq &&
        this.certifiedSeq <= this.executedSeq &&
        this.executedSeq <= this.delivered,
      `chain out of order: stable ${this.stableHeight}, certified ${this.certifiedSeq}, ` +
        `executed ${this.executedSeq}, delivered ${this.delivered}`,
    );
  }
}
