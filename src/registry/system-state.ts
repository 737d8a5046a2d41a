/**
 * The __system group's state machine (DESIGN §2, §8): the organization registry with its
 * registration workflow, the node registry and the list of topics. Genesis only bootstraps it (every
 * genesis organization APPROVED); afterwards it changes only by admin transactions committed in the
 * group's Raft log, applied in log order by every node, deterministically: the same log gives the
 * same registry, version by version (see `Versions`).
 *
 * The data catalog (`catalogPublish`, `catalogWithdraw`) is decided here too, but kept beside the
 * versions in one `CatalogState`: a catalog change makes no registry version (see catalog-state.ts).
 * Alerts (`raiseAlert` by nodes, `ackAlert` and `setAlertPolicy` by supervisors) are kept the same
 * way, in one `AlertState` (alert-state.ts).
 */
import { bytesEqual, decodeWith, encodeWith, fromHex, t, toHex } from '../codec/index.js';
import { SigningDomain } from '../crypto/index.js';
import { partitionGroupId, validateTopicPolicy } from '../contracts/registry.js';
import type {
  Organization,
  OrganizationRole,
  OrganizationStatus,
  TopicPolicy,
} from '../contracts/registry.js';
import {
  ADMIN_SIGNING_TYPE,
  AdminReject,
  NODE_POSSESSION_TYPE,
  SYSTEM_GROUP,
  adminLimits,
  adminSigningPayload,
  decodeRegistryEntry,
  defaultQuotas,
  encodeRegistryResult,
  nodePossessionPayload,
  policySchema,
  quotasSchema,
  replicaSetSchema,
  systemActionKinds,
  nodeAddress,
} from './admin-transactions.js';
import type {
  AdminAction,
  AdminTransaction,
  Quotas,
  RegistryResult,
  ReplicaRecord,
} from './admin-transactions.js';
import { AlertState, alertSnapshotSchema } from './alert-state.js';
import type { AlertChange, AlertListener, AlertQuery } from './alert-state.js';
import type { AlertPolicy, AlertRecord } from './alerts.js';
import { CatalogState, catalogSnapshotSchema } from './catalog-state.js';
import type { CatalogChange, CatalogListener } from './catalog-state.js';
import type { CatalogEntry } from './catalog.js';
import type { Genesis } from './genesis-schema.js';
import { AdminNonceWindow, replayWindowSnapshotSchema } from './nonce-window.js';
import type { AdminReplayGuard } from './nonce-window.js';
import { Versions } from './versions.js';

export interface RegisteredOrganization extends Organization {
  readonly encryptionKey: Uint8Array;
  /** Roles a registration asked for; `roles` holds only what a supervisor granted. */
  readonly requestedRoles?: readonly OrganizationRole[];
}

export interface RegisteredNode {
  readonly id: string;
  readonly organization: string;
  readonly publicKey: Uint8Array;
  readonly address: string;
}

/** A topic's partition configuration at one epoch. */
export interface PartitionConfig {
  readonly configEpoch: number;
  readonly replicas: readonly ReplicaRecord[];
}

/** Everything a topic's Raft group starts from; its own log changes it afterwards. */
export interface TopicConfig {
  readonly name: string;
  /** Organization that created it (may administer it), or null for genesis topics (supervisors only). */
  readonly owner: string | null;
  readonly partitions: readonly PartitionConfig[];
  readonly producers: readonly string[];
  readonly consumers: readonly string[];
  readonly policy: TopicPolicy;
}

