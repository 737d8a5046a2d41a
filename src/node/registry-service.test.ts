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
