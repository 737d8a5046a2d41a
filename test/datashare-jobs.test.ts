// Compute-to-data (issue 15, DESIGN §8) on a whole network in one test process, every hop over real
// TLS sockets: four nodes running the datashare partition on SQLite and four connectors, each with
// its real job agent, sandbox (a child process per job), result server and REST API. org2 and org3
// load datasets (org2 through the REST API and the SDK) and publish them to the catalog; org1 asks
// them questions; org4, the dev network's supervisor, lists every sharing record.
import { layoutConnector, startLayoutNode } from './support/in-process-node.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledgerbus } from '../src/client/index.js';
import { ensureDevnetLayout } from '../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../src/cli/devnet-layout.js';
import { encodeWith } from '../src/codec/index.js';
import { loadConnectorConfig } from '../src/connector/config.js';
import type { Connector } from '../src/connector/connector.js';
import type { JobStatus } from '../src/connector/datashare/jobs-api.js';
import { startHttpApi } from '../src/connector/http-api.js';
import type { HttpApiServer } from '../src/connector/http-api.js';
import { encodeJobResultRequest } from '../src/contracts/datashare/result-requests.js';
import { loadEncryptionKey } from '../src/crypto/envelope/index.js';
import { SigningDomain, fromHex, loadSigningKey, sha256 } from '../src/crypto/index.js';
import type { Signer } from '../src/crypto/index.js';
import type { JobOutput } from '../src/datashare/types.js';
import Database from 'better-sqlite3';
import { encodeClientRequest } from '../src/consensus/pbft/messages.js';
import { newJobId, jobGroup } from '../src/connector/datashare/job-location.js';
import { encodeJobTransaction } from '../src/contracts/datashare/transactions.js';
import { sealJobBox } from '../src/crypto/job-box.js';
import { canonicalJsonBytes } from '../src/datashare/canonical-json.js';
import { isLedgerbusError } from '../src/errors.js';
import { RpcPeer, connectFramed } from '../src/net/index.js';
import { loadGenesisRegistry } from '../src/node/config.js';
import type { LedgerbusNode } from '../src/node/node.js';
import { verifyJobReceipt } from '../src/proofs/job-receipt.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  signAdminTransaction,
} from '../src/registry/admin-transactions.js';
import { liveRegistryFromGenesis } from '../src/registry/live-registry.js';
import { proofTrustOf } from '../src/registry/trust.js';
import { waitFor as poll } from './support/processes.js';

function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  return poll(what, probe, timeoutMs, 100);
}

const basePort = 26410;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-datashare-'));
let layout: DevnetLayout;
const nodes: LedgerbusNode[] = [];
const connectors = new Map<string, Connector>();
const servers = new Map<string, HttpApiServer>();

function connector(organization: string): Connector {
  return connectors.get(organization) as Connector;
}

function sdk(organization: string): Ledgerbus {
  const server = servers.get(organization) as HttpApiServer;
  return new Ledgerbus({ connector: server.url, token: 'test-token', requestTimeoutMs: 60_000 });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
}

/**
 * Loans: region A 60 rows, B 30, C 12, D 4 (a group below the minimum of 10); amount = 1000 +
 * 50·income + noise, late = income < 20; years 2022–2024. `offset` shifts every id (another owner).
 */
function loansCsv(offset = 0): string {
  const lines = ['id,region,income,amount,year,late'];
  const regions = [
    ...Array(60).fill('A'),
    ...Array(30).fill('B'),
    ...Array(12).fill('C'),
    ...Array(4).fill('D'),
  ] as string[];
  regions.forEach((region, index) => {
    const income = 5 + ((index * 7) % 40);
    const noise = ((index * 13) % 11) - 5;
    const amount = 1000 + 50 * income + noise;
    lines.push(`${offset + index},${region},${income},${amount},${2022 + (index % 3)},${income < 20}`);
  });
  return `${lines.join('\n')}\n`;
}

