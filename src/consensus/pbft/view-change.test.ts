import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { decodeBody, headerHash, proposalDigest } from './messages.js';
import type { PrePrepare } from './messages.js';
import { hexKey } from './quorum.js';
import { Cluster, decodeMessage, onlyRejected } from '../../partition/testing/cluster.js';
import type { TestReplica } from '../../partition/testing/cluster.js';
import type { Proposal } from './types.js';

function requestsIn(node: TestReplica): string[] {
  return node.ledger.flatMap((entry) => entry.block.proposal.requests.map(hexKey));
}

function viewChangeBytes(cluster: Cluster, from: number, newView: number): Uint8Array {
  return cluster.sign(from, { type: 'view-change', newView, stable: null, prepared: [] });
}

describe('view change', () => {
  it('replaces a silent primary, keeps committed batches and re-proposes prepared ones', () => {
    // Reference: Castro & Liskov §4.4 (view-change and new-view messages; O holds, for every sequence
    // number above the latest stable checkpoint, the batch prepared in the highest view or a null batch)
    // and §4.5.1 (requests committed in an earlier view are never lost).
    const cluster = new Cluster({ replicas: 4, label: 'silent-primary', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    const [a, b, c] = [client.request(), client.request(), client.request()];

    cluster.request(a);
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 1), 20, 'A committed');
    const blockA = hexKey(headerHash(cluster.node(0).signer.crypto, cluster.node(0).ledger[0]!.block.header));

    // In view 0: no backup sees the pre-prepare for 2 (B); 3 (C) prepares everywhere but never commits.
    cluster.drop(
      ({ message }) =>
        (message?.type === 'pre-prepare' && message.view === 0 && message.seq === 2) ||
        (message?.type === 'commit' && message.view === 0 && message.seq === 3),
    );
    cluster.request(b);
    cluster.tick();
    cluster.request(c);
    cluster.tick();
    const prePrepareC = cluster.sent('pre-prepare').find(({ message }) => message.seq === 3)!.message;
    expect(prePrepareC.proposal.requests.map(hexKey)).toEqual([hexKey(c)]);

    // Then the primary falls silent.
    cluster.isolate(0);
    cluster.tickUntil(
      () => [1, 2, 3].every((i) => cluster.node(i).core.view === 1 && !cluster.node(i).core.inViewChange),
      cluster.tuning.requestTimeoutTicks + 10,
      'view 1',
    );

    const newView = cluster.sent('new-view')[0]!.message;
    expect(newView).toMatchObject({ from: 1, view: 1 });
    expect(newView.viewChanges.length).toBeGreaterThanOrEqual(3);
    const carried = newView.prePrepares.map((envelope) => decodeBody(envelope.body) as PrePrepare);
    expect(carried.map((message) => message.seq)).toEqual([1, 2, 3]);
    expect(carried.every((message) => message.view === 1 && message.from === 1)).toBe(true);
    expect(carried[1]!.proposal.requests).toEqual([]);
    expect(carried[1]!.proposal).toMatchObject({ view: 1, proposer: 'r1' });
    expect(carried[2]!.digest).toEqual(prePrepareC.digest);

    cluster.tickUntil(
      () =>
        [1, 2, 3].every((i) =>
          [a, b, c].every((request) => requestsIn(cluster.node(i)).includes(hexKey(request))),
        ),
      40,
      'A, B and C executed',
    );
    for (const i of [1, 2, 3]) {
      const node = cluster.node(i);
      expect(hexKey(headerHash(node.signer.crypto, node.ledger[0]!.block.header))).toBe(blockA);
      expect(node.ledger[1]!.block.proposal).toMatchObject({ view: 1, proposer: 'r1', requests: [] });
      expect(node.ledger[2]!.block.proposal).toMatchObject({ view: 0, proposer: 'r0' });
      expect(node.ledger[2]!.block.proposal.requests.map(hexKey)).toEqual([hexKey(c)]);
      // B, never prepared in view 0, is proposed afresh in view 1 after what O carries.
      expect(requestsIn(node).slice(0, 3)).toEqual([a, c, b].map(hexKey));
    }
    cluster.checkAgreement();
  });

  it('never proposes a request again that the new view already carries', () => {
    // Reference: Castro & Liskov §4.4 (the new primary re-proposes what O carries) and §4.1 (each
    // request executes once). The core's own contract: "the primary does not propose a request twice".
    const cluster = new Cluster({ replicas: 4, label: 'repropose', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    const c = client.request();
    cluster.tick();
    cluster.drop(({ message }) => message?.type === 'commit' && message.view === 0);
    cluster.request(c);
    cluster.tick();
    cluster.isolate(0);
    cluster.tickUntil(
      () => [1, 2, 3].every((i) => cluster.node(i).core.view === 1 && !cluster.node(i).core.inViewChange),
      cluster.tuning.requestTimeoutTicks + 10,
      'view 1',
    );
    cluster.tick(10);
    // What the new primary proposed in view 1: O, inside the new-view message, then fresh pre-prepares.
    const inNewView = cluster
      .sent('new-view')
      .flatMap(({ message }) =>
        message.prePrepares.map((envelope) => decodeBody(envelope.body) as PrePrepare),
      );
    const fresh = cluster.sent('pre-prepare').map(({ message }) => message);
    const seqsCarryingC = new Set(
      [...inNewView, ...fresh]
        .filter((message) => message.view === 1 && message.from === 1)
        .filter((message) => message.proposal.requests.some((request) => hexKey(request) === hexKey(c)))
        .map((message) => message.seq),
    );
    expect([...seqsCarryingC]).toEqual([1]);
    for (const i of [1, 2, 3]) expect(requestsIn(cluster.node(i))).toEqual([hexKey(c)]);
  });

  it('refuses a new view whose pre-prepares do not match O', () => {
    // Reference: Castro & Liskov §4.4 (a backup recomputes O from the view-change messages in the
    // new-view message and accepts it only if it matches).
    const cluster = new Cluster({ replicas: 4, label: 'bad-new-view', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    const c = client.request();
    cluster.tick();
    cluster.drop(({ message }) => message?.type === 'commit' && message.view === 0);
    cluster.request(c);
    cluster.tick();
    cluster.isolate(0);
    const holdNewView = cluster.drop(({ message, to }) => message?.type === 'new-view' && to === 3);
    cluster.tickUntil(
      () => cluster.node(1).core.view === 1 && !cluster.node(1).core.inViewChange,
      50,
      'view 1',
    );
    expect(cluster.node(3).core).toMatchObject({ view: 1, inViewChange: true });

    // Replica 1 (a faulty new primary) drops the prepared batch for 1 and puts a null batch there.
    const genuine = cluster.sent('new-view')[0]!.message;
    const nullProposal: Proposal = { view: 1, proposer: 'r1', timestamp: cluster.now, requests: [] };
    const nullPrePrepare = cluster.signEnvelope(1, {
      type: 'pre-prepare',
      view: 1,
      seq: 1,
      digest: proposalDigest(cluster.node(1).signer.crypto, nullProposal),
      proposal: nullProposal,
    });
    const forged = cluster.sign(1, {
      type: 'new-view',
      view: 1,
      viewChanges: genuine.viewChanges,
      prePrepares: [nullPrePrepare],
    });
    let ready = cluster.inject(3, forged);
    expect(ready.rejected.map((rejection) => rejection.code)).toEqual([ErrorCode.BadViewChange]);
    expect(onlyRejected(ready)).toBe(true);
    // Too few view changes is refused as well.
    const thin = cluster.sign(1, {
      type: 'new-view',
      view: 1,
      viewChanges: genuine.viewChanges.slice(0, 2),
      prePrepares: genuine.prePrepares,
    });
    ready = cluster.inject(3, thin);
    expect(ready.rejected.map((rejection) => rejection.code)).toEqual([ErrorCode.BadViewChange]);
    expect(cluster.node(3).core).toMatchObject({ view: 1, inViewChange: true });

    // The genuine one, retransmitted once the network lets it through, is accepted.
    holdNewView();
    cluster.tickUntil(() => !cluster.node(3).core.inViewChange, 30, 'replica 3 in view 1');
    cluster.tickUntil(() => requestsIn(cluster.node(3)).includes(hexKey(c)), 30, 'C executed at replica 3');
    cluster.checkAgreement();
  });

  it('carries the stable checkpoint into the new view and goes on from there', () => {
    // Reference: Castro & Liskov §4.4 (a view-change message carries the stable checkpoint; O starts
    // after the highest one in V) and §4.3.
    const cluster = new Cluster({ replicas: 4, label: 'vc-stable', tuning: { batchRequestsMax: 1 } });
    const interval = cluster.tuning.checkpointInterval;
    const client = cluster.client(0);
    for (let i = 0; i < interval + 2; i++) {
      cluster.request(client.request());
      cluster.tick();
    }
    cluster.tickUntil(
      () => cluster.nodes.every((node) => node.ledger.length === interval + 2),
      30,
      'K+2 blocks',
    );
    cluster.isolate(0);
    const late = client.request();
    cluster.request(late);
    cluster.tickUntil(
      () => cluster.node(1).core.view === 1 && !cluster.node(1).core.inViewChange,
      60,
      'view 1',
    );
    const viewChanges = cluster.sent('view-change').filter(({ message }) => message.newView === 1);
    for (const { message } of viewChanges) expect(message.stable?.header.height).toBe(interval);
    const newView = cluster.sent('new-view')[0]!.message;
    const seqs = newView.prePrepares.map((envelope) => (decodeBody(envelope.body) as PrePrepare).seq);
    expect(seqs).toEqual([interval + 1, interval + 2]);
    cluster.tickUntil(
      () => [1, 2, 3].every((i) => requestsIn(cluster.node(i)).includes(hexKey(late))),
      40,
      'late request executed',
    );
    for (const i of [1, 2, 3]) expect(new Set(requestsIn(cluster.node(i))).size).toBe(interval + 3);
    cluster.checkAgreement();
  });

  it('moves on to the next view, after its view-change timer runs out, when the new primary is silent too', () => {
    // Reference: Castro & Liskov §4.5.2 (if the timer expires before a new view arrives, the replica
    // starts a view change for v+2 and waits 2T).
    const cluster = new Cluster({ replicas: 7, label: 'two-silent', tuning: { batchRequestsMax: 1 } });
    const timeout = cluster.tuning.viewChangeTimeoutTicks;
    cluster.isolate(0, 1);
    const request = cluster.client(0).request();
    cluster.request(request);
    cluster.tickUntil(
      () =>
        [2, 3, 4, 5, 6].every((i) => cluster.node(i).core.view === 2 && !cluster.node(i).core.inViewChange),
      cluster.tuning.requestTimeoutTicks + 3 * timeout,
      'view 2',
    );
    const node = cluster.node(4);
    const enteredView = (view: number) =>
      node.history.find(({ before, after }) => before.view < view && after.view === view)!.tick;
    expect(enteredView(2) - enteredView(1)).toBeGreaterThanOrEqual(timeout);
    cluster.tickUntil(
      () => [2, 3, 4, 5, 6].every((i) => requestsIn(cluster.node(i)).includes(hexKey(request))),
      30,
      'request executed in view 2',
    );
    cluster.checkAgreement();
  });
});

describe('view change liveness', () => {
  it('a lone replica that times out does not move the others, nor race through views', () => {
    // Reference: Castro & Liskov §4.5.2 (a replica needs f+1 view-change messages for higher views
    // before it joins, so one faulty or unlucky replica cannot force view changes; the view-change timer
    // starts only once 2f+1 replicas want this view or a later one).
    const cluster = new Cluster({ replicas: 4, label: 'lone', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    cluster.request(client.request(), [3]);
    cluster.tick(cluster.tuning.requestTimeoutTicks + 8 * cluster.tuning.viewChangeTimeoutTicks);
    expect(cluster.node(3).core).toMatchObject({ view: 1, inViewChange: true });
    for (const i of [0, 1, 2]) expect(cluster.node(i).core).toMatchObject({ view: 0, inViewChange: false });
    expect(
      cluster.sent('view-change').every(({ message }) => message.from === 3 && message.newView === 1),
    ).toBe(true);

    // The others still make progress without it.
    const other = client.request();
    cluster.request(other, [0, 1, 2]);
    cluster.tickUntil(
      () => [0, 1, 2].every((i) => requestsIn(cluster.node(i)).includes(hexKey(other))),
      20,
      'progress without replica 3',
    );
  });

  for (const n of [4, 7]) {
    it(`n=${n}: joins a view change once f+1 replicas ask for higher views, at the smallest`, () => {
      // Reference: Castro & Liskov §4.5.2 (a replica that receives f+1 valid view-change messages for
      // views greater than its own sends a view change for the smallest of them).
      const cluster = new Cluster({ replicas: n, label: `join-${n}` });
      const f = (n - 1) / 3;
      cluster.tick();
      const target = cluster.node(0);
      const askers = Array.from({ length: f + 1 }, (_, i) => i + 1);
      for (const [index, from] of askers.entries()) {
        const ready = cluster.step(0, {
          kind: 'message',
          bytes: viewChangeBytes(cluster, from, 3 + 2 * index),
        });
        expect(ready.rejected).toEqual([]);
        const joined = index === f;
        expect(target.core.inViewChange).toBe(joined);
        if (!joined) {
          expect(ready.send).toEqual([]);
          expect(target.core.view).toBe(0);
          continue;
        }
        expect(target.core.view).toBe(3);
        const own = ready.send.map((out) => decodeMessage(out.bytes)).filter((m) => m.type === 'view-change');
        expect(own).toMatchObject([{ from: 0, newView: 3 }]);
        // Persisted before it is sent.
        expect(ready.persist.some((op) => op.op === 'put' && op.record.key === 'view-change')).toBe(true);
      }
    });
  }

  it('runs its view-change timer when 2f+1 replicas ask for this view or a later one', () => {
    // Reference: Castro & Liskov §4.5.2. With f replicas silent for good, one correct replica may
    // already ask for v+1 (its timer ran on view changes the others lost) while they ask for v: no
    // quorum for exactly v can form any more and one replica is short of the f+1 rule. A replica
    // asking for a later view gave up on v too, so it counts towards v's timer.
    const cluster = new Cluster({ replicas: 4, label: 'split-views', tuning: { batchRequestsMax: 1 } });
    const timeout = cluster.tuning.viewChangeTimeoutTicks;
    cluster.request(cluster.client(0).request(), [3]);
    cluster.tickUntil(() => cluster.node(3).core.inViewChange, cluster.tuning.requestTimeoutTicks + 2, 'vc');
    cluster.isolate(3);
    const node = cluster.node(3);
    expect(node.core).toMatchObject({ view: 1, inViewChange: true });
    // Replica 0 asks for view 1 with it, replica 2 already for view 2; replica 1 is silent.
    cluster.inject(3, viewChangeBytes(cluster, 0, 1));
    cluster.inject(3, viewChangeBytes(cluster, 2, 2));
    expect(node.core).toMatchObject({ view: 1, inViewChange: true });
    cluster.tick(timeout);
    expect(node.core).toMatchObject({ view: 2, inViewChange: true });
  });

  it('a replica stuck in an old view learns the new view from its peers', () => {
    // Reference: Castro & Liskov §4.4 and §5.2 (retransmission: a replica behind is sent the new-view
    // message of the current view).
    const cluster = new Cluster({ replicas: 4, label: 'learn-view', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    cluster.tick();
    const healThree = cluster.isolate(3);
    cluster.isolate(0);
    cluster.request(client.request(), [1, 2]);
    // Replicas 1 and 2 alone are not a quorum: let replica 3's view change through but not new views.
    healThree();
    const holdNewView = cluster.drop(({ message, to }) => message?.type === 'new-view' && to === 3);
    cluster.tickUntil(
      () => cluster.node(1).core.view === 1 && !cluster.node(1).core.inViewChange,
      100,
      'view 1',
    );
    expect(cluster.node(3).core.inViewChange).toBe(true);
    holdNewView();
    cluster.tickUntil(
      () => cluster.node(3).core.view === 1 && !cluster.node(3).core.inViewChange,
      3 * cluster.tuning.statusIntervalTicks,
      'replica 3 in view 1',
    );
  });
});
