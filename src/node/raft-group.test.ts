import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyRaftPersist } from '../raft-group/storage.js';
import type { RaftStorageImage as RaftStorage } from '../raft-group/storage.js';
import type { RaftEntry, RaftPersistOp } from '../consensus/raft/types.js';
import { RaftDatabase } from './raft-database.js';
import { RaftGroup } from './raft-group.js';
import type { ReplicatedStateMachine } from './raft-group.js';

const groupId = 'topic:invoices';
const text = new TextEncoder();
const untext = new TextDecoder();

/** Named counters; an entry is JSON `{"key": ..., "add": n}` and its result the counter's new value. */
class Counters implements ReplicatedStateMachine {
  values = new Map<string, number>();
  readonly restoredAt: number[] = [];
  readonly appliedAt: number[] = [];

  apply(index: number, data: Uint8Array): Uint8Array {
    this.appliedAt.push(index);
    if (data.length === 0) return new Uint8Array(0);
    let op: unknown;
    try {
      op = JSON.parse(untext.decode(data));
    } catch {
      return text.encode('error: not JSON');
    }
    if (
      typeof op !== 'object' ||
      op === null ||
      !('key' in op) ||
      !('add' in op) ||
      typeof op.key !== 'string' ||
      typeof op.add !== 'number'
    ) {
      return text.encode('error: bad operation');
    }
    const value = (this.values.get(op.key) ?? 0) + op.add;
    this.values.set(op.key, value);
    return text.encode(String(value));
  }

  snapshot(): Uint8Array {
    return text.encode(JSON.stringify([...this.values].sort(([a], [b]) => a.localeCompare(b))));
  }

  restore(index: number, data: Uint8Array): void {
    this.restoredAt.push(index);
    this.values = new Map(JSON.parse(untext.decode(data)) as [string, number][]);
  }

  state(): Record<string, number> {
    return Object.fromEntries([...this.values].sort(([a], [b]) => a.localeCompare(b)));
  }
}

const add = (key: string, n: number): Uint8Array => text.encode(JSON.stringify({ key, add: n }));

interface Member {
  group: RaftGroup;
  machine: Counters;
}

/** Delivers messages asynchronously (one event-loop turn later), between live members only. */
class Harness {
  readonly members = new Map<string, Member>();
  readonly down = new Set<string>();

  constructor(private readonly directory: string) {}

  start(
    id: string,
    options: { voters?: string[]; learners?: string[]; snapshotEvery?: number } = {},
  ): Member {
    const machine = new Counters();
    const group = new RaftGroup({
      groupId,
      selfNodeId: id,
      voters: options.voters ?? ['n1', 'n2', 'n3'],
      learners: options.learners ?? [],
      // One data directory per node: all of them host the same group id.
      dataDirectory: join(this.directory, id),
      stateMachine: machine,
      sendTo: (to, bytes) =>
        setImmediate(() => {
          if (this.down.has(id) || this.down.has(to)) return;
          this.members.get(to)?.group.receive(bytes);
        }),
      electionTicks: 10,
      heartbeatTicks: 2,
      snapshotEvery: options.snapshotEvery ?? 0,
      commitTimeoutMs: 10_000,
    });
    const member = { group, machine };
    this.down.delete(id);
    this.members.set(id, member);
    return member;
  }

  stop(id: string): void {
    this.member(id).group.close();
    this.down.add(id);
  }

