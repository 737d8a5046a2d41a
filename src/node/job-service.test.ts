// The node's side of jobs (DESIGN §8) on a real in-process network: four nodes over real TLS and
// connectors' node sessions. Job transactions commit on the genesis topic "datashare"; the job log
// and records are shown only to whom they concern (requester, owner, supervisor), their evidences
// verify offline as a job receipt, and a requester's signed result request reaches the owner's
// connector through the nodes — on the node where it serves, and relayed from another.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevnetLayout } from '../cli/devnet-layout.js';
import type { DevnetLayout } from '../cli/devnet-layout.js';
import { loadConnectorConfig } from '../connector/config.js';
import { Lifecycle } from '../connector/lifecycle.js';
import { NodeSession, homeNode } from '../connector/session/node-session.js';
import { decodeClientRequest, encodeClientRequest } from '../consensus/pbft/messages.js';
import { encodeJobResultRequest, verifyJobResultRequest } from '../contracts/datashare/result-requests.js';
import { encodeJobTransaction } from '../contracts/datashare/transactions.js';
import type { JobAction } from '../contracts/datashare/transactions.js';
import { jobViewSchema } from '../contracts/datashare/views.js';
import type { JobLogEntry } from '../contracts/datashare/views.js';
import { decodeTransactionResult } from '../contracts/results.js';
import { decodeTransaction } from '../contracts/transactions.js';
import { loadEncryptionKey } from '../crypto/envelope/index.js';
import type { EncryptionKeyPair } from '../crypto/envelope/index.js';
import { SigningDomain, loadSigningKey, sha256 } from '../crypto/index.js';
import type { Signer } from '../crypto/index.js';
import { openJobBox, sealJobBox } from '../crypto/job-box.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import type { RpcPeer } from '../net/index.js';
import { blockEvidenceSchema } from '../proofs/index.js';
import { jobReceiptFrom, verifyJobReceipt } from '../proofs/job-receipt.js';
import { connectorMethods } from '../protocol/client-methods.js';
import { handleUnary } from '../protocol/typed-rpc.js';
import type { Genesis } from '../registry/genesis-schema.js';
import { liveRegistryFromGenesis } from '../registry/live-registry.js';
import type { LiveRegistry } from '../registry/live-registry.js';
import { proofTrustOf } from '../registry/trust.js';
import { createLogger } from '../runtime/logger.js';
import { refusal } from '../testing/refusal.js';
import { loadGenesisRegistry, loadNodeConfig } from './config.js';
import { LedgerbusNode } from './node.js';

const basePort = 26340;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-job-service-'));
const group = 'datashare/0';
let layout: DevnetLayout;
let genesis: Genesis;
let registry: LiveRegistry;
const nodes: LedgerbusNode[] = [];
const sessions: NodeSession[] = [];
const peers: RpcPeer[] = [];
const warnings: string[] = [];

function configOf(organizationNumber: number): ReturnType<typeof loadConnectorConfig> {
  return loadConnectorConfig(layout.connectorConfigs[organizationNumber - 1] as string);
}

function signerOf(organizationNumber: number): Signer {
  return SigningDomain.of(genesis.network).signer(loadSigningKey(configOf(organizationNumber).keyFile));
}

function encryptionKeyOf(organizationNumber: number): EncryptionKeyPair {
  return loadEncryptionKey(configOf(organizationNumber).encryptionKeyFile);
}

/** A node session of `orgN`'s connector to `nodeId`. */
function sessionOf(organizationNumber: number, nodeId: string): NodeSession {
  const config = configOf(organizationNumber);
  const session = new NodeSession({
    registry,
    logger: createLogger({ name: config.organization, level: 'silent' }),
    lifecycle: new Lifecycle(),
    node: homeNode(registry, config.organization, nodeId),
    identity: loadSigningKey(config.keyFile),
    servingConnections: 0,
  });
  sessions.push(session);
  return session;
}

