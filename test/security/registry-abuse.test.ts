// Issue 11, items 2 and 7: what one member could do to the registry that every node follows.
//
// - Item 2: org1 registered a node with org2's connector key; every node then took org2's connector
//   for a node and answered it UNKNOWN_METHOD, for good (no admin action removed a node). Now every
//   key in the registry is distinct across roles, a node key is registered only with its proof of
//   possession, and a node can be removed by its organization or a supervisor.
// - Item 7: nothing bounded the topics a member creates, the nodes it registers (every node dials
//   every registered node, at any host:port it names) or the registrations waiting for approval.
//   Now a supervisor sets quotas that the __system state machine enforces.
//
// Every step goes over real TLS links to real nodes, as signed admin transactions a connector sends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/crypto/index.js';
import type { SigningKeyPair } from '../../src/crypto/index.js';
import { generateEncryptionKey } from '../../src/crypto/envelope/index.js';
import type { RpcPeer } from '../../src/net/index.js';
import { defaultQuotas } from '../../src/registry/admin-transactions.js';
import { registerNodeAction } from '../../src/registry/testing/fixtures.js';
import type { AdminAction, Quotas } from '../../src/registry/admin-transactions.js';
import { adminTransaction, submitAdmin } from './admin-support.js';
import { SecurityNetwork, codeOf, waitFor } from './support.js';

const net = new SecurityNetwork({ name: 'registry-abuse', basePort: 25200 });
const peers: RpcPeer[] = [];

async function dialAs(organization: string): Promise<RpcPeer> {
  const peer = await net.dial('node1', net.connectorKey(organization));
  peers.push(peer);
  return peer;
}

/** An admin action in `organization`'s name with its own connector key, over its own link. */
async function act(organization: string, action: AdminAction): Promise<{ status: string; reason?: string }> {
  return submitAdmin(
    await dialAs(organization),
    adminTransaction(organization, net.signer(organization), action),
  );
}

/** A node registration at a harmless address, with the proof signed by `prover`. */
function registerNode(
  organization: string,
  id: string,
  key: SigningKeyPair,
  prover: SigningKeyPair = key,
): AdminAction {
  return registerNodeAction(organization, id, '127.0.0.1:9', key, prover, net.signing);
}

/** Waits until every node's registry says `present` about node `id`. */
async function everyNodeHas(id: string, present: boolean): Promise<void> {
  await waitFor(`${id} ${present ? 'registered' : 'removed'} on every node`, () =>
    net.nodes.every((node) => (node.registryHost.registry.node(id) !== undefined) === present)
      ? true
      : undefined,
  );
}

beforeAll(async () => {
  await net.startNodes();
}, 60_000);

afterAll(async () => {
  for (const peer of peers) peer.close();
  await net.stop();
}, 60_000);

describe('one key, one party (item 2)', () => {
  it("refuses a node registered with another organization's connector key; that connector keeps its link on every node", async () => {
    const org2Key = net.connectorKey('org2');
    // The attacker cannot sign for org2's key, so it proves possession of a key of its own; the
    // registry must refuse on the key alone (KEY_IN_USE), whatever the proof says.
    const answer = await act('org1', registerNode('org1', 'takeover', org2Key, generateSigningKey()));
    expect(answer).toMatchObject({ status: 'REJECTED', reason: 'KEY_IN_USE' });
    for (const node of net.nodes) expect(node.registryHost.registry.node('takeover')).toBeUndefined();
    for (const nodeId of ['node1', 'node2', 'node3', 'node4']) {
      const org2 = await net.dial(nodeId, org2Key);
      try {
        // A connector's method, answered as a connector's (a node link would be UNKNOWN_METHOD).
        const status = (await org2.request('status', {})) as { node: string };
        expect(status.node).toBe(nodeId);
      } finally {
        org2.close();
      }
    }
  });

  it('refuses a node key registered without its proof of possession (BAD_PROOF)', async () => {
    const key = generateSigningKey();
    expect(await act('org1', registerNode('org1', 'unproven', key, generateSigningKey()))).toMatchObject({
      status: 'REJECTED',
      reason: 'BAD_PROOF',
    });
    // A proof made for another organization cannot be lifted into org1's registration.
    const lifted = registerNode('org3', 'lifted', key);
    expect(await act('org1', lifted)).toMatchObject({ status: 'REJECTED', reason: 'BAD_PROOF' });
  });

  it('removes a node by its organization or a supervisor, not by another member, and never a genesis node', async () => {
    expect(await act('org1', registerNode('org1', 'extra-1', generateSigningKey()))).toMatchObject({
      status: 'OK',
    });
    await everyNodeHas('extra-1', true);
    expect(await act('org2', { kind: 'removeNode', id: 'extra-1' })).toMatchObject({
      status: 'REJECTED',
      reason: 'NOT_ALLOWED',
    });
    expect(await act('org1', { kind: 'removeNode', id: 'extra-1' })).toMatchObject({ status: 'OK' });
    await everyNodeHas('extra-1', false);

    expect(await act('org1', registerNode('org1', 'extra-2', generateSigningKey()))).toMatchObject({
      status: 'OK',
    });
    // org4 is the devnet's supervisor.
    expect(await act('org4', { kind: 'removeNode', id: 'extra-2' })).toMatchObject({ status: 'OK' });
    await everyNodeHas('extra-2', false);
    expect(await act('org4', { kind: 'removeNode', id: 'node2' })).toMatchObject({
      status: 'REJECTED',
      reason: 'NODE_IN_USE',
    });
  });
});

