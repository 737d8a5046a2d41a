/**
 * What a replica resends to a peer whose status shows it is behind. Castro's implementation drives
 * retransmission by periodic status messages rather than timers per message; so do we (see the
 * deviations in replica.ts): the status says where the peer stands, and we resend what it needs.
 */
import type { Envelope, Status } from './messages.js';
import type { MessageLog } from './message-log.js';

/** Where this replica stands, as far as retransmission needs to know. */
export interface RetransmissionSource {
  /** The peer sent the same progress as in its previous status: it may have lost messages. */
  readonly stalled: boolean;
  readonly view: number;
  readonly inViewChange: boolean;
  /** The new-view message of the current view, if any. */
  readonly newViewMessage: Envelope | undefined;
  /** This replica's view-change message for the view it is changing to, if any. */
  readonly ownViewChange: Envelope | undefined;
  readonly stableSeq: number;
  readonly lastExecutedSeq: number;
  readonly watermarkWindow: number;
  readonly log: MessageLog;
  /** This replica's block vote for `seq`, if it still holds it. */
  ownVote(seq: number): Envelope | undefined;
}

/**
 * The envelopes to resend, in order, to the peer that sent `status`: the new view to a peer still
 * before it (§4.4), our view change to a peer changing to the same view, and to a stalled peer of
 * our view our pre-prepares, prepares and commits above its last executed block (§4.2), and our
 * block votes above its last certified one. Pure: the caller sends them, and bounds how often.
 */
export function retransmissionFor(status: Status, source: RetransmissionSource): Envelope[] {
  const resend: Envelope[] = [];
  const { view, inViewChange, stableSeq } = source;
  if (!inViewChange && source.newViewMessage !== undefined) {
    if (status.view < view || (status.view === view && status.inViewChange)) {
      resend.push(source.newViewMessage);
    }
  }
  if (inViewChange && status.inViewChange && status.view === view && source.ownViewChange) {
    resend.push(source.ownViewChange);
  }
  if (!source.stalled) return resend;
  if (status.view === view && !status.inViewChange && !inViewChange) {
    const from = Math.max(status.lastExecuted, stableSeq) + 1;
    const to = Math.min(from + source.watermarkWindow - 1, stableSeq + source.watermarkWindow);
    for (let seq = from; seq <= to; seq++) {
      const slot = source.log.get(seq);
      if (slot === undefined) continue;
      if (slot.prePrepare !== undefined && slot.prePrepare.view === view)
        resend.push(slot.prePrepare.envelope);
      if (slot.ownPrepare !== undefined) resend.push(slot.ownPrepare);
      if (slot.ownCommit !== undefined) resend.push(slot.ownCommit);
    }
  }
  for (let seq = Math.max(status.lastCertified, stableSeq) + 1; seq <= source.lastExecutedSeq; seq++) {
    const vote = source.ownVote(seq);
    if (vote !== undefined) resend.push(vote);
  }
  return resend;
}

/** Bounds what a peer (perhaps a lying one) can make us retransmit: once per status interval. */
export class RetransmissionLimiter {
  /** One per replica index (senders are authenticated replicas). */
  private readonly lastHelpedTick = new Map<number, number>();

  constructor(private readonly statusIntervalTicks: number) {}

  /** True, and counted, if `peer` was not helped within the last status interval before `ticks`. */
  allow(peer: number, ticks: number): boolean {
    const last = this.lastHelpedTick.get(peer) ?? Number.NEGATIVE_INFINITY;
    if (ticks - last < this.statusIntervalTicks) return false;
    this.lastHelpedTick.set(peer, ticks);
    return true;
  }
}
