/**
 * The connector's connections to nodes (DESIGN §3, §9): a control connection to each node it sends
 * requests to, opened on demand and reopened after it drops; a few serving connections to each of
 * its organization's nodes, on which any of them asks for payloads, escrowed chunks and job results
 * (kept at their number); and short-lived bulk connections for fetching payloads, to the sender's
 * node when it can serve them.
 *
 * Each request goes to a node the NodeBalancer picks among those that can serve it: publishes,
 * administration, unproven reads and calls to other connectors to the organization's own nodes;
 * reads whose answers carry block evidence (poll, receipt), when `replicaReads` is on, to any replica
 * of the partition (a node answers a connector of another organization for that organization, from
 * its own committed state, and the connector verifies the evidence), with the own nodes as the fallback. A request that
 * could not be sent (the node cannot be reached) is tried on another candidate; a read that was
 * sent and lost with its connection, or refused for load (RATE_LIMITED, OVERLOADED: the quota is
 * per node), too, since reads are idempotent; a publish or an admin transaction is not (its
 * submitter decides, knowing the id it sent).
 */
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import type { SigningKeyPair } from '../../crypto/index.js';
import type { CborValue } from '../../codec/index.js';
import { RpcPeer, connectFramed } from '../../net/index.js';
import { connectorMethods, forwardableMethods, nodeMethods } from '../../protocol/client-methods.js';
import type {
  ConnectorMethods,
  NodeMethods,
  RequestOf,
  ResponseOf,
  UnaryMethod,
  UnaryNames,
} from '../../protocol/client-methods.js';
import { handleStream, handleUnary, parseAs } from '../../protocol/typed-rpc.js';
import type { RpcStreamReply } from '../../net/index.js';
import type { LiveRegistry } from '../../registry/live-registry.js';
import type { NodeInfo } from '../../registry/types.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import { NodeBalancer } from './node-balancer.js';
import type { BalancerPolicy, NodeStats, RequestOutcome } from './node-balancer.js';

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

/**
 * The nodes of `organization` a connector uses, the first one first: `entries` (connector.yaml
 * `nodes`: ids, each optionally at another address than its registered one), else `nodeId` alone
 * (connector.yaml `node`), else every node of the organization in the registry. BAD_CONFIG names an
 * id the registry does not know or an address that is not host:port.
 */
export function sessionNodes(
  registry: LiveRegistry,
  organization: string,
  options: { readonly nodeId?: string; readonly nodes?: readonly { id: string; address?: string }[] } = {},
): NodeInfo[] {
  if (options.nodes === undefined || options.nodes.length === 0) {
    const home = homeNode(registry, organization, options.nodeId);
    if (options.nodeId !== undefined) return [home];
    return registry.nodes().filter((node) => node.organization === organization);
  }
  const ids = options.nodes.map((entry) => entry.id);
  const repeated = ids.find((id, index) => ids.indexOf(id) !== index);
  if (repeated !== undefined)
    throw new LedgerbusError(ErrorCode.BadConfig, `nodes: ${repeated} is listed twice`);
  // Another organization's node only for an organization with none of its own (a sponsor's node,
  // as connector.yaml `node` allows): a mistyped id must not send our publishes to a stranger.
  const hasOwnNodes = registry.nodes().some((node) => node.organization === organization);
  return options.nodes.map((entry) => {
    const node = registry.node(entry.id);
    if (node === undefined)
      throw new LedgerbusError(ErrorCode.BadConfig, `nodes: no node ${entry.id} in the registry`);
    if (hasOwnNodes && node.organization !== organization)
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `nodes: ${entry.id} is a node of ${node.organization}, not of ${organization}; list your own nodes (reads already go to other organizations' replicas)`,
      );
    if (entry.address === undefined) return node;
    const colon = entry.address.lastIndexOf(':');
    const port = Number(entry.address.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `nodes: address of ${entry.id} must be host:port, not ${JSON.stringify(entry.address)}`,
      );
    return { ...node, host: entry.address.slice(0, colon), port };
  });
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
  /** The connector's first own node (see homeNode); `request` and `controlPeer()` use it. */
  readonly node: NodeInfo;
  /**
   * Every node of the organization this connector uses, `node` first (default: `node` alone), each
   * at the address to dial (an override of its registered one, as connector.yaml `nodes` allows).
   */
  readonly nodes?: readonly NodeInfo[];
  /** The connector's TLS identity, as the nodes know it. */
  readonly identity: SigningKeyPair;
  /** Serving connections kept open to each own node (concurrent outgoing transfers). */
  readonly servingConnections: number;
  /** How requests are spread over the candidate nodes (default adaptive; see NodeBalancerOptions). */
  readonly balancer?: { readonly policy: BalancerPolicy; readonly decayMs?: number };
  /** Reads of a partition may go to any replica of it, not only to own nodes (default false). */
  readonly replicaReads?: boolean;
  /** Uniform in [0, 1), for the balancer's choices (default Math.random). */
  readonly random?: () => number;
}

