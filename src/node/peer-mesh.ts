/**
 * Consensus links between nodes: ONE connection per pair of nodes, dialled by the node whose id sorts
 * first and announced with a `hello`, carrying every group's PBFT messages and forwarded client
 * requests as one-way notifications. PBFT tolerates loss, so a message for a peer that is down, or
 * whose socket buffer is full, is dropped rather than queued without bound; the status exchange of
 * the core retransmits what matters. Bulk payload relays never use these connections (see
 * ClientService), so a large transfer cannot delay consensus.
 */
import type { CborValue } from '../codec/index.js';
import type { SigningKeyPair } from '../crypto/index.js';
import { RpcPeer, connectFramed } from '../net/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { NetworkRegistry } from '../registry/types.js';
import type { Logger } from '../runtime/logger.js';

export interface PeerMeshOptions {
  readonly selfId: string;
  readonly key: SigningKeyPair;
  readonly registry: NetworkRegistry;
  readonly logger: Logger;
  readonly onConsensus: (groupId: string, bytes: Uint8Array) => void;
  readonly onForwardedRequest: (groupId: string, bytes: Uint8Array) => void;
  /** Raft messages of the registry groups (__system, topic groups). */
  readonly onRaft: (groupId: string, bytes: Uint8Array) => void;
  /** Request handlers another node may call over the consensus link. */
  readonly handlers?: Readonly<
    Record<string, (body: CborValue, peerId: string) => Promise<CborValue> | CborValue>
  >;
  readonly redialMs?: number;
  /** Addresses to dial some peers at instead of their registered ones (node id → host:port). */
  readonly peerAddresses?: Readonly<Record<string, string>>;
}

const consensusChannel = 'pbft';
const requestChannel = 'request';
const raftChannel = 'raft';

