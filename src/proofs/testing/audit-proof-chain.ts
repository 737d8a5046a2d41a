/**
 * A certified partition with one audited escrowed message, for the audit-record proof tests: the
 * escrow topic "vault" of the auditor tests' genesis (escrow/testing/audit-chain.ts, whose blocks
 * are executed by the real SDT and escrow contracts and certified by three of four replicas), where
 *
 *   alice publishes m-audited (key shares with h1, h2, h3; chunks on h1–h4), h1 attests,
 *   inspector requests audit-1, alice's approval is refused (the sender may not approve),
 *   bob approves, h1 and h2 release, inspector records RETRIEVED naming h4 a bad holder,
 *   and inspector requests audit-2 of the same message, which stays PENDING.
 */
import { randomBytes } from 'node:crypto';
import { encodeEscrowTransaction } from '../../contracts/escrow/transactions.js';
import type { EscrowAction, EscrowMetadata } from '../../contracts/escrow/transactions.js';
import { escrowRecordView } from '../../contracts/escrow/queries.js';
import type { EscrowRecordView } from '../../contracts/escrow/views.js';
import { nonceBytes } from '../../contracts/limits.js';
import { messageById } from '../../contracts/queries.js';
import { decodeTransactionResult } from '../../contracts/results.js';
import type { TransactionResult } from '../../contracts/results.js';
import { encodePublish } from '../../contracts/transactions.js';
import { sealShare, splitSecret } from '../../crypto/escrow/index.js';
import { generateEncryptionKey } from '../../crypto/envelope/index.js';
import { SigningDomain, sha256, signingKeyFromSeed } from '../../crypto/index.js';
import type { Block } from '../../ledger/block.js';
import { GenesisRegistry } from '../../registry/genesis.js';
import { proofTrustOf } from '../../registry/trust.js';
import {
  Chain,
  genesisOf,
  group,
  organizationIds,
  seeded,
  topic,
} from '../../connector/escrow/testing/audit-chain.js';
import type { OrganizationId, TestOrganization } from '../../connector/escrow/testing/audit-chain.js';
import { AUDIT_RECORD_FORMAT } from '../audit-record.js';
import type { AuditRecord } from '../audit-record.js';
import { blockEvidence } from '../evidence.js';
import type { BlockEvidence } from '../evidence.js';
import type { RecordPosition } from '../audit-evidence.js';
import type { ProofTrust } from '../message-proof.js';

export const auditedId = 'm-audited';
export { group };

export interface AuditProofChain {
  readonly chain: Chain;
  readonly trust: ProofTrust;
  readonly signing: SigningDomain;
  readonly organizations: Record<OrganizationId, TestOrganization>;
  /** The escrow metadata alice published. */
  readonly escrow: EscrowMetadata;
  /** Blocks of the transactions that are not in the record's view (a refused approval). */
  readonly refusedApproval: number;
  /** The message's record as the contract holds it. */
  record(): EscrowRecordView;
  /** The evidence of the transaction at `position`. */
  evidenceAt(position: RecordPosition): BlockEvidence;
  /** The complete audit record of audit `requestId`, built from the record's view. */
  auditRecord(requestId: string): AuditRecord;
}