describe('quotas a supervisor sets (item 7)', () => {
  const tight: Quotas = {
    topicsPerOrganizationMax: 1,
    nodesPerOrganizationMax: 1,
    pendingRegistrationsMax: 1,
    partitionsPerTopicMax: 2,
  };

  afterAll(async () => {
    await act('org4', { kind: 'setQuotas', quotas: defaultQuotas });
  }, 60_000);

  function createTopic(name: string, partitions: number): AdminAction {
    const replicas = ['node1', 'node2', 'node3', 'node4'].map((id) => ({
      id,
      publicKey: net.node(id).publicKey,
    }));
    return {
      kind: 'createTopic',
      name,
      partitions: Array.from({ length: partitions }, () => replicas),
      producers: ['org1'],
      consumers: ['org2'],
      policy: { messageBytesMax: 1024, ttlMs: 60_000, payloadRetentionMs: 60_000 },
    };
  }

  function registerOrganization(id: string): { transaction: Uint8Array } {
    const key = generateSigningKey();
    return {
      transaction: adminTransaction(id, net.signing.signer(key), {
        kind: 'registerOrganization',
        roles: ['member'],
        signingKeys: [key.publicKey],
        encryptionKey: generateEncryptionKey().publicKey,
      }),
    };
  }

  it('only a supervisor sets them; past them topics, nodes, partitions and pending registrations are refused', async () => {
    expect(await act('org2', { kind: 'setQuotas', quotas: tight })).toMatchObject({
      status: 'REJECTED',
      reason: 'NOT_ALLOWED',
    });
    expect(await act('org4', { kind: 'setQuotas', quotas: tight })).toMatchObject({ status: 'OK' });

    expect(await act('org1', createTopic('quota-wide', 3))).toMatchObject({
      status: 'REJECTED',
      reason: 'QUOTA_EXCEEDED',
    });
    expect(await act('org1', createTopic('quota-one', 1))).toMatchObject({ status: 'OK' });
    expect(await act('org1', createTopic('quota-two', 1))).toMatchObject({
      status: 'REJECTED',
      reason: 'QUOTA_EXCEEDED',
    });
    // org1 already has its genesis node.
    expect(await act('org1', registerNode('org1', 'quota-node', generateSigningKey()))).toMatchObject({
      status: 'REJECTED',
      reason: 'QUOTA_EXCEEDED',
    });

    const relay = await dialAs('org1');
    expect(await submitAdmin(relay, registerOrganization('pending-1').transaction)).toMatchObject({
      status: 'OK',
    });
    expect(await submitAdmin(relay, registerOrganization('pending-2').transaction)).toMatchObject({
      status: 'REJECTED',
      reason: 'QUOTA_EXCEEDED',
    });
    for (const node of net.nodes) {
      expect(node.registryHost.registry.topic('quota-two')).toBeUndefined();
      expect(node.registryHost.registry.organization('pending-2')).toBeUndefined();
    }
    // A refused member is told so with the stable code, and the network keeps serving it.
    expect(await codeOf((await dialAs('org1')).request('status', {}))).toBe('OK');
  });
});
