import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { rpcStream } from '../../net/index.js';
import type { CborValue } from '../../codec/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { refusal } from '../../testing/refusal.js';
import type { ConnectorContext } from '../context.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../testing/parts-fixture.js';
import type { RpcHandler } from '../../net/index.js';
import type { BalancerPolicy } from './node-balancer.js';
import { NodeSession, homeNode, sessionNodes } from './node-session.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(
  handlers: Parameters<typeof startNodeStandIn>[1] = {},
  servingConnections = 0,
): Promise<{ fixture: PartsFixture; context: ConnectorContext; node: NodeStandIn; session: NodeSession }> {
  const fixture = partsFixture();
  cleanups.push(() => fixture.close());
  const context = await fixture.context(0);
  const node = await startNodeStandIn(context.organization, { echo: (body) => body, ...handlers });
  cleanups.push(() => node.close());
  const session = fixture.session(context, 0, node.node, servingConnections);
  cleanups.push(() => session.close());
  return { fixture, context, node, session };
}

async function until(condition: () => boolean): Promise<void> {
  for (let round = 0; round < 200 && !condition(); round++)
    await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}

describe('NodeSession', () => {
  it('opens one control connection for callers that ask at the same time, and reopens it after it drops', async () => {
    const { node, session } = await setUp();
    const answers = await Promise.all([1, 2, 3].map((value) => session.request('echo', { value })));
    expect(answers).toEqual([{ value: 1 }, { value: 2 }, { value: 3 }]);
    expect(node.peers).toHaveLength(1);
    const first = await session.controlPeer();
    node.peers[0]!.close();
    await until(() => first.closed);
    // The connector notices the close, then asks again on a new connection.
    await expect(session.request('echo', 'again')).resolves.toBe('again');
  });

  it('reports an unreachable node as CONNECTION_CLOSED, and refuses at once once the connector stops', async () => {
    const { node, session, context } = await setUp();
    await node.close();
    const unreachable = await session.request('echo', 1).catch((error: unknown) => error);
    expect(unreachable).toBeInstanceOf(LedgerbusError);
    expect((unreachable as LedgerbusError).code).toBe(ErrorCode.ConnectionClosed);
    expect((unreachable as LedgerbusError).retriable).toBe(true);
    context.lifecycle.stop();
    const stopped = await session.request('echo', 1).catch((error: unknown) => error);
    expect((stopped as LedgerbusError).code).toBe(ErrorCode.ConnectionClosed);
    expect((stopped as LedgerbusError).message).toBe('connector stopped');
    expect((stopped as LedgerbusError).retriable).toBe(false);
  });

  it('keeps its serving connections at their number, each answering the node with the handler', async () => {
    let served = 0;
    const { node, session, fixture } = await setUp({ serve: () => ({ ok: true }) }, 2);
    session.startServing({
      servePayload: () =>
        Promise.resolve(rpcStream(Readable.from([]), { header: new Uint8Array([++served]) })),
      escrowChunkPut: ({ chunk }) => ({
        holder: `holds ${chunk.length} bytes`,
        signerKey: new Uint8Array(32),
        signature: new Uint8Array(64),
      }),
      escrowChunkGet: () => {
        throw new LedgerbusError(ErrorCode.Forbidden, 'no approved audit');
      },
      jobResultGet: () => {
        throw new LedgerbusError(ErrorCode.MessageNotFound, 'no such job');
      },
    });
    await until(() => session.servingCount === 2);
    const serving = node.peers.filter((peer) => !peer.closed);
    const { head } = await serving[0]!.requestStream('servePayload', { fetchRequest: new Uint8Array([1]) });
    expect([...(head as { header: Uint8Array }).header]).toEqual([1]);
    // The escrow methods are served too, each request parsed by its schema before the handler runs.
    const receipt = await serving[1]!.request('escrowChunkPut', {
      request: new Uint8Array([1]),
      chunk: new Uint8Array(5),
    });
    expect((receipt as { holder: string }).holder).toBe('holds 5 bytes');
    expect(
      (await refusal(() => serving[1]!.request('escrowChunkPut', { request: new Uint8Array([1]) }))).code,
    ).toBe(ErrorCode.SchemaMismatch);
    expect(
      (await refusal(() => serving[0]!.request('escrowChunkGet', { request: new Uint8Array([1]) }))).code,
    ).toBe(ErrorCode.Forbidden);
    serving[1]!.close();
    await until(() => session.servingCount === 1);
    // The refill runs on the injected clock: nothing reopens until it fires.
    expect(node.peers).toHaveLength(2);
    expect(fixture.clock.fireNext()).toBe(true);
    await until(() => session.servingCount === 2);
    expect(node.peers).toHaveLength(3);
  });

  it('counts a node reachable while a serving connection to it is open, as readiness asks', async () => {
    const { node, session, fixture } = await setUp(
      { serve: () => new Promise<CborValue>(() => undefined) },
      2,
    );
    expect(session.reachableNodes()).toEqual([]);
    session.startServing({
      servePayload: () => Promise.resolve(rpcStream(Readable.from([]), {})),
      escrowChunkPut: () => {
        throw new LedgerbusError(ErrorCode.Forbidden, 'not here');
      },
      escrowChunkGet: () => {
        throw new LedgerbusError(ErrorCode.Forbidden, 'not here');
      },
      jobResultGet: () => {
        throw new LedgerbusError(ErrorCode.MessageNotFound, 'not here');
      },
    });
    await until(() => session.servingCount === 2);
    expect(session.reachableNodes()).toEqual([node.node.id]);
    // Both drop. The refill runs on the manual clock, so nothing redials and nothing counts toward
    // an ejection: only the closed connections say the node is out of reach.
    for (const peer of node.peers) peer.close();
    await until(() => session.servingCount === 0);
    expect(session.reachableNodes()).toEqual([]);
    expect(fixture.clock.fireNext()).toBe(true);
    await until(() => session.servingCount === 2);
    expect(session.reachableNodes()).toEqual([node.node.id]);
  });

  it('calls another organization’s connector through its node, the answer parsed by the method’s schema', async () => {
    const asked: CborValue[] = [];
    const { session } = await setUp({
      connectorCall: (body): CborValue => {
        asked.push(body);
        const { method } = body as { method: string };
        return method === 'escrowChunkGet' ? { chunk: new Uint8Array([7, 7]) } : { holder: 'org2' };
      },
    });
    const { chunk } = await session.connectorCall('org2', 'escrowChunkGet', { request: new Uint8Array([1]) });
    expect([...chunk]).toEqual([7, 7]);
    expect(asked[0]).toEqual({
      organization: 'org2',
      method: 'escrowChunkGet',
      body: { request: new Uint8Array([1]) },
    });
    // A receipt without its signature is no receipt: refused where it is received.
    const malformed = await refusal(() =>
      session.connectorCall('org2', 'escrowChunkPut', {
        request: new Uint8Array([1]),
        chunk: new Uint8Array(1),
      }),
    );
    expect(malformed.code).toBe(ErrorCode.SchemaMismatch);
    expect(malformed.message).toContain('escrowChunkPut answer of org2');
  });

  it('picks the organization’s first node, or the one named; BAD_CONFIG when there is none', async () => {
    const { context } = await setUp();
    const first = context.registry.nodes().find((node) => node.organization === context.organization)!;
    expect(homeNode(context.registry, context.organization).id).toBe(first.id);
    expect(() => homeNode(context.registry, 'no-such-org')).toThrow(LedgerbusError);
    expect(() => homeNode(context.registry, context.organization, 'no-such-node')).toThrow(/no node of/);
  });

  it('refuses a nodes list naming another organization’s node, or a node twice', async () => {
    const { context } = await setUp();
    const own = context.registry.nodes().find((node) => node.organization === context.organization)!;
    const foreign = context.registry.nodes().find((node) => node.organization !== context.organization)!;
    expect(sessionNodes(context.registry, context.organization, { nodes: [{ id: own.id }] })).toHaveLength(1);
    expect(() =>
      sessionNodes(context.registry, context.organization, { nodes: [{ id: own.id }, { id: foreign.id }] }),
    ).toThrow(/is a node of/);
    expect(() =>
      sessionNodes(context.registry, context.organization, { nodes: [{ id: own.id }, { id: own.id }] }),
    ).toThrow(/listed twice/);
  });
});