/** Partition reads any replica answers, for the calling connector's organization. */
const replicaReadMethods: ReadonlySet<string> = new Set(
  forwardableMethods.filter((method) => method !== 'publish'),
);
/**
 * The reads another organization's replica may answer: those whose answers carry block evidence the
 * connector verifies (poll pages, receipts). A message's status, escrow and job records come without
 * proofs, so only the organization's own nodes are trusted with them (DESIGN §11: a client trusts no
 * single node of another organization).
 */
const provenReadMethods: ReadonlySet<string> = new Set(['poll', 'receipt']);

export class NodeSession {
  readonly node: NodeInfo;
  /** The organization's nodes this connector uses, `node` first. */
  readonly nodes: readonly NodeInfo[];
  /** One control connection per node asked for (the registry's nodes), reopened in place when it closes. */
  private readonly controls = new Map<string, { peer?: RpcPeer; connecting?: Promise<RpcPeer> }>();
  /** Per node of ours: at most `servingConnections` open connections, each removed when it closes. */
  private readonly servingPeers = new Map<string, Set<RpcPeer>>();
  /** Serving connections being opened, per node of ours. */
  private readonly servingOpening = new Map<string, number>();
  private servingTimer: unknown;
  private readonly balancer: NodeBalancer;

  constructor(private readonly options: NodeSessionOptions) {
    this.node = options.node;
    const others = (options.nodes ?? []).filter((node) => node.id !== options.node.id);
    this.nodes = [options.node, ...others];
    const clock = options.lifecycle.clock;
    this.balancer = new NodeBalancer({
      policy: options.balancer?.policy ?? 'adaptive',
      ...(options.balancer?.decayMs === undefined ? {} : { decayMs: options.balancer.decayMs }),
      now: () => clock.now(),
      random: options.random ?? Math.random,
    });
  }

  /** The balancer's view of every node asked so far (latency estimate, in flight, ejection). */
  balancerStats(): NodeStats[] {
    return this.balancer.stats();
  }

  /**
   * Calls `method` on a node the balancer picks among those that can serve it (see the class
   * comment): the request typed, the answer parsed by its schema (SCHEMA_MISMATCH when it does not
   * fit). A node that cannot be reached is tried no more for this request; CONNECTION_CLOSED
   * (retriable) when none could be.
   */
  async call<M extends UnaryNames<NodeMethods> & string>(
    method: M,
    request: RequestOf<NodeMethods[M]>,
  ): Promise<ResponseOf<NodeMethods[M]>> {
    const definition = nodeMethods[method] as UnaryMethod<unknown, ResponseOf<NodeMethods[M]>>;
    const answer = await this.balanced(method, request as CborValue);
    return parseAs(definition.response, answer, `${method} answer`);
  }

  /** `end`, which also logs the node's ejection when this failure ejected it. */
  private ending(id: string, end: (outcome: RequestOutcome) => void): (outcome: RequestOutcome) => void {
    return (outcome) => {
      const ejected = this.balancer.ejected(id);
      end(outcome);
      if (!ejected && this.balancer.ejected(id)) {
        const stats = this.balancer.stats().find((node) => node.id === id);
        this.options.logger.warn(
          {
            node: id,
            until: stats?.ejectedUntil === undefined ? undefined : new Date(stats.ejectedUntil).toISOString(),
            ejections: stats?.ejections,
          },
          'node ejected after consecutive failures: requests go to the other nodes until it is tried again',
        );
      }
    };
  }

  /** The candidate tiers for `method`: the first with a usable node is chosen from. */
  private candidates(method: string, request: CborValue): string[][] {
    const own = this.nodes.map((node) => node.id);
    const group = (request as { group?: unknown } | null)?.group;
    if (this.options.replicaReads !== true || !provenReadMethods.has(method) || typeof group !== 'string')
      return [own];
    const replicas = this.options.registry.partition(group)?.replicas ?? [];
    return [replicas.filter((id) => this.nodeInfo(id) !== undefined), own];
  }

