import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { openRpcPair } from '../net/testing/rpc-pair.js';
import type { RpcPair } from '../net/testing/rpc-pair.js';
import { nodeMethods } from '../protocol/client-methods.js';
import { TypedClient } from '../protocol/typed-rpc.js';
import { createLogger } from '../runtime/logger.js';
import type { RegistryHost } from './registry-host.js';
import { serveRegistry } from './registry-service.js';
import { refusal } from '../testing/refusal.js';
import type { AdminAction } from '../registry/admin-transactions.js';
import { defaultAlertPolicy } from '../registry/alerts.js';
import { SystemHarness, nodeKey, nodeOwner, startTime } from '../registry/testing/fixtures.js';

const pairs: RpcPair[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((pair) => pair.close()));
});

const registryBytes = new Uint8Array([0xa0]);

/**
 * The part of a RegistryHost the registry service uses, answering as a node with one topic whose
 * global ledger it does not keep; `submitted` records the admin transactions it was given.
 */
function hostStandIn(submitted: Uint8Array[]): RegistryHost {
  const host: Pick<
    RegistryHost,
    'submitAdmin' | 'waitApplied' | 'groupStatus' | 'registry' | 'topicMachine' | 'globalLedger'
  > = {
    submitAdmin: (transaction) => {
      submitted.push(transaction);
      return Promise.resolve({
        index: 9,
        group: 'topic:demo',
        result: { status: 'REJECTED', reason: 'NOT_ALLOWED', detail: 'org2 does not own demo' },
      });
    },
    waitApplied: () => Promise.resolve(),
    groupStatus: () => [
      { group: '__system', leader: 'node1', applied: 4 },
      { group: 'topic:demo', leader: '', applied: 0, failed: 'disk full', retryInMs: 500 },
    ],
    registry: {
      current: { encode: () => registryBytes },
      topics: () => [{ name: 'demo' }],
    } as unknown as RegistryHost['registry'],
    topicMachine: () =>
      ({ headHeights: () => ({ 'demo/0': 3 }) }) as unknown as ReturnType<RegistryHost['topicMachine']>,
    globalLedger: () => undefined,
  };
  return host as RegistryHost;
}

async function served(submitted: Uint8Array[] = []): Promise<RpcPair> {
  const pair = await openRpcPair();
  pairs.push(pair);
  serveRegistry(pair.server, 'org2', hostStandIn(submitted), createLogger({ name: 'test', level: 'silent' }));
  return pair;
}

