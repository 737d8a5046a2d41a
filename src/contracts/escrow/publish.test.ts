import { describe, expect, it } from 'vitest';
import { decodeCanonical, encodeCanonical } from '../../codec/index.js';
import type { CborValue } from '../../codec/index.js';
import { AssertionError } from '../../errors.js';
import { messageById } from '../queries.js';
import { RejectReason } from '../reasons.js';
import type { RejectReason as RejectReasonType } from '../reasons.js';
import { validateTopicPolicy } from '../registry.js';
import type { EscrowPolicy } from '../registry.js';
import type { MessageResult, TransactionResult } from '../results.js';
import { messageLeaf } from '../transactions.js';
import { escrowLogPage, escrowParties, escrowRecordView } from './queries.js';
import type { EscrowMetadata } from './transactions.js';
import {
  EscrowHarness,
  escrowGroup,
  escrowMessage,
  escrowMetadata,
  escrowPolicy,
  makeEscrowRegistry,
  plainGroup,
  plainTopic,
  sealed,
  topicPolicy,
} from './testing/fixtures.js';

function messages(result: TransactionResult): MessageResult[] {
  if (result.status !== 'OK' || result.type !== 'publish')
    throw new Error(`not a publish: ${JSON.stringify(result)}`);
  return [...result.messages];
}

const exercised = new Set<RejectReasonType>();

/**
 * Publishes one message with `escrow` changed on the escrow topic and expects it refused with
 * `reason` and `detail`, leaving no message and no escrow record behind.
 */
function expectRefused(
  change: Partial<EscrowMetadata> | undefined,
  reason: RejectReasonType,
  detail?: string,
  harness = new EscrowHarness(),
): void {
  const message =
    change === undefined
      ? { ...escrowMessage(), escrow: undefined }
      : escrowMessage({ escrow: escrowMetadata(change) });
  const [item] = messages(harness.one(harness.publish('alice', [message])));
  expect(item).toEqual({
    id: 'm-1',
    status: 'REJECTED',
    reason,
    ...(detail === undefined ? {} : { detail }),
  });
  exercised.add(reason);
  expect(messageById(harness.state, harness.group, 'm-1')).toBeUndefined();
  expect(escrowRecordView(harness.state, harness.group, 'm-1')).toBeUndefined();
  expect(escrowLogPage(harness.state, harness.group, { fromSeq: 0 }).endSeq).toBe(0);
}

