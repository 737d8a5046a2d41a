import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { SigningDomain } from '../../crypto/index.js';
import { verifyBlock } from '../../ledger/block.js';
import type { GroupMembership } from '../../ledger/block.js';
import { certificateValid, headerHash, proposalDigest } from './messages.js';
import type { PrePrepare } from './messages.js';
import { faultTolerance, hexKey, quorumSize } from './quorum.js';
import {
  CONFIG_EPOCH,
  Cluster,
  GROUP_ID,
  decodeMessage,
  ledgerBlock,
  onlyRejected,
} from '../../partition/testing/cluster.js';
import type { TestReplica } from '../../partition/testing/cluster.js';
import type { Proposal } from './types.js';

/** The distinct pre-prepares the primary of view 0 sent, in the order first seen. */
function proposedBy(cluster: Cluster): PrePrepare[] {
  const seen = new Set<string>();
  const out: PrePrepare[] = [];
  for (const { message } of cluster.sent('pre-prepare')) {
    const key = `${message.view}/${message.seq}/${hexKey(message.digest)}`;
    if (message.from !== 0 || seen.has(key)) continue;
    seen.add(key);
    out.push(message);
  }
  return out;
}

function keysById(cluster: Cluster): Map<string, Uint8Array> {
  return new Map(cluster.replicaInfos.map((info) => [info.id, info.publicKey]));
}

/** The cluster's replicas as a verifier in `network` (the cluster's own by default) holds them. */
function membership(cluster: Cluster, network: string = cluster.network): GroupMembership {
  return {
    signing: SigningDomain.of(network),
    partitionId: GROUP_ID,
    configEpoch: CONFIG_EPOCH,
    members: keysById(cluster),
  };
}

/**
 * Replays a replica's history and checks the §4.2 thresholds at the moment it acted: it sent its commit
 * for `seq` only once it had the pre-prepare and 2f matching prepares (its own counted), and handed the
 * batch to execution only once it also had 2f+1 matching commits (its own counted).
 */
function checkThresholds(node: TestReplica, seq: number, n: number): void {
  const f = faultTolerance(n);
  const prepares = new Set<number>();
  const commits = new Set<number>();
  let prePrepared = node.index === 0;
  let sentCommit = false;
  let committed = false;
  for (const { input, ready } of node.history) {
    if (input.kind === 'message') {
      const message = decodeMessage(input.bytes);
      if (message.type === 'pre-prepare' && message.seq === seq) prePrepared = true;
      if (message.type === 'prepare' && message.seq === seq) prepares.add(message.from);
      if (message.type === 'commit' && message.seq === seq) commits.add(message.from);
    }
    for (const out of ready.send) {
      const message = decodeMessage(out.bytes);
      if (message.type === 'prepare' && message.seq === seq) prepares.add(node.index);
      if (message.type === 'commit' && message.seq === seq && !sentCommit) {
        sentCommit = true;
        commits.add(node.index);
        expect(prePrepared, `r${node.index} commits ${seq} without a pre-prepare`).toBe(true);
        expect(prepares.size, `r${node.index} commits ${seq} before 2f prepares`).toBeGreaterThanOrEqual(
          2 * f,
        );
      }
    }
    if (ready.commit.some((batch) => batch.seq === seq)) {
      committed = true;
      expect(sentCommit).toBe(true);
      expect(commits.size, `r${node.index} executes ${seq} before 2f+1 commits`).toBeGreaterThanOrEqual(
        2 * f + 1,
      );
    }
  }
  expect(committed, `r${node.index} never committed ${seq}`).toBe(true);
}

