import { describe, expect, it } from 'vitest';
import { TestCluster } from '../../raft-group/testing/cluster.js';

describe('Raft learners and membership changes', () => {
  it('a learner receives entries but its acknowledgement does not count for commitment (thesis §4.2.1)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b'], learners: ['l'] });
    const leader = cluster.electLeader();
    const voter = leader === 'a' ? 'b' : 'a';
    cluster.ticks(3);
    const commit = cluster.server(leader).node.status().commit;
    cluster.isolate([voter]);
    cluster.propose(leader, 'x');
    cluster.ticks(3, [leader, 'l']);
    expect(cluster.server('l').node.entries().at(-1)?.data).toEqual(new TextEncoder().encode('x'));
    expect(cluster.server(leader).node.status().commit).toBe(commit);
    cluster.heal();
    cluster.ticks(3);
    expect(cluster.appliedText('l')).toContain('x');
  });

  it('a learner never campaigns and its vote does not elect anyone (thesis §4.2.1)', () => {
    const cluster = new TestCluster({
      voters: ['a', 'b'],
      learners: ['l'],
      preVote: false,
      checkQuorum: false,
    });
    cluster.ticks(100, ['l']);
    expect(cluster.server('l').node.status()).toMatchObject({ role: 'follower', term: 0 });
    cluster.isolate(['a']);
    cluster.campaign('b');
    cluster.step('b', {
      kind: 'message',
      message: { type: 'voteResponse', term: 1, from: 'l', to: 'b', granted: true },
    });
    cluster.deliverAll();
    expect(cluster.server('b').node.status().role).toBe('candidate');
  });

  it('adds a learner, promotes it to voter, then removes a voter, one change at a time (thesis §4.1)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    cluster.ticks(2);
    cluster.addServer('d', { voters: [], learners: [] });
    const first = cluster.step(leader, { kind: 'changeMembership', change: { type: 'addLearner', id: 'd' } });
    expect(first.rejected).toEqual([]);
    // The change took effect on append: a second one waits for the first to commit.
    const second = cluster.step(leader, { kind: 'changeMembership', change: { type: 'addVoter', id: 'd' } });
    expect(second.rejected[0]!.code).toBe('BAD_CONFIG');
    cluster.ticks(5);
    expect(cluster.server('d').node.status().membership).toEqual({
      voters: ['a', 'b', 'c'],
      learners: ['d'],
    });
    expect(
      cluster.step(leader, { kind: 'changeMembership', change: { type: 'addVoter', id: 'd' } }).rejected,
    ).toEqual([]);
    cluster.ticks(5);
    for (const server of cluster.servers.values()) {
      expect(server.node.status().membership).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] });
    }
    const removed = ['a', 'b', 'c'].find((id) => id !== leader)!;
    cluster.step(leader, { kind: 'changeMembership', change: { type: 'removeServer', id: removed } });
    cluster.ticks(5);
    cluster.server(removed).down = true;
    // Three voters left: the leader and one other suffice, so commits go on with another server down.
    const spare = ['a', 'b', 'c', 'd'].find((id) => id !== leader && id !== removed)!;
    cluster.server(spare).down = true;
    cluster.propose(leader, 'still-commits');
    cluster.ticks(3);
    expect(cluster.appliedText(leader)).toContain('still-commits');
  });

  it('rejects invalid changes without touching the log (thesis §4.1)', () => {
    const cluster = new TestCluster({ voters: ['a'] });
    cluster.electLeader();
    const last = cluster.server('a').node.status().lastIndex;
    for (const change of [
      { type: 'addVoter', id: 'a' },
      { type: 'removeServer', id: 'zz' },
      { type: 'removeServer', id: 'a' },
    ] as const) {
      expect(cluster.step('a', { kind: 'changeMembership', change }).rejected[0]!.code).toBe('BAD_CONFIG');
    }
    expect(cluster.server('a').node.status().lastIndex).toBe(last);
  });

  it('a leader that removes itself steps down once the change commits (thesis §4.2.2)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    cluster.ticks(2);
    cluster.step(leader, { kind: 'changeMembership', change: { type: 'removeServer', id: leader } });
    cluster.ticks(3);
    expect(cluster.server(leader).node.status().role).toBe('follower');
    const rest = ['a', 'b', 'c'].filter((id) => id !== leader);
    cluster.server(leader).down = true;
    let next: string | undefined;
    for (let i = 0; i < 300 && next === undefined; i++) {
      cluster.tick(rest);
      next = cluster.leaders()[0];
    }
    expect(rest).toContain(next);
    cluster.propose(next!, 'two-voters');
    cluster.ticks(3, rest);
    expect(cluster.appliedText(rest[0]!)).toContain('two-voters');
  });
});

