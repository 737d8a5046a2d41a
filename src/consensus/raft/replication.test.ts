import { describe, expect, it } from 'vitest';
import { TestCluster, encodeAppliedSnapshot } from '../../raft-group/testing/cluster.js';

function others(cluster: TestCluster, id: string): string[] {
  return [...cluster.servers.keys()].filter((other) => other !== id);
}

describe('Raft log replication', () => {
  it('replicates and applies proposals in order on every server (Raft §5.3)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    for (const word of ['x', 'y', 'z']) cluster.propose(leader, word);
    cluster.deliverAll();
    cluster.ticks(3);
    for (const id of cluster.servers.keys()) expect(cluster.appliedText(id)).toEqual(['', 'x', 'y', 'z']);
  });

  // NOT_LEADER since issue 13 (it was NOT_PRIMARY, the PBFT code); the leader is a typed field.
  it('a follower refuses proposals with a retriable NOT_LEADER naming the leader', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    const follower = others(cluster, leader)[0]!;
    const ready = cluster.propose(follower, 'x');
    expect(ready.rejected).toHaveLength(1);
    expect(ready.rejected[0]!.code).toBe('NOT_LEADER');
    expect(ready.rejected[0]!.reason).toContain(leader);
    expect(ready.rejected[0]).toMatchObject({ retriable: true, details: { leader } });
  });

  it('a server that knows no leader refuses with a retriable NOT_LEADER and no leader field', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const ready = cluster.propose('a', 'x');
    expect(ready.rejected).toEqual([
      { code: 'NOT_LEADER', reason: 'propose: not the leader (leader: unknown)', retriable: true },
    ]);
  });

  it('marks what the same input may later get through as retriable, and what it never will as not', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], extra: { entryBytesMax: 4 } });
    const leader = cluster.electLeader();
    expect(cluster.propose(leader, 'too large').rejected).toMatchObject([
      { code: 'OVERSIZE', retriable: false },
    ]);
    cluster.step(leader, { kind: 'transferLeadership', to: others(cluster, leader)[0]! });
    expect(cluster.propose(leader, 'x').rejected).toMatchObject([{ code: 'OVERLOADED', retriable: true }]);
  });

  it('repairs a divergent log after a leader change: conflicting entries are overwritten (Raft §5.3)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'], extra: { appendEntriesMax: 2 } });
    const old = cluster.electLeader();
    cluster.ticks(3);
    cluster.isolate([old]);
    // The old leader appends entries nobody else will see.
    for (const word of ['lost1', 'lost2', 'lost3', 'lost4']) cluster.propose(old, word);
    cluster.deliverAll();
    const rest = others(cluster, old);
    for (let i = 0; i < 300 && !rest.some((id) => cluster.server(id).node.status().role === 'leader'); i++) {
      cluster.tick(rest);
    }
    const next = rest.find((id) => cluster.server(id).node.status().role === 'leader')!;
    expect(next).toBeDefined();
    for (const word of ['kept1', 'kept2']) cluster.propose(next, word);
    cluster.deliverAll();
    cluster.heal();
    cluster.ticks(30);
    const oldNode = cluster.server(old).node;
    const nextNode = cluster.server(next).node;
    expect(oldNode.status().role).toBe('follower');
    expect(oldNode.entries()).toEqual(nextNode.entries());
    expect(cluster.appliedText(old)).toEqual(cluster.appliedText(next));
    expect(cluster.appliedText(old)).not.toContain('lost1');
    expect(cluster.server(old).storage.entries).toEqual(nextNode.entries());
  });

  it('never commits an entry of an earlier term by counting replicas (Raft §5.4.2, Figure 8)', () => {
    const cluster = new TestCluster({
      voters: ['s1', 's2', 's3', 's4', 's5'],
      preVote: false,
      checkQuorum: false,
      extra: { appendEntriesMax: 1 },
    });
    cluster.campaign('s1');
    cluster.deliverAll();
    expect(cluster.leaders()).toEqual(['s1']);
    cluster.ticks(2, ['s1']);
    // (a) s1 replicates index 2 to s2 only.
    cluster.isolate(['s1', 's2']);
    cluster.propose('s1', 'term-a');
    cluster.deliverAll();
    expect(cluster.server('s2').node.termAt(2)).toBe(cluster.server('s1').node.termAt(2));
    const termA = cluster.server('s1').node.termAt(2)!;
    // (b) s1 crashes; s5 wins with s3, s4 and appends its own index 2, which it never replicates.
    cluster.server('s1').down = true;
    cluster.filter = (m) => !(m.from === 's5' && m.type === 'append');
    cluster.campaign('s5');
    cluster.deliverAll();
    expect(cluster.server('s5').node.status().role).toBe('leader');
    // (c) s5 crashes; s1 restarts and is elected by s2, s3, s4.
    cluster.server('s5').down = true;
    cluster.restart('s1', 77);
    cluster.heal();
    cluster.filter = () => true;
    for (let i = 0; i < 5 && cluster.server('s1').node.status().role !== 'leader'; i++) {
      cluster.campaign('s1');
      // Lose every append that would carry s1's own-term entry to a server already holding index 2,
      // so index 2 spreads alone, as in Figure 8 (c).
      cluster.filter = (m) =>
        !(
          m.type === 'append' &&
          m.entries.some((e) => e.term > termA) &&
          cluster.server(m.to).node.termAt(2) === termA
        );
      cluster.deliverAll();
    }
    const s1 = cluster.server('s1').node;
    expect(s1.status().role).toBe('leader');
    // Index 2 (from term a) now sits on s1, s2, s3 — a majority — yet must not be committed.
    cluster.deliverAll();
    for (let i = 0; i < 3; i++) cluster.tick(['s1', 's2', 's3', 's4']);
    const holders = ['s1', 's2', 's3', 's4'].filter((id) => cluster.server(id).node.termAt(2) === termA);
    expect(holders.length).toBeGreaterThanOrEqual(3);
    expect(s1.status().commit).toBe(1);
    // (e) once an entry of s1's own term reaches a majority, both commit.
    cluster.filter = () => true;
    cluster.ticks(3, ['s1', 's2', 's3', 's4']);
    expect(s1.status().commit).toBeGreaterThanOrEqual(3);
    expect(cluster.appliedText('s3')).toContain('term-a');
  });

  it('brings a far-behind follower up with a snapshot (Raft §7)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    const [other, behind] = others(cluster, leader) as [string, string];
    cluster.server(behind).down = true;
    for (let i = 0; i < 30; i++) cluster.propose(leader, `e${i}`);
    cluster.deliverAll();
    cluster.ticks(3, [leader, other]);
    for (const id of [leader, other]) {
      const server = cluster.server(id);
      const applied = server.node.status().applied;
      const ready = cluster.step(id, {
        kind: 'snapshot',
        index: applied,
        data: encodeAppliedSnapshot(server.applied, applied),
      });
      expect(ready.rejected).toEqual([]);
      expect(server.node.status().snapshotIndex).toBe(applied);
      expect(server.storage.entries).toEqual([]);
    }
    cluster.propose(leader, 'after');
    cluster.server(behind).down = false;
    const installs: number[] = [];
    const handle = cluster.handle.bind(cluster);
    cluster.handle = (id, ready) => {
      if (id === behind && ready.installSnapshot !== undefined) installs.push(ready.installSnapshot.index);
      handle(id, ready);
    };
    cluster.ticks(10);
    expect(installs).toEqual([31]);
    expect(cluster.appliedText(behind)).toEqual(cluster.appliedText(leader));
    expect(cluster.appliedText(behind).at(-1)).toBe('after');
    expect(cluster.server(behind).storage.snapshot?.index).toBe(31);
  });

  it('rejects a snapshot beyond what was applied, leaving the log alone (Raft §7)', () => {
    const cluster = new TestCluster({ voters: ['a'] });
    cluster.electLeader();
    const ready = cluster.step('a', { kind: 'snapshot', index: 5, data: new Uint8Array() });
    expect(ready.rejected[0]!.code).toBe('SCHEMA_MISMATCH');
    expect(ready.persist).toEqual([]);
  });

  it('restarts from persisted state only and re-applies the committed log (Raft §5, Figure 2)', () => {
    const cluster = new TestCluster({ voters: ['a', 'b', 'c'] });
    const leader = cluster.electLeader();
    for (const word of ['x', 'y']) cluster.propose(leader, word);
    cluster.ticks(3);
    const follower = others(cluster, leader)[0]!;
    const before = cluster.appliedText(follower);
    cluster.restart(follower, 1234);
    cluster.ticks(3);
    expect(cluster.appliedText(follower)).toEqual(before);
  });
});

