import { describe, expect, it } from 'vitest';
import { TestCluster } from '../../raft-group/testing/cluster.js';

describe('Raft leadership transfer (thesis §3.10)', () => {
  it('hands leadership to an up-to-date voter despite check-quorum leases', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], preVote: true, checkQuorum: true });
    const leader = cluster.electLeader();
    cluster.ticks(3);
    const target = ['a', 'b', 'c'].find((id) => id !== leader)!;
    const term = cluster.server(leader).node.status().term;
    const ready = cluster.step(leader, { kind: 'transferLeadership', to: target });
    expect(ready.send.map((out) => out.message.type)).toEqual(['timeoutNow']);
    expect(cluster.propose(leader, 'during').rejected[0]!.code).toBe('OVERLOADED');
    cluster.deliverAll();
    expect(cluster.leaders()).toEqual([target]);
    expect(cluster.server(target).node.status().term).toBe(term + 1);
  });

  it('first brings a lagging target up to date', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    cluster.ticks(3);
    const target = ['a', 'b', 'c'].find((id) => id !== leader)!;
    cluster.isolate([target]);
    cluster.propose(leader, 'x');
    cluster.deliverAll();
    cluster.heal();
    cluster.step(leader, { kind: 'transferLeadership', to: target });
    cluster.deliverAll();
    cluster.ticks(3);
    expect(cluster.leaders()).toEqual([target]);
    expect(cluster.appliedText(target)).toContain('x');
  });

  it('gives up after an election timeout when the target is unreachable, and leads on', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    cluster.ticks(3);
    const target = ['a', 'b', 'c'].find((id) => id !== leader)!;
    cluster.server(target).down = true;
    cluster.step(leader, { kind: 'transferLeadership', to: target });
    expect(cluster.propose(leader, 'blocked').rejected).toHaveLength(1);
    cluster.ticks(
      10,
      ['a', 'b', 'c'].filter((id) => id !== target),
    );
    expect(cluster.leaders()).toEqual([leader]);
    expect(cluster.propose(leader, 'ok').rejected).toEqual([]);
  });

  it('rejects a transfer to itself or to a non-voter', () => {
    const cluster = new TestCluster({ voters: ['a', 'b'], learners: ['l'] });
    const leader = cluster.electLeader();
    for (const to of [leader, 'l', 'nobody']) {
      expect(cluster.step(leader, { kind: 'transferLeadership', to }).rejected[0]!.code).toBe('BAD_CONFIG');
    }
  });
});
