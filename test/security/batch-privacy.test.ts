// Issue 11, item 10: a message's proof carries its whole batch transaction, so a recipient's proof
// used to show the metadata of every message in the sender's batch (ids, keys, headers of messages to
// other organizations), and a sender's delivery receipt showed every message the recipient confirmed
// in the same transaction, from any sender. The connector now batches only messages with the same
// recipients, and confirms each sender's messages in a transaction of their own; and a receipt's
// delivery evidence is compact (version 2): its own delivery's leaf, the rest only as hashes.
//
// Shows, on a 4-node network over real TLS with real connectors: org1 sends, in one call, messages to
// org2, to org3 and to org2 again; every proof org2 polls names only messages addressed to org2. org1
// and org3 both send to org2 before org2's connector runs (so one page holds both); org1's receipt
// names only org1's messages.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCanonical, encodeCanonical } from '../../src/codec/index.js';
import type { CborValue } from '../../src/codec/index.js';
import { decodeClientRequest, messageLimits } from '../../src/consensus/pbft/messages.js';
import { decodeTransaction } from '../../src/contracts/transactions.js';
import type { SdtTransaction } from '../../src/contracts/transactions.js';
import type { RpcPeer } from '../../src/net/index.js';
import { blockEvidenceSchema, deliveryEvidenceSchema } from '../../src/proofs/index.js';
import { GROUP, SecurityNetwork, waitFor } from './support.js';

const net = new SecurityNetwork({ name: 'batch-privacy', basePort: 25280 });
const peers: RpcPeer[] = [];
let batched: { id: string; to: string }[] = [];
let fromOrg1 = '';
let fromOrg3 = '';

function transactionOf(evidence: CborValue): SdtTransaction {
  const parsed = blockEvidenceSchema.parse(evidence, 'evidence');
  return decodeTransaction(decodeClientRequest(parsed.transaction, messageLimits.requestBytesMax).operation);
}

const payload = (): Readable => Readable.from([Buffer.from('a payload')]);

beforeAll(async () => {
  await net.startNodes();
  const org1 = await net.startConnector('org1');
  const org3 = await net.startConnector('org3');
  const sent = await org1.send('demo', [
    { value: payload(), to: ['org2'] },
    { value: payload(), to: ['org3'] },
    { value: payload(), to: ['org2'] },
  ]);
  batched = sent.map((result, index) => ({ id: result.id, to: index === 1 ? 'org3' : 'org2' }));
  fromOrg1 = (await org1.send('demo', [{ value: payload(), to: ['org2'] }]))[0]!.id;
  fromOrg3 = (await org3.send('demo', [{ value: payload(), to: ['org2'] }]))[0]!.id;
  const org2 = await net.startConnector('org2');
  await waitFor('org2 to store every message', () =>
    [...batched.filter((entry) => entry.to === 'org2').map((entry) => entry.id), fromOrg1, fromOrg3].every(
      (id) => org2.receivedMessage(id) !== undefined,
    )
      ? true
      : undefined,
  );
}, 60_000);

afterAll(async () => {
  for (const peer of peers) peer.close();
  await net.stop();
}, 60_000);

describe('proofs show only what their reader may see', () => {
  it("a recipient's proofs name only messages addressed to it", async () => {
    const org2 = await net.dial('node2', net.connectorKey('org2'));
    peers.push(org2);
    const page = (await org2.request('poll', { group: GROUP, fromOffset: 0, limit: 500 })) as {
      evidences: CborValue[];
      messages: { id: string }[];
    };
    expect(page.messages.map((message) => message.id)).toContain(batched[0]!.id);
    for (const evidence of page.evidences) {
      const transaction = transactionOf(evidence);
      expect(transaction.type).toBe('publish');
      if (transaction.type !== 'publish') continue;
      for (const message of transaction.messages) expect(message.recipients).toEqual(['org2']);
    }
  });

  it("a sender's receipt names only its own messages' deliveries", async () => {
    const org1 = await net.dial('node1', net.connectorKey('org1'));
    peers.push(org1);
    const receipt = await waitFor('org1 to get the delivery in its receipt', async () => {
      const answer = (await org1.request('receipt', { group: GROUP, id: fromOrg1 })) as {
        deliveries: CborValue[];
      };
      return answer.deliveries.length > 0 ? answer : undefined;
    });
    for (const value of receipt.deliveries) {
      const delivery = deliveryEvidenceSchema.parse(value, 'delivery');
      // Compact evidence holds its own delivery's leaf and only hashes of the confirmation's others.
      expect('version' in delivery).toBe(true);
      if (!('version' in delivery)) continue;
      expect(decodeCanonical(delivery.delivery)).toMatchObject({ id: fromOrg1 });
      expect(Buffer.from(encodeCanonical(value)).includes(fromOrg3)).toBe(false);
      expect(Buffer.from(encodeCanonical(value)).includes(fromOrg1)).toBe(true);
    }
  });
});
