/**
 * Carries a connector's request to another organization's connector (escrowed chunks, DESIGN §7;
 * job results, DESIGN §8): a sender placing a chunk on a holder, an auditor asking a holder for one,
 * a job's requester asking its owner for the result. The holder's (or owner's) connector
 * answers on one of its serving connections — on this node if it serves here, else on a node of its
 * own organization, which this node reaches over a BULK connection (a chunk is up to 8 MiB and must
 * never delay the consensus link). A few bulk connections per node are kept while they are used: a
 * 200-chunk message is 600 calls, not 600 TLS handshakes.
 *
 * The nodes only route. The request inside the body is signed by its requester and checked by the
 * holder's connector against the registry; a node checks what it can without trusting anyone: that
 * the calling connector's organization is the requester, and that the request is for the holder (or
 * job owner) it is sent to, so a connector cannot make a node carry requests in another
 * organization's name.
 */
import type { CborValue } from '../codec/index.js';
import { decodeJobResultRequest } from '../contracts/datashare/result-requests.js';
import { decodeChunkGetRequest, decodeChunkPutRequest } from '../contracts/escrow/chunk-requests.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { RpcPeer, connectFramed } from '../net/index.js';
import { connectorMethods } from '../protocol/client-methods.js';
import type { NodeMethods, RequestOf } from '../protocol/client-methods.js';
import { parseAs } from '../protocol/typed-rpc.js';
import type { NetworkRegistry, NodeInfo } from '../registry/types.js';
import type { Logger } from '../runtime/logger.js';
import type { PeerMesh } from './peer-mesh.js';

/** A connectorCall as a connector sends it; a relayConnectorCall between nodes has the same shape. */
export type ConnectorCall = RequestOf<NodeMethods['connectorCall']>;

/** One of this node's serving connections of a connector; `busy` while it streams a payload. */
export interface ServingConnection {
  readonly peer: RpcPeer;
  readonly busy: boolean;
}

export interface ConnectorRelayOptions {
  readonly nodeId: string;
  readonly registry: NetworkRegistry;
  readonly mesh: Pick<PeerMesh, 'addressOf' | 'identity'>;
  readonly logger: Logger;
  /** This node's serving connections of `organization`'s connectors. */
  readonly servingConnections: (organization: string) => readonly ServingConnection[];
  /**
   * Admits a request node `nodeId` relays (quota, approval); throws the refusal. Relays are charged
   * to the organization of the node that asks, the one the TLS link authenticated.
   */
  readonly admitRelayed: (nodeId: string, requester: string, method: string) => void;
  /** Bulk connections kept per peer node (default 2). */
  readonly bulkConnectionsPerNode?: number;
  /** A bulk connection unused this long is closed (default 30 s). */
  readonly bulkIdleMs?: number;
}

/**
 * Below a connector's own 60 s request timeout, so a relay that hangs comes back as this node's
 * TIMEOUT rather than the connector giving up on a call that is still under way.
 */
const bulkRequestTimeoutMs = 50_000;
const connectTimeoutMs = 5_000;

interface PooledConnection {
  /** The connection once open; undefined while it is being opened. */
  peer: RpcPeer | undefined;
  readonly opened: Promise<RpcPeer>;
  inFlight: number;
  idleTimer: NodeJS.Timeout | undefined;
}

export class ConnectorRelay {
  /**
   * Bulk connections to other nodes, by node id: at most `bulkConnectionsPerNode` per registered node,
   * each removed when it closes (idle ones after `bulkIdleMs`).
   */
  private readonly pools = new Map<string, PooledConnection[]>();
  /** Spreads unary calls over an organization's serving connections. */
  private nextServing = 0;
  private closed = false;

  constructor(private readonly options: ConnectorRelayOptions) {}