describe('Raft read index (thesis §6.4)', () => {
  it('serves a read only after a heartbeat round reaches a quorum', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    cluster.ticks(2);
    const commit = cluster.server(leader).node.status().commit;
    const ready = cluster.step(leader, { kind: 'readIndex', id: 'r1' });
    expect(ready.readStates).toEqual([]);
    expect(ready.send.some((out) => out.message.type === 'heartbeat')).toBe(true);
    cluster.deliverAll();
    expect(cluster.server(leader).readStates).toEqual([{ id: 'r1', index: commit }]);
  });

  it('does not serve a read while the leader cannot reach a quorum', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], checkQuorum: false });
    const leader = cluster.electLeader();
    cluster.ticks(2);
    cluster.isolate([leader]);
    cluster.step(leader, { kind: 'readIndex', id: 'r1' });
    cluster.ticks(30, [leader]);
    expect(cluster.server(leader).readStates).toEqual([]);
  });

  it('waits for an entry of its own term to commit before fixing the read index', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], preVote: false });
    cluster.campaign('a');
    // Hold the votes' answers back: become leader, then ask before the no-op commits.
    const queued = cluster.queue.splice(0);
    for (const out of queued) cluster.step(out.to, { kind: 'message', message: out.message });
    const answers = cluster.queue.splice(0);
    for (const out of answers) cluster.step(out.to, { kind: 'message', message: out.message });
    expect(cluster.server('a').node.status().role).toBe('leader');
    cluster.queue = [];
    const ready = cluster.step('a', { kind: 'readIndex', id: 'early' });
    expect(ready.send.filter((out) => out.message.type === 'heartbeat')).toEqual([]);
    cluster.ticks(3);
    const reads = cluster.server('a').readStates;
    expect(reads.map((r) => r.id)).toEqual(['early']);
    expect(cluster.server('a').node.termAt(reads[0]!.index)).toBe(cluster.server('a').node.status().term);
  });

  // NOT_LEADER since issue 13 (it was NOT_PRIMARY, the PBFT code).
  it('a follower refuses reads with a retriable NOT_LEADER naming the leader', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    const follower = ['a', 'b', 'c'].find((id) => id !== leader)!;
    expect(cluster.step(follower, { kind: 'readIndex', id: 'r' }).rejected[0]).toMatchObject({
      code: 'NOT_LEADER',
      retriable: true,
      details: { leader },
    });
  });

  it('a leader that loses leadership aborts its unconfirmed reads with a retriable NOT_LEADER (thesis §6.4)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    cluster.ticks(3);
    cluster.isolate([leader]);
    expect(cluster.step(leader, { kind: 'readIndex', id: 'r' }).rejected).toEqual([]);
    // Check-quorum: without its followers the leader steps down within an election timeout.
    const aborted = [];
    for (let i = 0; i < 40 && cluster.server(leader).node.status().role === 'leader'; i++)
      aborted.push(...cluster.step(leader, { kind: 'tick' }).rejected);
    expect(aborted).toEqual([
      { code: 'NOT_LEADER', reason: 'read r aborted: leadership lost; retry at the leader', retriable: true },
    ]);
  });
});