  member(id: string): Member {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  live(): Member[] {
    return [...this.members].filter(([id]) => !this.down.has(id)).map(([, member]) => member);
  }

  async round(): Promise<void> {
    for (const { group } of this.live()) group.tick();
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async until(condition: () => boolean, rounds = 2000): Promise<void> {
    for (let i = 0; i < rounds; i++) {
      if (condition()) return;
      await this.round();
    }
    throw new Error('condition not reached');
  }

  /** Ticks until exactly one live leader exists that every live member knows of. */
  async leader(): Promise<Member> {
    await this.until(() => {
      const live = this.live();
      const leaders = live.filter((m) => m.group.isLeader);
      return leaders.length === 1 && live.every((m) => m.group.leader === leaders[0]!.group.leader);
    });
    return this.live().find((m) => m.group.isLeader)!;
  }

  /** Ticks until `promise` settles, then returns it. */
  async settle<T>(promise: Promise<T>): Promise<T> {
    let done = false;
    promise.then(
      () => (done = true),
      () => (done = true),
    );
    await this.until(() => done);
    return promise;
  }

  async allApplied(index: number): Promise<void> {
    await this.until(() => this.live().every((m) => m.group.appliedIndex >= index));
  }

  closeAll(): void {
    for (const [id, { group }] of this.members) if (!this.down.has(id)) group.close();
  }
}

let directory: string;
let harness: Harness;

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-raft-group-'));
  harness = new Harness(directory);
});

afterEach(() => {
  harness.closeAll();
  rmSync(directory, { recursive: true, force: true });
});

function startThree(options: { snapshotEvery?: number } = {}): void {
  for (const id of ['n1', 'n2', 'n3']) harness.start(id, options);
}

async function proposeAll(leader: Member, ops: Uint8Array[]): Promise<{ index: number; result: string }[]> {
  const out: { index: number; result: string }[] = [];
  for (const op of ops) {
    const { index, result } = await harness.settle(leader.group.propose(op));
    out.push({ index, result: untext.decode(result) });
  }
  return out;
}

