// The data catalog (issue 15, DESIGN §8) on real nodes: four node processes over TLS (the dev
// layout: org4 is the supervisor), each organization's catalog client talking to its own node as a
// connector does (pinned TLS, the typed method table, signed admin transactions through Raft).
// Publishes, updates, withdrawals and republishes commit through __system; every node's FTS5 index
// derives from its replicated state, so the same query ranks the same on every node — also on a
// node restarted from its log; a suspended owner's entries vanish from search at once; a malformed
// query is QUERY_REJECTED. The REST routes, the SDK and the CLI are exercised in front of one client.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { fastify } from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ProcessNetwork } from './support/process-network.js';
import { waitFor } from './support/processes.js';
import { registerCatalogCommands } from '../src/cli/catalog-commands.js';
import { Catalog } from '../src/client/catalog.js';
import { Transport } from '../src/client/transport.js';
import { ConnectorAdmin } from '../src/connector/admin.js';
import { loadConnectorConfig } from '../src/connector/config.js';
import { CatalogClient } from '../src/connector/datashare/catalog-client.js';
import type { CatalogDatasetSource, CatalogSearchResult } from '../src/connector/datashare/catalog-client.js';
import { registerCatalogRoutes } from '../src/connector/datashare/catalog-routes.js';
import { toWireError } from '../src/connector/http-api.js';
import { SigningDomain, loadSigningKey } from '../src/crypto/index.js';
import { defaultDatasetPolicy } from '../src/datashare/types.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../src/errors.js';
import { RpcPeer, connectFramed } from '../src/net/index.js';
import { loadGenesisRegistry } from '../src/node/config.js';
import { nodeMethods } from '../src/protocol/client-methods.js';
import { TypedClient } from '../src/protocol/typed-rpc.js';
import { liveRegistryFromGenesis } from '../src/registry/live-registry.js';

const basePort = 26320;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-catalog-'));
const net = new ProcessNetwork(dir, basePort);
const servers: FastifyInstance[] = [];

interface Party {
  readonly organization: string;
  readonly calls: TypedClient<typeof nodeMethods>;
  readonly admin: ConnectorAdmin;
  readonly catalog: CatalogClient;
  close(): void;
}
const parties = new Map<string, Party>();

function party(organization: string): Party {
  return parties.get(organization)!;
}

/** The datasets an owner's connector would hold (`ledgerbus dataset add`): their descriptions only. */
function datasetsOf(organization: string): { require(name: string): CatalogDatasetSource } {
  const hash = (label: string): Uint8Array => new Uint8Array(32).fill(label.length + organization.length);
  const held: Record<string, CatalogDatasetSource> = {
    loans: {
      name: 'loans',
      columns: [
        { name: 'region', type: 'text' },
        { name: 'amount', type: 'real' },
        { name: 'late', type: 'boolean' },
      ],
      rowCount: 125_000,
      contentHash: hash('loans'),
      policy: defaultDatasetPolicy,
    },
    claims: {
      name: 'claims',
      columns: [
        { name: 'policy_type', type: 'text' },
        { name: 'paid', type: 'real' },
      ],
      rowCount: 40_000,
      contentHash: hash('claims'),
      policy: { ...defaultDatasetPolicy, allowedColumns: ['paid'], approval: 'manual' },
    },
    weather: {
      name: 'weather',
      columns: [
        { name: 'station', type: 'text' },
        { name: 'rainfall', type: 'real' },
      ],
      rowCount: 9_000,
      contentHash: hash('weather'),
      policy: defaultDatasetPolicy,
    },
  };
  return {
    require: (name) => {
      const dataset = held[name];
      if (dataset === undefined) throw new LedgerbusError(ErrorCode.DatasetNotFound, `no dataset ${name}`);
      return dataset;
    },
  };
}

