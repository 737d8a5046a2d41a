/**
 * Node-level safety checks driven by hand-built messages, for rules the cluster tests reach only by
 * luck: one uncommitted configuration change at a time (thesis §4.1) and the AppendEntries receiver's
 * commit rule (Raft Figure 2, AppendEntries receiver rule 5).
 */
import { describe, expect, it } from 'vitest';
import { RaftNode } from './node.js';
import type { RaftEntry, RaftMessage, RaftReady, RaftRestore } from './types.js';

const empty = new Uint8Array(0);

function entry(index: number, term: number, text = `e${index}@${term}`): RaftEntry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(text) };
}

function node(id: string, restore?: RaftRestore): RaftNode {
  return new RaftNode(
    { id, voters: ['a', 'b', 'c'], seed: 7, electionTicks: 10, heartbeatTicks: 1, preVote: false },
    restore,
  );
}

/** Ticks `n` until it campaigns, then grants it `voter`'s vote: it leads the next term. */
function elect(n: RaftNode, voter: string): RaftReady {
  for (let i = 0; i < 100 && n.status().role !== 'candidate'; i++) n.step({ kind: 'tick' });
  const { term, id } = n.status();
  const ready = n.step({
    kind: 'message',
    message: { type: 'voteResponse', term, from: voter, to: id, granted: true },
  });
  expect(n.status().role).toBe('leader');
  return ready;
}

function ack(n: RaftNode, from: string, matchIndex: number): RaftReady {
  const { term, id } = n.status();
  const message: RaftMessage = {
    type: 'appendResponse',
    term,
    from,
    to: id,
    success: true,
    matchIndex,
    rejectedIndex: 0,
    conflictIndex: 0,
    conflictTerm: 0,
  };
  return n.step({ kind: 'message', message });
}

describe('at most one uncommitted membership change (thesis §4.1)', () => {
  it('refuses a second change right after a first, with a typed BAD_CONFIG rejection and no log change', () => {
    const leader = node('a');
    elect(leader, 'b');
    ack(leader, 'b', leader.status().lastIndex); // the no-op of the term commits
    expect(leader.status().commit).toBe(leader.status().lastIndex);

    const first = leader.step({ kind: 'changeMembership', change: { type: 'addLearner', id: 'd' } });
    expect(first.rejected).toEqual([]);
    const afterFirst = leader.status().lastIndex;
    expect(leader.status().commit).toBeLessThan(afterFirst);

    for (const change of [
      { type: 'addVoter', id: 'd' },
      { type: 'removeServer', id: 'c' },
      { type: 'addLearner', id: 'e' },
    ] as const) {
      const second = leader.step({ kind: 'changeMembership', change });
      expect(second.rejected.map((r) => r.code)).toEqual(['BAD_CONFIG']);
      expect(second.persist).toEqual([]);
      expect(second.send).toEqual([]);
      expect(leader.status().lastIndex).toBe(afterFirst);
    }
    expect(leader.status().membership).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    expect(leader.entries().filter((e) => e.config !== undefined)).toHaveLength(1);

    // Once the first change commits, the next one is accepted.
    ack(leader, 'b', afterFirst);
    expect(leader.status().commit).toBe(afterFirst);
    const third = leader.step({ kind: 'changeMembership', change: { type: 'addVoter', id: 'd' } });
    expect(third.rejected).toEqual([]);
    expect(leader.status().membership).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] });
  });

  it('a new leader holding an uncommitted change from an earlier term refuses another until its own no-op commits', () => {
    const config: RaftEntry = {
      index: 2,
      term: 1,
      type: 'config',
      data: empty,
      config: { voters: ['a', 'b', 'c'], learners: ['d'] },
    };
    const leader = node('a', {
      hardState: { term: 1, votedFor: null, commit: 1 },
      entries: [entry(1, 1), config],
    });
    elect(leader, 'b');
    expect(leader.status().commit).toBe(1);
    const early = leader.step({ kind: 'changeMembership', change: { type: 'addVoter', id: 'd' } });
    expect(early.rejected.map((r) => r.code)).toEqual(['BAD_CONFIG']);
    expect(leader.entries().filter((e) => e.config !== undefined)).toHaveLength(1);

    ack(leader, 'b', leader.status().lastIndex);
    expect(leader.status().commit).toBe(leader.status().lastIndex);
    const later = leader.step({ kind: 'changeMembership', change: { type: 'addVoter', id: 'd' } });
    expect(later.rejected).toEqual([]);
  });
});

