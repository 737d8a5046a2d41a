/**
 * The job contract's committed state as nodes show it to connectors (DESIGN §8): one job's record,
 * and the partition's job log for connectors to follow. Like the escrow views, an answer is a hint:
 * a connector acts on the block evidence of the transactions (`jobRecord` carries them), and the
 * stored record is exactly this view.
 */
import { t } from '../../codec/index.js';
import type { Infer } from '../../codec/index.js';
import { transactionLimits } from '../limits.js';
import { jobIdPattern, jobLimits } from './transactions.js';

const uint = t.uint();
const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const jobId = t.string({ minLength: 8, maxLength: jobLimits.jobIdLengthMax, pattern: jobIdPattern });

/** Where a transaction is: the block and its index in it (its proof is that block's evidence). */
const position = { height: uint, transactionIndex: uint, at: uint };

export const jobStates = ['REQUESTED', 'APPROVED', 'REJECTED', 'COMPLETED', 'FAILED'] as const;
export type JobState = (typeof jobStates)[number];

export const jobViewSchema = t.record({
  jobId,
  /** The partition ("topic/p") the job's transactions are on. */
  group: t.string({ minLength: 1, maxLength: 512 }),
  requester: organizationId,
  owner: organizationId,
  dataset: t.string({ minLength: 1, maxLength: jobLimits.datasetLengthMax }),
  datasetVersion: uint,
  jobKind: t.oneOf('aggregate', 'model'),
  planHash: t.bytes({ length: 32 }),
  federation: t.nullable(jobId),
  state: t.oneOf(...jobStates),
  request: t.record(position),
  decision: t.nullable(
    t.record({
      decision: t.oneOf('APPROVED', 'REJECTED'),
      reason: t.string({ maxLength: jobLimits.reasonLengthMax }),
      detail: t.string({ maxLength: jobLimits.detailLengthMax }),
      ...position,
    }),
  ),
  result: t.nullable(
    t.record({
      status: t.oneOf('COMPLETED', 'FAILED'),
      resultHash: t.nullable(t.bytes({ length: 32 })),
      resultBytes: uint,
      code: t.string({ maxLength: jobLimits.reasonLengthMax }),
      detail: t.string({ maxLength: jobLimits.detailLengthMax }),
      suppressedGroups: uint,
      ...position,
    }),
  ),
});
export type JobView = Infer<typeof jobViewSchema>;

export const jobLogKinds = ['requested', 'decided', 'finished'] as const;
export type JobLogKind = (typeof jobLogKinds)[number];

export const jobLogEntrySchema = t.record({
  /** Position in the partition's job log, from 0. */
  seq: uint,
  kind: t.oneOf(...jobLogKinds),
  jobId,
  requester: organizationId,
  owner: organizationId,
  height: uint,
  transactionIndex: uint,
});
export type JobLogEntry = Infer<typeof jobLogEntrySchema>;
