/**
 * What a node shows connectors of the escrow contract (DESIGN §7), from a replica's COMMITTED state:
 *
 *   escrowLog      the partition's escrow log from a sequence number, a long poll like `poll`, filtered
 *                  for the calling organization
 *   escrowRecord   one escrowed message's record, its acceptance proof and the block evidence of every
 *                  transaction of its audits (request, approvals, releases, outcome) and of its
 *                  attestations, as many as fit an answer
 *
 * Who sees what, as BlockTorrent broadcasts it: a message's registration and its holders' attestations
 * concern its parties (sender, share holders, chunk holders), whom approved supervisors and auditors
 * oversee; audit requests, approvals, releases and outcomes are every approved member's business (a
 * quorum of members approves an audit, so all of them must learn of it). The caller is approved
 * already (the client service checks it on every request). Answers are hints: a connector acts only
 * on what the proofs show.
 */
import type { CborValue } from '../codec/index.js';
import { escrowLogPage, escrowParties, escrowRecordView } from '../contracts/escrow/queries.js';
import { escrowRecordViewSchema } from '../contracts/escrow/views.js';
import type { EscrowLogEntry, EscrowLogKind } from '../contracts/escrow/views.js';
import { messageById } from '../contracts/queries.js';
import type { ContractState } from '../contracts/state.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import { acceptanceProofToCbor, blockEvidenceToCbor, escrowRecordPositions } from '../proofs/index.js';
import type { BlockEvidence } from '../proofs/index.js';
import { escrowLogPageMax } from '../protocol/client-methods.js';
import type { NodeMethods, RequestOf, ResponseOf } from '../protocol/client-methods.js';
import type { NetworkRegistry } from '../registry/types.js';
import { actsAs } from '../registry/system-state.js';
import type { Logger } from '../runtime/logger.js';
import type { PartitionReplica } from './partition-replica.js';

type Request<M extends keyof NodeMethods> = RequestOf<NodeMethods[M]>;
type Response<M extends keyof NodeMethods> = ResponseOf<NodeMethods[M]>;

export interface EscrowServiceOptions {
  readonly registry: NetworkRegistry;
  readonly logger: Logger;
  /** Largest wait an escrowLog long poll may ask for (the client service's poll limit). */
  readonly pollWaitMsMax?: number;
  /** This node's replica of `group` and a read-only view of its committed state (WRONG_GROUP if none). */
  readonly committed: (group: string) => { replica: PartitionReplica; state: ContractState };
  /** The evidence of transaction `transactionIndex` of block `height` of `replica`. */
  readonly evidence: (replica: PartitionReplica, height: number, transactionIndex: number) => BlockEvidence;
}

/** The log kinds every approved organization sees; the others only a message's parties and overseers. */
const auditKinds: ReadonlySet<EscrowLogKind> = new Set([
  'auditRequested',
  'auditApproved',
  'shareReleased',
  'auditClosed',
]);

/** A page when the caller names no limit. */
const escrowLogPageDefault = 100;
/**
 * Budget for the evidences of one record: within the method schema's count, and within a byte
 * budget that leaves the rest of the 16 MiB frame to the acceptance proof (whose publish carries the
 * master table, up to 768 KiB) and the view. An audit transaction's evidence is ~2 KiB; an attest
 * transaction may cover a thousand messages and be tens of KiB.
 */
const recordEvidencesMax = 1024;
const recordEvidenceBytesMax = 8 * 1024 * 1024;

/** The organizations a message's escrow concerns, whatever the view they come from. */
interface Parties {
  readonly sender: string;
  readonly shareHolders: readonly string[];
  readonly chunkHolders: readonly string[];
}

function isParty(parties: Parties, organization: string): boolean {
  return (
    parties.sender === organization ||
    parties.shareHolders.includes(organization) ||
    parties.chunkHolders.includes(organization)
  );
}

export class EscrowService {
  constructor(private readonly options: EscrowServiceOptions) {}

