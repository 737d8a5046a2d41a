// Security issue 11, item 1: a member could stop every node for good with one valid admin
// transaction. Topic names may be 249 characters, but each node stored a group in a file named after
// its group id (`topic%3A<name>.sqlite`, `<name>/0` URI-encoded), and a file name holds at most 255
// bytes: applying the createTopic entry threw on every node, every later __system entry "failed to
// apply", the registry froze, and since the entry is in the replicated log a restarted node crashed
// at once. The class behind it: a replicated state machine accepted an entry that its replicas then
// failed to apply, because opening a group's storage ran inside the apply.
//
// Shows, on 4 in-process nodes over real TLS: a topic named with 249 characters is created, its
// partition commits a published message, later admin transactions keep working on every node, and
// all four nodes restart on their data and serve it again. And, with one node's file for one topic
// group made unopenable (a directory where SQLite expects its database): the transaction answers OK,
// that node logs the failure at error naming the group and reports it in `status`, keeps applying
// __system (a later topic appears on its registry and its group runs there), keeps serving its other
// partitions, restarts with that group in the log, and opens the group once the path is usable again.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWith } from '../../src/codec/index.js';
import type { CborValue } from '../../src/codec/index.js';
import { encodeClientRequest } from '../../src/consensus/pbft/messages.js';
import { decodeTransactionResult } from '../../src/contracts/results.js';
import type { TransactionResult } from '../../src/contracts/results.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import { loadSigningKey } from '../../src/crypto/index.js';
import type { Signer } from '../../src/crypto/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../src/errors.js';
import type { RpcPeer } from '../../src/net/index.js';
import { loadGenesisRegistry, loadNodeConfig } from '../../src/node/config.js';
import { groupFileName } from '../../src/node/group-files.js';
import { createLogger } from '../../src/runtime/logger.js';
import type { Logger } from '../../src/runtime/logger.js';
import { LedgerbusNode } from '../../src/node/node.js';
import { blockEvidenceSchema } from '../../src/proofs/index.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  signAdminTransaction,
  topicGroupId,
} from '../../src/registry/admin-transactions.js';
import type { AdminAction } from '../../src/registry/admin-transactions.js';
import { SecurityNetwork, clientRequest, metadataOf, publishRaw, randomId, waitFor } from './support.js';

const net = new SecurityNetwork({ name: 'long-topic', basePort: 25240 });
/** What the nodes logged at warn and error, one JSON line each. */
const logged: string[] = [];

/** The longest name the createTopic schema allows (249), of every character it allows. */
const longName = `${'a'.repeat(200)}Z9._-${'x'.repeat(44)}`;

beforeAll(async () => {
  for (let index = 0; index < 4; index++) await startNode(index);
}, 60_000);

afterAll(async () => {
  await net.stop();
}, 60_000);

/** Starts node<index+1> on its data directory, logging warnings and errors into `logged`. */
async function startNode(index: number): Promise<LedgerbusNode> {
  const config = loadNodeConfig(net.layout.nodeConfigs[index] as string);
  const node = new LedgerbusNode({
    nodeId: config.nodeId,
    key: loadSigningKey(config.keyFile),
    registry: loadGenesisRegistry(config.genesis),
    dataDirectory: config.dataDirectory,
    logger: capturingLogger(config.nodeId),
  });
  await node.start();
  net.nodes[index] = node;
  return node;
}

async function stopNode(index: number): Promise<void> {
  await net.nodes[index]?.stop();
}

/** Names of every file and folder under `directory`, recursively. */
function filesUnder(directory: string): string[] {
  return readdirSync(directory, { recursive: true, encoding: 'utf8' }).map((path) => basename(path));
}

function dataDirectory(index: number): string {
  return loadNodeConfig(net.layout.nodeConfigs[index] as string).dataDirectory;
}

function capturingLogger(name: string): Logger {
  const logger = createLogger({ name, level: 'warn' }).child({});
  const capture =
    (level: string) =>
    (object: Record<string, unknown>, message?: string): void => {
      logged.push(JSON.stringify({ node: name, level, ...object, msg: message }));
    };
  logger.warn = capture('warn') as typeof logger.warn;
  logger.error = capture('error') as typeof logger.error;
  return logger;
}