/** Organization orgN as its connector would be: its key, a link to nodeN, its admin and catalog clients. */
async function connect(index: number): Promise<Party> {
  const organization = `org${index}`;
  const config = loadConnectorConfig(net.layout.connectorConfigs[index - 1] as string);
  const key = loadSigningKey(config.keyFile);
  const genesis = loadGenesisRegistry(config.genesis);
  const node = genesis.node(`node${index}`)!;
  let peer: RpcPeer | undefined;
  const peerFor = async (): Promise<RpcPeer> => {
    if (peer === undefined || peer.closed) {
      const connection = await connectFramed({
        host: node.host,
        port: node.port,
        identity: key,
        expectedPublicKey: node.publicKey,
      });
      peer = new RpcPeer(connection);
    }
    return peer;
  };
  const calls = new TypedClient(nodeMethods, peerFor);
  // Up and serving (a node refuses connectors until it has started its groups).
  await calls.call('registry', {});
  const admin = new ConnectorAdmin({
    organization,
    signer: SigningDomain.of(genesis.genesis.network).signer(key),
    registry: liveRegistryFromGenesis(genesis.genesis),
    node: calls,
  });
  const catalog = new CatalogClient({
    organization,
    session: calls,
    admin,
    datasets: datasetsOf(organization),
  });
  return { organization, calls, admin, catalog, close: () => peer?.close() };
}