/** Publishes `organization`'s dataset `name` to the catalog as its version `version` (a signed catalogPublish). */
async function publish(organization: string, name: string, version = 1): Promise<void> {
  const dataset = connector(organization).datasets.get(name);
  const signer = SigningDomain.of(layout.network.genesis.network).signer(
    loadSigningKey(configOf(organization).keyFile),
  );
  const transaction = signAdminTransaction(
    {
      group: SYSTEM_GROUP,
      organization,
      nonce: randomBytes(16),
      timestamp: Date.now(),
      action: {
        kind: 'catalogPublish',
        dataset: name,
        version,
        domain: 'finance',
        title: `${organization} loans`,
        description: 'Consumer loans by region, with income and whether they ran late.',
        tags: ['loans', 'credit'],
        columns: dataset.columns.map((column) => ({ name: column.name, type: column.type })),
        rowCount: dataset.rowCount,
        contentHash: fromHex(dataset.contentHash),
        policy: {
          allowedColumns:
            dataset.policy.allowedColumns === '*'
              ? dataset.columns.map((column) => column.name)
              : [...dataset.policy.allowedColumns],
          aggregates: [...dataset.policy.aggregates],
          models: [...dataset.policy.models],
          minGroupSize: dataset.policy.minGroupSize,
          approval: dataset.policy.approval,
        },
      },
    },
    signer,
  );
  const result = await connector(organization).submitAdminTransaction(
    encodeWith(adminTransactionSchema, transaction),
  );
  expect(result.status).toBe('OK');
}

function configOf(organization: string): ReturnType<typeof loadConnectorConfig> {
  return loadConnectorConfig(layout.connectorConfigs[Number(organization.slice(3)) - 1] as string);
}

/** Starts `organization`'s connector (again, after a stop: same data directory) with its REST API. */
async function startConnector(organization: string): Promise<void> {
  const { connector: started, config } = await layoutConnector(
    layout.connectorConfigs[Number(organization.slice(3)) - 1] as string,
  );
  started.start();
  connectors.set(config.organization, started);
  servers.set(
    config.organization,
    await startHttpApi({ api: started, host: '127.0.0.1', port: 0, token: 'test-token' }),
  );
}

async function stopConnector(organization: string): Promise<void> {
  await servers.get(organization)?.close();
  await connectors.get(organization)?.stop();
  servers.delete(organization);
  connectors.delete(organization);
}

/** A connection to `nodeId` as `organization`'s connector, and its network-bound signer. */
async function actAs(organization: string, nodeId: string): Promise<{ peer: RpcPeer; signer: Signer }> {
  const config = configOf(organization);
  const key = loadSigningKey(config.keyFile);
  const node = loadGenesisRegistry(config.genesis).node(nodeId)!;
  const peer = new RpcPeer(
    await connectFramed({
      host: node.host,
      port: node.port,
      identity: key,
      expectedPublicKey: node.publicKey,
    }),
  );
  return { peer, signer: SigningDomain.of(layout.network.genesis.network).signer(key) };
}

beforeAll(async () => {
  layout = ensureDevnetLayout({ directory: dir, basePort, messageBytesMax: 1024 * 1024 });
  for (const nodeConfig of layout.nodeConfigs) {
    const node = await startLayoutNode(nodeConfig);
    nodes.push(node);
  }
  for (let index = 1; index <= 4; index++) await startConnector(`org${index}`);
  // org2 through the REST API (the body streamed into the dataset file), org3 in-process.
  const loaded = await sdk('org2').datasets().add({ name: 'loans', data: loansCsv(), format: 'csv' });
  expect(loaded.rowCount).toBe(106);
  expect(loaded.columns).toEqual([
    { name: 'id', type: 'integer' },
    { name: 'region', type: 'text' },
    { name: 'income', type: 'integer' },
    { name: 'amount', type: 'integer' },
    { name: 'year', type: 'integer' },
    { name: 'late', type: 'boolean' },
  ]);
  await connector('org3').datasets.add('loans', Readable.from([loansCsv(1000)]), { format: 'csv' });
  // The same rows again, for the job that has a group suppressed: the difference check would refuse
  // any later job on all of org2's loans (its rows differ from that result's by the suppressed group).
  await sdk('org2').datasets().add({ name: 'regional', data: loansCsv(), format: 'csv' });
  await publish('org2', 'loans');
  await publish('org2', 'regional');
  await publish('org3', 'loans');
}, 120_000);

