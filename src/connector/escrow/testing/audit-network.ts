/**
 * What the auditor's tests run on: a small consortium from a real genesis (an escrow topic "vault"
 * replicated by four nodes), a partition executed by the real SDT and escrow contracts and certified
 * by real Ed25519 replica keys, the chunk holders' real ChunkHolders on real databases and storage,
 * and one stand-in for the nodes: a real RpcPeer on a real TLS listener answering `publish`,
 * `escrowRecord` and `connectorCall` from that partition, as the nodes' services do. A holder may be
 * made Byzantine (serving other bytes) or unreachable, and a release's evidence may be spoiled.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CborValue } from '../../../codec/index.js';
import { escrowRecordView } from '../../../contracts/escrow/queries.js';
import { encodeEscrowTransaction } from '../../../contracts/escrow/transactions.js';
import type { EscrowAction, EscrowMetadata } from '../../../contracts/escrow/transactions.js';
import { nonceBytes } from '../../../contracts/limits.js';
import { decodeTransactionResult } from '../../../contracts/results.js';
import type { TransactionResult } from '../../../contracts/results.js';
import { encodePublish } from '../../../contracts/transactions.js';
import { sealShare } from '../../../crypto/escrow/index.js';
import type { FeldmanSharing } from '../../../crypto/escrow/index.js';
import { generateEncryptionKey } from '../../../crypto/envelope/index.js';
import { SigningDomain, signingKeyFromSeed } from '../../../crypto/index.js';
import type { Signer } from '../../../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../../../errors.js';
import type { Block } from '../../../ledger/block.js';
import {
  acceptanceProofToCbor,
  blockEvidence,
  blockEvidenceToCbor,
  escrowRecordPositions,
} from '../../../proofs/index.js';
import type { ProofTrust } from '../../../proofs/index.js';
import { GenesisRegistry } from '../../../registry/genesis.js';
import type { Genesis } from '../../../registry/genesis-schema.js';
import { LiveRegistry } from '../../../registry/live-registry.js';
import { proofTrustOf } from '../../../registry/trust.js';
import { createLogger } from '../../../runtime/logger.js';
import { ConnectorDatabase } from '../../connector-database.js';
import { Lifecycle } from '../../lifecycle.js';
import { NodeSession } from '../../session/node-session.js';
import { TransactionSubmitter } from '../../session/submitter.js';
import { openStorage } from '../../storage/index.js';
import type { PayloadStorage } from '../../storage/index.js';
import { startNodeStandIn } from '../../testing/parts-fixture.js';
import type { NodeStandIn } from '../../testing/parts-fixture.js';
import { AgentDatabase } from '../agent-database.js';
import { Auditor } from '../auditor.js';
import type { AuditorOptions } from '../auditor.js';
import { ChunkHolder } from '../chunk-holder.js';
import { escrowPayload } from './audit-sender.js';
import { Chain, genesisOf, group, organizationIds, seeded, topic } from './audit-chain.js';
import type { OrganizationId, TestOrganization } from './audit-chain.js';

export { escrowChunkBytes, group, organizationIds, topic } from './audit-chain.js';
export type { OrganizationId } from './audit-chain.js';

const holderIds = ['h1', 'h2', 'h3', 'h4'] as const;
const shareHolderIds = ['h1', 'h2', 'h3'] as const;

/** What a holder's connector may do instead of answering honestly. */
export type HolderFault = 'lie' | 'down';

export interface SentEscrow {
  readonly id: string;
  readonly plaintext: Uint8Array;
  readonly sharing: FeldmanSharing;
  readonly escrow: EscrowMetadata;
  /** Chunk holders in placement order, per chunk. */
  readonly perChunk: readonly (readonly string[])[];
}

export class AuditNetwork {
  readonly directory = mkdtempSync(join(tmpdir(), 'ledgerbus-audit-'));
  readonly organizations: Record<OrganizationId, TestOrganization>;
  readonly genesis: Genesis;
  readonly view: GenesisRegistry;
  readonly registry: LiveRegistry;
  readonly trust: ProofTrust;
  readonly signing: SigningDomain;
  readonly chain: Chain;
  readonly faults = new Map<string, HolderFault>();
  /** Holders whose release evidences the stand-in spoils (a node cannot make the auditor blame them). */
  readonly spoiledEvidence = new Set<string>();
  readonly holders = new Map<string, ChunkHolder>();
  private readonly accepted = new Map<string, { height: number; index: number }>();
  private readonly closers: (() => Promise<void> | void)[] = [];
  private node: NodeStandIn | undefined;
  private readonly logger = createLogger({ name: 'audit-test', level: 'silent' });

  constructor() {
    this.organizations = Object.fromEntries(
      organizationIds.map((id) => [
        id,
        { key: signingKeyFromSeed(seeded(id)), encryption: generateEncryptionKey() },
      ]),
    ) as Record<OrganizationId, TestOrganization>;
    this.genesis = genesisOf(this.organizations, []);
    this.view = new GenesisRegistry(this.genesis);
    this.registry = new LiveRegistry(this.view);
    this.trust = proofTrustOf(this.registry);
    this.signing = SigningDomain.of(this.genesis.network);
    this.chain = new Chain(this.view, this.signing);
  }

