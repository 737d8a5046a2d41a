/**
 * What the holder side's tests run on: the parts fixture's devnet with an escrow topic ("vault",
 * org1 sends, org2–org4 hold shares and chunks, org4 is also the auditor) and ONE partition whose
 * blocks are executed by the real contracts (executeBatch) and certified by the devnet's own node
 * keys, so every proof a connector checks is real. `handlers` answers the node methods the holder
 * side calls (publish, escrowLog, escrowRecord with every evidence) from that state, as a node's
 * services would.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { CborValue } from '../../../codec/index.js';
import { decodeClientRequest, encodeClientRequest, messageLimits } from '../../../consensus/pbft/messages.js';
import { escrowLogPage } from '../../../contracts/escrow/queries.js';
import { encodeEscrowTransaction } from '../../../contracts/escrow/transactions.js';
import type { EscrowAction, EscrowMetadata, SealedShare } from '../../../contracts/escrow/transactions.js';
import { nonceBytes } from '../../../contracts/limits.js';
import { partitionGroupId } from '../../../contracts/registry.js';
import type { EscrowPolicy } from '../../../contracts/registry.js';
import { decodeTransactionResult } from '../../../contracts/results.js';
import type { TransactionResult } from '../../../contracts/results.js';
import { executeBatch } from '../../../contracts/sdt.js';
import { MemoryContractState } from '../../../contracts/state.js';
import { decodeTransaction, encodePublish } from '../../../contracts/transactions.js';
import type { MessageMetadata } from '../../../contracts/transactions.js';

type Transaction = ReturnType<typeof decodeTransaction>;
import { sealShare, splitSecret } from '../../../crypto/escrow/index.js';
import type { FeldmanSharing } from '../../../crypto/escrow/index.js';
import { SigningDomain, loadSigningKey, merkleRoot, sha256 } from '../../../crypto/index.js';
import { blockHash, certifyHeader } from '../../../ledger/block.js';
import type { Block } from '../../../ledger/block.js';
import type { RpcHandler } from '../../../net/index.js';
import { blockEvidence, blockEvidenceToCbor } from '../../../proofs/index.js';
import { parseAs } from '../../../protocol/typed-rpc.js';
import { nodeMethods } from '../../../protocol/client-methods.js';
import type { Genesis } from '../../../registry/genesis-schema.js';
import { RegistryView } from '../../../registry/registry-view.js';
import type { ConnectorContext } from '../../context.js';
import type { PartsFixture } from '../../testing/parts-fixture.js';
import { escrowRecordAnswer } from './record-answer.js';
import { resultsRoot } from '../../../ledger/result-leaf.js';

export const escrowTopic = 'vault';
export const escrowGroup = partitionGroupId(escrowTopic, 0);
/** Share i+1 goes to shareHolders[i]; chunk c to holders `placement[2c], placement[2c+1]`. */
export const shareHolders = ['org2', 'org3', 'org4'] as const;
export const auditor = 'org4';
export const chainPolicy: EscrowPolicy = {
  chunkBytes: 4096,
  replicas: 2,
  threshold: 2,
  shares: 3,
  auditApprovals: 1,
};

/**
 * The devnet's registry with the escrow topic, and org4 holding the auditor role as well (it is the
 * devnet's supervisor): what every organization's connector of the test sees.
 */
export function escrowRegistryView(genesis: Genesis): RegistryView {
  const members = genesis.organizations.map((organization) => organization.id);
  return RegistryView.fromGenesis({
    ...genesis,
    organizations: genesis.organizations.map((organization) =>
      organization.id === auditor
        ? { ...organization, roles: ['member', 'supervisor', 'auditor'] as const }
        : organization,
    ) as Genesis['organizations'],
    topics: [
      ...genesis.topics,
      {
        name: escrowTopic,
        partitions: [{ replicas: genesis.nodes.slice(0, 4).map((node) => node.id) }],
        producers: members,
        consumers: members,
        policy: {
          messageBytesMax: 1024 * 1024,
          ttlMs: 3_600_000,
          payloadRetentionMs: 3_600_000,
          availability: 'escrow',
          escrow: { ...chainPolicy },
        },
      },
    ] as Genesis['topics'],
  });
}