describe('the registry service serves its methods by the table', () => {
  it('refuses an admin request of the wrong shape before proposing anything', async () => {
    const submitted: Uint8Array[] = [];
    const { client } = await served(submitted);
    const error = await refusal(client.request('admin', { transaction: 'not bytes' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('admin request: transaction');
    expect(submitted).toHaveLength(0);
  });

  it("answers admin and registry in the shapes the connector's typed calls parse", async () => {
    const submitted: Uint8Array[] = [];
    const { client } = await served(submitted);
    const calls = new TypedClient(nodeMethods, () => client);
    expect(await calls.call('admin', { transaction: new Uint8Array([7]) })).toEqual({
      index: 9,
      group: 'topic:demo',
      result: { status: 'REJECTED', reason: 'NOT_ALLOWED', detail: 'org2 does not own demo' },
    });
    expect(submitted).toEqual([new Uint8Array([7])]);
    expect(await calls.call('registry', {})).toEqual({
      registry: registryBytes,
      groups: [
        { group: '__system', leader: 'node1', applied: 4 },
        { group: 'topic:demo', leader: '', applied: 0, failed: 'disk full', retryInMs: 500 },
      ],
      globalHeads: [{ topic: 'demo', heads: { 'demo/0': 3 } }],
    });
  });

  it('refuses a globalReceipt request without an id as SCHEMA_MISMATCH naming the field', async () => {
    const { client } = await served();
    const error = await refusal(client.request('globalReceipt', { topic: 'demo' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('globalReceipt request: id');
    expect(await refusal(client.request('globalReceipt', { topic: 'demo', id: 'm1' }))).toMatchObject({
      code: ErrorCode.WrongGroup,
    });
  });
});

/**
 * A host whose registry and alerts are a real __system state machine, fed as Raft would: beta
 * (a member) has two alerts about it, alpha one; `sup` is the supervisor, `aud` an auditor.
 */
function alertHost(): { host: RegistryHost; harness: SystemHarness; ids: string[] } {
  const harness = new SystemHarness();
  const ids: string[] = [];
  const raiseAbout = (subject: string, node: string, rule: 'flood' | 'tampering'): void => {
    const id = `${node}-${ids.length + 1}`;
    ids.push(id);
    const action: AdminAction = {
      kind: 'raiseAlert',
      id,
      node,
      subject,
      rule,
      severity: 'warning',
      score: '3',
      threshold: '1',
      features: [],
      summary: `${subject} did ${rule}`,
      firstAt: startTime,
      lastAt: startTime,
      observations: 3,
    };
    expect(
      harness.admin(nodeOwner(node), action, { key: nodeKey(node), timestamp: startTime + ids.length }),
    ).toBe('OK');
  };
  raiseAbout('beta', 'n1', 'flood');
  raiseAbout('alpha', 'n2', 'flood');
  raiseAbout('beta', 'n1', 'tampering');
  const host: Pick<RegistryHost, 'registry' | 'system' | 'systemApplied'> = {
    registry: {
      organization: (id: string) => harness.machine.latest.organizations.get(id),
    } as unknown as RegistryHost['registry'],
    system: harness.machine,
    get systemApplied() {
      return harness.applied();
    },
  };
  return { host: host as RegistryHost, harness, ids };
}

async function alertClient(
  organization: string,
  host: RegistryHost,
): Promise<TypedClient<typeof nodeMethods>> {
  const pair = await openRpcPair();
  pairs.push(pair);
  serveRegistry(pair.server, organization, host, createLogger({ name: 'test', level: 'silent' }));
  return new TypedClient(nodeMethods, () => pair.client);
}

describe('alertList and alertPolicy show each organization what it may see', () => {
  it('shows a supervisor every alert, filtered as asked, oldest first or newest first', async () => {
    const { host, ids } = alertHost();
    const sup = await alertClient('sup', host);
    const all = await sup.call('alertList', {});
    expect(all.alerts.map((alert) => alert.id)).toEqual(ids);
    expect(all.index).toBe(3);
    expect((await sup.call('alertList', { organization: 'beta' })).alerts.map((alert) => alert.id)).toEqual([
      ids[0],
      ids[2],
    ]);
    const newest = await sup.call('alertList', { newestFirst: true, limit: 2 });
    expect(newest.alerts.map((alert) => alert.id)).toEqual([ids[2], ids[1]]);
    expect(newest.more).toBe(true);
    expect((await sup.call('alertList', { fromIndex: 2 })).alerts.map((alert) => alert.id)).toEqual([
      ids[1],
      ids[2],
    ]);
    expect((await sup.call('alertList', { sinceMs: startTime + 3 })).alerts.map((alert) => alert.id)).toEqual(
      [ids[2]],
    );
  });

  it('shows a member and an auditor only alerts about themselves, and refuses asking for another', async () => {
    const { host, ids } = alertHost();
    const beta = await alertClient('beta', host);
    expect((await beta.call('alertList', {})).alerts.map((alert) => alert.id)).toEqual([ids[0], ids[2]]);
    expect((await beta.call('alertList', { organization: 'beta' })).alerts).toHaveLength(2);
    expect(await refusal(beta.call('alertList', { organization: 'alpha' }))).toMatchObject({
      code: ErrorCode.Forbidden,
    });
    expect((await beta.call('alertList', { id: ids[1] })).alerts).toEqual([]);
    const aud = await alertClient('aud', host);
    expect((await aud.call('alertList', {})).alerts).toEqual([]);
    expect((await aud.call('alertPolicy', {})).policy).toEqual(defaultAlertPolicy);
  });

  it('refuses organizations that are not approved', async () => {
    const { host, harness } = alertHost();
    expect(
      harness.admin('sup', { kind: 'setOrganizationStatus', organization: 'beta', status: 'SUSPENDED' }),
    ).toBe('OK');
    const beta = await alertClient('beta', host);
    expect(await refusal(beta.call('alertList', {}))).toMatchObject({ code: ErrorCode.Forbidden });
    expect(await refusal(beta.call('alertPolicy', {}))).toMatchObject({ code: ErrorCode.Forbidden });
    const stranger = await alertClient('nobody', host);
    expect(await refusal(stranger.call('alertList', {}))).toMatchObject({ code: ErrorCode.Forbidden });
  });
});