export class PeerMesh {
  /** At most one consensus link per registered peer node, removed when it closes. */
  private readonly links = new Map<string, RpcPeer>();
  /** Dials under way: at most one per peer node. */
  private readonly dialing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: PeerMeshOptions) {}

  /** Where to dial `node`: its configured override, else its registered address. */
  addressOf(node: { readonly id: string; readonly host: string; readonly port: number }): {
    host: string;
    port: number;
  } {
    const override = this.options.peerAddresses?.[node.id];
    if (override === undefined) return { host: node.host, port: node.port };
    const colon = override.lastIndexOf(':');
    return { host: override.slice(0, colon), port: Number(override.slice(colon + 1)) };
  }

  /** This node's key, for the bulk connections other services open to peers. */
  get identity(): SigningKeyPair {
    return this.options.key;
  }

  /** Every other registered node: all of them follow __system, so every pair shares a link. */
  private peers(): string[] {
    return this.options.registry
      .nodes()
      .map((node) => node.id)
      .filter((id) => id !== this.options.selfId)
      .sort();
  }

  start(): void {
    const dialAll = (): void => {
      for (const peer of this.peers()) {
        if (this.options.selfId < peer && !this.links.has(peer)) void this.dial(peer);
      }
    };
    dialAll();
    this.timer = setInterval(dialAll, this.options.redialMs ?? 500);
  }

  /** An inbound connection from node `peerId`; it becomes the consensus link once it says hello. */
  accept(peerId: string, peer: RpcPeer): void {
    peer.handle('hello', (body) => {
      if (
        typeof body !== 'object' ||
        body === null ||
        (body as Record<string, CborValue>)['purpose'] !== 'consensus'
      ) {
        return { ok: true };
      }
      // Raft messages ride this link unsigned, authenticated by the pinned key alone: a node that
      // reuses its key in another network must not feed this one's Raft groups.
      const network = (body as Record<string, CborValue>)['network'];
      if (network !== this.options.registry.network) {
        this.options.logger.warn({ peer: peerId, network }, 'refused a consensus link from another network');
        // Closed once the refusal is on its way, so the peer learns why.
        setTimeout(() => peer.close(), 100);
        throw new LedgerbusError(
          ErrorCode.WrongNetwork,
          `this node is in network ${this.options.registry.network}, not ${String(network)}`,
        );
      }
      this.adopt(peerId, peer);
      return { ok: true };
    });
  }

  sendConsensus(nodeId: string, groupId: string, bytes: Uint8Array): void {
    this.links.get(nodeId)?.notify(consensusChannel, { group: groupId, bytes });
  }

  sendRaft(nodeId: string, groupId: string, bytes: Uint8Array): void {
    this.links.get(nodeId)?.notify(raftChannel, { group: groupId, bytes });
  }

  /** A request to another node over its consensus link; fails at once if there is none. */
  async request(nodeId: string, method: string, body: CborValue): Promise<CborValue> {
    const link = this.links.get(nodeId);
    if (link === undefined) {
      throw new LedgerbusError(ErrorCode.ConnectionClosed, `no link to node ${nodeId}`, { retriable: true });
    }
    return link.request(method, body);
  }

  private forwardRequest(nodeId: string, groupId: string, bytes: Uint8Array): void {
    this.links.get(nodeId)?.notify(requestChannel, { group: groupId, bytes });
  }

  /** Passes a client request on to every other replica of a partition (its primary among them). */
  forwardToReplicas(
    partition: { readonly groupId: string; readonly replicas: readonly string[] },
    bytes: Uint8Array,
  ): void {
    for (const nodeId of partition.replicas)
      if (nodeId !== this.options.selfId) this.forwardRequest(nodeId, partition.groupId, bytes);
  }

  linked(nodeId: string): boolean {
    return this.links.has(nodeId);
  }

  connected(): string[] {
    return [...this.links.keys()];
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    for (const peer of this.links.values()) peer.close();
    this.links.clear();
  }

  private async dial(peerId: string): Promise<void> {
    if (this.dialing.has(peerId) || this.closed) return;
    const node = this.options.registry.node(peerId);
    if (node === undefined) return;
    this.dialing.add(peerId);
    let peer: RpcPeer | undefined;
    try {
      const connection = await connectFramed({
        ...this.addressOf(node),
        identity: this.options.key,
        expectedPublicKey: node.publicKey,
        timeoutMs: 2_000,
      });
      peer = new RpcPeer(connection, { requestTimeoutMs: 30_000 });
      await peer.request('hello', {
        purpose: 'consensus',
        from: this.options.selfId,
        network: this.options.registry.network,
      });
      if (this.closed) peer.close();
      else this.adopt(peerId, peer);
    } catch (error) {
      // A refused hello (another network, a peer shutting down) must not leave the socket open.
      peer?.close();
      this.options.logger.debug({ peer: peerId, error: (error as Error).message }, 'peer not reachable yet');
    } finally {
      this.dialing.delete(peerId);
    }
  }

  private adopt(peerId: string, peer: RpcPeer): void {
    const previous = this.links.get(peerId);
    if (previous !== undefined && previous !== peer) previous.close();
    this.links.set(peerId, peer);
    this.options.logger.info({ peer: peerId }, 'consensus link up');
    peer.onNotify(consensusChannel, (body) => {
      const message = unpack(body);
      if (message !== undefined) this.options.onConsensus(message.group, message.bytes);
    });
    peer.onNotify(raftChannel, (body) => {
      const message = unpack(body);
      if (message !== undefined) this.options.onRaft(message.group, message.bytes);
    });
    for (const [method, handler] of Object.entries(this.options.handlers ?? {})) {
      peer.handle(method, (body) => handler(body, peerId));
    }
    peer.onNotify(requestChannel, (body) => {
      const message = unpack(body);
      if (message !== undefined) this.options.onForwardedRequest(message.group, message.bytes);
    });
    peer.onClose(() => {
      if (this.links.get(peerId) === peer) {
        this.links.delete(peerId);
        this.options.logger.warn({ peer: peerId }, 'consensus link down');
      }
    });
  }
}

function unpack(body: CborValue): { group: string; bytes: Uint8Array } | undefined {
  if (typeof body !== 'object' || body === null || body instanceof Uint8Array || Array.isArray(body))
    return undefined;
  const record = body as Record<string, CborValue>;
  const group = record['group'];
  const bytes = record['bytes'];
  return typeof group === 'string' && bytes instanceof Uint8Array ? { group, bytes } : undefined;
}
