import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../errors.js';
import { decodeBody, proposalDigest } from './messages.js';
import type { Envelope, PreparedCertificate, PrePrepare, ViewChange } from './messages.js';
import { computeNewViewPlan, newViewPrePrepareMatches } from './new-view.js';
import { CONFIG_EPOCH, Cluster, GROUP_ID } from '../../partition/testing/cluster.js';
import type { CertifiedHeader, Proposal } from './types.js';

/**
 * The new primary's O (Castro & Liskov §4.4): from the view changes V, min-s is the latest stable
 * checkpoint in V and max-s the highest prepared sequence number; for each n in (min-s, max-s], O
 * re-proposes the batch prepared in the highest view, or a null request if none prepared. Backups
 * recompute O from the same V, so the computation must be a pure function of V.
 */

const cluster = new Cluster({ replicas: 4, label: 'new-view-plan' });
const crypto = cluster.node(0).signer.crypto;
const NEW_VIEW = 5;

function proposal(view: number, tag: string): Proposal {
  return {
    view,
    proposer: `r${view % 4}`,
    timestamp: 1000 + view,
    requests: [new TextEncoder().encode(tag)],
  };
}

/** A prepared certificate for `seq`: only its pre-prepare matters to O (validity is checked before). */
function prepared(seq: number, view: number, tag: string): PreparedCertificate {
  const batch = proposal(view, tag);
  const prePrepare = cluster.signEnvelope(view % 4, {
    type: 'pre-prepare',
    view,
    seq,
    digest: proposalDigest(crypto, batch),
    proposal: batch,
  });
  return { prePrepare, prepares: [] };
}

function stable(height: number): CertifiedHeader {
  return {
    header: {
      partitionId: GROUP_ID,
      configEpoch: CONFIG_EPOCH,
      height,
      previousHash: new Uint8Array(32),
      transactionsRoot: new Uint8Array(32),
      resultsRoot: new Uint8Array(32),
      timestamp: 0,
      view: 0,
      proposer: 'r0',
    },
    signatures: [],
  };
}

function viewChange(
  from: number,
  options: { stable?: CertifiedHeader; prepared?: PreparedCertificate[]; newView?: number },
): ViewChange {
  return {
    type: 'view-change',
    group: GROUP_ID,
    epoch: CONFIG_EPOCH,
    from,
    newView: options.newView ?? NEW_VIEW,
    stable: options.stable ?? null,
    prepared: options.prepared ?? [],
  };
}

/** What O re-proposes, readably: "seq:tag" for a carried batch, "seq:null" for a null request. */
function summary(changes: readonly ViewChange[]): string[] {
  return computeNewViewPlan(changes, NEW_VIEW).entries.map(
    (entry) =>
      `${entry.seq}:${entry.proposal === undefined ? 'null' : new TextDecoder().decode(entry.proposal.requests[0])}`,
  );
}

