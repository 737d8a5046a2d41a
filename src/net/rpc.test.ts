import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { CborValue } from '../codec/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { rpcStream } from './rpc-stream.js';
import { openRpcPair } from './testing/rpc-pair.js';
import type { RpcPair } from './testing/rpc-pair.js';

const pairs: RpcPair[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((pair) => pair.close()));
});

async function open(options: Parameters<typeof openRpcPair>[0] = {}): Promise<RpcPair> {
  const pair = await openRpcPair(options);
  pairs.push(pair);
  return pair;
}

async function rejection(promise: Promise<unknown>): Promise<LedgerbusError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof LedgerbusError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

/** A source of `totalBytes` (or endless) bytes, made only when read, that counts what it has made. */
function countingSource(totalBytes: number, chunkBytes = 64 * 1024) {
  const counter = { produced: 0, destroyed: false };
  const source = new Readable({
    read() {
      if (counter.produced >= totalBytes) {
        this.push(null);
        return;
      }
      const size = Math.min(chunkBytes, totalBytes - counter.produced);
      const chunk = Buffer.alloc(size, counter.produced % 251);
      counter.produced += size;
      this.push(chunk);
    },
    destroy(error, callback) {
      counter.destroyed = true;
      callback(error);
    },
  });
  return { source, counter };
}

