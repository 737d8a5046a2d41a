// Issue 11, items 3, 5 and 14: who may read what, and who a request speaks for.
//
// - Item 3: links accepted every organization's key whatever its status, supervisor visibility
//   checked only the role, and a registrant chose its own roles. A PENDING organization that
//   registered itself as a supervisor polled `demo/0` and got every message's evidence; a SUSPENDED
//   one kept polling and fetching. Now only APPROVED organizations get a link or an answer, checked
//   on every request, and roles are granted by a supervisor, never taken.
// - Item 5: `clientForward` took its organization from the request body, so a node could read as
//   any organization. Now a forwarded read acts for the calling node's organization.
// - Item 14: every refused key was logged at warn level; a flood of keys was a flood of log lines.
//
// Real nodes, real TLS links, signed transactions as connectors send them.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CborValue } from '../../src/codec/index.js';
import { encodeFetchRequest } from '../../src/contracts/fetch.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import { generateSigningKey, loadSigningKey } from '../../src/crypto/index.js';
import { generateEncryptionKey } from '../../src/crypto/envelope/index.js';
import { listenFramed } from '../../src/net/index.js';
import type { RpcPeer } from '../../src/net/index.js';
import { loadNodeConfig } from '../../src/node/config.js';
import type { AdminAction } from '../../src/registry/admin-transactions.js';
import { adminTransaction, submitAdmin } from './admin-support.js';
import {
  GROUP,
  SecurityNetwork,
  clientRequest,
  closesWithin,
  codeOf,
  metadataOf,
  publishRaw,
  randomId,
  waitFor,
} from './support.js';

const net = new SecurityNetwork({ name: 'access-control', basePort: 25220 });
const peers: RpcPeer[] = [];
/** Messages org1 sent to org2 (ids), and one org1 sent to org3. */
const toOrg2: string[] = [];
let toOrg3 = '';

async function dialAs(organization: string, nodeId = 'node1'): Promise<RpcPeer> {
  const peer = await net.dial(nodeId, net.connectorKey(organization));
  peers.push(peer);
  return peer;
}

async function supervisorDoes(action: AdminAction): Promise<void> {
  // org4 is the devnet's supervisor.
  const answer = await submitAdmin(
    await dialAs('org4'),
    adminTransaction('org4', net.signer('org4'), action),
  );
  expect(answer).toMatchObject({ status: 'OK' });
}

async function publish(recipients: string[]): Promise<string> {
  const id = randomId('acl');
  const operation = encodePublish(
    {
      sender: 'org1',
      nonce: randomBytes(16),
      timestamp: Date.now(),
      messages: [metadataOf(id, { recipients })],
    },
    net.signer('org1'),
  );
  const { result } = await publishRaw(await dialAs('org1'), clientRequest(operation, net.signer('org1')));
  expect(result).toMatchObject({ status: 'OK' });
  return id;
}

/** The ids a poll of the demo partition from offset 0 returns to `peer`. */
async function polledIds(peer: RpcPeer): Promise<string[]> {
  const answer = (await peer.request('poll', { group: GROUP, fromOffset: 0, limit: 500 })) as {
    messages: { id: string }[];
  };
  return answer.messages.map((message) => message.id);
}

beforeAll(async () => {
  await net.startNodes();
  for (let n = 0; n < 3; n++) toOrg2.push(await publish(['org2']));
  toOrg3 = await publish(['org3']);
}, 60_000);

afterAll(async () => {
  for (const peer of peers) peer.close();
  await net.stop();
}, 60_000);

