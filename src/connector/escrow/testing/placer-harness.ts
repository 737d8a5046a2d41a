/**
 * What the placer's tests run on: the parts fixture's devnet (org1 sends; org2–org4 hold) with an
 * escrow topic added to every organization's registry, the holders' real ChunkHolder on their own
 * databases and storage, and a stand-in for org1's node whose `connectorCall` routes each chunk put
 * to the holder it names — unless the test routes it elsewhere (a holder that is down, or one that
 * answers a receipt of its own making: other organizations' misbehaviour, which is the test's to play).
 */
import { Readable, PassThrough } from 'node:stream';
import type { ChunkPutRequest } from '../../../contracts/escrow/chunk-requests.js';
import { decodeChunkPutRequest } from '../../../contracts/escrow/chunk-requests.js';
import type { EscrowPolicy } from '../../../contracts/registry.js';
import { partitionGroupId } from '../../../contracts/registry.js';
import type { FeldmanSharing } from '../../../crypto/escrow/index.js';
import { escrowKeys, splitSecret } from '../../../crypto/escrow/index.js';
import type { EnvelopeHeader } from '../../../crypto/envelope/index.js';
import { encodeEnvelopeHeader, encryptPayload } from '../../../crypto/envelope/index.js';
import { connectorMethods, nodeMethods } from '../../../protocol/client-methods.js';
import type { ConnectorMethods, RequestOf, ResponseOf } from '../../../protocol/client-methods.js';
import { parseAs } from '../../../protocol/typed-rpc.js';
import { RegistryView } from '../../../registry/registry-view.js';
import type { ConnectorContext } from '../../context.js';
import type { NodeSession } from '../../session/node-session.js';
import { partsFixture, startNodeStandIn } from '../../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../../testing/parts-fixture.js';
import { ChunkHolder } from '../chunk-holder.js';

export type PutBody = RequestOf<ConnectorMethods['escrowChunkPut']>;
export type PutAnswer = ResponseOf<ConnectorMethods['escrowChunkPut']>;

export const escrowTopic = 'vault';
export const escrowGroup = partitionGroupId(escrowTopic, 0);

/** The topic's policy in the registry; tests place with other policies where they need to. */
export const topicPolicy: EscrowPolicy = {
  chunkBytes: 4096,
  replicas: 2,
  threshold: 2,
  shares: 3,
  auditApprovals: 1,
};

export interface HolderParts {
  readonly context: ConnectorContext;
  readonly holder: ChunkHolder;
}

export interface StoredEscrowPayload {
  readonly id: string;
  readonly storageKey: string;
  readonly ciphertextBytes: number;
  readonly header: EnvelopeHeader;
  readonly encodedHeader: Uint8Array;
  readonly plaintext: Uint8Array;
  readonly secret: FeldmanSharing;
}

/** How the stand-in node answers a chunk put for `organization`. */
export type Route = (organization: string, body: PutBody, request: ChunkPutRequest) => Promise<PutAnswer>;

export interface PlacerHarness {
  readonly fixture: PartsFixture;
  readonly sender: ConnectorContext;
  /** org2, org3, org4. */
  readonly holders: ReadonlyMap<string, HolderParts>;
  readonly session: NodeSession;
  readonly standIn: NodeStandIn;
  /** Every chunk put the stand-in received, in order. */
  readonly calls: { organization: string; chunkIndex: number }[];
  /** What the stand-in does with a put; `deliver` (the real holder) until a test sets another. */
  route: Route;
  /** Hands the put to the real ChunkHolder of `organization`. */
  deliver: Route;
  /** Encrypts `plaintext` with the data key of a fresh sharing into the sender's storage. */
  storePayload(id: string, plaintext: Uint8Array, policy?: EscrowPolicy): Promise<StoredEscrowPayload>;
  close(): Promise<void>;
}

export async function placerHarness(): Promise<PlacerHarness> {
  const fixture = partsFixture();
  const contexts = [];
  for (let index = 0; index < 4; index++) contexts.push(await fixture.context(index));
  const genesis = fixture.layout.network.genesis;
  const members = genesis.organizations.map((organization) => organization.id);
  const view = RegistryView.fromGenesis({
    ...genesis,
    topics: [
      ...genesis.topics,
      {
        name: escrowTopic,
        partitions: [{ replicas: genesis.nodes.slice(0, 4).map((node) => node.id) }],
        producers: members,
        consumers: members,
        policy: {
          messageBytesMax: 128 * 1024 * 1024,
          ttlMs: 3_600_000,
          payloadRetentionMs: 3_600_000,
          availability: 'escrow',
          escrow: { ...topicPolicy },
        },
      },
    ],
  });
  for (const context of contexts) context.registry.update(view);
  const [sender, ...others] = contexts as [ConnectorContext, ...ConnectorContext[]];

  const calls: { organization: string; chunkIndex: number }[] = [];
  const holders = new Map<string, HolderParts>();
  const deliver: Route = async (organization, body) => {
    const parts = holders.get(organization);
    if (parts === undefined) throw new Error(`no holder ${organization} in the harness`);
    return parts.holder.put(body);
  };
  const standIn = await startNodeStandIn(sender.organization, {
    connectorCall: async (body) => {
      const call = parseAs(nodeMethods.connectorCall.request, body, 'connectorCall');
      const put = parseAs(connectorMethods.escrowChunkPut.request, call.body, 'escrowChunkPut');
      const request = decodeChunkPutRequest(put.request);
      calls.push({ organization: call.organization, chunkIndex: request.chunkIndex });
      // Called only once the harness below exists.
      return harness.route(call.organization, put, request);
    },
  });
  const holderSessions: NodeSession[] = [];
  for (const [position, context] of others.entries()) {
    // The holders' own sessions serve audits' chunk gets only: never used by a put.
    const session = fixture.session(context, position + 1, standIn.node);
    holderSessions.push(session);
    holders.set(context.organization, { context, holder: new ChunkHolder({ ...context, session }) });
  }
  const session = fixture.session(sender, 0, standIn.node);

  const harness: PlacerHarness = {
    fixture,
    sender,
    holders,
    session,
    standIn,
    calls,
    route: deliver,
    deliver,
    async storePayload(id, plaintext, policy = topicPolicy) {
      const secret = splitSecret(policy.threshold, policy.shares);
      const { dataKey } = escrowKeys(secret.secret, {
        network: sender.signer.domain.network,
        sender: sender.organization,
        id,
      });
      const sink = new PassThrough();
      const stored = sender.storage.put(sink);
      const recipient = holders.get('org2') as HolderParts;
      const encrypted = await encryptPayload({
        source: Readable.from([plaintext]),
        sink,
        signer: sender.signer,
        senderOrgId: sender.organization,
        recipients: [{ orgId: 'org2', publicKey: recipient.context.encryptionKey.publicKey }],
        payloadId: id,
        contentType: 'application/octet-stream',
        chunkBytes: 16 * 1024,
        dataKey,
      });
      const object = await stored;
      return {
        id,
        storageKey: object.key,
        ciphertextBytes: object.size,
        header: encrypted.header,
        encodedHeader: encodeEnvelopeHeader(encrypted.header),
        plaintext,
        secret,
      };
    },
    async close() {
      session.close();
      for (const holderSession of holderSessions) holderSession.close();
      await standIn.close();
      await fixture.close();
    },
  };
  return harness;
}