describe('publishing an escrowed message', () => {
  it('records the message and a PENDING escrow record, and logs "registered"', () => {
    const harness = new EscrowHarness();
    const { decoded } = harness.run([
      harness.publish('alice', [escrowMessage({ id: 'a' })]),
      harness.publish('alice', [escrowMessage({ id: 'b' })]),
    ]);
    expect(decoded.flatMap((result) => messages(result).map((item) => item.status))).toEqual([
      'ACCEPTED',
      'ACCEPTED',
    ]);
    expect(escrowRecordView(harness.state, escrowGroup, 'a')).toEqual({
      id: 'a',
      group: escrowGroup,
      sender: 'alice',
      status: 'PENDING',
      threshold: 2,
      shareHolders: ['h1', 'h2', 'h3'],
      chunkHolders: ['h1', 'h2', 'h3', 'h4'],
      attestations: [],
      audits: [],
    });
    expect(escrowParties(harness.state, escrowGroup, 'b')).toEqual({
      sender: 'alice',
      shareHolders: ['h1', 'h2', 'h3'],
      chunkHolders: ['h1', 'h2', 'h3', 'h4'],
    });
    expect(escrowLogPage(harness.state, escrowGroup, { fromSeq: 0 })).toEqual({
      entries: [
        { seq: 0, kind: 'registered', id: 'a', requestId: null, height: 1, transactionIndex: 0 },
        { seq: 1, kind: 'registered', id: 'b', requestId: null, height: 1, transactionIndex: 1 },
      ],
      nextSeq: 2,
      endSeq: 2,
    });
    expect(escrowParties(harness.state, escrowGroup, 'nope')).toBeUndefined();
  });

  it('answers a retry with the first result and registers the escrow once', () => {
    const harness = new EscrowHarness();
    const message = escrowMessage();
    const first = messages(harness.one(harness.publish('alice', [message])));
    const again = messages(harness.one(harness.publish('alice', [message])));
    expect(again).toEqual(first);
    expect(escrowLogPage(harness.state, escrowGroup, { fromSeq: 0 }).endSeq).toBe(1);
    // The escrow metadata is in the leaf: another sharing under the same id is a conflict.
    const [conflict] = messages(harness.one(harness.publish('alice', [escrowMessage()])));
    expect(conflict).toMatchObject({ status: 'REJECTED', reason: RejectReason.MessageIdConflict });
  });

  it('requires escrow on an escrow topic and refuses it on a standard one', () => {
    expectRefused(undefined, RejectReason.EscrowRequired);
    const harness = new EscrowHarness(makeEscrowRegistry(), plainGroup);
    const [item] = messages(harness.one(harness.publish('alice', [escrowMessage({ topic: plainTopic })])));
    expect(item).toEqual({ id: 'm-1', status: 'REJECTED', reason: RejectReason.EscrowNotAllowed });
    exercised.add(RejectReason.EscrowNotAllowed);
    const [plain] = messages(
      harness.one(harness.publish('alice', [{ ...escrowMessage({ topic: plainTopic }), escrow: undefined }])),
    );
    expect(plain?.status).toBe('ACCEPTED');
    expect(escrowRecordView(harness.state, plainGroup, 'm-1')).toBeUndefined();
    // A partition that never escrowed has no escrow key at all.
    expect(harness.state.snapshot().some(([key]) => key.startsWith('escrow/'))).toBe(false);
  });

  it('refuses metadata that does not fit the policy, naming the field', () => {
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const cases: [Partial<EscrowMetadata>, string][] = [
      [{ chunkBytes: 8192, chunkCount: 2 }, 'chunkBytes'],
      [{ commitments: escrowMetadata().commitments.slice(0, 1) }, 'commitments'],
      [{ shares: escrowMetadata().shares.slice(0, 2) }, 'shares'],
      [{ chunkCount: 4, placement: Uint8Array.of(0, 1, 2, 1, 2, 3, 3, 0, 1, 0, 1, 2) }, 'chunkCount'],
      [{ chunkCount: 2, placement: Uint8Array.of(0, 1, 2, 1, 2, 3) }, 'chunkCount'],
      [{ blobBytes: 8192, chunkCount: 2, placement: Uint8Array.of(0, 1, 2, 1, 2, 3) }, 'blobBytes'],
      [{ placement: Uint8Array.of(0, 1, 2, 1, 2, 3, 3, 0) }, 'placement'],
      [{ placement: Uint8Array.of(0, 1, 2, 1, 2, 3, 3, 0, 4) }, 'placement'],
      [{ placement: Uint8Array.of(0, 1, 2, 1, 2, 3, 3, 0, 0) }, 'placement'],
      [{ placement: Uint8Array.of(0, 1, 2, 1, 2, 0, 0, 1, 2) }, 'holders'],
      [{ commitments: [escrowMetadata().commitments[0] as Uint8Array, identity] }, 'commitments'],
      [
        { commitments: [new Uint8Array(32).fill(0xff), escrowMetadata().commitments[1] as Uint8Array] },
        'commitments',
      ],
    ];
    for (const [change, field] of cases) expectRefused(change, RejectReason.EscrowPolicyMismatch, field);
  });

  it('accepts the exact boundary of chunkCount and blobBytes', () => {
    const harness = new EscrowHarness();
    const exact = escrowMessage({
      size: 8192,
      escrow: escrowMetadata({ blobBytes: 8192, chunkCount: 2, placement: Uint8Array.of(0, 1, 2, 1, 2, 3) }),
    });
    expect(messages(harness.one(harness.publish('alice', [exact])))[0]?.status).toBe('ACCEPTED');
  });

  it('refuses holders that are the sender, unknown, not approved, not members, or repeated', () => {
    const shareHolders = (holders: string[]) => ({
      shares: holders.map((holder, index) => ({ holder, share: sealed(index + 1) })),
    });
    expectRefused(shareHolders(['h1', 'alice', 'h3']), RejectReason.EscrowHolderInvalid, 'alice');
    expectRefused(shareHolders(['h1', 'ghost', 'h3']), RejectReason.EscrowHolderInvalid, 'ghost');
    expectRefused(shareHolders(['h1', 'pending', 'h3']), RejectReason.EscrowHolderInvalid, 'pending');
    expectRefused(shareHolders(['h1', 'regulator', 'h3']), RejectReason.EscrowHolderInvalid, 'regulator');
    expectRefused(shareHolders(['h1', 'h2', 'h1']), RejectReason.EscrowHolderInvalid, 'h1');
    expectRefused({ holders: ['h1', 'h2', 'alice', 'h4'] }, RejectReason.EscrowHolderInvalid, 'alice');
    expectRefused(
      { holders: ['h1', 'h2', 'supervisor', 'h4'] },
      RejectReason.EscrowHolderInvalid,
      'supervisor',
    );
    expectRefused({ holders: ['h1', 'h2', 'h2', 'h4'] }, RejectReason.EscrowHolderInvalid, 'h2');
    const suspended = makeEscrowRegistry().setStatus('h4', 'SUSPENDED');
    expectRefused({}, RejectReason.EscrowHolderInvalid, 'h4', new EscrowHarness(suspended));
  });

  it('refuses a bad escrowed message and writes nothing for it', () => {
    const harness = new EscrowHarness();
    const bad = escrowMessage({ id: 'bad', escrow: escrowMetadata({ chunkBytes: 8192 }) });
    const { decoded } = harness.run([
      harness.publish('alice', [bad]),
      harness.publish('alice', [escrowMessage({ id: 'good' })]),
    ]);
    expect(decoded.flatMap((result) => messages(result).map((item) => item.status))).toEqual([
      'REJECTED',
      'ACCEPTED',
    ]);
    expect(escrowRecordView(harness.state, escrowGroup, 'bad')).toBeUndefined();
    expect(
      escrowLogPage(harness.state, escrowGroup, { fromSeq: 0 }).entries.map((entry) => entry.id),
    ).toEqual(['good']);
  });

  it('accepts one escrowed message per publish: a second one is refused before its curve checks', () => {
    const harness = new EscrowHarness();
    const result = messages(
      harness.one(
        harness.publish('alice', [escrowMessage({ id: 'first' }), escrowMessage({ id: 'second' })]),
      ),
    );
    expect(result.map((item) => item.status)).toEqual(['ACCEPTED', 'REJECTED']);
    expect(result[1]).toMatchObject({
      reason: RejectReason.EscrowPolicyMismatch,
      detail: 'one escrowed message per publish',
    });
    expect(escrowRecordView(harness.state, escrowGroup, 'second')).toBeUndefined();
  });

  it('every publish-level escrow reason is exercised above', () => {
    expect([...exercised].sort()).toEqual(
      [
        RejectReason.EscrowRequired,
        RejectReason.EscrowNotAllowed,
        RejectReason.EscrowPolicyMismatch,
        RejectReason.EscrowHolderInvalid,
      ].sort(),
    );
  });
});

