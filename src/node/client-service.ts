/**
 * What a node offers its organization's connectors (and, for payload relays, other nodes):
 *
 *   publish        a signed client request → where it committed + block evidence (the ack's proof)
 *   poll           Kafka-style long-poll fetch from an offset: the messages addressed to the caller's
 *                  organization, each with its acceptance proof; the cursor lives in the connector
 *   message        a message's lifecycle (accepted, delivered per recipient, completed, expired)
 *   receipt        the delivery receipt (acceptance + per-recipient delivery evidence)
 *   fetchPayload   the payload stream of DESIGN §3 steps 7–16, relayed from the sender's connector
 *   serve          registers the calling connection as one of the org's payload-serving connections
 *   escrowLog, escrowRecord    the escrow contract's log and records (see escrow-service.ts)
 *   jobLog, jobRecord          the job contract's log and records (see job-service.ts)
 *   connectorCall  a request for another organization's connector, routed by the nodes (connector-relay.ts)
 *
 * Authorization is by the TLS-pinned identity: a connector acts for the organization whose key it
 * holds, and only while that organization is APPROVED (checked on every request: a suspension takes
 * effect on open connections too). A forwarded request acts for the calling node's organization.
 * Who may read what is checked against COMMITTED state only; only an approved supervisor sees every
 * message's metadata.
 */
import type { Readable } from 'node:stream';
import type { CborValue } from '../codec/index.js';
import { SigningDomain } from '../crypto/index.js';
import {
  FetchNonceWindow,
  checkFetchFreshness,
  decodeFetchRequest,
  fetchRequestSignatureValid,
} from '../contracts/fetch.js';
import type { FetchRequest } from '../contracts/fetch.js';
import { messageById, messagesByOffset, partitionStatus } from '../contracts/queries.js';
import type { MessageView } from '../contracts/queries.js';
import type { ContractState } from '../contracts/state.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import type { Block } from '../ledger/block.js';
import { RpcPeer, connectFramed, rpcStream } from '../net/index.js';
import {
  acceptanceProofToCbor,
  deliveryEvidenceToCbor,
  acceptanceProofAt,
  blockEvidence,
  blockTrees,
  deliveryEvidenceAt,
  blockEvidenceToCbor,
} from '../proofs/index.js';
import type { AcceptanceProof, BlockTrees, DeliveryEvidence } from '../proofs/index.js';
import type { NetworkRegistry } from '../registry/types.js';
import type { FetchOutcome, Observation, ObservationSink } from '../intelligence/observations.js';
import { actsAs } from '../registry/system-state.js';
import { bytesEqual } from '../codec/index.js';
import type { Logger } from '../runtime/logger.js';
import { forwardableMethods, nodeMethods, peerMethods, pollMessagesMax } from '../protocol/client-methods.js';
import type {
  ForwardableMethod,
  NodeMethods,
  PeerMethods,
  RequestOf,
  ResponseOf,
} from '../protocol/client-methods.js';
import { handleStream, handleUnary, parseAs } from '../protocol/typed-rpc.js';
import { ConnectorRelay } from './connector-relay.js';
import { EscrowService } from './escrow-service.js';
import { JobService } from './job-service.js';
import type { PartitionReplica } from './partition-replica.js';
import type { PeerMesh } from './peer-mesh.js';
import type { RegistryHost } from './registry-host.js';
import { serveRegistry } from './registry-service.js';
import { LogThrottle } from './log-throttle.js';
import { RateLimiter, defaultRateLimit } from './rate-limit.js';
import type { RateLimitConfig } from './rate-limit.js';

export interface ClientServiceOptions {
  readonly nodeId: string;
  readonly registry: NetworkRegistry;
  readonly registryHost: RegistryHost;
  readonly replicas: ReadonlyMap<string, PartitionReplica>;
  readonly mesh: PeerMesh;
  readonly logger: Logger;
  /** Largest wait a poll may ask for. */
  readonly pollWaitMsMax?: number;
  /** Per-organization request quota (default `defaultRateLimit`). */
  readonly rateLimit?: RateLimitConfig;
  /** Where what this service sees goes (the node's anomaly service, DESIGN §9). Must not throw. */
  readonly observe?: ObservationSink;
  /**
   * The quotas alerts impose (the __system state machine: a raiseAlert's rate-limit response); none
   * if absent.
   */
  readonly alertQuotas?: AlertQuotas;
  /** Where the service counts requests and quota refusals (the node's metrics); none if absent. */
  readonly metrics?: ClientMetrics;
}

/** What the client service counts for the node's /metrics (node-metrics.ts). Must not throw. */
export interface ClientMetrics {
  /** A request of `organization` refused by this node's quota (RATE_LIMITED). */
  rateLimited(organization: string): void;
  /** A partition request a connector sent this node ended: `ok`, or the error code it was answered. */
  request(method: ForwardableMethod, outcome: string): void;
}

