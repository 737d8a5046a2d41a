// The named parts of the Raft core on their own: the invariants each states, and the answers the
// node relies on. The node-level behaviour is covered by the scenario tests next to this file.
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../errors.js';
import { LeadershipTransfer } from './leadership-transfer.js';
import { changedMembership } from './membership-change.js';
import {
  acknowledged,
  becomeProbe,
  becomeReplicate,
  checkProgress,
  newProgress,
  sentAppend,
} from './progress.js';
import { RaftLog } from './raft-log.js';
import { ReadIndex } from './read-index.js';
import type { RaftEntry, RaftSnapshot } from './types.js';

const membership = { voters: ['a', 'b', 'c'], learners: [] };
const empty: RaftSnapshot = { index: 0, term: 0, membership, data: new Uint8Array(0) };
const entry = (index: number, term: number, config?: typeof membership): RaftEntry => ({
  index,
  term,
  type: config === undefined ? 'normal' : 'config',
  data: new Uint8Array(0),
  ...(config === undefined ? {} : { config }),
});

describe('RaftLog', () => {
  const terms = [1, 1, 2, 2, 2];
  const log = (): RaftLog =>
    new RaftLog(
      empty,
      terms.map((term, i) => entry(i + 1, term)),
    );

  it('points a leader at the start of our conflicting term, never at or below commit (Raft §5.3)', () => {
    expect(log().conflictHint(5, 0)).toEqual({ conflictIndex: 3, conflictTerm: 2 });
    expect(log().conflictHint(5, 3)).toEqual({ conflictIndex: 4, conflictTerm: 2 });
    // Our log is too short: retry just past its end.
    expect(log().conflictHint(9, 0)).toEqual({ conflictIndex: 6, conflictTerm: 0 });
  });

  it('keeps its entries consecutive after the snapshot, and asserts it', () => {
    const held = log();
    expect(() => held.append([entry(7, 2)])).toThrow(AssertionError);
    expect(held.append([entry(6, 3, { voters: ['a'], learners: [] })])).toBe(true);
    expect(held.membershipAt(6)).toEqual({ voters: ['a'], learners: [] });
    expect(held.truncateFrom(6)).toBe(true);
    expect(held.membershipAt(6)).toBe(membership);
    expect(() => held.truncateFrom(0)).toThrow(AssertionError);
  });

  it('compacts only held entries, keeping those after the snapshot, and installs only newer snapshots', () => {
    const held = log();
    held.compact({ index: 3, term: 2, membership, data: new Uint8Array(0) });
    expect(held.held.map((e) => e.index)).toEqual([4, 5]);
    expect([held.termAt(2), held.termAt(3), held.lastIndex()]).toEqual([undefined, 2, 5]);
    expect(() => held.compact({ index: 6, term: 2, membership, data: new Uint8Array(0) })).toThrow(
      AssertionError,
    );
    expect(() => held.install({ index: 3, term: 2, membership, data: new Uint8Array(0) })).toThrow(
      AssertionError,
    );
  });
});

describe('Progress', () => {
  it('streams in the replicate state and frees in-flight appends as the peer acknowledges', () => {
    const pr = newProgress(1);
    becomeReplicate(pr);
    sentAppend(pr, 3);
    sentAppend(pr, 5);
    expect(pr).toMatchObject({ next: 6, inflight: [3, 5] });
    pr.match = 3;
    acknowledged(pr);
    expect(pr.inflight).toEqual([5]);
  });

  it('waits, paused, for each answer while probing', () => {
    const pr = newProgress(4);
    sentAppend(pr, 6);
    expect(pr).toMatchObject({ state: 'probe', next: 4, paused: true, inflight: [] });
    becomeProbe(pr, 2);
    expect(pr).toMatchObject({ next: 2, paused: false });
  });

  it('asserts match < next, and in-flight appends only while replicating', () => {
    expect(() => checkProgress({ ...newProgress(1), match: 1 })).toThrow(AssertionError);
    expect(() => checkProgress({ ...newProgress(1), inflight: [1] })).toThrow(AssertionError);
  });
});

describe('ReadIndex (thesis §6.4)', () => {
  const isVoter = (id: string): boolean => ['a', 'b', 'c'].includes(id);

  it('confirms a read once a quorum of voters answered its round, and every read before it', () => {
    const reads = new ReadIndex();
    expect(reads.start(['r1'], 4, 'a')).toBe(1);
    expect(reads.start(['r2'], 5, 'a')).toBe(2);
    // An answer to round 1 confirms r1 only; a learner's answer counts for nothing.
    expect(reads.acknowledge('l', 2, isVoter, 2)).toEqual([]);
    expect(reads.acknowledge('b', 1, isVoter, 2)).toEqual([{ id: 'r1', index: 4 }]);
    expect(reads.acknowledge('c', 2, isVoter, 2)).toEqual([{ id: 'r2', index: 5 }]);
    expect(reads.size).toBe(0);
  });

  it('aborts started reads first, then those waiting for a commit of the term', () => {
    const reads = new ReadIndex();
    reads.awaitCommit('w1');
    reads.start(['s1'], 1, undefined);
    expect(reads.abort()).toEqual(['s1', 'w1']);
    expect(reads.size).toBe(0);
  });

  it('asserts that read indexes never go down', () => {
    const reads = new ReadIndex();
    reads.start(['r1'], 5, 'a');
    expect(() => reads.start(['r2'], 4, 'a')).toThrow(AssertionError);
  });
});

describe('LeadershipTransfer (thesis §3.10)', () => {
  it('is abandoned after the timeout, keeping the leader leading', () => {
    const transfer = new LeadershipTransfer();
    transfer.start('b');
    transfer.tick(2);
    expect(transfer.target).toBe('b');
    transfer.tick(2);
    expect(transfer.target).toBeNull();
  });
});

describe('changedMembership (thesis §4.1)', () => {
  it('adds, promotes and removes one server at a time, keeping configurations sorted', () => {
    const learner = changedMembership(membership, { type: 'addLearner', id: 'd' });
    expect(learner).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    expect(changedMembership(learner, { type: 'addVoter', id: 'd' })).toEqual({
      voters: ['a', 'b', 'c', 'd'],
      learners: [],
    });
    expect(changedMembership(membership, { type: 'removeServer', id: 'b' })).toEqual({
      voters: ['a', 'c'],
      learners: [],
    });
    expect(() =>
      changedMembership({ voters: ['a'], learners: [] }, { type: 'removeServer', id: 'a' }),
    ).toThrow(/cannot remove the last voter/);
  });
});