describe('AppendEntries receiver rule 5: commitIndex = min(leaderCommit, index of last new entry) (Raft Figure 2)', () => {
  // Follower b holds a stale suffix (3@2, 4@2) from a deposed leader; the leader of term 3 holds 1@1,
  // 2@1, then its own entries 3@3, 4@3 (committed, leaderCommit 4).
  const stale = (): RaftNode => {
    const follower = node('b', {
      hardState: { term: 2, votedFor: null, commit: 1 },
      entries: [entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)],
    });
    return follower;
  };
  const append = (
    prevIndex: number,
    prevTerm: number,
    entries: RaftEntry[],
    commit: number,
  ): RaftMessage => ({
    type: 'append',
    term: 3,
    from: 'a',
    to: 'b',
    prevIndex,
    prevTerm,
    entries,
    commit,
  });

  it('an empty append matched at 2 with leaderCommit 4 commits only up to 2, never the unverified suffix', () => {
    const follower = stale();
    const ready = follower.step({ kind: 'message', message: append(2, 1, [], 4) });
    expect(follower.status().commit).toBe(2);
    expect(ready.committed.map((e) => e.index)).toEqual([1, 2]);
    expect(ready.committed.some((e) => e.term === 2)).toBe(false);
    const response = ready.send.find((out) => out.message.type === 'appendResponse')!.message;
    expect(response).toMatchObject({ success: true, matchIndex: 2 });
    // The leader then overwrites the stale suffix; the follower commits the leader's entries.
    const repair = follower.step({ kind: 'message', message: append(2, 1, [entry(3, 3), entry(4, 3)], 4) });
    expect(follower.status().commit).toBe(4);
    expect(repair.committed.map((e) => `${e.index}@${e.term}`)).toEqual(['3@3', '4@3']);
  });

  it('an append carrying entry 2 with leaderCommit 4 commits only up to 2', () => {
    const follower = stale();
    const ready = follower.step({ kind: 'message', message: append(1, 1, [entry(2, 1)], 4) });
    expect(follower.status().commit).toBe(2);
    expect(ready.committed.map((e) => e.index)).toEqual([1, 2]);
    expect(follower.termAt(3)).toBe(2); // the stale suffix is kept (it does not conflict) but not committed
  });

  it("the leader's heartbeat never carries a commit index beyond what the follower is known to hold", () => {
    const leader = node('a');
    elect(leader, 'b');
    ack(leader, 'b', leader.status().lastIndex);
    for (const word of ['x', 'y']) leader.step({ kind: 'propose', data: new TextEncoder().encode(word) });
    ack(leader, 'b', leader.status().lastIndex);
    expect(leader.status().commit).toBe(leader.status().lastIndex);
    const heartbeat = (ready: RaftReady, to: string): RaftMessage | undefined =>
      ready.send.find((out) => out.to === to && out.message.type === 'heartbeat')?.message;
    let ready = leader.step({ kind: 'tick' });
    for (let i = 0; i < 5 && heartbeat(ready, 'c') === undefined; i++) ready = leader.step({ kind: 'tick' });
    // c never acknowledged anything: telling it to commit would commit whatever its log holds.
    expect(heartbeat(ready, 'c')).toMatchObject({ commit: 0 });
    expect(heartbeat(ready, 'b')).toMatchObject({ commit: leader.status().commit });
  });
});
