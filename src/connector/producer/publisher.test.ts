import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWith } from '../../codec/index.js';
import { publishResultLeafSchema } from '../../contracts/results.js';
import { loadEncryptionKey } from '../../crypto/envelope/index.js';
import { SigningDomain, loadSigningKey } from '../../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import {
  blockEvidenceSchema,
  decodeAcceptanceProof,
  isCompactProof,
  verifyAcceptance,
} from '../../proofs/index.js';
import { liveRegistryFromGenesis } from '../../registry/live-registry.js';
import { proofTrustOf } from '../../registry/trust.js';
import { createLogger } from '../../runtime/logger.js';
import { refusal } from '../../testing/refusal.js';
import type { OutgoingMessage, SendResult } from '../api-types.js';
import { loadConnectorConfig } from '../config.js';
import { ConnectorDatabase } from '../connector-database.js';
import type { ConnectorContext } from '../context.js';
import { ConnectorMetrics } from '../connector-metrics.js';
import { ConnectorEvents } from '../events.js';
import { Lifecycle } from '../lifecycle.js';
import { NodeSession, sessionNodes } from '../session/node-session.js';
import { TransactionSubmitter } from '../session/submitter.js';
import { openStorage } from '../storage/index.js';
import type { PayloadStorage } from '../storage/index.js';
import { PackedStorage } from '../storage/packed.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../testing/parts-fixture.js';
import type { CoalescingPolicy } from './coalescer.js';
import { Publisher } from './publisher.js';
import { ProcessNetwork } from '../../../test/support/process-network.js';
import { waitFor } from '../../../test/support/processes.js';

describe('Publisher', () => {
  let fixture: PartsFixture;
  let node: NodeStandIn;
  let publisher: Publisher;
  let published = 0;

  beforeAll(async () => {
    fixture = partsFixture();
    const context = await fixture.context(0);
    node = await startNodeStandIn(context.organization, {
      publish: () => {
        published += 1;
        throw new LedgerbusError(ErrorCode.Internal, 'the test node publishes nothing');
      },
    });
    const session = fixture.session(context, 0, node.node);
    const submitter = new TransactionSubmitter({ ...context, session });
    publisher = new Publisher({ ...context, session, submitter, syncRegistry: async () => {} });
  });

  afterAll(async () => {
    await node.close();
    await fixture.close();
  });

  function recipient(): string {
    return fixture.layout.network.organizations[1]!.id;
  }

  it('refuses a topic the registry does not know as TOPIC_NOT_FOUND, reading nothing', async () => {
    const value = Readable.from([Buffer.from('hello')]);
    const error = await refusal(publisher.send('no-such-topic', [{ to: [recipient()], value }]));
    expect(error.code).toBe(ErrorCode.TopicNotFound);
    expect(error.message).toContain('no-such-topic');
    expect(published).toBe(0);
  });

  it('refuses a declared size past the topic’s bound before storing anything', async () => {
    const value = Readable.from([Buffer.alloc(8)]);
    const error = await refusal(
      publisher.send('demo', [{ to: [recipient()], value, size: 2 * 1024 * 1024 }]),
    );
    expect(error.code).toBe(ErrorCode.MessageRejected);
    expect(error.message).toContain('MESSAGE_TOO_LARGE');
    expect(value.destroyed).toBe(true);
    expect(published).toBe(0);
  });
});

