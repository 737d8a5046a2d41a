import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectorDatabase } from '../connector-database.js';
import { JobDatabase } from './job-state-database.js';
import type { OwnedJobRow, RequestedJobRow } from './job-state-database.js';

let dir: string;
let connectorDatabase: ConnectorDatabase;
let jobs: JobDatabase;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ledgerbus-job-db-'));
  connectorDatabase = new ConnectorDatabase(dir);
  jobs = new JobDatabase(connectorDatabase);
});

afterEach(() => {
  connectorDatabase.close();
  rmSync(dir, { recursive: true, force: true });
});

function requested(jobId: string, overrides: Partial<RequestedJobRow> = {}): RequestedJobRow {
  return {
    job_id: jobId,
    parent_id: null,
    part_index: 0,
    topic: 'datashare',
    partition: 0,
    group_id: 'datashare/0',
    owner: 'org2',
    dataset: 'loans',
    dataset_version: 1,
    job_kind: 'aggregate',
    spec: '{}',
    plan_hash: '00'.repeat(32),
    state: 'SUBMITTING',
    reason: '',
    detail: '',
    result_hash: null,
    result_bytes: 0,
    suppressed_groups: 0,
    output: null,
    created_at: 1,
    updated_at: 1,
    ...overrides,
  };
}

function owned(jobId: string): OwnedJobRow {
  return {
    group_id: 'datashare/0',
    job_id: jobId,
    requester: 'org1',
    dataset: 'loans',
    dataset_version: 1,
    job_kind: 'aggregate',
    plan_hash: '00'.repeat(32),
    spec: null,
    state: 'RECEIVED',
    decision_reason: '',
    decision_detail: '',
    decision_recorded: 0,
    result_code: '',
    result_detail: '',
    suppressed_groups: 0,
    result_hash: null,
    result_bytes: 0,
    sealed_key: null,
    sealed_ciphertext: null,
    result_recorded: 0,
    created_at: 1,
    updated_at: 1,
  };
}

describe('the job tables', () => {
  it('never moves a requested job back: a late REQUESTED does not undo a COMPLETED', () => {
    jobs.insertRequested(requested('j1'));
    jobs.updateRequested(
      'j1',
      { state: 'COMPLETED', reason: 'OK', detail: '', result_hash: 'ab'.repeat(32), result_bytes: 10 },
      2,
    );
    jobs.updateRequested('j1', { state: 'REQUESTED', reason: '', detail: '' }, 3);
    jobs.updateRequested('j1', { state: 'APPROVED', reason: 'POLICY', detail: '' }, 4);
    expect(jobs.requested('j1')).toMatchObject({
      state: 'COMPLETED',
      reason: 'OK',
      result_hash: 'ab'.repeat(32),
      updated_at: 2,
    });
  });

  it("keeps a federation's parts in the order they were named", () => {
    jobs.insertFederation({
      job_id: 'jparent',
      topic: 'datashare',
      spec: '{}',
      output: null,
      created_at: 1,
      updated_at: 1,
    });
    jobs.insertRequested(requested('jzz', { parent_id: 'jparent', part_index: 0 }));
    jobs.insertRequested(requested('jaa', { parent_id: 'jparent', part_index: 1 }));
    expect(jobs.parts('jparent').map((row) => row.job_id)).toEqual(['jzz', 'jaa']);
    // Parts are not listed as jobs of their own.
    expect(jobs.requestedJobs(10)).toEqual([]);
  });

  it("writes an owned job's outcome once: a second run's cannot replace the kept result", () => {
    expect(jobs.insertOwned(owned('j2'))).toBe(true);
    expect(jobs.insertOwned({ ...owned('j2'), requester: 'org3' })).toBe(false);
    const first = {
      state: 'COMPLETED' as const,
      code: 'OK',
      detail: '',
      suppressedGroups: 2,
      resultHash: 'cd'.repeat(32),
      resultBytes: 40,
      sealed: { encapsulatedKey: new Uint8Array(32).fill(1), ciphertext: new Uint8Array(56).fill(2) },
    };
    expect(jobs.setOwnedOutcome('datashare/0', 'j2', first, 5)).toBe(true);
    expect(
      jobs.setOwnedOutcome(
        'datashare/0',
        'j2',
        { ...first, state: 'FAILED', code: 'JOB_FAILED', sealed: null },
        6,
      ),
    ).toBe(false);
    const row = jobs.owned('datashare/0', 'j2');
    expect(row).toMatchObject({
      requester: 'org1',
      state: 'COMPLETED',
      result_hash: 'cd'.repeat(32),
      suppressed_groups: 2,
    });
    expect([...(row?.sealed_ciphertext ?? [])]).toEqual([...first.sealed.ciphertext]);
    // A decision recorded later (the chain's, read again) keeps the outcome's state.
    jobs.setOwnedDecision(
      'datashare/0',
      'j2',
      { state: 'APPROVED', reason: 'POLICY', detail: '', recorded: true },
      7,
    );
    expect(jobs.owned('datashare/0', 'j2')?.state).toBe('COMPLETED');
  });

  it('moves cursors forward only', () => {
    expect(jobs.cursor('datashare/0')).toBe(0);
    jobs.advanceCursor('datashare/0', 5);
    jobs.advanceCursor('datashare/0', 3);
    expect(jobs.cursor('datashare/0')).toBe(5);
  });

  it("keeps every requester's released rows per dataset content, oldest first; clearing forgets them", () => {
    const entry = (job_id: string, dataset: string, dataset_key: string, released: string, at: number) =>
      jobs.recordReleased({
        dataset,
        dataset_key,
        group_id: 'datashare/0',
        job_id,
        requester: job_id === 'jb' ? 'org3' : 'org1',
        released,
        executed_at: at,
      });
    entry('jb', 'loans', 'k1', '{"where":null}', 2);
    entry('ja', 'loans', 'k1', '{"where":1}', 1);
    // A rerun of the same job (after a crash) replaces its own entry.
    entry('ja', 'loans', 'k1', '{"where":2}', 1);
    entry('jc', 'other', 'k1', '{}', 3);
    // Another load of the dataset: not the same rows.
    entry('jd', 'loans', 'k2', '{}', 4);
    expect(jobs.releasedOn('loans', 'k1').map((row) => [row.job_id, row.requester, row.released])).toEqual([
      ['ja', 'org1', '{"where":2}'],
      ['jb', 'org3', '{"where":null}'],
    ]);
    jobs.clearReleased('loans');
    expect(jobs.releasedOn('loans', 'k1')).toEqual([]);
    expect(jobs.releasedOn('loans', 'k2')).toEqual([]);
    expect(jobs.releasedOn('other', 'k1')).toHaveLength(1);
  });
});
