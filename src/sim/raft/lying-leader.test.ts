/**
 * A lying Raft leader proposes forged or uncertified blocks; the followers reject them. Raft in a
 * topic group tolerates crashes, not lies (DESIGN §11): what keeps a faulty leader from writing the
 * global ledger is that every replica re-verifies each block before applying it. Here the leader's
 * Raft node is honest but the test proposes through it whatever a malicious replication task could.
 */
import { describe, expect, it } from 'vitest';
import { TestCluster } from '../../raft-group/testing/cluster.js';
import { SeededRandom } from '../../consensus/seeded-random.js';
import { toHex } from '../../codec/index.js';
import { blockHash, encodeBlock } from '../../ledger/block.js';
import { AdminReject } from '../../registry/admin-transactions.js';
import { TopicStateMachine } from '../../registry/topic-state.js';
import {
  MemorySink,
  SystemHarness,
  blocksEntry,
  lie,
  lieKinds,
  outcome,
  partition,
  topic,
  validChain,
} from '../../registry/testing/fixtures.js';
import type { LieKind } from '../../registry/testing/fixtures.js';

const chain = validChain(48);
const encodedChain = chain.map((block) => encodeBlock(block));
const chainHashes = chain.map((block) => toHex(blockHash(block.header)));

// Signing dominates the cost, so each lie is built once and shared by every seed.
const lies = new Map<string, Uint8Array>();
function cachedLie(kind: LieKind, height: number): Uint8Array {
  const key = `${kind}@${height}`;
  let bytes = lies.get(key);
  if (bytes === undefined) {
    bytes = lie(kind, height, chain[height - 2]?.header);
    lies.set(key, bytes);
  }
  return bytes;
}

interface Replica {
  readonly machine: TopicStateMachine;
  readonly sink: MemorySink;
  lastApplied: number;
  /** Outcome of each non-empty committed entry, in log order. */
  readonly outcomes: string[];
}

/** A 3-voter topic group whose servers each run their own __system and topic state machines. */
class TopicGroup {
  readonly cluster: TestCluster;
  readonly replicas = new Map<string, Replica>();

  constructor(seed: number) {
    const system = new SystemHarness();
    const voters = [...system.machine.latest.topics.get(topic)!.voters];
    this.cluster = new TestCluster({ voters, seed });
    for (const id of voters) {
      // Separate registries per server, as on real nodes: agreement must come from the log alone.
      const own = new SystemHarness();
      const sink = new MemorySink();
      const machine = new TopicStateMachine(own.machine.latest.topics.get(topic)!, own.reader, sink);
      this.replicas.set(id, { machine, sink, lastApplied: 0, outcomes: [] });
    }
  }

  /** Feeds each server's machine what its Raft node applied since last time, in index order. */
  drain(): void {
    for (const [id, replica] of this.replicas) {
      const applied = this.cluster.server(id).applied;
      for (let index = replica.lastApplied + 1; applied.has(index); index++) {
        const data = applied.get(index)!;
        expect(replica.machine.ready(data)).toBe(true);
        const result = outcome(replica.machine.apply(index, data));
        if (data.length > 0) replica.outcomes.push(result);
        replica.lastApplied = index;
      }
    }
  }

  propose(leader: string, blocks: readonly Uint8Array[]): void {
    const ready = this.cluster.step(leader, { kind: 'propose', data: blocksEntry(partition, blocks) });
    expect(ready.rejected).toEqual([]);
  }

  settle(): void {
    this.cluster.deliverAll();
    this.cluster.ticks(3);
    this.drain();
  }

  /** Every server holds exactly blocks 1..height of the valid chain, and decided every entry alike. */
  expectLedgers(height: number, outcomes: readonly string[]): void {
    const expected = chainHashes.slice(0, height);
    for (const replica of this.replicas.values()) {
      expect(replica.sink.entries.map((entry) => entry.partition)).toEqual(expected.map(() => partition));
      expect(replica.sink.entries.map((entry) => entry.hash)).toEqual(expected);
      expect(replica.outcomes).toEqual(outcomes);
      expect(replica.machine.head(partition)?.height ?? 0).toBe(height);
    }
  }
}

describe('a lying Raft leader proposes forged or uncertified blocks; the followers reject them', () => {
  it('keeps exactly the valid blocks, in order, on every server (seeds 1..200)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = new SeededRandom(seed);
      const group = new TopicGroup(seed);
      const leader = group.cluster.electLeader();
      let height = 0;
      const outcomes: string[] = [];
      const steps = random.int(6, 14);
      for (let step = 0; step < steps; step++) {
        const choice = random.int(0, 11);
        if (choice < 4) {
          group.propose(leader, [encodedChain[height]!]);
          height++;
          outcomes.push('OK');
        } else if (choice < 8) {
          const kind = lieKinds[random.int(0, lieKinds.length - 1)]!;
          group.propose(leader, [cachedLie(kind, height + 1)]);
          outcomes.push(AdminReject.BadBlock);
        } else if (choice === 8 && height > 0) {
          // An old block again: a no-op, however far back.
          group.propose(leader, [encodedChain[random.int(0, height - 1)]!]);
          outcomes.push('OK');
        } else if (choice === 9) {
          group.propose(leader, [encodedChain[height + 1]!]);
          outcomes.push(AdminReject.OutOfOrder);
        } else if (choice === 10) {
          // A valid block with a lie behind it: the valid one is kept, the lie is not.
          const kind = lieKinds[random.int(0, lieKinds.length - 1)]!;
          group.propose(leader, [encodedChain[height]!, cachedLie(kind, height + 2)]);
          height++;
          outcomes.push(AdminReject.BadBlock);
        } else {
          group.cluster.deliverAll();
          group.drain();
        }
      }
      group.settle();
      expect(group.cluster.leaders()).toEqual([leader]);
      group.expectLedgers(height, outcomes);
    }
  });

  it('changes nothing when the leader proposes a valid block twice or out of order', () => {
    const group = new TopicGroup(7);
    const leader = group.cluster.electLeader();
    const [one, two, three] = encodedChain as [Uint8Array, Uint8Array, Uint8Array];
    for (const blocks of [[one], [one], [three], [two], [two], [one, two], [three], [three]]) {
      group.propose(leader, blocks);
    }
    group.settle();
    group.expectLedgers(3, ['OK', 'OK', AdminReject.OutOfOrder, 'OK', 'OK', 'OK', 'OK', 'OK']);
    for (const replica of group.replicas.values()) {
      // Each block reached the sink once, from the entry that first carried it.
      expect(replica.sink.entries.map((entry) => entry.height)).toEqual([1, 2, 3]);
    }
  });

  it('rejects every kind of lie on every server, wherever it lands in the log', () => {
    const group = new TopicGroup(11);
    const leader = group.cluster.electLeader();
    const outcomes: string[] = [];
    for (let height = 1; height <= 3; height++) {
      for (const kind of lieKinds) {
        group.propose(leader, [cachedLie(kind, height)]);
        outcomes.push(AdminReject.BadBlock);
      }
      group.propose(leader, [encodedChain[height - 1]!]);
      outcomes.push('OK');
    }
    group.settle();
    group.expectLedgers(3, outcomes);
  });
});
