import { generateSigningKey } from '../../crypto/keys.js';
import type { SigningKeyPair } from '../../crypto/keys.js';
import type { FramedConnection } from '../framed-connection.js';
import { connectFramed, listenFramed } from '../link.js';
import type { FramedServer } from '../link.js';

/** Two ends of one real TLS link on 127.0.0.1, plus the server to close when done. */
export interface LinkPair {
  readonly server: FramedServer;
  readonly serverKey: SigningKeyPair;
  readonly clientKey: SigningKeyPair;
  /** The server's end of the link. */
  readonly accepted: FramedConnection;
  /** The client's end of the link. */
  readonly connected: FramedConnection;
}

/**
 * Listens on a free port, connects one client that the server knows as "client" (and the client as
 * "server"), and returns both ends.
 */
export async function openLinkPair(
  options: { frameBytesMax?: number; serverFrameBytesMax?: number } = {},
): Promise<LinkPair> {
  const serverKey = generateSigningKey();
  const clientKey = generateSigningKey();
  let acceptedResolve!: (connection: FramedConnection) => void;
  const acceptedPromise = new Promise<FramedConnection>((resolve) => (acceptedResolve = resolve));
  const server = await listenFramed({
    host: '127.0.0.1',
    port: 0,
    identity: serverKey,
    frameBytesMax: options.serverFrameBytesMax ?? options.frameBytesMax,
    authorize: (key) => (Buffer.from(key).equals(Buffer.from(clientKey.publicKey)) ? 'client' : undefined),
    onConnection: acceptedResolve,
  });
  const connected = await connectFramed({
    host: '127.0.0.1',
    port: server.port,
    identity: clientKey,
    expectedPublicKey: serverKey.publicKey,
    peerName: 'server',
    frameBytesMax: options.frameBytesMax,
  });
  const accepted = await acceptedPromise;
  return { server, serverKey, clientKey, accepted, connected };
}
