// Issue 11, item 15: signatures did not name their network. An organization that uses one key in
// two consortia (a test and a production one), or an operator who reuses a node key, made
// signatures that verified in both: a publish, a delivery confirmation, an admin transaction or a
// receipt from one network was as good in the other.
//
// Shows, with two real 4-node networks over TLS built from the very same keys (network B reuses
// network A's key files and differs only in its network id): in each network its own publish,
// confirmation, admin transaction, fetch request and receipt work; replayed in the other network
// through the real wire protocol, the client request is refused BAD_SIGNATURE, the publish and the
// confirmation it carried are REJECTED BAD_SIGNATURE by the contract and take no offset, the admin
// transaction is REJECTED BAD_SIGNATURE and changes nothing, the fetch request is refused, and
// `ledgerbus verify` with B's trust bundle finds A's receipt INVALID even when relabelled as B's.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWith } from '../../src/codec/index.js';
import { decodeFetchRequest, encodeFetchRequest, fetchRequestSchema } from '../../src/contracts/fetch.js';
import { encodeConfirmDelivery, encodePublish } from '../../src/contracts/transactions.js';
import { generateSigningKey, toHex } from '../../src/crypto/index.js';
import type { SigningKeyPair } from '../../src/crypto/index.js';
import type { RpcPeer } from '../../src/net/index.js';
import type { AdminAction } from '../../src/registry/admin-transactions.js';
import { adminTransaction, submitAdmin } from './admin-support.js';
import {
  GROUP,
  SecurityNetwork,
  clientRequest,
  codeOf,
  metadataOf,
  publishRaw,
  randomId,
  waitFor,
} from './support.js';
import { cliNodeArgs } from '../support/processes.js';

const netA = new SecurityNetwork({ name: 'cross-network-a', basePort: 25400 });
const netB = new SecurityNetwork({ name: 'cross-network-b', basePort: 25420, keysFrom: netA });

/** Connector links (as org1, org2, org3) to nodes 1, 2, 3 of each network. */
const peers = new Map<SecurityNetwork, { org1: RpcPeer; org2: RpcPeer; org3: RpcPeer }>();
const peersOf = (net: SecurityNetwork): { org1: RpcPeer; org2: RpcPeer; org3: RpcPeer } => peers.get(net)!;

// ---- what a connector of `net` signs (the only place the tests sign anything) ----

function publishOperation(net: SecurityNetwork, id: string): Uint8Array {
  return encodePublish(
    { sender: 'org1', nonce: randomBytes(16), timestamp: Date.now(), messages: [metadataOf(id)] },
    net.signer('org1'),
  );
}

function confirmation(net: SecurityNetwork, id: string): Uint8Array {
  return encodeConfirmDelivery(
    {
      recipient: 'org2',
      nonce: randomBytes(16),
      timestamp: Date.now(),
      deliveries: [{ id, contentRoot: new Uint8Array(32) }],
    },
    net.signer('org2'),
  );
}

/** A client request of `net` ordering `operation`, signed by `key` (any key may order). */
function request(net: SecurityNetwork, operation: Uint8Array, key: SigningKeyPair): Uint8Array {
  return clientRequest(operation, net.signing.signer(key));
}

function admin(net: SecurityNetwork, action: AdminAction): Uint8Array {
  return adminTransaction('org1', net.signer('org1'), action);
}

function fetchRequest(net: SecurityNetwork, id: string): Uint8Array {
  return encodeFetchRequest(
    {
      requester: 'org2',
      partitionId: GROUP,
      id,
      nonce: randomBytes(16),
      timestamp: Date.now(),
    },
    net.signer('org2'),
  );
}

// ---- the CLI ----