// Real nodes: the 4 node processes of a devnet, running the PBFT partition of topic `demo`, and
// publishers of org1 and org2 in this process (their own databases and filesystem storage).
describe('Publisher on a real partition: concurrent sends share signed batches', () => {
  const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-publisher-'));
  const group = 'demo/0';
  const network = new ProcessNetwork(directory, 26560);
  const organizations = new Map<string, Organization>();
  /** Distinguishes this run's message ids from a rerun's. */
  const run = Date.now().toString(36);

  /** An organization's publishing parts; `puts` is every key stored or packed, in order. */
  interface Organization {
    readonly context: ConnectorContext;
    readonly session: NodeSession;
    readonly submitter: TransactionSubmitter;
    readonly puts: string[];
  }

  async function startOrganization(index: number): Promise<Organization> {
    const config = loadConnectorConfig(network.layout.connectorConfigs[index] as string);
    const registry = liveRegistryFromGenesis(network.layout.network.genesis);
    const logger = createLogger({ name: config.organization, level: 'silent' });
    const puts: string[] = [];
    const storage = await openStorage(config.storage);
    const recording: PayloadStorage = {
      kind: storage.kind,
      put: async (source, options) => {
        const stored = await storage.put(source, options);
        puts.push(stored.key);
        return stored;
      },
      get: (key, range) => storage.get(key, range),
      stat: (key) => storage.stat(key),
      delete: (key) => storage.delete(key),
      close: () => storage.close(),
    };
    const database = new ConnectorDatabase(config.dataDirectory);
    // Small payloads are packed in the database instead of put in storage: both are recorded.
    const putPacked = database.putPacked.bind(database);
    database.putPacked = (bytes) => {
      const stored = putPacked(bytes);
      puts.push(stored.key);
      return stored;
    };
    const context: ConnectorContext = {
      organization: config.organization,
      signer: SigningDomain.of(registry.network).signer(loadSigningKey(config.keyFile)),
      encryptionKey: loadEncryptionKey(config.encryptionKeyFile),
      registry,
      trust: proofTrustOf(registry),
      database,
      storage: new PackedStorage(recording, database),
      logger,
      lifecycle: new Lifecycle(),
      events: new ConnectorEvents(logger),
      metrics: new ConnectorMetrics(),
      random: Math.random,
    };
    const session = new NodeSession({
      ...context,
      node: sessionNodes(registry, config.organization)[0]!,
      identity: loadSigningKey(config.keyFile),
      servingConnections: 0,
    });
    const organization = {
      context,
      session,
      submitter: new TransactionSubmitter({ ...context, session }),
      puts,
    };
    organizations.set(config.organization, organization);
    return organization;
  }

  function publisherOf(organization: string, coalescing?: Partial<CoalescingPolicy>): Publisher {
    const { context, session, submitter } = organizations.get(organization)!;
    return new Publisher({
      ...context,
      session,
      submitter,
      syncRegistry: async () => {},
      ...(coalescing === undefined ? {} : { coalescing }),
    });
  }

  function message(id: string, to: readonly string[] = ['org2']): OutgoingMessage {
    return { id, to: [...to], value: Readable.from([Buffer.from(`payload of ${id}`)]) };
  }

  /**
   * The partition's messages addressed to org2 from `fromOffset` on, as org2's node serves them:
   * each one's offset and the transaction (block height / index) that carries it.
   */
  async function partitionForOrg2(
    fromOffset = 0,
  ): Promise<Map<string, { offset: number; transaction: string }>> {
    const { session } = organizations.get('org2')!;
    const found = new Map<string, { offset: number; transaction: string }>();
    for (let offset = fromOffset; ;) {
      const page = await session.call('poll', { group, fromOffset: offset, limit: 1000, waitMs: 0 });
      const evidences = page.evidences.map((value) => blockEvidenceSchema.parse(value, 'evidence'));
      for (const entry of page.messages) {
        const { header, transactionProof } = evidences[entry.evidence]!;
        found.set(entry.id, {
          offset: entry.offset,
          transaction: `${header.height}/${transactionProof.leafIndex}`,
        });
      }
      if (page.nextOffset >= page.endOffset) return found;
      offset = page.nextOffset;
    }
  }

  /** Checks a SendResult against its own proof and against the partition as the nodes serve it. */
  async function expectProven(results: readonly SendResult[]): Promise<void> {
    const partition = await partitionForOrg2();
    for (const result of results) {
      const accepted = verifyAcceptance(
        decodeAcceptanceProof(Buffer.from(result.proof, 'base64')),
        organizations.get('org1')!.context.trust,
      );
      expect(accepted).toMatchObject({
        id: result.id,
        sender: 'org1',
        offset: result.offset,
        height: result.height,
      });
      expect(result).toMatchObject({ topic: 'demo', partition: 0 });
      expect(partition.get(result.id)?.offset).toBe(result.offset);
    }
  }

  /** How many messages the publish had that a SendResult's (compact) proof shows the message in. */
  function batchSizeOf(result: SendResult): number {
    const proof = decodeAcceptanceProof(Buffer.from(result.proof, 'base64'));
    if (!isCompactProof(proof)) throw new Error('the publisher stored a version-1 proof');
    return decodeWith(publishResultLeafSchema, proof.batch).messageCount;
  }

  beforeAll(async () => {
    const nodes = network.layout.network.nodes;
    for (const node of nodes) network.start(node.id);
    for (const node of nodes)
      await waitFor(
        `${node.id} listening`,
        () =>
          new Promise<true | undefined>((resolve) => {
            const [host, port] = node.address.split(':');
            const socket = connect({ host: host!, port: Number(port) });
            socket.once('connect', () => (socket.destroy(), resolve(true)));
            socket.once('error', () => resolve(undefined));
          }),
        60_000,
        250,
      );
    await startOrganization(0);
    await startOrganization(1);
  }, 90_000);

  afterAll(async () => {
    for (const { context, session } of organizations.values()) {
      context.lifecycle.stop();
      session.close();
      context.database.close();
      await context.storage.close();
    }
    await network.stopAll();
    rmSync(directory, { recursive: true, force: true });
  });

  it('publishes many concurrent single-message sends in far fewer transactions, each send with its own proof', async () => {
    const publisher = publisherOf('org1');
    const sends = 32;
    const ids = Array.from({ length: sends }, (_, index) => `single-${run}-${index}`);
    const results = (await Promise.all(ids.map((id) => publisher.send('demo', [message(id)])))).flat();
    expect(results.map((result) => result.id)).toEqual(ids);
    await expectProven(results);
    expect(new Set(results.map((result) => result.offset)).size).toBe(sends);
    // The transactions that carry them, as the nodes' blocks hold them.
    const partition = await partitionForOrg2();
    const transactions = new Set(ids.map((id) => partition.get(id)!.transaction));
    expect(transactions.size).toBeLessThanOrEqual(sends / 4);
  });

  it('fails only the send whose message the ledger refused, not the one sharing its batch, and discards its payload', async () => {
    const taken = `taken-${run}`;
    const fresh = `fresh-${run}`;
    // org2 takes the id first: org1's message of that id is a MESSAGE_ID_CONFLICT on the ledger.
    await publisherOf('org2').send('demo', [message(taken, ['org1'])]);
    const org1 = organizations.get('org1')!;
    const putsBefore = org1.puts.length;
    // A linger long enough for both sends' payloads to be stored: they are published together.
    const publisher = publisherOf('org1', { lingerMs: 500 });
    const [refused, accepted] = await Promise.allSettled([
      publisher.send('demo', [message(taken)]),
      publisher.send('demo', [message(fresh)]),
    ]);
    expect(refused.status).toBe('rejected');
    const error = (refused as PromiseRejectedResult).reason as LedgerbusError;
    expect(error).toBeInstanceOf(LedgerbusError);
    expect(error.code).toBe(ErrorCode.MessageRejected);
    expect(error.message).toBe(`message ${taken}: MESSAGE_ID_CONFLICT`);
    expect(error.details).toEqual({ reason: 'MESSAGE_ID_CONFLICT' });
    expect(accepted.status).toBe('fulfilled');
    const [result] = (accepted as PromiseFulfilledResult<SendResult[]>).value;
    await expectProven([result!]);
    // Published together: the refused message is the other one of the accepted one's batch.
    expect(batchSizeOf(result!)).toBe(2);
    // The refused message's payload and row are gone; the accepted one's stay.
    const puts = org1.puts.slice(putsBefore);
    expect(puts).toHaveLength(2);
    const kept = org1.context.database.sent('demo', fresh)!.storage_key;
    expect(org1.context.database.sent('demo', taken)).toBeUndefined();
    for (const key of puts) {
      expect(await org1.context.storage.stat(key), key).toEqual(key === kept ? expect.anything() : undefined);
    }
  });

  it('fails only the send whose metadata would fail a whole transaction, never a send that would share its batch', async () => {
    const publisher = publisherOf('org1', { lingerMs: 500 });
    const tooManyHeaders = Object.fromEntries(
      Array.from({ length: 33 }, (_, index) => [`h${index}`, Buffer.from('v')]),
    );
    // 33 headers break the transaction's schema; an id starting with U+FEFF encodes, but every
    // replica's canonical decoding refuses it, which makes a whole publish MALFORMED.
    const bad = [{ ...message(`headers-${run}`), headers: tooManyHeaders }, message(`\uFEFFbom-${run}`)];
    const good = Array.from({ length: 4 }, (_, index) => message(`bystander-${index}-${run}`));
    const outcomes = await Promise.allSettled([
      ...bad.map((entry) => publisher.send('demo', [entry])),
      ...good.map((entry) => publisher.send('demo', [entry])),
    ]);
    for (const outcome of outcomes.slice(0, bad.length)) expect(outcome.status).toBe('rejected');
    const accepted = outcomes.slice(bad.length).map((outcome) => {
      expect(outcome.status).toBe('fulfilled');
      return (outcome as PromiseFulfilledResult<SendResult[]>).value[0]!;
    });
    await expectProven(accepted);
  });

  it('proves an id sent again while its first send waits in the same batch by that first message', async () => {
    const id = `twice-${run}`;
    const org1 = organizations.get('org1')!;
    const publisher = publisherOf('org1', { lingerMs: 500 });
    const first = publisher.send('demo', [message(id)]);
    // The application's retry comes once the first attempt stored the payload, while it lingers.
    while (org1.context.database.sent('demo', id) === undefined)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const [[retried], [original]] = await Promise.all([publisher.send('demo', [message(id)]), first]);
    expect(batchSizeOf(original!)).toBe(2);
    await expectProven([original!, retried!]);
    expect(retried).toEqual(original);
  });

  it('keeps each send’s order in its offsets while other sends share its batches', async () => {
    const publisher = publisherOf('org1', { inFlightBatchesMax: 1 });
    // Runs of other recipients go to other queues, which other sends share: the order must hold.
    const mixed = Array.from({ length: 4 }, (_, send) =>
      Array.from({ length: 30 }, (_, index) =>
        message(
          `mixed-${run}-${send}-${index}`,
          Math.floor(index / 5) % 2 === 0 ? ['org2'] : ['org2', 'org1'],
        ),
      ),
    );
    const long = Array.from({ length: 150 }, (_, index) => message(`long-${run}-${index}`));
    const singles = Array.from({ length: 12 }, (_, index) => [message(`alone-${run}-${index}`)]);
    const sends = [long, ...mixed, ...singles];
    const results = await Promise.all(sends.map((send) => publisher.send('demo', send)));
    results.forEach((sent, send) => {
      expect(sent.map((result) => result.id)).toEqual(sends[send]!.map((each) => each.id));
      const offsets = sent.map((result) => result.offset);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      expect(new Set(offsets).size).toBe(offsets.length);
    });
    // Other sends' messages landed between a mixed send's: its runs were interleaved with them.
    const interleaved = results.slice(1, 1 + mixed.length).filter((sent) => {
      const [first, last] = [sent[0]!.offset, sent[sent.length - 1]!.offset];
      return results.some(
        (other) => other !== sent && other.some(({ offset }) => offset > first && offset < last),
      );
    });
    expect(interleaved.length).toBeGreaterThan(0);
    await expectProven(results.flat());
  });
});
