import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { rpcStream } from '../../net/index.js';
import type { CborValue } from '../../codec/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { refusal } from '../../testing/refusal.js';
import type { ConnectorContext } from '../context.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../testing/parts-fixture.js';
import { homeNode } from './node-session.js';
import type { NodeSession } from './node-session.js';

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
});