  /**
   * A page of the escrow log from `fromSeq` with the entries `organization` may see. With `waitMs`,
   * waits until the log has grown past `fromSeq` or the wait ends. `nextSeq` is past every entry the
   * page covered, shown or not, so a follower never asks for a filtered entry again.
   */
  async log(organization: string, body: Request<'escrowLog'>): Promise<Response<'escrowLog'>> {
    const { group, fromSeq } = body;
    const limit = Math.min(escrowLogPageMax, Math.max(1, body.limit ?? escrowLogPageDefault));
    const waitMs = Math.min(this.options.pollWaitMsMax ?? 30_000, body.waitMs ?? 0);
    const { replica, state } = this.options.committed(group);
    const grown = (): boolean => escrowLogPage(state, group, { fromSeq, limit: 0 }).endSeq > fromSeq;
    if (waitMs > 0 && !grown()) await untilBlock(replica, waitMs, grown);
    const page = escrowLogPage(state, group, { fromSeq, limit });
    assert(page.nextSeq >= fromSeq && page.entries.length <= limit, 'escrow log page within its request');
    const overseer = this.oversees(organization);
    const partyOf = new Map<string, boolean>();
    const visible = (entry: EscrowLogEntry): boolean => {
      if (overseer || auditKinds.has(entry.kind)) return true;
      let party = partyOf.get(entry.id);
      if (party === undefined) {
        const parties = escrowParties(state, group, entry.id);
        party = parties !== undefined && isParty(parties, organization);
        partyOf.set(entry.id, party);
      }
      return party;
    };
    return { entries: page.entries.filter(visible), nextSeq: page.nextSeq, endSeq: page.endSeq };
  }

  /**
   * Message `id`'s escrow record with its proofs, for its parties, supervisors and auditors;
   * anyone else is FORBIDDEN (logged). A message not committed yet is MESSAGE_NOT_FOUND, retriable;
   * a committed one of a topic that does not escrow is MESSAGE_NOT_FOUND, final.
   */
  record(organization: string, { group, id }: Request<'escrowRecord'>): Response<'escrowRecord'> {
    const { replica, state } = this.options.committed(group);
    const message = messageById(state, group, id);
    if (message === undefined) {
      throw new LedgerbusError(ErrorCode.MessageNotFound, `message ${id} is not committed on ${group}`, {
        retriable: true,
      });
    }
    const record = escrowRecordView(state, group, id);
    if (record === undefined) {
      throw new LedgerbusError(
        ErrorCode.MessageNotFound,
        `message ${id} on ${group} is not an escrowed message: its topic's availability is not escrow`,
        { retriable: false },
      );
    }
    if (!isParty(record, organization) && !this.oversees(organization)) {
      this.options.logger.warn(
        { organization, id, group },
        'refused an escrow record to an organization that is no party of it',
      );
      throw new LedgerbusError(
        ErrorCode.Forbidden,
        `${organization} is neither a party of escrowed message ${id} nor an approved supervisor or auditor`,
      );
    }
    const acceptance = acceptanceProofToCbor({
      block: this.options.evidence(replica, message.height, message.transactionIndex),
      messageIndex: message.messageIndex,
    });
    const evidences: { height: number; transactionIndex: number; evidence: CborValue }[] = [];
    let evidenceBytes = 0;
    // Newest audit first, attestations last (see escrowRecordPositions): what does not fit is old.
    for (const { height, transactionIndex } of escrowRecordPositions(record)) {
      if (evidences.length >= recordEvidencesMax) break;
      const evidence = this.options.evidence(replica, height, transactionIndex);
      evidenceBytes += evidenceBytesOf(evidence);
      if (evidenceBytes > recordEvidenceBytesMax) break;
      evidences.push({ height, transactionIndex, evidence: blockEvidenceToCbor(evidence) });
    }
    assert(evidences.length <= recordEvidencesMax, 'the record evidences fit the method schema');
    return {
      acceptance,
      record: escrowRecordViewSchema.parse(record, 'escrow record') as CborValue,
      evidences,
    };
  }

  /** Approved supervisors and auditors oversee every escrowed message. */
  private oversees(organization: string): boolean {
    const entry = this.options.registry.organization(organization);
    return actsAs(entry, 'supervisor') || actsAs(entry, 'auditor');
  }
}

/**
 * An upper bound of `evidence`'s encoded size: its byte strings, its Merkle paths, its signatures
 * and a generous allowance for the header and the CBOR framing (cheaper than encoding it twice).
 */
function evidenceBytesOf(evidence: BlockEvidence): number {
  const paths = evidence.transactionProof.path.length + evidence.resultProof.path.length;
  const signatures = evidence.signatures.reduce((sum, entry) => sum + entry.signer.length + 80, 0);
  return evidence.transaction.length + evidence.result.length + 40 * paths + signatures + 1024;
}

/** Resolves once `ready()` holds after a committed block of `replica`, or after `waitMs`. */
function untilBlock(replica: PartitionReplica, waitMs: number, ready: () => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, waitMs);
    const unsubscribe = replica.onBlock(() => {
      if (ready()) done();
    });
    function done(): void {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    }
  });
}
