/**
 * Mutually authenticated links between known peers: TLS 1.3 only, each side presenting a
 * self-signed certificate for its Ed25519 identity key, and each side checking the OTHER's key
 * against the one it expects (public-key pinning) instead of trusting a certificate authority.
 *
 * Pinning the key is the whole authentication, and it is enough: the TLS 1.3 handshake makes each
 * side sign the transcript with the private key of the certificate it presents (CertificateVerify)
 * and checks that signature even when chain validation is off, so a peer that presents key K holds
 * K's private key. Names, dates and issuers in the certificates are never trusted, hence
 * `rejectUnauthorized: false` with our own check right after the handshake.
 *
 * After the handshake the server sends one link status frame: accepted, or refused followed by the
 * close. The client resolves `connectFramed` only on "accepted", so a client whose key the server
 * does not know gets PEER_NOT_AUTHORIZED rather than a connection that dies a moment later. Every
 * later frame belongs to the application.
 */
import { Buffer } from 'node:buffer';
import { createSecureContext, createServer, connect } from 'node:tls';
import type { SecureContext, Server, TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { bytesEqual, toHex } from '../codec/index.js';
import type { SigningKeyPair } from '../crypto/keys.js';
import { FramedConnection } from './framed-connection.js';
import { FrameDecoder, checkFrameBytesMax, defaultFrameBytesMax, encodeFrame } from './frames.js';
import { publicKeyOfCertificate, tlsIdentityFor } from './tls-identity.js';
import type { TlsIdentity } from './tls-identity.js';

export interface ListenFramedOptions {
  readonly host: string;
  /** 0 picks a free port; read it from `FramedServer.port`. */
  readonly port: number;
  readonly identity: SigningKeyPair;
  /** Largest frame payload accepted from clients (default 16 MiB). */
  readonly frameBytesMax?: number;
  /** The peer's name if `peerPublicKey` may connect, undefined to refuse it. */
  authorize(peerPublicKey: Uint8Array): string | undefined;
  /** Called with each accepted connection; it should call `onFrame` to start reading. */
  onConnection(connection: FramedConnection): void;
  /** Told about each refused client, for logging; the client has already been sent away. */
  onRefused?(error: LedgerbusError): void;
  /**
   * Open sockets at most, handshakes included (default `defaultConnectionsMax`): past it new TCP
   * connections are closed on accept, so a flood of handshakes cannot exhaust descriptors.
   */
  readonly connectionsMax?: number;
}

export const defaultConnectionsMax = 4096;

export interface FramedServer {
  readonly port: number;
  readonly address: string;
  /** Stops accepting, destroys every open connection (and handshake), and resolves once closed. */
  close(): Promise<void>;
}

export interface ConnectFramedOptions {
  readonly host: string;
  readonly port: number;
  readonly identity: SigningKeyPair;
  /** The server's raw Ed25519 key: any other key is refused with PEER_NOT_AUTHORIZED. */
  readonly expectedPublicKey: Uint8Array;
  /** The `peerName` of the connection (default: the hex of `expectedPublicKey`). */
  readonly peerName?: string;
  /** Largest frame payload accepted from the server (default 16 MiB). */
  readonly frameBytesMax?: number;
  /** Time allowed for TCP, TLS and the server's decision together (default 10 s). */
  readonly timeoutMs?: number;
}

const tlsVersion = 'TLSv1.3';
const defaultConnectTimeoutMs = 10_000;
// Bounds how long a client that connects and stalls mid-handshake can hold a socket on the server.
const handshakeTimeoutMs = 10_000;
// A refused client gets this long to read the refusal before its socket is destroyed.
const refusalLingerMs = 2_000;
const statusAccepted = 0x01;
const statusRefused = 0x00;

/**
 * Listens for framed connections. Each client must complete a TLS 1.3 handshake with a certificate
 * holding an Ed25519 key that `authorize` accepts; refused clients are disconnected before any of
 * their frames is read, and `onConnection` only ever sees accepted ones.
 */
export async function listenFramed(options: ListenFramedOptions): Promise<FramedServer> {
  const frameBytesMax = options.frameBytesMax ?? defaultFrameBytesMax;
  checkFrameBytesMax(frameBytesMax);
  const identity = await cachedTlsIdentity(options.identity);
  const server = createServer({
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: tlsVersion,
    maxVersion: tlsVersion,
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: handshakeTimeoutMs,
  });
  // Raw TCP sockets, tracked from accept so close() also ends connections still in the handshake.
  const sockets = new Set<Socket>();
  server.maxConnections = options.connectionsMax ?? defaultConnectionsMax;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', (socket: TLSSocket) => admit(socket, options, frameBytesMax));
  // A failed handshake (TLS 1.2 client, no common cipher, timeout) has already been answered with a
  // TLS alert and its socket destroyed; there is no peer identity to report.
  server.on('tlsClientError', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new LedgerbusError(ErrorCode.BadConfig, `cannot listen on ${options.host}:${options.port}`);
  }
  return {
    port: address.port,
    address: address.address,
    close: () => closeServer(server, sockets),
  };
}

/**
 * Opens a framed connection to the server whose Ed25519 key is `expectedPublicKey`. Rejects with
 * PEER_NOT_AUTHORIZED if the server presents another key or refuses ours, TIMEOUT (retriable) after
 * `timeoutMs`, and CONNECTION_CLOSED (retriable) if the connection fails or closes first.
 */
export async function connectFramed(options: ConnectFramedOptions): Promise<FramedConnection> {
  const frameBytesMax = options.frameBytesMax ?? defaultFrameBytesMax;
  checkFrameBytesMax(frameBytesMax);
  const timeoutMs = options.timeoutMs ?? defaultConnectTimeoutMs;
  const identity = await cachedTlsIdentity(options.identity);
  const target = `${options.host}:${options.port}`;
  const peerName = options.peerName ?? toHex(options.expectedPublicKey);

  return new Promise<FramedConnection>((resolve, reject) => {
    let settled = false;
    const socket = connect({
      host: options.host,
      port: options.port,
      secureContext: clientContext(identity),
      rejectUnauthorized: false,
    });
    const decoder = new FrameDecoder({ frameBytesMax });

    const fail = (error: LedgerbusError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const onError = (error: Error): void =>
      fail(
        new LedgerbusError(ErrorCode.ConnectionClosed, `cannot connect to ${target}: ${error.message}`, {
          retriable: true,
          cause: error,
        }),
      );
    const onClose = (): void =>
      fail(
        new LedgerbusError(ErrorCode.ConnectionClosed, `${target} closed the connection during setup`, {
          retriable: true,
        }),
      );
    const onData = (chunk: Buffer): void => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        fail(error as LedgerbusError);
        return;
      }
      const status = frames[0];
      if (status === undefined) return;
      if (status.length === 1 && status[0] === statusRefused) {
        fail(
          new LedgerbusError(
            ErrorCode.PeerNotAuthorized,
            `${target} refused our key ${toHex(options.identity.publicKey)}: it is not registered there`,
          ),
        );
        return;
      }
      if (status.length !== 1 || status[0] !== statusAccepted) {
        fail(new LedgerbusError(ErrorCode.MalformedEncoding, `${target} sent no valid link status`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      const peer = { publicKey: options.expectedPublicKey, name: peerName };
      resolve(new FramedConnection(socket, decoder, peer, frames.slice(1)));
    };
    const timer = setTimeout(
      () =>
        fail(
          new LedgerbusError(ErrorCode.Timeout, `connecting to ${target} took over ${timeoutMs} ms`, {
            retriable: true,
          }),
        ),
      timeoutMs,
    );

    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once('secureConnect', () => {
      // Checked before we send a single byte of application data.
      let serverKey: Uint8Array;
      try {
        serverKey = peerKeyOf(socket);
      } catch (error) {
        fail(error as LedgerbusError);
        return;
      }
      if (!bytesEqual(serverKey, options.expectedPublicKey)) {
        fail(
          new LedgerbusError(
            ErrorCode.PeerNotAuthorized,
            `${target} presented key ${toHex(serverKey)}, expected ${toHex(options.expectedPublicKey)}`,
          ),
        );
        return;
      }
      socket.setNoDelay(true);
      socket.on('data', onData);
    });
  });
}

function admit(socket: TLSSocket, options: ListenFramedOptions, frameBytesMax: number): void {
  socket.pause();
  socket.setNoDelay(true);
  // Until a FramedConnection owns the socket, errors (say, a reset) only need to not crash us.
  socket.on('error', () => {});
  let peerKey: Uint8Array;
  let name: string | undefined;
  try {
    peerKey = peerKeyOf(socket);
    name = options.authorize(peerKey);
  } catch (error) {
    refuse(socket, options, error as Error);
    return;
  }
  if (name === undefined) {
    const error = new LedgerbusError(
      ErrorCode.PeerNotAuthorized,
      `peer key ${toHex(peerKey)} is not registered`,
    );
    refuse(socket, options, error);
    return;
  }
  socket.write(encodeFrame(Buffer.of(statusAccepted)));
  const decoder = new FrameDecoder({ frameBytesMax });
  options.onConnection(new FramedConnection(socket, decoder, { publicKey: peerKey, name }, []));
}

function refuse(socket: TLSSocket, options: ListenFramedOptions, error: Error): void {
  socket.end(encodeFrame(Buffer.of(statusRefused)));
  setTimeout(() => socket.destroy(), refusalLingerMs).unref();
  const refusal =
    error instanceof LedgerbusError
      ? error
      : new LedgerbusError(ErrorCode.PeerNotAuthorized, `authorizing a peer failed: ${error.message}`, {
          cause: error,
        });
  options.onRefused?.(refusal);
}

/** The peer's Ed25519 key from its certificate; PEER_NOT_AUTHORIZED if it sent none. */
function peerKeyOf(socket: TLSSocket): Uint8Array {
  const certificate = socket.getPeerX509Certificate();
  if (certificate === undefined) {
    throw new LedgerbusError(ErrorCode.PeerNotAuthorized, 'peer presented no certificate');
  }
  return publicKeyOfCertificate(certificate.raw);
}

async function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of sockets) socket.destroy();
  await closed;
}

// Building a certificate costs a few signatures; one per identity key serves every connection.
const tlsIdentities = new WeakMap<SigningKeyPair, Promise<TlsIdentity>>();

// One per identity, held weakly: it goes with its identity.
const clientContexts = new WeakMap<TlsIdentity, SecureContext>();

/**
 * The client side's TLS context of `identity`, made once: given key and certificate PEMs, every
 * `connect` would parse them into a new context, a cost each bulk connection paid again.
 */
function clientContext(identity: TlsIdentity): SecureContext {
  let context = clientContexts.get(identity);
  if (context === undefined) {
    context = createSecureContext({
      key: identity.keyPem,
      cert: identity.certPem,
      minVersion: tlsVersion,
      maxVersion: tlsVersion,
    });
    clientContexts.set(identity, context);
  }
  return context;
}

function cachedTlsIdentity(key: SigningKeyPair): Promise<TlsIdentity> {
  let identity = tlsIdentities.get(key);
  if (identity === undefined) {
    identity = tlsIdentityFor(key, `ledgerbus ${toHex(key.publicKey).slice(0, 16)}`);
    tlsIdentities.set(key, identity);
    // A failure is not cached: the next call tries again.
    identity.catch(() => tlsIdentities.delete(key));
  }
  return identity;
}
