/**
 * State transfer (Castro & Liskov §4.3, §5.3 of the TOCS version): a replica that falls behind fetches
 * certified blocks from a peer instead of the messages it missed. Blocks carry their own 2f+1
 * signatures, so one peer is enough to ask: a lying peer cannot make us accept a block that lacks
 * them. This module holds who is ahead of us and which fetch is in flight, and checks a reply.
 *
 * Invariants:
 * - At most one fetch is in flight, and it is forgotten at its deadline (or when its peer answers),
 *   so a silent peer delays us by one deadline, after which the next candidate is asked.
 * - A fetch is only sent after we have been behind for a whole status interval: block votes still
 *   in flight usually certify the missing blocks sooner.
 */
import { AssertionError, ErrorCode, assert } from '../../errors.js';
import { certificateValid, headerHash } from './messages.js';
import type { FetchBlocks, Status, TransferredBlock } from './messages.js';
import { sameBytes } from './quorum.js';
import { rejectForGood } from './rejections.js';
import type { CertifiedBlock, PbftConfig, PbftCrypto, Proposal } from './types.js';

export class StateTransfer {
  /** The latest status each peer sent: what it has executed and certified. One per replica. */
  private readonly peerStatus = new Map<number, Status>();
  private inFlight: { readonly to: number; readonly fromSeq: number; readonly deadline: number } | undefined;
  private rotation = 0;
  private behindSinceTick: number | undefined;

  constructor(private readonly statusIntervalTicks: number) {}

  /** Records a peer's status and returns the one it sent before, if any. */
  recordStatus(status: Status): Status | undefined {
    const previous = this.peerStatus.get(status.from);
    this.peerStatus.set(status.from, status);
    return previous;
  }

  /** Forgets a fetch whose deadline has passed, so the next call may ask another peer. */
  expire(ticks: number): void {
    if (this.inFlight !== undefined && ticks >= this.inFlight.deadline) this.inFlight = undefined;
  }

  /** A peer answered: if it is the one being fetched from, the fetch is over. */
  answered(from: number): void {
    if (this.inFlight?.to === from) this.inFlight = undefined;
  }

  /**
   * The fetch to send now, if any: to one peer that claims certified blocks beyond
   * `lastCertifiedSeq`, once we have been behind for a status interval and no fetch is in flight;
   * peers are taken in turn so one that does not answer is not asked forever. The returned fetch is
   * in flight from now on.
   */
  nextFetch(
    ticks: number,
    lastCertifiedSeq: number,
  ): { readonly to: number; readonly fromSeq: number } | undefined {
    const candidates = [...this.peerStatus.values()]
      .filter((status) => status.lastCertified > lastCertifiedSeq)
      .map((status) => status.from)
      .sort((a, b) => a - b);
    if (candidates.length === 0) {
      this.behindSinceTick = undefined;
      return undefined;
    }
    this.behindSinceTick ??= ticks;
    if (this.inFlight !== undefined || ticks - this.behindSinceTick < this.statusIntervalTicks)
      return undefined;
    const to = candidates[this.rotation++ % candidates.length]!;
    const fromSeq = lastCertifiedSeq + 1;
    this.inFlight = { to, fromSeq, deadline: ticks + 4 * this.statusIntervalTicks };
    assert(this.inFlight.deadline > ticks, 'a fetch has a deadline in the future');
    return { to, fromSeq };
  }
}

/**
 * The blocks to serve a peer's fetch from our ledger: from where it asks, at most as many as it
 * asks and `fetchBlocksMax`, and only certified ones. Undefined when we have none of them.
 */
export function servedRange(
  message: FetchBlocks,
  lastCertifiedSeq: number,
  fetchBlocksMax: number,
): { readonly to: number; readonly fromSeq: number; readonly count: number } | undefined {
  if (message.fromSeq === 0 || message.fromSeq > lastCertifiedSeq) return undefined;
  const count = Math.min(message.count, fetchBlocksMax, lastCertifiedSeq - message.fromSeq + 1);
  return { to: message.from, fromSeq: message.fromSeq, count };
}

/** What `sortTransferredBlocks` needs to know about the receiving replica. */
export interface TransferReceiver {
  readonly config: PbftConfig;
  readonly crypto: PbftCrypto;
  readonly keysById: ReadonlyMap<string, Uint8Array>;
  readonly quorum: number;
  readonly lastCertifiedSeq: number;
  readonly lastExecutedSeq: number;
  /** The last sequence number handed to the driver to execute. */
  readonly deliveredSeq: number;
  /** Hash of the block at `deliveredSeq`, if known before its execution (undefined otherwise). */
  readonly deliveredHash: Uint8Array | undefined;
  /** Transferred blocks already waiting to execute. */
  readonly transferredWaiting: number;
  /** The block this replica executed at `seq`, if it still holds it. */
  executed(seq: number): { readonly hash: Uint8Array; readonly proposal: Proposal } | undefined;
}

/**
 * Checks a state-transfer reply and sorts its blocks into certificates for blocks the receiver
 * executed but whose votes it lost (`certifyExecuted`), and blocks that continue its chain, to be
 * executed like committed batches (`transfer`). Every block is checked before the caller applies
 * any, so a reply with a single bad block changes nothing: throws a rejection for a block without a
 * valid certificate or transactions root, or one that does not link. Stops at a gap, and once the
 * blocks waiting to execute would exceed a window and a fetch.
 */
export function sortTransferredBlocks(
  blocks: readonly TransferredBlock[],
  receiver: TransferReceiver,
): { readonly certifyExecuted: CertifiedBlock[]; readonly transfer: CertifiedBlock[] } {
  const { config, crypto } = receiver;
  const certifyExecuted: CertifiedBlock[] = [];
  const transfer: CertifiedBlock[] = [];
  let previousHash = receiver.deliveredHash;
  let expected = receiver.deliveredSeq + 1;
  for (const block of blocks) {
    const header = block.certified.header;
    if (header.height <= receiver.lastCertifiedSeq) continue;
    if (
      header.partitionId !== config.groupId ||
      header.configEpoch !== config.configEpoch ||
      !sameBytes(header.transactionsRoot, crypto.merkleRoot(block.requests)) ||
      !certificateValid(crypto, block.certified, receiver.keysById, receiver.quorum)
    ) {
      throw rejectForGood(ErrorCode.BrokenChain, `transferred block ${header.height} does not verify`);
    }
    const hash = headerHash(crypto, header);
    if (header.height <= receiver.lastExecutedSeq) {
      // Executed here but its votes were lost: the certificate is all that was missing.
      const own = receiver.executed(header.height);
      if (own === undefined) continue;
      if (!sameBytes(own.hash, hash)) {
        throw new AssertionError(`block ${header.height} executed here differs from the certified block`);
      }
      certifyExecuted.push({ ...block.certified, proposal: own.proposal });
      continue;
    }
    if (previousHash === undefined || header.height !== expected) break;
    if (!sameBytes(header.previousHash, previousHash)) {
      throw rejectForGood(ErrorCode.BrokenChain, `transferred block ${header.height} does not link`);
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
    if (receiver.transferredWaiting + transfer.length >= config.watermarkWindow + config.fetchBlocksMax)
      break;
  }
  return { certifyExecuted, transfer };
}
