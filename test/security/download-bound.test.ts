// Security issue 11, item 6: the recipient must bound what it downloads. The ledger checks only the
// size the sender declared (the encrypted size, against the topic's `messageBytesMax`); the payload
// envelope itself allows 256 Ki chunks of up to 16 MiB. A member that serves its own payloads can
// publish a small size on-chain and then hand each recipient a signed envelope header declaring far
// more, with ciphertext to match (every chunk hashes to the signed list, so it decrypts), or an
// honest header followed by bytes that never end.
//
// Shows, on a 4-node network over real TLS with org1 played by hand (its registered key, its own
// `servePayload` answers, built with the real envelope code): org2's connector refuses such a
// payload with OVERSIZE — before reading it when the header already says too much, and as soon as
// the stream passes the bound otherwise — stores nothing, records the failure (given up after its
// attempts, with a message.failed event), and pulled only a small part of what was offered.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorEvent } from '../../src/connector/api-types.js';
import { generatedStream } from '../../src/client/testing/memory-connector.js';
import { HostileSender, SecurityNetwork, metadataOf, randomId, waitFor } from './support.js';

const MiB = 1024 * 1024;
const net = new SecurityNetwork({ name: 'download-bound', basePort: 24860, messageBytesMax: MiB });
let org1: HostileSender;
const events: ConnectorEvent[] = [];

beforeAll(async () => {
  await net.startNodes();
  const org2 = await net.startConnector('org2');
  org2.onEvent((event) => events.push(event));
  // org1's real connector never runs: org1 answers its recipients' fetches itself.
  org1 = await HostileSender.connect(net, 'org1', 'node1');
}, 60_000);

afterAll(async () => {
  org1?.close();
  await net.stop();
}, 60_000);

/** Waits until org2 gave the message up (a failure per attempt) or stored it; says which. */
async function outcomeAtOrg2(id: string): Promise<{ stored: boolean; code?: string; attempts?: number }> {
  const org2 = net.connector('org2');
  return waitFor(`org2 to store or give up ${id}`, () => {
    if (org2.receivedMessage(id, { topic: 'demo', partition: 0 }) !== undefined) return { stored: true };
    const failure = org2.failures().find((entry) => entry.id === id);
    return failure !== undefined && failure.attempts >= 2
      ? { stored: false, code: failure.code, attempts: failure.attempts }
      : undefined;
  });
}

/** Bytes in org2's payload storage: stored objects and puts in progress alike. */
function org2StorageBytes(): number {
  return net.storageFiles('org2').reduce((total, file) => total + file.bytes, 0);
}

describe('a sender that serves more than it declared on-chain', () => {
  it('is refused before a byte is read when its signed header declares more than the ledger says', async () => {
    const id = randomId('inflated');
    const offered = 24 * MiB;
    const sealed = await org1.seal({ id, plaintext: generatedStream(offered, 7), recipients: ['org2'] });
    org1.offerSealed(id, sealed);
    const storedBefore = org2StorageBytes();
    const memoryBefore = process.memoryUsage();
    // The ledger is told 1000 bytes, within the topic's 1 MiB policy; the header's root is the one
    // published, so every chunk of the 24 MiB verifies against the chain.
    const result = await org1.publish(
      metadataOf(id, {
        size: 1000,
        contentRoot: sealed.header.merkleRoot,
        contentType: 'application/octet-stream',
      }),
    );
    expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });

    const outcome = await outcomeAtOrg2(id);
    const memoryAfter = process.memoryUsage();
    const pulled = org1.served.get(id) ?? 0;
    console.log(
      `download-bound: offered ${offered / MiB} MiB of ciphertext under a 1000-byte declaration; ` +
        `org2 ${outcome.stored ? 'STORED it' : `gave up with ${outcome.code} after ${outcome.attempts} attempts`}; ` +
        `pulled ${(pulled / MiB).toFixed(2)} MiB from the sender over all attempts; ` +
        `storage ${storedBefore} → ${org2StorageBytes()} bytes; arrayBuffers ` +
        `${(memoryBefore.arrayBuffers / MiB).toFixed(0)} → ${(memoryAfter.arrayBuffers / MiB).toFixed(0)} MiB`,
    );
    expect(outcome).toMatchObject({ stored: false, code: 'OVERSIZE' });
    expect(org2StorageBytes()).toBe(storedBefore);
    // What did flow was what sockets and relay buffers held when the stream was cut: a few MiB over
    // both attempts, never the payload.
    expect(pulled).toBeLessThan(offered / 3);
    expect(memoryAfter.arrayBuffers - memoryBefore.arrayBuffers).toBeLessThan(offered);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'message.failed', id, topic: 'demo', partition: 0, code: 'OVERSIZE' }),
    );
  });

  it('is cut as soon as the stream passes the size its honest header and the ledger agree on', async () => {
    const id = randomId('endless');
    const sealed = await org1.seal({ id, plaintext: generatedStream(200 * 1024, 8), recipients: ['org2'] });
    const tail = 48 * MiB;
    // The genuine ciphertext, then more of anything, as fast as the recipient takes it.
    org1.offer(id, sealed.header, () =>
      Readable.from(
        (async function* () {
          for await (const chunk of createReadStream(sealed.file)) yield chunk as Buffer;
          for await (const chunk of generatedStream(tail, 9)) yield chunk as Buffer;
        })(),
        { objectMode: false },
      ),
    );
    const storedBefore = org2StorageBytes();
    const result = await org1.publish(
      metadataOf(id, {
        size: sealed.ciphertextBytes,
        contentRoot: sealed.header.merkleRoot,
        contentType: 'application/octet-stream',
      }),
    );
    expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });

    const outcome = await outcomeAtOrg2(id);
    const pulled = org1.served.get(id) ?? 0;
    console.log(
      `download-bound: ${sealed.ciphertextBytes} bytes declared, then ${tail / MiB} MiB more offered; ` +
        `org2 ${outcome.stored ? 'STORED it' : `gave up with ${outcome.code}`}; pulled ${(pulled / MiB).toFixed(2)} MiB`,
    );
    expect(outcome).toMatchObject({ stored: false, code: 'OVERSIZE' });
    expect(org2StorageBytes()).toBe(storedBefore);
    expect(pulled).toBeLessThan(tail / 3);
  });
});
