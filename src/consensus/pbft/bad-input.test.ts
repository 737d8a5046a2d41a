import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { decodeEnvelope, encodeEnvelope, proposalDigest, signMessage } from './messages.js';
import type { MessageFields, PbftMessage } from './messages.js';
import { hexKey } from './quorum.js';
import {
  CONFIG_EPOCH,
  Cluster,
  GROUP_ID,
  SoloReplica,
  TestClient,
  decodeMessage,
  encodeReadies,
  onlyRejected,
} from '../../partition/testing/cluster.js';
import type { PbftInput, PbftReady, Proposal } from './types.js';

/**
 * Bad input must be refused with a stable code and leave no trace. "No trace" is checked black-box, in
 * the manner of a differential test: two replicas replayed from the same recorded inputs, one of them
 * fed the bad input, must then answer the same valid inputs with byte-identical Readies.
 *
 * Reference: Castro & Liskov §4.1 (messages are authenticated; replicas discard what does not verify),
 * §4.2 (a backup accepts a pre-prepare only if it is signed by the primary, in its view, in the window
 * and carries valid requests).
 */

const TARGET = 1; // a backup in view 0
const numRuns = 40;

interface Fixture {
  readonly cluster: Cluster;
  /** What replica TARGET received up to the snapshot, and afterwards. */
  readonly before: readonly PbftInput[];
  readonly after: readonly PbftInput[];
  /** The clean twin's answer to `after`, computed once. */
  readonly cleanAfter: string;
  /** Valid wire messages replica TARGET received, for mutation. */
  readonly pool: readonly Uint8Array[];
  readonly stable: number;
  readonly now: number;
}

let fixture: Fixture;

beforeAll(() => {
  // Few status rounds and one request per block keep the recorded inputs short: every property run
  // replays them.
  const cluster = new Cluster({
    replicas: 4,
    label: 'bad-input',
    tuning: { batchRequestsMax: 1, statusIntervalTicks: 20 },
  });
  const client = cluster.client(0);
  for (let i = 0; i < 5; i++) cluster.request(client.request());
  cluster.tick(2);
  // Leave something in flight at the snapshot: a request the primary has not yet proposed.
  cluster.request(client.request());
  const node = cluster.node(TARGET);
  const before = [...node.inputs];
  const stable = node.core.stable;
  const now = cluster.now;
  for (let i = 0; i < 3; i++) cluster.request(client.request());
  cluster.tick(3);
  const after = node.inputs.slice(before.length);
  const pool = [...before, ...after].flatMap((input) => (input.kind === 'message' ? [input.bytes] : []));
  const clean = new SoloReplica(node.config, node.signer, before);
  const cleanAfter = hexKey(encodeReadies(after.flatMap((input) => clean.step(input))));
  fixture = { cluster, before, after, cleanAfter, pool, stable, now };
});

/** Feeds `bad` to a fresh replica at the snapshot and checks the rejection and the absence of effects. */
function checkRejected(bad: PbftInput, expected: readonly string[]): void {
  const node = fixture.cluster.node(TARGET);
  const hit = new SoloReplica(node.config, node.signer, fixture.before);
  let readies: PbftReady[] = [];
  expect(() => (readies = hit.step(bad))).not.toThrow();
  expect(readies).toHaveLength(1);
  const ready = readies[0]!;
  expect(ready.rejected).toHaveLength(1);
  expect(expected).toContain(ready.rejected[0]!.code);
  expect(onlyRejected(ready)).toBe(true);
  const hitAfter = hexKey(encodeReadies(fixture.after.flatMap((input) => hit.step(input))));
  expect(hitAfter === fixture.cleanAfter, 'the bad input changed later behaviour').toBe(true);
}

/** Signs a message as replica `from` with any group, epoch and sender index. */
function signed(
  signer: number,
  fields: MessageFields<PbftMessage>,
  header: { group?: string; epoch?: number; from?: number } = {},
): Uint8Array {
  const message = {
    ...fields,
    group: header.group ?? GROUP_ID,
    epoch: header.epoch ?? CONFIG_EPOCH,
    from: header.from ?? signer,
  } as PbftMessage;
  return encodeEnvelope(signMessage(fixture.cluster.node(signer).signer.crypto, message));
}

const digestArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** Valid message bodies that replica TARGET would otherwise accept, from sender `from`. */
function bodyArb(seq: fc.Arbitrary<number>): fc.Arbitrary<MessageFields<PbftMessage>> {
  return fc.oneof(
    fc.record({ type: fc.constant('prepare' as const), view: fc.constant(0), seq, digest: digestArb }),
    fc.record({ type: fc.constant('commit' as const), view: fc.constant(0), seq, digest: digestArb }),
    fc.record({
      type: fc.constant('status' as const),
      view: fc.constant(0),
      inViewChange: fc.boolean(),
      lastExecuted: fc.nat(50),
      lastCertified: fc.nat(50),
      stableSeq: fc.nat(50),
    }),
    fc.record({
      type: fc.constant('view-change' as const),
      newView: fc.integer({ min: 1, max: 5 }),
      stable: fc.constant(null),
      prepared: fc.constant([]),
    }),
  );
}

function inWindowSeq(): fc.Arbitrary<number> {
  const window = fixture.cluster.tuning.watermarkWindow;
  return fc.integer({ min: fixture.stable + 1, max: fixture.stable + window });
}

const malformed = [ErrorCode.MalformedEncoding, ErrorCode.SchemaMismatch];

describe('bad input is rejected with a stable code and changes nothing', () => {
  it('sanity: the fixture has committed blocks, a stable checkpoint and traffic after the snapshot', () => {
    // Reference: Castro & Liskov §4 (the replica is a deterministic state machine: the same inputs give the same outputs).
    expect(fixture.stable).toBeGreaterThan(0);
    expect(fixture.after.length).toBeGreaterThan(20);
    expect(fixture.after.some((input) => input.kind === 'message')).toBe(true);
    const node = fixture.cluster.node(TARGET);
    // Replaying the recorded inputs gives exactly the outputs the cluster replica produced.
    const replay = new SoloReplica(node.config, node.signer);
    const replayed = node.inputs.flatMap((input) => replay.step(input));
    expect(hexKey(encodeReadies(replayed))).toBe(
      hexKey(encodeReadies(node.history.map((step) => step.ready))),
    );
  });

  it('random bytes as a message', () => {
    // Reference: Castro & Liskov §4.1 (only well-formed, authenticated messages are processed).
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) =>
        checkRejected({ kind: 'message', bytes }, malformed),
      ),
      { numRuns },
    );
  });

  it('random bytes as a client request', () => {
    // Reference: Castro & Liskov §4.1 (client requests are signed and well-formed).
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) =>
        checkRejected({ kind: 'request', bytes }, malformed),
      ),
      { numRuns },
    );
  });

  it('truncated valid messages', () => {
    // Reference: Castro & Liskov §4.1.
    fc.assert(
      fc.property(fc.nat(), fc.nat(), (pick, cut) => {
        const bytes = fixture.pool[pick % fixture.pool.length]!;
        checkRejected({ kind: 'message', bytes: bytes.subarray(0, cut % bytes.length) }, malformed);
      }),
      { numRuns },
    );
  });

  it('bit-flipped valid messages', () => {
    // Reference: Castro & Liskov §4.1 (a message altered in transit fails authentication).
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 7 }), (pick, at, bit) => {
        const bytes = new Uint8Array(fixture.pool[pick % fixture.pool.length]!);
        bytes[at % bytes.length]! ^= 1 << bit;
        checkRejected({ kind: 'message', bytes }, [
          ...malformed,
          ErrorCode.BadSignature,
          ErrorCode.WrongGroup,
          ErrorCode.NonMember,
          ErrorCode.Replay,
        ]);
      }),
      { numRuns },
    );
  });

  it('messages from a sender index outside the group', () => {
    // Reference: Castro & Liskov §4.1 (replicas only accept messages from the group).
    fc.assert(
      fc.property(
        fc.integer({ min: 4, max: 63 }),
        fc.integer({ min: 0, max: 3 }),
        bodyArb(inWindowSeq()),
        (from, key, body) =>
          checkRejected({ kind: 'message', bytes: signed(key, body, { from }) }, [ErrorCode.NonMember]),
      ),
      { numRuns },
    );
  });

  it('messages and client requests signed in another network by the very same keys', () => {
    // Reference: Castro & Liskov §4.1 (messages are authenticated). A consortium whose replicas and
    // clients reuse their keys elsewhere: signatures are bound to the network, so nothing crosses.
    const twin = new Cluster({ replicas: 4, label: 'bad-input', network: 'another-network' });
    expect(twin.replicaInfos).toEqual(fixture.cluster.replicaInfos);
    fc.assert(
      fc.property(fc.constantFrom(0, 2, 3), bodyArb(inWindowSeq()), (from, body) => {
        const message = { ...body, group: GROUP_ID, epoch: CONFIG_EPOCH, from } as PbftMessage;
        const bytes = encodeEnvelope(signMessage(twin.node(from).signer.crypto, message));
        checkRejected({ kind: 'message', bytes }, [ErrorCode.BadSignature]);
      }),
      { numRuns },
    );
    const request = twin.client(0).request(undefined, 1_000);
    checkRejected({ kind: 'request', bytes: request }, [ErrorCode.BadSignature]);
  });

  it('messages for another group or epoch', () => {
    // Reference: Castro & Liskov §4.1.
    const other = fc.oneof(
      fc.record({
        group: fc.string({ minLength: 1, maxLength: 20 }).filter((group) => group !== GROUP_ID),
        epoch: fc.constant(CONFIG_EPOCH),
      }),
      fc.record({
        group: fc.constant(GROUP_ID),
        epoch: fc.nat(1000).filter((epoch) => epoch !== CONFIG_EPOCH),
      }),
    );
    fc.assert(
      fc.property(other, fc.constantFrom(0, 2, 3), bodyArb(inWindowSeq()), (header, from, body) =>
        checkRejected({ kind: 'message', bytes: signed(from, body, header) }, [ErrorCode.WrongGroup]),
      ),
      { numRuns },
    );
  });

  it('votes and pre-prepares for another view', () => {
    // Reference: Castro & Liskov §4.2 (a replica accepts pre-prepares, prepares and commits only in its current view).
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom('prepare' as const, 'commit' as const, 'pre-prepare' as const),
        inWindowSeq(),
        digestArb,
        (view, type, seq, digest) => {
          const from = type === 'pre-prepare' ? view % 4 : view % 4 === 2 ? 3 : 2;
          if (from === TARGET) return;
          const proposal: Proposal = { view, proposer: `r${from}`, timestamp: fixture.now, requests: [] };
          const body: MessageFields<PbftMessage> =
            type === 'pre-prepare'
              ? {
                  type,
                  view,
                  seq,
                  digest: proposalDigest(fixture.cluster.node(0).signer.crypto, proposal),
                  proposal,
                }
              : { type, view, seq, digest };
          checkRejected({ kind: 'message', bytes: signed(from, body) }, [ErrorCode.WrongView]);
        },
      ),
      { numRuns },
    );
  });

  it('votes outside the watermarks', () => {
    // Reference: Castro & Liskov §4.2 and §4.3 (sequence numbers must lie between h and H = h + L).
    const window = () => fixture.cluster.tuning.watermarkWindow;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 0, max: fixture.stable }),
          fc.integer({ min: fixture.stable + window() + 1, max: 2 ** 40 }),
        ),
        fc.constantFrom('prepare' as const, 'commit' as const),
        fc.constantFrom(2, 3),
        digestArb,
        (seq, type, from, digest) =>
          checkRejected({ kind: 'message', bytes: signed(from, { type, view: 0, seq, digest }) }, [
            ErrorCode.OutOfWindow,
          ]),
      ),
      { numRuns },
    );
  });

  it('messages whose signature does not verify', () => {
    // Reference: Castro & Liskov §4.1.
    fc.assert(
      fc.property(
        fc.constantFrom(0, 2, 3),
        bodyArb(inWindowSeq()),
        fc.uint8Array({ minLength: 32, maxLength: 128 }),
        (from, body, signature) => {
          const genuine = decodeEnvelope(signed(from, body));
          const bytes = encodeEnvelope({ body: genuine.body, signature });
          checkRejected({ kind: 'message', bytes }, [ErrorCode.BadSignature]);
        },
      ),
      { numRuns },
    );
  });

  it('a message signed by one replica that claims to come from another', () => {
    // Reference: Castro & Liskov §4.1 (a faulty replica cannot impersonate a correct one).
    fc.assert(
      fc.property(
        fc.constantFrom(0, 2, 3),
        fc.constantFrom(0, 2, 3),
        bodyArb(inWindowSeq()),
        (key, from, body) => {
          if (key === from) return;
          checkRejected({ kind: 'message', bytes: signed(key, body, { from }) }, [ErrorCode.BadSignature]);
        },
      ),
      { numRuns },
    );
  });

  it('a pre-prepare from a replica that is not the primary', () => {
    // Reference: Castro & Liskov §4.2 (only the primary of the view assigns sequence numbers).
    const client = fixture.cluster.client(7);
    fc.assert(
      fc.property(fc.constantFrom(2, 3), inWindowSeq(), fc.nat(3), (from, seq, count) => {
        const proposal: Proposal = {
          view: 0,
          proposer: `r${from}`,
          timestamp: fixture.now,
          requests: Array.from({ length: count }, () => client.request()),
        };
        const digest = proposalDigest(fixture.cluster.node(0).signer.crypto, proposal);
        checkRejected(
          { kind: 'message', bytes: signed(from, { type: 'pre-prepare', view: 0, seq, digest, proposal }) },
          [ErrorCode.NotPrimary],
        );
      }),
      { numRuns: 20 },
    );
  });

  it('oversize client requests, and pre-prepares with more requests than batchRequestsMax', () => {
    // Reference: Castro & Liskov §5.1 (batching), with the limits of STYLE.md.
    const limit = fixture.cluster.tuning.requestBytesMax;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2048 }), fc.nat(255), (extra, fill) =>
        checkRejected({ kind: 'request', bytes: new Uint8Array(limit + extra).fill(fill) }, [
          ErrorCode.Oversize,
        ]),
      ),
      { numRuns: 20 },
    );
    const client = fixture.cluster.client(8);
    const requests = Array.from({ length: fixture.cluster.tuning.batchRequestsMax + 1 }, () =>
      client.request(),
    );
    const proposal: Proposal = { view: 0, proposer: 'r0', timestamp: fixture.now, requests };
    const digest = proposalDigest(fixture.cluster.node(0).signer.crypto, proposal);
    checkRejected(
      {
        kind: 'message',
        bytes: signed(0, { type: 'pre-prepare', view: 0, seq: fixture.stable + 7, digest, proposal }),
      },
      [ErrorCode.Oversize],
    );
  });

  // (A batch that repeats a request is covered in normal-case.test.ts, where batches may hold two.)
  it('pre-prepares with a wrong digest, a forged request or a far-future timestamp', () => {
    // Reference: Castro & Liskov §4.2 (the digest must match, every request must be valid) and §4.1 (timestamps).
    const client = fixture.cluster.client(9);
    const crypto = fixture.cluster.node(0).signer.crypto;
    const seq = fixture.stable + 7;
    const good: Proposal = { view: 0, proposer: 'r0', timestamp: fixture.now, requests: [client.request()] };
    const prePrepare = (proposal: Proposal, digest = proposalDigest(crypto, proposal)): PbftInput => ({
      kind: 'message',
      bytes: signed(0, { type: 'pre-prepare', view: 0, seq, digest, proposal }),
    });
    checkRejected(prePrepare(good, new Uint8Array(32)), [ErrorCode.WrongDigest]);
    checkRejected(prePrepare({ ...good, proposer: 'r2' }), [ErrorCode.WrongDigest]);
    const forgedRequest = new Uint8Array(good.requests[0]!);
    forgedRequest[forgedRequest.length - 1]! ^= 1;
    checkRejected(prePrepare({ ...good, requests: [forgedRequest] }), [ErrorCode.BadSignature]);
    checkRejected(prePrepare({ ...good, timestamp: fixture.now + 60_000 }), [ErrorCode.ClockSkew]);
  });

  it('client requests with a bad signature or for another group', () => {
    // Reference: Castro & Liskov §4.1.
    const client = fixture.cluster.client(10);
    const request = client.request();
    const forged = new Uint8Array(request);
    forged[forged.length - 1]! ^= 1;
    checkRejected({ kind: 'request', bytes: forged }, [ErrorCode.BadSignature]);
    const elsewhere = new TestClient(client.signer, 'other/0');
    checkRejected({ kind: 'request', bytes: elsewhere.request() }, [ErrorCode.WrongGroup]);
  });

  it('the pool of valid messages really is valid (mutations start from accepted input)', () => {
    // Reference: Castro & Liskov §4.1 (harness check).
    for (const bytes of fixture.pool.slice(0, 20)) expect(decodeMessage(bytes).group).toBe(GROUP_ID);
  });
});