describe('normal case', () => {
  for (const n of [4, 7]) {
    it(`n=${n}: a request is pre-prepared, prepared, committed, executed and certified`, () => {
      // Reference: Castro & Liskov §4.2 (pre-prepare, prepare, commit phases) and §4.3 (certificates).
      const cluster = new Cluster({ replicas: n, label: `normal-${n}` });
      const request = cluster.client(0).request();
      cluster.request(request);
      cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 1), 20, 'block 1');

      // Status-driven retransmission relays the primary's signed pre-prepare, so look at the signer.
      const prePrepares = cluster.sent('pre-prepare');
      const first = prePrepares[0]!.message;
      expect(new Set(prePrepares.map((delivery) => delivery.message.from))).toEqual(new Set([0]));
      expect(new Set(prePrepares.map((delivery) => hexKey(delivery.message.digest))).size).toBe(1);
      expect(first).toMatchObject({ view: 0, seq: 1 });
      expect(first.proposal.requests.map(hexKey)).toEqual([hexKey(request)]);
      expect(first.digest).toEqual(proposalDigest(cluster.node(0).signer.crypto, first.proposal));

      // Backups prepare; the primary does not (§4.2).
      expect(new Set(cluster.sent('prepare').map((delivery) => delivery.message.from))).toEqual(
        new Set([...Array(n).keys()].slice(1)),
      );
      for (const node of cluster.nodes) checkThresholds(node, 1, n);

      const quorum = quorumSize(n);
      for (const node of cluster.nodes) {
        expect(node.executions.map((execution) => execution.seq)).toEqual([1]);
        const block = node.ledger[0]!.block;
        expect(block.header.height).toBe(1);
        expect(block.header.previousHash).toEqual(new Uint8Array(32));
        expect(block.proposal.requests.map(hexKey)).toEqual([hexKey(request)]);
        expect(new Set(block.signatures.map((entry) => entry.signer)).size).toBe(block.signatures.length);
        expect(block.signatures.length).toBeGreaterThanOrEqual(quorum);
        expect(certificateValid(node.signer.crypto, block, keysById(cluster), quorum)).toBe(true);
      }
      cluster.checkAgreement();
    });
  }

  for (const n of [4, 7]) {
    it(`n=${n} with Ed25519: certified blocks verify with the ledger's verifyBlock`, () => {
      // Reference: Castro & Liskov §4.3 (a checkpoint certificate proves a state to anyone); the core's
      // header encoding and hash must be the ledger's, or verifyBlock would refuse its certificates.
      const cluster = new Cluster({ replicas: n, crypto: 'ed25519', label: `ed25519-${n}` });
      const client = cluster.client(0);
      for (let i = 0; i < 6; i++) cluster.request(client.request());
      cluster.tickUntil(
        () =>
          cluster.nodes.every(
            (node) => node.ledger.reduce((sum, e) => sum + e.block.proposal.requests.length, 0) === 6,
          ),
        40,
        'six requests certified',
      );
      const group = membership(cluster);
      // The same replica keys in another network: no certificate made here verifies there.
      const elsewhere = membership(cluster, `${cluster.network}-2`);
      for (const node of cluster.nodes) {
        let previous = undefined as (typeof node.ledger)[number]['block']['header'] | undefined;
        for (const entry of node.ledger) {
          expect(() => verifyBlock(ledgerBlock(entry), group, previous)).not.toThrow();
          expect(() => verifyBlock(ledgerBlock(entry), elsewhere, previous)).toThrow(
            expect.objectContaining({ code: ErrorCode.BadSignature }),
          );
          previous = entry.block.header;
        }
      }
      cluster.checkAgreement();
    });
  }

  it('executes many requests in the same order everywhere, each exactly once', () => {
    // Reference: Castro & Liskov §4.2 (replicas execute in sequence-number order) and §4 safety.
    const cluster = new Cluster({ replicas: 4, label: 'order' });
    const clients = [cluster.client(0), cluster.client(1), cluster.client(2)];
    const sent: Uint8Array[] = [];
    for (let round = 0; round < 10; round++) {
      for (const client of clients) {
        const request = client.request();
        sent.push(request);
        cluster.request(request);
      }
      cluster.tick();
    }
    cluster.tickUntil(
      () => cluster.nodes.every((node) => node.executions.flatMap((e) => e.proposal.requests).length === 30),
      50,
      'all executed',
    );
    const reference = cluster
      .node(0)
      .executions.flatMap((execution) => execution.proposal.requests.map(hexKey));
    expect(new Set(reference).size).toBe(30);
    expect(new Set(reference)).toEqual(new Set(sent.map(hexKey)));
    for (const node of cluster.nodes) {
      expect(node.executions.map((execution) => execution.seq)).toEqual(
        node.executions.map((_, index) => index + 1),
      );
      expect(node.executions.flatMap((execution) => execution.proposal.requests.map(hexKey))).toEqual(
        reference,
      );
      // The chain links: each header names the hash of the one before.
      node.ledger.forEach((entry, index) => {
        if (index === 0) return;
        const previous = node.ledger[index - 1]!.block.header;
        expect(entry.block.header.previousHash).toEqual(headerHash(node.signer.crypto, previous));
      });
    }
    cluster.checkAgreement();
  });
});

