// BlockTorrent Table 2, row 2 ("a malicious node pretends to be multiple nodes … to imitate a node
// from another participant they would need to register as a node under that participant") and
// Fabric's class of missing identity/signature checks (peers acting on messages, membership or
// transactions from unauthenticated or unregistered identities).
//
// Shows, on a 4-node network over real TLS: a key nobody registered — posing as a node or as a
// connector — is refused at the link (the server's link status after the TLS 1.3 handshake) before a
// single RPC frame is read; a node that presents another key than the registered one is refused by
// the client; a transaction signed by an unregistered key, or by one organization's key in another's
// name, is refused by the contract with a stable reason and changes nothing; and the admin policy
// refuses registering a node under another organization's name or with another node's key.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../src/codec/index.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import { generateSigningKey } from '../../src/crypto/index.js';
import type { SigningKeyPair } from '../../src/crypto/index.js';
import { connectFramed, listenFramed } from '../../src/net/index.js';
import type { RpcPeer } from '../../src/net/index.js';
import { signNodePossession } from '../../src/registry/admin-transactions.js';
import type { AdminAction } from '../../src/registry/admin-transactions.js';
import { adminTransaction, submitAdmin } from './admin-support.js';
import {
  GROUP,
  SecurityNetwork,
  clientRequest,
  closesWithin,
  codeOf,
  frame,
  metadataOf,
  publishRaw,
  randomId,
  tlsSocket,
} from './support.js';

const net = new SecurityNetwork({ name: 'sybil', basePort: 24600 });
let org2: RpcPeer;

beforeAll(async () => {
  await net.startNodes();
  org2 = await net.dial('node1', net.connectorKey('org2'));
}, 60_000);

afterAll(async () => {
  org2?.close();
  await net.stop();
}, 60_000);

const admin = submitAdmin;

describe('Sybil identities at the link', () => {
  it('refuses an unregistered node key on the node port after the TLS handshake, before any RPC', async () => {
    const rogue = generateSigningKey();
    expect(await codeOf(net.dial('node1', rogue))).toBe('PEER_NOT_AUTHORIZED');

    // The raw view: TLS 1.3 completes (the node must see a certificate to judge it), then the node's
    // one link-status frame says "refused" (0x00), and the socket closes. An RPC request written
    // anyway is never answered: the node reads no frame from a refused peer.
    const node1 = net.node('node1');
    const { socket, closed } = await tlsSocket(node1, rogue);
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    expect(socket.getProtocol()).toBe('TLSv1.3');
    socket.write(
      frame(encodeCanonical({ type: 'request', id: 0, method: 'status', body: {}, stream: false })),
    );
    expect(await closesWithin(closed, 5_000)).toBe(true);
    expect(Buffer.concat(received).toString('hex')).toBe('0000000100');
    expect(net.warnings.some((line) => line.includes('refused a connection from an unregistered key'))).toBe(
      true,
    );
  });

  it('refuses a connector key of an organization nobody registered, on every node', async () => {
    const stranger = generateSigningKey();
    for (const nodeId of ['node1', 'node2', 'node3', 'node4']) {
      expect(await codeOf(net.dial(nodeId, stranger))).toBe('PEER_NOT_AUTHORIZED');
    }
  });

  it('a connector refuses a server that presents any key but the registered node key', async () => {
    const impostorKey = generateSigningKey();
    const impostor = await listenFramed({
      host: '127.0.0.1',
      port: 0,
      identity: impostorKey,
      authorize: () => 'anyone',
      onConnection: (connection) => connection.close(),
    });
    try {
      const failure = await codeOf(
        connectFramed({
          host: '127.0.0.1',
          port: impostor.port,
          identity: net.connectorKey('org1'),
          expectedPublicKey: net.node('node1').publicKey,
          timeoutMs: 5_000,
        }),
      );
      expect(failure).toBe('PEER_NOT_AUTHORIZED');
    } finally {
      await impostor.close();
    }
  });
});