  private async balanced(method: string, request: CborValue): Promise<CborValue> {
    const tiers = this.candidates(method, request);
    const idempotent = replicaReadMethods.has(method);
    const waitMs = (request as { waitMs?: unknown } | null)?.waitMs;
    const long = typeof waitMs === 'number' && waitMs > 0;
    const tried = new Set<string>();
    let lastError: unknown;
    // Each candidate at most once: the own nodes are the fallback of dead replicas.
    // Each method is its own kind: a publish waits for consensus, a read does not.
    for (
      let id = this.balancer.pick(tiers, tried, method);
      id !== undefined;
      id = this.balancer.pick(tiers, tried, method)
    ) {
      tried.add(id);
      const end = this.ending(id, this.balancer.begin(id, { long, kind: method }));
      let peer: RpcPeer;
      try {
        peer = await this.controlPeer(id);
      } catch (error) {
        end('failure');
        lastError = error;
        if (this.options.lifecycle.stopped) throw error;
        continue;
      }
      try {
        const answer = await peer.request(method, request);
        end('success');
        return answer;
      } catch (error) {
        // A refusal is the node's answer: it is up, and its time is a sample like any other. Only
        // a connection that dropped or a request that got no answer in time is the node's fault; a
        // node may also answer CONNECTION_CLOSED for a replica it could not reach.
        const overloaded =
          isLedgerbusError(error, ErrorCode.RateLimited) || isLedgerbusError(error, ErrorCode.Overloaded);
        const timedOut = isLedgerbusError(error, ErrorCode.Timeout);
        // A connection that let a request time out may be half-open: the next request redials.
        if (timedOut) peer.close();
        end(peer.closed || timedOut ? 'failure' : overloaded ? 'overloaded' : 'success');
        // Another node has its own quota and queue: a refused read is asked there.
        if (!idempotent || !(isLostRequest(error) || overloaded) || this.options.lifecycle.stopped)
          throw error;
        lastError = error;
      }
    }
    throw lastError instanceof Error
      ? lastError
      : new LedgerbusError(ErrorCode.ConnectionClosed, `no node can serve ${method} now`, {
          retriable: true,
        });
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

  /**
   * Our nodes this connector can reach now: each with a serving connection open (they are dialled
   * again every second, so one that drops or cannot be opened shows within about a second) and not
   * ejected by the balancer for failing requests. What `GET /readyz` asks: it costs no request.
   */
  reachableNodes(): string[] {
    return this.nodes
      .filter((node) => {
        const open = [...(this.servingPeers.get(node.id) ?? [])].some((peer) => !peer.closed);
        return open && !this.balancer.ejected(node.id);
      })
      .map((node) => node.id);
  }

  /** Serving connections open now, to all our nodes. */
  get servingCount(): number {
    let count = 0;
    for (const peers of this.servingPeers.values()) count += peers.size;
    return count;
  }

  /**
   * The control connection, opened (once, however many ask at the same time) if there is none or
   * it closed. A node that cannot be reached is CONNECTION_CLOSED, retriable; after stop, not.
   */
  controlPeer(nodeId: string = this.node.id): Promise<RpcPeer> {
    let control = this.controls.get(nodeId);
    if (control === undefined) {
      control = {};
      this.controls.set(nodeId, control);
    }
    const entry = control;
    if (entry.peer !== undefined && !entry.peer.closed) return Promise.resolve(entry.peer);
    if (this.options.lifecycle.stopped)
      return Promise.reject(
        new LedgerbusError(ErrorCode.ConnectionClosed, 'connector stopped', { retriable: false }),
      );
    const node = this.nodeInfo(nodeId);
    if (node === undefined)
      return Promise.reject(
        new LedgerbusError(ErrorCode.ConnectionClosed, `node ${nodeId} is not in the registry`, {
          retriable: true,
        }),
      );
    entry.connecting ??= this.openConnection(node)
      .then((peer) => {
        entry.peer = peer;
        // Closed after stop (close() ran before the connection was up): nothing may stay open.
        if (this.options.lifecycle.stopped) peer.close();
        return peer;
      })
      .catch((error: unknown) => {
        throw new LedgerbusError(
          ErrorCode.ConnectionClosed,
          `cannot reach node ${nodeId}: ${describeError(error)}`,
          { retriable: true },
        );
      })
      .finally(() => {
        entry.connecting = undefined;
      });
    return entry.connecting;
  }

  /** Where to dial node `id`: one of our own nodes at its configured address, else the registry's. */
  private nodeInfo(id: string): NodeInfo | undefined {
    return this.nodes.find((node) => node.id === id) ?? this.options.registry.node(id);
  }

  /** One untyped request on the control connection to our first node (diagnostics, tests); the node's methods go through `call`. */
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
    const own = this.nodes.map((node) => node.id);
    if (senderNode !== undefined && !own.includes(senderNode.id)) {
      try {
        return await this.openConnection(this.nodeInfo(senderNode.id) ?? senderNode);
      } catch (error) {
        this.options.logger.debug(
          { node: senderNode.id, error: describeError(error) },
          'fetching through our own node',
        );
      }
    }
    // One of our nodes, as the balancer chooses; an unreachable one is left for the next.
    const tried = new Set<string>();
    let lastError: unknown;
    const kind = 'fetchPayload';
    for (
      let id = this.balancer.pick([own], tried, kind);
      id !== undefined;
      id = this.balancer.pick([own], tried, kind)
    ) {
      tried.add(id);
      const end = this.ending(id, this.balancer.begin(id, { kind }));
      try {
        const peer = await this.openConnection(this.nodeInfo(id) ?? this.node);
        end('success');
        return peer;
      } catch (error) {
        end('failure');
        lastError = error;
      }
    }
    throw lastError;
  }

