// Fabric's CVE class of malformed messages crashing peers and orderers (CVE-2021-43669: a message
// with an invalid header crashes orderers; CVE-2022-31121: a malformed consensus request crashes an
// orderer; CVE-2022-36023: a malformed gateway request crashes a peer) and DESIGN §10
// ("bad input gets a clear error with a stable code and changes nothing: malformed frames…"); the
// "invalid transactions" of BlockTorrent Table 2, row 3, at the transport rather than the contract.
//
// Shows, against node1 over real TLS 1.3 with a registered connector key (the attacker is inside the
// consortium): an HTTP request, non-CBOR in a valid frame, non-canonical CBOR, CBOR of the wrong
// shape, a truncated stream-data frame, and a truncated frame followed by a close each end that
// connection (the link cannot be trusted to be in frame any more); a well-framed request with an
// unknown method or a body of the wrong schema gets UNKNOWN_METHOD / SCHEMA_MISMATCH and the
// connection keeps serving; after all of it node1 still serves a well-behaved client (status and a
// committed publish). On the connector's REST API, malformed JSON, wrong-schema bodies, missing
// recipients and a missing token get 4xx with a stable code.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../src/codec/index.js';
import { startHttpApi } from '../../src/connector/http-api.js';
import type { HttpApiServer } from '../../src/connector/http-api.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import type { RpcPeer } from '../../src/net/index.js';
import {
  SecurityNetwork,
  clientRequest,
  closesWithin,
  codeOf,
  frame,
  metadataOf,
  publishRaw,
  randomId,
  rawLink,
} from './support.js';

const net = new SecurityNetwork({ name: 'malformed', basePort: 24680 });
const token = randomBytes(24).toString('base64url');
let api: HttpApiServer;

beforeAll(async () => {
  await net.startNodes();
  const connector = await net.startConnector('org1');
  api = await startHttpApi({ api: connector, host: '127.0.0.1', port: 0, token, closeGraceMs: 500 });
}, 60_000);

afterAll(async () => {
  await api?.close();
  await net.stop();
}, 60_000);

/** A publish by org2 through node1 that must commit: the node still does its job. */
async function wellBehavedPublish(): Promise<void> {
  const peer = await net.dial('node1', net.connectorKey('org2'));
  try {
    const key = net.signer('org2');
    const operation = encodePublish(
      {
        sender: 'org2',
        nonce: randomBytes(16),
        timestamp: Date.now(),
        messages: [metadataOf(randomId('after-garbage'), { recipients: ['org3'] })],
      },
      key,
    );
    const { result } = await publishRaw(peer, clientRequest(operation, key));
    expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
  } finally {
    peer.close();
  }
}