const forwardable: ReadonlySet<string> = new Set(forwardableMethods);

/** The code a failed request is answered with: its own, or INTERNAL for anything else (see rpc.ts). */
function outcomeOf(error: unknown): string {
  return error instanceof LedgerbusError ? error.code : ErrorCode.Internal;
}

/** What the service reads of the alerts on the ledger to hold an organization to a tighter quota. */
export interface AlertQuotas {
  /** The quota (requests/s) alerts impose on `organization` at `nowMs`, if any. */
  activeRateLimit(organization: string, nowMs: number): number | undefined;
  /** Called whenever an alert is raised, acknowledged or its policy changes. */
  onAlert(listener: () => void): () => void;
}

/** An observation before the service stamps its time and node. */
type Seen = Observation extends infer O ? (O extends Observation ? Omit<O, 'at' | 'node'> : never) : never;

/** How a refused payload fetch or message read shows as an observation; undefined for other failures. */
function fetchOutcomeOf(error: unknown): FetchOutcome | undefined {
  if (!(error instanceof LedgerbusError)) return undefined;
  switch (error.code) {
    case ErrorCode.NotRecipient:
      return 'notRecipient';
    case ErrorCode.BadSignature:
      return 'badSignature';
    case ErrorCode.Replay:
      return 'replay';
    case ErrorCode.RequestExpired:
    case ErrorCode.ClockSkew:
    case ErrorCode.WrongNetwork:
      return 'stale';
    case ErrorCode.MessageNotFound:
      return 'notFound';
    default:
      return undefined;
  }
}

/** Runs a connector's partition request, counting how it ended (a request forwarded on counts here). */
async function counted(
  metrics: ClientMetrics,
  method: ForwardableMethod,
  serve: () => Promise<CborValue> | CborValue,
): Promise<CborValue> {
  try {
    const result = await serve();
    metrics.request(method, 'ok');
    return result;
  } catch (error) {
    metrics.request(method, outcomeOf(error));
    throw error;
  }
}

/** How long a quota an alert set (registry/alerts.ts) is trusted before asking the registry again. */
const quotaOverrideTtlMs = 1_000;

type Request<M extends keyof NodeMethods> = RequestOf<NodeMethods[M]>;
type Response<M extends keyof NodeMethods> = ResponseOf<NodeMethods[M]>;
/** A request of a method a node may forward to a replica of the partition, parsed. */
type ForwardableCall = {
  [M in ForwardableMethod]: { readonly method: M; readonly request: Request<M> };
}[ForwardableMethod];

/** `body` parsed as a request of `method` (SCHEMA_MISMATCH naming the field if it does not fit). */
function parseCall(method: ForwardableMethod, body: CborValue): ForwardableCall {
  const what = `${method} request`;
  switch (method) {
    case 'publish':
      return { method, request: parseAs(nodeMethods.publish.request, body, what) };
    case 'poll':
      return { method, request: parseAs(nodeMethods.poll.request, body, what) };
    case 'message':
      return { method, request: parseAs(nodeMethods.message.request, body, what) };
    case 'messages':
      return { method, request: parseAs(nodeMethods.messages.request, body, what) };
    case 'receipt':
      return { method, request: parseAs(nodeMethods.receipt.request, body, what) };
    case 'escrowLog':
      return { method, request: parseAs(nodeMethods.escrowLog.request, body, what) };
    case 'escrowRecord':
      return { method, request: parseAs(nodeMethods.escrowRecord.request, body, what) };
    case 'jobLog':
      return { method, request: parseAs(nodeMethods.jobLog.request, body, what) };
    case 'jobRecord':
      return { method, request: parseAs(nodeMethods.jobRecord.request, body, what) };
  }
}

/** Budget for the evidence in one poll response, well under the frame limit. */
const pollResponseBytesMax = 4 * 1024 * 1024;

function readOnly(state: Pick<ContractState, 'get'>): ContractState {
  return {
    get: (key) => state.get(key),
    put: () => {
      throw new Error('queries must not write');
    },
    delete: () => {
      throw new Error('queries must not write');
    },
  };
}

