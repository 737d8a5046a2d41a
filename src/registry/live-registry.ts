/**
 * A `NetworkRegistry` whose contents follow the Raft layer: every call reads the latest view, so the
 * mesh, the client service and the connector see organizations approved and topics created a
 * moment ago without being rebuilt. Deterministic execution never reads it: the SDT contract gets
 * the registry at the indexes its batch names.
 */
import type { Organization, Topic } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { GroupMembership } from '../ledger/block.js';
import type { Genesis } from './genesis-schema.js';
import { RegistryView } from './registry-view.js';
import type { TopicEntry } from './registry-view.js';
import type { NetworkRegistry, NodeInfo, PartitionInfo } from './types.js';

export class LiveRegistry implements NetworkRegistry {
  /** One per subscriber, removed by the function `onChange` returns. */
  private readonly listeners = new Set<(view: RegistryView) => void>();

  constructor(private view: RegistryView) {}

  get current(): RegistryView {
    return this.view;
  }

  /**
   * Replaces the view. Throws WRONG_NETWORK, keeping the current view, if `view` is of another
   * network: what this process signs and verifies is bound to the network it started in (a connector
   * whose node answers for another consortium must not follow that consortium's registry).
   */
  update(view: RegistryView): void {
    if (view.network !== this.view.network) {
      throw new LedgerbusError(
        ErrorCode.WrongNetwork,
        `the registry offered is of network ${view.network}, this process serves ${this.view.network}`,
      );
    }
    this.view = view;
    for (const listener of this.listeners) listener(view);
  }

  onChange(listener: (view: RegistryView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get network(): string {
    return this.view.network;
  }
  organization(id: string): Organization | undefined {
    return this.view.organization(id);
  }
  organizations(): readonly Organization[] {
    return this.view.organizations();
  }
  encryptionKey(organization: string): Uint8Array | undefined {
    return this.view.encryptionKey(organization);
  }
  node(id: string): NodeInfo | undefined {
    return this.view.node(id);
  }
  nodes(): readonly NodeInfo[] {
    return this.view.nodes();
  }
  nodeByKey(publicKey: Uint8Array): NodeInfo | undefined {
    return this.view.nodeByKey(publicKey);
  }
  organizationBySigningKey(publicKey: Uint8Array): Organization | undefined {
    return this.view.organizationBySigningKey(publicKey);
  }
  topic(name: string): Topic | undefined {
    return this.view.topic(name);
  }
  topics(): readonly Topic[] {
    return this.view.topics();
  }
  topicEntry(name: string): TopicEntry | undefined {
    return this.view.topicEntry(name);
  }
  partition(groupId: string): PartitionInfo | undefined {
    return this.view.partition(groupId);
  }
  partitions(): readonly PartitionInfo[] {
    return this.view.partitions();
  }
  membership(groupId: string, configEpoch: number): GroupMembership | undefined {
    return this.view.membership(groupId, configEpoch);
  }
}

/** A live registry that starts from genesis (a connector's, until its node's registry arrives). */
export function liveRegistryFromGenesis(genesis: Genesis): LiveRegistry {
  return new LiveRegistry(RegistryView.fromGenesis(genesis));
}