describe('NodeSession with several nodes', () => {
  async function severalNodes(
    handlers: readonly Parameters<typeof startNodeStandIn>[1][],
    options: {
      replicaReads?: boolean;
      servingConnections?: number;
      random?: () => number;
      policy?: BalancerPolicy;
    } = {},
  ): Promise<{
    fixture: PartsFixture;
    context: ConnectorContext;
    nodes: NodeStandIn[];
    session: NodeSession;
  }> {
    const fixture = partsFixture();
    cleanups.push(() => fixture.close());
    const context = await fixture.context(0);
    const nodes: NodeStandIn[] = [];
    for (const handler of handlers) {
      const node = await startNodeStandIn(context.organization, handler);
      cleanups.push(() => node.close());
      nodes.push({ ...node, node: { ...node.node, id: `${node.node.id}-${nodes.length}` } });
    }
    const session = new NodeSession({
      ...context,
      node: nodes[0]!.node,
      nodes: nodes.map((node) => node.node),
      identity: fixture.signingKey(0),
      servingConnections: options.servingConnections ?? 0,
      replicaReads: options.replicaReads ?? false,
      random: options.random ?? (() => 0.5),
      balancer: { policy: options.policy ?? 'adaptive' },
    });
    cleanups.push(() => session.close());
    return { fixture, context, nodes, session };
  }

  it('sends to another own node when one cannot be reached, and ejects the dead one', async () => {
    const served: number[] = [];
    // Round robin keeps coming back to the dead node, so its failures add up to an ejection.
    const { nodes, session } = await severalNodes(
      [{ serve: () => (served.push(0), { ok: true }) }, { serve: () => (served.push(1), { ok: true }) }],
      { policy: 'round-robin' },
    );
    await nodes[0]!.close();
    for (let round = 0; round < 10; round++)
      await expect(session.call('serve', {})).resolves.toEqual({ ok: true });
    expect(served).toEqual(Array.from({ length: 10 }, () => 1));
    const dead = session.balancerStats().find((stats) => stats.id === nodes[0]!.node.id)!;
    expect(dead.ejectedUntil).toBeDefined();
  });

  it('asks another node again for a read whose connection dropped, but not for a publish', async () => {
    const message = { id: 'm1', state: 'ACCEPTED', sender: 'org1', offset: 0, height: 1, recipients: [] };
    let standIns: NodeStandIn[] = [];
    let publishes = 0;
    // Closes the stand-in's connections with the request unanswered, as a node that goes down.
    const dropping =
      (index: number, count = false): RpcHandler =>
      () => {
        if (count) publishes += 1;
        for (const peer of standIns[index]!.peers) peer.close();
        return new Promise<CborValue>(() => undefined);
      };
    const { session, nodes } = await severalNodes(
      [
        { message: dropping(0), publish: dropping(0, true) },
        { message: () => message, publish: dropping(1, true) },
      ],
      { random: () => 0 },
    );
    standIns = nodes;
    await expect(session.call('message', { group: 'demo/0', id: 'm1' })).resolves.toEqual(message);
    expect(session.balancerStats().find((stats) => stats.id === nodes[0]!.node.id)?.failures).toBe(1);
    const publish = await refusal(() =>
      session.call('publish', { group: 'demo/0', request: new Uint8Array([1]) }),
    );
    expect(publish.code).toBe(ErrorCode.ConnectionClosed);
    expect(publishes).toBe(1);
  });

  it('asks another node for a read one refused for load', async () => {
    const message = { id: 'm1', state: 'ACCEPTED', sender: 'org1', offset: 0, height: 1, recipients: [] };
    const { session, nodes } = await severalNodes(
      [
        {
          message: () => {
            throw new LedgerbusError(ErrorCode.RateLimited, 'over the quota', { retriable: true });
          },
        },
        { message: () => message },
      ],
      { random: () => 0 },
    );
    await expect(session.call('message', { group: 'demo/0', id: 'm1' })).resolves.toEqual(message);
    const first = session.balancerStats().find((stats) => stats.id === nodes[0]!.node.id)!;
    expect(first.requests).toBe(1);
    expect(first.failures).toBe(0);
  });

  it('reads a partition from its replicas first, and from its own nodes when none can be reached', async () => {
    const receipt = { state: 'ACCEPTED', acceptance: new Uint8Array([1]), deliveries: [] };
    const { session, context } = await severalNodes([{ receipt: () => receipt }], { replicaReads: true });
    // The fixture's replicas of demo/0 are registered at ports nothing listens on.
    await expect(session.call('receipt', { group: 'demo/0', id: 'm1' })).resolves.toEqual(receipt);
    const replicas = context.registry.partition('demo/0')!.replicas;
    const asked = session.balancerStats().filter((stats) => replicas.includes(stats.id));
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((stats) => stats.failures === 1)).toBe(true);
  });

  it('asks only its own nodes for reads that carry no proof (a message status)', async () => {
    const message = { id: 'm1', state: 'ACCEPTED', sender: 'org1', offset: 0, height: 1, recipients: [] };
    const { session, context } = await severalNodes([{ message: () => message }], { replicaReads: true });
    await expect(session.call('message', { group: 'demo/0', id: 'm1' })).resolves.toEqual(message);
    const replicas = context.registry.partition('demo/0')!.replicas;
    expect(session.balancerStats().filter((stats) => replicas.includes(stats.id))).toEqual([]);
  });

  it('keeps serving connections open to every own node', async () => {
    const { nodes, session } = await severalNodes(
      [{ serve: () => ({ ok: true }) }, { serve: () => ({ ok: true }) }],
      { servingConnections: 2 },
    );
    session.startServing({
      servePayload: () => Promise.resolve(rpcStream(Readable.from([]), {})),
      escrowChunkPut: () => {
        throw new LedgerbusError(ErrorCode.Forbidden, 'not here');
      },
      escrowChunkGet: () => {
        throw new LedgerbusError(ErrorCode.Forbidden, 'not here');
      },
      jobResultGet: () => {
        throw new LedgerbusError(ErrorCode.Forbidden, 'not here');
      },
    });
    await until(() => session.servingCount === 4);
    expect(nodes.map((node) => node.peers.length)).toEqual([2, 2]);
  });
});