describe('batching and pipelining', () => {
  it('proposes a full batch at once and a partial one after batchTicksMax', () => {
    // Reference: Castro & Liskov §5.1 (the primary batches requests); bounded by batchRequestsMax.
    const cluster = new Cluster({
      replicas: 4,
      label: 'batch',
      tuning: { batchRequestsMax: 3, batchTicksMax: 5 },
    });
    const client = cluster.client(0);
    for (let i = 0; i < 7; i++) cluster.request(client.request());
    let proposals = proposedBy(cluster);
    expect(proposals.map((message) => message.proposal.requests.length)).toEqual([3, 3]);

    cluster.tick(4);
    expect(proposedBy(cluster)).toHaveLength(2);
    cluster.tick(1);
    proposals = proposedBy(cluster);
    expect(proposals.map((message) => message.proposal.requests.length)).toEqual([3, 3, 1]);
    expect(proposals.map((message) => message.seq)).toEqual([1, 2, 3]);
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 3), 20, 'three blocks');
  });

  it('keeps a batch within batchBytesMax unless a single request is larger', () => {
    // Reference: Castro & Liskov §5.1 (batching), bounded by batchBytesMax.
    const size = new Cluster({ replicas: 4, label: 'batch-bytes-probe' })
      .client(0)
      .request(new Uint8Array(150)).length;
    // Room for two requests of `size`, not three: batches of several requests must occur, and stop at two.
    const batchBytesMax = 2 * size + Math.floor(size / 2);
    const cluster = new Cluster({
      replicas: 4,
      label: 'batch-bytes',
      tuning: { batchRequestsMax: 100, batchBytesMax, batchTicksMax: 1 },
    });
    const client = cluster.client(0);
    const requests = Array.from({ length: 6 }, () => client.request(new Uint8Array(150)));
    expect(requests.every((request) => request.length === size)).toBe(true);
    const large = client.request(new Uint8Array(batchBytesMax + 1));
    for (const request of [...requests.slice(0, 3), large, ...requests.slice(3)]) cluster.request(request);
    cluster.tickUntil(
      () => cluster.nodes.every((node) => node.executions.flatMap((e) => e.proposal.requests).length === 7),
      40,
      'all executed',
    );
    const batches = cluster.node(1).executions.map(({ proposal }) => proposal.requests);
    expect(batches.some((batch) => batch.length > 1)).toBe(true);
    for (const batch of batches) {
      expect(batch.length).toBeGreaterThan(0);
      const bytes = batch.reduce((sum, request) => sum + request.length, 0);
      if (batch.length > 1) expect(bytes).toBeLessThanOrEqual(batchBytesMax);
    }
    // The request larger than the bound goes alone.
    expect(batches.filter((batch) => batch.some((request) => request.length === large.length))).toEqual([
      [large],
    ]);
  });

  it('keeps several sequence numbers in flight, never beyond low + watermarkWindow', () => {
    // Reference: Castro & Liskov §4.2 (sequence numbers between the low and high watermarks h and H =
    // h + L) and §4.3 (the window moves when a checkpoint becomes stable).
    const cluster = new Cluster({ replicas: 4, label: 'pipeline', tuning: { batchRequestsMax: 1 } });
    const window = cluster.tuning.watermarkWindow;
    const stopCommits = cluster.drop((delivery) => delivery.message?.type === 'commit');
    const client = cluster.client(0);
    for (let i = 0; i < 2 * window + 3; i++) cluster.request(client.request());
    cluster.tick(3);

    expect(proposedBy(cluster).map((message) => message.seq)).toEqual(
      Array.from({ length: window }, (_, index) => index + 1),
    );
    // Every backup prepared all of them at once, with nothing executed.
    for (const index of [1, 2, 3]) {
      const node = cluster.node(index);
      expect(node.core.lastExecuted).toBe(0);
      const commitsSent = node.history.flatMap(({ ready }) =>
        ready.send.map((out) => decodeMessage(out.bytes)).filter((message) => message.type === 'commit'),
      );
      expect(new Set(commitsSent.map((message) => (message.type === 'commit' ? message.seq : 0))).size).toBe(
        window,
      );
    }

    stopCommits();
    cluster.tickUntil(
      () =>
        cluster.nodes.every(
          (node) => node.executions.flatMap((e) => e.proposal.requests).length === 2 * window + 3,
        ),
      200,
      'all executed',
    );
    // At every step the primary proposed only within its window as it was at that step.
    // (A step that makes a checkpoint stable may propose up to the moved window.)
    for (const { before, after, ready } of cluster.node(0).history) {
      for (const out of ready.send) {
        const message = decodeMessage(out.bytes);
        if (message.type !== 'pre-prepare' || message.from !== 0) continue;
        expect(message.seq).toBeGreaterThan(before.stable);
        expect(message.seq).toBeLessThanOrEqual(after.stable + window);
      }
    }
    cluster.checkAgreement();
  });
});

