/**
 * The network transport: TLS 1.3 links pinned by Ed25519 key, length-prefixed frames, and RPC
 * (requests, notifications, byte streams) over one link.
 */
export { FramedConnection } from './framed-connection.js';
export { FrameDecoder, defaultFrameBytesMax, encodeFrame } from './frames.js';
export { connectFramed, listenFramed } from './link.js';
export type { ConnectFramedOptions, FramedServer, ListenFramedOptions } from './link.js';
export { RpcPeer } from './rpc.js';
export type { RpcContext, RpcHandler, RpcNotifyHandler, RpcPeerOptions, RpcStreamResponse } from './rpc.js';
export { RpcStreamReply, rpcStream } from './rpc-stream.js';
export { publicKeyOfCertificate, tlsIdentityFor } from './tls-identity.js';
export type { TlsIdentity } from './tls-identity.js';
