// The Raft layer on a real network in one test process (5 organizations, 5 nodes over pinned TLS,
// SQLite everywhere): the registration workflow decides who may publish, topics are created and
// grow partitions at runtime while producers keep sending, and each topic's global ledger — copied by
// its Raft leader, re-verified by every replica — equals the union of the partition ledgers, also
// across the loss of that leader.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLedgers } from './chaos/checker.js';
import { startLayoutNode } from './support/in-process-node.js';
import { waitFor as poll } from './support/processes.js';
import { groupFileName } from '../src/node/group-files.js';
import { ensureDevnetLayout } from '../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../src/cli/devnet-layout.js';
import { encodeWith, toHex } from '../src/codec/index.js';
import { Connector } from '../src/connector/connector.js';
import { loadConnectorConfig } from '../src/connector/config.js';
import { partitionForKey } from '../src/connector/partitioner.js';
import { openStorage } from '../src/connector/storage/index.js';
import { generateEncryptionKey, loadEncryptionKey } from '../src/crypto/envelope/index.js';
import { SigningDomain, generateSigningKey, loadSigningKey } from '../src/crypto/index.js';
import type { EncryptionKeyPair } from '../src/crypto/envelope/index.js';
import type { SigningKeyPair } from '../src/crypto/index.js';
import { isLedgerbusError } from '../src/errors.js';
import { blockHash } from '../src/ledger/block.js';
import { loadGenesisRegistry, loadNodeConfig } from '../src/node/config.js';
import { createLogger } from '../src/runtime/logger.js';
import { LedgerbusNode } from '../src/node/node.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  signAdminTransaction,
  signNodePossession,
} from '../src/registry/admin-transactions.js';
import { liveRegistryFromGenesis } from '../src/registry/live-registry.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-raft-layer-'));
let layout: DevnetLayout;
const nodes: (LedgerbusNode | undefined)[] = [];
const connectors = new Map<string, Connector>();

async function startNode(index: number): Promise<LedgerbusNode> {
  const node = await startLayoutNode(layout.nodeConfigs[index] as string);
  nodes[index] = node;
  return node;
}

async function startConnector(
  organization: string,
  keys?: { signing: SigningKeyPair; encryption: EncryptionKeyPair; nodeId: string },
): Promise<Connector> {
  const index = Number(organization.slice(3)) - 1;
  const template = loadConnectorConfig(layout.connectorConfigs[Math.min(index, 4)] as string);
  const dataDirectory = keys === undefined ? template.dataDirectory : join(dir, organization, 'connector');
  const storage = await openStorage(
    keys === undefined
      ? template.storage
      : { kind: 'filesystem', directory: join(dataDirectory, 'payloads') },
  );
  const connector = new Connector({
    organization,
    signingKey: keys?.signing ?? loadSigningKey(template.keyFile),
    encryptionKey: keys?.encryption ?? loadEncryptionKey(template.encryptionKeyFile),
    registry: liveRegistryFromGenesis(loadGenesisRegistry(template.genesis).genesis),
    storage,
    dataDirectory,
    ...(keys === undefined ? {} : { nodeId: keys.nodeId }),
    logger: createLogger({ name: organization, level: 'error' }),
    fetchAttemptsMax: 2,
  });
  connector.start();
  connectors.set(organization, connector);
  return connector;
}

function connector(organization: string): Connector {
  return connectors.get(organization) as Connector;
}

function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  return poll(what, probe, timeoutMs, 100);
}

async function failureOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    if (isLedgerbusError(error)) return `${error.code} ${error.message}`;
    throw error;
  }
}

/** Waits until `recipient`'s connector holds every one of `messages`. */
async function allReceivedBy(recipient: string, messages: readonly { id: string }[]): Promise<void> {
  await waitFor(
    `every acknowledged message at ${recipient}`,
    () =>
      messages.every((message) => connector(recipient).receivedMessage(message.id) !== undefined)
        ? true
        : undefined,
    60_000,
  );
}

function send(from: string, topic: string, to: string[], key?: string): ReturnType<Connector['send']> {
  return connector(from).send(topic, [
    {
      value: Readable.from([randomBytes(512)]),
      to,
      ...(key === undefined ? {} : { key: Buffer.from(key) }),
    },
  ]);
}

