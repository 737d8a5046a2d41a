import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { proposalDigest } from './messages.js';
import type { TransferredBlock } from './messages.js';
import { hexKey } from './quorum.js';
import { Cluster, SoloReplica, encodeReadies, onlyRejected } from '../../partition/testing/cluster.js';
import type { TestReplica } from '../../partition/testing/cluster.js';
import type { PbftInput, PbftReady, Proposal } from './types.js';

function requestsExecuted(node: TestReplica): number {
  return node.executions.reduce((sum, execution) => sum + execution.proposal.requests.length, 0);
}

function codes(ready: PbftReady): string[] {
  return ready.rejected.map((rejection) => rejection.code);
}

function blocksOf(node: TestReplica, fromSeq: number, count: number): TransferredBlock[] {
  return node.ledger.slice(fromSeq - 1, fromSeq - 1 + count).map((entry) => ({
    certified: { header: entry.block.header, signatures: entry.block.signatures },
    requests: [...entry.block.proposal.requests],
  }));
}

/** Runs `bad` into one of two replicas replayed from the same inputs, then `after` into both. */
function twinOutputs(
  node: TestReplica,
  snapshot: readonly PbftInput[],
  bad: Uint8Array,
  after: readonly PbftInput[],
): { badReady: PbftReady[]; hit: Uint8Array; clean: Uint8Array } {
  const hit = new SoloReplica(node.config, node.signer, snapshot);
  const clean = new SoloReplica(node.config, node.signer, snapshot);
  const badReady = hit.step({ kind: 'message', bytes: bad });
  const hitOut: PbftReady[] = [];
  const cleanOut: PbftReady[] = [];
  for (const input of after) {
    hitOut.push(...hit.step(input));
    cleanOut.push(...clean.step(input));
  }
  return { badReady, hit: encodeReadies(hitOut), clean: encodeReadies(cleanOut) };
}

describe('checkpoints and garbage collection', () => {
  it('makes the checkpoint stable after K blocks, truncates the log and moves the window', () => {
    // Reference: Castro & Liskov §4.3 (a checkpoint with 2f+1 matching messages becomes stable; the
    // replica discards log entries up to it and advances the low watermark).
    const cluster = new Cluster({ replicas: 4, label: 'checkpoint', tuning: { batchRequestsMax: 1 } });
    const interval = cluster.tuning.checkpointInterval;
    const window = cluster.tuning.watermarkWindow;
    const client = cluster.client(0);
    for (let i = 0; i < interval; i++) cluster.request(client.request());
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === interval), 30, 'K blocks');

    for (const node of cluster.nodes) {
      expect(node.core.stable).toBe(interval);
      const certifiedAt = (height: number) =>
        node.history.find(({ ready }) => ready.certified.some((block) => block.header.height === height))!;
      expect(certifiedAt(interval - 1).after.stable).toBe(0);
      const checkpoint = certifiedAt(interval);
      expect(checkpoint.after.stable).toBe(interval);
      expect(checkpoint.ready.persist).toContainEqual({ op: 'truncate', belowSeq: interval + 1 });
      for (const record of node.persisted.values()) {
        expect(record.seq === 0 || record.seq > interval, `record ${record.key} survived`).toBe(true);
      }
    }

    // At or below the stable checkpoint, and beyond the high watermark, messages are refused.
    cluster.tick();
    const replica = 1;
    const digest = new Uint8Array(32).fill(7);
    const stale: Uint8Array[] = [
      cluster.sign(2, { type: 'prepare', view: 0, seq: interval, digest }),
      cluster.sign(2, { type: 'prepare', view: 0, seq: 1, digest }),
      cluster.sign(3, { type: 'commit', view: 0, seq: interval, digest }),
      cluster.sign(2, { type: 'prepare', view: 0, seq: interval + window + 1, digest }),
      cluster.sign(3, { type: 'commit', view: 0, seq: interval + window + 1, digest }),
    ];
    const proposal: Proposal = { view: 0, proposer: 'r0', timestamp: cluster.now, requests: [] };
    for (const seq of [interval, interval + window + 1]) {
      stale.push(
        cluster.sign(0, {
          type: 'pre-prepare',
          view: 0,
          seq,
          digest: proposalDigest(cluster.node(0).signer.crypto, proposal),
          proposal,
        }),
      );
    }
    for (const bytes of stale) {
      const ready = cluster.inject(replica, bytes);
      expect(codes(ready)).toEqual([ErrorCode.OutOfWindow]);
      expect(onlyRejected(ready)).toBe(true);
    }
  });

  it('keeps the durable log bounded by the window as checkpoints keep coming', () => {
    // Reference: Castro & Liskov §4.3 (garbage collection keeps the log between the watermarks).
    const cluster = new Cluster({ replicas: 4, label: 'gc', tuning: { batchRequestsMax: 1 } });
    const interval = cluster.tuning.checkpointInterval;
    const window = cluster.tuning.watermarkWindow;
    const client = cluster.client(0);
    for (let i = 0; i < 5 * interval; i++) cluster.request(client.request());
    cluster.tickUntil(
      () => cluster.nodes.every((node) => node.ledger.length === 5 * interval),
      100,
      'five checkpoints',
    );
    for (const node of cluster.nodes) {
      expect(node.core.stable).toBe(5 * interval);
      const truncations = node.history.flatMap(({ ready }) =>
        ready.persist.filter((op) => op.op === 'truncate'),
      );
      expect(truncations).toEqual(
        Array.from({ length: 5 }, (_, index) => ({ op: 'truncate', belowSeq: (index + 1) * interval + 1 })),
      );
      expect([...node.persisted.values()].filter((record) => record.seq > 0)).toEqual([]);
    }
    // Consensus records never pile up beyond the window: at most 4 per sequence number in it.
    let peak = 0;
    const cluster2 = new Cluster({ replicas: 4, label: 'gc', tuning: { batchRequestsMax: 1 } });
    const client2 = cluster2.client(0);
    for (let i = 0; i < 5 * interval; i++) {
      cluster2.request(client2.request());
      cluster2.tick();
      peak = Math.max(peak, ...cluster2.nodes.map((node) => node.persisted.size));
    }
    expect(peak).toBeLessThanOrEqual(4 * window + 3);
  });
});