describe('computeNewViewPlan (§4.4, the new primary computes O from V)', () => {
  it('with nothing prepared and no checkpoint, O is empty', () => {
    const plan = computeNewViewPlan([viewChange(1, {}), viewChange(2, {}), viewChange(3, {})], NEW_VIEW);
    expect(plan).toMatchObject({ view: NEW_VIEW, minSeq: 0, maxSeq: 0, stable: undefined, entries: [] });
  });

  it('starts after the latest stable checkpoint in V and ends at the highest prepared sequence number', () => {
    const changes = [
      viewChange(1, { stable: stable(4), prepared: [prepared(5, 1, 'a'), prepared(7, 1, 'c')] }),
      viewChange(2, { stable: stable(8), prepared: [prepared(9, 2, 'x'), prepared(11, 2, 'z')] }),
      viewChange(3, {}),
    ];
    const plan = computeNewViewPlan(changes, NEW_VIEW);
    expect(plan.minSeq).toBe(8);
    expect(plan.maxSeq).toBe(11);
    expect(plan.stable?.header.height).toBe(8);
    // 5 and 7 are below min-s: the checkpoint covers them. 10 prepared nowhere: a null request.
    expect(summary(changes)).toEqual(['9:x', '10:null', '11:z']);
  });

  it('re-proposes, for each sequence number, the batch prepared in the highest view', () => {
    const changes = [
      viewChange(0, { prepared: [prepared(1, 1, 'old'), prepared(2, 3, 'newest')] }),
      viewChange(1, { prepared: [prepared(1, 2, 'newer'), prepared(2, 2, 'stale')] }),
      viewChange(2, { prepared: [prepared(1, 0, 'oldest')] }),
    ];
    expect(summary(changes)).toEqual(['1:newer', '2:newest']);
  });

  it('is the same whatever order V comes in, so backups recompute the primary’s O', () => {
    const changes = [
      viewChange(0, { stable: stable(4), prepared: [prepared(6, 1, 'p'), prepared(8, 2, 'q')] }),
      viewChange(1, { prepared: [prepared(6, 3, 'r')] }),
      viewChange(2, { stable: stable(4), prepared: [prepared(5, 2, 's')] }),
    ];
    expect(summary([...changes].reverse())).toEqual(summary(changes));
    expect(summary(changes)).toEqual(['5:s', '6:r', '7:null', '8:q']);
  });

  it('refuses view changes for another view: that is a bug in the caller, not bad input', () => {
    expect(() => computeNewViewPlan([viewChange(1, { newView: NEW_VIEW + 1 })], NEW_VIEW)).toThrow(
      AssertionError,
    );
  });
});

describe('newViewPrePrepareMatches (§4.4, backups check the primary’s O)', () => {
  const primaryId = `r${NEW_VIEW % 4}`;
  const expected = { view: NEW_VIEW, primaryId, latestTimestamp: 2000 };

  function prePrepare(seq: number, batch: Proposal, view = NEW_VIEW): PrePrepare {
    const envelope: Envelope = cluster.signEnvelope(NEW_VIEW % 4, {
      type: 'pre-prepare',
      view,
      seq,
      digest: proposalDigest(crypto, batch),
      proposal: batch,
    });
    return decodeBody(envelope.body) as PrePrepare;
  }

  it('accepts the carried batch, and only it, at its sequence number and in the new view', () => {
    const carried = proposal(2, 'carried');
    const entry = { seq: 3, proposal: carried };
    expect(newViewPrePrepareMatches(crypto, prePrepare(3, carried), entry, expected)).toBe(true);
    expect(newViewPrePrepareMatches(crypto, prePrepare(3, proposal(2, 'other')), entry, expected)).toBe(
      false,
    );
    expect(newViewPrePrepareMatches(crypto, prePrepare(4, carried), entry, expected)).toBe(false);
    expect(newViewPrePrepareMatches(crypto, prePrepare(3, carried, NEW_VIEW - 1), entry, expected)).toBe(
      false,
    );
  });

  it('accepts for a null request only an empty batch of the new primary, not stamped in the future', () => {
    const entry = { seq: 3 };
    const nullBatch: Proposal = { view: NEW_VIEW, proposer: primaryId, timestamp: 2000, requests: [] };
    expect(newViewPrePrepareMatches(crypto, prePrepare(3, nullBatch), entry, expected)).toBe(true);
    const smuggled = { ...nullBatch, requests: [new Uint8Array([1])] };
    expect(newViewPrePrepareMatches(crypto, prePrepare(3, smuggled), entry, expected)).toBe(false);
    const future = { ...nullBatch, timestamp: 2001 };
    expect(newViewPrePrepareMatches(crypto, prePrepare(3, future), entry, expected)).toBe(false);
    const otherProposer = { ...nullBatch, proposer: 'r0' };
    expect(newViewPrePrepareMatches(crypto, prePrepare(3, otherProposer), entry, expected)).toBe(false);
  });
});