/** An escrowed message the chain accepted, with what its sender alone knows. */
export interface EscrowedMessage {
  readonly id: string;
  readonly sharing: FeldmanSharing;
  readonly escrow: EscrowMetadata;
  /** The chunks of the escrowed blob, chunk c at index c. */
  readonly chunks: Uint8Array[];
}

export class EscrowChain {
  readonly state = new MemoryContractState();
  readonly blocks: Block[] = [];
  /** Operations executed, in order, with the organization whose client request carried them. */
  readonly executed: { organization: string; operation: Transaction; result: TransactionResult }[] = [];
  private readonly replicas: { id: string; signer: ReturnType<SigningDomain['signer']> }[];
  private readonly configEpoch: number;
  private sequence = 0;

  /** `context` is any organization's: the chain reads its registry and clock. */
  constructor(
    private readonly fixture: PartsFixture,
    private readonly context: ConnectorContext,
  ) {
    const domain = SigningDomain.of(context.registry.network);
    const partition = context.registry.partition(escrowGroup);
    if (partition === undefined) throw new Error('the registry has no escrow topic: use escrowRegistryView');
    this.configEpoch = partition.configEpoch;
    this.replicas = partition.replicas.map((id) => {
      const organization = context.registry.node(id)?.organization as string;
      const key = loadSigningKey(join(fixture.layout.directory, organization, 'keys', 'node.key'));
      return { id, signer: domain.signer(key) };
    });
  }

  /** Executes one block holding the client requests `requests`, certified by every replica. */
  execute(requests: readonly Uint8Array[]): Block {
    const operations = requests.map(
      (request) => decodeClientRequest(request, messageLimits.requestBytesMax).operation,
    );
    const height = this.blocks.length + 1;
    const timestamp = this.fixture.clock.now();
    const { results } = executeBatch(
      this.state,
      {
        partitionId: escrowGroup,
        configEpoch: this.configEpoch,
        height,
        timestamp,
        registry: this.context.registry,
      },
      operations,
    );
    const previous = this.blocks[this.blocks.length - 1];
    const header = {
      partitionId: escrowGroup,
      configEpoch: this.configEpoch,
      height,
      previousHash: previous === undefined ? new Uint8Array(32) : blockHash(previous.header),
      transactionsRoot: merkleRoot(requests),
      resultsRoot: resultsRoot(results),
      timestamp,
      view: 0,
      proposer: this.replicas[0]?.id as string,
    };
    const block: Block = {
      header,
      certificate: certifyHeader(header, this.replicas),
      transactions: [...requests],
      results,
    };
    this.blocks.push(block);
    return block;
  }

  /** `operation` in a client request of `by`'s connector, in a block of its own; its result. */
  submit(by: ConnectorContext, operation: Uint8Array): TransactionResult {
    const request = encodeClientRequest(
      { group: escrowGroup, client: by.signer.publicKey, seq: ++this.sequence, operation },
      by.signer.sign,
    );
    const block = this.execute([request]);
    const result = decodeTransactionResult(block.results[0] as Uint8Array);
    this.executed.push({ organization: by.organization, operation: decodeTransaction(operation), result });
    return result;
  }

  /** An escrow action signed by `by`. */
  act(by: ConnectorContext, action: EscrowAction): TransactionResult {
    return this.submit(
      by,
      encodeEscrowTransaction(
        {
          organization: by.organization,
          nonce: new Uint8Array(randomBytes(nonceBytes)),
          timestamp: this.fixture.clock.now(),
          action,
        },
        by.signer,
      ),
    );
  }