afterAll(async () => {
  try {
    for (const server of servers.values()) await server.close();
    for (const each of connectors.values()) await each.stop();
    for (const node of nodes) await node.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

describe('compute-to-data jobs', () => {
  it('answers an aggregate job with only the groups of at least the minimum size, counting the others', async () => {
    const done = await sdk('org1')
      .jobs()
      .submit({
        datasets: ['org2/regional'],
        spec: {
          kind: 'aggregate',
          query: 'SELECT region, COUNT(*) AS n, AVG(amount) FROM regional GROUP BY region',
        },
        wait: true,
      });
    expect(done.state).toBe('COMPLETED');
    const output = done.output as Extract<JobOutput, { kind: 'aggregate' }>;
    expect(output.kind).toBe('aggregate');
    expect(output.columns).toEqual(['region', 'n', 'avg(amount)']);
    expect(output.rows.map((row) => [row[0], row[1]])).toEqual([
      ['A', 60],
      ['B', 30],
      ['C', 12],
    ]);
    expect(output.suppressedGroups).toBe(1);
    expect(output.minGroupSize).toBe(10);
    // The requester's status and the owner's both say so, and the on-chain record names the suppression.
    const status = await connector('org1').jobs.status(done.jobId);
    expect(status.parts[0]).toMatchObject({ state: 'COMPLETED', resultFetched: true });
    expect(status.parts[0]!.result).toMatchObject({ status: 'COMPLETED', suppressedGroups: 1 });
    const owned = await waitFor('the owner records the result', async () => {
      const seen = await connector('org2').jobs.status(done.jobId);
      return seen.state === 'COMPLETED' ? seen : undefined;
    });
    expect(owned).toMatchObject({ role: 'owner', requester: 'org1', state: 'COMPLETED' });
    // The receipt verifies offline against the genesis alone.
    const receipt = await sdk('org1').jobs().receipt(done.jobId);
    const proven = verifyJobReceipt(
      JSON.parse(JSON.stringify(receipt)),
      proofTrustOf(liveRegistryFromGenesis(layout.network.genesis)),
    );
    expect(proven).toMatchObject({
      requester: 'org1',
      owner: 'org2',
      state: 'COMPLETED',
      decision: 'APPROVED',
    });
    expect(proven.resultHash).toBe(status.parts[0]!.result!.resultHash);
  }, 60_000);

  it('trains a model at the owner and returns only its parameters', async () => {
    const done = await connector('org1').jobs.submit({
      datasets: ['org2/loans'],
      spec: { kind: 'model', model: 'linear', features: ['income'], target: 'amount' },
      wait: true,
    });
    const output = done.output as Extract<JobOutput, { kind: 'model' }>;
    expect(output).toMatchObject({
      kind: 'model',
      model: 'linear',
      features: ['income'],
      target: 'amount',
      n: 106,
    });
    expect(output.coefficients[0]).toBeCloseTo(50, 0);
    expect(output.intercept).toBeGreaterThan(950);
    expect(output.intercept).toBeLessThan(1050);
    expect(Object.keys(output)).not.toContain('rows');
  }, 60_000);

  it('federates a logistic model across two owners, averaging only their parameters', async () => {
    const done = await connector('org1').jobs.submit({
      datasets: ['org2/loans', 'org3/loans'],
      spec: { kind: 'model', model: 'logistic', features: ['income'], target: 'late', l2: 0.1 },
      wait: true,
    });
    expect(done.federated).toBe(true);
    expect(done.parts.map((part) => part.owner)).toEqual(['org2', 'org3']);
    const output = done.output as Extract<JobOutput, { kind: 'model' }>;
    expect(output).toMatchObject({ kind: 'model', model: 'logistic', n: 212 });
    // late = income < 20: the fitted probability falls as income rises.
    expect(output.coefficients[0]).toBeLessThan(0);
    const result = await connector('org1').jobs.result(done.jobId);
    expect(result.parts.map((part) => part.owner)).toEqual(['org2', 'org3']);
    expect(result.parts.every((part) => part.output.kind === 'model')).toBe(true);
    // Each part is its own job on the ledger, naming the federation.
    const records = await connector('org4').jobs.listAll();
    const parts = records.filter((record) => record.federation === done.jobId);
    expect(parts.map((record) => record.owner).sort()).toEqual(['org2', 'org3']);
  }, 90_000);

  it('refuses an unknown dataset and a disallowed query before anything goes on-chain', async () => {
    const jobs = connector('org1').jobs;
    expect(
      await codeOf(
        jobs.submit({
          datasets: ['org2/nothing'],
          spec: { kind: 'aggregate', query: 'SELECT COUNT(*) FROM nothing' },
        }),
      ),
    ).toBe('DATASET_NOT_FOUND');
    expect(
      await codeOf(
        jobs.submit({
          datasets: ['org2/loans'],
          spec: { kind: 'aggregate', query: 'SELECT salary FROM loans' },
        }),
      ),
    ).toBe('QUERY_REJECTED');
    expect(
      await codeOf(
        jobs.submit({
          datasets: ['org2/loans', 'org3/loans'],
          spec: { kind: 'aggregate', query: 'SELECT COUNT(*) FROM loans' },
        }),
      ),
    ).toBe('QUERY_REJECTED');
    // Nothing of these reached the owner.
    expect(jobs.list().filter((job) => job.state === 'SUBMITTING')).toEqual([]);
  }, 30_000);

  it('fails a query that only yields small groups with MIN_GROUP_SIZE', async () => {
    const code = await codeOf(
      connector('org1').jobs.submit({
        datasets: ['org2/loans'],
        spec: { kind: 'aggregate', query: 'SELECT id, COUNT(*) FROM loans GROUP BY id' },
        wait: true,
      }),
    );
    expect(code).toBe('MIN_GROUP_SIZE');
  }, 60_000);

  it('rejects at the owner what its own policy refuses, whatever the catalog said', async () => {
    await sdk('org2')
      .datasets()
      .setPolicy('loans', { allowedColumns: ['region', 'amount', 'year', 'income', 'late'] });
    try {
      const error = await connector('org1')
        .jobs.submit({
          datasets: ['org2/loans'],
          spec: { kind: 'aggregate', query: 'SELECT year, COUNT(*) FROM loans WHERE id > 3 GROUP BY year' },
          wait: true,
        })
        .catch((caught: unknown) => caught);
      expect(isLedgerbusError(error) && error.code).toBe('QUERY_REJECTED');
      expect(String((error as Error).message)).toContain('org2 rejected');
    } finally {
      await sdk('org2').datasets().setPolicy('loans', {});
    }
  }, 60_000);

  it('keeps a job for a person when the policy says so: approve runs it, reject records why', async () => {
    await connector('org3').datasets.setPolicy('loans', { approval: 'manual' });
    try {
      const asked = await connector('org1').jobs.submit({
        datasets: ['org3/loans'],
        spec: { kind: 'aggregate', query: 'SELECT COUNT(*) FROM loans' },
      });
      const pending = await waitFor(
        'the job waits for approval',
        async () => {
          const statuses = connector('org3').jobs.list();
          return statuses.find(
            (status) => status.jobId === asked.jobId && status.state === 'PENDING_APPROVAL',
          );
        },
        30_000,
      );
      expect(pending.spec).toMatchObject({
        kind: 'aggregate',
        dataset: 'loans',
        query: 'SELECT COUNT(*) FROM loans',
      });
      // Nothing runs, and only the owner decides.
      expect(await codeOf(connector('org1').jobs.approve(asked.jobId))).toBe('MESSAGE_NOT_FOUND');
      await sdk('org3').jobs().approve(asked.jobId);
      const result = await waitFor(
        'the approved job finishes',
        async () => {
          try {
            return await connector('org1').jobs.result(asked.jobId);
          } catch (error) {
            if (isLedgerbusError(error) && error.retriable) return undefined;
            throw error;
          }
        },
        30_000,
      );
      expect(result.output).toMatchObject({ kind: 'aggregate', rows: [[106]] });

      const refused = await connector('org1').jobs.submit({
        datasets: ['org3/loans'],
        spec: { kind: 'aggregate', query: 'SELECT AVG(income) FROM loans' },
      });
      await waitFor('the second job waits', () =>
        connector('org3')
          .jobs.list()
          .find((status) => status.jobId === refused.jobId && status.state === 'PENDING_APPROVAL'),
      );
      await connector('org3').jobs.reject(refused.jobId, 'not for this purpose');
      const status = await waitFor('the requester sees the rejection', async () => {
        const seen: JobStatus = await connector('org1').jobs.status(refused.jobId);
        return seen.state === 'REJECTED' ? seen : undefined;
      });
      expect(status).toMatchObject({ code: 'MANUAL_REJECT', detail: 'not for this purpose' });
      expect(await codeOf(connector('org1').jobs.result(refused.jobId))).toBe('JOB_REJECTED');
    } finally {
      await connector('org3').datasets.setPolicy('loans', {});
    }
  }, 90_000);

  it("serves a result only to its requester's signed request", async () => {
    const done = await connector('org1').jobs.submit({
      datasets: ['org2/loans'],
      spec: { kind: 'aggregate', query: 'SELECT year, COUNT(*) FROM loans GROUP BY year' },
      wait: true,
    });
    const part = done.parts[0]!;
    // org4 (the supervisor: it may read every record) signs a request for org1's job.
    const { peer, signer } = await actAs('org4', 'node4');
    const request = encodeJobResultRequest(
      {
        requester: 'org4',
        owner: 'org2',
        group: `${part.topic}/${part.partition}`,
        jobId: part.jobId,
        nonce: randomBytes(16),
        timestamp: Date.now(),
      },
      signer,
    );
    try {
      const call = peer.request('connectorCall', {
        organization: 'org2',
        method: 'jobResultGet',
        body: { request },
      });
      expect(await codeOf(call)).toBe('FORBIDDEN');
    } finally {
      peer.close();
    }
    // The supervisor sees the sharing record itself, but never the result.
    expect(await codeOf(connector('org4').jobs.result(part.jobId))).toBe('MESSAGE_NOT_FOUND');
    const records = await sdk('org4').jobs().listAll();
    expect(records.find((record) => record.jobId === part.jobId)).toMatchObject({
      requester: 'org1',
      owner: 'org2',
      state: 'COMPLETED',
    });
    // org3 is no party: the node shows it no record of the job.
    expect((await connector('org3').jobs.listAll()).some((record) => record.jobId === part.jobId)).toBe(
      false,
    );
  }, 60_000);
  it('runs a job requested while its owner was down once the owner is back, and never twice', async () => {
    await stopConnector('org2');
    const asked = await connector('org1').jobs.submit({
      datasets: ['org2/loans'],
      spec: { kind: 'aggregate', query: 'SELECT late, COUNT(*) FROM loans GROUP BY late' },
    });
    expect(asked.state).toBe('REQUESTED');
    await startConnector('org2');
    const result = await waitFor('the job runs after the restart', async () => {
      try {
        return await connector('org1').jobs.result(asked.jobId);
      } catch (error) {
        if (isLedgerbusError(error) && error.retriable) return undefined;
        throw error;
      }
    });
    expect(result.output).toMatchObject({ kind: 'aggregate', columns: ['late', 'count(*)'] });
    // A crash before the job log's cursor moved is as if the connector read the whole log again:
    // every job it finished is neither run nor answered again.
    const before = connector('org2').jobs.list();
    await stopConnector('org2');
    const database = join(configOf('org2').dataDirectory, 'connector.sqlite');
    const cursors = (): { group_id: string; next_seq: number }[] => {
      const db = new Database(database, { readonly: true });
      try {
        return db.prepare('SELECT group_id, next_seq FROM job_cursors ORDER BY group_id').all() as {
          group_id: string;
          next_seq: number;
        }[];
      } finally {
        db.close();
      }
    };
    const caughtUp = cursors();
    expect(caughtUp.find((cursor) => cursor.group_id === 'datashare/0')?.next_seq).toBeGreaterThan(0);
    const db = new Database(database);
    db.prepare('DELETE FROM job_cursors').run();
    db.close();
    await startConnector('org2');
    await waitFor('the job log read again', () => {
      const now = cursors();
      return caughtUp.every((cursor) =>
        now.some((entry) => entry.group_id === cursor.group_id && entry.next_seq >= cursor.next_seq),
      )
        ? true
        : undefined;
    });
    expect(connector('org2').jobs.list()).toEqual(before);
  }, 90_000);

  it('refuses a result that is not the one the owner recorded on-chain (PAYLOAD_CORRUPT)', async () => {
    const asked = await connector('org1').jobs.submit({
      datasets: ['org2/loans'],
      // By year, every group is released: by region (one region suppressed) the difference check
      // would refuse it after the earlier jobs on all of these rows.
      spec: { kind: 'aggregate', query: 'SELECT year, MAX(amount) FROM loans GROUP BY year' },
    });
    await waitFor('the owner finishes', async () => {
      const seen = await connector('org2').jobs.status(asked.jobId);
      return seen.state === 'COMPLETED' ? seen : undefined;
    });
    // And the requester has seen it complete (on a loaded machine it learns it later than the owner;
    // before, asking for the result is "not yet", which is not what this test is about).
    await waitFor('the requester sees it completed', async () => {
      const seen = await connector('org1').jobs.status(asked.jobId);
      return seen.state === 'COMPLETED' ? seen : undefined;
    });
    // A dishonest owner serves another result, properly sealed to the requester for this very job.
    const forged: JobOutput = {
      kind: 'aggregate',
      columns: ['year', 'max(amount)'],
      rows: [[2020, 1]],
      suppressedGroups: 0,
      minGroupSize: 10,
    };
    const sealed = await sealJobBox(
      new TextEncoder().encode(JSON.stringify(forged)),
      loadEncryptionKey(configOf('org1').encryptionKeyFile).publicKey,
      {
        network: layout.network.genesis.network,
        jobId: asked.jobId,
        requester: 'org1',
        owner: 'org2',
        purpose: 'result',
      },
    );
    const db = new Database(join(configOf('org2').dataDirectory, 'connector.sqlite'));
    try {
      db.prepare('UPDATE owned_jobs SET sealed_key = ?, sealed_ciphertext = ? WHERE job_id = ?').run(
        sealed.encapsulatedKey,
        sealed.ciphertext,
        asked.jobId,
      );
    } finally {
      db.close();
    }
    expect(await codeOf(connector('org1').jobs.result(asked.jobId))).toBe('PAYLOAD_CORRUPT');
    expect((await connector('org1').jobs.status(asked.jobId)).hasResult).toBe(false);
  }, 60_000);

  it("rejects a request whose recorded plan hash is not the sealed job's", async () => {
    // org1 signs a request by hand: the sealed job counts rows, the hash names another plan.
    const { peer, signer } = await actAs('org1', 'node1');
    try {
      const jobId = newJobId();
      const group = jobGroup(liveRegistryFromGenesis(layout.network.genesis), 'datashare', jobId);
      const spec = {
        kind: 'aggregate' as const,
        dataset: 'loans',
        query: 'SELECT COUNT(*) FROM loans',
        salt: '5a'.repeat(32),
      };
      const sealedSpec = await sealJobBox(
        canonicalJsonBytes(spec),
        loadEncryptionKey(configOf('org2').encryptionKeyFile).publicKey,
        {
          network: layout.network.genesis.network,
          jobId,
          requester: 'org1',
          owner: 'org2',
          purpose: 'spec',
        },
      );
      const operation = encodeJobTransaction(
        {
          organization: 'org1',
          nonce: randomBytes(16),
          timestamp: Date.now(),
          action: {
            kind: 'jobRequest',
            jobId,
            owner: 'org2',
            dataset: 'loans',
            datasetVersion: 1,
            jobKind: 'aggregate',
            planHash: sha256(new TextEncoder().encode('another plan')),
            sealedSpec,
          },
        },
        signer,
      );
      const request = encodeClientRequest(
        { group, client: signer.publicKey, seq: Date.now() * 1000, operation },
        signer.sign,
      );
      await peer.request('publish', { group, request });
      const rejected = await waitFor('the owner rejects it', async () => {
        const answer = (await peer.request('jobRecord', { group, jobId }).catch(() => undefined)) as
          { record: { state: string; decision: { reason: string; detail: string } | null } } | undefined;
        return answer?.record.state === 'REJECTED' ? answer.record : undefined;
      });
      expect(rejected.decision).toMatchObject({ reason: 'QUERY_REJECTED' });
      expect(rejected.decision!.detail).toContain('plan hash differs');
    } finally {
      peer.close();
    }
  }, 60_000);
  it('refuses a difference attack, even across requesters (DIFFERENCE_CHECK)', async () => {
    const first = await connector('org1').jobs.submit({
      datasets: ['org2/loans'],
      spec: { kind: 'aggregate', query: "SELECT COUNT(*) FROM loans WHERE region = 'A'" },
      wait: true,
    });
    expect(first.output).toMatchObject({ rows: [[60]] });
    // Everyone in region A but one: the two counts would single that row out.
    const code = await codeOf(
      connector('org4').jobs.submit({
        datasets: ['org2/loans'],
        spec: { kind: 'aggregate', query: "SELECT COUNT(*) FROM loans WHERE region = 'A' AND id != 5" },
        wait: true,
      }),
    );
    expect(code).toBe('DIFFERENCE_CHECK');
  }, 60_000);
  it('loads, shows and removes datasets over REST, refusing a bad policy before a row is stored', async () => {
    const datasets = sdk('org4').datasets();
    expect(
      await codeOf(
        datasets.add({ name: 'tiny', data: 'a,b\n1,2\n', format: 'csv', policy: { minGroupSize: 3 } }),
      ),
    ).toBe('BAD_CONFIG');
    expect(await codeOf(datasets.get('tiny'))).toBe('DATASET_NOT_FOUND');
    const jsonl = ['{"k":"x","v":1.5}', '{"k":"y","v":2}', ''].join('\n');
    const added = await datasets.add({
      name: 'tiny',
      data: jsonl,
      format: 'jsonl',
      policy: { approval: 'manual' },
    });
    expect(added).toMatchObject({
      rowCount: 2,
      columns: [
        { name: 'k', type: 'text' },
        { name: 'v', type: 'real' },
      ],
    });
    expect(added.policy.approval).toBe('manual');
    expect((await datasets.list()).map((dataset) => dataset.name)).toEqual(['tiny']);
    expect(await codeOf(datasets.add({ name: 'tiny', data: jsonl, format: 'jsonl' }))).toBe(
      'SCHEMA_MISMATCH',
    );
    await datasets.remove('tiny');
    expect(await datasets.list()).toEqual([]);
  }, 30_000);
  it("hides a suspended owner's datasets and refuses a suspended requester's jobs, naming the status", async () => {
    await connector('org4').admin({
      kind: 'setOrganizationStatus',
      organization: 'org3',
      status: 'SUSPENDED',
    });
    try {
      const hidden = await connector('org1')
        .jobs.submit({
          datasets: ['org3/loans'],
          spec: { kind: 'aggregate', query: 'SELECT COUNT(*) FROM loans' },
        })
        .catch((caught: unknown) => caught);
      expect(isLedgerbusError(hidden) && hidden.code).toBe('DATASET_NOT_FOUND');
      expect((hidden as Error).message).toContain('org3 is SUSPENDED');
      // org3 itself may not ask either: its node refuses every request of a suspended organization.
      const refused = await connector('org3')
        .jobs.submit({
          datasets: ['org2/loans'],
          spec: { kind: 'aggregate', query: 'SELECT COUNT(*) FROM loans' },
        })
        .catch((caught: unknown) => caught);
      expect(isLedgerbusError(refused) && refused.code).toBe('NOT_APPROVED');
    } finally {
      await connector('org4').admin({
        kind: 'setOrganizationStatus',
        organization: 'org3',
        status: 'APPROVED',
      });
    }
  }, 60_000);
});
