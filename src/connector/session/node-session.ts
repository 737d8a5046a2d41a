/**
 * The connector's connections to nodes (DESIGN §3): one control connection to its own node for
 * publish, poll, receipts and administration, reopened on demand after it drops; a few serving
 * connections on which the node asks for payloads, escrowed chunks and job results (kept at their number); and
 * short-lived bulk connections for fetching payloads, to the sender's node when it can serve them.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { SigningKeyPair } from '../../crypto/index.js';
import type { CborValue } from '../../codec/index.js';
import { RpcPeer, connectFramed } from '../../net/index.js';
import { connectorMethods, nodeMethods } from '../../protocol/client-methods.js';
import type {
  ConnectorMethods,
  NodeMethods,
  RequestOf,
  ResponseOf,
  UnaryMethod,
  UnaryNames,
} from '../../protocol/client-methods.js';
import { TypedClient, handleStream, handleUnary, parseAs } from '../../protocol/typed-rpc.js';
import type { RpcStreamReply } from '../../net/index.js';
import type { LiveRegistry } from '../../registry/live-registry.js';
import type { NodeInfo } from '../../registry/types.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';

/** How often the serving connections are topped up to their number. */
const servingRefillMs = 1_000;
const connectTimeoutMs = 5_000;
const requestTimeoutMs = 60_000;

/**
 * The node a connector of `organization` talks to: `nodeId` when given (it may be another
 * organization's node: a new organization uses a sponsor's node until it registers its own), else
 * the first node of the organization. BAD_CONFIG when there is none.
 */
export function homeNode(registry: LiveRegistry, organization: string, nodeId?: string): NodeInfo {
  const node =
    nodeId === undefined
      ? registry.nodes().find((candidate) => candidate.organization === organization)
      : registry.node(nodeId);
  if (node === undefined || (nodeId === undefined && node.organization !== organization)) {
    throw new LedgerbusError(ErrorCode.BadConfig, `no node of ${organization} to connect to`);
  }
  return node;
}

/** How a connector answers what its node asks on a serving connection (see `connectorMethods`). */
export interface ServingHandlers {
  /** The ciphertext of a message this connector sent, for a recipient's signed fetch request. */
  readonly servePayload: (
    request: RequestOf<ConnectorMethods['servePayload']>,
  ) => RpcStreamReply | Promise<RpcStreamReply>;
  /** A sender places an escrowed chunk here → this holder's signed receipt. */
  readonly escrowChunkPut: UnaryHandler<'escrowChunkPut'>;
  /** An approved audit's auditor asks for a chunk held here. */
  readonly escrowChunkGet: UnaryHandler<'escrowChunkGet'>;
  /** A job's requester asks for the result of a job run on our data (sealed to it). */
  readonly jobResultGet: UnaryHandler<'jobResultGet'>;
}

type UnaryHandler<M extends UnaryNames<ConnectorMethods>> = (
  request: RequestOf<ConnectorMethods[M]>,
) => ResponseOf<ConnectorMethods[M]> | Promise<ResponseOf<ConnectorMethods[M]>>;

/** The methods of another organization's connector that a connector may call through the nodes. */
export type ConnectorCallMethod = RequestOf<NodeMethods['connectorCall']>['method'];

export interface NodeSessionOptions extends Pick<ConnectorContext, 'registry' | 'logger' | 'lifecycle'> {
  /** The connector's own node (see homeNode). */
  readonly node: NodeInfo;
  /** The connector's TLS identity, as the nodes know it. */
  readonly identity: SigningKeyPair;
  /** Serving connections kept open (concurrent outgoing transfers). */
  readonly servingConnections: number;
}

export class NodeSession {
  readonly node: NodeInfo;
  private control: RpcPeer | undefined;
  private connecting: Promise<RpcPeer> | undefined;
  private readonly servingPeers = new Set<RpcPeer>();
  private servingTimer: unknown;
  /** The node's methods (see protocol/client-methods.ts) on the control connection. */
  private readonly nodeCalls: TypedClient<NodeMethods>;

  constructor(private readonly options: NodeSessionOptions) {
    this.node = options.node;
    this.nodeCalls = new TypedClient(nodeMethods, () => this.controlPeer());
  }

  /**
   * Calls `method` of the node on the control connection: the request typed, the answer parsed by
   * its schema (SCHEMA_MISMATCH when it does not fit).
   */
  call<M extends UnaryNames<NodeMethods> & string>(
    method: M,
    request: RequestOf<NodeMethods[M]>,
  ): Promise<ResponseOf<NodeMethods[M]>> {
    return this.nodeCalls.call(method, request);
  }