export async function auditProofChain(): Promise<AuditProofChain> {
  const organizations = Object.fromEntries(
    organizationIds.map((id) => [
      id,
      { key: signingKeyFromSeed(seeded(id)), encryption: generateEncryptionKey() },
    ]),
  ) as Record<OrganizationId, TestOrganization>;
  const genesis = genesisOf(organizations, []);
  const registry = new GenesisRegistry(genesis);
  const signing = SigningDomain.of(genesis.network);
  const chain = new Chain(registry, signing);
  const run = (by: OrganizationId, operation: Uint8Array): TransactionResult => {
    const block = chain.run([chain.request(signing.signer(organizations[by].key), operation)]);
    return decodeTransactionResult(block.results[0] as Uint8Array);
  };
  const act = (by: OrganizationId, action: EscrowAction): TransactionResult =>
    run(
      by,
      encodeEscrowTransaction(
        { organization: by, nonce: randomBytes(nonceBytes), timestamp: Date.now(), action },
        signing.signer(organizations[by].key),
      ),
    );
  const expectOk = (result: TransactionResult, what: string): void => {
    if (result.status !== 'OK') throw new Error(`${what} was refused: ${JSON.stringify(result)}`);
  };

  const sharing = splitSecret(2, 3);
  const shareHolders = ['h1', 'h2', 'h3'] as const;
  const shares = await Promise.all(
    shareHolders.map(async (holder, index) => ({
      holder,
      share: await sealShare(
        sharing.shares[index]?.value as Uint8Array,
        organizations[holder].encryption.publicKey,
        {
          network: genesis.network,
          sender: 'alice',
          id: auditedId,
          holder,
          purpose: 'escrow',
        },
      ),
    })),
  );
  const masterTable = new Uint8Array(randomBytes(200));
  const blobBytes = 4096 + 1000;
  const escrow: EscrowMetadata = {
    chunkBytes: 4096,
    blobBytes,
    chunkCount: 2,
    commitments: sharing.commitments,
    shares,
    holders: ['h1', 'h2', 'h3', 'h4'],
    placement: Uint8Array.of(0, 1, 2, 1, 2, 3),
    masterTableHash: sha256(masterTable),
    masterTable,
  };
  const contentRoot = sha256(randomBytes(32));
  const published = run(
    'alice',
    encodePublish(
      {
        sender: 'alice',
        nonce: randomBytes(nonceBytes),
        timestamp: Date.now(),
        messages: [
          {
            id: auditedId,
            topic,
            partition: 0,
            key: null,
            recipients: ['bob'],
            size: blobBytes - 100,
            contentRoot,
            contentType: 'application/octet-stream',
            headers: {},
            escrow,
          },
        ],
      },
      signing.signer(organizations.alice.key),
    ),
  );
  if (
    published.status !== 'OK' ||
    published.type !== 'publish' ||
    published.messages[0]?.status !== 'ACCEPTED'
  ) {
    throw new Error(`m-audited was not accepted: ${JSON.stringify(published)}`);
  }
  expectOk(
    act('h1', { kind: 'attest', attestations: [{ id: auditedId, share: 'VERIFIED', chunksHeld: 1 }] }),
    'attest',
  );
  expectOk(
    act('inspector', { kind: 'auditRequest', requestId: 'audit-1', id: auditedId, reason: 'annual review' }),
    'request',
  );
  if (act('alice', { kind: 'auditApprove', requestId: 'audit-1' }).status !== 'REJECTED') {
    throw new Error("the sender's approval was not refused");
  }
  const refusedApproval = chain.blocks.length;
  expectOk(act('bob', { kind: 'auditApprove', requestId: 'audit-1' }), 'approve');
  for (const holder of ['h1', 'h2'] as const) {
    const share = await sealShare(
      new Uint8Array(randomBytes(32)),
      organizations.inspector.encryption.publicKey,
      {
        network: genesis.network,
        sender: 'alice',
        id: auditedId,
        holder,
        purpose: 'release',
        requestId: 'audit-1',
      },
    );
    expectOk(act(holder, { kind: 'shareRelease', requestId: 'audit-1', share }), 'release');
  }
  expectOk(
    act('inspector', {
      kind: 'auditOutcome',
      requestId: 'audit-1',
      outcome: 'RETRIEVED',
      contentRoot,
      badShares: [],
      badHolders: ['h4'],
      detail: '',
    }),
    'outcome',
  );
  expectOk(
    act('inspector', { kind: 'auditRequest', requestId: 'audit-2', id: auditedId, reason: 'follow-up' }),
    'second request',
  );

  const record = (): EscrowRecordView => escrowRecordView(chain.state, group, auditedId) as EscrowRecordView;
  const evidenceAt = ({ height, transactionIndex }: RecordPosition): BlockEvidence =>
    blockEvidence(chain.blocks[height - 1] as Block, transactionIndex);
  return {
    chain,
    trust: proofTrustOf(registry),
    signing,
    organizations,
    escrow,
    refusedApproval,
    record,
    evidenceAt,
    auditRecord: (requestId) => {
      const view = record().audits.find((audit) => audit.requestId === requestId);
      const message = messageById(chain.state, group, auditedId);
      if (view === undefined || message === undefined) throw new Error(`no audit ${requestId}`);
      return {
        format: AUDIT_RECORD_FORMAT,
        acceptance: { block: evidenceAt(message), messageIndex: message.messageIndex },
        audit: {
          requestId,
          request: evidenceAt(view),
          approvals: view.approvals.map(evidenceAt),
          releases: view.releases.map(evidenceAt),
          outcome: view.outcome === null ? null : evidenceAt(view.outcome),
        },
      };
    },
  };
}