describe('RaftGroup', () => {
  it('elects one leader that every member knows', async () => {
    startThree();
    const leader = await harness.leader();
    expect(leader.group.members.voters).toEqual(['n1', 'n2', 'n3']);
    expect(harness.live().filter((m) => m.group.isLeader)).toHaveLength(1);
  });

  it('commits proposals and applies them on every member with the same results', async () => {
    startThree();
    const leader = await harness.leader();
    const results = await proposeAll(leader, [add('a', 1), add('a', 2), add('b', 5), text.encode('junk')]);
    expect(results.map((r) => r.result)).toEqual(['1', '3', '5', 'error: not JSON']);
    const indexes = results.map((r) => r.index);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    await harness.allApplied(indexes.at(-1)!);
    for (const member of harness.live()) expect(member.machine.state()).toEqual({ a: 3, b: 5 });
  });

  it('refuses proposals and reads on a follower with NOT_LEADER naming the leader', async () => {
    startThree();
    const leader = await harness.leader();
    const leaderId = leader.group.leader!;
    const follower = harness.live().find((m) => !m.group.isLeader)!;
    await expect(follower.group.propose(add('a', 1))).rejects.toMatchObject({
      code: 'NOT_LEADER',
      retriable: true,
      message: expect.stringContaining(leaderId) as unknown,
    });
    await expect(follower.group.readIndex()).rejects.toMatchObject({ code: 'NOT_LEADER' });
  });

  it("passes on the core's retriable flag and the known leader as typed fields, not read from the message", async () => {
    startThree();
    const leader = await harness.leader();
    const leaderId = leader.group.leader!;
    const follower = harness.live().find((m) => !m.group.isLeader)!;
    await expect(follower.group.propose(add('a', 1))).rejects.toMatchObject({
      code: 'NOT_LEADER',
      details: { leader: leaderId },
    });
    // Commits the leader's first entry, so no membership change of an earlier term is pending.
    await harness.settle(leader.group.propose(add('a', 1)));
    await expect(leader.group.changeMembership({ type: 'addVoter', id: 'n2' })).rejects.toMatchObject({
      code: 'BAD_CONFIG',
      retriable: false,
    });
    const first = leader.group.changeMembership({ type: 'addLearner', id: 'n4' });
    await expect(leader.group.changeMembership({ type: 'addLearner', id: 'n5' })).rejects.toMatchObject({
      code: 'BAD_CONFIG',
      retriable: true,
    });
    await harness.settle(first);
  });

  it('gives a read index on the leader that covers every write committed before it, applied before it returns', async () => {
    startThree();
    const leader = await harness.leader();
    const [last] = await proposeAll(leader, [add('a', 7)]);
    const index = await harness.settle(leader.group.readIndex());
    expect(index).toBeGreaterThanOrEqual(last!.index);
    expect(leader.group.appliedIndex).toBeGreaterThanOrEqual(index);
  });

  it('rebuilds a restarted member by replay and lets it rejoin', async () => {
    startThree();
    const leader = await harness.leader();
    const first = await proposeAll(leader, [add('a', 1), add('b', 2), add('a', 3)]);
    await harness.allApplied(first.at(-1)!.index);
    const followerId = [...harness.members].find(([, m]) => !m.group.isLeader)![0];
    const before = harness.member(followerId);
    const stateBefore = before.machine.state();
    const appliedBefore = before.group.appliedIndex;
    harness.stop(followerId);

    const reopened = harness.start(followerId);
    // Replayed from the stored log in the constructor, before any message arrives.
    expect(reopened.group.appliedIndex).toBe(appliedBefore);
    expect(reopened.machine.state()).toEqual(stateBefore);
    expect(reopened.machine.appliedAt[0]).toBe(1);

    const more = await proposeAll(leader, [add('c', 4)]);
    await harness.allApplied(more[0]!.index);
    expect(reopened.machine.state()).toEqual({ a: 4, b: 2, c: 4 });
  });

  it('elects a new leader when the leader stops, losing nothing committed', async () => {
    startThree();
    const leader = await harness.leader();
    const first = await proposeAll(leader, [add('a', 1), add('a', 1), add('b', 1)]);
    const oldId = leader.group.leader!;
    harness.stop(oldId);

    const next = await harness.leader();
    expect(next.group.leader).not.toBe(oldId);
    const later = await proposeAll(next, [add('a', 10), add('c', 1)]);
    expect(later.map((r) => r.result)).toEqual(['12', '1']);
    expect(later[0]!.index).toBeGreaterThan(first.at(-1)!.index);
    await harness.allApplied(later.at(-1)!.index);
    for (const member of harness.live()) expect(member.machine.state()).toEqual({ a: 12, b: 1, c: 1 });

    // The old leader comes back as a follower and catches up.
    const back = harness.start(oldId);
    await harness.allApplied(later.at(-1)!.index);
    expect(back.machine.state()).toEqual({ a: 12, b: 1, c: 1 });
    expect(back.group.isLeader).toBe(false);
  });

  it('compacts every snapshotEvery entries; restarted and new members catch up from the snapshot', async () => {
    startThree({ snapshotEvery: 5 });
    const leader = await harness.leader();
    const ops = Array.from({ length: 12 }, (_, i) => add(i % 2 === 0 ? 'even' : 'odd', i));
    const results = await proposeAll(leader, ops);
    const last = results.at(-1)!.index;
    await harness.allApplied(last);
    const expected = { even: 0 + 2 + 4 + 6 + 8 + 10, odd: 1 + 3 + 5 + 7 + 9 + 11 };
    const leaderId = leader.group.leader!;

    const stored = RaftDatabase.open(join(directory, leaderId), groupId);
    const restore = stored.restore();
    stored.close();
    expect(restore?.snapshot?.index).toBeGreaterThanOrEqual(10);
    expect(restore!.entries[0]?.index ?? last + 1).toBe(restore!.snapshot!.index + 1);

    // A restart restores the stored snapshot, then replays the entries after it.
    const followerId = [...harness.members].find(([, m]) => !m.group.isLeader)![0];
    harness.stop(followerId);
    const restarted = harness.start(followerId, { snapshotEvery: 5 });
    expect(restarted.machine.restoredAt).toHaveLength(1);
    expect(restarted.machine.state()).toEqual(expected);
    expect(restarted.group.appliedIndex).toBeGreaterThanOrEqual(restarted.machine.restoredAt[0]!);

    // A brand-new learner can only catch up through InstallSnapshot: the log it needs is compacted.
    await harness.settle(leader.group.changeMembership({ type: 'addLearner', id: 'n4' }));
    expect(leader.group.members.learners).toEqual(['n4']);
    const learner = harness.start('n4', { snapshotEvery: 5 });
    await harness.until(() => learner.group.appliedIndex >= leader.group.appliedIndex);
    expect(learner.machine.restoredAt.length).toBeGreaterThan(0);
    expect(learner.machine.state()).toEqual(expected);
    expect(learner.group.members.learners).toEqual(['n4']);

    const after = await proposeAll(leader, [add('even', 100)]);
    await harness.allApplied(after[0]!.index);
    for (const member of harness.live()) expect(member.machine.state()).toEqual({ ...expected, even: 130 });
  });

  it('resolves waitApplied and onApplied, and rejects pending work on close', async () => {
    startThree();
    const leader = await harness.leader();
    const follower = harness.live().find((m) => !m.group.isLeader)!;
    const seen: number[] = [];
    const unsubscribe = follower.group.onApplied((index) => seen.push(index));
    const target = leader.group.appliedIndex + 1;
    const waiting = follower.group.waitApplied(target);
    await proposeAll(leader, [add('a', 1)]);
    await harness.settle(waiting);
    expect(seen).toContain(target);
    unsubscribe();

    const never = follower.group.waitApplied(1_000_000);
    follower.group.close();
    harness.down.add([...harness.members].find(([, m]) => m === follower)![0]);
    await expect(never).rejects.toMatchObject({ code: 'CONNECTION_CLOSED', retriable: true });
    await expect(follower.group.propose(add('a', 1))).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });
});

