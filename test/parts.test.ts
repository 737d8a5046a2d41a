// Large values in parts (src/connector/parts.ts) on a whole network in one test process, every hop
// over real TLS: 4 nodes running the PBFT partition on SQLite, and connectors with filesystem
// storage whose part size is 1 MiB. What the parts are for — the recipient stores the first parts
// while the sender is still reading the value — and what must not follow from them: a message
// listed before all of its parts are in, parts listed on their own, parts bound by a message that
// does not match them or that another organization published.
import { startLayoutNode } from './support/in-process-node.js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor as poll } from './support/processes.js';
import { ensureDevnetLayout } from '../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../src/cli/devnet-layout.js';
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../src/consensus/pbft/messages.js';
import { messageById } from '../src/contracts/index.js';
import type { ContractState } from '../src/contracts/index.js';
import { decodeTransactionResult } from '../src/contracts/results.js';
import { encodePublish } from '../src/contracts/transactions.js';
import type { MessageMetadata } from '../src/contracts/transactions.js';
import { Ledgerbus } from '../src/client/index.js';
import { Connector } from '../src/connector/connector.js';
import { startHttpApi } from '../src/connector/http-api.js';
import type { HttpApiServer } from '../src/connector/http-api.js';
import type { ConnectorEvent } from '../src/connector/api-types.js';
import { loadConnectorConfig } from '../src/connector/config.js';
import { partHeaders, partMessageId, partsHeaderValues } from '../src/connector/parts.js';
import { openStorage } from '../src/connector/storage/index.js';
import type { PayloadStorage } from '../src/connector/storage/index.js';
import {
  encodeEnvelopeHeader,
  encryptPayloadToBytes,
  loadEncryptionKey,
} from '../src/crypto/envelope/index.js';
import { SigningDomain, loadSigningKey } from '../src/crypto/index.js';
import { isLedgerbusError } from '../src/errors.js';
import { RpcPeer, connectFramed } from '../src/net/index.js';
import { loadGenesisRegistry } from '../src/node/config.js';
import type { LedgerbusNode } from '../src/node/node.js';
import { blockEvidenceSchema, decodeDeliveryReceipt, verifyDeliveryReceipt } from '../src/proofs/index.js';
import { liveRegistryFromGenesis } from '../src/registry/live-registry.js';
import { proofTrustOf } from '../src/registry/trust.js';
import { createLogger } from '../src/runtime/logger.js';

const mib = 1024 * 1024;
const partBytes = mib;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-parts-'));
let layout: DevnetLayout;
const nodes: LedgerbusNode[] = [];
const connectors = new Map<string, Connector>();
let org1Api: HttpApiServer | undefined;
const events = new Map<string, ConnectorEvent[]>();
/** The key of every object each organization's connector put into its storage, one entry per put. */
const puts = new Map<string, string[]>();

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function recordingPuts(organization: string, storage: PayloadStorage): PayloadStorage {
  return {
    kind: storage.kind,
    put: async (source, options) => {
      const stored = await storage.put(source, options);
      puts.get(organization)!.push(stored.key);
      return stored;
    },
    get: (key, range) => storage.get(key, range),
    stat: (key) => storage.stat(key),
    delete: (key) => storage.delete(key),
    close: () => storage.close(),
  };
}