  /** A registry view in which `auditors` also hold the auditor role (the chain's registry disagrees). */
  staleRegistry(auditors: readonly OrganizationId[]): LiveRegistry {
    return new LiveRegistry(new GenesisRegistry(genesisOf(this.organizations, auditors)));
  }

  signer(id: OrganizationId): Signer {
    return this.signing.signer(this.organizations[id].key);
  }

  /** Starts the node stand-in and the holders' connectors. */
  async start(): Promise<void> {
    this.node = await startNodeStandIn('stand-in', {
      publish: (body) => this.publish(body as { request: Uint8Array }),
      escrowRecord: (body) => this.escrowRecord(body as { group: string; id: string }),
      connectorCall: (body) =>
        this.connectorCall(body as { organization: string; method: string; body: CborValue }),
    });
    this.closers.push(() => this.node?.close());
    for (const id of holderIds) {
      const lifecycle = new Lifecycle();
      const database = this.database(id);
      this.holders.set(
        id,
        new ChunkHolder({
          organization: id,
          signer: this.signer(id),
          registry: this.registry,
          database,
          storage: await this.storage(id),
          logger: this.logger,
          lifecycle,
          trust: this.trust,
          session: this.session(id, lifecycle),
        }),
      );
    }
  }

  /** An Auditor acting as `id` (its own database, storage and agent tables), with `registry` as its view. */
  async auditor(
    id: OrganizationId,
    options: { registry?: LiveRegistry } = {},
  ): Promise<{ auditor: Auditor; agent: AgentDatabase; storage: PayloadStorage; options: AuditorOptions }> {
    const lifecycle = new Lifecycle();
    const database = this.database(`${id}-auditor`);
    const session = this.session(id, lifecycle);
    const agent = new AgentDatabase(database);
    const storage = await this.storage(`${id}-auditor`);
    const auditorOptions: AuditorOptions = {
      organization: id,
      signer: this.signer(id),
      encryptionKey: this.organizations[id].encryption,
      registry: options.registry ?? this.registry,
      trust: this.trust,
      storage,
      logger: this.logger,
      lifecycle,
      database,
      session,
      submitter: new TransactionSubmitter({
        signer: this.signer(id),
        database,
        lifecycle,
        random: () => 0.5,
        session,
        retryPolicy: { initialRetryTimeMs: 10, maxRetryTimeMs: 10, retries: 0, jitter: 0 },
      }),
      agentDatabase: agent,
      temporaryDirectory: this.directory,
    };
    return { auditor: new Auditor(auditorOptions), agent, storage, options: auditorOptions };
  }

  /**
   * alice escrows `plaintext` as message `id` as its connector would: encrypted under the data key
   * derived from a fresh 2-of-3 sharing, the framed header and ciphertext cut into chunks placed on
   * three distinct holders each (their signed receipts in the master table), and published.
   */
  async send(id: string, plaintext: Uint8Array): Promise<SentEscrow> {
    const { sharing, escrow, perChunk, contentRoot, ciphertextBytes } = await escrowPayload(
      {
        network: this.genesis.network,
        signer: this.signer('alice'),
        recipient: { orgId: 'bob', publicKey: this.organizations.bob.encryption.publicKey },
        shareHolders: shareHolderIds.map((holder) => ({
          holder,
          publicKey: this.organizations[holder].encryption.publicKey,
        })),
        holders: this.holders,
      },
      id,
      plaintext,
    );
    const publish = encodePublish(
      {
        sender: 'alice',
        nonce: randomBytes(nonceBytes),
        timestamp: Date.now(),
        messages: [
          {
            id,
            topic,
            partition: 0,
            key: null,
            recipients: ['bob'],
            size: ciphertextBytes,
            contentRoot,
            contentType: 'application/octet-stream',
            headers: {},
            escrow,
          },
        ],
      },
      this.signer('alice'),
    );
    const [result] = this.execute('alice', publish);
    if (result?.status !== 'OK' || result.type !== 'publish' || result.messages[0]?.status !== 'ACCEPTED') {
      throw new Error(`the escrowed message was not accepted: ${JSON.stringify(result)}`);
    }
    this.accepted.set(id, { height: this.chain.blocks.length, index: 0 });
    return { id, plaintext, sharing, escrow, perChunk };
  }

  /** `organization` submits an escrow action in a block of its own; returns the contract's result. */
  escrowAction(organization: OrganizationId, action: EscrowAction): TransactionResult {
    const transaction = encodeEscrowTransaction(
      { organization, nonce: randomBytes(nonceBytes), timestamp: Date.now(), action },
      this.signer(organization),
    );
    return this.execute(organization, transaction)[0] as TransactionResult;
  }

