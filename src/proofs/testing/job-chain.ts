/**
 * A certified partition of the genesis topic "datashare" carrying jobs (DESIGN §8), for the job
 * receipt tests: every block executed by the real contracts and certified by three of its four
 * replicas' real Ed25519 keys, so evidences verify offline against the genesis alone.
 *
 *   job-done     alice → bob: requested, approved, completed (bob also repeats his approval)
 *   job-refused  carol → bob: requested, rejected
 *   job-open     alice → bob: requested only
 *   and refused steps: carol's decision on job-done (not the owner), a decision in bob's name
 *   signed with carol's key.
 */
import { randomBytes } from 'node:crypto';
import { toHex } from '../../codec/index.js';
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../../consensus/pbft/messages.js';
import { jobView } from '../../contracts/datashare/queries.js';
import { encodeJobTransaction } from '../../contracts/datashare/transactions.js';
import type { JobAction } from '../../contracts/datashare/transactions.js';
import type { JobView } from '../../contracts/datashare/views.js';
import { nonceBytes } from '../../contracts/limits.js';
import { decodeTransactionResult } from '../../contracts/results.js';
import type { TransactionResult } from '../../contracts/results.js';
import { executeBatch } from '../../contracts/sdt.js';
import { MemoryContractState } from '../../contracts/state.js';
import { generateEncryptionKey } from '../../crypto/envelope/index.js';
import { SigningDomain, merkleRoot, sha256, signingKeyFromSeed } from '../../crypto/index.js';
import type { Signer, SigningKeyPair } from '../../crypto/index.js';
import { blockHash, certifyHeader } from '../../ledger/block.js';
import type { Block, BlockHeader } from '../../ledger/block.js';
import { GenesisRegistry } from '../../registry/genesis.js';
import type { Genesis } from '../../registry/genesis-schema.js';
import { proofTrustOf } from '../../registry/trust.js';
import { blockEvidence } from '../evidence.js';
import type { BlockEvidence } from '../evidence.js';
import type { ProofTrust } from '../message-proof.js';
import { resultsRoot } from '../../ledger/result-leaf.js';

export const jobTopic = 'datashare';
export const jobGroup = `${jobTopic}/0`;
export const jobOrganizations = ['alice', 'bob', 'carol'] as const;
export type JobOrganization = (typeof jobOrganizations)[number];

function seeded(name: string): Uint8Array {
  const seed = new Uint8Array(32);
  seed.set(new TextEncoder().encode(`job-test/${name}`).subarray(0, 32));
  return seed;
}

export const organizationKeys = Object.fromEntries(
  jobOrganizations.map((id) => [id, signingKeyFromSeed(seeded(id))]),
) as Record<JobOrganization, SigningKeyPair>;

export function jobGenesis(network = 'job-testnet'): Genesis {
  const replicas = [1, 2, 3, 4].map((index) => signingKeyFromSeed(seeded(`node${index}`)));
  return {
    network,
    organizations: jobOrganizations.map((id) => ({
      id,
      roles: ['member'],
      signingKeys: [toHex(organizationKeys[id].publicKey)],
      encryptionKey: toHex(generateEncryptionKey().publicKey),
    })),
    nodes: replicas.map((key, index) => ({
      id: `node${index + 1}`,
      organization: jobOrganizations[index % jobOrganizations.length] as string,
      publicKey: toHex(key.publicKey),
      address: `127.0.0.1:${26390 + index}`,
    })),
    topics: [
      {
        name: jobTopic,
        partitions: [{ replicas: ['node1', 'node2', 'node3', 'node4'] }],
        producers: [...jobOrganizations],
        consumers: [...jobOrganizations],
        policy: { messageBytesMax: 1024 * 1024, ttlMs: 3_600_000, payloadRetentionMs: 60_000 },
      },
    ],
  } as Genesis;
}

export interface JobChain {
  readonly genesis: Genesis;
  readonly trust: ProofTrust;
  readonly blocks: readonly Block[];
  /** The job's record as the contract holds it. */
  view(jobId: string): JobView;
  /** The evidence of the transaction at (height, transactionIndex). */
  evidenceAt(height: number, transactionIndex: number): BlockEvidence;
  /** A `jobRecord` answer for `jobId`, as a node's job service builds it. */
  answer(jobId: string): {
    record: JobView;
    evidences: { step: 'request' | 'decision' | 'result'; evidence: BlockEvidence }[];
  };
  /** Heights of blocks of note: the repeated approval, and the refused steps. */
  readonly repeatedApproval: number;
  readonly outsiderDecision: number;
  readonly forgedDecision: number;
}

