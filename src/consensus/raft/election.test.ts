import { describe, expect, it } from 'vitest';
import { RaftNode } from './node.js';
import { TestCluster } from '../../raft-group/testing/cluster.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('Raft elections', () => {
  it('elects exactly one leader that every server follows (Raft §5.2)', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const cluster = new TestCluster({ voters: ['a', 'b', 'c', 'd', 'e'], seed });
      const leader = cluster.electLeader();
      cluster.ticks(30);
      expect(cluster.leaders()).toEqual([leader]);
      const term = cluster.server(leader).node.status().term;
      for (const server of cluster.servers.values()) {
        expect(server.node.status()).toMatchObject({ term, leader });
      }
    }
  });

  it('a single-voter cluster elects itself and commits alone (Raft §5.2, §5.3)', () => {
    const cluster = new TestCluster({ voters: ['solo'] });
    expect(cluster.electLeader()).toBe('solo');
    cluster.propose('solo', 'x');
    expect(cluster.appliedText('solo')).toEqual(['', 'x']);
  });

  it('draws election timeouts from the seed: same seed, same timing (Raft §5.2)', () => {
    const run = (seed: number): number => {
      const node = new RaftNode({
        id: 'a',
        voters: ['a', 'b', 'c'],
        seed,
        electionTicks: 10,
        heartbeatTicks: 1,
      });
      for (let tick = 1; tick < 100; tick++) {
        if (node.step({ kind: 'tick' }).send.length > 0) return tick;
      }
      return -1;
    };
    expect(run(7)).toBe(run(7));
    const timeouts = new Set([1, 2, 3, 4, 5, 6, 7, 8].map(run));
    expect(timeouts.size).toBeGreaterThan(1);
    for (const t of timeouts) expect(t >= 10 && t < 20).toBe(true);
  });

  it('a candidate with a stale log loses the election (Raft §5.4.1)', () => {
    const node = new RaftNode(
      { id: 'b', voters: ['a', 'b', 'c'], seed: 1, electionTicks: 10, heartbeatTicks: 1 },
      {
        hardState: { term: 2, votedFor: null, commit: 0 },
        entries: [
          { index: 1, term: 1, type: 'normal', data: text('') },
          { index: 2, term: 2, type: 'normal', data: text('x') },
        ],
      },
    );
    const vote = (from: string, lastIndex: number, lastTerm: number, term: number) =>
      node.step({ kind: 'message', message: { type: 'vote', term, from, to: 'b', lastIndex, lastTerm } })
        .send[0]!.message;
    // Longer log but older last term: refused.
    expect(vote('c', 5, 1, 3)).toMatchObject({ type: 'voteResponse', granted: false, term: 3 });
    // Same last term, shorter log: refused.
    expect(vote('c', 1, 2, 4)).toMatchObject({ granted: false });
    // At least as up to date: granted, and the vote is persisted before the answer is sent.
    const ready = node.step({
      kind: 'message',
      message: { type: 'vote', term: 5, from: 'a', to: 'b', lastIndex: 2, lastTerm: 2 },
    });
    expect(ready.send[0]!.message).toMatchObject({ granted: true, term: 5 });
    expect(ready.persist).toContainEqual({
      op: 'hardState',
      hardState: { term: 5, votedFor: 'a', commit: 0 },
    });
  });

  it('in a cluster, the stale server never wins and committed entries survive (Raft §5.4.1)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], preVote: false, checkQuorum: false });
    const leader = cluster.electLeader();
    const stale = [...cluster.servers.keys()].find((id) => id !== leader)!;
    cluster.isolate([stale]);
    cluster.propose(leader, 'one');
    cluster.propose(leader, 'two');
    cluster.deliverAll();
    cluster.heal();
    // The stale server campaigns at once; it cannot win against the up-to-date majority.
    cluster.step(stale, { kind: 'tick' });
    for (let i = 0; i < 40; i++) {
      cluster.step(stale, { kind: 'tick' });
      cluster.deliverAll();
      expect(cluster.server(stale).node.status().role).not.toBe('leader');
      if (cluster.server(stale).node.status().role === 'candidate') break;
    }
    const next = cluster.electLeader();
    expect(next).not.toBe(stale);
    cluster.ticks(5);
    expect(cluster.appliedText(stale)).toContain('two');
  });

  it('a vote survives a restart: no second vote in the same term (Raft §5.2, Figure 2 persistent state)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], preVote: false });
    cluster.step('b', {
      kind: 'message',
      message: { type: 'vote', term: 3, from: 'a', to: 'b', lastIndex: 0, lastTerm: 0 },
    });
    cluster.restart('b', 99);
    const ready = cluster.step('b', {
      kind: 'message',
      message: { type: 'vote', term: 3, from: 'c', to: 'b', lastIndex: 0, lastTerm: 0 },
    });
    expect(ready.send[0]!.message).toMatchObject({ granted: false });
  });

  it('pre-vote keeps a partitioned server from disrupting the cluster on rejoin (thesis §9.6)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], preVote: true, checkQuorum: true });
    const leader = cluster.electLeader();
    const term = cluster.server(leader).node.status().term;
    const loner = [...cluster.servers.keys()].find((id) => id !== leader)!;
    cluster.isolate([loner]);
    cluster.ticks(200);
    // Its pre-votes fail, so its term never moved.
    expect(cluster.server(loner).node.status().term).toBe(term);
    cluster.heal();
    cluster.ticks(50);
    expect(cluster.leaders()).toEqual([leader]);
    expect(cluster.server(leader).node.status().term).toBe(term);
    expect(cluster.server(loner).node.status()).toMatchObject({ term, leader });
  });

  it('without pre-vote the same rejoin forces a new term (contrast for thesis §9.6)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], preVote: false, checkQuorum: false });
    const leader = cluster.electLeader();
    const term = cluster.server(leader).node.status().term;
    const loner = [...cluster.servers.keys()].find((id) => id !== leader)!;
    cluster.isolate([loner]);
    cluster.ticks(200);
    expect(cluster.server(loner).node.status().term).toBeGreaterThan(term + 2);
    cluster.heal();
    cluster.ticks(50);
    expect(cluster.server(cluster.electLeader()).node.status().term).toBeGreaterThan(term);
  });

  it('check-quorum: an isolated leader steps down within two election timeouts (thesis §6.2)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], checkQuorum: true });
    const leader = cluster.electLeader();
    cluster.isolate([leader]);
    cluster.ticks(20, [leader]);
    expect(cluster.server(leader).node.status().role).toBe('follower');
    const rest = [...cluster.servers.keys()].filter((id) => id !== leader);
    for (let i = 0; i < 200 && cluster.leaders().length === 0; i++) cluster.tick(rest);
    expect(cluster.leaders()).toHaveLength(1);
    expect(cluster.leaders()[0]).not.toBe(leader);
  });

  it('ignores vote requests while it hears from a leader (thesis §4.2.3 with check-quorum)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], preVote: false, checkQuorum: true });
    const leader = cluster.electLeader();
    const follower = [...cluster.servers.keys()].find((id) => id !== leader)!;
    const term = cluster.server(leader).node.status().term;
    const ready = cluster.step(follower, {
      kind: 'message',
      message: { type: 'vote', term: term + 5, from: 'x', to: follower, lastIndex: 99, lastTerm: 99 },
    });
    expect(ready.send).toEqual([]);
    expect(cluster.server(follower).node.status().term).toBe(term);
  });
});
