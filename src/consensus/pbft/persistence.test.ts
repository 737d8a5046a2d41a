import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { decodeBody, proposalDigest } from './messages.js';
import type { PrePrepare } from './messages.js';
import { hexKey } from './quorum.js';
import { Cluster, decodeMessage, onlyRejected } from '../../partition/testing/cluster.js';
import type { TestReplica } from '../../partition/testing/cluster.js';
import type { Proposal } from './types.js';

function requestsIn(node: TestReplica): string[] {
  return node.ledger.flatMap((entry) => entry.block.proposal.requests.map(hexKey));
}

/** Message types a replica must never send before the record that binds it is durable. */
const binding = new Set(['pre-prepare', 'prepare', 'commit', 'view-change', 'new-view']);

/**
 * Checks the order of `PbftReady` for one replica's whole history: each binding message it signed went
 * out in a Ready that also persisted it, or after an earlier Ready did (a retransmission).
 */
function checkPersistBeforeSend(node: TestReplica): { firstSends: number; resends: number } {
  const durable = new Set<string>();
  let firstSends = 0;
  let resends = 0;
  for (const { ready } of node.history) {
    const putNow = new Set(ready.persist.flatMap((op) => (op.op === 'put' ? [hexKey(op.record.bytes)] : [])));
    for (const out of ready.send) {
      const message = decodeMessage(out.bytes);
      if (!binding.has(message.type) || message.from !== node.index) continue;
      const key = hexKey(out.bytes);
      if (durable.has(key)) {
        resends += 1;
        continue;
      }
      expect(
        putNow.has(key),
        `r${node.index} sent a ${message.type} it did not persist in the same Ready`,
      ).toBe(true);
      firstSends += 1;
    }
    for (const key of putNow) durable.add(key);
  }
  return { firstSends, resends };
}