  /**
   * A connector of `caller` asks for `call.organization`'s connector. PEER_NOT_AUTHORIZED unless the
   * request in the body is `caller`'s and for that organization; CONNECTION_CLOSED (retriable) when
   * no connector of it serves anywhere reachable. The holder connector's own errors pass through.
   */
  async call(caller: string, call: ConnectorCall): Promise<CborValue> {
    const request = signedRequestOf(call);
    if (request.requester !== caller || request.target !== call.organization) {
      this.options.logger.warn(
        { organization: caller, requester: request.requester, holder: request.target, to: call.organization },
        'refused a connector call in another organization’s name',
      );
      throw new LedgerbusError(
        ErrorCode.PeerNotAuthorized,
        `a connector of ${caller} cannot send ${request.requester}'s ${call.method} request for ${request.target} to ${call.organization}: sign the request as ${caller} for the organization it is sent to`,
      );
    }
    const local = this.servingPeer(call.organization);
    if (local !== undefined) return local.request(call.method, call.body);
    return this.throughHolderNode(call);
  }

  /**
   * Node `nodeId` relays a connector call to `call.organization`'s connector serving here.
   * PEER_NOT_AUTHORIZED if the request is for another holder; CONNECTION_CLOSED (retriable) when
   * none of its connectors serves on this node now.
   */
  async relayed(nodeId: string, call: ConnectorCall): Promise<CborValue> {
    const request = signedRequestOf(call);
    if (request.target !== call.organization) {
      this.options.logger.warn(
        { node: nodeId, holder: request.target, to: call.organization },
        'refused a relayed connector call for another holder',
      );
      throw new LedgerbusError(
        ErrorCode.PeerNotAuthorized,
        `node ${nodeId} relayed a ${call.method} request for ${request.target} to ${call.organization}`,
      );
    }
    this.options.admitRelayed(nodeId, request.requester, `relayConnectorCall ${call.method}`);
    const local = this.servingPeer(call.organization);
    if (local === undefined) throw notServing(call.organization, this.options.nodeId);
    return local.request(call.method, call.body);
  }