/**
 * Calls `request` until it answers or fails with an error that is not retriable (which is thrown:
 * the poll must not send the same transaction again after a definite answer).
 */
async function untilAnswered<T>(what: string, request: () => Promise<T>): Promise<T> {
  const outcome = await waitFor(
    what,
    async () => {
      try {
        return { answer: await request() };
      } catch (error) {
        if (isLedgerbusError(error) && error.retriable) return undefined;
        return { error };
      }
    },
    60_000,
  );
  if ('error' in outcome) throw outcome.error;
  return outcome.answer;
}

/** Submits a signed admin transaction as a connector would, waiting out leader elections. */
async function admin(peer: RpcPeer, transaction: Uint8Array): Promise<{ status: string; reason?: string }> {
  const reply = (await untilAnswered('an admin answer', () =>
    peer.request('admin', { transaction }),
  )) as Record<string, CborValue>;
  return reply['result'] as { status: string; reason?: string };
}

/** org1 creates `name` with one partition replicated on the 4 nodes. */
function createTopic(name: string): Uint8Array {
  const replicas = ['node1', 'node2', 'node3', 'node4'].map((id) => ({
    id,
    publicKey: net.node(id).publicKey,
  }));
  const action: AdminAction = {
    kind: 'createTopic',
    name,
    partitions: [replicas],
    producers: ['org1', 'org2'],
    consumers: ['org2', 'org3'],
    policy: { messageBytesMax: 1024 * 1024, ttlMs: 3_600_000, payloadRetentionMs: 3_600_000 },
  };
  const key = net.signer('org1');
  return encodeWith(
    adminTransactionSchema,
    signAdminTransaction(
      { group: SYSTEM_GROUP, organization: 'org1', nonce: randomBytes(16), timestamp: Date.now(), action },
      key,
    ),
  );
}

/** Publishes one message on partition 0 of `topic` as org2 and waits for the acknowledgement. */
async function publishOn(peer: RpcPeer, topic: string): Promise<TransactionResult> {
  const key = net.signer('org2');
  const group = `${topic}/0`;
  // Built once: a retry resends the same request, which the partition answers once.
  const operation = encodePublish(
    {
      sender: 'org2',
      nonce: randomBytes(16),
      timestamp: Date.now(),
      messages: [metadataOf(randomId('long'), { topic, recipients: ['org3'] })],
    },
    key,
  );
  const request = signedRequest(group, operation, key);
  const answer = (await untilAnswered(`a publish on ${group.slice(0, 40)}…`, async () => {
    // The replica may not run yet on the node asked (it opens once the node applied the topic).
    const replicaRuns = net.nodes.every((node) => node.replicas.has(group));
    if (!replicaRuns)
      throw new LedgerbusError(ErrorCode.NotLeader, 'replicas not running yet', { retriable: true });
    return peer.request('publish', { group, request });
  })) as Record<string, CborValue>;
  return decodeTransactionResult(blockEvidenceSchema.parse(answer['evidence'], 'evidence').result);
}

let sequence = Date.now() * 1000;
function signedRequest(group: string, operation: Uint8Array, signer: Signer): Uint8Array {
  return encodeClientRequest({ group, client: signer.publicKey, seq: ++sequence, operation }, signer.sign);
}

/** node<index+1>'s `groups` in its status answer, by group id. */
async function groupsOf(index: number): Promise<Map<string, Record<string, CborValue>>> {
  const peer = await net.dial(`node${index + 1}`, net.connectorKey('org2'));
  try {
    const status = (await peer.request('status', {})) as { groups: Record<string, CborValue>[] };
    return new Map(status.groups.map((group) => [String(group['group']), group]));
  } finally {
    peer.close();
  }
}

async function waitForTopicEverywhere(name: string, nodes: readonly number[] = [0, 1, 2, 3]): Promise<void> {
  await waitFor(
    `${name.slice(0, 20)}… on every node's registry, its group running`,
    async () => {
      for (const index of nodes) {
        if (net.nodes[index]?.registryHost.registry.topic(name) === undefined) return undefined;
        const group = (await groupsOf(index)).get(topicGroupId(name));
        if (group === undefined || group['failed'] !== undefined) return undefined;
        if (Number(group['applied'] ?? 0) === 0) return undefined;
      }
      return true;
    },
    60_000,
  );
}

