// Fabric's class of denial of service through large messages (gRPC/gossip messages whose size is
// only checked after they are buffered, exhausting a peer's memory) and DESIGN §10 ("oversize
// messages" get a stable code and change nothing); BlockTorrent Table 2, row 3, for an adversary
// flooding with few, huge requests instead of many small ones.
//
// Shows, against node1 over real TLS 1.3 with a registered connector key: a frame header announcing
// more than the 16 MiB limit (16 MiB + 1, and 4 GiB) makes the node close the connection as soon as
// the 4 header bytes arrive, before any payload is sent, while a header announcing exactly the limit
// is waited on; a 4 GiB announcement followed by a 48 MiB torrent leaves the process's memory
// about where it was; a client request over the 1 MiB request limit is OVERSIZE; a client that was
// connected all along, and a new one, are served throughout. On the connector's REST API a batch
// body over 16 MiB is refused with OVERSIZE, and a streamed message over the topic's 1 MiB policy
// with MESSAGE_REJECTED, before anything is published.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpApi } from '../../src/connector/http-api.js';
import type { HttpApiServer } from '../../src/connector/http-api.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import type { RpcPeer } from '../../src/net/index.js';
import { defaultFrameBytesMax } from '../../src/net/index.js';
import {
  GROUP,
  SecurityNetwork,
  clientRequest,
  closesWithin,
  codeOf,
  metadataOf,
  publishRaw,
  randomId,
  rawLink,
} from './support.js';

const net = new SecurityNetwork({ name: 'oversize', basePort: 24700, messageBytesMax: 1024 * 1024 });
const token = randomBytes(24).toString('base64url');
let api: HttpApiServer;
/** Connected before any attack, used after each: its session must survive the others' abuse. */
let bystander: RpcPeer;

beforeAll(async () => {
  await net.startNodes();
  const connector = await net.startConnector('org1');
  api = await startHttpApi({ api: connector, host: '127.0.0.1', port: 0, token, closeGraceMs: 500 });
  bystander = await net.dial('node1', net.connectorKey('org2'));
}, 60_000);

afterAll(async () => {
  bystander?.close();
  await api?.close();
  await net.stop();
}, 60_000);

const header = (length: number): Buffer => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(length, 0);
  return bytes;
};

async function bystanderPublishes(): Promise<void> {
  const key = net.signer('org2');
  const operation = encodePublish(
    {
      sender: 'org2',
      nonce: randomBytes(16),
      timestamp: Date.now(),
      messages: [metadataOf(randomId('bystander'), { recipients: ['org3'] })],
    },
    key,
  );
  const { result } = await publishRaw(bystander, clientRequest(operation, key));
  expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
}

describe('oversize frames on a node link', () => {
  it('a header announcing more than 16 MiB closes the connection on the header alone', async () => {
    for (const announced of [defaultFrameBytesMax + 1, 0xffff_ffff]) {
      const { socket, closed } = await rawLink(net.node('node1'), net.connectorKey('org3'));
      const started = performance.now();
      socket.write(header(announced));
      expect(await closesWithin(closed, 2_000)).toBe(true);
      console.log(
        `oversize: a ${announced}-byte announcement closed in ${(performance.now() - started).toFixed(0)} ms`,
      );
    }
    // The boundary: exactly the limit is a legal frame, so the node waits for its payload.
    const { socket, closed } = await rawLink(net.node('node1'), net.connectorKey('org3'));
    socket.write(header(defaultFrameBytesMax));
    expect(await closesWithin(closed, 1_000)).toBe(false);
    socket.destroy();
    await bystanderPublishes();
  });

  it('a 4 GiB announcement followed by a 48 MiB torrent does not balloon memory', async () => {
    const torrent = Buffer.alloc(48 * 1024 * 1024, 0x41);
    const before = process.memoryUsage();
    const { socket, closed } = await rawLink(net.node('node1'), net.connectorKey('org3'));
    socket.write(header(0xffff_ffff));
    // Written in pieces as fast as the socket takes them, until the node hangs up.
    let offered = 0;
    for (let offset = 0; offset < torrent.length && !socket.destroyed; offset += 1024 * 1024) {
      socket.write(torrent.subarray(offset, offset + 1024 * 1024));
      offered += 1024 * 1024;
    }
    expect(await closesWithin(closed, 5_000)).toBe(true);
    const after = process.memoryUsage();
    const grownMiB = (after.rss - before.rss) / (1024 * 1024);
    console.log(
      `oversize: offered ${offered / (1024 * 1024)} MiB after a 4 GiB header; the node closed the connection; ` +
        `rss ${(before.rss / 2 ** 20).toFixed(0)} → ${(after.rss / 2 ** 20).toFixed(0)} MiB, ` +
        `arrayBuffers ${(before.arrayBuffers / 2 ** 20).toFixed(0)} → ${(after.arrayBuffers / 2 ** 20).toFixed(0)} MiB`,
    );
    // The node (in this process) never held the announced frame: growth stays far below 4 GiB and
    // below even the torrent it was offered (allocated before the first reading).
    expect(grownMiB).toBeLessThan(48);
    await bystanderPublishes();
  });

  it('a client request over the 1 MiB request limit is OVERSIZE, and the session goes on', async () => {
    const peer = await net.dial('node1', net.connectorKey('org3'));
    try {
      expect(
        await codeOf(peer.request('publish', { group: GROUP, request: randomBytes(2 * 1024 * 1024) })),
      ).toBe('OVERSIZE');
      expect(await codeOf(peer.request('status', {}))).toBe('OK');
    } finally {
      peer.close();
    }
    await bystanderPublishes();
  });
});

describe("oversize messages on a connector's REST API", () => {
  it('refuses a batch body over 16 MiB with OVERSIZE and a message over the topic policy with MESSAGE_REJECTED', async () => {
    const offsetBefore = await net.nextOffset(bystander);
    const huge = JSON.stringify({
      messages: [{ value: Buffer.alloc(13 * 1024 * 1024).toString('base64'), to: ['org2'] }],
    });
    const batch = await fetch(`${api.url}/v1/topics/demo/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: huge,
    });
    expect(batch.status).toBeGreaterThanOrEqual(400);
    expect(batch.status).toBeLessThan(500);
    expect(((await batch.json()) as { error: { code: string } }).error.code).toBe('OVERSIZE');

    const streamed = await fetch(`${api.url}/v1/topics/demo/messages?to=org2`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: Readable.toWeb(Readable.from([randomBytes(1024 * 1024 + 1)])) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(422);
    const error = ((await streamed.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('MESSAGE_REJECTED');
    expect(error.message).toMatch(/MESSAGE_TOO_LARGE/);
    expect(await net.nextOffset(bystander)).toBe(offsetBefore);
  });
});
