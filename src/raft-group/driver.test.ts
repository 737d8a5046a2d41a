/**
 * The Raft group driver over memory disks, a manual clock and a FIFO network: what used to be
 * tested only through the node's SQLite-backed RaftGroup — persist BEFORE send, a proposal settling
 * when its entry is applied (and retriably rejected when another leader's entry took its index),
 * commit timeouts on the injected clock — and what a crash keeps of the memory disk.
 */
import { describe, expect, it } from 'vitest';
import type { RaftMessage, RaftPersistOp } from '../consensus/raft/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { RaftGroupDriver } from './driver.js';
import type { Proposed, RaftClock, ReplicatedStateMachine } from './driver.js';
import { MemoryRaftStorage } from './storage.js';

const text = new TextEncoder();
const untext = new TextDecoder();
const voters = ['a', 'b', 'c'];
const commitTimeoutMs = 1_000;

/** A log of applied entries; an entry's result is `index:data`, so a proposer can tell whose it got. */
class Log implements ReplicatedStateMachine {
  entries: string[] = [];
  /** What prepareSnapshot answers (a state machine whose outside state cannot be made durable now). */
  durable = true;
  prepareSnapshot(): boolean {
    return this.durable;
  }
  apply(index: number, data: Uint8Array): Uint8Array {
    if (data.length > 0) this.entries.push(untext.decode(data));
    return text.encode(`${index}:${untext.decode(data)}`);
  }
  snapshot(): Uint8Array {
    return text.encode(JSON.stringify(this.entries));
  }
  restore(_index: number, data: Uint8Array): void {
    this.entries = JSON.parse(untext.decode(data)) as string[];
  }
}

/** Timers fire only when the test advances time. */
class ManualClock implements RaftClock {
  now = 0;
  private readonly timers = new Set<{ at: number; callback: () => void }>();
  setTimeout(callback: () => void, ms: number): () => void {
    const timer = { at: this.now + ms, callback };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }
  advance(ms: number): void {
    this.now += ms;
    for (const timer of [...this.timers]) {
      if (timer.at > this.now) continue;
      this.timers.delete(timer);
      timer.callback();
    }
  }
}

interface Member {
  driver: RaftGroupDriver;
  readonly storage: MemoryRaftStorage;
  machine: Log;
}

/** Three drivers on one FIFO network the test controls. */
class Cluster {
  readonly members = new Map<string, Member>();
  readonly clock = new ManualClock();
  private queue: { to: string; message: RaftMessage }[] = [];
  /** Members cut off from everyone. */
  readonly isolated = new Set<string>();
  sends = 0;
  /** Messages sent while the sender's storage held unsynced writes, or lacked their term or vote. */
  sendsBeforePersist = 0;

  constructor(private readonly compaction: { snapshotEvery?: number; snapshotBytes?: number } = {}) {
    voters.forEach((id) => this.start(id, new MemoryRaftStorage()));
  }

  start(id: string, storage: MemoryRaftStorage): Member {
    const machine = new Log();
    const driver = new RaftGroupDriver({
      groupId: 'test',
      config: { id, voters, seed: voters.indexOf(id) + 1, electionTicks: 10, heartbeatTicks: 1 },
      storage,
      clock: this.clock,
      transport: {
        send: (to, message) => {
          this.sends++;
          const stored = storage.current.hardState;
          // A pre-vote names the term it would start, which nobody has entered yet (thesis §9.6).
          const preVote = message.type === 'preVote' || message.type === 'preVoteResponse';
          if (
            storage.unsyncedCount > 0 ||
            (!preVote && stored.term < message.term) ||
            (message.type === 'voteResponse' && message.granted && stored.votedFor !== message.to)
          ) {
            this.sendsBeforePersist++;
          }
          this.queue.push({ to, message });
        },
      },
      stateMachine: machine,
      commitTimeoutMs,
      ...this.compaction,
    });
    driver.replay();
    const member = { driver, storage, machine };
    this.members.set(id, member);
    return member;
  }

  /** Proposes on `id` and delivers until the proposal settled. */
  async commit(id: string, data: string): Promise<Proposed> {
    const proposal = this.member(id).driver.propose(text.encode(data));
    this.deliverAll();
    return proposal;
  }