describe('malformed input on a node link (after the TLS handshake)', () => {
  const closing: [string, Buffer][] = [
    ['an HTTP request instead of frames', Buffer.from('GET / HTTP/1.1\r\nHost: node1\r\n\r\n')],
    ['a valid frame holding non-CBOR bytes', frame(Buffer.from([0x1c, 0xff, 0x00, 0x13, 0x37]))],
    ['a frame of random bytes', frame(Buffer.concat([Buffer.from([0x5f]), randomBytes(256)]))],
    // An indefinite-length map: well-formed CBOR, but not the canonical form every message must have.
    [
      'non-canonical CBOR',
      frame(
        Buffer.concat([
          Buffer.from([0xbf, 0x64]),
          Buffer.from('type'),
          Buffer.from([0x64]),
          Buffer.from('ping'),
          Buffer.from([0xff]),
        ]),
      ),
    ],
    [
      'CBOR of the wrong shape',
      frame(
        Buffer.from(encodeCanonical({ type: 'request', id: 'one', method: 7, body: null, stream: 'no' })),
      ),
    ],
    ['a truncated stream-data frame', frame(Buffer.from([0xff, 0x00, 0x01]))],
  ];

  for (const [what, bytes] of closing) {
    it(`${what}: the node closes that connection`, async () => {
      const { socket, closed } = await rawLink(net.node('node1'), net.connectorKey('org3'));
      const answered: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => answered.push(chunk));
      socket.write(bytes);
      expect(await closesWithin(closed, 5_000)).toBe(true);
      // Nothing is answered: a peer that lost the framing gets no reply it could misread.
      expect(Buffer.concat(answered)).toHaveLength(0);
    });
  }

  it('a truncated frame and then a close: the node drops the partial frame and carries on', async () => {
    const { socket, closed } = await rawLink(net.node('node1'), net.connectorKey('org3'));
    const request = Buffer.from(
      encodeCanonical({ type: 'request', id: 0, method: 'status', body: {}, stream: false }),
    );
    socket.end(frame(request).subarray(0, 4 + Math.floor(request.length / 2)));
    expect(await closesWithin(closed, 5_000)).toBe(true);
    const peer = await net.dial('node1', net.connectorKey('org3'));
    expect(await codeOf(peer.request('status', {}))).toBe('OK');
    peer.close();
  });

  it('an unknown method or a body of the wrong schema gets a stable code, and the connection keeps serving', async () => {
    const peer: RpcPeer = await net.dial('node1', net.connectorKey('org3'));
    try {
      expect(await codeOf(peer.request('deleteEverything', { please: true }))).toBe('UNKNOWN_METHOD');
      expect(await codeOf(peer.request('publish', { group: 7, request: 'not bytes' }))).toBe(
        'SCHEMA_MISMATCH',
      );
      expect(await codeOf(peer.request('publish', ['not', 'a', 'map']))).toBe('SCHEMA_MISMATCH');
      expect(await codeOf(peer.request('poll', { group: 'demo/0', fromOffset: -1 }))).toBe('SCHEMA_MISMATCH');
      expect(await codeOf(peer.request('publish', { group: 'demo/0', request: randomBytes(64) }))).toBe(
        'MALFORMED_ENCODING',
      );
      expect(await codeOf(peer.request('publish', { group: 'nope/9', request: randomBytes(64) }))).toBe(
        'WRONG_GROUP',
      );
      expect(
        await codeOf(peer.request('fetchPayload', { group: 'demo/0', fetchRequest: randomBytes(80) })),
      ).toMatch(/^(MALFORMED_ENCODING|SCHEMA_MISMATCH)$/);
      expect(await codeOf(peer.request('admin', { transaction: randomBytes(90) }))).toMatch(
        /^(MALFORMED_ENCODING|SCHEMA_MISMATCH)$/,
      );
      expect(await codeOf(peer.request('status', {}))).toBe('OK');
    } finally {
      peer.close();
    }
  });

  it('after all of it, node1 still serves a well-behaved client', async () => {
    await wellBehavedPublish();
  });
});

describe("malformed requests to a connector's REST API", () => {
  const call = async (
    path: string,
    body: string,
    headers: Record<string, string> = { 'content-type': 'application/json' },
    authorized = true,
  ): Promise<{ status: number; code: unknown }> => {
    const response = await fetch(`${api.url}${path}`, {
      method: 'POST',
      headers: { ...headers, ...(authorized ? { authorization: `Bearer ${token}` } : {}) },
      body,
    });
    const json = (await response.json()) as { error?: { code?: unknown } };
    return { status: response.status, code: json.error?.code };
  };

  it('answers 4xx with a stable code, and sends nothing', async () => {
    const offsetBefore = await (async () => {
      const peer = await net.dial('node1', net.connectorKey('org1'));
      try {
        return await net.nextOffset(peer);
      } finally {
        peer.close();
      }
    })();
    expect(await call('/v1/topics/demo/batch', '{"messages": [')).toEqual({
      status: 400,
      code: 'MALFORMED_ENCODING',
    });
    expect(await call('/v1/topics/demo/batch', '')).toEqual({ status: 400, code: 'MALFORMED_ENCODING' });
    expect(await call('/v1/topics/demo/batch', '{"messages":[{"value":5,"to":"org2"}]}')).toEqual({
      status: 400,
      code: 'SCHEMA_MISMATCH',
    });
    expect(await call('/v1/topics/demo/batch', '{"messages":[{"value":"!!!","to":["org2"]}]}')).toMatchObject(
      {
        status: 400,
      },
    );
    expect(await call('/v1/topics/demo/batch', '{"messages":[],"extra":true}')).toEqual({
      status: 400,
      code: 'SCHEMA_MISMATCH',
    });
    expect(await call('/v1/admin', '{"kind":"formatDisks"}')).toEqual({
      status: 400,
      code: 'SCHEMA_MISMATCH',
    });
    expect(
      await call('/v1/topics/demo/messages', 'payload', { 'content-type': 'application/octet-stream' }),
    ).toEqual({
      status: 400,
      code: 'SCHEMA_MISMATCH',
    });
    expect(
      await call('/v1/topics/demo/batch', '{"messages":[]}', { 'content-type': 'application/json' }, false),
    ).toEqual({
      status: 401,
      code: 'UNAUTHORIZED',
    });
    const peer = await net.dial('node1', net.connectorKey('org1'));
    try {
      expect(await net.nextOffset(peer)).toBe(offsetBefore);
    } finally {
      peer.close();
    }
  });
});