  /**
   * Calls `method` of `organization`'s connector through the nodes (see the node's connectorCall):
   * `body` carries a request signed by this connector's organization for `organization`. The
   * answer is parsed by the method's schema; the holder's refusals come back with their codes, and
   * CONNECTION_CLOSED (retriable) when no connector of `organization` serves now.
   */
  async connectorCall<M extends ConnectorCallMethod>(
    organization: string,
    method: M,
    body: RequestOf<ConnectorMethods[M]>,
  ): Promise<ResponseOf<ConnectorMethods[M]>> {
    const answer = await this.call('connectorCall', { organization, method, body });
    const definition = connectorMethods[method] as UnaryMethod<unknown, ResponseOf<ConnectorMethods[M]>>;
    return parseAs(definition.response, answer, `${method} answer of ${organization}`);
  }

  /** Serving connections open now. */
  get servingCount(): number {
    return this.servingPeers.size;
  }

  /**
   * The control connection, opened (once, however many ask at the same time) if there is none or
   * it closed. A node that cannot be reached is CONNECTION_CLOSED, retriable; after stop, not.
   */
  controlPeer(): Promise<RpcPeer> {
    if (this.control !== undefined && !this.control.closed) return Promise.resolve(this.control);
    if (this.options.lifecycle.stopped)
      return Promise.reject(
        new LedgerbusError(ErrorCode.ConnectionClosed, 'connector stopped', { retriable: false }),
      );
    this.connecting ??= this.openConnection()
      .then((peer) => {
        this.control = peer;
        return peer;
      })
      .catch((error: unknown) => {
        throw new LedgerbusError(
          ErrorCode.ConnectionClosed,
          `cannot reach node ${this.node.id}: ${describeError(error)}`,
          { retriable: true },
        );
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  /** One untyped request on the control connection (diagnostics, tests); the node's methods go through `call`. */
  async request(method: string, body: CborValue): Promise<CborValue> {
    return (await this.controlPeer()).request(method, body);
  }

  /** A new connection to `node` (our own by default); the caller closes it. */
  async openConnection(node: NodeInfo = this.node): Promise<RpcPeer> {
    const connection = await connectFramed({
      host: node.host,
      port: node.port,
      identity: this.options.identity,
      expectedPublicKey: node.publicKey,
      timeoutMs: connectTimeoutMs,
    });
    return new RpcPeer(connection, { requestTimeoutMs });
  }

  /**
   * Where to fetch a payload of `sender` in `partitionId` from. The sender organization's node
   * serves it from its own connector with one relay hop; when that node does not replicate the
   * partition (it could not check the request against committed state) or cannot be reached, our
   * own node relays it (two hops).
   */
  async openBulkConnection(sender: string, partitionId: string): Promise<RpcPeer> {
    const senderNode = this.options.registry
      .nodes()
      .find((node) => node.organization === sender && this.replicates(node.id, partitionId));
    if (senderNode !== undefined && senderNode.id !== this.node.id) {
      try {
        return await this.openConnection(senderNode);
      } catch (error) {
        this.options.logger.debug(
          { node: senderNode.id, error: describeError(error) },
          'fetching through our own node',
        );
      }
    }
    return this.openConnection();
  }

  /** Whether `nodeId` is a replica of `partitionId` in the current registry. */
  replicates(nodeId: string, partitionId: string): boolean {
    return this.options.registry.partition(partitionId)?.replicas.includes(nodeId) ?? false;
  }

  /**
   * Keeps `servingConnections` serving connections open to our node, each answering the node's
   * requests with `handlers`; one that drops is replaced within a second.
   */
  startServing(handlers: ServingHandlers): void {
    const refill = (): void => {
      if (this.options.lifecycle.stopped) return;
      for (let index = this.servingPeers.size; index < this.options.servingConnections; index++) {
        void this.openServingConnection(handlers);
      }
      this.servingTimer = this.options.lifecycle.clock.setTimeout(refill, servingRefillMs);
    };
    refill();
  }

  /** Closes every connection; call after the lifecycle has stopped (nothing reopens them then). */
  close(): void {
    if (this.servingTimer !== undefined) this.options.lifecycle.clock.clearTimeout(this.servingTimer);
    this.control?.close();
    for (const peer of this.servingPeers) peer.close();
  }

  private async openServingConnection(handlers: ServingHandlers): Promise<void> {
    if (this.options.lifecycle.stopped) return;
    let peer: RpcPeer;
    try {
      peer = await this.openConnection();
    } catch {
      return; // the next refill tries again
    }
    this.servingPeers.add(peer);
    peer.onClose(() => this.servingPeers.delete(peer));
    handleStream(peer, connectorMethods, 'servePayload', (request) => handlers.servePayload(request));
    handleUnary(peer, connectorMethods, 'escrowChunkPut', (request) => handlers.escrowChunkPut(request));
    handleUnary(peer, connectorMethods, 'escrowChunkGet', (request) => handlers.escrowChunkGet(request));
    handleUnary(peer, connectorMethods, 'jobResultGet', (request) => handlers.jobResultGet(request));
    try {
      await peer.request('serve', {});
    } catch {
      peer.close();
    }
  }
}