/** orgN's session on its own node (org5, the supervisor, has none in this network: it uses node1). */
function homeSession(organizationNumber: number): NodeSession {
  return sessionOf(organizationNumber, organizationNumber <= 4 ? `node${organizationNumber}` : 'node1');
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Submits job `action` signed by `orgN` on the datashare partition, retrying while the partition starts. */
async function submitJob(
  organizationNumber: number,
  action: JobAction,
): Promise<ReturnType<typeof decodeTransactionResult>> {
  const signer = signerOf(organizationNumber);
  const session = homeSession(organizationNumber);
  const operation = encodeJobTransaction(
    { organization: `org${organizationNumber}`, nonce: randomBytes(16), timestamp: Date.now(), action },
    signer,
  );
  const answer = await until('a committed job transaction', async () => {
    const request = encodeClientRequest(
      {
        group,
        client: signer.publicKey,
        seq: Date.now() * 1000 + Math.floor(Math.random() * 1000),
        operation,
      },
      signer.sign,
    );
    try {
      return await session.call('publish', { group, request });
    } catch (error) {
      if (isLedgerbusError(error) && error.retriable) return undefined;
      throw error;
    }
  });
  return decodeTransactionResult(blockEvidenceSchema.parse(answer.evidence, 'evidence').result);
}

const planHash = sha256(new TextEncoder().encode('SELECT region, COUNT(*) FROM loans GROUP BY region'));

/** orgN's job `jobId` for owner `owner`, its spec really sealed to the owner's encryption key. */
async function jobRequest(
  jobId: string,
  requester: number,
  owner: number,
): Promise<Extract<JobAction, { kind: 'jobRequest' }>> {
  const spec = new TextEncoder().encode(
    '{"kind":"aggregate","query":"SELECT region, COUNT(*) FROM loans GROUP BY region"}',
  );
  return {
    kind: 'jobRequest',
    jobId,
    owner: `org${owner}`,
    dataset: 'loans',
    datasetVersion: 1,
    jobKind: 'aggregate',
    planHash,
    sealedSpec: await sealJobBox(spec, encryptionKeyOf(owner).publicKey, {
      network: genesis.network,
      jobId,
      requester: `org${requester}`,
      owner: `org${owner}`,
      purpose: 'spec',
    }),
  };
}

/**
 * Five organizations and four nodes: org1 requests, org2 owns, org3 requests too (of org2), org4 is
 * a member with no part in either job, org5 the supervisor (no node: it uses node1).
 */
beforeAll(async () => {
  layout = ensureDevnetLayout({ directory: dir, organizations: 5, basePort, messageBytesMax: 1024 * 1024 });
  const path = join(dir, 'genesis.json');
  const written = JSON.parse(readFileSync(path, 'utf8')) as Genesis;
  const demo = written.topics.find((topic) => topic.name === 'demo')!;
  genesis = {
    ...written,
    nodes: written.nodes.slice(0, 4),
    topics: [demo, { ...demo, name: 'datashare' }],
  };
  writeFileSync(path, JSON.stringify(genesis));
  registry = liveRegistryFromGenesis(loadGenesisRegistry(path).genesis);
  for (let index = 0; index < 4; index++) {
    const config = loadNodeConfig(layout.nodeConfigs[index] as string);
    const logger = createLogger({ name: config.nodeId, level: 'error' });
    // Refusals must be logged: keep the warnings to assert on them.
    logger.warn = ((object: Record<string, unknown>, message?: string) => {
      warnings.push(JSON.stringify({ node: config.nodeId, ...object, msg: message }));
    }) as typeof logger.warn;
    const node = new LedgerbusNode({
      nodeId: config.nodeId,
      key: loadSigningKey(config.keyFile),
      registry: loadGenesisRegistry(config.genesis),
      dataDirectory: config.dataDirectory,
      logger,
    });
    await node.start();
    nodes.push(node);
  }
}, 60_000);

afterAll(async () => {
  for (const session of sessions) session.close();
  for (const peer of peers) peer.close();
  for (const node of nodes) await node.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('jobLog and jobRecord', () => {
  const suffix = randomBytes(4).toString('hex');
  const done = `job-done-${suffix}`;
  const other = `job-other-${suffix}`;
  const resultBytes = new TextEncoder().encode('{"columns":["region","count"],"rows":[["north",42]]}');

  const logOf = (
    organizationNumber: number,
    body: { fromSeq?: number; waitMs?: number } = {},
  ): Promise<{
    readonly entries: readonly JobLogEntry[];
    readonly nextSeq: number;
    readonly endSeq: number;
  }> =>
    homeSession(organizationNumber).call('jobLog', {
      group,
      fromSeq: body.fromSeq ?? 0,
      ...(body.waitMs === undefined ? {} : { waitMs: body.waitMs }),
    });
  const seen = (entries: readonly JobLogEntry[]): string[] =>
    entries.map((entry) => `${entry.kind}:${entry.jobId}`);

  beforeAll(async () => {
    expect(await submitJob(1, await jobRequest(done, 1, 2))).toMatchObject({
      status: 'OK',
      state: 'REQUESTED',
    });
    expect(await submitJob(3, await jobRequest(other, 3, 2))).toMatchObject({ status: 'OK' });
    expect(
      await submitJob(2, {
        kind: 'jobDecision',
        jobId: done,
        decision: 'APPROVED',
        reason: 'POLICY',
        detail: '',
      }),
    ).toMatchObject({ status: 'OK', state: 'APPROVED' });
    expect(
      await submitJob(2, {
        kind: 'jobResult',
        jobId: done,
        status: 'COMPLETED',
        resultHash: sha256(resultBytes),
        resultBytes: resultBytes.length,
        code: 'OK',
        detail: '',
        suppressedGroups: 0,
      }),
    ).toMatchObject({ status: 'OK', state: 'COMPLETED' });
  }, 60_000);

  it('shows each organization the entries of its own jobs, a supervisor all, an outsider none', async () => {
    const ofDone = [`requested:${done}`, `decided:${done}`, `finished:${done}`];
    expect(seen((await logOf(1)).entries)).toEqual(ofDone);
    expect(seen((await logOf(2)).entries)).toEqual([ofDone[0], `requested:${other}`, ofDone[1], ofDone[2]]);
    expect(seen((await logOf(3)).entries)).toEqual([`requested:${other}`]);
    expect(seen((await logOf(5)).entries)).toEqual(seen((await logOf(2)).entries));
    const outsider = await logOf(4);
    expect(outsider.entries).toEqual([]);
    // The page covered every entry, shown or not: a follower never asks for them again.
    expect(outsider).toMatchObject({ nextSeq: 4, endSeq: 4 });
    expect((await logOf(1, { fromSeq: 2 })).entries.map((entry) => entry.seq)).toEqual([2, 3]);
  });

  it('long-polls until the log grows', async () => {
    const { endSeq } = await logOf(2);
    const started = Date.now();
    const polled = logOf(2, { fromSeq: endSeq, waitMs: 20_000 });
    const late = `job-late-${suffix}`;
    await new Promise((resolve) => setTimeout(resolve, 300));
    await submitJob(4, await jobRequest(late, 4, 2));
    const page = await polled;
    expect(seen(page.entries)).toEqual([`requested:${late}`]);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 30_000);

  it('gives a job’s record and evidences to its requester, owner and supervisor, which verify offline as a receipt', async () => {
    const trust = proofTrustOf(registry);
    for (const organizationNumber of [1, 2, 5]) {
      const answer = await homeSession(organizationNumber).call('jobRecord', { group, jobId: done });
      const record = jobViewSchema.parse(answer.record, 'record');
      expect(record).toMatchObject({
        jobId: done,
        requester: 'org1',
        owner: 'org2',
        state: 'COMPLETED',
        group,
      });
      expect(answer.evidences.map((entry) => entry.step)).toEqual(['request', 'decision', 'result']);
      const receipt = jobReceiptFrom(answer, genesis.network);
      expect(verifyJobReceipt(JSON.parse(JSON.stringify(receipt)), trust)).toMatchObject({
        jobId: done,
        requester: 'org1',
        owner: 'org2',
        state: 'COMPLETED',
        resultHash: Buffer.from(sha256(resultBytes)).toString('hex'),
      });
    }
    // The owner opens the spec sealed to it, as the ledger holds it; nobody else can.
    const requested = await homeSession(2).call('jobRecord', { group, jobId: other });
    expect(jobViewSchema.parse(requested.record, 'record').state).toBe('REQUESTED');
    expect(requested.evidences.map((entry) => entry.step)).toEqual(['request']);
    const evidence = blockEvidenceSchema.parse(requested.evidences[0]?.evidence, 'evidence');
    const transaction = decodeTransaction(decodeClientRequest(evidence.transaction, 1024 * 1024).operation);
    if (transaction.type !== 'job' || transaction.action.kind !== 'jobRequest')
      throw new Error('not a job request');
    const context = {
      network: genesis.network,
      jobId: other,
      requester: 'org3',
      owner: 'org2',
      purpose: 'spec',
    } as const;
    const spec = await openJobBox(transaction.action.sealedSpec, encryptionKeyOf(2), context);
    expect(new TextDecoder().decode(spec)).toContain('SELECT region');
    expect((await refusal(openJobBox(transaction.action.sealedSpec, encryptionKeyOf(3), context))).code).toBe(
      ErrorCode.PayloadCorrupt,
    );
  });

  it('refuses a job’s record to anyone else (logged), and answers MESSAGE_NOT_FOUND, retriable, for an unknown job', async () => {
    const forbidden = await refusal(homeSession(4).call('jobRecord', { group, jobId: done }));
    expect(forbidden.code).toBe(ErrorCode.Forbidden);
    expect((await refusal(homeSession(3).call('jobRecord', { group, jobId: done }))).code).toBe(
      ErrorCode.Forbidden,
    );
    expect(
      warnings.some((line) => line.includes('neither requested nor owns') && line.includes('"org4"')),
    ).toBe(true);
    const unknown = await refusal(homeSession(1).call('jobRecord', { group, jobId: `job-none-${suffix}` }));
    expect(unknown.code).toBe(ErrorCode.MessageNotFound);
    expect(unknown.retriable).toBe(true);
  });

  it('commits refusals as data: a job for an unknown owner, a decision by another than the owner', async () => {
    expect(
      await submitJob(1, { ...(await jobRequest(`job-bad-${suffix}`, 1, 2)), owner: 'org9' }),
    ).toMatchObject({
      status: 'REJECTED',
      reason: 'OWNER_UNKNOWN',
    });
    expect(
      await submitJob(1, {
        kind: 'jobDecision',
        jobId: other,
        decision: 'APPROVED',
        reason: 'POLICY',
        detail: '',
      }),
    ).toMatchObject({ status: 'REJECTED', reason: 'NOT_JOB_OWNER' });
  });
});

describe('jobResultGet through the nodes', () => {
  const jobId = `job-result-${randomBytes(4).toString('hex')}`;
  const result = new TextEncoder().encode('{"columns":["region","count"],"rows":[["north",42]]}');
  let served = 0;

  /** org2's connector serving on node2: it checks the signed request itself and seals the result. */
  beforeAll(async () => {
    const owner = sessionOf(2, 'node2');
    const peer = await owner.openConnection();
    handleUnary(peer, connectorMethods, 'jobResultGet', async ({ request: bytes }) => {
      const request = verifyJobResultRequest(bytes, {
        signing: SigningDomain.of(genesis.network),
        owner: 'org2',
        signingKeys: (organization) => registry.organization(organization)?.signingKeys,
        now: Date.now(),
      });
      if (request.jobId !== jobId || request.requester !== 'org1') {
        throw new LedgerbusError(
          ErrorCode.Forbidden,
          `${request.requester} did not request ${request.jobId}`,
        );
      }
      served++;
      return {
        sealed: await sealJobBox(result, registry.encryptionKey('org1')!, {
          network: genesis.network,
          jobId,
          requester: 'org1',
          owner: 'org2',
          purpose: 'result',
        }),
      };
    });
    await peer.request('serve', {});
    peers.push(peer);
  });

  const requestFor = (
    fields: { requester?: string; owner?: string },
    signer = signerOf(1),
  ): { request: Uint8Array } => ({
    request: encodeJobResultRequest(
      {
        requester: fields.requester ?? 'org1',
        owner: fields.owner ?? 'org2',
        group,
        jobId,
        nonce: randomBytes(16),
        timestamp: Date.now(),
      },
      signer,
    ),
  });

  it('reaches the owner’s connector where it serves and through a relay, and only the requester opens the result', async () => {
    for (const nodeId of ['node2', 'node1']) {
      const requester = sessionOf(1, nodeId);
      const answer = await requester.connectorCall('org2', 'jobResultGet', requestFor({}));
      const opened = await openJobBox(answer.sealed, encryptionKeyOf(1), {
        network: genesis.network,
        jobId,
        requester: 'org1',
        owner: 'org2',
        purpose: 'result',
      });
      expect(Buffer.from(opened).equals(result)).toBe(true);
    }
    expect(served).toBe(2);
    // The owner's own refusal comes back with its code, through the relay too.
    const signedByOrg3 = await refusal(
      sessionOf(3, 'node1').connectorCall(
        'org2',
        'jobResultGet',
        requestFor({ requester: 'org3' }, signerOf(3)),
      ),
    );
    expect(signedByOrg3.code).toBe(ErrorCode.Forbidden);
  });

  it('refuses a request in another organization’s name, or for another owner than the one called', async () => {
    // On the node where the owner serves (the calling node checks) and on another (both check).
    for (const nodeId of ['node2', 'node1']) {
      const requester = sessionOf(1, nodeId);
      const otherOwner = await refusal(
        requester.connectorCall('org2', 'jobResultGet', requestFor({ owner: 'org3' })),
      );
      expect(otherOwner.code).toBe(ErrorCode.PeerNotAuthorized);
      const otherName = await refusal(
        requester.connectorCall('org2', 'jobResultGet', requestFor({ requester: 'org3' })),
      );
      expect(otherName.code).toBe(ErrorCode.PeerNotAuthorized);
      const garbage = await refusal(
        requester.connectorCall('org2', 'jobResultGet', { request: Uint8Array.of(1, 2, 3) }),
      );
      expect([ErrorCode.SchemaMismatch, ErrorCode.MalformedEncoding]).toContain(garbage.code);
    }
    expect(served).toBe(2);
  });
});
