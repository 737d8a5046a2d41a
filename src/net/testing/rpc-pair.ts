import { RpcPeer } from '../rpc.js';
import type { RpcPeerOptions } from '../rpc.js';
import { openLinkPair } from './link-pair.js';
import type { LinkPair } from './link-pair.js';

/** An RpcPeer at each end of a real TLS link. */
export interface RpcPair {
  readonly link: LinkPair;
  /** The serving end (the TLS server side). */
  readonly server: RpcPeer;
  /** The calling end (the TLS client side). */
  readonly client: RpcPeer;
  close(): Promise<void>;
}

export async function openRpcPair(
  options: { server?: RpcPeerOptions; client?: RpcPeerOptions; frameBytesMax?: number } = {},
): Promise<RpcPair> {
  const link = await openLinkPair({ frameBytesMax: options.frameBytesMax });
  const server = new RpcPeer(link.accepted, options.server);
  const client = new RpcPeer(link.connected, options.client);
  return {
    link,
    server,
    client,
    close: async () => {
      client.close();
      await link.server.close();
    },
  };
}
