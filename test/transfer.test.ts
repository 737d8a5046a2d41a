// A whole network in one test process, every hop over real TLS sockets: 4 nodes running the PBFT
// partition on SQLite, and connectors with filesystem storage. The bad-input cases of DESIGN §10 on
// the real data path: non-recipients, tampered ciphertext, replays, oversize messages, restarts.
// org4's connector keeps its payloads in PostgreSQL (see support/postgres-server.ts for which server).
import { liveRegistryFromGenesis } from '../src/registry/live-registry.js';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor as poll } from './support/processes.js';
import { startTestPostgres } from './support/postgres-server.js';
import type { TestPostgres } from './support/postgres-server.js';
import { ensureDevnetLayout } from '../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../src/cli/devnet-layout.js';
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../src/consensus/pbft/messages.js';
import { encodeFetchRequest } from '../src/contracts/fetch.js';
import { decodeTransactionResult } from '../src/contracts/results.js';
import { encodePublish } from '../src/contracts/transactions.js';
import { Connector } from '../src/connector/connector.js';
import { loadConnectorConfig } from '../src/connector/config.js';
import { openStorage } from '../src/connector/storage/index.js';
import type { PayloadStorage } from '../src/connector/storage/index.js';
import { messageById, partitionStatus } from '../src/contracts/index.js';
import type { ContractState } from '../src/contracts/index.js';
import {
  encodeEnvelopeHeader,
  encryptPayloadToBytes,
  loadEncryptionKey,
} from '../src/crypto/envelope/index.js';
import { SigningDomain, loadSigningKey } from '../src/crypto/index.js';
import { isLedgerbusError } from '../src/errors.js';
import { RpcPeer, connectFramed } from '../src/net/index.js';
import { loadGenesisRegistry, loadNodeConfig } from '../src/node/config.js';
import { createLogger } from '../src/runtime/logger.js';
import { LedgerbusNode } from '../src/node/node.js';
import { blockEvidenceSchema, decodeDeliveryReceipt, verifyDeliveryReceipt } from '../src/proofs/index.js';
import { proofTrustOf } from '../src/registry/trust.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-transfer-'));
let layout: DevnetLayout;
const nodes: (LedgerbusNode | undefined)[] = [];
const connectors = new Map<string, Connector>();
const logLines: string[] = [];

async function startNode(index: number): Promise<LedgerbusNode> {
  const config = loadNodeConfig(layout.nodeConfigs[index] as string);
  const logger = createLogger({ name: config.nodeId, level: 'warn' });
  // Keep warnings to assert on them (refusals must be logged), as well as printing them.
  const hooked = logger.child({});
  hooked.warn = ((object: Record<string, unknown>, message?: string) => {
    logLines.push(JSON.stringify({ node: config.nodeId, ...object, msg: message }));
  }) as typeof hooked.warn;
  const node = new LedgerbusNode({
    nodeId: config.nodeId,
    key: loadSigningKey(config.keyFile),
    registry: loadGenesisRegistry(config.genesis),
    dataDirectory: config.dataDirectory,
    logger: hooked,
  });
  await node.start();
  nodes[index] = node;
  return node;
}

let postgres: TestPostgres | undefined;
let postgresDatabase: { name: string; url: string } | undefined;

/** Attempts a connector makes at a payload that fails verification before it gives it up. */
const fetchAttemptsMax = 2;

/** The key of every object each organization's connector put into its storage, one entry per put. */
const puts = new Map<string, string[]>();

function putsOf(organization: string): string[] {
  const list = puts.get(organization) ?? [];
  puts.set(organization, list);
  return list;
}

/** `storage`, recording the key of each successful put in `putsOf(organization)`. */
function recordingPuts(organization: string, storage: PayloadStorage): PayloadStorage {
  return {
    kind: storage.kind,
    put: async (source, options) => {
      const stored = await storage.put(source, options);
      putsOf(organization).push(stored.key);
      return stored;
    },
    get: (key, range) => storage.get(key, range),
    stat: (key) => storage.stat(key),
    delete: (key) => storage.delete(key),
    close: () => storage.close(),
  };
}

/** Every file under `directory` as "relative/path size", sorted: a directory to compare before and after. */
function filesUnder(directory: string): string[] {
  return readdirSync(directory, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => {
      const path = join(entry.parentPath, entry.name);
      return `${relative(directory, path)} ${statSync(path).size}`;
    })
    .sort();
}

