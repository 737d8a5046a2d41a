/**
 * What a node offers connectors about the Raft layer:
 *
 *   admin          a signed admin transaction (register, approve, create topic, add partitions, ACLs…)
 *                  → proposed on its group's leader; answers once this node has applied it, so the
 *                  caller reads its own write next
 *   registry       the live registry (organizations, nodes, topics with partitions and epochs) and the
 *                  registry groups' leaders, applied indexes and global-ledger heads
 *   globalReceipt  a delivery receipt built from a topic's GLOBAL ledger: any node of the topic can
 *                  answer, whether or not it hosts the message's partition
 *   catalogSearch  a ranked full-text search of the data catalog, from this node's index of the
 *   catalogEntry   __system state it applied; entries of owners not APPROVED now are left out
 *   alertList      alerts nodes raised (DESIGN §9) and the supervisor's alert policy, from the same
 *   alertPolicy    __system state: a supervisor sees every alert, anyone else only alerts about itself
 */
import { decodeClientRequest, messageLimits } from '../consensus/pbft/messages.js';
import { decodeTransaction } from '../contracts/transactions.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { Block } from '../ledger/block.js';
import type { RpcPeer } from '../net/index.js';
import { nodeMethods } from '../protocol/client-methods.js';
import type { NodeMethods, ResponseOf } from '../protocol/client-methods.js';
import { handleUnary } from '../protocol/typed-rpc.js';
import {
  acceptanceProofAt,
  acceptanceProofToCbor,
  blockEvidence,
  blockTrees,
  deliveryEvidenceAt,
  deliveryEvidenceToCbor,
} from '../proofs/index.js';
import type { BlockTrees, DeliveryEvidence } from '../proofs/index.js';
import type { Logger } from '../runtime/logger.js';
import type { GlobalLedgerDatabase } from './global-ledger-database.js';
import type { RegistryHost } from './registry-host.js';
import { actsAs } from '../registry/system-state.js';
import { catalogKey } from '../registry/catalog.js';
import { alertLimits } from '../registry/alert-schemas.js';

/** Alerts an alertList page holds when the caller names no limit. */
export const alertPageDefault = 100;

type Response<M extends keyof NodeMethods> = ResponseOf<NodeMethods[M]>;

/**
 * Serves `admin`, `registry` and `globalReceipt` (their shapes in protocol/client-methods.ts) to a
 * connector of `organization` on `peer`; a request of the wrong shape is SCHEMA_MISMATCH.
 */
export function serveRegistry(peer: RpcPeer, organization: string, host: RegistryHost, logger: Logger): void {
  handleUnary(peer, nodeMethods, 'admin', async ({ transaction }) => {
    const { index, group, result } = await host.submitAdmin(transaction);
    await host.waitApplied(group, index).catch(() => undefined);
    logger.info({ organization, group, index, result: result.status }, 'admin transaction');
    return { index, group, result: { ...result } };
  });

  handleUnary(peer, nodeMethods, 'registry', () => {
    const groups = host.groupStatus();
    const heads: Response<'registry'>['globalHeads'][number][] = [];
    for (const topic of host.registry.topics()) {
      const machine = host.topicMachine(topic.name);
      if (machine === undefined) continue;
      heads.push({ topic: topic.name, heads: machine.headHeights() });
    }
    return { registry: host.registry.current.encode(), groups, globalHeads: heads };
  });

  // The catalog is for the network's members (and supervisors): what data exists, never the data.
  const catalogReader = (): void => {
    const caller = host.registry.organization(organization);
    if (!actsAs(caller, 'member') && !actsAs(caller, 'supervisor')) {
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `the data catalog is visible to members and supervisors; ${organization} is neither`,
      );
    }
  };
  // Only approved owners' entries are shown: a suspension hides them at once, an approval shows them.
  const visible = (owner: string): boolean => host.registry.organization(owner)?.status === 'APPROVED';

  handleUnary(peer, nodeMethods, 'catalogSearch', ({ query, domain, owner, limit }) => {
    catalogReader();
    const index = host.systemApplied;
    const hits = host.catalog.search(
      {
        query,
        ...(domain === undefined ? {} : { domain }),
        ...(owner === undefined ? {} : { owner }),
        ...(limit === undefined ? {} : { limit }),
      },
      visible,
    );
    return { hits, index };
  });

  handleUnary(peer, nodeMethods, 'catalogEntry', ({ owner, dataset }) => {
    catalogReader();
    const index = host.systemApplied;
    const entry = host.catalog.entry(owner, dataset, visible);
    if (entry === undefined) {
      throw new LedgerbusError(
        ErrorCode.DatasetNotFound,
        `no dataset ${catalogKey(owner, dataset)} in the catalog (never published, withdrawn, or its owner is not approved); find one with ledgerbus catalog search`,
      );
    }
    return { entry, index };
  });

  // Alerts name who misbehaved and how: a supervisor reads them all, anyone else only its own.
  const approvedCaller = (what: string): { supervisor: boolean } => {
    const caller = host.registry.organization(organization);
    if (caller === undefined || caller.status !== 'APPROVED') {
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `${what} is for approved organizations; ${organization} is ${caller?.status ?? 'not registered'}`,
      );
    }
    return { supervisor: actsAs(caller, 'supervisor') };
  };

  handleUnary(peer, nodeMethods, 'alertList', (request) => {
    const { supervisor } = approvedCaller('the alert list');
    if (!supervisor && request.organization !== undefined && request.organization !== organization) {
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `${organization} sees only alerts about itself, not about ${request.organization}; a supervisor sees all`,
      );
    }
    const subject = supervisor ? request.organization : organization;
    const index = host.systemApplied;
    const { alerts, more } = host.system.alertPage({
      ...(subject === undefined ? {} : { subject }),
      ...(request.sinceMs === undefined ? {} : { sinceMs: request.sinceMs }),
      ...(request.fromIndex === undefined ? {} : { fromIndex: request.fromIndex }),
      ...(request.id === undefined ? {} : { id: request.id }),
      ...(request.newestFirst === undefined ? {} : { newestFirst: request.newestFirst }),
      limit: Math.max(1, Math.min(request.limit ?? alertPageDefault, alertLimits.pageMax)),
    });
    return { alerts, index, ...(more ? { more } : {}) };
  });

  handleUnary(peer, nodeMethods, 'alertPolicy', () => {
    approvedCaller('the alert policy');
    return { policy: host.system.alertPolicy(), index: host.systemApplied };
  });

  handleUnary(peer, nodeMethods, 'globalReceipt', ({ topic, id, partition }) => {
    const ledger = host.globalLedger(topic);
    if (ledger === undefined) {
      throw new LedgerbusError(ErrorCode.WrongGroup, `this node does not follow topic ${topic}`);
    }
    return globalReceipt(ledger, host, organization, topic, id, partition);
  });
}