describe('Sybil identities in the contract', () => {
  it('refuses a transaction signed by an unregistered key or in another organization’s name, changing nothing', async () => {
    const before = await net.nextOffset(org2);
    const rogue = generateSigningKey();
    const cases: { sender: string; key: SigningKeyPair; reason: string }[] = [
      // An invented organization.
      { sender: 'org9', key: rogue, reason: 'ORGANIZATION_UNKNOWN' },
      // A registered organization's name with a key it never registered.
      { sender: 'org1', key: rogue, reason: 'SIGNING_KEY_UNKNOWN' },
      // org2's real key, signing in org1's name.
      { sender: 'org1', key: net.connectorKey('org2'), reason: 'SIGNING_KEY_UNKNOWN' },
    ];
    const ids: string[] = [];
    for (const { sender, key, reason } of cases) {
      const id = randomId('sybil');
      ids.push(id);
      const signer = net.signing.signer(key);
      const operation = encodePublish(
        { sender, nonce: randomBytes(16), timestamp: Date.now(), messages: [metadataOf(id)] },
        signer,
      );
      // The client request around it may be signed by anyone (it only orders the operation); the
      // contract is what checks the operation's signer against the registry.
      const { result } = await publishRaw(org2, clientRequest(operation, signer));
      expect(result).toMatchObject({ status: 'REJECTED', reason });
    }
    // Nothing recorded: no offset taken, no message under any of the ids.
    expect(await net.nextOffset(org2)).toBe(before);
    for (const id of ids)
      expect(await codeOf(org2.request('message', { group: GROUP, id }))).toBe('MESSAGE_NOT_FOUND');
  });

  it('refuses registering a node under another organization’s name, or with a key or id already in use', async () => {
    const org1 = await net.dial('node1', net.connectorKey('org1'));
    try {
      const nodesBefore = net.nodes[0]!.registryHost.registry.nodes().length;
      const fresh = generateSigningKey();
      // The proof of possession is signed with `fresh`: the attacker holds no other node key.
      const registerNode = (id: string, publicKey: Uint8Array, organization = 'org1'): AdminAction => ({
        kind: 'registerNode',
        id,
        publicKey,
        address: '127.0.0.1:24699',
        proof: signNodePossession(
          { organization, id, address: '127.0.0.1:24699' },
          net.signing.signer(fresh),
        ),
      });
      // org1 signs in org2's name: its key is not org2's.
      expect(
        await admin(
          org1,
          adminTransaction('org2', net.signer('org1'), registerNode('sybil-a', fresh.publicKey, 'org2')),
        ),
      ).toMatchObject({ status: 'REJECTED', reason: 'SIGNING_KEY_UNKNOWN' });
      // A key nobody registered, in org1's name.
      expect(
        await admin(
          org1,
          adminTransaction(
            'org1',
            net.signing.signer(generateSigningKey()),
            registerNode('sybil-b', fresh.publicKey),
          ),
        ),
      ).toMatchObject({ status: 'REJECTED', reason: 'SIGNING_KEY_UNKNOWN' });
      // org1 registers a second node with node2's key (to be node2 under org1).
      expect(
        await admin(
          org1,
          adminTransaction('org1', net.signer('org1'), registerNode('sybil-c', net.node('node2').publicKey)),
        ),
      ).toMatchObject({ status: 'REJECTED', reason: 'KEY_IN_USE' });
      // org1 takes over node2's id with a key of its own.
      expect(
        await admin(
          org1,
          adminTransaction('org1', net.signer('org1'), registerNode('node2', fresh.publicKey)),
        ),
      ).toMatchObject({ status: 'REJECTED', reason: 'ALREADY_EXISTS' });
      for (const node of net.nodes) expect(node.registryHost.registry.nodes()).toHaveLength(nodesBefore);
      expect(net.nodes[0]!.registryHost.registry.node('node2')?.organization).toBe('org2');
    } finally {
      org1.close();
    }
  });
});
