import { Buffer } from 'node:buffer';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../crypto/keys.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { FramedConnection } from './framed-connection.js';
import { encodeFrame } from './frames.js';
import { connectFramed, listenFramed } from './link.js';
import type { FramedServer } from './link.js';
import { openLinkPair } from './testing/link-pair.js';
import { tlsIdentityFor } from './tls-identity.js';

const servers: FramedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

function nextFrames(connection: FramedConnection, count: number): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const frames: Buffer[] = [];
    connection.onFrame((frame) => {
      frames.push(frame);
      if (frames.length === count) resolve(frames);
    });
  });
}

/** Polls `condition` every 10 ms; fails after `timeoutMs`, far beyond any scheduling delay. */
async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function closeOf(connection: FramedConnection): Promise<Error | undefined> {
  return new Promise((resolve) => connection.onClose(resolve));
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

describe('TLS links pinned by Ed25519 key', () => {
  it('authenticates both ends and carries frames both ways', async () => {
    const pair = await openLinkPair();
    servers.push(pair.server);
    expect(pair.accepted.peerName).toBe('client');
    expect(Buffer.from(pair.accepted.peerPublicKey).equals(Buffer.from(pair.clientKey.publicKey))).toBe(true);
    expect(pair.connected.peerName).toBe('server');
    expect(Buffer.from(pair.connected.peerPublicKey).equals(Buffer.from(pair.serverKey.publicKey))).toBe(
      true,
    );

    const atServer = nextFrames(pair.accepted, 2);
    pair.connected.send(Buffer.from('ping'));
    pair.connected.send(Buffer.alloc(0));
    expect((await atServer).map(String)).toEqual(['ping', '']);
    const atClient = nextFrames(pair.connected, 1);
    pair.accepted.send(Buffer.from('pong'));
    expect((await atClient).map(String)).toEqual(['pong']);

    const closed = closeOf(pair.accepted);
    pair.connected.close();
    expect(await closed).toBeUndefined();
    expect(pair.accepted.closed).toBe(true);
  });

  it('refuses a client whose key is not registered, before reading any frame', async () => {
    const serverKey = generateSigningKey();
    const refusals: LedgerbusError[] = [];
    let accepted = 0;
    const server = await listenFramed({
      host: '127.0.0.1',
      port: 0,
      identity: serverKey,
      authorize: () => undefined,
      onConnection: () => accepted++,
      onRefused: (error) => refusals.push(error),
    });
    servers.push(server);
    const error = await rejection(
      connectFramed({
        host: '127.0.0.1',
        port: server.port,
        identity: generateSigningKey(),
        expectedPublicKey: serverKey.publicKey,
      }),
    );
    expect(error.code).toBe(ErrorCode.PeerNotAuthorized);
    expect(error.message).toMatch(/refused our key/);
    expect(accepted).toBe(0);
    expect(refusals.map((refusal) => refusal.code)).toEqual([ErrorCode.PeerNotAuthorized]);
  });

  it('refuses a server that does not hold the pinned key', async () => {
    let accepted = 0;
    const server = await listenFramed({
      host: '127.0.0.1',
      port: 0,
      identity: generateSigningKey(),
      authorize: () => 'anyone',
      onConnection: () => accepted++,
    });
    servers.push(server);
    const error = await rejection(
      connectFramed({
        host: '127.0.0.1',
        port: server.port,
        identity: generateSigningKey(),
        expectedPublicKey: generateSigningKey().publicKey,
      }),
    );
    expect(error.code).toBe(ErrorCode.PeerNotAuthorized);
    expect(error.message).toMatch(/presented key/);
  });

  it('refuses a client that offers only TLS 1.2', async () => {
    let accepted = 0;
    const server = await listenFramed({
      host: '127.0.0.1',
      port: 0,
      identity: generateSigningKey(),
      authorize: () => 'anyone',
      onConnection: () => accepted++,
    });
    servers.push(server);
    const clientKey = generateSigningKey();
    const { certPem, keyPem } = await tlsIdentityFor(clientKey, 'old client');
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port: server.port,
        key: keyPem,
        cert: certPem,
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.2',
        rejectUnauthorized: false,
      });
      socket.on('secureConnect', () => resolve('connected'));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    expect(outcome).toMatch(/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
    expect(accepted).toBe(0);
  });

  it('refuses, as a client, a server that speaks only TLS 1.2 (the cached client context keeps 1.3 only)', async () => {
    const serverKey = generateSigningKey();
    const { certPem, keyPem } = await tlsIdentityFor(serverKey, 'old server');
    const old = createServer({ key: keyPem, cert: certPem, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    old.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
    try {
      const port = (old.address() as AddressInfo).port;
      const identity = generateSigningKey();
      // Twice with one identity: the second connection uses the context the first one cached.
      for (let attempt = 0; attempt < 2; attempt++) {
        const error = await rejection(
          connectFramed({ host: '127.0.0.1', port, identity, expectedPublicKey: serverKey.publicKey }),
        );
        expect(error.code).toBe(ErrorCode.ConnectionClosed);
      }
    } finally {
      await new Promise((resolve) => old.close(resolve));
    }
  });

  it('closes the connection when the peer sends an oversize frame', async () => {
    const pair = await openLinkPair({ serverFrameBytesMax: 1024 });
    servers.push(pair.server);
    const frames: Buffer[] = [];
    pair.accepted.onFrame((frame) => frames.push(frame));
    const closed = closeOf(pair.accepted);
    const clientClosed = closeOf(pair.connected);
    pair.connected.send(Buffer.alloc(1024));
    pair.connected.send(Buffer.alloc(1025));
    pair.connected.send(Buffer.from('never delivered'));
    const error = await closed;
    expect(error).toBeInstanceOf(LedgerbusError);
    expect((error as LedgerbusError).code).toBe(ErrorCode.Oversize);
    expect(frames).toHaveLength(1);
    await clientClosed;
    expect(pair.connected.closed).toBe(true);
  });

  it('refuses to send a frame above the limit', async () => {
    const pair = await openLinkPair({ frameBytesMax: 1024 });
    servers.push(pair.server);
    expect(() => pair.connected.send(Buffer.alloc(1025))).toThrow(LedgerbusError);
    pair.connected.close();
  });

  it('delivers 10,000 small frames and one 8 MiB frame intact and in order', async () => {
    const pair = await openLinkPair();
    servers.push(pair.server);
    const count = 10_000;
    const large = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < large.length; i += 4) large.writeUInt32BE(i, i);
    const received = nextFrames(pair.accepted, count + 1);
    for (let i = 0; i < count; i++) {
      const frame = Buffer.alloc(8);
      frame.writeUInt32BE(i, 0);
      frame.writeUInt32BE(i * 7, 4);
      if (i === count / 2) pair.connected.send(large);
      pair.connected.send(frame);
    }
    const frames = await received;
    const small = frames.filter((frame) => frame.length === 8);
    expect(small).toHaveLength(count);
    small.forEach((frame, i) => {
      expect(frame.readUInt32BE(0)).toBe(i);
      expect(frame.readUInt32BE(4)).toBe(i * 7);
    });
    expect(frames.findIndex((frame) => frame.length === large.length)).toBe(count / 2);
    expect(frames[count / 2]!.equals(large)).toBe(true);
    pair.connected.close();
  });

  it('holds frames while paused, even the rest of one network read, and hands them over in order on resume', async () => {
    // The client is a raw TLS socket with a registered key, so that frames a, b and c go out in ONE
    // write: one TLS record, one read at the server. The handler pauses at a; a connection that
    // kept delivering would hand b and c over in that same read, before `firstFrame` settles. So
    // no sleep is needed to give a wrong delivery the chance to show: it would already have
    // happened when the test looks.
    const serverKey = generateSigningKey();
    const clientKey = generateSigningKey();
    let accept!: (connection: FramedConnection) => void;
    const acceptedConnection = new Promise<FramedConnection>((resolve) => (accept = resolve));
    const server = await listenFramed({
      host: '127.0.0.1',
      port: 0,
      identity: serverKey,
      authorize: (key) => (Buffer.from(key).equals(Buffer.from(clientKey.publicKey)) ? 'client' : undefined),
      onConnection: accept,
    });
    servers.push(server);
    const { certPem, keyPem } = await tlsIdentityFor(clientKey, 'client');
    const socket = connect({
      host: '127.0.0.1',
      port: server.port,
      key: keyPem,
      cert: certPem,
      minVersion: 'TLSv1.3',
      rejectUnauthorized: false,
    });
    try {
      await new Promise<void>((resolve, reject) =>
        socket.once('secureConnect', resolve).once('error', reject),
      );
      const accepted = await acceptedConnection;
      const frames: string[] = [];
      let firstFrame!: () => void;
      const first = new Promise<void>((resolve) => (firstFrame = resolve));
      accepted.onFrame((frame) => {
        frames.push(String(frame));
        if (frames.length === 1) {
          accepted.pause();
          firstFrame();
        }
      });
      socket.write(Buffer.concat(['a', 'b', 'c'].map((text) => encodeFrame(Buffer.from(text)))));
      await first;
      expect(frames).toEqual(['a']);
      accepted.resume();
      await until(() => frames.length >= 3, 'the held frames after resume');
      expect(frames).toEqual(['a', 'b', 'c']);
      // And reading goes on after resume: a frame sent now arrives too.
      socket.write(encodeFrame(Buffer.from('d')));
      await until(() => frames.length >= 4, 'a frame sent after resume');
      expect(frames).toEqual(['a', 'b', 'c', 'd']);
    } finally {
      socket.destroy();
    }
  });

  it('destroys open connections when the server closes', async () => {
    const pair = await openLinkPair();
    const closed = closeOf(pair.connected);
    await pair.server.close();
    await closed;
    expect(pair.connected.closed).toBe(true);
    expect(() => pair.connected.send(Buffer.from('late'))).toThrow(/closed/);
  });
});