  member(id: string): Member {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  deliverAll(): void {
    for (let n = 0; this.queue.length > 0; n++) {
      if (n > 100_000) throw new Error('message storm');
      const { to, message } = this.queue.shift()!;
      if (this.isolated.has(to) || this.isolated.has(message.from)) continue;
      this.members.get(to)?.driver.step({ kind: 'message', message });
    }
  }

  tick(ids: readonly string[] = voters): void {
    for (const id of ids) this.member(id).driver.tick();
    this.deliverAll();
  }

  /** Ticks `ids` until exactly one of them leads, and returns it. */
  electLeader(ids: readonly string[] = voters): string {
    for (let i = 0; i < 500; i++) {
      this.tick(ids);
      const leaders = ids.filter((id) => this.member(id).driver.isLeader);
      if (leaders.length === 1) return leaders[0]!;
    }
    throw new Error('no leader elected');
  }
}

/** Settles-tracking wrapper: lets a test see whether a promise has settled yet. */
function track<T>(promise: Promise<T>): { settled: () => boolean; result: Promise<T> } {
  let done = false;
  const result = promise.finally(() => {
    done = true;
  });
  result.catch(() => {});
  return { settled: () => done, result };
}

describe('RaftGroupDriver: compaction', () => {
  it('takes a snapshot once the entries since the last one hold snapshotBytes, however few they are', async () => {
    const cluster = new Cluster({ snapshotEvery: 1_000, snapshotBytes: 100 });
    const leader = cluster.electLeader();
    for (let i = 0; i < 10; i++) await cluster.commit(leader, `entry ${i} `.padEnd(30, '.'));
    cluster.tick();
    for (const id of voters) {
      const image = cluster.member(id).storage.current;
      expect(image.snapshot?.index ?? 0, id).toBeGreaterThan(0);
      // 30-byte entries, a snapshot past every 100 bytes: at most 3 entries stay in the log.
      expect(image.entries.length, id).toBeLessThanOrEqual(4);
      expect(cluster.member(id).machine.entries).toHaveLength(10);
    }
  });

  it('keeps the whole log while the state machine cannot make its outside state durable', async () => {
    const cluster = new Cluster({ snapshotEvery: 2 });
    const leader = cluster.electLeader();
    for (const id of voters) cluster.member(id).machine.durable = false;
    for (let i = 0; i < 6; i++) await cluster.commit(leader, `e${i}`);
    cluster.tick();
    expect(cluster.member(leader).storage.current.snapshot).toBeUndefined();
    for (const id of voters) cluster.member(id).machine.durable = true;
    await cluster.commit(leader, 'e6');
    cluster.tick();
    expect(cluster.member(leader).storage.current.snapshot?.index ?? 0).toBeGreaterThan(0);
  });
});

describe('RaftGroupDriver', () => {
  it('writes and syncs every Ready before it sends anything from it', () => {
    const cluster = new Cluster();
    const leader = cluster.electLeader();
    for (let i = 0; i < 5; i++) void cluster.member(leader).driver.propose(text.encode(`x${i}`));
    cluster.tick();
    expect(cluster.sends).toBeGreaterThan(10);
    expect(cluster.sendsBeforePersist).toBe(0);
  });

  it("settles a proposal when its entry is applied here, with the state machine's result", async () => {
    const cluster = new Cluster();
    const leader = cluster.electLeader();
    const driver = cluster.member(leader).driver;
    const proposal = track(driver.propose(text.encode('hello')));
    await Promise.resolve();
    // Appended and sent, not yet committed: nobody answered.
    expect(proposal.settled()).toBe(false);
    cluster.deliverAll();
    const proposed: Proposed = await proposal.result;
    expect(untext.decode(proposed.result)).toBe(`${proposed.index}:hello`);
    expect(driver.appliedIndex).toBe(proposed.index);
    for (const id of voters) {
      cluster.tick();
      expect(cluster.member(id).machine.entries).toEqual(['hello']);
    }
  });

  it('rejects a proposal retriably, naming the new leader, when another leader’s entry took its index', async () => {
    const cluster = new Cluster();
    const old = cluster.electLeader();
    cluster.isolated.add(old);
    const lost = track(cluster.member(old).driver.propose(text.encode('lost')));
    const others = voters.filter((id) => id !== old);
    const next = cluster.electLeader(others);
    await cluster.commit(next, 'kept');
    cluster.isolated.clear();
    for (let i = 0; i < 50 && !lost.settled(); i++) {
      cluster.tick();
      await Promise.resolve();
    }
    const error = await lost.result.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(LedgerbusError);
    expect(error).toMatchObject({ code: ErrorCode.NotLeader, retriable: true, details: { leader: next } });
    expect(cluster.member(old).machine.entries).toEqual(['kept']);
  });

  it('times a proposal out on the injected clock, retriably', async () => {
    const cluster = new Cluster();
    const leader = cluster.electLeader();
    cluster.isolated.add(leader);
    const proposal = track(cluster.member(leader).driver.propose(text.encode('stuck')));
    cluster.clock.advance(commitTimeoutMs - 1);
    await Promise.resolve();
    expect(proposal.settled()).toBe(false);
    cluster.clock.advance(1);
    await expect(proposal.result).rejects.toMatchObject({ code: ErrorCode.Timeout, retriable: true });
  });

  it('keeps across a crash everything it showed anyone, and replays it on restart', async () => {
    const cluster = new Cluster();
    const leader = cluster.electLeader();
    for (let i = 0; i < 3; i++) await cluster.commit(leader, `e${i}`);
    cluster.tick();
    const term = cluster.member(leader).driver.raft.status().term;
    for (const id of voters) {
      const { storage } = cluster.member(id);
      storage.crash();
      const restarted = cluster.start(id, storage);
      expect(restarted.driver.raft.status().term).toBe(term);
      expect(restarted.machine.entries).toEqual(['e0', 'e1', 'e2']);
    }
  });
});

describe('MemoryRaftStorage', () => {
  const hardState = (term: number): RaftPersistOp => ({
    op: 'hardState',
    hardState: { term, votedFor: null, commit: 0 },
  });
  const append = (index: number): RaftPersistOp => ({
    op: 'append',
    entries: [{ index, term: 1, type: 'normal', data: text.encode(`e${index}`) }],
  });

  it('loses unsynced transactions at a crash, keeps synced ones, and a torn crash keeps a prefix', () => {
    const storage = new MemoryRaftStorage();
    expect(storage.restore()).toBeUndefined();
    storage.persist([hardState(1), append(1)]);
    storage.sync();
    storage.persist([hardState(2), append(2)]);
    // A running process reads its own unsynced writes.
    expect(storage.restore()?.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(storage.crash()).toEqual({ unsynced: 1, kept: 0 });
    expect(storage.restore()).toMatchObject({ hardState: { term: 1 }, entries: [{ index: 1 }] });

    storage.persist([append(2)]);
    storage.persist([hardState(3), append(3)]);
    expect(storage.crash(1)).toEqual({ unsynced: 2, kept: 1 });
    const restored = storage.restore()!;
    expect(restored.hardState.term).toBe(1);
    expect(restored.entries.map((e) => e.index)).toEqual([1, 2]);
  });
});