  /** Bulk connections to other nodes open or being opened now. */
  get bulkConnections(): number {
    let count = 0;
    for (const pool of this.pools.values()) count += pool.length;
    return count;
  }

  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) for (const entry of pool) this.drop(entry);
    this.pools.clear();
  }

  /** A serving connection of `organization`: an idle one if any (a busy one shares its socket with a payload stream). */
  private servingPeer(organization: string): RpcPeer | undefined {
    const open = this.options.servingConnections(organization).filter((entry) => !entry.peer.closed);
    const idle = open.filter((entry) => !entry.busy);
    const candidates = idle.length > 0 ? idle : open;
    if (candidates.length === 0) return undefined;
    this.nextServing = (this.nextServing + 1) % Number.MAX_SAFE_INTEGER;
    return candidates[this.nextServing % candidates.length]?.peer;
  }

  /** Relays `call` to each node of the holder organization in turn until one answers. */
  private async throughHolderNode(call: ConnectorCall): Promise<CborValue> {
    const nodes = this.options.registry
      .nodes()
      .filter((node) => node.organization === call.organization && node.id !== this.options.nodeId);
    let lastError: unknown = notServing(call.organization, this.options.nodeId);
    for (const node of nodes) {
      try {
        return await this.onBulk(node, (peer) => peer.request('relayConnectorCall', call));
      } catch (error) {
        lastError = error;
        // The holder's connector answered (its refusal, a bad chunk): that is the answer. A node
        // that cannot be reached, or where no connector of the holder serves, leaves the next node.
        if (!(error instanceof LedgerbusError) || !unreachable(error)) throw error;
      }
    }
    throw lastError;
  }

  /** Runs `use` on a pooled bulk connection to `node`, opening one if the pool has room and all are in use. */
  private async onBulk<T>(node: NodeInfo, use: (peer: RpcPeer) => Promise<T>): Promise<T> {
    if (this.closed)
      throw new LedgerbusError(ErrorCode.ConnectionClosed, 'node stopping', { retriable: true });
    const entry = this.acquire(node);
    assert(entry.inFlight > 0, 'an acquired bulk connection counts its call');
    try {
      return await use(await entry.opened);
    } finally {
      entry.inFlight--;
      if (entry.inFlight === 0 && entry.peer !== undefined && !entry.peer.closed) {
        // Idle connections go after a while: a node does not hold sockets to every peer forever.
        entry.idleTimer = setTimeout(() => this.drop(entry), this.options.bulkIdleMs ?? 30_000);
        entry.idleTimer.unref();
      }
    }
  }

  private acquire(node: NodeInfo): PooledConnection {
    const pool = this.pools.get(node.id) ?? [];
    this.pools.set(node.id, pool);
    const least = pool.reduce<PooledConnection | undefined>(
      (best, entry) => (best === undefined || entry.inFlight < best.inFlight ? entry : best),
      undefined,
    );
    const room = pool.length < (this.options.bulkConnectionsPerNode ?? 2);
    const entry = least !== undefined && (least.inFlight === 0 || !room) ? least : this.open(node, pool);
    if (entry.idleTimer !== undefined) clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    entry.inFlight++;
    return entry;
  }

  private open(node: NodeInfo, pool: PooledConnection[]): PooledConnection {
    const opened = connectFramed({
      ...this.options.mesh.addressOf(node),
      identity: this.options.mesh.identity,
      expectedPublicKey: node.publicKey,
      timeoutMs: connectTimeoutMs,
    }).then((connection) => {
      const peer = new RpcPeer(connection, { requestTimeoutMs: bulkRequestTimeoutMs });
      entry.peer = peer;
      peer.onClose(() => this.remove(node.id, entry));
      if (this.closed) peer.close();
      return peer;
    });
    const entry: PooledConnection = { peer: undefined, opened, inFlight: 0, idleTimer: undefined };
    // A connection that cannot be opened leaves the pool at once; its callers get the error.
    opened.catch(() => this.remove(node.id, entry));
    pool.push(entry);
    return entry;
  }

  private drop(entry: PooledConnection): void {
    if (entry.idleTimer !== undefined) clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    entry.peer?.close();
  }

  private remove(nodeId: string, entry: PooledConnection): void {
    if (entry.idleTimer !== undefined) clearTimeout(entry.idleTimer);
    const remaining = (this.pools.get(nodeId) ?? []).filter((candidate) => candidate !== entry);
    if (remaining.length === 0) this.pools.delete(nodeId);
    else this.pools.set(nodeId, remaining);
  }
}

/**
 * Who signed the request in `call`'s body and which organization it is for: a chunk request's
 * holder, a job result request's owner (SCHEMA_MISMATCH or MALFORMED_ENCODING if the body is not
 * one of the call's method). Its signature is the receiving connector's to check, against the
 * registry.
 */
function signedRequestOf(call: ConnectorCall): { readonly requester: string; readonly target: string } {
  switch (call.method) {
    case 'escrowChunkPut': {
      const body = parseAs(connectorMethods.escrowChunkPut.request, call.body, 'escrowChunkPut request');
      const request = decodeChunkPutRequest(body.request);
      return { requester: request.requester, target: request.holder };
    }
    case 'escrowChunkGet': {
      const body = parseAs(connectorMethods.escrowChunkGet.request, call.body, 'escrowChunkGet request');
      const request = decodeChunkGetRequest(body.request);
      return { requester: request.requester, target: request.holder };
    }
    case 'jobResultGet': {
      const body = parseAs(connectorMethods.jobResultGet.request, call.body, 'jobResultGet request');
      const request = decodeJobResultRequest(body.request);
      return { requester: request.requester, target: request.owner };
    }
  }
}

function notServing(organization: string, nodeId: string): LedgerbusError {
  return new LedgerbusError(
    ErrorCode.ConnectionClosed,
    `no connector of ${organization} is serving now (asked through node ${nodeId}): start ${organization}'s connector, then retry`,
    { retriable: true },
  );
}

/** Errors that say the call did not reach a serving connector, so another node may do better. */
function unreachable(error: LedgerbusError): boolean {
  return error.code === ErrorCode.ConnectionClosed || error.code === ErrorCode.Timeout;
}
