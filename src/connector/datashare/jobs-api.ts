/**
 * What the connector offers applications for compute-to-data (DESIGN §8), independent of
 * transport: the REST routes (dataset-routes.ts, job-routes.ts) expose exactly this, and the SDK
 * (`ledgerbus/client`'s Datasets and Jobs) calls it over HTTP. Bytes are hex, as the rest of the
 * API shows hashes.
 */
import type { Readable } from 'node:stream';
import type { ColumnInfo, DatasetPolicy, JobOutput, JobSpec, ModelKind } from '../../datashare/types.js';
import type { DatasetFormat } from './dataset-builder.js';

export type { DatasetFormat } from './dataset-builder.js';

// ---- datasets (owner side) ----

/** A dataset loaded into this connector, as the API shows it (never a row of it). */
export interface DatasetDescription {
  readonly name: string;
  readonly columns: readonly ColumnInfo[];
  readonly rowCount: number;
  /** Hex SHA-256 of the bytes loaded. */
  readonly contentHash: string;
  readonly keyColumn: string | null;
  readonly format: DatasetFormat;
  /** When it was loaded (ms since the epoch). */
  readonly loadedAt: number;
  readonly policy: DatasetPolicy;
}

export interface DatasetAddOptions {
  readonly format: DatasetFormat;
  readonly keyColumn?: string;
  /** A policy file's decoded JSON (parseDatasetPolicy reads it); the default policy when absent. */
  readonly policy?: unknown;
}

export interface DatasetsApi {
  /** Loads `source` (CSV or JSON lines, streamed) as dataset `name`; SCHEMA_MISMATCH naming what is wrong. */
  add(name: string, source: Readable, options: DatasetAddOptions): Promise<DatasetDescription>;
  list(): DatasetDescription[];
  /** DATASET_NOT_FOUND when there is none. */
  get(name: string): DatasetDescription;
  remove(name: string): { readonly name: string; readonly removed: true };
  /** Replaces the policy (BAD_CONFIG naming the field that is wrong); jobs decided later follow it. */
  setPolicy(name: string, policy: unknown): DatasetDescription;
}

// ---- jobs ----

/** What a requester asks of a dataset (the dataset itself is named per part). */
export type JobSpecInput =
  | { readonly kind: 'aggregate'; readonly query: string }
  | {
      readonly kind: 'model';
      readonly model: ModelKind;
      readonly features: readonly string[];
      readonly target: string;
      readonly where?: string;
      readonly iterations?: number;
      readonly l2?: number;
    };

export interface JobSubmitInput {
  /** 'owner/name' as the catalog lists them; more than one is a federated model job. */
  readonly datasets: readonly string[];
  readonly spec: JobSpecInput;
  /** The topic the job's transactions go on (default `datashare`). */
  readonly topic?: string;
  /** Follow the job until every part is finished and answer with its result. */
  readonly wait?: boolean;
  /** With `wait`: give up waiting (not the job) after this long and answer its status. Default 10 min. */
  readonly waitMs?: number;
}

/** A job's state as this connector shows it. */
export type JobState =
  | 'SUBMITTING'
  | 'REFUSED'
  | 'REQUESTED'
  | 'PENDING_APPROVAL'
  | 'APPROVED'
  | 'REJECTED'
  | 'COMPLETED'
  | 'FAILED';

export interface JobDecisionInfo {
  readonly decision: 'APPROVED' | 'REJECTED';
  readonly reason: string;
  readonly detail: string;
}

export interface JobResultInfo {
  readonly status: 'COMPLETED' | 'FAILED';
  readonly code: string;
  readonly detail: string;
  /** Hex SHA-256 of the result's bytes (COMPLETED), as recorded on-chain. */
  readonly resultHash: string | null;
  readonly resultBytes: number;
  readonly suppressedGroups: number;
}

/** One owner's part of a job (a job of one dataset has one). */
export interface JobPartStatus {
  readonly jobId: string;
  readonly topic: string;
  readonly partition: number;
  readonly owner: string;
  readonly dataset: string;
  readonly datasetVersion: number;
  readonly state: JobState;
  /** Hex SHA-256 of the part's plan, as on-chain. */
  readonly planHash: string;
  readonly decision: JobDecisionInfo | null;
  readonly result: JobResultInfo | null;
  /** True once its result is here, checked against the on-chain hash. */
  readonly resultFetched: boolean;
}

export interface JobStatus {
  readonly jobId: string;
  /** 'requester': we asked for it; 'owner': it runs on one of our datasets. */
  readonly role: 'requester' | 'owner';
  readonly kind: 'aggregate' | 'model';
  readonly requester: string;
  readonly federated: boolean;
  /** The job as it was written (the owner sees what it opened; null when the sealed job did not open). */
  readonly spec: JobSpec | null;
  /** The job's state: its part's, or for a federated job the least advanced part's (any failure first). */
  readonly state: JobState;
  /** For REFUSED, REJECTED and FAILED: the code that says why, and its detail. */
  readonly code: string | null;
  readonly detail: string;
  readonly parts: readonly JobPartStatus[];
  /** True once the (combined) result is here. */
  readonly hasResult: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** A finished job's result: only numbers about groups, or a model's parameters. */
export interface JobResultAnswer {
  readonly jobId: string;
  readonly output: JobOutput;
  /** Federated jobs: each owner's own model, before averaging. */
  readonly parts: readonly {
    readonly jobId: string;
    readonly owner: string;
    readonly dataset: string;
    readonly output: JobOutput;
  }[];
}

/** A job as the ledger records it (the supervisor's listing of every sharing record). */
export interface JobRecordSummary {
  readonly jobId: string;
  readonly topic: string;
  readonly partition: number;
  readonly requester: string;
  readonly owner: string;
  readonly dataset: string;
  readonly datasetVersion: number;
  readonly jobKind: 'aggregate' | 'model';
  readonly planHash: string;
  readonly federation: string | null;
  readonly state: 'REQUESTED' | 'APPROVED' | 'REJECTED' | 'COMPLETED' | 'FAILED';
  readonly requestedAt: number;
  readonly decision: (JobDecisionInfo & { readonly at: number }) | null;
  readonly result: (JobResultInfo & { readonly at: number }) | null;
}

export interface JobsApi {
  /**
   * Checks the job against each dataset's catalog entry, seals it to its owner and records the
   * request on-chain; with `wait`, follows it to its result. DATASET_NOT_FOUND, QUERY_REJECTED
   * before anything is sent; FORBIDDEN, JOB_REJECTED, MIN_GROUP_SIZE, DIFFERENCE_CHECK,
   * JOB_LIMIT_EXCEEDED, JOB_FAILED as the owner or the contract decided.
   */
  submit(input: JobSubmitInput): Promise<JobStatus & { readonly output?: JobOutput }>;
  /** The jobs this connector requested or ran, newest first. */
  list(): JobStatus[];
  /** Every job on every partition of the job topics that our node shows us (all of them, for a supervisor). */
  listAll(options?: { topic?: string }): Promise<JobRecordSummary[]>;
  /** A job's status, refreshed from the chain. */
  status(jobId: string): Promise<JobStatus>;
  /** A finished job's result, fetched from its owner(s) if it is not here yet. */
  result(jobId: string): Promise<JobResultAnswer>;
  /** As the owner: approve a job waiting for a person (then it runs). */
  approve(jobId: string): Promise<JobStatus>;
  /** As the owner: refuse a job waiting for a person. */
  reject(jobId: string, reason: string): Promise<JobStatus>;
  /** The job's offline-verifiable receipt (`ledgerbus verify` checks it). */
  receipt(jobId: string): Promise<unknown>;
}