function connector(organization: string): Connector {
  return connectors.get(organization)!;
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  return poll(what, probe, 30_000, 50);
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A read-only view of node1's committed state of demo/0. */
function committedState(): ContractState {
  const state = nodes[0]!.replicas.get('demo/0')!.database.committedState;
  const refuse = (): never => {
    throw new Error('the test only reads the committed state');
  };
  return { get: (key) => state.get(key), put: refuse, delete: refuse };
}

/** Counts `organization`'s storage puts of each of `keys`. */
function putsOfKeys(organization: string, keys: readonly string[]): number {
  return puts.get(organization)!.filter((key) => keys.includes(key)).length;
}

/**
 * Publishes `metadata` as organization `orgN`'s connector key signs it, its (empty) payload sealed
 * for org2 and carried inline — what a sender that does not follow the parts convention can do.
 */
async function publishAs(
  organizationNumber: number,
  metadata: Omit<MessageMetadata, 'size' | 'contentRoot'>,
) {
  const config = loadConnectorConfig(layout.connectorConfigs[organizationNumber - 1] as string);
  const key = loadSigningKey(config.keyFile);
  const registry = loadGenesisRegistry(config.genesis);
  const signer = SigningDomain.of(layout.network.genesis.network).signer(key);
  const sealed = await encryptPayloadToBytes(
    {
      signer,
      senderOrgId: `org${organizationNumber}`,
      recipients: [{ orgId: 'org2', publicKey: registry.encryptionKey('org2')! }],
      payloadId: metadata.id,
      contentType: metadata.contentType,
    },
    new Uint8Array(0),
  );
  const full: MessageMetadata = {
    ...metadata,
    size: sealed.ciphertext.length,
    contentRoot: sealed.header.merkleRoot,
  };
  const operation = encodePublish(
    {
      sender: `org${organizationNumber}`,
      nonce: randomBytes(16),
      timestamp: Date.now(),
      messages: [full],
      payloads: [{ header: encodeEnvelopeHeader(sealed.header), ciphertext: sealed.ciphertext }],
    },
    signer,
  );
  const node1 = registry.node('node1')!;
  const connection = await connectFramed({
    host: node1.host,
    port: node1.port,
    identity: key,
    expectedPublicKey: node1.publicKey,
  });
  const peer = new RpcPeer(connection);
  try {
    const request = encodeClientRequest(
      { group: 'demo/0', client: signer.publicKey, seq: Date.now() * 1000 + 999_000, operation },
      signer.sign,
    );
    decodeClientRequest(request, messageLimits.requestBytesMax);
    const answer = (await peer.request('publish', { group: 'demo/0', request })) as Record<string, unknown>;
    const result = decodeTransactionResult(blockEvidenceSchema.parse(answer['evidence'], 'evidence').result);
    expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
  } finally {
    peer.close();
  }
}

async function startConnector(path: string): Promise<void> {
  const config = loadConnectorConfig(path);
  if (!puts.has(config.organization)) puts.set(config.organization, []);
  if (!events.has(config.organization)) events.set(config.organization, []);
  const connector = new Connector({
    organization: config.organization,
    signingKey: loadSigningKey(config.keyFile),
    encryptionKey: loadEncryptionKey(config.encryptionKeyFile),
    registry: liveRegistryFromGenesis(loadGenesisRegistry(config.genesis).genesis),
    storage: recordingPuts(config.organization, await openStorage(config.storage)),
    dataDirectory: config.dataDirectory,
    logger: createLogger({ name: config.organization, level: 'error' }),
    producer: { partBytes },
    fetchAttemptsMax: 2,
  });
  connector.onEvent((event) => events.get(config.organization)!.push(event));
  connector.start();
  connectors.set(config.organization, connector);
}

beforeAll(async () => {
  layout = ensureDevnetLayout({ directory: dir, basePort: 26600, messageBytesMax: 64 * mib });
  for (const path of layout.nodeConfigs) {
    const node = await startLayoutNode(path);
    nodes.push(node);
  }
  for (const path of layout.connectorConfigs.slice(0, 3)) await startConnector(path);
  org1Api = await startHttpApi({ api: connector('org1'), host: '127.0.0.1', port: 0, token: 'test-token' });
}, 60_000);

afterAll(async () => {
  await org1Api?.close();
  for (const each of connectors.values()) await each.stop();
  for (const node of nodes) await node.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** The message of test 1, for the attacks that reuse its parts. */
let sentInParts: { id: string; metadata: MessageMetadata; partRoots: Uint8Array[] } | undefined;

describe('a value sent in parts', () => {
  it('reaches org2 part by part while org1 still reads it, and is listed once, whole, when the last part is in', async () => {
    const total = 3 * partBytes + partBytes / 2 + 123;
    const payload = randomBytes(total);
    const partKeys = [0, 1, 2, 3].map((index) =>
      sha256(payload.subarray(index * partBytes, Math.min(total, (index + 1) * partBytes))),
    );
    const id = `parts-${randomBytes(4).toString('hex')}`;
    const value = new PassThrough();
    const sending = connector('org1').send('demo', [
      {
        id,
        value,
        to: ['org2'],
        size: total,
        contentType: 'application/x-parts-test',
        headers: { trace: Buffer.from('abc') },
      },
    ]);
    sending.catch(() => undefined);
    // Two and a half parts are written and the value stays open: org2 must store the first two.
    value.write(payload.subarray(0, 2 * partBytes + partBytes / 2));
    await waitFor('org2 to store the first two parts', () =>
      putsOfKeys('org2', partKeys.slice(0, 2)) === 2 ? true : undefined,
    );
    expect(connector('org2').receivedMessage(id)).toBeUndefined();
    value.end(payload.subarray(2 * partBytes + partBytes / 2));
    const [sent] = await sending;
    // Acknowledged with all of its ciphertext: the four parts' plaintext and a 16-byte tag per 1 MiB chunk.
    expect(sent!.size).toBeGreaterThanOrEqual(total + 4 * 16);
    const received = await waitFor('the message at org2', () => connector('org2').receivedMessage(id));
    expect(received).toMatchObject({
      sender: 'org1',
      size: total,
      sha256: sha256(payload),
      contentType: 'application/x-parts-test',
    });
    expect(sha256(await readAll(await connector('org2').payload(id)))).toBe(sha256(payload));
    // Each part stored once at org2, and nothing of them listed or announced.
    expect(partKeys.map((key) => puts.get('org2')!.filter((put) => put === key).length)).toEqual([
      1, 1, 1, 1,
    ]);
    const listed = await connector('org2').received({ after: 0, limit: 1000 });
    expect(listed.map((message) => message.id)).toEqual([id]);
    const announced = events
      .get('org2')!
      .flatMap((event) => (event.type === 'message.received' ? [event.message.id] : []));
    expect(announced).toEqual([id]);
    // The receipt of the message proves the headers that bind its parts, and its delivery to org2.
    const receipt = await waitFor('the receipt', async () => {
      const bundle = await connector('org1').receipt('demo', id);
      return bundle.deliveredTo.length === 1 ? bundle : undefined;
    });
    const proven = verifyDeliveryReceipt(
      decodeDeliveryReceipt(Buffer.from(receipt.proof, 'base64')),
      proofTrustOf(liveRegistryFromGenesis(layout.network.genesis)),
    );
    expect(proven.deliveries.map((delivery) => delivery.recipient)).toEqual(['org2']);
    const headers = proven.message.metadata.headers;
    expect(Buffer.from(headers[partHeaders.count]!).toString()).toBe('4');
    expect(Buffer.from(headers['trace']!).toString()).toBe('abc');
    // org1's own application hears of the message's delivery, never of a part's.
    await waitFor("org1's delivery event", () =>
      events.get('org1')!.some((event) => event.type === 'delivery.confirmed' && event.id === id)
        ? true
        : undefined,
    );
    expect(
      events
        .get('org1')!
        .filter((event) => event.type === 'delivery.confirmed')
        .map((event) => event.id),
    ).toEqual([id]);
    expect(connector('org3').receivedMessage(id)).toBeUndefined();
    const set = Buffer.from(headers[partHeaders.set]!).toString();
    const partRoots = [0, 1, 2, 3].map(
      (index) => messageById(committedState(), 'demo/0', partMessageId(set, index))!.metadata.contentRoot,
    );
    sentInParts = { id, metadata: proven.message.metadata, partRoots };
  }, 60_000);

  it('lists nothing of a value that fails half way, and a retry with the same id sends it whole', async () => {
    const total = 3 * partBytes;
    const payload = randomBytes(total);
    const firstTwo = [0, 1].map((index) =>
      sha256(payload.subarray(index * partBytes, (index + 1) * partBytes)),
    );
    const id = `broken-${randomBytes(4).toString('hex')}`;
    const value = new PassThrough();
    const sending = connector('org1').send('demo', [{ id, value, to: ['org2'], size: total }]);
    value.write(payload.subarray(0, 2 * partBytes + 10));
    await waitFor('org2 to store two parts', () => (putsOfKeys('org2', firstTwo) === 2 ? true : undefined));
    value.destroy(new Error('the client went away'));
    await expect(sending).rejects.toThrow();
    // A value that ends short of what it declared fails as well, before its message is published.
    expect(
      await codeOf(
        connector('org1').send('demo', [
          { id, value: Readable.from([payload.subarray(0, partBytes + 5)]), to: ['org2'], size: total },
        ]),
      ),
    ).toBe('SCHEMA_MISMATCH');
    const [sent] = await connector('org1').send('demo', [
      { id, value: Readable.from([payload]), to: ['org2'], size: total },
    ]);
    expect(sent!.id).toBe(id);
    const received = await waitFor('the retried message at org2', () =>
      connector('org2').receivedMessage(id),
    );
    expect(received).toMatchObject({ size: total, sha256: sha256(payload) });
    expect(sha256(await readAll(await connector('org2').payload(id)))).toBe(sha256(payload));
    const listed = await connector('org2').received({ after: 0, limit: 1000 });
    expect(listed.filter((message) => message.id === id)).toHaveLength(1);
    expect(listed.filter((message) => message.id.startsWith('part-'))).toEqual([]);
  }, 60_000);

  it('is listed whole after org2 restarted between its parts (its value is then read back to be hashed)', async () => {
    const total = 3 * partBytes + 999;
    const payload = randomBytes(total);
    const firstTwo = [0, 1].map((index) =>
      sha256(payload.subarray(index * partBytes, (index + 1) * partBytes)),
    );
    const id = `restart-${randomBytes(4).toString('hex')}`;
    const value = new PassThrough();
    const sending = connector('org1').send('demo', [{ id, value, to: ['org2'], size: total }]);
    sending.catch(() => undefined);
    value.write(payload.subarray(0, 2 * partBytes + 10));
    await waitFor('org2 to store two parts', () => (putsOfKeys('org2', firstTwo) === 2 ? true : undefined));
    await connector('org2').stop();
    await startConnector(layout.connectorConfigs[1]!);
    value.end(payload.subarray(2 * partBytes + 10));
    await sending;
    const received = await waitFor('the message at org2', () => connector('org2').receivedMessage(id));
    expect(received).toMatchObject({ size: total, sha256: sha256(payload) });
    expect(sha256(await readAll(await connector('org2').payload(id)))).toBe(sha256(payload));
  }, 60_000);

  it('travels in parts from the SDK, which declares the size of bytes it is given and of a stream when told', async () => {
    const lb = new Ledgerbus({ connector: org1Api!.url, token: 'test-token', requestTimeoutMs: 60_000 });
    for (const kind of ['bytes', 'stream'] as const) {
      const payload = randomBytes(2 * partBytes + 77);
      const firstPart = sha256(payload.subarray(0, partBytes));
      const id = `sdk-${kind}-${randomBytes(4).toString('hex')}`;
      const value =
        kind === 'bytes' ? payload : Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]);
      await lb.producer().send({
        topic: 'demo',
        messages: [{ id, value, to: ['org2'], ...(kind === 'stream' ? { size: payload.length } : {}) }],
      });
      const received = await waitFor(`the ${kind} message at org2`, () =>
        connector('org2').receivedMessage(id),
      );
      expect(received).toMatchObject({ size: payload.length, sha256: sha256(payload) });
      // A value sealed whole would be stored whole: its first part's plaintext is stored only as a part.
      expect(putsOfKeys('org2', [firstPart]), kind).toBe(1);
    }
  }, 60_000);

  it('refuses headers an application sets under the reserved prefix, before reading its value', async () => {
    const value = new PassThrough();
    expect(
      await codeOf(
        connector('org1').send('demo', [
          { value, to: ['org2'], size: 5, headers: { [partHeaders.count]: Buffer.from('1') } },
        ]),
      ),
    ).toBe('SCHEMA_MISMATCH');
    expect(value.destroyed).toBe(true);
  });
});

describe('a message that binds parts it may not', () => {
  async function failureOf(id: string): Promise<{ code: string; reason: string }> {
    const failure = await waitFor(`org2 to give ${id} up`, () =>
      connector('org2')
        .failures()
        .find((entry) => entry.id === id && entry.attempts >= 2),
    );
    expect(connector('org2').receivedMessage(id)).toBeUndefined();
    return failure;
  }

  /** Publishes, as organization `orgN`, a message that binds the parts of test 1 with `roots`. */
  async function bindAs(organizationNumber: number, name: string, roots: Uint8Array[]): Promise<string> {
    const set = Buffer.from(sentInParts!.metadata.headers[partHeaders.set]!).toString();
    const id = `${name}-${randomBytes(4).toString('hex')}`;
    await publishAs(organizationNumber, {
      id,
      topic: 'demo',
      partition: 0,
      key: null,
      recipients: ['org2'],
      contentType: 'application/octet-stream',
      headers: partsHeaderValues({}, set, roots),
    });
    return id;
  }

  it("is refused when another organization binds org1's parts, though every root matches", async () => {
    const failure = await failureOf(await bindAs(3, 'stolen', sentInParts!.partRoots));
    expect(failure).toMatchObject({ code: 'PAYLOAD_CORRUPT' });
    expect(failure.reason).toContain('0 of its 4 parts');
  }, 60_000);

  it("is refused when org1's own parts are bound out of order", async () => {
    const failure = await failureOf(await bindAs(1, 'reordered', [...sentInParts!.partRoots].reverse()));
    expect(failure).toMatchObject({ code: 'PAYLOAD_CORRUPT' });
    expect(failure.reason).toContain('do not match');
  }, 60_000);
});
