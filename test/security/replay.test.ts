// DESIGN §4 ("every transaction carries a nonce/timestamp; replays are rejected") against an
// attacker holding captured signed bytes — a node sees every request it orders, so one faulty node
// is enough to hold them — and Fabric's class of replayed or duplicated transactions
// (CVE-2022-45196: the same crafted channel transaction sent repeatedly crashes an orderer).
// BlockTorrent's Table 2 has no replay row; this completes its rows 2 and 3: a captured signature
// buys nothing.
//
// Shows, on a 4-node network over real TLS: the same signed publish request sent again (to the same
// node, or by another organization to another node) gets the first acknowledgement back and takes
// no new offset; the captured publish operation wrapped in a new request is REJECTED with REPLAY; a
// signed admin transaction replayed is REJECTED with REPLAY and changes the registry once; a
// delivery confirmation replayed is REPLAY; and a recipient's signed fetch request replayed by
// another organization is NOT_RECIPIENT.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWith } from '../../src/codec/index.js';
import type { CborValue } from '../../src/codec/index.js';
import { encodeFetchRequest } from '../../src/contracts/fetch.js';
import { encodeConfirmDelivery, encodePublish } from '../../src/contracts/transactions.js';
import { generateSigningKey } from '../../src/crypto/index.js';
import { isLedgerbusError } from '../../src/errors.js';
import type { RpcPeer } from '../../src/net/index.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  signAdminTransaction,
} from '../../src/registry/admin-transactions.js';
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

const net = new SecurityNetwork({ name: 'replay', basePort: 24660 });
let org1: RpcPeer;
let org2: RpcPeer;
let org3: RpcPeer;

beforeAll(async () => {
  await net.startNodes();
  org1 = await net.dial('node1', net.connectorKey('org1'));
  org2 = await net.dial('node2', net.connectorKey('org2'));
  org3 = await net.dial('node3', net.connectorKey('org3'));
}, 60_000);

afterAll(async () => {
  for (const peer of [org1, org2, org3]) peer?.close();
  await net.stop();
}, 60_000);

/** Publishes one message from org1 to org2 and returns the signed operation, request and result. */
async function publishOne(id: string): Promise<{
  operation: Uint8Array;
  request: Uint8Array;
  first: Awaited<ReturnType<typeof publishRaw>>;
}> {
  const key = net.signer('org1');
  const operation = encodePublish(
    { sender: 'org1', nonce: randomBytes(16), timestamp: Date.now(), messages: [metadataOf(id)] },
    key,
  );
  const request = clientRequest(operation, key);
  const first = await publishRaw(org1, request);
  expect(first.result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
  return { operation, request, first };
}

describe('replayed publishes', () => {
  it('the same signed request again is a duplicate: the first acknowledgement, no new offset', async () => {
    const { request, first } = await publishOne(randomId('replay'));
    const after = await net.nextOffset(org1);
    const again = await publishRaw(org1, request);
    expect({ height: again.height, transactionIndex: again.transactionIndex }).toEqual({
      height: first.height,
      transactionIndex: first.transactionIndex,
    });
    // Another organization replays the captured bytes to another node: the same answer.
    await waitFor('node3 to hold the block', async () =>
      (await net.nextOffset(org3)) >= after ? true : undefined,
    );
    const elsewhere = await publishRaw(org3, request);
    expect(elsewhere.height).toBe(first.height);
    expect(await net.nextOffset(org1)).toBe(after);
  });

  it('the captured operation in a new request is REJECTED with REPLAY and changes nothing', async () => {
    const { operation } = await publishOne(randomId('replay'));
    const after = await net.nextOffset(org1);
    // The attacker wraps the captured operation in a client request of its own (any key orders).
    const attacker = net.signing.signer(generateSigningKey());
    const replayed = await publishRaw(org3, clientRequest(operation, attacker));
    expect(replayed.result).toMatchObject({ status: 'REJECTED', reason: 'REPLAY' });
    // The sender's own key, a fresh sequence number: still the same nonce, still a replay.
    const resent = await publishRaw(org1, clientRequest(operation, net.signer('org1')));
    expect(resent.result).toMatchObject({ status: 'REJECTED', reason: 'REPLAY' });
    expect(await net.nextOffset(org1)).toBe(after);
  });
});

describe('replayed admin transactions', () => {
  it('a signed admin transaction replayed is REJECTED with REPLAY and applies once', async () => {
    const before = net.nodes[0]!.registryHost.registry.organization('org1')!.signingKeys.length;
    const transaction = encodeWith(
      adminTransactionSchema,
      signAdminTransaction(
        {
          group: SYSTEM_GROUP,
          organization: 'org1',
          nonce: randomBytes(16),
          timestamp: Date.now(),
          action: { kind: 'bindKey', key: generateSigningKey().publicKey },
        },
        net.signer('org1'),
      ),
    );
    const submit = (peer: RpcPeer): Promise<Record<string, CborValue>> =>
      waitFor('an admin answer', async () => {
        try {
          const reply = (await peer.request('admin', { transaction })) as Record<string, CborValue>;
          return reply['result'] as Record<string, CborValue>;
        } catch (error) {
          if (isLedgerbusError(error) && error.retriable) return undefined;
          throw error;
        }
      });
    expect(await submit(org1)).toMatchObject({ status: 'OK' });
    // Replayed by org1 and, captured, by org3 through another node.
    expect(await submit(org1)).toMatchObject({ status: 'REJECTED', reason: 'REPLAY' });
    expect(await submit(org3)).toMatchObject({ status: 'REJECTED', reason: 'REPLAY' });
    await waitFor('every node to apply the change', () =>
      net.nodes.every(
        (node) => node.registryHost.registry.organization('org1')!.signingKeys.length === before + 1,
      )
        ? true
        : undefined,
    );
  });
});

describe('replayed receipts and fetches', () => {
  it('a delivery confirmation replayed is REPLAY; a fetch request replayed by another organization is NOT_RECIPIENT', async () => {
    const id = randomId('receipt');
    await publishOne(id);
    const key = net.signer('org2');
    const confirmation = encodeConfirmDelivery(
      {
        recipient: 'org2',
        nonce: randomBytes(16),
        timestamp: Date.now(),
        deliveries: [{ id, contentRoot: new Uint8Array(32) }],
      },
      key,
    );
    const confirmed = await publishRaw(org2, clientRequest(confirmation, key));
    expect(confirmed.result).toMatchObject({ status: 'OK', deliveries: [{ status: 'DELIVERED' }] });
    const replayed = await publishRaw(
      org3,
      clientRequest(confirmation, net.signing.signer(generateSigningKey())),
    );
    expect(replayed.result).toMatchObject({ status: 'REJECTED', reason: 'REPLAY' });
    const status = (await org1.request('message', { group: GROUP, id })) as {
      recipients: { state: string }[];
    };
    expect(status.recipients).toEqual([
      expect.objectContaining({ organization: 'org2', state: 'DELIVERED' }),
    ]);

    // org2's signed fetch request, captured and replayed by org3 (a registered organization, over
    // its own TLS identity): the node matches the request's requester to the caller.
    const fetchRequest = encodeFetchRequest(
      {
        requester: 'org2',
        partitionId: GROUP,
        id,
        nonce: randomBytes(16),
        timestamp: Date.now(),
      },
      key,
    );
    expect(await codeOf(org3.requestStream('fetchPayload', { group: GROUP, fetchRequest }))).toBe(
      'NOT_RECIPIENT',
    );
  });
});
