/**
 * The message log of Castro & Liskov §4.2: for each sequence number inside the watermark window, the
 * pre-prepare accepted, the prepares and commits counted, and what this replica prepared, sent and
 * committed. Also the keys under which the replica's durable records are stored.
 *
 * Invariants:
 * - A sender gets one prepare and one commit counted per view and sequence number (`voted`), so an
 *   equivocating replica cannot grow a slot with endless digests.
 * - After `discardUpTo(s)` (a stable checkpoint at s, §4.3) no slot at or below s is left.
 */
import { decodeCanonical, encodeCanonical } from '../../codec/index.js';
import { assert } from '../../errors.js';
import { decodeBody, decodeEnvelope, encodeEnvelope } from './messages.js';
import type { Commit, Envelope, PreparedCertificate, PrePrepare, Prepare } from './messages.js';
import { hexKey } from './quorum.js';
import type { PersistRecord, Proposal } from './types.js';

/** Durable records are keyed so that a later put replaces an earlier one for the same purpose. */
export const recordKey = {
  state: 'state',
  viewChange: 'view-change',
  newView: 'new-view',
  prePrepare: (seq: number) => `pre-prepare/${seq}`,
  prepare: (seq: number) => `prepare/${seq}`,
  prepared: (seq: number) => `prepared/${seq}`,
  commit: (seq: number) => `commit/${seq}`,
} as const;

export interface AcceptedPrePrepare {
  readonly view: number;
  readonly digest: Uint8Array;
  readonly proposal: Proposal;
  readonly envelope: Envelope;
}

export interface PreparedState {
  readonly view: number;
  readonly digest: Uint8Array;
  readonly proposal: Proposal;
  readonly certificate: PreparedCertificate;
}

/** Everything known about one sequence number inside the watermark window. */
export interface Slot {
  prePrepare?: AcceptedPrePrepare;
  /** Prepares by (view, digest), then by sender. */
  readonly prepares: Map<string, Map<number, Envelope>>;
  /** Commits by (view, digest): the set of senders. */
  readonly commits: Map<string, Set<number>>;
  /**
   * "prepare/view/sender" and "commit/view/sender" already counted: a sender gets one vote of each
   * kind per view, so an equivocating one cannot grow the slot with endless digests.
   */
  readonly voted: Set<string>;
  /** The highest-view prepared certificate (§4.4's P component). */
  prepared?: PreparedState;
  ownPrepare?: Envelope;
  ownCommit?: Envelope;
  committed?: { readonly digest: Uint8Array; readonly proposal: Proposal };
}

/** The key prepares and commits are counted under: votes agree when view and digest both match. */
export function viewDigestKey(view: number, digest: Uint8Array): string {
  return `${view}/${hexKey(digest)}`;
}

/** The durable form of a prepared certificate (the `prepared/<seq>` record). */
export function encodePreparedRecord(certificate: PreparedCertificate): Uint8Array {
  return encodeCanonical({
    prePrepare: encodeEnvelope(certificate.prePrepare),
    prepares: certificate.prepares.map(encodeEnvelope),
  });
}

/**
 * The view-change state a restarted replica finds among its durable records (any order): its view,
 * whether it was changing to it, its own view-change message and the last new-view message.
 */
export function readViewRecords(records: readonly PersistRecord[]): {
  readonly view: number;
  readonly inViewChange: boolean;
  readonly ownViewChange?: Envelope;
  readonly newView?: Envelope;
} {
  const durable = (key: string): Uint8Array | undefined =>
    records.find((record) => record.key === key)?.bytes;
  const state = durable(recordKey.state);
  const ownViewChange = durable(recordKey.viewChange);
  const newView = durable(recordKey.newView);
  return {
    ...(state === undefined
      ? { view: 0, inViewChange: false }
      : (decodeCanonical(state) as { view: number; inViewChange: boolean })),
    ...(ownViewChange === undefined ? {} : { ownViewChange: decodeEnvelope(ownViewChange) }),
    ...(newView === undefined ? {} : { newView: decodeEnvelope(newView) }),
  };
}

export class MessageLog {
  /** One per sequence number in the watermark window: `discardUpTo` drops those at the stable checkpoint. */
  private readonly slots = new Map<number, Slot>();

  /** The slot of `seq`, if anything is known about it. */
  get(seq: number): Slot | undefined {
    return this.slots.get(seq);
  }