async function failure(promise: Promise<unknown>): Promise<LedgerbusError> {
  try {
    await promise;
  } catch (error) {
    if (isLedgerbusError(error)) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

function ranking(result: CatalogSearchResult): string[] {
  return result.hits.map((hit) => `${hit.rank} ${hit.entry.owner}/${hit.entry.dataset} ${hit.score}`);
}

/** The same search from each organization's own node (org1..org4 by default). */
async function everywhere(query: string, nodes = [1, 2, 3, 4]): Promise<CatalogSearchResult[]> {
  return Promise.all(nodes.map((n) => party(`org${n}`).catalog.search({ query })));
}

/** Waits until those nodes answer `query` at __system index ≥ `index` (learners lag a little). */
async function settled(query: string, index: number, nodes = [1, 2, 3, 4]): Promise<CatalogSearchResult[]> {
  return waitFor(
    `every node at __system index ${index}`,
    async () => {
      const results = await everywhere(query, nodes);
      return results.every((result) => result.index >= index) ? results : undefined;
    },
    30_000,
  );
}

beforeAll(async () => {
  for (let n = 1; n <= 4; n++) net.start(`node${n}`);
  for (let n = 1; n <= 4; n++) {
    const connected = await waitFor(`node${n} to accept org${n}`, async () => connect(n), 90_000, 500);
    parties.set(`org${n}`, connected);
  }
}, 120_000);

afterAll(async () => {
  for (const server of servers) await server.close();
  for (const each of parties.values()) each.close();
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('the catalog through real nodes', () => {
  it('publishes descriptions from the datasets, with the policy written out and the version chosen', async () => {
    const loans = await party('org2').catalog.publish({
      dataset: 'loans',
      domain: 'finance',
      title: 'Consumer loans by region',
      description: 'Monthly repayments of consumer loans, late payments flagged per borrower.',
      tags: ['credit', 'banking'],
    });
    expect(loans).toMatchObject({
      owner: 'org2',
      dataset: 'loans',
      version: 1,
      rowCount: 125_000,
      contentHash: '09'.repeat(32),
      columns: [
        { name: 'region', type: 'text' },
        { name: 'amount', type: 'real' },
        { name: 'late', type: 'boolean' },
      ],
      policy: { allowedColumns: ['region', 'amount', 'late'], minGroupSize: 10, approval: 'auto' },
    });
    await party('org2').catalog.publish({
      dataset: 'claims',
      domain: 'insurance',
      title: 'Insurance claims',
      description: 'Claims paid per policy type; includes claims on loans secured by property.',
      tags: ['insurance'],
    });
    const weather = await party('org3').catalog.publish({
      dataset: 'weather',
      domain: 'climate',
      title: 'Rainfall by station',
      description: 'Daily rainfall observations.',
    });
    expect(weather.version).toBe(1);
    // A dataset the connector does not hold is refused before anything is signed.
    expect(
      (
        await failure(
          party('org2').catalog.publish({ dataset: 'nope', domain: 'x', title: 't', description: '' }),
        )
      ).code,
    ).toBe(ErrorCode.DatasetNotFound);
  });

  it('ranks the same on every node, title matches first, and refuses a malformed query', async () => {
    const index = (await party('org3').catalog.search({ query: '' })).index;
    const results = await settled('loan*', index);
    expect(ranking(results[0]!).map((line) => line.split(' ')[1])).toEqual(['org2/loans', 'org2/claims']);
    for (const result of results.slice(1)) expect(ranking(result)).toEqual(ranking(results[0]!));
    expect(results[0]!.hits[0]!.snippet).toContain('[loans]');
    const phrase = await party('org1').catalog.search({ query: '"late payments" OR rainfall' });
    expect(phrase.hits.map((hit) => hit.entry.dataset).sort()).toEqual(['loans', 'weather']);
    const filtered = await party('org1').catalog.search({ query: 'loans', domain: 'insurance' });
    expect(filtered.hits.map((hit) => hit.entry.dataset)).toEqual(['claims']);
    const refused = await failure(party('org1').catalog.search({ query: '"unterminated' }));
    expect(refused.code).toBe(ErrorCode.QueryRejected);
    expect(refused.message).toMatch(/^catalog search: /);
  });

  it('updates, withdraws and republishes, continuing the versions; unknown entries are DATASET_NOT_FOUND', async () => {
    const org2 = party('org2').catalog;
    expect(
      (
        await org2.publish({
          dataset: 'loans',
          domain: 'finance',
          title: 'Consumer loans',
          description: 'v2',
        })
      ).version,
    ).toBe(2);
    await org2.withdraw('claims');
    await waitFor(
      "org1's node applies the withdrawal",
      async () =>
        (await party('org1')
          .catalog.entry('org2', 'claims')
          .catch(() => undefined)) === undefined || undefined,
      20_000,
    );
    expect((await failure(party('org1').catalog.entry('org2', 'claims'))).code).toBe(
      ErrorCode.DatasetNotFound,
    );
    expect((await party('org1').catalog.search({ query: 'insurance' })).hits).toEqual([]);
    expect((await failure(org2.withdraw('claims'))).code).toBe(ErrorCode.DatasetNotFound);
    // The node no longer shows the withdrawn entry, so the client tries version 1; the registry
    // names the version after the withdrawn one, and the client publishes that.
    const again = await org2.publish({
      dataset: 'claims',
      domain: 'insurance',
      title: 'Insurance claims',
      description: 'back',
    });
    expect(again.version).toBe(2);
    // org1 reads from its own node, which applies the __system log a moment after the leader.
    const seen = await waitFor(
      "org1's node shows the republished entry",
      async () => {
        const entry = await party('org1')
          .catalog.entry('org2', 'claims')
          .catch(() => undefined);
        return entry?.version === 2 ? entry : undefined;
      },
      20_000,
    );
    expect(seen.description).toBe('back');
    // A version that is not the next one is refused by every replica alike.
    const stale = await failure(
      party('org2').admin.admin({
        kind: 'catalogPublish',
        dataset: 'loans',
        version: 2,
        domain: 'finance',
        title: 'stale',
        description: '',
        tags: [],
        columns: [{ name: 'amount', type: 'real' }],
        rowCount: 1,
        contentHash: '00'.repeat(32),
        policy: {
          allowedColumns: ['amount'],
          aggregates: ['count'],
          models: [],
          minGroupSize: 10,
          approval: 'auto',
        },
      }),
    );
    expect(stale.code).toBe(ErrorCode.AdminRejected);
    expect(stale.details?.reason).toBe('VERSION_CONFLICT');
    expect(stale.message).toContain('publish version 3');
  });

  it('hides a suspended owner’s entries at once, from search and lookup, and shows them again on approval', async () => {
    const before = await party('org1').catalog.search({ query: 'rainfall' });
    expect(before.hits.map((hit) => hit.entry.owner)).toEqual(['org3']);
    // Only members publish: org3 suspended by the supervisor may not, and its entries are hidden.
    await party('org4').admin.admin({
      kind: 'setOrganizationStatus',
      organization: 'org3',
      status: 'SUSPENDED',
    });
    // org3's own node refuses it now (NOT_APPROVED); the other nodes hide its entries.
    const others = [1, 2, 4];
    await settled('rainfall', (await party('org4').catalog.search({ query: '' })).index, others);
    for (const result of await everywhere('rainfall', others)) expect(result.hits).toEqual([]);
    expect((await failure(party('org1').catalog.entry('org3', 'weather'))).code).toBe(
      ErrorCode.DatasetNotFound,
    );
    await party('org4').admin.admin({
      kind: 'setOrganizationStatus',
      organization: 'org3',
      status: 'APPROVED',
    });
    await waitFor(
      'org3/weather visible again at org1',
      async () =>
        (await party('org1').catalog.search({ query: 'rainfall' })).hits.length === 1 ? true : undefined,
      30_000,
    );
  });

  it('rebuilds a restarted node’s index from its log: the same answer as the others', async () => {
    const expected = ranking(await party('org1').catalog.search({ query: 'loans OR claims OR rainfall' }));
    party('org2').close();
    await net.kill('node2');
    net.start('node2');
    const answer = await waitFor(
      'node2 to answer again',
      async () => {
        const result = await party('org2').catalog.search({ query: 'loans OR claims OR rainfall' });
        return ranking(result).length === expected.length ? result : undefined;
      },
      90_000,
      500,
    );
    expect(ranking(answer)).toEqual(expected);
  });
});

describe('the catalog over REST, the SDK and the CLI', () => {
  let url: string;

  beforeAll(async () => {
    const app = fastify({ logger: false, ajv: { customOptions: { removeAdditional: false } } });
    app.setErrorHandler((error: unknown, _request, reply) => {
      const { status, ...body } = toWireError(error);
      return reply.status(status).send({ error: body });
    });
    registerCatalogRoutes(app, party('org2').catalog);
    await app.listen({ host: '127.0.0.1', port: 0 });
    servers.push(app);
    const address = app.server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });

  it('publishes, searches, shows and withdraws through the SDK; errors keep their codes', async () => {
    const sdk = new Catalog(new Transport({ connector: url, token: 'unused', requestTimeoutMs: 30_000 }));
    const published = await sdk.publish({
      dataset: 'weather',
      domain: 'climate',
      title: 'Rainfall at our branches',
      description: 'Rain gauges on our branch roofs.',
      tags: ['rain'],
    });
    expect(published).toMatchObject({ owner: 'org2', dataset: 'weather', version: 1 });
    const found = await sdk.search({ query: 'gauges', owner: 'org2', limit: 5 });
    expect(found.hits.map((hit) => hit.entry.dataset)).toEqual(['weather']);
    expect((await sdk.entry('org2', 'weather')).contentHash).toMatch(/^[0-9a-f]{64}$/);
    const malformed = await failure(sdk.search({ query: 'AND' }));
    expect([malformed.code, (await failure(sdk.entry('org2', 'nothing'))).code]).toEqual([
      ErrorCode.QueryRejected,
      ErrorCode.DatasetNotFound,
    ]);
    // The route's own validation: a bad limit never reaches the node.
    expect((await failure(sdk.search({ query: 'x', limit: 500 }))).code).toBe(ErrorCode.SchemaMismatch);
    expect(await sdk.withdraw('weather')).toMatchObject({ owner: 'org2', dataset: 'weather' });
  });

  it('prints a ranked table, JSON with --json, and an entry with show', async () => {
    const run = async (...args: string[]): Promise<string> => {
      let stdout = '';
      const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        stdout += String(chunk);
        return true;
      });
      try {
        const program = new Command().exitOverride();
        registerCatalogCommands(program);
        await program.parseAsync(['node', 'ledgerbus', ...args, '--connector', url, '--token', 'unused']);
      } finally {
        out.mockRestore();
      }
      return stdout;
    };
    const table = await run('catalog', 'search', 'loan*');
    const lines = table.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^RANK\s+DATASET\s+VERSION\s+DOMAIN\s+ROWS\s+SCORE\s+TITLE$/);
    expect(lines[1]).toMatch(/^1\s+org2\/loans\s+2\s+finance\s+125000\s+\S+\s+Consumer loans$/);
    const json = JSON.parse(
      await run('catalog', 'search', 'loan*', '--domain', 'finance', '--json'),
    ) as CatalogSearchResult;
    expect(json.hits.map((hit) => `${hit.entry.owner}/${hit.entry.dataset}`)).toEqual(['org2/loans']);
    const shown = await run('catalog', 'show', 'org2/claims');
    expect(shown).toContain('org2/claims version 2 (insurance)');
    expect(shown).toContain('policy       columns paid;');
    const published = JSON.parse(
      await run(
        'catalog',
        'publish',
        '--dataset',
        'weather',
        '--domain',
        'climate',
        '--title',
        'Rain',
        '--description',
        'Again',
        '--tag',
        'rain',
        '--tag',
        'roofs',
        '--json',
      ),
    ) as { version: number; tags: string[] };
    expect(published).toMatchObject({ version: 2, tags: ['rain', 'roofs'] });
    expect(await run('catalog', 'withdraw', 'weather')).toMatch(/^withdrew org2\/weather/);
  });
});
