import { describe, expect, it } from 'vitest';
import { encodeWith } from '../../codec/index.js';
import { RejectReason, jobRejectReasons } from '../reasons.js';
import type { RejectReason as RejectReasonType } from '../reasons.js';
import type { JobResult, TransactionResult } from '../results.js';
import { jobLogPage, jobView } from './queries.js';
import type { JobAction } from './transactions.js';
import { jobViewSchema } from './views.js';
import {
  JobHarness,
  approve,
  completed,
  failed,
  hash,
  jobGroup,
  jobRequest,
  keys,
  reject,
} from './testing/fixtures.js';
import type { OrganizationName } from './testing/fixtures.js';

const exercised = new Set<RejectReasonType>();

function ok(result: TransactionResult | undefined): JobResult {
  if (result?.status !== 'OK' || result.type !== 'job')
    throw new Error(`not a job OK: ${JSON.stringify(result)}`);
  return result;
}

/** `action` by `organization` alone in a block is refused with `reason` (and `detail`), writing nothing. */
function expectRefused(
  harness: JobHarness,
  organization: OrganizationName,
  action: JobAction,
  reason: RejectReasonType,
  detail?: string,
): void {
  const before = harness.state.clone();
  const transaction = harness.job(organization, action);
  const result = harness.one(transaction);
  expect(result).toEqual({ status: 'REJECTED', reason, ...(detail === undefined ? {} : { detail }) });
  exercised.add(reason);
  // Nothing of the job state moved (the block itself moves the partition's meta, nothing else).
  const jobKeys = (snapshot: [string, string][]): [string, string][] =>
    snapshot.filter(([key]) => key.startsWith('job/'));
  expect(jobKeys(harness.state.snapshot())).toEqual(jobKeys(before.snapshot()));
}

/** A harness where alice requested job-0001 of bob. */
function requested(jobId = 'job-0001'): JobHarness {
  const harness = new JobHarness();
  ok(harness.one(harness.job('alice', jobRequest(jobId))));
  return harness;
}

describe('a job’s life', () => {
  it('goes REQUESTED → APPROVED → COMPLETED, each step recorded with its position and logged', () => {
    const harness = new JobHarness();
    const request = ok(
      harness.one(harness.job('alice', jobRequest('job-0001', { federation: 'fed-00001' }))),
    );
    expect(request).toEqual({
      status: 'OK',
      type: 'job',
      kind: 'jobRequest',
      organization: 'alice',
      jobId: 'job-0001',
      state: 'REQUESTED',
      height: 1,
      transactionIndex: 0,
    });
    const requestedAt = harness.time;
    const decision = ok(
      harness.run([harness.job('carol', jobRequest('job-0002')), harness.job('bob', approve('job-0001'))])
        .decoded[1],
    );
    expect(decision).toMatchObject({
      kind: 'jobDecision',
      organization: 'bob',
      state: 'APPROVED',
      height: 2,
      transactionIndex: 1,
    });
    const result = ok(harness.one(harness.job('bob', completed('job-0001', hash(7)))));
    expect(result).toMatchObject({ kind: 'jobResult', organization: 'bob', state: 'COMPLETED', height: 3 });

    const view = jobView(harness.state, jobGroup, 'job-0001');
    expect(view).toEqual({
      jobId: 'job-0001',
      group: jobGroup,
      requester: 'alice',
      owner: 'bob',
      dataset: 'loans',
      datasetVersion: 1,
      jobKind: 'aggregate',
      planHash: hash(1),
      federation: 'fed-00001',
      state: 'COMPLETED',
      request: { height: 1, transactionIndex: 0, at: requestedAt },
      decision: {
        decision: 'APPROVED',
        reason: 'POLICY',
        detail: '',
        height: 2,
        transactionIndex: 1,
        at: requestedAt + 1000,
      },
      result: {
        status: 'COMPLETED',
        resultHash: hash(7),
        resultBytes: 420,
        code: 'OK',
        detail: '',
        suppressedGroups: 1,
        height: 3,
        transactionIndex: 0,
        at: requestedAt + 2000,
      },
    });
    encodeWith(jobViewSchema, view!);
    const log = jobLogPage(harness.state, jobGroup, { fromSeq: 0 });
    expect(
      log.entries.map((entry) => [
        entry.seq,
        entry.kind,
        entry.jobId,
        entry.requester,
        entry.owner,
        entry.height,
      ]),
    ).toEqual([
      [0, 'requested', 'job-0001', 'alice', 'bob', 1],
      [1, 'requested', 'job-0002', 'carol', 'bob', 2],
      [2, 'decided', 'job-0001', 'alice', 'bob', 2],
      [3, 'finished', 'job-0001', 'alice', 'bob', 3],
    ]);
    expect(log).toMatchObject({ nextSeq: 4, endSeq: 4 });
    expect(jobLogPage(harness.state, jobGroup, { fromSeq: 1, limit: 2 })).toMatchObject({
      entries: [{ seq: 1 }, { seq: 2 }],
      nextSeq: 3,
      endSeq: 4,
    });
    expect(jobLogPage(harness.state, jobGroup, { fromSeq: 9 })).toEqual({
      entries: [],
      nextSeq: 9,
      endSeq: 4,
    });
    // Another partition sees none of it.
    expect(jobView(harness.state, 'datashare/1', 'job-0001')).toBeUndefined();
    expect(jobLogPage(harness.state, 'datashare/1', { fromSeq: 0 }).endSeq).toBe(0);
  });

  it('goes REQUESTED → REJECTED, and a rejected job takes no result', () => {
    const harness = requested();
    expect(ok(harness.one(harness.job('bob', reject('job-0001')))).state).toBe('REJECTED');
    expect(jobView(harness.state, jobGroup, 'job-0001')).toMatchObject({
      state: 'REJECTED',
      decision: { decision: 'REJECTED', reason: 'QUERY_REJECTED', detail: 'column ssn' },
      result: null,
    });
    expectRefused(harness, 'bob', completed('job-0001'), RejectReason.JobState, 'REJECTED');
    expectRefused(harness, 'bob', failed('job-0001'), RejectReason.JobState, 'REJECTED');
    expectRefused(harness, 'bob', approve('job-0001'), RejectReason.JobState, 'REJECTED');
  });

  it('goes APPROVED → FAILED with a code and no hash', () => {
    const harness = requested();
    ok(harness.one(harness.job('bob', approve('job-0001'))));
    expect(ok(harness.one(harness.job('bob', failed('job-0001')))).state).toBe('FAILED');
    expect(jobView(harness.state, jobGroup, 'job-0001')).toMatchObject({
      state: 'FAILED',
      result: { status: 'FAILED', resultHash: null, code: 'JOB_LIMIT_EXCEEDED' },
    });
    expectRefused(harness, 'bob', completed('job-0001'), RejectReason.JobState, 'FAILED');
  });
});