export class ClientService {
  /**
   * Payload-serving connections of each organization's connectors, and which are busy: one per open
   * connection, removed when it closes.
   */
  private readonly serving = new Map<string, { peer: RpcPeer; busy: boolean }[]>();
  /** Fetches waiting for an idle serving connection: each leaves when woken or within a second. */
  private readonly servingWaiters = new Map<string, (() => void)[]>();
  /** Merkle trees of the blocks proofs were last built from: the 64 most recent, oldest out first. */
  private readonly treeCache = new Map<string, BlockTrees>();
  private readonly limiter: RateLimiter;
  /** Nonces of the fetch requests this node released or relayed a payload for, until they expire. */
  private readonly fetchNonces = new FetchNonceWindow();
  /** Quota refusals are logged once per organization every 10 s: a flood must not become a log flood. */
  private readonly limitLogged = new LogThrottle(10_000, () => performance.now());
  /**
   * The quota alerts impose on each organization (requests/s, undefined for none), as last read from
   * the registry, and when: read again after a second, or at once when an alert changes. One per
   * approved organization, cleared at every alert change.
   */
  private readonly quotaOverrides = new Map<string, { readonly checkedAt: number }>();
  private readonly unsubscribeAlerts: (() => void) | undefined;

  /** This node's network: fetch requests are checked in its signing domain. */
  private readonly signing: SigningDomain;
  private readonly escrow: EscrowService;
  private readonly jobs: JobService;
  private readonly relay: ConnectorRelay;

  constructor(private readonly options: ClientServiceOptions) {
    this.signing = SigningDomain.of(options.registry.network);
    // The monotonic clock: a wall-clock step (NTP) must neither mint tokens nor starve a bucket.
    this.limiter = new RateLimiter(options.rateLimit ?? defaultRateLimit, () => performance.now());
    const committedReads = {
      registry: options.registry,
      logger: options.logger,
      ...(options.pollWaitMsMax === undefined ? {} : { pollWaitMsMax: options.pollWaitMsMax }),
      committed: (group: string) => {
        const replica = this.replica(group);
        return { replica, state: readOnly(replica.database.committedState) };
      },
      evidence: (replica: PartitionReplica, height: number, index: number) => {
        const block = this.block(replica, height);
        return blockEvidence(block, index, this.trees(block));
      },
    };
    this.escrow = new EscrowService(committedReads);
    this.jobs = new JobService(committedReads);
    this.relay = new ConnectorRelay({
      nodeId: options.nodeId,
      registry: options.registry,
      mesh: options.mesh,
      logger: options.logger,
      servingConnections: (organization) => this.serving.get(organization) ?? [],
      admitRelayed: (nodeId, requester, method) => {
        // Charged to the asking node's organization; the requester must be approved too.
        const organization = this.options.registry.node(nodeId)?.organization ?? '';
        this.requireApproved(organization, method, nodeId);
        this.requireApproved(requester, method, nodeId);
        this.admitQuota(organization, method, nodeId);
      },
    });
    this.unsubscribeAlerts = options.alertQuotas?.onAlert(() => this.quotaOverrides.clear());
  }

  close(): void {
    this.unsubscribeAlerts?.();
    this.relay.close();
    for (const list of this.serving.values()) for (const entry of list) entry.peer.close();
    this.serving.clear();
  }

  /** Handlers for a connector of `organization`. */
  serveConnector(organization: string, peer: RpcPeer): void {
    // Every method a connector may call, ours and the registry's, first takes a token from its
    // organization's bucket, before any decoding or signature check, so a refused request costs next
    // to nothing. A request another node forwards (clientForward) takes a token here too.
    const via = this.options.nodeId;
    const metrics = this.options.metrics;
    peer.admit((method) => {
      try {
        this.requireApproved(organization, method, via);
        this.admitQuota(organization, method, via);
      } catch (error) {
        // Only the partition methods are counted, so that a method name (anyone's string) never
        // becomes a label.
        if (metrics !== undefined && forwardable.has(method))
          metrics.request(method as ForwardableMethod, outcomeOf(error));
        throw error;
      }
    });
    for (const method of forwardableMethods) {
      const serve = (body: CborValue): Promise<CborValue> | CborValue =>
        this.hostedOrForward(parseCall(method, body), organization, via);
      peer.handle(
        method,
        metrics === undefined ? serve : (body) => counted(metrics, method, () => serve(body)),
      );
    }
    handleUnary(peer, nodeMethods, 'status', () => this.status());
    serveRegistry(peer, organization, this.options.registryHost, this.options.logger);
    handleStream(peer, nodeMethods, 'fetchPayload', (request) => this.fetchPayload(organization, request));
    handleUnary(peer, nodeMethods, 'connectorCall', (request) => this.relay.call(organization, request));
    handleUnary(peer, nodeMethods, 'serve', () => {
      const list = this.serving.get(organization) ?? [];
      const entry = { peer, busy: false };
      list.push(entry);
      this.serving.set(organization, list);
      peer.onClose(() => {
        const remaining = (this.serving.get(organization) ?? []).filter((candidate) => candidate !== entry);
        this.serving.set(organization, remaining);
      });
      this.wakeServingWaiter(organization);
      return { ok: true };
    });
  }