describe('de-duplication', () => {
  it('answers a retransmitted executed request with alreadyCommitted, not a second execution', () => {
    // Reference: Castro & Liskov §4.1 (replicas discard a request whose timestamp is not newer than the
    // last reply to that client, and resend the reply instead).
    const cluster = new Cluster({ replicas: 4, label: 'dedup' });
    const request = cluster.client(0).request();
    cluster.request(request);
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 1), 20, 'block 1');

    cluster.request(request);
    cluster.tick(10);
    for (const node of cluster.nodes) {
      expect(node.alreadyCommitted).toEqual([{ request, seq: 1 }]);
      expect(node.executions).toHaveLength(1);
      expect(node.core.pendingRequests).toBe(0);
    }
    expect(proposedBy(cluster)).toHaveLength(1);
  });

  it('rejects a pre-prepare that carries the same request twice', () => {
    // Reference: Castro & Liskov §4.2 (a backup accepts a pre-prepare only if its requests are valid);
    // a batch holding one request twice would execute it twice.
    const cluster = new Cluster({ replicas: 4, label: 'dedup-batch' });
    cluster.tick();
    const request = cluster.client(0).request();
    const proposal: Proposal = {
      view: 0,
      proposer: 'r0',
      timestamp: cluster.now,
      requests: [request, request],
    };
    const bytes = cluster.sign(0, {
      type: 'pre-prepare',
      view: 0,
      seq: 1,
      digest: proposalDigest(cluster.node(0).signer.crypto, proposal),
      proposal,
    });
    const ready = cluster.inject(1, bytes);
    expect(ready.rejected.map((rejection) => rejection.code)).toEqual([ErrorCode.Replay]);
    expect(onlyRejected(ready)).toBe(true);
  });
});