describe('Raft leader flow control (etcd Progress: probe → replicate, bounded inflight)', () => {
  it('a slow follower gets at most maxInflightMessages unanswered appends, then catches up (Raft §5.3)', () => {
    const cluster = new TestCluster({
      voters: ['a', 'b', 'c'],
      extra: { appendEntriesMax: 1, maxInflightMessages: 3 },
    });
    const leader = cluster.electLeader();
    cluster.ticks(3);
    const slow = others(cluster, leader)[0]!;
    // The slow follower receives everything but none of its answers reach the leader.
    cluster.cut.add(`${slow}>${leader}`);
    let appendsToSlow = 0;
    cluster.filter = (message) => {
      if (message.type === 'append' && message.to === slow) appendsToSlow++;
      return true;
    };
    for (let i = 0; i < 20; i++) {
      expect(cluster.propose(leader, `p${i}`).rejected).toEqual([]);
      cluster.deliverAll();
    }
    cluster.ticks(5);
    expect(cluster.appliedText(leader)).toContain('p19'); // the other follower keeps the quorum
    expect(appendsToSlow).toBeGreaterThan(0);
    expect(appendsToSlow).toBeLessThanOrEqual(3);
    // Answers flow again: probe from the known match index, then replicate the rest.
    cluster.heal();
    cluster.ticks(20);
    expect(cluster.appliedText(slow)).toEqual(cluster.appliedText(leader));
  });
});