  private admitQuota(organization: string, method: string, via?: string): void {
    this.refreshQuotaOverride(organization);
    try {
      this.limiter.admit(organization, `organization ${organization} on node ${this.options.nodeId}`);
    } catch (error) {
      this.options.metrics?.rateLimited(organization);
      this.logRateLimited(organization, method);
      this.observe({ kind: 'rateLimited', organization, method, ...(via === undefined ? {} : { via }) });
      throw error;
    }
  }

  /**
   * Holds `organization` to the quota an alert's rate-limit response set on the ledger (never above
   * this node's own quota), reading the registry at most once a second per organization.
   */
  private refreshQuotaOverride(organization: string): void {
    const quotas = this.options.alertQuotas;
    if (quotas === undefined) return;
    const now = Date.now();
    const cached = this.quotaOverrides.get(organization);
    if (cached !== undefined && now - cached.checkedAt < quotaOverrideTtlMs) return;
    const limit = quotas.activeRateLimit(organization, now);
    this.limiter.override(
      organization,
      limit === undefined ? undefined : Math.min(limit, this.limiter.config.requestsPerSecond),
    );
    // Only approved organizations get here (requireApproved runs first), so the map stays small.
    this.quotaOverrides.set(organization, { checkedAt: now });
  }

  /** Hands an observation to the anomaly service; detection must never fail a request. */
  private observe(seen: Seen): void {
    const sink = this.options.observe;
    if (sink === undefined) return;
    try {
      sink({ ...seen, at: Date.now(), node: this.options.nodeId } as Observation);
    } catch {
      // The sink is the anomaly service, which contains its own failures; nothing to do here.
    }
  }

  /** Runs a payload fetch or message read, observing how it ended (a refusal, or a served payload). */
  private async observedFetch<T>(
    organization: () => string,
    group: string,
    via: string,
    served: boolean,
    body: () => Promise<T> | T,
  ): Promise<T> {
    const topic = this.options.registry.partition(group)?.topic;
    const fields = { ...(topic === undefined ? {} : { topic }), via };
    try {
      const result = await body();
      if (served) this.observe({ kind: 'fetch', organization: organization(), outcome: 'served', ...fields });
      return result;
    } catch (error) {
      const outcome = fetchOutcomeOf(error);
      if (outcome !== undefined)
        this.observe({ kind: 'fetch', organization: organization(), outcome, ...fields });
      throw error;
    }
  }

  /** Only approved organizations act or read; the live registry decides, request by request. */
  private requireApproved(organization: string, method = 'read', via?: string): void {
    const status = this.options.registry.organization(organization)?.status;
    if (status !== 'APPROVED') {
      this.observe({
        kind: 'notApproved',
        organization: status === undefined ? '' : organization,
        status: status ?? 'UNKNOWN',
        method,
        ...(via === undefined ? {} : { via }),
      });
      throw new LedgerbusError(
        ErrorCode.NotApproved,
        `organization ${organization} is ${status ?? 'not registered'}; only approved organizations act or read (a supervisor decides: ledgerbus org approve)`,
      );
    }
  }

  private logRateLimited(organization: string, method: string): void {
    const suppressed = this.limitLogged.admit(organization);
    if (suppressed === undefined) return;
    this.options.logger.warn(
      { organization, method, quota: this.limiter.config, suppressed },
      'organization over its request quota; refusing with RATE_LIMITED (logged at most every 10 s)',
    );
  }

  /**
   * A partition request this node cannot serve itself — it does not replicate the partition (a
   * topic with more partitions than this organization has replicas in) — goes to a replica node,
   * which answers for the same organization. The caller still verifies every proof it gets back.
   */
  private async hostedOrForward(
    call: ForwardableCall,
    organization: string,
    via = this.options.nodeId,
  ): Promise<CborValue> {
    const { method } = call;
    const group = call.request.group;
    if (this.options.replicas.has(group)) return this.local(call, organization, via);
    const partition = this.options.registry.partition(group);
    if (partition === undefined) return this.local(call, organization, via);
    // A forwarded long poll must end before the node-to-node request times out.
    const envelope: RequestOf<PeerMethods['clientForward']> = {
      method,
      organization,
      body:
        (call.method === 'poll' || call.method === 'escrowLog' || call.method === 'jobLog') &&
        call.request.waitMs !== undefined
          ? { ...call.request, waitMs: Math.min(call.request.waitMs, 3_000) }
          : call.request,
    };
    let lastError: unknown;
    for (const nodeId of partition.replicas) {
      try {
        return await this.options.mesh.request(nodeId, 'clientForward', envelope);
      } catch (error) {
        lastError = error;
        if (error instanceof LedgerbusError && !error.retriable && error.code !== ErrorCode.ConnectionClosed)
          throw error;
      }
    }
    throw lastError instanceof Error
      ? lastError
      : new LedgerbusError(ErrorCode.ConnectionClosed, `no replica of ${group} reachable`, {
          retriable: true,
        });
  }