describe('a topic named with the longest name the schema allows', () => {
  it('is created and leaves later admin transactions working on every node, across a restart of every node', async () => {
    expect(longName).toHaveLength(249);
    const org1 = await net.dial('node1', net.connectorKey('org1'));
    try {
      expect(await admin(org1, createTopic(longName))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere(longName);
      // The registry did not freeze: a later admin transaction applies on every node.
      expect(await admin(org1, createTopic('after-long'))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere('after-long');
    } finally {
      org1.close();
    }
    expect(logged.filter((line) => line.includes('"level":"error"'))).toEqual([]);
    for (let index = 0; index < 4; index++) {
      for (const name of filesUnder(dataDirectory(index))) expect(Buffer.byteLength(name)).toBeLessThan(256);
    }

    // Every node restarts on its data, with the entry in its log, and serves everything again.
    for (let index = 0; index < 4; index++) await stopNode(index);
    for (let index = 0; index < 4; index++) await startNode(index);
    await waitForTopicEverywhere(longName);
    await waitForTopicEverywhere('after-long');
    const again = await net.dial('node2', net.connectorKey('org1'));
    try {
      expect(await admin(again, createTopic('after-restart'))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere('after-restart');
    } finally {
      again.close();
    }
    expect(logged.filter((line) => line.includes('"level":"error"'))).toEqual([]);
  }, 240_000);

  // Partition ids run to 254 characters (`<249 characters>/1023`): PBFT messages and client
  // requests carry them, so their id limit is 256.
  it('serves a publish on the partition of that topic', async () => {
    const org1 = await net.dial('node1', net.connectorKey('org1'));
    try {
      expect(await publishOn(org1, longName)).toMatchObject({
        status: 'OK',
        messages: [{ status: 'ACCEPTED' }],
      });
    } finally {
      org1.close();
    }
  }, 120_000);
});

describe('a group whose storage cannot be opened on one node', () => {
  it('stops that group on that node alone: __system, other groups and a restart keep working', async () => {
    const broken = 'unopenable';
    // SQLite cannot open a directory as its database: node1's Raft file of the topic group.
    const blocker = join(dataDirectory(0), 'raft', groupFileName(topicGroupId(broken)));
    mkdirSync(blocker, { recursive: true });
    const org1 = await net.dial('node2', net.connectorKey('org1'));
    try {
      expect(await admin(org1, createTopic(broken))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere(broken, [1, 2, 3]);
      // node1 applied the entry (the topic is on its registry) but reports the group as failed.
      await waitFor('node1 to report the failed group', async () => {
        if (net.nodes[0]?.registryHost.registry.topic(broken) === undefined) return undefined;
        const group = (await groupsOf(0)).get(topicGroupId(broken));
        return typeof group?.['failed'] === 'string' ? group : undefined;
      });
      expect(
        logged.some(
          (line) =>
            line.includes('"node":"node1"') &&
            line.includes('"level":"error"') &&
            line.includes(topicGroupId(broken)),
        ),
      ).toBe(true);

      // __system goes on at node1: a later topic is on its registry and its group runs there.
      expect(await admin(org1, createTopic('after-broken'))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere('after-broken');
      // node1 still serves its other partitions.
      const atNode1 = await net.dial('node1', net.connectorKey('org2'));
      try {
        const { result } = await publishRaw(
          atNode1,
          clientRequest(
            encodePublish(
              {
                sender: 'org2',
                nonce: randomBytes(16),
                timestamp: Date.now(),
                messages: [metadataOf(randomId('beside'), { recipients: ['org3'] })],
              },
              net.signer('org2'),
            ),
            net.signer('org2'),
          ),
        );
        expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
        // The other replicas carry the broken topic's partition on without node1's topic group.
        expect(await publishOn(org1, broken)).toMatchObject({ messages: [{ status: 'ACCEPTED' }] });
      } finally {
        atNode1.close();
      }

      // node1 restarts with the entry in its log and the path still unusable, and serves.
      await stopNode(0);
      await startNode(0);
      await waitForTopicEverywhere('after-broken');
      expect(await admin(org1, createTopic('after-node1-restart'))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere('after-node1-restart');
      expect((await groupsOf(0)).get(topicGroupId(broken))?.['failed']).toEqual(expect.any(String));
      expect((await groupsOf(0)).get(SYSTEM_GROUP)).toBeDefined();

      // Once the path is usable again the node opens the group by itself and catches up.
      rmSync(blocker, { recursive: true });
      await waitForTopicEverywhere(broken);
    } finally {
      org1.close();
    }
  }, 240_000);
});

describe('a partition database that cannot be written on one node', () => {
  it('stops that replica alone: the partition commits on the others, the node serves the rest', async () => {
    const group = 'after-long/0';
    await waitFor('every node to run a replica of after-long/0', () =>
      net.nodes.every((node) => node.replicas.has(group)) ? true : undefined,
    );
    // Another connection holds the write lock of node1's file, as a stuck or failing disk would:
    // node1's next persist of that partition fails with SQLITE_BUSY.
    const locker = new Database(join(dataDirectory(0), 'partitions', groupFileName(group)));
    locker.exec('BEGIN IMMEDIATE');
    try {
      const org1 = await net.dial('node2', net.connectorKey('org1'));
      try {
        expect(await publishOn(org1, 'after-long')).toMatchObject({ messages: [{ status: 'ACCEPTED' }] });
      } finally {
        org1.close();
      }
      await waitFor(
        'node1 to stop its replica of after-long/0',
        () => net.nodes[0]?.replicas.get(group)?.failure,
      );
      expect(
        logged.some(
          (line) =>
            line.includes('"node":"node1"') && line.includes('"level":"error"') && line.includes(group),
        ),
      ).toBe(true);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
    // node1 goes on: its __system applies a new topic, its demo partition commits.
    const org1 = await net.dial('node1', net.connectorKey('org1'));
    try {
      expect(await admin(org1, createTopic('after-write-failure'))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere('after-write-failure');
      expect(await publishOn(org1, 'demo')).toMatchObject({ messages: [{ status: 'ACCEPTED' }] });
    } finally {
      org1.close();
    }
  }, 120_000);
});

describe('a partition whose database cannot be opened on one node', () => {
  it('is down on that node alone, and opens once the path is usable', async () => {
    const topic = 'blocked-partition';
    const group = `${topic}/0`;
    const blocker = join(dataDirectory(0), 'partitions', groupFileName(group));
    mkdirSync(blocker, { recursive: true });
    const org1 = await net.dial('node2', net.connectorKey('org1'));
    try {
      expect(await admin(org1, createTopic(topic))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere(topic);
      expect(net.nodes[0]?.replicas.has(group)).toBe(false);
      expect(
        logged.some(
          (line) =>
            line.includes('"node":"node1"') && line.includes('"level":"error"') && line.includes(group),
        ),
      ).toBe(true);
      // Three replicas commit without node1's.
      const key = net.signer('org2');
      const operation = encodePublish(
        {
          sender: 'org2',
          nonce: randomBytes(16),
          timestamp: Date.now(),
          messages: [metadataOf(randomId('p'), { topic, recipients: ['org3'] })],
        },
        key,
      );
      const answer = (await untilAnswered('a publish', () =>
        org1.request('publish', { group, request: signedRequest(group, operation, key) }),
      )) as Record<string, CborValue>;
      expect(
        decodeTransactionResult(blockEvidenceSchema.parse(answer['evidence'], 'evidence').result),
      ).toMatchObject({
        messages: [{ status: 'ACCEPTED' }],
      });
      expect(await admin(org1, createTopic('after-blocked-partition'))).toMatchObject({ status: 'OK' });
      await waitForTopicEverywhere('after-blocked-partition');
      await stopNode(0);
      await startNode(0);
      await waitForTopicEverywhere('after-blocked-partition');
      rmSync(blocker, { recursive: true });
      await waitFor('node1 to open the partition', () =>
        net.nodes[0]?.replicas.has(group) ? true : undefined,
      );
    } finally {
      org1.close();
    }
  }, 120_000);
});