describe('only approved organizations read, and roles are granted (item 3)', () => {
  it('a self-registered "supervisor" gets no link while PENDING, and sees no one else\'s metadata once approved as a member', async () => {
    const key = generateSigningKey();
    const registration = adminTransaction('mallory', net.signing.signer(key), {
      kind: 'registerOrganization',
      roles: ['member', 'supervisor'],
      signingKeys: [key.publicKey],
      encryptionKey: generateEncryptionKey().publicKey,
    });
    expect(await submitAdmin(await dialAs('org1'), registration)).toMatchObject({ status: 'OK' });
    await waitFor('mallory registered on every node', () =>
      net.nodes.every((node) => node.registryHost.registry.organization('mallory') !== undefined)
        ? true
        : undefined,
    );
    const pending = net.nodes[0]!.registryHost.registry.organization('mallory')!;
    expect(pending.status).toBe('PENDING');
    expect(pending.roles).toEqual([]);
    for (const nodeId of ['node1', 'node2', 'node3', 'node4']) {
      expect(await codeOf(net.dial(nodeId, key))).toBe('PEER_NOT_AUTHORIZED');
    }

    // Approved without naming roles: member only, the requested supervisor role is not granted.
    await supervisorDoes({ kind: 'setOrganizationStatus', organization: 'mallory', status: 'APPROVED' });
    await waitFor('mallory approved on node1', () =>
      net.nodes[0]!.registryHost.registry.organization('mallory')?.status === 'APPROVED' ? true : undefined,
    );
    expect(net.nodes[0]!.registryHost.registry.organization('mallory')!.roles).toEqual(['member']);
    const mallory = await net.dial('node1', key);
    peers.push(mallory);
    const seen = await polledIds(mallory);
    for (const id of [...toOrg2, toOrg3]) expect(seen).not.toContain(id);
    expect(await codeOf(mallory.request('message', { group: GROUP, id: toOrg2[0]! }))).toBe('NOT_RECIPIENT');
    // The real supervisor still sees every message: the rule narrowed, it did not break.
    const supervisorSees = await polledIds(await dialAs('org4'));
    for (const id of [...toOrg2, toOrg3]) expect(supervisorSees).toContain(id);
  });

  it('a suspended organization is refused on its open link, at reconnection, and for payloads', async () => {
    const org3 = await dialAs('org3');
    expect(await polledIds(org3)).toContain(toOrg3);
    await supervisorDoes({ kind: 'setOrganizationStatus', organization: 'org3', status: 'SUSPENDED' });
    await waitFor('org3 suspended on node1', () =>
      net.nodes[0]!.registryHost.registry.organization('org3')?.status === 'SUSPENDED' ? true : undefined,
    );
    expect(await codeOf(org3.request('poll', { group: GROUP, fromOffset: 0 }))).toBe('NOT_APPROVED');
    expect(await codeOf(org3.request('message', { group: GROUP, id: toOrg3 }))).toBe('NOT_APPROVED');
    expect(await codeOf(org3.request('registry', {}))).toBe('NOT_APPROVED');
    expect(
      await codeOf(org3.request('fetchPayload', { group: GROUP, fetchRequest: new Uint8Array(8) })),
    ).toBe('NOT_APPROVED');
    expect(await codeOf(net.dial('node1', net.connectorKey('org3')))).toBe('PEER_NOT_AUTHORIZED');

    // Approved again, it keeps the roles it had and reads again.
    await supervisorDoes({ kind: 'setOrganizationStatus', organization: 'org3', status: 'APPROVED' });
    await waitFor('org3 approved again on node1', () =>
      net.nodes[0]!.registryHost.registry.organization('org3')?.status === 'APPROVED' ? true : undefined,
    );
    expect(net.nodes[0]!.registryHost.registry.organization('org3')!.roles).toEqual(['member']);
    expect(await polledIds(await dialAs('org3'))).toContain(toOrg3);
  });
});