  /**
   * Serves a request node `callerId` forwarded for one of its organization's connectors. A node
   * speaks only for its own organization: reads are answered for the calling node's organization,
   * whatever the body claims, unless the organization itself signed them: a publish (the contract
   * checks its signature; a sponsored connector's) or a payload fetch's recipient check, which
   * carries the recipient's signed fetch request. Forwarded requests take a token from the
   * organization's bucket here too, so forwarding is no way around the quota.
   */
  forwarded(callerId: string, body: CborValue): Promise<CborValue> | CborValue {
    const envelope = parseAs(peerMethods.clientForward.request, body, 'clientForward request');
    const { method, organization } = envelope;
    const call = parseCall(method, envelope.body);
    const callerOrganization = this.options.registry.node(callerId)?.organization;
    if (
      method !== 'publish' &&
      organization !== callerOrganization &&
      !this.signedByOrganization(organization, call)
    ) {
      this.options.logger.warn(
        { node: callerId, organization, method },
        'refused a forwarded read for another organization than the calling node',
      );
      throw new LedgerbusError(
        ErrorCode.PeerNotAuthorized,
        `node ${callerId} of ${callerOrganization ?? 'no organization'} cannot read for ${organization}: connect ${organization}'s connector to a replica node of the partition`,
      );
    }
    // A publish names an organization no one has verified yet (the contract checks its signature
    // later): the forwarding node's organization answers for it, so naming another costs it nothing.
    const accountable = method === 'publish' ? (callerOrganization ?? '') : organization;
    this.requireApproved(accountable, `clientForward ${method}`, callerId);
    this.admitQuota(accountable, `clientForward ${method}`, callerId);
    const group = call.request.group;
    if (!this.options.replicas.has(group)) {
      throw new LedgerbusError(
        ErrorCode.WrongGroup,
        `node ${this.options.nodeId} does not host ${String(group)}`,
        {
          retriable: true,
        },
      );
    }
    return this.local(call, organization, callerId);
  }

  /** True if `call` carries a fetch request `organization` signed for the very message it asks about. */
  private signedByOrganization(organization: string, call: ForwardableCall): boolean {
    if (call.method !== 'message' || call.request.fetchRequest === undefined) return false;
    const request = this.checkFetch(organization, call.request.group, call.request.fetchRequest);
    return request.id === call.request.id;
  }

  private local(call: ForwardableCall, organization: string, via: string): Promise<CborValue> | CborValue {
    switch (call.method) {
      case 'publish':
        return this.publish(call.request);
      case 'poll':
        return this.poll(organization, call.request);
      case 'message': {
        const request = call.request;
        return this.observedFetch(
          () => organization,
          request.group,
          via,
          false,
          () => this.message(organization, request),
        );
      }
      case 'messages':
        return this.messages(organization, call.request);
      case 'receipt': {
        const request = call.request;
        return this.observedFetch(
          () => organization,
          request.group,
          via,
          false,
          () => this.receipt(organization, request),
        );
      }
      case 'escrowLog':
        return this.escrow.log(organization, call.request);
      case 'escrowRecord':
        return this.escrow.record(organization, call.request);
      case 'jobLog':
        return this.jobs.log(organization, call.request);
      case 'jobRecord':
        return this.jobs.record(organization, call.request);
    }
  }

  /** Handlers another node may call (on a bulk connection of its own). */
  serveNode(nodeId: string, peer: RpcPeer): void {
    handleStream(peer, peerMethods, 'relayPayload', (request) => this.relayPayload(nodeId, request));
    handleUnary(peer, peerMethods, 'relayConnectorCall', (request) => this.relay.relayed(nodeId, request));
  }

  // ---- publish ----

  private async publish({ group, request }: Request<'publish'>): Promise<Response<'publish'>> {
    const replica = this.replica(group);
    const committed = await replica.submit(request, () =>
      this.options.mesh.forwardToReplicas(replica.partition, request),
    );
    const block = this.block(replica, committed.height);
    return {
      height: committed.height,
      transactionIndex: committed.transactionIndex,
      evidence: blockEvidenceToCbor(blockEvidence(block, committed.transactionIndex, this.trees(block))),
    };
  }

  // ---- reads ----

  private status(): Response<'status'> {
    const partitions: Response<'status'>['partitions'][number][] = [];
    for (const [group, replica] of this.options.replicas) {
      const status = partitionStatus(readOnly(replica.database.committedState), group);
      partitions.push({ group, height: replica.height, view: replica.view, nextOffset: status.nextOffset });
    }
    const serving = [...this.serving].map(([organization, list]) => ({
      organization,
      connections: list.length,
      busy: list.filter((entry) => entry.busy).length,
    }));
    return {
      node: this.options.nodeId,
      partitions,
      peers: this.options.mesh.connected(),
      serving,
      groups: this.options.registryHost.groupStatus(),
    };
  }

