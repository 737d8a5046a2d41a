/**
 * The new-view computation of Castro & Liskov §4.4 (OSDI 1999), as pure functions: the new primary
 * computes the set O of pre-prepares from the 2f+1 view-change messages V it collected, and every
 * backup recomputes O from the same V and accepts the new view only if the primary's O matches.
 */
import { assert } from '../../errors.js';
import { decodeBody, proposalDigest } from './messages.js';
import type { Envelope, NewView, PrePrepare, ViewChange } from './messages.js';
import { sameBytes } from './quorum.js';
import type { CertifiedHeader, PbftCrypto, Proposal } from './types.js';

/** One sequence number of O: the batch to re-propose, or none (a null request, §4.4). */
export interface NewViewEntry {
  readonly seq: number;
  /** The batch prepared in the highest view, carried unchanged; absent for a null request. */
  readonly proposal?: Proposal;
}

/** O and the bounds it spans. */
export interface NewViewPlan {
  readonly view: number;
  /** min-s: the latest stable checkpoint in V. Sequence numbers up to it are not re-proposed. */
  readonly minSeq: number;
  /** max-s: the highest sequence number prepared in V (min-s when nothing is). */
  readonly maxSeq: number;
  /** The certificate of min-s, from whichever view change carried it. */
  readonly stable: CertifiedHeader | undefined;
  /** One entry per sequence number in (minSeq, maxSeq], in order. */
  readonly entries: readonly NewViewEntry[];
}

/**
 * Computes O for `view` from view-change messages already validated (each certificate authentic,
 * inside its sender's window, one per sequence number): for every sequence number between the
 * highest stable checkpoint in V and the highest prepared one, the batch prepared in the highest
 * view, or a null request where none prepared. A pure function of its arguments, so the new primary
 * and every backup reach the same O from the same V, whatever order V is given in.
 */
export function computeNewViewPlan(viewChanges: readonly ViewChange[], view: number): NewViewPlan {
  let minSeq = 0;
  let stable: CertifiedHeader | undefined;
  for (const change of viewChanges) {
    assert(change.newView === view, `view change for ${change.newView} used to compute view ${view}`);
    if (change.stable !== null && change.stable.header.height > minSeq) {
      minSeq = change.stable.header.height;
      stable = change.stable;
    }
  }
  const best = new Map<number, PrePrepare>();
  for (const change of viewChanges) {
    for (const certificate of change.prepared) {
      const prePrepare = decodeBody(certificate.prePrepare.body) as PrePrepare;
      if (prePrepare.seq <= minSeq) continue;
      const current = best.get(prePrepare.seq);
      if (current === undefined || prePrepare.view > current.view) best.set(prePrepare.seq, prePrepare);
    }
  }
  const maxSeq = Math.max(minSeq, ...best.keys());
  const entries: NewViewEntry[] = [];
  for (let seq = minSeq + 1; seq <= maxSeq; seq++) {
    const chosen = best.get(seq);
    entries.push(chosen === undefined ? { seq } : { seq, proposal: chosen.proposal });
  }
  assert(entries.length === maxSeq - minSeq, 'O holds one entry per sequence number in (min-s, max-s]');
  return { view, minSeq, maxSeq, stable, entries };
}

/**
 * True if `prePrepare` is what O allows at `entry`: the carried batch by digest, or for a null
 * request an empty batch that names the new view and its primary (`primaryId`) and a timestamp no
 * later than `latestTimestamp` (the receiver's clock plus the allowed skew). Also checks the
 * pre-prepare's own view and sequence number, and that its digest is its proposal's.
 */
export function newViewPrePrepareMatches(
  crypto: PbftCrypto,
  prePrepare: PrePrepare,
  entry: NewViewEntry,
  expected: { readonly view: number; readonly primaryId: string; readonly latestTimestamp: number },
): boolean {
  const matchesEntry =
    entry.proposal === undefined
      ? prePrepare.proposal.requests.length === 0 &&
        prePrepare.proposal.view === expected.view &&
        prePrepare.proposal.proposer === expected.primaryId &&
        prePrepare.proposal.timestamp <= expected.latestTimestamp
      : sameBytes(prePrepare.digest, proposalDigest(crypto, entry.proposal));
  return (
    matchesEntry &&
    prePrepare.view === expected.view &&
    prePrepare.seq === entry.seq &&
    sameBytes(prePrepare.digest, proposalDigest(crypto, prePrepare.proposal))
  );
}

/** The view a new-view message (already authenticated) is for. */
export function newViewOf(newView: Envelope): number {
  return (decodeBody(newView.body) as NewView).view;
}