describe('state transfer', () => {
  it('brings a replica cut off for many checkpoints up to date with certified blocks', () => {
    // Reference: Castro & Liskov §4.3 (a replica that falls behind fetches the state from others; here
    // the state is certified blocks, which verify on their own).
    const cluster = new Cluster({ replicas: 4, label: 'transfer', tuning: { batchRequestsMax: 1 } });
    const interval = cluster.tuning.checkpointInterval;
    const heal = cluster.isolate(3);
    const client = cluster.client(0);
    const total = 7 * interval + 2;
    for (let i = 0; i < total; i++) {
      cluster.request(client.request(), [0, 1, 2]);
      cluster.tick();
    }
    cluster.tickUntil(
      () => [0, 1, 2].every((i) => cluster.node(i).ledger.length === total),
      100,
      'three replicas',
    );
    expect(cluster.node(3).ledger).toHaveLength(0);

    heal();
    cluster.tickUntil(() => cluster.node(3).ledger.length === total, 100, 'replica 3 caught up');
    const lagging = cluster.node(3);
    expect(lagging.core.lastExecuted).toBe(total);
    expect(lagging.core.stable).toBe(Math.floor(total / interval) * interval);
    expect(requestsExecuted(lagging)).toBe(total);
    expect(cluster.sent('fetch-blocks').filter((delivery) => delivery.from === 3).length).toBeGreaterThan(0);
    const transferred = lagging.history.flatMap(({ ready }) =>
      ready.commit.filter((batch) => batch.certified),
    );
    expect(transferred.length).toBeGreaterThanOrEqual(total - cluster.tuning.watermarkWindow);
    cluster.checkAgreement();

    // And it takes part again: a new request commits with it.
    cluster.request(client.request());
    cluster.tickUntil(
      () => cluster.nodes.every((node) => node.ledger.length === total + 1),
      30,
      'one more block',
    );
    cluster.checkAgreement();
  });

  describe('a transferred block with a forged certificate', () => {
    const interval = 4;
    function behind(label: string): { cluster: Cluster; lagging: TestReplica } {
      const cluster = new Cluster({ replicas: 4, label, tuning: { batchRequestsMax: 1 } });
      const heal = cluster.isolate(3);
      const client = cluster.client(0);
      for (let i = 0; i < 3 * interval; i++) {
        cluster.request(client.request(), [0, 1, 2]);
        cluster.tick();
      }
      cluster.tickUntil(() => cluster.node(0).ledger.length === 3 * interval, 50, 'blocks');
      heal();
      // Let replica 3 hear of the others' progress, but hold back every state-transfer reply.
      cluster.drop((delivery) => delivery.message?.type === 'blocks');
      return { cluster, lagging: cluster.node(3) };
    }

    type Forgery = (blocks: TransferredBlock[], cluster: Cluster) => TransferredBlock[];
    const forgeries: Record<string, Forgery> = {
      'a header changed under real signatures': (blocks) => [
        {
          ...blocks[0]!,
          certified: {
            ...blocks[0]!.certified,
            header: { ...blocks[0]!.certified.header, timestamp: blocks[0]!.certified.header.timestamp + 1 },
          },
        },
      ],
      'one signer repeated to make up the quorum': (blocks) => {
        const first = blocks[0]!.certified.signatures[0]!;
        return [{ ...blocks[0]!, certified: { ...blocks[0]!.certified, signatures: [first, first, first] } }];
      },
      'fewer than 2f+1 signatures': (blocks) => [
        {
          ...blocks[0]!,
          certified: { ...blocks[0]!.certified, signatures: blocks[0]!.certified.signatures.slice(0, 2) },
        },
      ],
      'a signature by a non-member name': (blocks) => [
        {
          ...blocks[0]!,
          certified: {
            ...blocks[0]!.certified,
            signatures: blocks[0]!.certified.signatures.map((entry, index) =>
              index === 0 ? { ...entry, signer: 'mallory' } : entry,
            ),
          },
        },
      ],
      'requests that do not match the transactions root': (blocks) => [
        { ...blocks[0]!, requests: [...blocks[0]!.requests, new Uint8Array([1, 2, 3])] },
      ],
      'a forged block after a valid one': (blocks) => [
        blocks[0]!,
        { ...blocks[1]!, certified: { ...blocks[1]!.certified, signatures: [] } },
      ],
    };

    for (const [name, forge] of Object.entries(forgeries)) {
      it(`is rejected with BROKEN_CHAIN and changes nothing: ${name}`, () => {
        // Reference: Castro & Liskov §4.3 (state transfer must not trust the sender: each block is
        // checked against 2f+1 signatures, so one faulty replica cannot install a forged state).
        const { cluster, lagging } = behind(`forged-${name}`);
        cluster.tick(2);
        const snapshot = [...lagging.inputs];
        const forged = cluster.node(0).core.encodeBlocks(forge(blocksOf(cluster.node(0), 1, 2), cluster));
        const start = lagging.inputs.length;
        cluster.heal();
        cluster.tickUntil(() => lagging.ledger.length === 3 * interval, 100, 'caught up');
        const after = lagging.inputs.slice(start);

        const { badReady, hit, clean } = twinOutputs(lagging, snapshot, forged, after);
        expect(badReady.flatMap(codes)).toEqual([ErrorCode.BrokenChain]);
        expect(badReady.every(onlyRejected)).toBe(true);
        expect(hexKey(hit)).toBe(hexKey(clean));
      });
    }

    it('from the very peer being fetched from, is rejected and changes nothing', () => {
      // Reference: Castro & Liskov §4.3. A faulty peer that was asked for blocks answers with a forgery;
      // the replica must behave exactly as if the forgery never arrived.
      const { cluster, lagging } = behind('forged-from-fetched');
      cluster.tickUntil(
        () => cluster.sent('fetch-blocks').some((delivery) => delivery.from === 3),
        30,
        'replica 3 asks for blocks',
      );
      const asked = cluster.sent('fetch-blocks').find((delivery) => delivery.from === 3)!;
      const snapshot = [...lagging.inputs];
      const peer = cluster.node(asked.to);
      const [first] = blocksOf(peer, 1, 1);
      const forged = peer.core.encodeBlocks([
        {
          ...first!,
          certified: { ...first!.certified, signatures: first!.certified.signatures.slice(0, 1) },
        },
      ]);
      const start = lagging.inputs.length;
      cluster.tick(40);
      const after = lagging.inputs.slice(start);

      const { badReady, hit, clean } = twinOutputs(lagging, snapshot, forged, after);
      expect(badReady.flatMap(codes)).toEqual([ErrorCode.BrokenChain]);
      expect(badReady.every(onlyRejected)).toBe(true);
      expect(hexKey(hit)).toBe(hexKey(clean));
    });
  });
});