export interface SystemTopic {
  readonly config: TopicConfig;
  /** __system index at which the topic was created (0 for genesis topics). */
  readonly createdAt: number;
  /** Raft membership of the topic's group, fixed at creation; its leader adds learners later. */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

/** The registry at one __system index. Immutable: a change makes a new one. */
export interface SystemView {
  readonly network: string;
  readonly index: number;
  readonly organizations: ReadonlyMap<string, RegisteredOrganization>;
  readonly nodes: ReadonlyMap<string, RegisteredNode>;
  readonly topics: ReadonlyMap<string, SystemTopic>;
  /** The bounds a supervisor set (`setQuotas`), or `defaultQuotas`. */
  readonly quotas: Quotas;
  /**
   * The replay window of admin transactions (nonce-window.ts). One shared by every version and grown
   * in place (replays are checked against the latest registry only), so a transaction costs one
   * entry, not a copy of every nonce before it.
   */
  readonly nonces: AdminReplayGuard;
}

/** How many voters a Raft group gets from its candidate nodes: 3, or 5 from 5 nodes on. */
export function raftVotersFrom(candidates: readonly string[]): { voters: string[]; learners: string[] } {
  const sorted = [...new Set(candidates)].sort();
  const count = sorted.length >= 5 ? 5 : Math.min(3, sorted.length);
  return { voters: sorted.slice(0, count), learners: sorted.slice(count) };
}

export function genesisSystemView(genesis: Genesis): SystemView {
  const organizations = new Map<string, RegisteredOrganization>();
  for (const entry of genesis.organizations) {
    organizations.set(entry.id, {
      id: entry.id,
      roles: [...entry.roles],
      status: 'APPROVED',
      signingKeys: entry.signingKeys.map((key) => fromHex(key)),
      encryptionKey: fromHex(entry.encryptionKey),
    });
  }
  const nodes = new Map<string, RegisteredNode>();
  for (const entry of genesis.nodes) {
    nodes.set(entry.id, {
      id: entry.id,
      organization: entry.organization,
      publicKey: fromHex(entry.publicKey),
      address: entry.address,
    });
  }
  const topics = new Map<string, SystemTopic>();
  for (const entry of genesis.topics) {
    const partitions = entry.partitions.map((partition) => ({
      configEpoch: 0,
      replicas: partition.replicas.map((id) => ({ id, publicKey: nodes.get(id)!.publicKey })),
    }));
    topics.set(entry.name, {
      config: {
        name: entry.name,
        owner: null,
        partitions,
        producers: [...entry.producers],
        consumers: [...entry.consumers],
        policy: { ...entry.policy },
      },
      createdAt: 0,
      ...raftVotersFrom(partitions.flatMap((partition) => partition.replicas.map((replica) => replica.id))),
    });
  }
  return {
    network: genesis.network,
    index: 0,
    organizations,
    nodes,
    topics,
    quotas: defaultQuotas,
    nonces: new AdminNonceWindow(),
  };
}

/**
 * Who holds `key` in the registry, as a sentence, or undefined: every organization signing key and
 * every node key is distinct, so a pinned key names exactly one party in exactly one role.
 */
export function keyHolder(
  view: Pick<SystemView, 'organizations' | 'nodes'>,
  key: Uint8Array,
): string | undefined {
  for (const organization of view.organizations.values()) {
    if (organization.signingKeys.some((existing) => bytesEqual(existing, key))) {
      return `organization ${organization.id}`;
    }
  }
  for (const node of view.nodes.values()) {
    if (bytesEqual(node.publicKey, key)) return `node ${node.id}`;
  }
  return undefined;
}

/** An approved organization holding `role`: the only kind whose role grants anything. */
export function actsAs(organization: Organization | undefined, role: OrganizationRole): boolean {
  return (
    organization !== undefined && organization.status === 'APPROVED' && organization.roles.includes(role)
  );
}

/** What approving a registration grants when the supervisor names no roles: `member` if requested. */
function defaultGrant(requested: readonly OrganizationRole[]): OrganizationRole[] {
  return requested.filter((role) => role === 'member');
}

export function rejected(reason: string, detail?: string): RegistryResult {
  return detail === undefined ? { status: 'REJECTED', reason } : { status: 'REJECTED', reason, detail };
}

class Refusal extends Error {
  constructor(readonly result: RegistryResult) {
    super(result.status === 'REJECTED' ? result.reason : 'OK');
  }
}

function refuse(reason: string, detail?: string): never {
  throw new Refusal(rejected(reason, detail));
}

/**
 * Checks what every admin transaction needs, in any group: its group, a known organization (unless
 * it registers itself), a key of that organization, a valid signature in the signing domain of the
 * view's network (one made for another network is BAD_SIGNATURE) and a fresh nonce.
 *
 * A `raiseAlert` is the exception: it is signed by the key of the node it names, a node of the
 * organization it names, and never by an organization's own key (alerts come from the
 * infrastructure that saw the behaviour). Only __system holds alerts: `view.nodes` is given there.
 */
export function authenticate(
  view: Pick<SystemView, 'network' | 'organizations' | 'nonces'> & Partial<Pick<SystemView, 'nodes'>>,
  transaction: AdminTransaction,
  group: string,
): RegisteredOrganization | undefined {
  if (transaction.group !== group) refuse(AdminReject.WrongGroup, `transaction is for ${transaction.group}`);
  const organization = view.organizations.get(transaction.organization);
  if (transaction.action.kind === 'raiseAlert') {
    if (view.nodes === undefined) refuse(AdminReject.WrongGroup, 'raiseAlert belongs in __system');
    authenticateNode(view.nodes, organization, transaction, transaction.action.node);
  } else if (transaction.action.kind === 'registerOrganization') {
    if (!transaction.action.signingKeys.some((key) => bytesEqual(key, transaction.signerKey))) {
      refuse(AdminReject.SigningKeyUnknown, 'a registration must be signed by one of the keys it registers');
    }
  } else {
    if (organization === undefined) refuse(AdminReject.OrganizationUnknown, transaction.organization);
    if (!organization.signingKeys.some((key) => bytesEqual(key, transaction.signerKey))) {
      refuse(AdminReject.SigningKeyUnknown, `key is not registered for ${transaction.organization}`);
    }
  }
  if (
    !SigningDomain.of(view.network).verify(
      transaction.signerKey,
      ADMIN_SIGNING_TYPE,
      adminSigningPayload(transaction),
      transaction.signature,
    )
  ) {
    refuse(AdminReject.BadSignature, `not signed by that key for network ${view.network}`);
  }
  const replay = view.nonces.refusal(transaction);
  if (replay !== undefined) refuse(replay.reason, replay.detail);
  return organization;
}

/** A raiseAlert's signer must be the registered key of `nodeId`, a node of the named organization. */
function authenticateNode(
  nodes: ReadonlyMap<string, RegisteredNode>,
  organization: RegisteredOrganization | undefined,
  transaction: AdminTransaction,
  nodeId: string,
): void {
  if (organization === undefined) refuse(AdminReject.OrganizationUnknown, transaction.organization);
  if (organization.signingKeys.some((key) => bytesEqual(key, transaction.signerKey))) {
    refuse(
      AdminReject.NotAllowed,
      `alerts are raised by nodes: sign with the node key of ${nodeId}, not a key of ${organization.id}`,
    );
  }
  const node = nodes.get(nodeId);
  if (node === undefined) refuse(AdminReject.NodeUnknown, nodeId);
  if (node.organization !== organization.id) {
    refuse(AdminReject.NotAllowed, `node ${nodeId} belongs to ${node.organization}, not ${organization.id}`);
  }
  if (!bytesEqual(node.publicKey, transaction.signerKey)) {
    refuse(AdminReject.NotAllowed, `not signed with the key of node ${nodeId}`);
  }
}

export function requireApproved(organization: RegisteredOrganization | undefined): RegisteredOrganization {
  if (organization === undefined) refuse(AdminReject.OrganizationUnknown);
  if (organization.status !== 'APPROVED') {
    refuse(
      AdminReject.NotAllowed,
      `${organization.id} is ${organization.status}; only approved organizations act`,
    );
  }
  return organization;
}

export function hasRole(organization: RegisteredOrganization, role: OrganizationRole): boolean {
  return organization.roles.includes(role);
}

/** Replica sets must name registered nodes with their registered keys. */
export function checkReplicas(
  nodes: ReadonlyMap<string, RegisteredNode>,
  replicas: readonly ReplicaRecord[],
): void {
  for (const replica of replicas) {
    const node = nodes.get(replica.id);
    if (node === undefined) refuse(AdminReject.NodeUnknown, replica.id);
    if (!bytesEqual(node.publicKey, replica.publicKey)) {
      refuse(AdminReject.NodeUnknown, `${replica.id}: key differs from the registered node key`);
    }
  }
}

export function checkOrganizations(
  organizations: ReadonlyMap<string, RegisteredOrganization>,
  ids: readonly string[],
): void {
  for (const id of ids) if (!organizations.has(id)) refuse(AdminReject.OrganizationUnknown, id);
}

export function checkPolicy(policy: TopicPolicy): void {
  try {
    validateTopicPolicy(policy);
  } catch (error) {
    refuse(AdminReject.BadPolicy, (error as Error).message);
  }
}

/** Runs `body`, turning a refusal into its result; anything else is a bug and propagates. */
export function guarded(body: () => RegistryResult): RegistryResult {
  try {
    return body();
  } catch (error) {
    if (error instanceof Refusal) return error.result;
    throw error;
  }
}

const alertActionKinds: ReadonlySet<string> = new Set(['raiseAlert', 'ackAlert', 'setAlertPolicy']);

export class SystemStateMachine {
  /** One per registry change (not catalog or alert actions), kept for good: grows with admin changes only. */
  private readonly versions: Versions<SystemView>;
  /** One per subscriber, removed by the function `onChange` returns. */
  private readonly listeners = new Set<(view: SystemView) => void>();
  /**
   * The replay window every version shares (see `SystemView.nonces`): one nonce per admin
   * transaction, alerts and catalog actions included, kept while it is inside its organization's
   * clock window (at most `adminNoncesPerOrganizationMax` per organization).
   */
  private nonces = new AdminNonceWindow();
  /** The data catalog: the latest only, beside the versions (see catalog-state.ts). */
  private readonly catalog = new CatalogState();
  /** Alerts and their policy: the latest only, beside the versions (see alert-state.ts). */
  private readonly alertState = new AlertState();