describe('job requests', () => {
  it('come from members, to an approved member owner', () => {
    const harness = new JobHarness();
    expectRefused(harness, 'auditor', jobRequest('job-0001'), RejectReason.NotMember);
    expectRefused(harness, 'supervisor', jobRequest('job-0001'), RejectReason.NotMember);
    expectRefused(
      harness,
      'alice',
      jobRequest('job-0001', { owner: 'nobody' }),
      RejectReason.OwnerUnknown,
      'nobody',
    );
    expectRefused(
      harness,
      'alice',
      jobRequest('job-0001', { owner: 'pending' }),
      RejectReason.OwnerNotApproved,
      'PENDING',
    );
    expectRefused(
      harness,
      'alice',
      jobRequest('job-0001', { owner: 'suspended' }),
      RejectReason.OwnerNotApproved,
      'SUSPENDED',
    );
    expectRefused(
      harness,
      'alice',
      jobRequest('job-0001', { owner: 'auditor' }),
      RejectReason.OwnerNotApproved,
      'NO_MEMBER_ROLE',
    );
    // A suspended requester is refused by authentication, with its status.
    expect(harness.one(harness.job('suspended', jobRequest('job-0001')))).toEqual({
      status: 'REJECTED',
      reason: RejectReason.OrganizationSuspended,
    });
    expect(jobLogPage(harness.state, jobGroup, { fromSeq: 0 }).endSeq).toBe(0);
    ok(harness.one(harness.job('alice', jobRequest('job-0001'))));
  });

  it('take a job id once per partition; an identical retry gets the first result, byte for byte', () => {
    const harness = new JobHarness();
    const first = harness.run([harness.job('alice', jobRequest('job-0001'))]);
    const retried = harness.run([
      harness.job('carol', jobRequest('job-0009')),
      harness.job('alice', jobRequest('job-0001')),
    ]);
    expect(retried.results[1]).toEqual(first.results[0]);
    expect(jobLogPage(harness.state, jobGroup, { fromSeq: 0 }).endSeq).toBe(2);
    // Even after the owner was suspended, the recorded request stays true for its retry.
    ok(harness.one(harness.job('bob', approve('job-0001'))));
    harness.registry.putOrganization({
      id: 'bob',
      roles: ['member'],
      status: 'SUSPENDED',
      signingKeys: [keys.bob.publicKey],
    });
    expect(harness.run([harness.job('alice', jobRequest('job-0001'))]).results[0]).toEqual(first.results[0]);
    // Any other content under the same id is refused: another spec, plan, dataset or requester.
    const other = jobRequest('job-0001', {
      sealedSpec: { encapsulatedKey: new Uint8Array(32), ciphertext: new Uint8Array(64) },
    });
    expectRefused(harness, 'alice', other, RejectReason.JobExists);
    expectRefused(harness, 'alice', jobRequest('job-0001', { planHash: hash(3) }), RejectReason.JobExists);
    expectRefused(harness, 'carol', jobRequest('job-0001'), RejectReason.JobExists);
    expect(jobView(harness.state, jobGroup, 'job-0001')).toMatchObject({
      requester: 'alice',
      planHash: hash(1),
      state: 'APPROVED',
    });
  });

  it('use their nonce only when recorded: a refused one can be sent again with the same nonce', () => {
    const harness = new JobHarness();
    const nonce = harness.nextNonce();
    const refused = harness.one(
      harness.job('alice', jobRequest('job-0001', { owner: 'pending' }), { nonce }),
    );
    expect(refused.status).toBe('REJECTED');
    ok(harness.one(harness.job('alice', jobRequest('job-0001'), { nonce })));
    expect(harness.one(harness.job('alice', jobRequest('job-0002'), { nonce }))).toEqual({
      status: 'REJECTED',
      reason: RejectReason.Replay,
    });
    expect(harness.one(harness.job('alice', jobRequest('job-0003'), { key: keys.carol }))).toEqual({
      status: 'REJECTED',
      reason: RejectReason.SigningKeyUnknown,
    });
  });
});