  /** The slot of `seq`, created empty if need be; the caller has checked `seq` is in the window. */
  slot(seq: number): Slot {
    let slot = this.slots.get(seq);
    if (slot === undefined) {
      slot = { prepares: new Map(), commits: new Map(), voted: new Set() };
      this.slots.set(seq, slot);
    }
    return slot;
  }

  /** Every slot, in the order they were created. */
  entries(): IterableIterator<[number, Slot]> {
    return this.slots.entries();
  }

  /** Counts `from`'s prepare; false if it already has one counted in this view. */
  addPrepare(slot: Slot, view: number, digest: Uint8Array, from: number, envelope: Envelope): boolean {
    const vote = `prepare/${view}/${from}`;
    if (slot.voted.has(vote)) return false;
    slot.voted.add(vote);
    const key = viewDigestKey(view, digest);
    let byFrom = slot.prepares.get(key);
    if (byFrom === undefined) {
      byFrom = new Map();
      slot.prepares.set(key, byFrom);
    }
    byFrom.set(from, envelope);
    return true;
  }

  /** Counts `from`'s commit; false if it already has one counted in this view. */
  addCommit(slot: Slot, view: number, digest: Uint8Array, from: number): boolean {
    const vote = `commit/${view}/${from}`;
    if (slot.voted.has(vote)) return false;
    slot.voted.add(vote);
    const key = viewDigestKey(view, digest);
    let senders = slot.commits.get(key);
    if (senders === undefined) {
      senders = new Set();
      slot.commits.set(key, senders);
    }
    senders.add(from);
    return true;
  }

  /** §4.4's P: the prepared certificates above `stableSeq`, in sequence order. */
  preparedAbove(stableSeq: number): PreparedCertificate[] {
    const prepared: PreparedCertificate[] = [];
    for (const [seq, slot] of [...this.slots.entries()].sort(([a], [b]) => a - b)) {
      if (seq > stableSeq && slot.prepared !== undefined) prepared.push(slot.prepared.certificate);
    }
    return prepared;
  }

  /** §4.3: a stable checkpoint at `seq` makes every slot up to it garbage. */
  discardUpTo(seq: number): void {
    for (const key of this.slots.keys()) if (key <= seq) this.slots.delete(key);
    assert(
      [...this.slots.keys()].every((key) => key > seq),
      `a slot at or below the stable checkpoint ${seq} survived`,
    );
  }

  /**
   * Rebuilds the slots above `stableSeq` from durable records (any order): the accepted pre-prepare,
   * own prepare, prepared certificate and own commit, so a restarted replica (index `self`) never
   * contradicts a vote it sent and still reports what it prepared (§4.4).
   */
  restore(records: readonly PersistRecord[], stableSeq: number, self: number): void {
    assert(this.slots.size === 0, 'restore only an empty message log');
    for (const record of [...records].sort((a, b) => a.seq - b.seq)) {
      if (record.seq <= stableSeq) continue;
      const slot = this.slot(record.seq);
      if (record.key === recordKey.prePrepare(record.seq)) {
        const envelope = decodeEnvelope(record.bytes);
        const message = decodeBody(envelope.body) as PrePrepare;
        slot.prePrepare = {
          view: message.view,
          digest: message.digest,
          proposal: message.proposal,
          envelope,
        };
      } else if (record.key === recordKey.prepare(record.seq)) {
        slot.ownPrepare = decodeEnvelope(record.bytes);
        const message = decodeBody(slot.ownPrepare.body) as Prepare;
        this.addPrepare(slot, message.view, message.digest, self, slot.ownPrepare);
      } else if (record.key === recordKey.prepared(record.seq)) {
        const raw = decodeCanonical(record.bytes) as { prePrepare: Uint8Array; prepares: Uint8Array[] };
        const certificate: PreparedCertificate = {
          prePrepare: decodeEnvelope(raw.prePrepare),
          prepares: raw.prepares.map(decodeEnvelope),
        };
        const message = decodeBody(certificate.prePrepare.body) as PrePrepare;
        slot.prepared = {
          view: message.view,
          digest: message.digest,
          proposal: message.proposal,
          certificate,
        };
      } else if (record.key === recordKey.commit(record.seq)) {
        slot.ownCommit = decodeEnvelope(record.bytes);
        const message = decodeBody(slot.ownCommit.body) as Commit;
        this.addCommit(slot, message.view, message.digest, self);
      }
    }
  }
}