describe('persistence', () => {
  it('persists every vote, view change and new view in the Ready that first sends it', () => {
    // Reference: Castro & Liskov §4.2 and §4.4 (messages are logged before they are sent, so that a
    // replica that restarts never contradicts itself); etcd-io/raft's Ready contract (persist, then send).
    const cluster = new Cluster({ replicas: 4, label: 'persist-order', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    for (let i = 0; i < 6; i++) {
      cluster.request(client.request());
      cluster.tick();
    }
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 6), 30, 'six blocks');
    cluster.drop(({ message }) => message?.type === 'commit' && message.view === 0);
    cluster.request(client.request());
    cluster.tick();
    cluster.isolate(0);
    cluster.tickUntil(
      () => cluster.node(1).core.view === 1 && !cluster.node(1).core.inViewChange,
      60,
      'view 1',
    );
    cluster.heal();
    cluster.request(client.request());
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length >= 8), 60, 'eight blocks');

    let firstSends = 0;
    const types = new Set<string>();
    for (const node of cluster.nodes) {
      firstSends += checkPersistBeforeSend(node).firstSends;
      for (const { ready } of node.history)
        for (const out of ready.send) types.add(decodeMessage(out.bytes).type);
    }
    expect(firstSends).toBeGreaterThan(50);
    for (const type of binding) expect(types.has(type), `no ${type} was sent`).toBe(true);
  });

  it('a restarted primary never proposes another batch at a sequence number it pre-prepared', () => {
    // Reference: Castro & Liskov §4.2 (a correct primary never assigns one sequence number to two
    // requests in a view) together with §4.4's durable log: the pre-prepare was logged before it left.
    const cluster = new Cluster({ replicas: 4, label: 'restart-primary', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    const [a, b] = [client.request(), client.request()];
    cluster.tick();
    const mute = cluster.drop(({ from }) => from === 0);
    cluster.request(a, [0]);
    cluster.tick();
    expect(cluster.node(0).persisted.has('pre-prepare/1')).toBe(true);

    cluster.crash(0);
    cluster.restart(0);
    mute();
    cluster.request(b);
    cluster.tickUntil(
      () => cluster.nodes.every((node) => requestsIn(node).length === 2),
      40,
      'A and B executed everywhere',
    );

    const proposals = cluster
      .sent('pre-prepare')
      .map(({ message }) => message)
      .filter((message) => message.from === 0 && message.view === 0);
    const digestsAt = (seq: number) =>
      new Set(proposals.filter((message) => message.seq === seq).map((message) => hexKey(message.digest)));
    expect(digestsAt(1).size).toBe(1);
    expect(digestsAt(2).size).toBe(1);
    for (const node of cluster.nodes) expect(requestsIn(node)).toEqual([a, b].map(hexKey));
    cluster.checkAgreement();
  });

  it('a restarted backup still refuses a conflicting pre-prepare for a slot it prepared', () => {
    // Reference: Castro & Liskov §4.2 (a backup accepts at most one pre-prepare per view and sequence
    // number), which must survive a restart.
    const cluster = new Cluster({ replicas: 4, label: 'restart-backup', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    cluster.tick();
    cluster.drop(({ message }) => message?.type === 'commit');
    cluster.request(client.request());
    cluster.tick();
    cluster.crash(1);
    cluster.restart(1);
    cluster.tick();

    const other: Proposal = { view: 0, proposer: 'r0', timestamp: cluster.now, requests: [client.request()] };
    const conflicting = cluster.sign(0, {
      type: 'pre-prepare',
      view: 0,
      seq: 1,
      digest: proposalDigest(cluster.node(0).signer.crypto, other),
      proposal: other,
    });
    const ready = cluster.inject(1, conflicting);
    expect(ready.rejected.map((rejection) => rejection.code)).toEqual([ErrorCode.WrongDigest]);
    expect(onlyRejected(ready)).toBe(true);
  });

  it('a restarted replica still reports its prepared certificates in its next view change', () => {
    // Reference: Castro & Liskov §4.4 (the view-change message carries P, the prepared certificates,
    // which is what keeps a request that may have committed somewhere from being lost).
    const cluster = new Cluster({ replicas: 4, label: 'restart-prepared', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    const c = client.request();
    cluster.tick();
    cluster.drop(({ message }) => message?.type === 'commit' && message.view === 0);
    cluster.request(c);
    cluster.tick();
    const digest = cluster.sent('pre-prepare')[0]!.message.digest;

    cluster.crash(2);
    cluster.restart(2);
    expect(cluster.node(2).core.pendingRequests).toBe(0);
    cluster.isolate(0);
    cluster.tickUntil(
      () => cluster.node(1).core.view === 1 && !cluster.node(1).core.inViewChange,
      60,
      'view 1',
    );

    const fromTwo = cluster
      .sent('view-change')
      .find(({ message }) => message.from === 2 && message.newView === 1);
    expect(fromTwo).toBeDefined();
    expect(fromTwo!.message.prepared).toHaveLength(1);
    const certified = decodeBody(fromTwo!.message.prepared[0]!.prePrepare.body) as PrePrepare;
    expect(certified).toMatchObject({ seq: 1, view: 0 });
    expect(certified.digest).toEqual(digest);
    expect(fromTwo!.message.prepared[0]!.prepares.length).toBeGreaterThanOrEqual(2);

    cluster.tickUntil(() => [1, 2, 3].every((i) => requestsIn(cluster.node(i)).includes(hexKey(c))), 30, 'C');
    cluster.checkAgreement();
  });

  it('a replica restarted from its ledger and records catches up and keeps agreeing', () => {
    // Reference: Castro & Liskov §4.3 (recovery from the last stable checkpoint) and §4.4.
    const cluster = new Cluster({ replicas: 4, label: 'restart-catch-up', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    for (let i = 0; i < 6; i++) {
      cluster.request(client.request());
      cluster.tick();
    }
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 6), 30, 'six blocks');
    cluster.crash(2);
    for (let i = 0; i < 5; i++) {
      cluster.request(client.request());
      cluster.tick();
    }
    cluster.tickUntil(() => cluster.node(0).ledger.length === 11, 30, 'eleven blocks');
    cluster.restart(2);
    expect(cluster.node(2).core).toMatchObject({ lastExecuted: 6, stable: 4, view: 0 });
    cluster.tickUntil(() => cluster.node(2).ledger.length === 11, 60, 'replica 2 caught up');
    expect(new Set(requestsIn(cluster.node(2))).size).toBe(11);
    cluster.checkAgreement();
  });

  it('the whole group restarts after a view change and carries on in the new view', () => {
    // Reference: Castro & Liskov §4.4 (the view number is part of the durable state).
    const cluster = new Cluster({ replicas: 4, label: 'restart-all', tuning: { batchRequestsMax: 1 } });
    const client = cluster.client(0);
    cluster.request(client.request());
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 1), 20, 'one block');
    const healPrimary = cluster.isolate(0);
    cluster.request(client.request(), [1, 2, 3]);
    cluster.tickUntil(
      () => cluster.node(1).core.view === 1 && !cluster.node(1).core.inViewChange,
      60,
      'view 1',
    );
    healPrimary();
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 2), 60, 'two blocks');
    for (const node of cluster.nodes) {
      cluster.crash(node.index);
      cluster.restart(node.index);
      expect(node.core).toMatchObject({ view: 1, inViewChange: false, lastExecuted: 2 });
    }
    cluster.request(client.request());
    cluster.tickUntil(() => cluster.nodes.every((node) => node.ledger.length === 3), 30, 'three blocks');
    expect(cluster.node(0).ledger[2]!.block.header).toMatchObject({ view: 1, proposer: 'r1' });
    cluster.checkAgreement();
  });
});