/** A read-only view of `node`'s committed state of partition `group` (the contract's queries take one). */
function committedState(node: LedgerbusNode, group: string): ContractState {
  const state = node.replicas.get(group)!.database.committedState;
  const refuse = (): never => {
    throw new Error('the test only reads the committed state');
  };
  return { get: (key) => state.get(key), put: refuse, delete: refuse };
}

/** org4's connector keeps its payloads in PostgreSQL (its own database, dropped at the end). */
async function startConnector(index: number): Promise<Connector> {
  const config = loadConnectorConfig(layout.connectorConfigs[index] as string);
  const storage =
    index === 3
      ? await openStorage({ kind: 'postgres', connectionString: postgresDatabase!.url })
      : await openStorage(config.storage);
  const connector = new Connector({
    organization: config.organization,
    signingKey: loadSigningKey(config.keyFile),
    encryptionKey: loadEncryptionKey(config.encryptionKeyFile),
    registry: liveRegistryFromGenesis(loadGenesisRegistry(config.genesis).genesis),
    storage: recordingPuts(config.organization, storage),
    dataDirectory: config.dataDirectory,
    logger: createLogger({ name: config.organization, level: 'error' }),
    fetchAttemptsMax,
  });
  connector.start();
  connectors.set(config.organization, connector);
  return connector;
}

function connector(organization: string): Connector {
  return connectors.get(organization) as Connector;
}

