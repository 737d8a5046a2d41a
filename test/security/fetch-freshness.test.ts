// Issue 11, item 11: a recipient's signed fetch request was checked for its signature only, so a
// captured one could be replayed at any time, any number of times, and in another network whose
// organizations use the same keys. Now it names its network and expires (a minute after signing, five
// at the most), and every node and connector that releases a payload for it remembers its nonce until
// then.
//
// Shows, on a 4-node network over real TLS with real connectors (org1 sends, org2 receives): a fresh
// request gets the payload once; the same bytes again are REPLAY; an expired request, one claiming an
// hour of validity, one stamped in the future, and one for another network are refused with stable
// codes before anything is read.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFetchRequest } from '../../src/contracts/fetch.js';
import { SigningDomain } from '../../src/crypto/index.js';
import type { RpcPeer } from '../../src/net/index.js';
import { GROUP, SecurityNetwork, codeOf, waitFor } from './support.js';

const net = new SecurityNetwork({ name: 'fetch-freshness', basePort: 25260 });
let org2: RpcPeer;
let id = '';

function fetchRequest(
  overrides: { timestamp?: number; expiresAt?: number; network?: string } = {},
): Uint8Array {
  return encodeFetchRequest(
    {
      requester: 'org2',
      partitionId: GROUP,
      id,
      nonce: randomBytes(16),
      timestamp: overrides.timestamp ?? Date.now(),
      ...(overrides.expiresAt === undefined ? {} : { expiresAt: overrides.expiresAt }),
    },
    // Made for another network, it is signed for that network too: the same key, another domain.
    (overrides.network === undefined ? net.signing : SigningDomain.of(overrides.network)).signer(
      net.connectorKey('org2'),
    ),
  );
}

/** Fetches through node2 as org2 and reads the whole stream; resolves to the bytes received. */
async function fetchOnce(request: Uint8Array): Promise<number> {
  const { stream } = await org2.requestStream('fetchPayload', { group: GROUP, fetchRequest: request });
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

beforeAll(async () => {
  await net.startNodes();
  const sender = await net.startConnector('org1');
  const recipient = await net.startConnector('org2');
  const [sent] = await sender.send('demo', [{ value: Readable.from([randomBytes(4096)]), to: ['org2'] }]);
  id = sent!.id;
  await waitFor('org2 to receive the message', () => recipient.receivedMessage(id));
  org2 = await net.dial('node2', net.connectorKey('org2'));
  // org2's connector may have received it through another node; node2 itself must have committed it,
  // or the first fetch is "not committed here yet" (retriable), not the refusal this file is about.
  await waitFor('node2 to commit the message', async () =>
    (await codeOf(org2.request('receipt', { group: GROUP, id }))) === 'OK' ? true : undefined,
  );
}, 60_000);

afterAll(async () => {
  org2?.close();
  await net.stop();
}, 60_000);

describe('a fetch request is for one network, for a short time, once', () => {
  it('serves a fresh request once; the same bytes again are REPLAY', async () => {
    const request = fetchRequest();
    expect(await fetchOnce(request)).toBeGreaterThan(4096);
    expect(await codeOf(fetchOnce(request))).toBe('REPLAY');
    // A new request (new nonce) is served again: the window refuses copies, not recipients.
    expect(await fetchOnce(fetchRequest())).toBeGreaterThan(4096);
  });

  it('refuses an expired request, one that claims too long a life, and one stamped in the future', async () => {
    const now = Date.now();
    expect(await codeOf(fetchOnce(fetchRequest({ timestamp: now - 10 * 60_000 })))).toBe('REQUEST_EXPIRED');
    expect(await codeOf(fetchOnce(fetchRequest({ timestamp: now, expiresAt: now + 60 * 60_000 })))).toBe(
      'REQUEST_EXPIRED',
    );
    expect(await codeOf(fetchOnce(fetchRequest({ timestamp: now + 5 * 60_000 })))).toBe('REQUEST_EXPIRED');
  });

  it('refuses a request signed for another network with the same keys', async () => {
    expect(await codeOf(fetchOnce(fetchRequest({ network: 'another-consortium' })))).toBe('WRONG_NETWORK');
  });
});