/** `ledgerbus verify <bundle> --network <net's network.json> --json`, as a user runs it. */
function verifyCli(bundle: unknown, net: SecurityNetwork): Promise<Record<string, unknown>> {
  const file = join(net.directory, `receipt-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify(bundle));
  const args = ['verify', file, '--network', join(net.directory, 'network.json'), '--json'];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...cliNodeArgs(), ...args],
      { encoding: 'utf8' },
      (_error, stdout, stderr) => {
        try {
          resolve(JSON.parse(stdout) as Record<string, unknown>);
        } catch {
          reject(new Error(`ledgerbus verify printed no JSON: ${stdout}${stderr}`));
        }
      },
    );
  });
}

/** Bytes of `id`'s payload `peer` (org2) fetches with `fetchBytes`. */
async function fetchPayload(peer: RpcPeer, fetchBytes: Uint8Array): Promise<number> {
  const { stream } = await peer.requestStream('fetchPayload', { group: GROUP, fetchRequest: fetchBytes });
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

/** One message `sharedId` from org1 to org2 in each network, received, with its delivered receipt. */
const sharedId = randomId('shared');
const receipts = new Map<SecurityNetwork, Record<string, unknown>>();

beforeAll(async () => {
  for (const net of [netA, netB]) {
    await net.startNodes();
    await net.startConnector('org1');
    await net.startConnector('org2');
    peers.set(net, {
      org1: await net.dial('node1', net.connectorKey('org1')),
      org2: await net.dial('node2', net.connectorKey('org2')),
      org3: await net.dial('node3', net.connectorKey('org3')),
    });
  }
}, 120_000);

afterAll(async () => {
  for (const set of peers.values()) for (const peer of Object.values(set)) peer.close();
  await netA.stop();
  await netB.stop();
}, 60_000);

describe('two networks built from the same keys', () => {
  it('share every key, differ in their network id', () => {
    const keys = (net: SecurityNetwork): string[] => [
      ...net.layout.network.genesis.organizations.flatMap((organization) => organization.signingKeys),
      ...net.layout.network.genesis.nodes.map((node) => node.publicKey),
    ];
    expect(keys(netB)).toEqual(keys(netA));
    expect(toHex(netB.connectorKey('org1').publicKey)).toBe(toHex(netA.connectorKey('org1').publicKey));
    expect(netB.layout.network.network).not.toBe(netA.layout.network.network);
  });

  it('each sends, receives and proves a message that verifies against its own trust bundle', async () => {
    for (const net of [netA, netB]) {
      const [sent] = await net
        .connector('org1')
        .send('demo', [{ value: Readable.from([randomBytes(2048)]), to: ['org2'], id: sharedId }]);
      expect(sent!.id).toBe(sharedId);
      await waitFor('org2 to receive it', () => net.connector('org2').receivedMessage(sharedId));
      const bundle = await waitFor('a receipt naming the delivery', async () => {
        const candidate = await net.connector('org1').receipt('demo', sharedId);
        return candidate.deliveredTo.includes('org2') ? candidate : undefined;
      });
      receipts.set(net, bundle as unknown as Record<string, unknown>);
      expect(await verifyCli(bundle, net)).toMatchObject({
        valid: true,
        id: sharedId,
        deliveredTo: ['org2'],
      });
    }
  }, 120_000);
});

describe('a publish made for network A, in network B', () => {
  it('is accepted in A; in B its request is BAD_SIGNATURE and its operation REJECTED BAD_SIGNATURE, no offset', async () => {
    const id = randomId('xnet-publish');
    const operation = publishOperation(netA, id);
    const captured = request(netA, operation, netA.connectorKey('org1'));
    const inA = await publishRaw(peersOf(netA).org1, captured);
    expect(inA.result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });

    const { org1, org3 } = peersOf(netB);
    const before = await netB.nextOffset(org1);
    // The captured client request as it is: its own signature names network A.
    expect(await codeOf(publishRaw(org1, captured))).toBe('BAD_SIGNATURE');
    // The captured operation ordered by a request of B's (any key may order): the contract refuses it.
    const wrapped = await publishRaw(org3, request(netB, operation, generateSigningKey()));
    expect(wrapped.result).toMatchObject({ status: 'REJECTED', reason: 'BAD_SIGNATURE' });
    expect(await netB.nextOffset(org1)).toBe(before);

    // The same message signed for B is accepted there.
    const own = await publishRaw(org1, request(netB, publishOperation(netB, id), netB.connectorKey('org1')));
    expect(own.result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
    expect(await netB.nextOffset(org1)).toBe(before + 1);
  }, 60_000);
});

describe('a delivery confirmation made for network A, in network B', () => {
  it('confirms in A; in B it is REJECTED BAD_SIGNATURE and the message stays pending', async () => {
    const id = randomId('xnet-confirm');
    for (const net of [netA, netB]) {
      const published = await publishRaw(
        peersOf(net).org1,
        request(net, publishOperation(net, id), net.connectorKey('org1')),
      );
      expect(published.result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
    }
    const captured = confirmation(netA, id);
    const inA = await publishRaw(peersOf(netA).org2, request(netA, captured, netA.connectorKey('org2')));
    expect(inA.result).toMatchObject({ status: 'OK', deliveries: [{ status: 'DELIVERED' }] });

    const { org1, org3 } = peersOf(netB);
    const inB = await publishRaw(org3, request(netB, captured, generateSigningKey()));
    expect(inB.result).toMatchObject({ status: 'REJECTED', reason: 'BAD_SIGNATURE' });
    const status = (await org1.request('message', { group: GROUP, id })) as {
      recipients: { organization: string; state: string }[];
    };
    expect(status.recipients).toEqual([expect.objectContaining({ organization: 'org2', state: 'PENDING' })]);
  }, 60_000);
});

describe('an admin transaction made for network A, in network B', () => {
  it('applies in A; in B it is REJECTED BAD_SIGNATURE and changes nothing', async () => {
    const keysOf = (net: SecurityNetwork): number =>
      net.nodes[0]!.registryHost.registry.organization('org1')!.signingKeys.length;
    const [beforeA, beforeB] = [keysOf(netA), keysOf(netB)];
    const captured = admin(netA, { kind: 'bindKey', key: generateSigningKey().publicKey });
    expect(await submitAdmin(peersOf(netA).org1, captured)).toMatchObject({ status: 'OK' });
    await waitFor('A to apply it', () => (keysOf(netA) === beforeA + 1 ? true : undefined));

    expect(await submitAdmin(peersOf(netB).org1, captured)).toMatchObject({
      status: 'REJECTED',
      reason: 'BAD_SIGNATURE',
    });
    expect(keysOf(netB)).toBe(beforeB);
    // The same action signed for B applies there.
    const own = admin(netB, { kind: 'bindKey', key: generateSigningKey().publicKey });
    expect(await submitAdmin(peersOf(netB).org1, own)).toMatchObject({ status: 'OK' });
  }, 60_000);
});

describe('a fetch request made for network A, in network B', () => {
  it('is served in A; in B it is refused, as it is and relabelled with B as its network', async () => {
    expect(await fetchPayload(peersOf(netA).org2, fetchRequest(netA, sharedId))).toBeGreaterThan(2048);

    const { org2 } = peersOf(netB);
    const captured = fetchRequest(netA, sharedId);
    expect(await codeOf(fetchPayload(org2, captured))).toBe('WRONG_NETWORK');
    const relabelled = encodeWith(fetchRequestSchema, {
      ...decodeFetchRequest(captured),
      network: netB.layout.network.network,
    });
    expect(await codeOf(fetchPayload(org2, relabelled))).toBe('BAD_SIGNATURE');
    expect(await fetchPayload(org2, fetchRequest(netB, sharedId))).toBeGreaterThan(2048);
  }, 60_000);
});

describe("a receipt of network A, verified offline against network B's trust bundle", () => {
  it('is INVALID, as it is and relabelled with B as its network', async () => {
    const bundle = receipts.get(netA);
    expect(bundle).toBeDefined();
    expect(await verifyCli(bundle, netA)).toMatchObject({ valid: true });
    expect(await verifyCli(bundle, netB)).toMatchObject({ valid: false, code: 'WRONG_GROUP' });
    const relabelled = { ...bundle, network: netB.layout.network.network };
    expect(await verifyCli(relabelled, netB)).toMatchObject({ valid: false, code: 'BAD_SIGNATURE' });
  }, 60_000);
});