  /**
   * Publishes escrowed message `id` from `sender` (two chunks: chunk 0 on org2 and org3, chunk 1
   * on org3 and org4), its key shared 2-of-3 to org2, org3, org4. `sealedShare(i)` replaces the
   * sealed share of holder i (a sender that escrows garbage). Throws unless the partition accepts it.
   */
  async publishEscrowed(
    sender: ConnectorContext,
    id: string,
    options: { sealedShare?: (index: number) => SealedShare | undefined } = {},
  ): Promise<EscrowedMessage> {
    const { registry } = sender;
    const sharing = splitSecret(chainPolicy.threshold, chainPolicy.shares);
    const shares = [];
    for (const [index, holder] of shareHolders.entries()) {
      const share =
        options.sealedShare?.(index) ??
        (await sealShare(
          (sharing.shares[index] as { value: Uint8Array }).value,
          registry.encryptionKey(holder) as Uint8Array,
          {
            network: registry.network,
            sender: sender.organization,
            id,
            holder,
            purpose: 'escrow',
          },
        ));
      shares.push({ holder, share });
    }
    const blobBytes = chainPolicy.chunkBytes + 1000;
    const blob = new Uint8Array(randomBytes(blobBytes));
    const chunks = [blob.slice(0, chainPolicy.chunkBytes), blob.slice(chainPolicy.chunkBytes)];
    const masterTable = new Uint8Array(randomBytes(200));
    const escrow: EscrowMetadata = {
      chunkBytes: chainPolicy.chunkBytes,
      blobBytes,
      chunkCount: 2,
      commitments: sharing.commitments,
      shares,
      holders: [...shareHolders],
      placement: Uint8Array.of(0, 1, 1, 2),
      masterTableHash: sha256(masterTable),
      masterTable,
    };
    const message: MessageMetadata = {
      id,
      topic: escrowTopic,
      partition: 0,
      key: null,
      recipients: ['org2'],
      size: blobBytes - 100,
      contentRoot: sha256(blob),
      contentType: 'application/octet-stream',
      headers: {},
      escrow,
    };
    const result = this.submit(
      sender,
      encodePublish(
        {
          sender: sender.organization,
          nonce: new Uint8Array(randomBytes(nonceBytes)),
          timestamp: this.fixture.clock.now(),
          messages: [message],
        },
        sender.signer,
      ),
    );
    if (result.status !== 'OK' || result.type !== 'publish' || result.messages[0]?.status !== 'ACCEPTED') {
      throw new Error(`the partition did not accept ${id}: ${JSON.stringify(result)}`);
    }
    return { id, sharing, escrow, chunks };
  }

  /** The node methods of the holder side, answered from the chain's committed state. */
  handlers(): Record<string, RpcHandler> {
    return {
      publish: (body) => {
        const { request } = parseAs(nodeMethods.publish.request, body, 'publish');
        const client = decodeClientRequest(request, messageLimits.requestBytesMax);
        const organization = this.context.registry.organizationBySigningKey(client.client)?.id ?? '?';
        const block = this.execute([request]);
        this.executed.push({
          organization,
          operation: decodeTransaction(client.operation),
          result: decodeTransactionResult(block.results[0] as Uint8Array),
        });
        return {
          height: block.header.height,
          transactionIndex: 0,
          evidence: blockEvidenceToCbor(blockEvidence(block, 0)),
        };
      },
      escrowLog: (body) => {
        const { group, fromSeq, limit } = parseAs(nodeMethods.escrowLog.request, body, 'escrowLog');
        const page = escrowLogPage(this.state, group, { fromSeq, limit: limit ?? 100 });
        return page as unknown as CborValue;
      },
      escrowRecord: (body) => {
        const { group, id } = parseAs(nodeMethods.escrowRecord.request, body, 'escrowRecord');
        return escrowRecordAnswer(this, group, id);
      },
    };
  }
}