describe('message leaves', () => {
  it('carry escrow only when present, so standard leaves keep their bytes', () => {
    const { escrow, ...standard } = escrowMessage();
    const withoutKey = decodeCanonical(messageLeaf('alice', standard)) as Record<string, CborValue>;
    expect(Object.keys(withoutKey)).not.toContain('escrow');
    // The leaf a standard message had before escrow existed: these ten fields, nothing else.
    expect(messageLeaf('alice', standard)).toEqual(
      encodeCanonical({
        id: standard.id,
        topic: standard.topic,
        partition: standard.partition,
        key: standard.key,
        sender: 'alice',
        recipients: [...standard.recipients],
        size: standard.size,
        contentRoot: standard.contentRoot,
        contentType: standard.contentType,
        headers: {},
      }),
    );
    const withEscrow = decodeCanonical(messageLeaf('alice', { ...standard, escrow })) as Record<
      string,
      CborValue
    >;
    expect((withEscrow.escrow as Record<string, CborValue>).commitments).toEqual(escrow?.commitments);
  });
});

describe('validateTopicPolicy on escrow', () => {
  const base = topicPolicy();
  const bad = (escrow: Partial<EscrowPolicy>) => () =>
    validateTopicPolicy({ ...base, escrow: { ...escrowPolicy, ...escrow } });

  it('accepts the fixture policy and the bounds', () => {
    validateTopicPolicy(base);
    validateTopicPolicy({
      ...base,
      escrow: { chunkBytes: 4096, replicas: 1, threshold: 1, shares: 1, auditApprovals: 0 },
    });
    validateTopicPolicy({
      ...base,
      escrow: { chunkBytes: 8 * 1024 * 1024, replicas: 16, threshold: 16, shares: 16, auditApprovals: 64 },
    });
  });

  it('names the field that is out of bounds', () => {
    const cases: [Partial<EscrowPolicy>, string][] = [
      [{ chunkBytes: 4095 }, 'chunkBytes'],
      [{ chunkBytes: 8 * 1024 * 1024 + 1 }, 'chunkBytes'],
      [{ replicas: 0 }, 'replicas'],
      [{ replicas: 17 }, 'replicas'],
      [{ shares: 17, threshold: 2 }, 'shares'],
      [{ threshold: 0 }, 'threshold'],
      [{ threshold: 4 }, 'threshold'],
      [{ auditApprovals: 65 }, 'auditApprovals'],
      [{ auditApprovals: -1 }, 'auditApprovals'],
      [{ threshold: 1.5 }, 'threshold'],
    ];
    for (const [change, field] of cases) {
      expect(bad(change)).toThrow(AssertionError);
      expect(bad(change)).toThrow(field);
    }
  });

  it('requires escrow exactly on escrow topics', () => {
    expect(() => validateTopicPolicy({ ...base, escrow: undefined })).toThrow(/escrow is missing/);
    expect(() => validateTopicPolicy({ ...base, availability: 'standard' })).toThrow(/not escrow/);
    expect(() => validateTopicPolicy({ ...base, availability: undefined })).toThrow(/not escrow/);
    validateTopicPolicy({ ...base, availability: 'standard', escrow: undefined });
  });
});
