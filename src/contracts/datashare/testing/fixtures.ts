/**
 * A small consortium for job contract tests: deterministic keys, a registry, job actions, and a
 * harness that executes blocks on one partition (through `executeBatch`, so jobs are dispatched and
 * authenticated by the SDT contract as in a replica) and decodes the results.
 */
import type { SigningKeyPair } from '../../../crypto/index.js';
import { MemoryRegistry } from '../../registry.js';
import type { OrganizationRole, OrganizationStatus } from '../../registry.js';
import { decodeTransactionResult } from '../../results.js';
import type { TransactionResult } from '../../results.js';
import { executeBatch } from '../../sdt.js';
import type { BatchOutcome } from '../../sdt.js';
import { MemoryContractState } from '../../state.js';
import { keyFor, network, nonce, signing, startTime } from '../../testing/fixtures.js';
import { encodeJobTransaction } from '../transactions.js';
import type { JobAction } from '../transactions.js';

export { network, signing, startTime } from '../../testing/fixtures.js';

export const jobGroup = 'datashare/0';

/**
 * alice, bob, carol: approved members (alice usually requests, bob usually owns); pending: a pending
 * member; suspended: a suspended member; auditor: approved, auditor only (no member role);
 * supervisor: approved, supervisor only.
 */
export const organizations = [
  'alice',
  'bob',
  'carol',
  'pending',
  'suspended',
  'auditor',
  'supervisor',
] as const;
export type OrganizationName = (typeof organizations)[number];

export const keys = Object.fromEntries(organizations.map((name) => [name, keyFor(`job-${name}`)])) as Record<
  OrganizationName,
  SigningKeyPair
>;

export function makeJobRegistry(): MemoryRegistry {
  const registry = new MemoryRegistry(network);
  const add = (id: OrganizationName, status: OrganizationStatus, roles: OrganizationRole[]): void => {
    registry.putOrganization({ id, roles, status, signingKeys: [keys[id].publicKey] });
  };
  add('alice', 'APPROVED', ['member']);
  add('bob', 'APPROVED', ['member']);
  add('carol', 'APPROVED', ['member']);
  add('pending', 'PENDING', ['member']);
  add('suspended', 'SUSPENDED', ['member']);
  add('auditor', 'APPROVED', ['auditor']);
  add('supervisor', 'APPROVED', ['supervisor']);
  return registry;
}

/** 32 bytes all `fill`: a plan or result hash that tests can tell apart. */
export function hash(fill: number): Uint8Array {
  return new Uint8Array(32).fill(fill);
}

export type JobRequestAction = Extract<JobAction, { kind: 'jobRequest' }>;
export type JobDecisionAction = Extract<JobAction, { kind: 'jobDecision' }>;
export type JobResultAction = Extract<JobAction, { kind: 'jobResult' }>;

export function jobRequest(jobId: string, overrides: Partial<JobRequestAction> = {}): JobRequestAction {
  return {
    kind: 'jobRequest',
    jobId,
    owner: 'bob',
    dataset: 'loans',
    datasetVersion: 1,
    jobKind: 'aggregate',
    planHash: hash(1),
    sealedSpec: { encapsulatedKey: new Uint8Array(32).fill(9), ciphertext: new Uint8Array(64).fill(8) },
    ...overrides,
  };
}

export function approve(jobId: string): JobDecisionAction {
  return { kind: 'jobDecision', jobId, decision: 'APPROVED', reason: 'POLICY', detail: '' };
}

export function reject(jobId: string, reason = 'QUERY_REJECTED', detail = 'column ssn'): JobDecisionAction {
  return { kind: 'jobDecision', jobId, decision: 'REJECTED', reason, detail };
}

export function completed(jobId: string, resultHash: Uint8Array = hash(2)): JobResultAction {
  return {
    kind: 'jobResult',
    jobId,
    status: 'COMPLETED',
    resultHash,
    resultBytes: 420,
    code: 'OK',
    detail: '',
    suppressedGroups: 1,
  };
}

export function failed(jobId: string, code = 'JOB_LIMIT_EXCEEDED'): JobResultAction {
  return {
    kind: 'jobResult',
    jobId,
    status: 'FAILED',
    resultHash: null,
    resultBytes: 0,
    code,
    detail: 'killed after 5000 ms',
    suppressedGroups: 0,
  };
}

export type Decoded = BatchOutcome & { decoded: TransactionResult[] };

/** Executes blocks on one partition, keeping height and time. */
export class JobHarness {
  state = new MemoryContractState();
  height = 0;
  time = startTime;
  private nonceCounter = 0;

  constructor(
    readonly registry: MemoryRegistry = makeJobRegistry(),
    readonly group: string = jobGroup,
  ) {}

  nextNonce(): Uint8Array {
    this.nonceCounter += 1;
    return nonce(this.nonceCounter, 11);
  }

  /** A job transaction signed by `organization` (or by `options.key`, for a forged one). */
  job(
    organization: OrganizationName,
    action: JobAction,
    options: { key?: SigningKeyPair; nonce?: Uint8Array; timestamp?: number } = {},
  ): Uint8Array {
    return encodeJobTransaction(
      {
        organization,
        nonce: options.nonce ?? this.nextNonce(),
        timestamp: options.timestamp ?? this.time,
        action,
      },
      signing.signer(options.key ?? keys[organization]),
    );
  }

  /** Executes the next block, `advanceMs` after the previous one. */
  run(transactions: Uint8Array[], advanceMs = 1000): Decoded {
    this.time += advanceMs;
    this.height += 1;
    const outcome = executeBatch(
      this.state,
      {
        partitionId: this.group,
        configEpoch: 1,
        height: this.height,
        timestamp: this.time,
        registry: this.registry,
      },
      transactions,
    );
    return { ...outcome, decoded: outcome.results.map(decodeTransactionResult) };
  }

  /** Executes one transaction alone in the next block and returns its result. */
  one(transaction: Uint8Array): TransactionResult {
    const result = this.run([transaction]).decoded[0];
    if (result === undefined) throw new Error('a block of one transaction has one result');
    return result;
  }
}