  /** Whether `nodeId` is a replica of `partitionId` in the current registry. */
  replicates(nodeId: string, partitionId: string): boolean {
    return this.options.registry.partition(partitionId)?.replicas.includes(nodeId) ?? false;
  }

  /**
   * Keeps `servingConnections` serving connections open to each of our nodes (any of them may ask
   * for a payload of ours), each answering the node's requests with `handlers`; one that drops is
   * replaced within a second.
   */
  startServing(handlers: ServingHandlers): void {
    const refill = (): void => {
      if (this.options.lifecycle.stopped) return;
      for (const node of this.nodes) {
        let peers = this.servingPeers.get(node.id);
        if (peers === undefined) {
          peers = new Set();
          this.servingPeers.set(node.id, peers);
        }
        // Connections being opened count too, so a slow node is not dialled again every second.
        const opening = this.servingOpening.get(node.id) ?? 0;
        for (let index = peers.size + opening; index < this.options.servingConnections; index++) {
          this.servingOpening.set(node.id, (this.servingOpening.get(node.id) ?? 0) + 1);
          void this.openServingConnection(node, peers, handlers).finally(() =>
            this.servingOpening.set(node.id, (this.servingOpening.get(node.id) ?? 1) - 1),
          );
        }
      }
      this.servingTimer = this.options.lifecycle.clock.setTimeout(refill, servingRefillMs);
    };
    refill();
  }

  /** Closes every connection; call after the lifecycle has stopped (nothing reopens them then). */
  close(): void {
    if (this.servingTimer !== undefined) this.options.lifecycle.clock.clearTimeout(this.servingTimer);
    for (const control of this.controls.values()) control.peer?.close();
    for (const peers of this.servingPeers.values()) for (const peer of peers) peer.close();
  }

  private async openServingConnection(
    node: NodeInfo,
    peers: Set<RpcPeer>,
    handlers: ServingHandlers,
  ): Promise<void> {
    if (this.options.lifecycle.stopped) return;
    // Dialling the serving connections is the active health check of our nodes: a node that
    // refuses them is ejected even while no request happens to try it.
    const end = this.ending(node.id, this.balancer.begin(node.id, { long: true, kind: 'serve' }));
    let peer: RpcPeer;
    try {
      peer = await this.openConnection(node);
      end('success');
    } catch {
      end('failure');
      return; // the next refill tries again
    }
    if (this.options.lifecycle.stopped) {
      peer.close();
      return;
    }
    peers.add(peer);
    peer.onClose(() => peers.delete(peer));
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

/**
 * Whether `error` says the request was lost with its connection (or got no answer in time), so that
 * the node, not the request, is at fault. A node's refusal has any other code.
 */
function isLostRequest(error: unknown): boolean {
  return (
    error instanceof LedgerbusError &&
    (error.code === ErrorCode.ConnectionClosed || error.code === ErrorCode.Timeout)
  );
}