describe('decisions and results', () => {
  it('are the owner’s alone, on a job that exists', () => {
    const harness = requested();
    expectRefused(harness, 'bob', approve('job-9999'), RejectReason.JobUnknown);
    expectRefused(harness, 'bob', completed('job-9999'), RejectReason.JobUnknown);
    expectRefused(harness, 'alice', approve('job-0001'), RejectReason.NotJobOwner);
    expectRefused(harness, 'carol', reject('job-0001'), RejectReason.NotJobOwner);
    ok(harness.one(harness.job('bob', approve('job-0001'))));
    expectRefused(harness, 'alice', completed('job-0001'), RejectReason.NotJobOwner);
    expect(jobView(harness.state, jobGroup, 'job-0001')?.state).toBe('APPROVED');
  });

  it('a decision is taken once: the same again is answered with the first result, another is JOB_STATE', () => {
    const harness = requested();
    const first = harness.run([harness.job('bob', approve('job-0001'))]);
    const again = harness.run([harness.job('bob', approve('job-0001'))]);
    expect(again.results[0]).toEqual(first.results[0]);
    expectRefused(harness, 'bob', reject('job-0001'), RejectReason.JobState, 'APPROVED');
    expectRefused(
      harness,
      'bob',
      { ...approve('job-0001'), reason: 'MANUAL' },
      RejectReason.JobState,
      'APPROVED',
    );
    ok(harness.one(harness.job('bob', completed('job-0001'))));
    // Still the first answer after the job finished.
    expect(harness.run([harness.job('bob', approve('job-0001'))]).results[0]).toEqual(first.results[0]);
    expect(jobLogPage(harness.state, jobGroup, { fromSeq: 0 }).entries.map((entry) => entry.kind)).toEqual([
      'requested',
      'decided',
      'finished',
    ]);
  });

  it('a result needs an approved job, a hash exactly when COMPLETED, and is taken once', () => {
    const harness = requested();
    expectRefused(harness, 'bob', completed('job-0001'), RejectReason.JobState, 'REQUESTED');
    ok(harness.one(harness.job('bob', approve('job-0001'))));
    expectRefused(
      harness,
      'bob',
      { ...completed('job-0001'), resultHash: null },
      RejectReason.Malformed,
      'resultHash',
    );
    expectRefused(
      harness,
      'bob',
      { ...failed('job-0001'), resultHash: hash(4) },
      RejectReason.Malformed,
      'resultHash',
    );
    const first = harness.run([harness.job('bob', completed('job-0001', hash(5)))]);
    expect(harness.run([harness.job('bob', completed('job-0001', hash(5)))]).results[0]).toEqual(
      first.results[0],
    );
    expectRefused(harness, 'bob', completed('job-0001', hash(6)), RejectReason.JobState, 'COMPLETED');
    expectRefused(harness, 'bob', failed('job-0001'), RejectReason.JobState, 'COMPLETED');
    expectRefused(
      harness,
      'bob',
      { ...completed('job-0001', hash(5)), resultBytes: 1 },
      RejectReason.JobState,
      'COMPLETED',
    );
    expect(jobView(harness.state, jobGroup, 'job-0001')?.result?.resultHash).toEqual(hash(5));
  });
});

describe('coverage', () => {
  it('every job reason is exercised above', () => {
    expect([...exercised].filter((reason) => jobRejectReasons.includes(reason)).sort()).toEqual(
      [...jobRejectReasons].sort(),
    );
  });
});