  constructor(private readonly genesis: Genesis) {
    this.versions = new Versions({ ...genesisSystemView(genesis), nonces: this.nonces });
  }

  get latest(): SystemView {
    return this.versions.latest;
  }

  /** The registry in force at __system index `index`. */
  at(index: number): SystemView {
    return this.versions.at(index);
  }

  /** Called with each new version once it is applied. */
  onChange(listener: (view: SystemView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called with each catalog change once it is applied (a node's search index follows these). */
  onCatalogChange(listener: CatalogListener): () => void {
    return this.catalog.onChange(listener);
  }

  /** Every live catalog entry, in no particular order. */
  catalogEntries(): IterableIterator<CatalogEntry> {
    return this.catalog.all();
  }

  /** `owner`'s live catalog entry for `dataset` (whatever the owner's status now). */
  catalogEntry(owner: string, dataset: string): CatalogEntry | undefined {
    return this.catalog.get(owner, dataset);
  }

  /** Every alert kept (at most alertLimits.alertsKept), oldest first. */
  alerts(): IterableIterator<AlertRecord> {
    return this.alertState.all();
  }

  alert(id: string): AlertRecord | undefined {
    return this.alertState.get(id);
  }

  /** The alert policy in force (the supervisor's, or `defaultAlertPolicy`). */
  alertPolicy(): AlertPolicy {
    return this.alertState.policy();
  }

  /**
   * The request quota (requests/s) alerts impose on `organization` at `nowMs`: the lowest of its
   * unacknowledged, unexpired rate-limit responses; undefined when none applies. Cheap: no copy.
   */
  activeRateLimit(organization: string, nowMs: number): number | undefined {
    return this.alertState.activeRateLimit(organization, nowMs);
  }

  /** A page of alerts (see AlertState.page). */
  alertPage(query: AlertQuery): { alerts: AlertRecord[]; more: boolean } {
    return this.alertState.page(query);
  }

  /** Called with each alert change once it is applied (raised, corroborated, acked, policy, reset). */
  onAlert(listener: AlertListener): () => void {
    return this.alertState.onChange(listener);
  }

  apply(index: number, data: Uint8Array): Uint8Array {
    if (data.length === 0) return encodeRegistryResult({ status: 'OK' });
    const current = this.versions.latest;
    let catalogChange: CatalogChange | undefined;
    let alertChange: AlertChange | undefined;
    const result = guarded(() => {
      let transaction: AdminTransaction;
      try {
        const entry = decodeRegistryEntry(data);
        if (entry.type !== 'admin')
          refuse(AdminReject.Malformed, 'the __system log holds admin transactions only');
        transaction = entry.transaction;
      } catch (error) {
        if (error instanceof Refusal) throw error;
        refuse(AdminReject.Malformed, (error as Error).message);
      }
      if (!systemActionKinds.includes(transaction.action.kind)) {
        refuse(AdminReject.WrongGroup, `${transaction.action.kind} belongs in a topic group`);
      }
      const actor = authenticate(current, transaction, SYSTEM_GROUP);
      if (transaction.action.kind === 'catalogPublish' || transaction.action.kind === 'catalogWithdraw') {
        // Checked in full before anything changes, so a refusal leaves the catalog as it was.
        catalogChange = this.executeCatalog(index, transaction, actor);
        this.nonces.record(transaction);
        return { status: 'OK' };
      }
      if (alertActionKinds.has(transaction.action.kind)) {
        alertChange = this.executeAlert(current, index, transaction, actor);
        this.nonces.record(transaction);
        return alertChange.type === 'corroborated'
          ? { status: 'OK', detail: `corroborates alert ${alertChange.alert.id}` }
          : { status: 'OK' };
      }
      const next = this.execute(current, index, transaction, actor);
      this.nonces.record(transaction);
      this.versions.push(index, { ...next, index, nonces: this.nonces });
      return { status: 'OK' };
    });
    if (catalogChange !== undefined) this.catalog.notify(catalogChange);
    else if (alertChange !== undefined) this.alertState.notify(alertChange);
    else if (result.status === 'OK') for (const listener of this.listeners) listener(this.versions.latest);
    return encodeRegistryResult(result);
  }

  /**
   * A catalog action: an approved member describing (or withdrawing) its own dataset. Makes no
   * registry version: the registry is unchanged, and the catalog lives beside the versions.
   */
  private executeCatalog(
    index: number,
    transaction: AdminTransaction,
    actor: RegisteredOrganization | undefined,
  ): CatalogChange {
    const owner = requireApproved(actor);
    if (!hasRole(owner, 'member')) refuse(AdminReject.NotAllowed, 'only members publish to the data catalog');
    const action = transaction.action;
    if (action.kind === 'catalogWithdraw') {
      const problem = this.catalog.withdrawProblem(owner.id, action.dataset);
      if (problem !== undefined) refuse(problem.reason, problem.detail);
      return this.catalog.withdraw(owner.id, action.dataset);
    }
    if (action.kind !== 'catalogPublish')
      return refuse(AdminReject.Malformed, `${action.kind} is not a catalog action`);
    const problem = this.catalog.publishProblem(owner.id, action);
    if (problem !== undefined) refuse(problem.reason, problem.detail);
    const { kind: _kind, ...description } = action;
    return this.catalog.put({ owner: owner.id, ...description, publishedAt: transaction.timestamp, index });
  }

  /**
   * An alert action (authenticated: a raiseAlert by its node's key). Checked in full before anything
   * changes; makes no registry version.
   */
  private executeAlert(
    view: SystemView,
    index: number,
    transaction: AdminTransaction,
    actor: RegisteredOrganization | undefined,
  ): AlertChange {
    const action = transaction.action;
    if (action.kind === 'raiseAlert') {
      // The node's organization must be in good standing: a suspended one's nodes throttle nobody.
      requireApproved(actor);
      const subject = view.organizations.get(action.subject);
      const problem = this.alertState.raiseProblem(action, {
        registered: subject !== undefined,
        supervisor: subject?.roles.includes('supervisor') === true,
      });
      if (problem !== undefined) refuse(problem.reason, problem.detail);
      return this.alertState.raise(action, transaction.timestamp, index);
    }
    const supervisor = requireApproved(actor);
    if (!hasRole(supervisor, 'supervisor')) {
      refuse(
        AdminReject.NotAllowed,
        `only a supervisor may ${action.kind === 'ackAlert' ? 'acknowledge alerts' : 'set the alert policy'}`,
      );
    }
    if (action.kind === 'ackAlert') {
      const problem = this.alertState.ackProblem(action.id);
      if (problem !== undefined) refuse(problem.reason, problem.detail);
      return this.alertState.ack(action.id, supervisor.id, transaction.timestamp, action.note);
    }
    if (action.kind !== 'setAlertPolicy')
      return refuse(AdminReject.Malformed, `${action.kind} is not an alert action`);
    return this.alertState.setPolicy(action.policy);
  }

  private execute(
    view: SystemView,
    index: number,
    transaction: AdminTransaction,
    actor: RegisteredOrganization | undefined,
  ): SystemView {
    const action: AdminAction = transaction.action;
    switch (action.kind) {
      case 'registerOrganization': {
        if (view.organizations.has(transaction.organization)) {
          refuse(AdminReject.AlreadyExists, `organization ${transaction.organization}`);
        }
        const pending = [...view.organizations.values()].filter((entry) => entry.status === 'PENDING');
        if (pending.length >= view.quotas.pendingRegistrationsMax) {
          refuse(
            AdminReject.QuotaExceeded,
            `${pending.length} registrations already wait for a supervisor (quota ${view.quotas.pendingRegistrationsMax})`,
          );
        }
        if (new Set(action.signingKeys.map((key) => toHex(key))).size !== action.signingKeys.length) {
          refuse(AdminReject.KeyInUse, 'the same key is listed twice');
        }
        for (const key of action.signingKeys) this.requireUnusedKey(view, key);
        const organizations = new Map(view.organizations);
        // Roles are requested, never taken: a supervisor grants them on approval.
        organizations.set(transaction.organization, {
          id: transaction.organization,
          roles: [],
          requestedRoles: [...action.roles],
          status: 'PENDING',
          signingKeys: [...action.signingKeys],
          encryptionKey: action.encryptionKey,
        });
        return { ...view, organizations };
      }
      case 'setOrganizationStatus': {
        const supervisor = requireApproved(actor);
        if (!hasRole(supervisor, 'supervisor'))
          refuse(AdminReject.NotAllowed, 'only a supervisor decides registrations');
        if (action.organization === supervisor.id)
          refuse(AdminReject.NotAllowed, 'a supervisor cannot change its own status');
        const target = view.organizations.get(action.organization);
        if (target === undefined) refuse(AdminReject.OrganizationUnknown, action.organization);
        if (target.status === 'REVOKED') refuse(AdminReject.NotAllowed, `${target.id} is revoked for good`);
        let roles: OrganizationRole[] = [...target.roles];
        if (action.roles !== undefined) roles = [...action.roles];
        else if (action.status === 'APPROVED' && target.status === 'PENDING') {
          roles = defaultGrant(target.requestedRoles ?? []);
        }
        const organizations = new Map(view.organizations);
        organizations.set(target.id, { ...target, roles, status: action.status as OrganizationStatus });
        return { ...view, organizations };
      }
      case 'bindKey': {
        const organization = requireApproved(actor);
        if (organization.signingKeys.length >= adminLimits.signingKeysMax) {
          refuse(AdminReject.NotAllowed, `an organization binds at most ${adminLimits.signingKeysMax} keys`);
        }
        this.requireUnusedKey(view, action.key);
        const organizations = new Map(view.organizations);
        organizations.set(organization.id, {
          ...organization,
          signingKeys: [...organization.signingKeys, action.key],
        });
        return { ...view, organizations };
      }
      case 'registerNode': {
        const organization = requireApproved(actor);
        if (view.nodes.has(action.id)) refuse(AdminReject.AlreadyExists, `node ${action.id}`);
        this.requireUnusedKey(view, action.publicKey);
        const possession = nodePossessionPayload({ organization: organization.id, ...action });
        if (
          !SigningDomain.of(view.network).verify(
            action.publicKey,
            NODE_POSSESSION_TYPE,
            possession,
            action.proof,
          )
        ) {
          refuse(AdminReject.BadProof, 'the node key did not sign this registration (proof of possession)');
        }
        const owned = [...view.nodes.values()].filter((node) => node.organization === organization.id);
        if (owned.length >= view.quotas.nodesPerOrganizationMax) {
          refuse(
            AdminReject.QuotaExceeded,
            `${organization.id} has ${owned.length} nodes (quota ${view.quotas.nodesPerOrganizationMax})`,
          );
        }
        const nodes = new Map(view.nodes);
        nodes.set(action.id, {
          id: action.id,
          organization: organization.id,
          publicKey: action.publicKey,
          address: action.address,
        });
        return { ...view, nodes };
      }
      case 'removeNode': {
        const organization = requireApproved(actor);
        const node = view.nodes.get(action.id);
        if (node === undefined) refuse(AdminReject.NodeUnknown, action.id);
        if (node.organization !== organization.id && !hasRole(organization, 'supervisor')) {
          refuse(AdminReject.NotAllowed, `only ${node.organization} or a supervisor removes node ${node.id}`);
        }
        if (this.genesis.nodes.some((entry) => entry.id === node.id)) {
          // Genesis nodes vote in __system: removing one could cost the registry its quorum.
          refuse(AdminReject.NodeInUse, `${node.id} is a genesis node (a __system voter)`);
        }
        for (const topic of view.topics.values()) {
          const replicates = topic.config.partitions.some((partition) =>
            partition.replicas.some((replica) => replica.id === node.id),
          );
          if (replicates || topic.voters.includes(node.id)) {
            refuse(
              AdminReject.NodeInUse,
              `${node.id} replicates topic ${topic.config.name}; move its partitions first (ledgerbus topic move)`,
            );
          }
        }
        const nodes = new Map(view.nodes);
        nodes.delete(node.id);
        return { ...view, nodes };
      }
      case 'setQuotas': {
        const supervisor = requireApproved(actor);
        if (!hasRole(supervisor, 'supervisor'))
          refuse(AdminReject.NotAllowed, 'only a supervisor sets quotas');
        return { ...view, quotas: { ...action.quotas } };
      }
      case 'createTopic': {
        const organization = requireApproved(actor);
        if (!hasRole(organization, 'member') && !hasRole(organization, 'supervisor')) {
          refuse(AdminReject.NotAllowed, 'only members and supervisors create topics');
        }
        if (view.topics.has(action.name)) refuse(AdminReject.AlreadyExists, `topic ${action.name}`);
        const owned = [...view.topics.values()].filter((topic) => topic.config.owner === organization.id);
        if (owned.length >= view.quotas.topicsPerOrganizationMax) {
          refuse(
            AdminReject.QuotaExceeded,
            `${organization.id} owns ${owned.length} topics (quota ${view.quotas.topicsPerOrganizationMax})`,
          );
        }
        if (action.partitions.length > view.quotas.partitionsPerTopicMax) {
          refuse(
            AdminReject.QuotaExceeded,
            `${action.partitions.length} partitions (quota ${view.quotas.partitionsPerTopicMax} per topic)`,
          );
        }
        for (const replicas of action.partitions) checkReplicas(view.nodes, replicas);
        checkOrganizations(view.organizations, [...action.producers, ...action.consumers]);
        checkPolicy(action.policy);
        const partitions = action.partitions.map((replicas) => ({ configEpoch: 0, replicas }));
        const topics = new Map(view.topics);
        topics.set(action.name, {
          config: {
            name: action.name,
            owner: organization.id,
            partitions,
            producers: [...action.producers],
            consumers: [...action.consumers],
            policy: { ...action.policy },
          },
          createdAt: index,
          ...raftVotersFrom(
            partitions.flatMap((partition) => partition.replicas.map((replica) => replica.id)),
          ),
        });
        return { ...view, topics };
      }
      default:
        return refuse(AdminReject.WrongGroup, `${action.kind} belongs in a topic group`);
    }
  }

  private requireUnusedKey(view: SystemView, key: Uint8Array): void {
    const holder = keyHolder(view, key);
    if (holder !== undefined) refuse(AdminReject.KeyInUse, `key is registered for ${holder}`);
  }

  snapshot(): Uint8Array {
    return encodeWith(systemSnapshotSchema, {
      network: this.versions.latest.network,
      versions: this.versions.all().map(versionToSnapshot),
      replayWindow: this.nonces.toSnapshot(),
      // Left out while empty, so a registry without a catalog snapshots exactly as before it existed.
      ...(this.catalog.empty ? {} : { catalog: this.catalog.toSnapshot() }),
      ...(this.alertState.empty ? {} : { alerts: this.alertState.toSnapshot() }),
    });
  }

  restore(index: number, data: Uint8Array): void {
    const snapshot = decodeWith(systemSnapshotSchema, data, { maxBytes: 256 * 1024 * 1024 });
    // Only the latest version's nonces matter: replays are checked against the latest registry.
    this.nonces =
      snapshot.replayWindow !== undefined
        ? AdminNonceWindow.fromSnapshot(snapshot.replayWindow)
        : AdminNonceWindow.fromLegacyNonces(snapshot.nonces ?? []);
    const nonces = this.nonces;
    const versions = snapshot.versions.map((version) => snapshotToVersion(snapshot.network, version, nonces));
    this.versions.reset(versions[0]!.index, versions[0]!);
    for (const version of versions.slice(1)) this.versions.push(version.index, version);
    const latest = this.versions.latest;
    if (latest.index !== index) this.versions.push(index, { ...latest, index });
    // Listeners of the catalog (search indexes) rebuild from the reset this sends.
    this.catalog.restore(snapshot.catalog);
    this.alertState.restore(snapshot.alerts);
    for (const listener of this.listeners) listener(this.versions.latest);
  }

  /** The partition group ids of every topic, for diagnostics. */
  partitionGroups(): string[] {
    const groups: string[] = [];
    for (const topic of this.latest.topics.values()) {
      topic.config.partitions.forEach((_, partition) =>
        groups.push(partitionGroupId(topic.config.name, partition)),
      );
    }
    return groups;
  }

  get network(): string {
    return this.genesis.network;
  }
}

// ---- snapshots ----

const key32 = t.bytes({ length: 32 });
const name = t.string({ minLength: 1, maxLength: 260 });
export const partitionConfigSchema = t.record({ configEpoch: t.uint(), replicas: replicaSetSchema });
export const topicConfigSchema = t.record({
  name,
  owner: t.nullable(name),
  partitions: t.array(partitionConfigSchema, { maxItems: 1024 }),
  producers: t.array(name, { maxItems: 1024 }),
  consumers: t.array(name, { maxItems: 1024 }),
  policy: policySchema,
});

/** An organization and a node as every encoded registry (snapshots, connectors' copies) holds them. */
export const organizationRecordSchema = t.record({
  id: name,
  roles: t.array(t.oneOf('member', 'supervisor', 'auditor'), { maxItems: 3 }),
  requestedRoles: t.optional(t.array(t.oneOf('member', 'supervisor', 'auditor'), { maxItems: 3 })),
  status: t.oneOf('APPROVED', 'PENDING', 'SUSPENDED', 'REVOKED'),
  signingKeys: t.array(key32, { maxItems: adminLimits.signingKeysMax }),
  encryptionKey: key32,
});
export const nodeRecordSchema = t.record({
  id: name,
  organization: name,
  publicKey: key32,
  address: nodeAddress,
});

const versionSchema = t.record({
  index: t.uint(),
  /** Absent in snapshots written before quotas existed: the defaults. */
  quotas: t.optional(quotasSchema),
  organizations: t.array(organizationRecordSchema, { maxItems: 100_000 }),
  nodes: t.array(nodeRecordSchema, { maxItems: 100_000 }),
  topics: t.array(
    t.record({
      config: topicConfigSchema,
      createdAt: t.uint(),
      voters: t.array(name, { maxItems: 64 }),
      learners: t.array(name, { maxItems: 10_000 }),
    }),
    { maxItems: 100_000 },
  ),
});

/**
 * Every version, not only the latest: topic groups authorize against the registry at older indexes,
 * and a replica that installed this snapshot must answer `at(i)` exactly as one that replayed the log.
 */
const systemSnapshotSchema = t.record({
  network: name,
  versions: t.array(versionSchema, { minItems: 1, maxItems: 1_000_000 }),
  /** Written before the replay window existed: `organization:nonce` strings, kept for good. */
  nonces: t.optional(t.array(t.string({ maxLength: 400 }), { maxItems: 10_000_000 })),
  /** The replay window of admin transactions (nonce-window.ts); absent in snapshots from before it. */
  replayWindow: t.optional(replayWindowSnapshotSchema),
  /** The data catalog; absent in snapshots from before it existed, and while it is empty. */
  catalog: t.optional(catalogSnapshotSchema),
  /** Alerts and their policy; absent in snapshots from before them, and while there are none. */
  alerts: t.optional(alertSnapshotSchema),
});

function versionToSnapshot(view: SystemView): ReturnType<typeof versionSchema.parse> {
  return {
    index: view.index,
    quotas: { ...view.quotas },
    organizations: [...view.organizations.values()].map((organization) => ({
      id: organization.id,
      roles: [...organization.roles],
      ...(organization.requestedRoles === undefined
        ? {}
        : { requestedRoles: [...organization.requestedRoles] }),
      status: organization.status,
      signingKeys: [...organization.signingKeys],
      encryptionKey: organization.encryptionKey,
    })),
    nodes: [...view.nodes.values()].map((node) => ({ ...node })),
    topics: [...view.topics.values()].map((topic) => ({
      config: {
        ...topic.config,
        partitions: topic.config.partitions.map((partition) => ({
          configEpoch: partition.configEpoch,
          replicas: [...partition.replicas],
        })),
        producers: [...topic.config.producers],
        consumers: [...topic.config.consumers],
        policy: { ...topic.config.policy },
      },
      createdAt: topic.createdAt,
      voters: [...topic.voters],
      learners: [...topic.learners],
    })),
  };
}

function snapshotToVersion(
  network: string,
  version: ReturnType<typeof versionSchema.parse>,
  nonces: AdminReplayGuard,
): SystemView {
  return {
    network,
    index: version.index,
    organizations: new Map(version.organizations.map((organization) => [organization.id, organization])),
    nodes: new Map(version.nodes.map((node) => [node.id, node])),
    topics: new Map(version.topics.map((topic) => [topic.config.name, topic])),
    quotas: version.quotas ?? defaultQuotas,
    nonces,
  };
}