  /**
   * Share holder `holder` releases its share of `sent` for audit `requestId`, sealed to `auditor`:
   * its real share, or (`forged`) a random scalar that fails the commitments.
   */
  async release(
    sent: SentEscrow,
    holder: 'h1' | 'h2' | 'h3',
    requestId: string,
    options: { forged?: boolean } = {},
  ): Promise<TransactionResult> {
    const index = shareHolderIds.indexOf(holder);
    const value =
      options.forged === true
        ? new Uint8Array(32).fill(7)
        : (sent.sharing.shares[index]?.value as Uint8Array);
    const share = await sealShare(value, this.organizations.inspector.encryption.publicKey, {
      network: this.genesis.network,
      sender: 'alice',
      id: sent.id,
      holder,
      purpose: 'release',
      requestId,
    });
    return this.escrowAction(holder, { kind: 'shareRelease', requestId, share });
  }

  /** Fills `agent` as the escrow agent would from the escrow log: the message and its audits. */
  follow(agent: AgentDatabase, id: string): void {
    const record = escrowRecordView(this.chain.state, group, id);
    if (record === undefined) return;
    agent.putEscrowMessage({
      group_id: group,
      id,
      sender: record.sender,
      status: record.status,
      share: 'NONE',
      share_index: null,
      chunk_holder: 0,
      chunks_held: 0,
      attested: 0,
      updated_at: Date.now(),
    });
    for (const audit of record.audits) agent.upsertAudit(group, audit);
  }

  async close(): Promise<void> {
    for (const close of this.closers.reverse()) await close();
    rmSync(this.directory, { recursive: true, force: true });
  }

  private execute(organization: OrganizationId, operation: Uint8Array): TransactionResult[] {
    const block = this.chain.run([this.chain.request(this.signer(organization), operation)]);
    return block.results.map(decodeTransactionResult);
  }

  private database(name: string): ConnectorDatabase {
    const database = new ConnectorDatabase(join(this.directory, `${name}-db`));
    this.closers.push(() => database.close());
    return database;
  }

  private async storage(name: string): Promise<PayloadStorage> {
    const storage = await openStorage({
      kind: 'filesystem',
      directory: join(this.directory, `${name}-payloads`),
    });
    this.closers.push(() => storage.close());
    return storage;
  }

  private session(id: string, lifecycle: Lifecycle): NodeSession {
    const node = this.node;
    if (node === undefined) throw new Error('start the network first');
    const session = new NodeSession({
      registry: this.registry,
      logger: this.logger,
      lifecycle,
      node: node.node,
      identity: this.organizations[id as OrganizationId].key,
      servingConnections: 0,
    });
    // Sessions close before the stand-in and the databases they use.
    this.closers.push(() => {
      lifecycle.stop();
      session.close();
    });
    return session;
  }

  // ---- the node stand-in ----

  private publish(body: { request: Uint8Array }): CborValue {
    const block = this.chain.run([body.request]);
    return {
      height: block.header.height,
      transactionIndex: 0,
      evidence: blockEvidenceToCbor(blockEvidence(block, 0)),
    };
  }

  private escrowRecord(body: { group: string; id: string }): CborValue {
    const record = escrowRecordView(this.chain.state, body.group, body.id);
    const at = this.accepted.get(body.id);
    if (record === undefined || at === undefined) {
      throw new LedgerbusError(ErrorCode.MessageNotFound, `no escrowed message ${body.id} in ${body.group}`);
    }
    // Every evidence the node's escrow service sends; a spoiled holder's release loses its quorum.
    const spoiled = new Set(
      record.audits.flatMap((audit) =>
        audit.releases
          .filter((release) => this.spoiledEvidence.has(release.holder))
          .map((release) => `${release.height}/${release.transactionIndex}`),
      ),
    );
    const evidences = escrowRecordPositions(record).map((position) => {
      const evidence = blockEvidence(
        this.chain.blocks[position.height - 1] as Block,
        position.transactionIndex,
      );
      const shown = spoiled.has(`${position.height}/${position.transactionIndex}`)
        ? { ...evidence, signatures: evidence.signatures.slice(0, 1) }
        : evidence;
      return { ...position, evidence: blockEvidenceToCbor(shown) };
    });
    const accepted = this.chain.blocks[at.height - 1] as Block;
    return {
      acceptance: acceptanceProofToCbor({ block: blockEvidence(accepted, at.index), messageIndex: 0 }),
      record: record as unknown as CborValue,
      evidences,
    };
  }

  private async connectorCall(body: {
    organization: string;
    method: string;
    body: CborValue;
  }): Promise<CborValue> {
    const holder = this.holders.get(body.organization);
    const fault = this.faults.get(body.organization);
    if (holder === undefined || fault === 'down') {
      throw new LedgerbusError(
        ErrorCode.ConnectionClosed,
        `no connector of ${body.organization} serves now`,
        {
          retriable: true,
        },
      );
    }
    if (body.method === 'escrowChunkPut')
      return holder.put(body.body as { request: Uint8Array; chunk: Uint8Array });
    const answer = await holder.get(body.body as { request: Uint8Array });
    if (fault !== 'lie') return answer;
    const chunk = Uint8Array.from(answer.chunk);
    chunk[0] = (chunk[0] ?? 0) ^ 0xff;
    return { chunk };
  }
}