describe('a node speaks only for its own organization (item 5)', () => {
  it("refuses a forwarded read that claims another organization than the calling node's", async () => {
    // node2 (org2's node) forwards to node1 a read "for org3" of a message org2 may not see.
    const node2Key = loadSigningKey(loadNodeConfig(net.layout.nodeConfigs[1] as string).keyFile);
    // A consensus link is opened by a hello naming this network; one from another network (a node
    // reusing its key there) is refused before it can carry unsigned Raft messages.
    const stranger = await net.dial('node1', node2Key);
    peers.push(stranger);
    expect(
      await codeOf(stranger.request('hello', { purpose: 'consensus', from: 'node2', network: 'elsewhere' })),
    ).toBe('WRONG_NETWORK');
    const node2 = await net.dial('node1', node2Key);
    peers.push(node2);
    // Node-to-node methods are served on a consensus link, which a hello opens.
    await node2.request('hello', {
      purpose: 'consensus',
      from: 'node2',
      network: net.layout.network.network,
    });
    const forward = (organization: string): Promise<CborValue> =>
      node2.request('clientForward', { method: 'message', organization, body: { group: GROUP, id: toOrg3 } });
    expect(await codeOf(forward('org3'))).toBe('PEER_NOT_AUTHORIZED');
    expect(await codeOf(forward('org2'))).toBe('NOT_RECIPIENT');

    // What a node may forward for another organization: the recipient check of a payload fetch that
    // the organization signed itself, for that very message — not for another, and not forged.
    const fetchRequest = (id: string, key = net.connectorKey('org3')): Uint8Array =>
      encodeFetchRequest(
        {
          requester: 'org3',
          partitionId: GROUP,
          id,
          nonce: randomBytes(16),
          timestamp: Date.now(),
        },
        net.signing.signer(key),
      );
    const forwardSigned = (id: string, signed: Uint8Array): Promise<CborValue> =>
      node2.request('clientForward', {
        method: 'message',
        organization: 'org3',
        body: { group: GROUP, id, fetchRequest: signed },
      });
    expect(await forwardSigned(toOrg3, fetchRequest(toOrg3))).toMatchObject({ id: toOrg3, sender: 'org1' });
    expect(await codeOf(forwardSigned(toOrg3, fetchRequest(toOrg2[0]!)))).toBe('PEER_NOT_AUTHORIZED');
    expect(await codeOf(forwardSigned(toOrg3, fetchRequest(toOrg3, node2Key)))).toBe('BAD_SIGNATURE');
    expect(net.warnings.some((line) => line.includes('refused a forwarded read'))).toBe(true);
  });
});

describe('refusals cannot flood the log or the descriptors (item 14)', () => {
  it('logs refused keys at most once a minute, however many keys knock', async () => {
    // The refusal's own line, not the unknown-key alert the same knocking raises (one per minute).
    const refusal = 'refused a connection from an unregistered key';
    const alerts = (): number => net.warnings.filter((line) => line.includes('"unknown-key"')).length;
    const before = net.warnings.filter((line) => line.includes(refusal)).length;
    const alertsBefore = alerts();
    for (let n = 0; n < 25; n++)
      expect(await codeOf(net.dial('node3', generateSigningKey()))).toBe('PEER_NOT_AUTHORIZED');
    const logged = net.warnings.filter((line) => line.includes(refusal) && line.includes('"node3"'));
    expect(net.warnings.filter((line) => line.includes(refusal)).length - before).toBeLessThanOrEqual(1);
    expect(logged.length).toBeLessThanOrEqual(1);
    expect(alerts() - alertsBefore).toBeLessThanOrEqual(1);
  });

  it('closes connections past the listener’s cap on accept', async () => {
    const server = await listenFramed({
      host: '127.0.0.1',
      port: 0,
      identity: generateSigningKey(),
      connectionsMax: 2,
      authorize: () => undefined,
      onConnection: (connection) => connection.close(),
    });
    const sockets = [0, 1, 2].map(() => connect({ host: '127.0.0.1', port: server.port }));
    try {
      const closed = sockets.map(
        (socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())),
      );
      for (const socket of sockets) socket.on('error', () => {});
      // The first two sit in the TLS handshake; the third is closed at once.
      expect(await closesWithin(closed[2]!, 2_000)).toBe(true);
      expect(await closesWithin(closed[0]!, 200)).toBe(false);
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.close();
    }
  });
});