describe('RpcPeer over a TLS link', () => {
  it('runs the admission check before every request; a refusal answers without the handler', async () => {
    const pair = await open();
    let handled = 0;
    let admitted = 0;
    pair.server.handle('work', () => ++handled);
    pair.server.admit((method) => {
      if (++admitted > 2)
        throw new LedgerbusError(ErrorCode.RateLimited, `over quota for ${method}`, { retriable: true });
    });
    expect(await pair.client.request('work', null)).toBe(1);
    expect(await rejection(pair.client.request('unknown', null))).toMatchObject({
      code: ErrorCode.UnknownMethod,
    });
    const refused = await rejection(pair.client.request('work', null));
    expect(refused).toMatchObject({ code: ErrorCode.RateLimited, retriable: true });
    expect(refused.message).toContain('over quota for work');
    expect(handled).toBe(1);
  });

  it('answers requests, in both directions, with the caller identified', async () => {
    const pair = await open();
    pair.server.handle('echo', (body, context) => ({ body, from: context.peerName }));
    pair.client.handle('twice', async (body) => (typeof body === 'number' ? body * 2 : null));
    const body: CborValue = { n: 1, bytes: Uint8Array.of(1, 2, 3), list: [true, null, 'x'] };
    expect(await pair.client.request('echo', body)).toEqual({ body, from: 'client' });
    expect(await pair.server.request('twice', 21)).toBe(42);
    const many = await Promise.all(Array.from({ length: 200 }, (_, i) => pair.client.request('echo', i)));
    expect(many.map((answer) => (answer as { body: number }).body)).toEqual(
      Array.from({ length: 200 }, (_, i) => i),
    );
  });

  it('passes error codes and the retriable flag to the caller', async () => {
    const errors: unknown[] = [];
    const pair = await open({ server: { onError: (error) => errors.push(error) } });
    pair.server.handle('busy', () => {
      throw new LedgerbusError(ErrorCode.Overloaded, 'queue full', { retriable: true });
    });
    pair.server.handle('corrupt', async () => {
      throw new LedgerbusError(ErrorCode.StorageCorrupt, 'bad page');
    });
    pair.server.handle('bug', () => {
      throw new TypeError('secret detail');
    });

    const busy = await rejection(pair.client.request('busy', null));
    expect([busy.code, busy.message, busy.retriable]).toEqual([ErrorCode.Overloaded, 'queue full', true]);
    const corrupt = await rejection(pair.client.request('corrupt', null));
    expect([corrupt.code, corrupt.retriable]).toEqual([ErrorCode.StorageCorrupt, false]);
    const bug = await rejection(pair.client.request('bug', null));
    expect(bug.code).toBe(ErrorCode.Internal);
    expect(bug.message).not.toMatch(/secret/);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(TypeError);
    const unknown = await rejection(pair.client.request('nope', null));
    expect(unknown.code).toBe(ErrorCode.UnknownMethod);
  });

  it('times out a request that gets no answer', async () => {
    const pair = await open({ client: { requestTimeoutMs: 100 } });
    pair.server.handle('hang', () => new Promise<CborValue>(() => {}));
    const error = await rejection(pair.client.request('hang', null));
    expect([error.code, error.retriable]).toEqual([ErrorCode.Timeout, true]);
  });

  it('fails every request in flight when the connection closes', async () => {
    const pair = await open();
    pair.server.handle('hang', () => new Promise<CborValue>(() => {}));
    const requests = [1, 2, 3].map((i) => rejection(pair.client.request('hang', i)));
    await sleep(50);
    pair.link.accepted.close();
    for (const error of await Promise.all(requests)) {
      expect([error.code, error.retriable]).toEqual([ErrorCode.ConnectionClosed, true]);
    }
    const late = await rejection(pair.client.request('hang', 4));
    expect(late.code).toBe(ErrorCode.ConnectionClosed);
  });

  it('refuses requests past inFlightMax with OVERLOADED, on either side', async () => {
    const pair = await open({ server: { inFlightMax: 2 }, client: { inFlightMax: 3 } });
    const release: (() => void)[] = [];
    pair.server.handle(
      'wait',
      () => new Promise<CborValue>((resolve) => release.push(() => resolve('done'))),
    );
    const first = pair.client.request('wait', null);
    const second = pair.client.request('wait', null);
    // The server is serving two: it refuses the third.
    const refusedByServer = await rejection(pair.client.request('wait', null));
    expect([refusedByServer.code, refusedByServer.retriable]).toEqual([ErrorCode.Overloaded, true]);
    const third = pair.client.request('wait', null);
    // The client has three waiting: it refuses the fourth without sending it.
    const refusedByClient = await rejection(pair.client.request('wait', null));
    expect([refusedByClient.code, refusedByClient.message]).toEqual([
      ErrorCode.Overloaded,
      '3 requests to server are already in flight',
    ]);
    await expect(third).rejects.toMatchObject({ code: ErrorCode.Overloaded });
    release.forEach((resolve) => resolve());
    expect(await Promise.all([first, second])).toEqual(['done', 'done']);
  });

  it('delivers notifications to the channel handler', async () => {
    const pair = await open();
    const received: CborValue[] = [];
    const done = new Promise<void>((resolve) =>
      pair.client.onNotify('blocks', (body, context) => {
        received.push([body, context.peerName]);
        if (received.length === 3) resolve();
      }),
    );
    pair.server.notify('ignored', 'nobody listens');
    for (const height of [1, 2, 3]) pair.server.notify('blocks', { height });
    await done;
    expect(received).toEqual([
      [{ height: 1 }, 'server'],
      [{ height: 2 }, 'server'],
      [{ height: 3 }, 'server'],
    ]);
  });

  it('streams 64 MiB to a slow consumer while reading the source lazily', async () => {
    const pair = await open();
    const totalBytes = 64 * 1024 * 1024;
    const { source, counter } = countingSource(totalBytes);
    pair.server.handle('download', () => rpcStream(source, { size: totalBytes }));
    const { head, stream } = await pair.client.requestStream('download', null);
    expect(head).toEqual({ size: totalBytes });
    let consumed = 0;
    let aheadMax = 0;
    // Reads 64 KiB at a time with a pause after each, about 20 MiB/s: far slower than loopback TLS,
    // so nearly all of the transfer waits on the consumer.
    for (;;) {
      const piece = (stream.read(64 * 1024) ?? stream.read()) as Buffer | null;
      if (piece === null) {
        if (stream.readableEnded) break;
        await new Promise((resolve) => stream.once('readable', resolve).once('end', resolve));
        continue;
      }
      if (piece[0] !== consumed % 251) throw new Error(`wrong byte at ${consumed}`);
      consumed += piece.length;
      aheadMax = Math.max(aheadMax, counter.produced - consumed);
      await sleep(2);
    }
    expect(consumed).toBe(totalBytes);
    // What is ahead sits mostly in the kernel's socket buffers (~5-6 MiB on Linux loopback); the
    // sender itself holds about one 256 KiB frame and the source's own small buffer.
    expect(aheadMax, 'bytes read from the source but not yet consumed').toBeLessThan(8 * 1024 * 1024);
  });

  it('destroys the stream with the remote code when the source fails', async () => {
    const pair = await open();
    pair.server.handle('fragile', () => {
      async function* pages() {
        for (let page = 1; page <= 3; page++) {
          yield Buffer.alloc(1000, page);
          await sleep(20);
        }
        throw new LedgerbusError(ErrorCode.StorageCorrupt, 'page 4 is unreadable');
      }
      return rpcStream(Readable.from(pages()));
    });
    const { head, stream } = await pair.client.requestStream('fragile', null);
    expect(head).toBeNull();
    const received: number[] = [];
    let failure: unknown;
    try {
      for await (const chunk of stream) received.push(...(chunk as Buffer));
    } catch (error) {
      failure = error;
    }
    // A destroyed stream drops what its consumer had not read yet, so the count may fall short.
    expect(received.length).toBeGreaterThan(0);
    expect(received.length).toBeLessThanOrEqual(3000);
    expect(received.every((byte, i) => byte === Math.floor(i / 1000) + 1)).toBe(true);
    expect(failure).toBeInstanceOf(LedgerbusError);
    expect((failure as LedgerbusError).code).toBe(ErrorCode.StorageCorrupt);
  });

  it('stops reading the source when the consumer gives up early', async () => {
    const pair = await open();
    const { source, counter } = countingSource(Number.MAX_SAFE_INTEGER);
    const sourceClosed = new Promise((resolve) => source.once('close', resolve));
    pair.server.handle('endless', () => rpcStream(source));
    pair.server.handle('ping', () => 'pong');
    const { stream } = await pair.client.requestStream('endless', null);
    let consumed = 0;
    for await (const chunk of stream) {
      consumed += (chunk as Buffer).length;
      if (consumed >= 1024 * 1024) break;
    }
    await sourceClosed;
    expect(counter.destroyed).toBe(true);
    const producedAtCancel = counter.produced;
    await sleep(100);
    expect(counter.produced).toBe(producedAtCancel);
    expect(producedAtCancel).toBeLessThan(16 * 1024 * 1024);
    // The connection is still usable afterwards.
    expect(await pair.client.request('ping', null)).toBe('pong');
  });

  it('tells the caller when stream and value calls are mixed up', async () => {
    const pair = await open();
    pair.server.handle('value', () => 1);
    pair.server.handle('stream', () => rpcStream(Readable.from([Buffer.from('x')])));
    expect((await rejection(pair.client.requestStream('value', null))).code).toBe(ErrorCode.SchemaMismatch);
    expect((await rejection(pair.client.request('stream', null))).code).toBe(ErrorCode.SchemaMismatch);
  });

  it('destroys a stream in progress when the connection closes', async () => {
    const pair = await open();
    const { source } = countingSource(Number.MAX_SAFE_INTEGER);
    pair.server.handle('endless', () => rpcStream(source));
    const { stream } = await pair.client.requestStream('endless', null);
    const failed = new Promise<unknown>((resolve) => stream.once('error', resolve));
    stream.once('data', () => pair.link.accepted.close());
    const error = await failed;
    expect((error as LedgerbusError).code).toBe(ErrorCode.ConnectionClosed);
    await new Promise((resolve) => (source.destroyed ? resolve(null) : source.once('close', resolve)));
  });

  it('closes the connection on a frame that is not an RPC message', async () => {
    const errors: unknown[] = [];
    const pair = await open({ server: { onError: (error) => errors.push(error) } });
    const closed = new Promise<Error | undefined>((resolve) => pair.link.accepted.onClose(resolve));
    pair.link.connected.send(Buffer.from([0xff, 0x00])); // a CBOR "break" with nothing to end
    const error = await closed;
    expect((error as LedgerbusError).code).toBe(ErrorCode.MalformedEncoding);
    expect(errors).toHaveLength(1);
  });

  it('streams in smaller pieces over a connection with small frames', async () => {
    const pair = await open({ frameBytesMax: 4096 });
    const { source } = countingSource(100_000, 30_000);
    pair.server.handle('download', () => rpcStream(source));
    const { stream } = await pair.client.requestStream('download', null);
    let consumed = 0;
    for await (const chunk of stream) consumed += (chunk as Buffer).length;
    expect(consumed).toBe(100_000);
  });
});