beforeAll(async () => {
  layout = ensureDevnetLayout({
    directory: dir,
    organizations: 5,
    basePort: 19600,
    messageBytesMax: 1024 * 1024,
  });
  for (let index = 0; index < 5; index++) await startNode(index);
  for (let index = 1; index <= 5; index++) await startConnector(`org${index}`);
}, 60_000);

afterAll(async () => {
  for (const each of connectors.values()) await each.stop();
  for (const node of nodes) await node?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('the registration workflow', () => {
  it('a registered organization is PENDING and cannot publish; approved it can; suspended it cannot', async () => {
    const signing = generateSigningKey();
    const encryption = generateEncryptionKey();
    // The new organization proves possession of its key; org1 only relays the transaction.
    const registration = signAdminTransaction(
      {
        group: SYSTEM_GROUP,
        organization: 'org6',
        nonce: randomBytes(16),
        timestamp: Date.now(),
        action: {
          kind: 'registerOrganization',
          roles: ['member'],
          signingKeys: [signing.publicKey],
          encryptionKey: encryption.publicKey,
        },
      },
      SigningDomain.of(layout.network.genesis.network).signer(signing),
    );
    await connector('org1').submitAdminTransaction(encodeWith(adminTransactionSchema, registration));
    const listed = await connector('org1').organizations();
    expect(listed.find((organization) => organization.id === 'org6')).toMatchObject({
      status: 'PENDING',
      signingKeys: [toHex(signing.publicKey)],
    });
    // The same registration again is a replay.
    expect(
      await failureOf(
        connector('org1').submitAdminTransaction(encodeWith(adminTransactionSchema, registration)),
      ),
    ).toMatch(/^ADMIN_REJECTED REPLAY/);

    // Only a supervisor (org5) may change the ACL of a genesis topic and decide registrations.
    expect(
      await failureOf(
        connector('org1').admin({ kind: 'setOrganizationStatus', organization: 'org6', status: 'APPROVED' }),
      ),
    ).toMatch(/^ADMIN_REJECTED NOT_ALLOWED/);
    const demo = await connector('org5').describeTopic('demo');
    await connector('org5').admin({
      kind: 'setAcl',
      topic: 'demo',
      producers: [...demo.producers, 'org6'],
      consumers: demo.consumers,
    });

    // org6 has no node yet: its connector uses node1 (a sponsor's node). While PENDING it gets no
    // link at all: only approved organizations act or read.
    await startConnector('org6', { signing, encryption, nodeId: 'node1' });
    expect(await failureOf(connector('org6').describeTopic('demo'))).toMatch(/PEER_NOT_AUTHORIZED/);

    await connector('org5').admin({
      kind: 'setOrganizationStatus',
      organization: 'org6',
      status: 'APPROVED',
    });
    await waitFor('org6 to see the new ACL', async () =>
      (await connector('org6').describeTopic('demo')).producers.includes('org6') ? true : undefined,
    );
    const [accepted] = await send('org6', 'demo', ['org2']);
    expect(accepted).toMatchObject({ topic: 'demo', partition: 0 });

    await connector('org5').admin({
      kind: 'setOrganizationStatus',
      organization: 'org6',
      status: 'SUSPENDED',
    });
    // The open link answers NOT_APPROVED from the suspension on (the contract would refuse the
    // publish too, ORGANIZATION_SUSPENDED, if a request got that far).
    expect(await failureOf(send('org6', 'demo', ['org2']))).toMatch(/NOT_APPROVED|PEER_NOT_AUTHORIZED/);
    // Everyone else is unaffected.
    await send('org1', 'demo', ['org2']);
  }, 120_000);
});

describe('the node registry', () => {
  it('a node registered at runtime joins __system, and replicates partitions of a new topic', async () => {
    const key = generateSigningKey();
    await connector('org1').admin({
      kind: 'registerNode',
      id: 'node6',
      publicKey: toHex(key.publicKey),
      address: '127.0.0.1:19606',
      proof: toHex(
        signNodePossession(
          { organization: 'org1', id: 'node6', address: '127.0.0.1:19606' },
          SigningDomain.of(layout.network.genesis.network).signer(key),
        ),
      ),
    });
    const config = loadNodeConfig(layout.nodeConfigs[0] as string);
    const joined = new LedgerbusNode({
      nodeId: 'node6',
      key,
      registry: loadGenesisRegistry(config.genesis),
      dataDirectory: join(dir, 'node6'),
      listenHost: '127.0.0.1',
      listenPort: 19606,
      logger: createLogger({ name: 'node6', level: 'error' }),
    });
    await joined.start();
    nodes[5] = joined;
    // It learns of itself from the __system log, which its leader now replicates to it.
    await waitFor('node6 to follow __system', () => joined.registryHost.registry.node('node6'));

    await connector('org1').admin({
      kind: 'createTopic',
      name: 'joined',
      partitions: 6,
      producers: ['org1'],
      consumers: ['org2'],
    });
    const hosted = await waitFor('node6 to host a partition of the new topic', () => {
      const groups = [...joined.replicas.keys()].filter((group) => group.startsWith('joined/'));
      return groups.length > 0 ? groups : undefined;
    });
    const ids: string[] = [];
    for (let n = 0; n < 30; n++) ids.push((await send('org1', 'joined', ['org2'], `j${n}`))[0]!.id);
    await waitFor('delivery of every message', () =>
      ids.every((id) => connector('org2').receivedMessage(id) !== undefined) ? true : undefined,
    );
    await waitFor('node6 to commit blocks of its partitions', () =>
      hosted.some((group) => (joined.replicas.get(group)?.height ?? 0) > 0) ? true : undefined,
    );
  }, 120_000);
});

describe('topics at runtime', () => {
  it('creates a topic, adds partitions while producing, and loses no acknowledged message', async () => {
    const created = await connector('org1').admin({
      kind: 'createTopic',
      name: 'orders',
      partitions: 2,
      producers: ['org1'],
      consumers: ['org2'],
    });
    expect(created.group).toBe(SYSTEM_GROUP);
    const described = await waitFor('the topic group', async () => {
      const topic = await connector('org1').describeTopic('orders');
      return topic.raft.leader !== '' ? topic : undefined;
    });
    expect(described).toMatchObject({ owner: 'org1', producers: ['org1'], consumers: ['org2'] });
    expect(described.partitions).toHaveLength(2);

    // What the application is handed: each message.received event of org2's connector (an event per
    // stored fetch: a message fetched twice is announced twice), counted per partition and id.
    const handed = new Map<string, number>();
    const unsubscribe = connector('org2').onEvent((event) => {
      if (event.type !== 'message.received' || event.message.topic !== 'orders') return;
      const name = `${event.message.partition}/${event.message.id}`;
      handed.set(name, (handed.get(name) ?? 0) + 1);
    });
    const acked: { id: string; key: string; partition: number; offset: number }[] = [];
    let stop = false;
    const producing = (async () => {
      for (let n = 0; !stop && n < 400; n++) {
        const key = `customer-${n % 25}`;
        const [result] = await send('org1', 'orders', ['org2'], key);
        acked.push({ id: result!.id, key, partition: result!.partition, offset: result!.offset });
      }
    })();
    await waitFor('some messages', () => (acked.length >= 20 ? true : undefined));
    // Only the owner (or a supervisor) may grow the topic.
    expect(
      await failureOf(connector('org3').admin({ kind: 'addPartitions', topic: 'orders', count: 4 })),
    ).toMatch(/^ADMIN_REJECTED NOT_ALLOWED/);
    await connector('org1').admin({ kind: 'addPartitions', topic: 'orders', count: 4 });
    const before = acked.length;
    await waitFor('messages on the new partitions', () =>
      acked.slice(before).some((message) => message.partition >= 2) && acked.length >= before + 40
        ? true
        : undefined,
    );
    stop = true;
    await producing;

    // Keys map as Kafka's default partitioner maps them: murmur2 mod 2 before, mod 4 after.
    for (const message of acked) {
      const key = Buffer.from(message.key);
      expect([partitionForKey(key, 2), partitionForKey(key, 4)]).toContain(message.partition);
    }
    // Every acknowledged message reaches org2's application exactly once. The connector takes each
    // partition in offset order from a durable cursor: once a marker sent last to every partition
    // was handed over, each earlier offset was fetched for the last time.
    await allReceivedBy('org2', acked);
    const markers: string[] = [];
    for (let partition = 0; partition < 4; partition++) {
      const key = Array.from({ length: 200 }, (_, n) => `marker-${n}`).find(
        (candidate) => partitionForKey(Buffer.from(candidate), 4) === partition,
      )!;
      const [marker] = await send('org1', 'orders', ['org2'], key);
      markers.push(`${marker!.partition}/${marker!.id}`);
    }
    await waitFor(
      'every marker to be handed over',
      () => markers.every((name) => handed.has(name)) || undefined,
    );
    unsubscribe();
    const counts = acked.map((message) => handed.get(`${message.partition}/${message.id}`) ?? 0);
    expect(
      counts.filter((count) => count !== 1),
      'acknowledged messages handed other than once',
    ).toEqual([]);
    expect(handed.size).toBe(acked.length + markers.length);

    // The ledgers: in every replica of every partition, the results of the certified blocks accept each
    // acknowledged id once, at its acknowledged offset, and give no offset to two ids.
    // Keys and data folders from the live registry: node6 joined at runtime and may be a replica.
    const registry = nodes[0]!.registryHost.registry;
    const dataOf = (node: number): string =>
      node === 6 ? join(dir, 'node6') : loadNodeConfig(layout.nodeConfigs[node - 1] as string).dataDirectory;
    const description = await connector('org1').describeTopic('orders');
    for (const partition of description.partitions) {
      const replicaNodes = partition.replicas.map((id) => Number(id.slice(4)));
      const ledgers = checkLedgers(
        replicaNodes,
        (node, group) => join(dataOf(node), 'partitions', groupFileName(group)),
        [{ group: partition.group, membership: (epoch) => registry.membership(partition.group, epoch) }],
        acked
          .filter((message) => message.partition === partition.partition)
          .map((message) => ({ ...message, topic: 'orders', recipient: 'org2', sha256: '', ackedAt: 0 })),
      );
      expect(ledgers.problems, partition.group).toEqual([]);
    }
  }, 180_000);

  it('moves a partition to another replica set while producing: a new epoch continues the same ledger', async () => {
    await connector('org1').admin({
      kind: 'createTopic',
      name: 'moving',
      partitions: 1,
      producers: ['org1'],
      consumers: ['org2'],
    });
    const group = 'moving/0';
    const before = await waitFor('the partition to run', async () => {
      const topic = await connector('org1').describeTopic('moving');
      return topic.raft.leader !== '' ? topic.partitions[0]! : undefined;
    });
    expect(before.configEpoch).toBe(0);
    const target = ['node2', 'node3', 'node5', 'node6'];
    expect(before.replicas).not.toEqual(target);

    const acked: { id: string; epochBefore: boolean }[] = [];
    let moved = false;
    const producing = (async () => {
      for (let n = 0; n < 90; n++) {
        const [result] = await send('org1', 'moving', ['org2'], `m${n}`);
        acked.push({ id: result!.id, epochBefore: !moved });
        if (n === 30) {
          await connector('org1').admin({
            kind: 'setReplicas',
            topic: 'moving',
            partition: 0,
            replicas: target,
          });
          moved = true;
        }
      }
    })();
    await producing;
    const after = (await connector('org1').describeTopic('moving')).partitions[0]!;
    expect(after).toMatchObject({ configEpoch: 1, replicas: target });

    // Every acknowledged message, before and after the move, reaches org2 exactly once.
    await allReceivedBy('org2', acked);
    const received = await connector('org2').received({ topic: 'moving', after: 0, limit: 10_000 });
    expect(received.map((message) => message.id).sort()).toEqual(acked.map((message) => message.id).sort());

    // The new replicas run epoch 1 on the same hash chain; the nodes that left stop hosting it.
    const byId = (id: string): LedgerbusNode => nodes[Number(id.slice(4)) - 1]!;
    await waitFor('the old replicas to leave', () =>
      before.replicas.filter((id) => !target.includes(id)).every((id) => !byId(id).replicas.has(group))
        ? true
        : undefined,
    );
    const newcomer = byId('node5').replicas.get(group)!;
    const head = newcomer.height;
    const blocks = newcomer.database.blocks.range(1, head, head);
    expect(blocks.map((block) => block.header.height)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    const firstNew = blocks.findIndex((block) => block.header.configEpoch === 1);
    expect(firstNew).toBeGreaterThan(0);
    expect(blocks.slice(firstNew).every((block) => target.includes(block.header.proposer))).toBe(true);
    const closing = blocks[firstNew - 1]!;
    expect(closing.header.configEpoch).toBe(0);
    expect(blocks[firstNew]!.header.previousHash).toEqual(blockHash(closing.header));
    for (const id of target) {
      await waitFor(`${id} to reach the head`, () =>
        (byId(id).replicas.get(group)?.height ?? 0) >= head ? true : undefined,
      );
      expect(toHex(blockHash(byId(id).replicas.get(group)!.database.blocks.get(head)!.header))).toBe(
        toHex(blockHash(blocks[head - 1]!.header)),
      );
    }
    // Receipts verify across the epochs: one message from each.
    for (const message of [acked[0]!, acked.at(-1)!]) {
      const receipt = await waitFor(`a receipt of ${message.id}`, async () => {
        const bundle = await connector('org1').receipt('moving', message.id, { source: 'partition' });
        return bundle.deliveredTo.includes('org2') ? bundle : undefined;
      });
      expect(receipt.message.id).toBe(message.id);
    }
  }, 240_000);

  it('keeps the global ledger equal to the union of the partition ledgers when its Raft leader dies', async () => {
    const leaderId = await waitFor(
      'a topic leader',
      () => nodes[0]?.registryHost.leaderOf('topic:orders') || undefined,
    );
    const leaderIndex = Number(leaderId.slice(4)) - 1;
    const ids: string[] = [];
    // If the leader is org1's own node, org1's producer stops with it: what was acknowledged counts.
    const producing = (async () => {
      try {
        for (let n = 0; n < 60; n++) ids.push((await send('org1', 'orders', ['org2'], `k${n}`))[0]!.id);
      } catch (error) {
        if (!isLedgerbusError(error) || leaderIndex !== 0) throw error;
      }
    })();
    await waitFor('replication under way', () => (ids.length >= 10 ? true : undefined));
    await nodes[leaderIndex]!.stop();
    nodes[leaderIndex] = undefined;
    await producing;

    const live = nodes.filter((node): node is LedgerbusNode => node !== undefined);
    const newLeader = await waitFor('a new topic leader', () => {
      const leader = live[0]!.registryHost.leaderOf('topic:orders');
      return leader !== '' && leader !== leaderId ? leader : undefined;
    });
    expect(newLeader).not.toBe(leaderId);

    // Each partition's ledger, read from any live replica, must be in every live node's global ledger.
    const topic = live[0]!.registryHost.registry.topicEntry('orders')!;
    await waitFor(
      'the global ledger to catch up',
      () => {
        for (let partition = 0; partition < topic.config.partitions.length; partition++) {
          const group = `orders/${partition}`;
          const height = Math.max(...live.map((node) => node.replicas.get(group)?.height ?? 0));
          for (const node of live) {
            if ((node.registryHost.topicMachine('orders')?.head(group)?.height ?? 0) < height)
              return undefined;
          }
        }
        return true;
      },
      60_000,
    );
    let blocks = 0;
    for (let partition = 0; partition < topic.config.partitions.length; partition++) {
      const group = `orders/${partition}`;
      const source = live.find((node) => node.replicas.has(group))!;
      const height = source.replicas.get(group)!.height;
      for (let h = 1; h <= height; h++) {
        const local = source.replicas.get(group)!.database.blocks.get(h)!;
        for (const node of live) {
          const global = node.registryHost.globalLedger('orders')!.block(group, h);
          expect(global, `${node.registryHost.registry.network} ${group}@${h}`).toBeDefined();
          expect(toHex(blockHash(global!.header))).toBe(toHex(blockHash(local.header)));
        }
        blocks++;
      }
    }
    expect(blocks).toBeGreaterThan(0);

    // The dead leader comes back and catches up.
    const restarted = await startNode(leaderIndex);
    await waitFor(
      'the restarted node to catch up its global ledger',
      () => {
        for (let partition = 0; partition < topic.config.partitions.length; partition++) {
          const group = `orders/${partition}`;
          const want = live[0]!.registryHost.topicMachine('orders')!.head(group)?.height ?? 0;
          if ((restarted.registryHost.topicMachine('orders')?.head(group)?.height ?? 0) < want)
            return undefined;
        }
        return true;
      },
      60_000,
    );
    // With every node back: any topic node answers from the global ledger, including one that does not host the partition.
    const last = ids.at(-1)!;
    await waitFor('delivery of the last message', () => connector('org2').receivedMessage(last));
    const receipt = await waitFor('a global receipt with the delivery', async () => {
      try {
        const bundle = await connector('org1').receipt('orders', last, { source: 'global' });
        return bundle.deliveredTo.includes('org2') ? bundle : undefined;
      } catch (error) {
        if (isLedgerbusError(error) && error.retriable) return undefined;
        throw error;
      }
    });
    expect(receipt.message.id).toBe(last);
    expect(receipt.source).toBe('global');
  }, 240_000);
});
