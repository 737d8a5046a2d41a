import { afterEach, describe, expect, it } from 'vitest';
import type { CborValue } from '../codec/index.js';
import { encodeFetchRequest } from '../contracts/fetch.js';
import { SigningDomain, generateSigningKey } from '../crypto/index.js';
import { ErrorCode } from '../errors.js';
import type { Observation } from '../intelligence/observations.js';
import { openRpcPair } from '../net/testing/rpc-pair.js';
import type { RpcPair } from '../net/testing/rpc-pair.js';
import type { NetworkRegistry } from '../registry/types.js';
import { createLogger } from '../runtime/logger.js';
import { ClientService } from './client-service.js';
import type { ClientServiceOptions } from './client-service.js';
import type { PeerMesh } from './peer-mesh.js';
import type { RegistryHost } from './registry-host.js';
import { refusal } from '../testing/refusal.js';

const pairs: RpcPair[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((pair) => pair.close()));
});

/**
 * The registry a node reads: node1 (org1) and node2 (org2), both organizations approved, and
 * partition demo/1 replicated on node2 only.
 */
const registry = {
  network: 'client-service-test',
  node: (id: string) => ({ node1: { organization: 'org1' }, node2: { organization: 'org2' } })[id],
  organization: (id: string) =>
    id === 'org1' || id === 'org2' ? { status: 'APPROVED', roles: [] } : undefined,
  partition: (group: string) => (group === 'demo/1' ? { replicas: ['node2'] } : undefined),
} as unknown as NetworkRegistry;

/** A client service of `nodeId` hosting no partition; its mesh records what it forwards. */
function clientService(
  nodeId: string,
  forwardedTo: { nodeId: string; method: string; body: CborValue }[] = [],
  answer: (body: CborValue) => CborValue = () => null,
  options: Partial<ClientServiceOptions> = {},
): ClientService {
  const mesh: Pick<PeerMesh, 'request'> = {
    request: (target, method, body) => {
      forwardedTo.push({ nodeId: target, method, body });
      return Promise.resolve(answer(body));
    },
  };
  return new ClientService({
    nodeId,
    registry,
    registryHost: {} as RegistryHost,
    replicas: new Map(),
    mesh: mesh as PeerMesh,
    logger: createLogger({ name: nodeId, level: 'silent' }),
    ...options,
  });
}

describe('the clientForward envelope between nodes', () => {
  it('refuses an envelope of the wrong shape as SCHEMA_MISMATCH naming the field', async () => {
    const node2 = clientService('node2');
    const notForwardable = await refusal(() =>
      node2.forwarded('node1', { method: 'serve', organization: 'org1', body: {} }),
    );
    expect(notForwardable.code).toBe(ErrorCode.SchemaMismatch);
    expect(notForwardable.message).toContain('clientForward request: method');
    const noOrganization = await refusal(() =>
      node2.forwarded('node1', { method: 'message', body: { group: 'demo/1', id: 'm1' } }),
    );
    expect(noOrganization.code).toBe(ErrorCode.SchemaMismatch);
    expect(noOrganization.message).toContain('clientForward request: organization');
    const badBody = await refusal(() =>
      node2.forwarded('node1', { method: 'message', organization: 'org1', body: { group: 'demo/1' } }),
    );
    expect(badBody.message).toContain('message request: id');
  });

  it('sends the envelope the receiving node parses, for the calling organization only', async () => {
    const forwardedTo: { nodeId: string; method: string; body: CborValue }[] = [];
    const node2 = clientService('node2');
    // node1 does not replicate demo/1: it forwards to node2, whose answer goes back as it came.
    const node1 = clientService('node1', forwardedTo, () => ({ answeredBy: 'node2' }));
    const pair = await openRpcPair();
    pairs.push(pair);
    node1.serveConnector('org1', pair.server);
    const answer = await pair.client.request('poll', { group: 'demo/1', fromOffset: 4, waitMs: 60_000 });
    expect(answer).toEqual({ answeredBy: 'node2' });
    // A forwarded long poll is capped so it ends before the node-to-node request times out.
    expect(forwardedTo).toEqual([
      {
        nodeId: 'node2',
        method: 'clientForward',
        body: {
          method: 'poll',
          organization: 'org1',
          body: { group: 'demo/1', fromOffset: 4, waitMs: 3_000 },
        },
      },
    ]);
    const envelope = forwardedTo[0]!.body;
    // node2 parses it and acts for org1 (node1's organization): it then finds it does not host demo/1.
    expect(await refusal(() => node2.forwarded('node1', envelope))).toMatchObject({
      code: ErrorCode.WrongGroup,
    });
    // A read for another organization than the calling node's is refused.
    const forOrg2 = { ...(envelope as Record<string, CborValue>), organization: 'org2' };
    expect(await refusal(() => node2.forwarded('node1', forOrg2))).toMatchObject({
      code: ErrorCode.PeerNotAuthorized,
    });
  });
});

describe('whom a node blames for what another node sends it', () => {
  it('charges a forwarded publish to the forwarding node, not to the organization it names', async () => {
    const seen: Observation[] = [];
    const node2 = clientService('node2', [], () => null, {
      rateLimit: { requestsPerSecond: 1, burst: 1 },
      observe: (observation) => seen.push(observation),
    });
    // node1 (org1) forwards publishes it says are org2's: org1's bucket pays, and org1 is blamed.
    const forged = {
      method: 'publish',
      organization: 'org2',
      body: { group: 'demo/1', request: new Uint8Array(8) },
    };
    expect((await refusal(() => node2.forwarded('node1', forged))).code).toBe(ErrorCode.WrongGroup);
    expect((await refusal(() => node2.forwarded('node1', forged))).code).toBe(ErrorCode.RateLimited);
    expect(seen.filter((observation) => observation.kind === 'rateLimited')).toMatchObject([
      { organization: 'org1', via: 'node1' },
    ]);
    // org2's own bucket is untouched.
    const org2Poll = {
      method: 'poll',
      organization: 'org2',
      body: { group: 'demo/1', fromOffset: 0, waitMs: 0 },
    };
    expect((await refusal(() => node2.forwarded('node2', org2Poll))).code).toBe(ErrorCode.WrongGroup);
  });

  it('blames the relaying node, not the requester it names, for a relayed fetch that is not signed by it', async () => {
    const seen: Observation[] = [];
    const node2 = clientService('node2', [], () => null, {
      observe: (observation) => seen.push(observation),
    });
    const pair = await openRpcPair();
    pairs.push(pair);
    node2.serveNode('node1', pair.server);
    // node1 (org1) relays a request naming org2, signed by a key org2 does not hold.
    const stranger = SigningDomain.of(registry.network).signer(generateSigningKey());
    const fetchRequest = encodeFetchRequest(
      {
        requester: 'org2',
        partitionId: 'demo/1',
        id: 'm1',
        nonce: new Uint8Array(16),
        timestamp: Date.now(),
      },
      stranger,
    );
    const refused = await refusal(
      pair.client.requestStream('relayPayload', { group: 'demo/1', fetchRequest }),
    );
    expect(refused.code).toBe(ErrorCode.BadSignature);
    expect(seen.filter((observation) => observation.kind === 'fetch')).toMatchObject([
      { organization: 'org1', outcome: 'badSignature', via: 'node1' },
    ]);
  });
});