function globalReceipt(
  ledger: GlobalLedgerDatabase,
  host: RegistryHost,
  organization: string,
  topic: string,
  id: string,
  partition: string | undefined,
): Response<'globalReceipt'> {
  const candidates = ledger
    .findAccepted(id)
    .filter((location) => typeof partition !== 'string' || location.partition === partition)
    .filter((location) => location.partition.startsWith(`${topic}/`));
  // Ids are unique per partition only: without a partition, an id on several is not guessed at.
  const partitions = new Set(candidates.map((location) => location.partition));
  if (partitions.size > 1) {
    throw new LedgerbusError(
      ErrorCode.AmbiguousMessageId,
      `message ${id} is on several partitions of ${topic} (${[...partitions].sort().join(', ')}); name one`,
    );
  }
  const accepted = candidates[0];
  if (accepted === undefined) {
    throw new LedgerbusError(
      ErrorCode.MessageNotFound,
      `message ${id} is not in the global ledger of ${topic} (yet: replication runs every few hundred ms)`,
      { retriable: true },
    );
  }
  const block = requireBlock(ledger, accepted.partition, accepted.height);
  const acceptance = acceptanceProofAt(
    blockEvidence(block, accepted.transactionIndex, trees(block)),
    accepted.messageIndex,
  );
  const recipients = recipientsOf(block, accepted.transactionIndex, accepted.messageIndex);
  const supervisor = actsAs(host.registry.organization(organization), 'supervisor');
  if (organization !== accepted.sender && !recipients.includes(organization) && !supervisor) {
    throw new LedgerbusError(ErrorCode.NotRecipient, `${organization} may not see message ${id}`);
  }
  const deliveries: DeliveryEvidence[] = ledger.findDelivered(accepted.partition, id).map((delivery) => {
    const deliveryBlock = requireBlock(ledger, accepted.partition, delivery.height);
    return deliveryEvidenceAt(
      blockEvidence(deliveryBlock, delivery.transactionIndex, trees(deliveryBlock)),
      delivery.deliveryIndex,
      delivery.recipient,
    );
  });
  const state = deliveries.length === recipients.length ? 'COMPLETED' : 'ACCEPTED';
  return {
    state,
    partition: accepted.partition,
    offset: accepted.offset,
    height: accepted.height,
    acceptance: acceptanceProofToCbor(acceptance),
    deliveries: deliveries.map(deliveryEvidenceToCbor),
  };
}

function requireBlock(ledger: GlobalLedgerDatabase, partition: string, height: number): Block {
  const block = ledger.block(partition, height);
  if (block === undefined) {
    throw new LedgerbusError(ErrorCode.StorageCorrupt, `global ledger lacks ${partition}@${height}`);
  }
  return block;
}

function trees(block: Block): BlockTrees {
  return blockTrees(block);
}

function recipientsOf(block: Block, transactionIndex: number, messageIndex: number): string[] {
  const request = decodeClientRequest(block.transactions[transactionIndex]!, messageLimits.requestBytesMax);
  const transaction = decodeTransaction(request.operation);
  if (transaction.type !== 'publish') return [];
  return [...(transaction.messages[messageIndex]?.recipients ?? [])];
}