  private async poll(organization: string, body: Request<'poll'>): Promise<Response<'poll'>> {
    const { group, fromOffset } = body;
    const limit = Math.min(pollMessagesMax, Math.max(1, body.limit ?? 100));
    const waitMs = Math.min(this.options.pollWaitMsMax ?? 30_000, body.waitMs ?? 0);
    const replica = this.replica(group);
    const state = readOnly(replica.database.committedState);
    if (waitMs > 0 && partitionStatus(state, group).nextOffset <= fromOffset) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        const unsubscribe = replica.onBlock(() => {
          if (partitionStatus(state, group).nextOffset > fromOffset) done();
        });
        function done(): void {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        }
      });
    }
    const page = messagesByOffset(state, group, { fromOffset, limit });
    const seesAll = actsAs(this.options.registry.organization(organization), 'supervisor');
    // Messages of one producer batch share one block evidence (the whole batch transaction is in
    // it), so evidence goes once per transaction and each message names it: a page of a 1,000-message
    // batch is one evidence, not a thousand copies. The page stops at a byte budget (at least one
    // message), so a response always fits in a frame.
    const evidences: CborValue[] = [];
    const evidenceIndex = new Map<string, number>();
    const messages: Response<'poll'>['messages'][number][] = [];
    let bytes = 0;
    let nextOffset = page.nextOffset;
    for (const view of page.messages) {
      if (!seesAll && !view.metadata.recipients.includes(organization)) continue;
      const key = `${view.height}/${view.transactionIndex}`;
      let index = evidenceIndex.get(key);
      if (index === undefined) {
        const block = this.block(replica, view.height);
        const evidence = blockEvidence(block, view.transactionIndex, this.trees(block));
        const size = evidence.transaction.length + evidence.result.length + 2048;
        if (messages.length > 0 && bytes + size > pollResponseBytesMax) {
          nextOffset = view.offset;
          break;
        }
        bytes += size;
        index = evidences.length;
        evidences.push(blockEvidenceToCbor(evidence));
        evidenceIndex.set(key, index);
      }
      messages.push({
        offset: view.offset,
        id: view.metadata.id,
        state: view.state,
        evidence: index,
        messageIndex: view.messageIndex,
      });
    }
    const { nextOffset: endOffset, height } = { ...partitionStatus(state, group), height: replica.height };
    return { evidences, messages, nextOffset, endOffset, height };
  }

  private message(organization: string, { group, id }: Request<'message'>): Response<'message'> {
    const view = this.visibleMessage(organization, group, id);
    return {
      id,
      state: view.state,
      sender: view.sender,
      offset: view.offset,
      height: view.height,
      recipients: view.recipients.map((recipient) => ({
        organization: recipient.organization,
        state: recipient.state,
        ...(recipient.height === undefined ? {} : { height: recipient.height }),
      })),
    };
  }

  /** Each visible message's lifecycle; the others (not committed, or not the caller's) are left out. */
  private messages(organization: string, { group, ids }: Request<'messages'>): Response<'messages'> {
    const messages: Response<'message'>[] = [];
    for (const id of ids) {
      try {
        messages.push(this.message(organization, { group, id }));
      } catch (error) {
        if (!isLedgerbusError(error)) throw error;
        if (error.code !== ErrorCode.MessageNotFound && error.code !== ErrorCode.NotRecipient) throw error;
      }
    }
    return { messages };
  }

  private receipt(organization: string, { group, id }: Request<'receipt'>): Response<'receipt'> {
    const replica = this.replica(group);
    const view = this.visibleMessage(organization, group, id);
    const deliveries: DeliveryEvidence[] = [];
    for (const recipient of view.recipients) {
      if (recipient.state !== 'DELIVERED' || recipient.height === undefined) continue;
      const block = this.block(replica, recipient.height);
      deliveries.push(
        deliveryEvidenceAt(
          blockEvidence(block, recipient.transactionIndex ?? 0, this.trees(block)),
          recipient.deliveryIndex ?? 0,
          recipient.organization,
        ),
      );
    }
    return {
      state: view.state,
      acceptance: acceptanceProofToCbor(this.acceptanceProof(replica, view)),
      deliveries: deliveries.map(deliveryEvidenceToCbor),
    };
  }

  // ---- payload relay (DESIGN §3 steps 7–16) ----

  private async fetchPayload(
    organization: string,
    { group, fetchRequest: fetchBytes }: Request<'fetchPayload'>,
  ): Promise<ReturnType<typeof rpcStream>> {
    const { request, view } = await this.observedFetch(
      () => organization,
      group,
      this.options.nodeId,
      true,
      async () => {
        const checked = this.checkFetch(organization, group, fetchBytes);
        this.fetchNonces.admit(checked, Date.now());
        return {
          request: checked,
          view: await this.recipientView(checked.requester, group, checked.id, fetchBytes),
        };
      },
    );
    this.options.logger.info(
      { id: request.id, requester: request.requester, sender: view.sender },
      'serving a payload',
    );
    // The sender's connector may serve through this very node (its own, or a sponsor's).
    if ((this.serving.get(view.sender)?.length ?? 0) > 0)
      return this.fromLocalConnector(view.sender, group, fetchBytes);
    const senderNode = this.options.registry.nodes().find((node) => node.organization === view.sender);
    if (senderNode === undefined) {
      throw new LedgerbusError(
        ErrorCode.ConnectionClosed,
        `organization ${view.sender} has no node to fetch from`,
        { retriable: true },
      );
    }
    if (senderNode.id === this.options.nodeId) return this.fromLocalConnector(view.sender, group, fetchBytes);
    // A bulk connection of its own, so this stream never shares a socket with consensus traffic.
    const connection = await connectFramed({
      ...this.options.mesh.addressOf(senderNode),
      identity: this.options.mesh.identity,
      expectedPublicKey: senderNode.publicKey,
      timeoutMs: 5_000,
    });
    const bulk = new RpcPeer(connection, { requestTimeoutMs: 60_000 });
    try {
      const { head, stream } = await bulk.requestStream('relayPayload', { group, fetchRequest: fetchBytes });
      stream.once('close', () => bulk.close());
      return rpcStream(stream, head);
    } catch (error) {
      bulk.close();
      throw error;
    }
  }

  private async relayPayload(
    nodeId: string,
    { group, fetchRequest: fetchBytes }: RequestOf<PeerMethods['relayPayload']>,
  ): Promise<ReturnType<typeof rpcStream>> {
    // Charged to the requester the request names once its signature is verified; to the relaying
    // node's organization until then, so a forged request cannot pin refusals on its named requester.
    let requester = this.options.registry.node(nodeId)?.organization ?? '';
    const { request, view } = await this.observedFetch(
      () => requester,
      group,
      nodeId,
      true,
      async () => {
        const checked = this.checkFetch(undefined, group, fetchBytes, (decoded) => (requester = decoded));
        this.fetchNonces.admit(checked, Date.now());
        return {
          request: checked,
          view: await this.recipientView(checked.requester, group, checked.id, fetchBytes),
        };
      },
    );
    this.options.logger.info(
      { from: nodeId, id: request.id, requester: request.requester },
      'relaying a payload',
    );
    return this.fromLocalConnector(view.sender, group, fetchBytes);
  }

  /**
   * The sender of message `id` if `requester` is one of its recipients, from committed state: this
   * node's own replica of the partition, or else a replica node's answer for the requester, which
   * the requester's signed fetch request authorizes.
   */
  private async recipientView(
    requester: string,
    group: string,
    id: string,
    fetchRequest: Uint8Array,
  ): Promise<{ sender: string }> {
    if (this.options.replicas.has(group)) return this.visibleMessage(requester, group, id, true);
    const answer = parseAs(
      nodeMethods.message.response,
      await this.hostedOrForward({ method: 'message', request: { group, id, fetchRequest } }, requester),
      'message answer',
    );
    const isRecipient = answer.recipients.some((recipient) => recipient.organization === requester);
    if (!isRecipient) {
      this.options.logger.warn(
        { organization: requester, id, group },
        'refused access to a message by a non-recipient',
      );
      throw new LedgerbusError(ErrorCode.NotRecipient, `${requester} is not a recipient of message ${id}`);
    }
    return { sender: answer.sender };
  }

  private checkFetch(
    organization: string | undefined,
    group: string,
    bytes: Uint8Array,
    decoded?: (requester: string) => void,
  ): FetchRequest {
    const request = decodeFetchRequest(bytes);
    if (request.partitionId !== group)
      throw new LedgerbusError(ErrorCode.WrongGroup, 'fetch request is for another partition');
    if (organization !== undefined && request.requester !== organization) {
      throw new LedgerbusError(
        ErrorCode.NotRecipient,
        `a connector of ${organization} cannot fetch for ${request.requester}`,
      );
    }
    // Fresh and for this network, before the signature: a request of another network is refused
    // WRONG_NETWORK (its signature, in that network's domain, would fail here anyway). The nonce is
    // taken only where a payload is released or relayed (`fetchNonces`), since the same request is
    // also shown to a replica for the recipient check.
    checkFetchFreshness(request, this.signing.network, Date.now());
    const keys = this.options.registry.organization(request.requester)?.signingKeys ?? [];
    if (
      !keys.some((key) => bytesEqual(key, request.signerKey)) ||
      !fetchRequestSignatureValid(request, this.signing)
    ) {
      throw new LedgerbusError(
        ErrorCode.BadSignature,
        'fetch request is not signed by a key of its requester for this network',
      );
    }
    // Only now is the requester the request names its own word: before, whoever sent it is to blame.
    decoded?.(request.requester);
    // A relayed fetch (no calling connector) names its requester: it must be approved too.
    this.requireApproved(request.requester, 'fetchPayload');
    return request;
  }

  private async fromLocalConnector(
    sender: string,
    group: string,
    fetchBytes: Uint8Array,
  ): Promise<ReturnType<typeof rpcStream>> {
    const entry = await this.idleServingConnection(sender);
    entry.busy = true;
    let stream: Readable;
    let head: CborValue;
    try {
      ({ head, stream } = await entry.peer.requestStream('servePayload', {
        group,
        fetchRequest: fetchBytes,
      }));
    } catch (error) {
      entry.busy = false;
      this.wakeServingWaiter(sender);
      throw error;
    }
    stream.once('close', () => {
      entry.busy = false;
      this.wakeServingWaiter(sender);
    });
    return rpcStream(stream, head);
  }

  private async idleServingConnection(organization: string): Promise<{ peer: RpcPeer; busy: boolean }> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const idle = (this.serving.get(organization) ?? []).find((entry) => !entry.busy && !entry.peer.closed);
      if (idle !== undefined) return idle;
      if (Date.now() >= deadline) {
        throw new LedgerbusError(
          ErrorCode.ConnectionClosed,
          `no connector of ${organization} is serving payloads now`,
          {
            retriable: true,
          },
        );
      }
      await new Promise<void>((resolve) => {
        const list = this.servingWaiters.get(organization) ?? [];
        const wake = (): void => {
          clearTimeout(timer);
          resolve();
        };
        // A waiter that timed out leaves the list: waiting must not leave closures behind.
        const timer = setTimeout(() => {
          const remaining = (this.servingWaiters.get(organization) ?? []).filter((entry) => entry !== wake);
          if (remaining.length === 0) this.servingWaiters.delete(organization);
          else this.servingWaiters.set(organization, remaining);
          resolve();
        }, 1_000);
        list.push(wake);
        this.servingWaiters.set(organization, list);
      });
    }
  }

  private wakeServingWaiter(organization: string): void {
    const list = this.servingWaiters.get(organization);
    const next = list?.shift();
    next?.();
  }

  // ---- shared ----

  private replica(group: string): PartitionReplica {
    const replica = this.options.replicas.get(group);
    if (replica === undefined) {
      throw new LedgerbusError(
        ErrorCode.WrongGroup,
        `node ${this.options.nodeId} does not host partition ${group}`,
      );
    }
    return replica;
  }

  /**
   * The committed message if `organization` may see it: its sender, a recipient or a supervisor.
   * With `recipientOnly`, only a recipient (a payload fetch): anyone else is NOT_RECIPIENT, logged.
   */
  private visibleMessage(
    organization: string,
    group: string,
    id: string,
    recipientOnly = false,
  ): MessageView {
    const replica = this.replica(group);
    const view = messageById(readOnly(replica.database.committedState), group, id);
    if (view === undefined) {
      throw new LedgerbusError(ErrorCode.MessageNotFound, `message ${id} is not committed on ${group}`, {
        retriable: true,
      });
    }
    const isRecipient = view.metadata.recipients.includes(organization);
    const allowed = recipientOnly
      ? isRecipient
      : isRecipient ||
        view.sender === organization ||
        actsAs(this.options.registry.organization(organization), 'supervisor');
    if (!allowed) {
      this.options.logger.warn({ organization, id, group }, 'refused access to a message by a non-recipient');
      throw new LedgerbusError(ErrorCode.NotRecipient, `${organization} is not a recipient of message ${id}`);
    }
    return view;
  }

  private block(replica: PartitionReplica, height: number): Block {
    const block = replica.database.blocks.get(height);
    if (block === undefined) throw new LedgerbusError(ErrorCode.StorageCorrupt, `block ${height} is missing`);
    return block;
  }

  private trees(block: Block): BlockTrees {
    const key = `${block.header.partitionId}@${block.header.height}`;
    let trees = this.treeCache.get(key);
    if (trees === undefined) {
      trees = blockTrees(block);
      this.treeCache.set(key, trees);
      if (this.treeCache.size > 64) this.treeCache.delete(this.treeCache.keys().next().value as string);
    }
    return trees;
  }

  private acceptanceProof(replica: PartitionReplica, view: MessageView): AcceptanceProof {
    const block = this.block(replica, view.height);
    return acceptanceProofAt(
      blockEvidence(block, view.transactionIndex, this.trees(block)),
      view.messageIndex,
    );
  }
}