/** Runs the jobs above on a fresh certified partition. */
export function jobChain(): JobChain {
  const genesis = jobGenesis();
  const registry = new GenesisRegistry(genesis);
  const signing = SigningDomain.of(genesis.network);
  const state = new MemoryContractState();
  const blocks: Block[] = [];
  const replicas = [1, 2, 3].map((index) => ({
    id: `node${index}`,
    signer: signing.signer(signingKeyFromSeed(seeded(`node${index}`))),
  }));
  let previousHash: Uint8Array = new Uint8Array(32);
  let time = Date.now();
  let seq = 0;

  const request = (signer: Signer, operation: Uint8Array): Uint8Array =>
    encodeClientRequest({ group: jobGroup, client: signer.publicKey, seq: ++seq, operation }, signer.sign);
  const run = (requests: Uint8Array[]): Block => {
    const height = blocks.length + 1;
    time += 10;
    const configEpoch = registry.partition(jobGroup)?.configEpoch ?? 0;
    const operations = requests.map(
      (bytes) => decodeClientRequest(bytes, messageLimits.requestBytesMax).operation,
    );
    const { results } = executeBatch(
      state,
      { partitionId: jobGroup, configEpoch, height, timestamp: time, registry },
      operations,
    );
    const header: BlockHeader = {
      partitionId: jobGroup,
      configEpoch,
      height,
      previousHash,
      transactionsRoot: merkleRoot(requests),
      resultsRoot: resultsRoot(results),
      timestamp: time,
      view: 0,
      proposer: 'node1',
    };
    const block: Block = {
      header,
      certificate: certifyHeader(header, replicas),
      transactions: requests,
      results,
    };
    blocks.push(block);
    previousHash = blockHash(header);
    return block;
  };
  const act = (
    by: JobOrganization,
    action: JobAction,
    key: SigningKeyPair = organizationKeys[by],
  ): TransactionResult => {
    const signer = signing.signer(key);
    const operation = encodeJobTransaction(
      { organization: by, nonce: randomBytes(nonceBytes), timestamp: time, action },
      signer,
    );
    return decodeTransactionResult(run([request(signer, operation)]).results[0] as Uint8Array);
  };
  const expect = (result: TransactionResult, status: 'OK' | 'REJECTED', what: string): void => {
    if (result.status !== status) throw new Error(`${what}: ${JSON.stringify(result)}`);
  };
  const requestOf = (jobId: string): JobAction => ({
    kind: 'jobRequest',
    jobId,
    owner: 'bob',
    dataset: 'loans',
    datasetVersion: 2,
    jobKind: 'aggregate',
    planHash: sha256(new TextEncoder().encode(`plan of ${jobId}`)),
    sealedSpec: {
      encapsulatedKey: new Uint8Array(randomBytes(32)),
      ciphertext: new Uint8Array(randomBytes(80)),
    },
  });
  const approval: JobAction = {
    kind: 'jobDecision',
    jobId: 'job-done',
    decision: 'APPROVED',
    reason: 'POLICY',
    detail: '',
  };

  expect(act('alice', requestOf('job-done')), 'OK', 'request');
  expect(act('carol', requestOf('job-refused')), 'OK', 'second request');
  expect(act('carol', approval), 'REJECTED', "an outsider's decision");
  const outsiderDecision = blocks.length;
  expect(act('bob', approval, organizationKeys.carol), 'REJECTED', 'a forged decision');
  const forgedDecision = blocks.length;
  expect(act('bob', approval), 'OK', 'approval');
  expect(act('bob', approval), 'OK', 'repeated approval');
  const repeatedApproval = blocks.length;
  expect(
    act('bob', {
      kind: 'jobDecision',
      jobId: 'job-refused',
      decision: 'REJECTED',
      reason: 'QUERY_REJECTED',
      detail: 'column ssn',
    }),
    'OK',
    'rejection',
  );
  expect(
    act('bob', {
      kind: 'jobResult',
      jobId: 'job-done',
      status: 'COMPLETED',
      resultHash: sha256(new TextEncoder().encode('the result')),
      resultBytes: 10,
      code: 'OK',
      detail: '',
      suppressedGroups: 2,
    }),
    'OK',
    'result',
  );
  expect(act('alice', requestOf('job-open')), 'OK', 'third request');

  const view = (jobId: string): JobView => {
    const found = jobView(state, jobGroup, jobId);
    if (found === undefined) throw new Error(`no job ${jobId}`);
    return found;
  };
  const evidenceAt = (height: number, transactionIndex: number): BlockEvidence =>
    blockEvidence(blocks[height - 1] as Block, transactionIndex);
  return {
    genesis,
    trust: proofTrustOf(registry),
    blocks,
    view,
    evidenceAt,
    answer: (jobId) => {
      const record = view(jobId);
      const steps = [
        { step: 'request' as const, at: record.request },
        ...(record.decision === null ? [] : [{ step: 'decision' as const, at: record.decision }]),
        ...(record.result === null ? [] : [{ step: 'result' as const, at: record.result }]),
      ];
      return {
        record,
        evidences: steps.map(({ step, at }) => ({
          step,
          evidence: evidenceAt(at.height, at.transactionIndex),
        })),
      };
    },
    repeatedApproval,
    outsiderDecision,
    forgedDecision,
  };
}