describe('RaftDatabase', () => {
  it('stores and restores exactly like the in-memory model', () => {
    const db = RaftDatabase.open(directory, '__system');
    expect(db.restore()).toBeUndefined();
    const model: RaftStorage = { hardState: { term: 0, votedFor: null, commit: 0 }, entries: [] };
    const entry = (index: number, term: number, data = `e${index}`): RaftEntry => ({
      index,
      term,
      type: 'normal',
      data: text.encode(data),
    });
    const batches: RaftPersistOp[][] = [
      [
        { op: 'hardState', hardState: { term: 1, votedFor: 'n1', commit: 0 } },
        { op: 'append', entries: [entry(1, 1), entry(2, 1)] },
      ],
      [
        {
          op: 'append',
          entries: [
            {
              index: 3,
              term: 1,
              type: 'config',
              data: new Uint8Array(0),
              config: { voters: ['n1', 'n2'], learners: ['n3'] },
            },
            entry(4, 1),
          ],
        },
      ],
      [
        { op: 'truncate', fromIndex: 4 },
        { op: 'append', entries: [entry(4, 2, 'x'), entry(5, 2)] },
      ],
      [{ op: 'hardState', hardState: { term: 2, votedFor: null, commit: 4 } }],
      [
        {
          op: 'snapshot',
          snapshot: {
            index: 3,
            term: 1,
            membership: { voters: ['n1', 'n2'], learners: [] },
            data: text.encode('s'),
          },
        },
      ],
    ];
    for (const ops of batches) {
      db.persist(ops);
      for (const op of ops) applyRaftPersist(model, op);
      expect(db.restore()).toEqual({
        hardState: model.hardState,
        entries: model.entries,
        ...(model.snapshot === undefined ? {} : { snapshot: model.snapshot }),
      });
    }
    // An append that does not follow the log is a bug: the whole batch rolls back.
    const before = db.restore();
    expect(() =>
      db.persist([
        { op: 'hardState', hardState: { term: 9, votedFor: null, commit: 4 } },
        { op: 'append', entries: [entry(9, 9)] },
      ]),
    ).toThrow(/append at 9/);
    expect(db.restore()).toEqual(before);
    db.close();

    const reopened = RaftDatabase.open(directory, '__system');
    expect(reopened.restore()).toEqual(before);
    reopened.close();
  });
});
