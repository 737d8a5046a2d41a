import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { rpcStream } from '../net/index.js';
import { openRpcPair } from '../net/testing/rpc-pair.js';
import type { RpcPair } from '../net/testing/rpc-pair.js';
import { connectorMethods, nodeMethods } from './client-methods.js';
import { TypedClient, handleStream, handleUnary } from './typed-rpc.js';
import { refusal } from '../testing/refusal.js';

const pairs: RpcPair[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((pair) => pair.close()));
});

async function open(): Promise<RpcPair> {
  const pair = await openRpcPair();
  pairs.push(pair);
  return pair;
}

const page = { evidences: [], messages: [], nextOffset: 4, endOffset: 4, height: 9 };

describe('typed RPC between connector and node', () => {
  it('refuses a request of the wrong shape where it is received, before the handler runs', async () => {
    const { client, server } = await open();
    let handled = 0;
    handleUnary(server, nodeMethods, 'poll', () => {
      handled += 1;
      return page;
    });
    const error = await refusal(client.request('poll', { group: 'demo/0', fromOffset: 'first' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('poll request: fromOffset');
    expect(await refusal(client.request('poll', ['not', 'a', 'map']))).toMatchObject({
      code: ErrorCode.SchemaMismatch,
    });
    expect(handled).toBe(0);
  });

  it('refuses an answer of the wrong shape where it is received', async () => {
    const { client, server } = await open();
    server.handle('message', () => ({
      id: 'm1',
      state: 'LOST',
      sender: 'org1',
      offset: 0,
      height: 1,
      recipients: [],
    }));
    const calls = new TypedClient(nodeMethods, () => client);
    const error = await refusal(calls.call('message', { group: 'demo/0', id: 'm1' }));
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('message answer: state');
  });

  it('passes a well-formed call through, typed both ways, ignoring fields it does not know', async () => {
    const { client, server } = await open();
    const seen: unknown[] = [];
    handleUnary(server, nodeMethods, 'poll', (request) => {
      seen.push(request);
      return { ...page, nextOffset: request.fromOffset + 1 };
    });
    const calls = new TypedClient(nodeMethods, () => client);
    const answer = await calls.call('poll', { group: 'demo/0', fromOffset: 3, limit: 10 });
    expect(answer.nextOffset).toBe(4);
    // A malformed count is the node's default, as before: dropped, not refused; extra fields too.
    await client.request('poll', { group: 'demo/0', fromOffset: 0, limit: 'many', newField: true });
    expect(seen).toStrictEqual([
      { group: 'demo/0', fromOffset: 3, limit: 10 },
      { group: 'demo/0', fromOffset: 0 },
    ]);
  });

  it('checks the stream methods too: the request where served, the head where received', async () => {
    const { client, server } = await open();
    handleStream(server, connectorMethods, 'servePayload', () =>
      rpcStream(Readable.from([Buffer.from('x')]), { nothing: 'here' }),
    );
    expect((await refusal(client.requestStream('servePayload', { group: 'demo/0' }))).code).toBe(
      ErrorCode.SchemaMismatch,
    );
    const calls = new TypedClient(connectorMethods, () => client);
    const error = await refusal(
      calls.stream('servePayload', { group: 'demo/0', fetchRequest: new Uint8Array([1]) }),
    );
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('servePayload head: header');
  });
});