function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  return poll(what, probe, timeoutMs, 100);
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** As organization `orgN`'s connector would: a connection to `nodeId` and a signed fetch request for `id`. */
async function signedFetch(
  organizationNumber: number,
  nodeId: string,
  id: string,
): Promise<{ peer: RpcPeer; fetchRequest: Uint8Array }> {
  const config = loadConnectorConfig(layout.connectorConfigs[organizationNumber - 1] as string);
  const key = loadSigningKey(config.keyFile);
  const node = loadGenesisRegistry(config.genesis).node(nodeId)!;
  const connection = await connectFramed({
    host: node.host,
    port: node.port,
    identity: key,
    expectedPublicKey: node.publicKey,
  });
  const fetchRequest = encodeFetchRequest(
    {
      requester: `org${organizationNumber}`,
      partitionId: 'demo/0',
      id,
      nonce: randomBytes(16),
      timestamp: Date.now(),
    },
    SigningDomain.of(layout.network.genesis.network).signer(key),
  );
  return { peer: new RpcPeer(connection), fetchRequest };
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

beforeAll(async () => {
  layout = ensureDevnetLayout({ directory: dir, basePort: 19400, messageBytesMax: 1024 * 1024 });
  for (let index = 0; index < 4; index++) await startNode(index);
  postgres = await startTestPostgres();
  postgresDatabase = await postgres.createDatabase('ledgerbus_transfer');
  for (let index = 0; index < 4; index++) await startConnector(index);
}, 60_000);

afterAll(async () => {
  try {
    for (const each of connectors.values()) await each.stop();
    for (const node of nodes) await node?.stop();
    if (postgresDatabase !== undefined) await postgres?.dropDatabase(postgresDatabase.name);
  } finally {
    await postgres?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

describe('a transfer across organizations', () => {
  it('delivers org1 → org2 exactly once with equal sha256 and an accepted, then delivered, proof', async () => {
    const payload = randomBytes(300 * 1024);
    // What each side's application is told: the sender of deliveries, the recipient of messages.
    const confirmations: string[] = [];
    const handed: string[] = [];
    const unsubscribe = [
      connector('org1').onEvent((event) => {
        if (event.type === 'delivery.confirmed') confirmations.push(`${event.id}:${event.recipient}`);
      }),
      connector('org2').onEvent((event) => {
        if (event.type === 'message.received') handed.push(event.message.id);
      }),
    ];
    const putsBefore = putsOf('org2').length;
    const [sent] = await connector('org1').send('demo', [
      { value: Readable.from([payload]), to: ['org2'], key: Buffer.from('k') },
    ]);
    expect(sent).toMatchObject({ topic: 'demo', partition: 0 });
    const received = await waitFor('delivery', () => connector('org2').receivedMessage(sent!.id));
    expect(received).toMatchObject({ sender: 'org1', sha256: sha256(payload), size: payload.length });
    const stream = await connector('org2').payload(sent!.id);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(payload));
    const receipt = await waitFor('receipt', async () => {
      const bundle = await connector('org1').receipt('demo', sent!.id);
      return bundle.deliveredTo.length === 1 ? bundle : undefined;
    });
    expect(receipt.deliveredTo).toEqual(['org2']);
    // The proof itself, checked as `ledgerbus verify` does (not as the connector that built it): the
    // message accepted at its offset, then delivered to org2 in a later block.
    const proven = verifyDeliveryReceipt(
      decodeDeliveryReceipt(Buffer.from(receipt.proof, 'base64')),
      proofTrustOf(liveRegistryFromGenesis(layout.network.genesis)),
    );
    expect(proven.message).toMatchObject({ id: sent!.id, offset: sent!.offset, sender: 'org1' });
    expect(proven.deliveries.map((delivery) => delivery.recipient)).toEqual(['org2']);
    expect(proven.deliveries[0]!.height).toBeGreaterThan(proven.message.height);
    // "Exactly once" needs a point after which a second delivery could no longer be on its way. A
    // marker on the same partition (same key) is received after the message in offset order, and the
    // sender hears of it in a pass over its open messages that comes after the message's: once both
    // are in, a second hand-over, put or delivery event of the message would have happened already.
    const [marker] = await connector('org1').send('demo', [
      { value: Readable.from([randomBytes(16)]), to: ['org2'], key: Buffer.from('k') },
    ]);
    await waitFor('the marker delivered', () => connector('org2').receivedMessage(marker!.id));
    await waitFor("the marker's delivery event", () =>
      confirmations.includes(`${marker!.id}:org2`) ? true : undefined,
    );
    for (const stop of unsubscribe) stop();
    // Once each: the sender told of the delivery (steps 19–22), the recipient's application handed
    // the message and listing it, its storage given the payload.
    expect(confirmations.filter((entry) => entry.startsWith(`${sent!.id}:`))).toEqual([`${sent!.id}:org2`]);
    expect(handed.filter((id) => id === sent!.id)).toEqual([sent!.id]);
    const listed = await connector('org2').received({ after: 0, limit: 1000 });
    expect(listed.filter((message) => message.id === sent!.id)).toHaveLength(1);
    expect(
      putsOf('org2')
        .slice(putsBefore)
        .filter((key) => key === sha256(payload)),
    ).toHaveLength(1);
    // org3 is not a recipient: nothing was delivered to it.
    expect(connector('org3').receivedMessage(sent!.id)).toBeUndefined();
  }, 60_000);

  it('delivers into a PostgreSQL-backed connector, and a resend with the same id is not published twice', async () => {
    const payload = randomBytes(700 * 1024 + 7);
    const id = `pg-${randomBytes(4).toString('hex')}`;
    const [first] = await connector('org1').send('demo', [
      { id, value: Readable.from([payload]), to: ['org4'] },
    ]);
    const [again] = await connector('org1').send('demo', [
      { id, value: Readable.from([payload]), to: ['org4'] },
    ]);
    expect(again).toMatchObject({ id, offset: first!.offset, height: first!.height });
    const received = await waitFor('delivery to org4', () => connector('org4').receivedMessage(id));
    expect(received.sha256).toBe(sha256(payload));
    const chunks: Buffer[] = [];
    for await (const chunk of await connector('org4').payload(id)) chunks.push(chunk as Buffer);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(payload));
  }, 60_000);

  it('relays a payload node to node when the recipient fetches through its own node', async () => {
    const payload = randomBytes(900 * 1024 + 3);
    const [sent] = await connector('org1').send('demo', [{ value: Readable.from([payload]), to: ['org2'] }]);
    const { peer, fetchRequest } = await signedFetch(2, 'node2', sent!.id);
    const { stream } = await peer.requestStream('fetchPayload', { group: 'demo/0', fetchRequest });
    let bytes = 0;
    for await (const chunk of stream) bytes += (chunk as Buffer).length;
    peer.close();
    // The ciphertext: the payload plus the 16-byte tag of its one chunk (chunks are 1 MiB).
    expect(bytes).toBe(payload.length + 16);
  }, 60_000);

  it('carries a small payload inside its publish: it reaches org2 while org1 is down, without a file on either side; a large one waits for org1', async () => {
    const small = randomBytes(200);
    const large = randomBytes(48 * 1024);
    // org2 is down while both are published, so both are still to receive when org1 goes down.
    await connector('org2').stop();
    const org1Puts = putsOf('org1').length;
    const org2Puts = putsOf('org2').length;
    const [smallSent] = await connector('org1').send('demo', [
      { value: Readable.from([small]), to: ['org2'] },
    ]);
    const [largeSent] = await connector('org1').send('demo', [
      { value: Readable.from([large]), to: ['org2'] },
    ]);
    expect(largeSent!.offset).toBeGreaterThan(smallSent!.offset);
    await connector('org1').stop();
    try {
      const org2 = await startConnector(1);
      // Nobody can serve a payload of org1 now: the small one comes from the page org2 polled.
      const received = await waitFor('the small message, with org1 down', () =>
        org2.receivedMessage(smallSent!.id),
      );
      expect(received).toMatchObject({ sender: 'org1', size: small.length, sha256: sha256(small) });
      const chunks: Buffer[] = [];
      for await (const chunk of await org2.payload(smallSent!.id)) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks)).toEqual(small);
      // And it comes with its listing, so a consumer needs no payload request for it.
      const listed = (await org2.received({ after: 0, limit: 1000 })).find(
        (message) => message.id === smallSent!.id,
      );
      expect(Buffer.from(listed?.value ?? '', 'base64')).toEqual(small);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(org2.receivedMessage(largeSent!.id)).toBeUndefined();
    } finally {
      await startConnector(0);
    }
    const large2 = await waitFor('the large message, org1 back', () =>
      connector('org2').receivedMessage(largeSent!.id),
    );
    expect(large2.sha256).toBe(sha256(large));
    const listedLarge = (await connector('org2').received({ after: 0, limit: 1000 })).find(
      (message) => message.id === largeSent!.id,
    );
    expect(listedLarge).toBeDefined();
    expect(listedLarge?.value).toBeUndefined();
    // Neither side put the small payload in its storage (it is packed in each connector's database);
    // the large one is a file on both.
    const sealedLarge = putsOf('org1').slice(org1Puts);
    expect(sealedLarge).toHaveLength(1);
    expect(putsOf('org2').slice(org2Puts)).toEqual([sha256(large)]);
  }, 90_000);

  it('fetches a carried payload that does not open from its sender instead of storing it (here the sender has none)', async () => {
    // org1 signs a publish whose carried payload is not what its message's contentRoot commits to.
    const config = loadConnectorConfig(layout.connectorConfigs[0] as string);
    const key = loadSigningKey(config.keyFile);
    const signer = SigningDomain.of(layout.network.genesis.network).signer(key);
    const id = `bad-inline-${randomBytes(4).toString('hex')}`;
    const { header, ciphertext } = await encryptPayloadToBytes(
      {
        signer,
        senderOrgId: 'org1',
        recipients: [
          {
            orgId: 'org2',
            publicKey: liveRegistryFromGenesis(layout.network.genesis).encryptionKey('org2')!,
          },
        ],
        payloadId: id,
        contentType: 'text/plain',
      },
      Buffer.from('what org1 committed to'),
    );
    const flipped = Buffer.from(ciphertext);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    const operation = encodePublish(
      {
        sender: 'org1',
        nonce: randomBytes(16),
        timestamp: Date.now(),
        messages: [
          {
            id,
            topic: 'demo',
            partition: 0,
            key: null,
            recipients: ['org2'],
            size: ciphertext.length,
            contentRoot: header.merkleRoot,
            contentType: 'text/plain',
            headers: {},
          },
        ],
        payloads: [{ header: encodeEnvelopeHeader(header), ciphertext: flipped }],
      },
      signer,
    );
    const node1 = loadGenesisRegistry(config.genesis).node('node1')!;
    const peer = new RpcPeer(
      await connectFramed({
        host: node1.host,
        port: node1.port,
        identity: key,
        expectedPublicKey: node1.publicKey,
      }),
    );
    const request = encodeClientRequest(
      { group: 'demo/0', client: signer.publicKey, seq: Date.now() * 1000 + 998_000, operation },
      signer.sign,
    );
    const answer = (await peer.request('publish', { group: 'demo/0', request })) as Record<string, unknown>;
    peer.close();
    expect(
      decodeTransactionResult(blockEvidenceSchema.parse(answer['evidence'], 'evidence').result),
    ).toMatchObject({
      status: 'OK',
    });
    // Not stored from the page: fetched from org1's connector, which never sent it (PAYLOAD_NOT_FOUND,
    // where a payload refused on the spot would have been PAYLOAD_CORRUPT), and given up.
    const failure = await waitFor('the carried payload given up', () =>
      connector('org2')
        .failures()
        .find((entry) => entry.id === id && entry.attempts >= fetchAttemptsMax),
    );
    expect(failure.code).toBe('PAYLOAD_NOT_FOUND');
    expect(connector('org2').receivedMessage(id)).toBeUndefined();
  }, 60_000);

  it("refuses a non-recipient's fetch with NOT_RECIPIENT and logs it", async () => {
    const [sent] = await connector('org1').send('demo', [
      { value: Readable.from([Buffer.from('for org2 only')]), to: ['org2'] },
    ]);
    const { peer, fetchRequest } = await signedFetch(3, 'node3', sent!.id);
    expect(await codeOf(peer.requestStream('fetchPayload', { group: 'demo/0', fetchRequest }))).toBe(
      'NOT_RECIPIENT',
    );
    peer.close();
    expect(logLines.some((line) => line.includes('non-recipient') && line.includes(sent!.id))).toBe(true);
  }, 60_000);

  it("detects one flipped byte in the sender's stored ciphertext and stores nothing", async () => {
    const payload = randomBytes(64 * 1024);
    const senderConfig = loadConnectorConfig(layout.connectorConfigs[0] as string);
    const recipientConfig = loadConnectorConfig(layout.connectorConfigs[1] as string);
    if (senderConfig.storage.kind !== 'filesystem' || recipientConfig.storage.kind !== 'filesystem')
      throw new Error('org1 and org2 keep payloads on the filesystem');
    // Stop org2's connector so the message waits for it, tamper with the stored object, restart.
    const receivedBefore = connector('org2').latestSequence();
    await connector('org2').stop();
    const storedBefore = filesUnder(recipientConfig.storage.directory);
    const [sent] = await connector('org1').send('demo', [{ value: Readable.from([payload]), to: ['org2'] }]);
    const objects = join(senderConfig.storage.directory, 'objects');
    const files = readdirSync(objects, { recursive: true, withFileTypes: true }).filter((entry) =>
      entry.isFile(),
    );
    const newest = files
      .map((entry) => join(entry.parentPath, entry.name))
      .find((path) => readFileSync(path).length === payload.length + 16);
    expect(newest).toBeDefined();
    const bytes = readFileSync(newest as string);
    bytes[1000] = (bytes[1000] ?? 0) ^ 0x01;
    writeFileSync(newest as string, bytes);
    const org2 = await startConnector(1);
    // Given up after its last attempt: no fetch of it is under way any more.
    const failure = await waitFor('the failure, given up', () =>
      org2.failures().find((entry) => entry.id === sent!.id && entry.attempts >= fetchAttemptsMax),
    );
    expect(failure.code).toBe('PAYLOAD_CORRUPT');
    expect(org2.receivedMessage(sent!.id)).toBeUndefined();
    // Nothing stored: org2's storage (objects and temporary files) is as it was before, but for the
    // payloads of the messages it recorded as received meanwhile (earlier tests' messages that were
    // still on their way when it stopped).
    const receivedMeanwhile = (await org2.received({ after: receivedBefore, limit: 1000 })).map(
      (message) => message.sha256,
    );
    const storedAfter = filesUnder(recipientConfig.storage.directory);
    expect(storedBefore.filter((file) => !storedAfter.includes(file))).toEqual([]);
    expect(
      storedAfter.filter(
        (file) => !storedBefore.includes(file) && !receivedMeanwhile.includes(basename(file.split(' ')[0]!)),
      ),
    ).toEqual([]);
  }, 60_000);

  it('rejects a replayed publish and an oversize message, accepting or altering no message and storing nothing', async () => {
    const config = loadConnectorConfig(layout.connectorConfigs[0] as string);
    const key = loadSigningKey(config.keyFile);
    const node1 = loadGenesisRegistry(config.genesis).node('node1')!;
    const connection = await connectFramed({
      host: node1.host,
      port: node1.port,
      identity: key,
      expectedPublicKey: node1.publicKey,
    });
    const peer = new RpcPeer(connection);
    const signer = SigningDomain.of(layout.network.genesis.network).signer(key);
    const submit = async (
      operation: Uint8Array,
      seq: number,
    ): Promise<ReturnType<typeof decodeTransactionResult>> => {
      const request = encodeClientRequest(
        { group: 'demo/0', client: signer.publicKey, seq, operation },
        signer.sign,
      );
      decodeClientRequest(request, messageLimits.requestBytesMax);
      const answer = (await peer.request('publish', { group: 'demo/0', request })) as Record<string, unknown>;
      return decodeTransactionResult(blockEvidenceSchema.parse(answer['evidence'], 'evidence').result);
    };
    const metadata = {
      id: `replay-${randomBytes(4).toString('hex')}`,
      topic: 'demo',
      partition: 0,
      key: null,
      recipients: ['org2'],
      size: 10,
      contentRoot: new Uint8Array(32),
      contentType: 'text/plain',
      headers: {},
    };
    const operation = encodePublish(
      { sender: 'org1', nonce: randomBytes(16), timestamp: Date.now(), messages: [metadata] },
      signer,
    );
    // What a refusal must leave as it was: the partition's messages as node1 committed them (how many
    // were accepted, the first publish's record), and org1's payload storage.
    const ledger = (): Record<string, unknown> => {
      const state = committedState(nodes[0]!, 'demo/0');
      return {
        nextOffset: partitionStatus(state, 'demo/0').nextOffset,
        accepted: messageById(state, 'demo/0', metadata.id),
        oversize: messageById(state, 'demo/0', `${metadata.id}-big`),
      };
    };
    const seq = Date.now() * 1000 + 999_000;
    expect((await submit(operation, seq)).status).toBe('OK');
    const accepted = ledger();
    expect(accepted['accepted']).toMatchObject({ sender: 'org1', state: 'ACCEPTED' });
    expect(accepted['oversize']).toBeUndefined();
    expect(await submit(operation, seq + 1)).toMatchObject({ status: 'REJECTED', reason: 'REPLAY' });
    expect(ledger()).toEqual(accepted);
    const oversize = encodePublish(
      {
        sender: 'org1',
        nonce: randomBytes(16),
        timestamp: Date.now(),
        messages: [{ ...metadata, id: `${metadata.id}-big`, size: 2 * 1024 * 1024 }],
      },
      signer,
    );
    const result = await submit(oversize, seq + 2);
    expect(result).toMatchObject({
      status: 'OK',
      messages: [{ status: 'REJECTED', reason: 'MESSAGE_TOO_LARGE' }],
    });
    expect(ledger()).toEqual(accepted);
    peer.close();
    // Through the connector API the same policy refuses with a code, and org1 keeps nothing of it.
    if (config.storage.kind !== 'filesystem') throw new Error('org1 keeps payloads on the filesystem');
    const storage = config.storage.directory;
    const storedBefore = filesUnder(storage);
    const putsBefore = putsOf('org1').length;
    expect(
      await codeOf(
        connector('org1').send('demo', [
          { value: Readable.from([randomBytes(1024 * 1024 + 1)]), to: ['org2'] },
        ]),
      ),
    ).toBe('MESSAGE_REJECTED');
    // send() throws only once the storage's put it was streaming into has removed its temporary file.
    expect(filesUnder(storage)).toEqual(storedBefore);
    expect(putsOf('org1').slice(putsBefore)).toEqual([]);
    expect(ledger()).toEqual(accepted);
  }, 60_000);

  it('keeps delivering while one replica is down, and the replica catches up after a restart', async () => {
    await nodes[2]!.stop();
    nodes[2] = undefined;
    const ids: string[] = [];
    for (let round = 0; round < 5; round++) {
      const [sent] = await connector('org1').send('demo', [
        { value: Readable.from([randomBytes(2048)]), to: ['org2'] },
      ]);
      ids.push(sent!.id);
    }
    for (const id of ids) await waitFor(`delivery of ${id}`, () => connector('org2').receivedMessage(id));
    const node3 = await startNode(2);
    const leader = nodes[0]!.replicas.get('demo/0')!;
    await waitFor(
      'catch-up',
      () => (node3.replicas.get('demo/0')!.height >= leader.height ? true : undefined),
      30_000,
    );
  }, 90_000);
});
