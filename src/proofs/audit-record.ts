/**
 * An AUDIT RECORD (DESIGN §7): everything an audit of an escrowed message did, checkable offline
 * against the network's trust bundle like a delivery receipt — the message's acceptance proof, and
 * the block evidence of the audit's request, each approval, each share release and its outcome.
 * Verifying it proves who asked for which message and why, which members approved, which holders
 * released their key share to the auditor, the audit's state as the contract last recorded it, and
 * how the auditor says it ended.
 *
 * Two forms, as for receipts: the record itself (canonical CBOR, `encodeAuditRecord`) and the JSON
 * bundle a file holds (`AuditRecordBundle`: format, network, the summary the record proves, and the
 * record in base64). `ledgerbus verify` recomputes the summary from the record and refuses a bundle
 * whose summary says anything else.
 */
import { decodeWith, encodeCanonical, t, toHex } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { escrowLimits } from '../contracts/escrow/transactions.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { checkAuditRoles, provenAuditOf, verifyAuditRequest, verifyAuditStep } from './audit-evidence.js';
import type { AuditStepKind, ProvenAudit, ProvenStep } from './audit-evidence.js';
import { blockEvidenceSchema, blockEvidenceToCbor } from './evidence.js';
import type { BlockEvidence } from './evidence.js';
import { acceptanceProofSchema, acceptanceProofToCbor, verifyAcceptance } from './message-proof.js';
import type { AcceptedMessage, ProofTrust } from './message-proof.js';

export const AUDIT_RECORD_FORMAT = 'ledgerbus-audit-record/v1';

/** Approvals one audit may carry: the views' bound (every member but the auditor and the sender). */
const approvalsMax = escrowLimits.holdersMax + escrowLimits.sharesMax;

export const auditRecordSchema = t.record({
  format: t.literal(AUDIT_RECORD_FORMAT),
  acceptance: acceptanceProofSchema,
  audit: t.record({
    requestId: t.string({ minLength: 1, maxLength: escrowLimits.requestIdLengthMax }),
    /** The auditor's auditRequest. */
    request: blockEvidenceSchema,
    /** Each recorded auditApprove, in commit order. */
    approvals: t.array(blockEvidenceSchema, { maxItems: approvalsMax }),
    /** Each shareRelease, in commit order. */
    releases: t.array(blockEvidenceSchema, { maxItems: escrowLimits.sharesMax }),
    /** The auditor's auditOutcome, once it recorded one. */
    outcome: t.nullable(blockEvidenceSchema),
  }),
});
export type AuditRecord = Infer<typeof auditRecordSchema>;

export function encodeAuditRecord(record: AuditRecord): Uint8Array {
  const { audit } = record;
  return encodeCanonical({
    format: AUDIT_RECORD_FORMAT,
    acceptance: acceptanceProofToCbor(record.acceptance),
    audit: {
      requestId: audit.requestId,
      request: blockEvidenceToCbor(audit.request),
      approvals: audit.approvals.map(blockEvidenceToCbor),
      releases: audit.releases.map(blockEvidenceToCbor),
      outcome: audit.outcome === null ? null : blockEvidenceToCbor(audit.outcome),
    },
  });
}

/** Decodes an audit record strictly (SCHEMA_MISMATCH naming the field, OVERSIZE, …). */
export function decodeAuditRecord(bytes: Uint8Array): AuditRecord {
  return decodeWith(auditRecordSchema, bytes, { maxBytes: 64 * 1024 * 1024 });
}

function badProof(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadProof, message);
}

/**
 * Verifies `record` against `trust`: the acceptance proof (verifyAcceptance), an escrowed message,
 * and every evidence as verifyAuditStep and checkAuditRoles do, each in its slot (an approval's
 * evidence must prove an auditApprove, …), one approval and one release per organization. Any
 * failure throws, naming the slot and the rule broken; nothing is dropped.
 */
export function verifyAuditRecord(
  record: AuditRecord,
  trust: ProofTrust,
): { message: AcceptedMessage; audit: ProvenAudit } {
  const message = verifyAcceptance(record.acceptance, trust);
  if (message.metadata.escrow === undefined) throw badProof(`message ${message.id} was not escrowed`);
  const { requestId } = record.audit;
  const inSlot = <T>(slot: string, verify: () => T): T => {
    try {
      return verify();
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      throw new LedgerbusError(error.code, `${slot}: ${error.message}`, { cause: error });
    }
  };
  const request = inSlot('request', () =>
    verifyAuditRequest(trust, message, requestId, record.audit.request),
  );
  const step = <K extends Exclude<AuditStepKind, 'auditRequest'>>(
    slot: string,
    kind: K,
    evidence: BlockEvidence,
  ): ProvenStep<K> =>
    inSlot(slot, () => {
      const proven = verifyAuditStep(trust, message, requestId, kind, evidence);
      checkAuditRoles(message, request, proven);
      return proven;
    });
  /** The contract records one approval and one release per organization. */
  const once = <S extends { organization: string }>(slot: string, steps: S[]): S[] => {
    const seen = new Set<string>();
    for (const [index, proven] of steps.entries()) {
      if (seen.has(proven.organization)) {
        throw badProof(`${slot}[${index}]: a second entry by ${proven.organization}`);
      }
      seen.add(proven.organization);
    }
    return steps;
  };
  const { approvals, releases, outcome } = record.audit;
  const audit = provenAuditOf({
    request,
    approvals: once(
      'approvals',
      approvals.map((evidence, index) => step(`approvals[${index}]`, 'auditApprove', evidence)),
    ),
    releases: once(
      'releases',
      releases.map((evidence, index) => step(`releases[${index}]`, 'shareRelease', evidence)),
    ),
    outcome: outcome === null ? null : step('outcome', 'auditOutcome', outcome),
  });
  return { message, audit };
}

/** What an audit record proves, as a bundle states it (field order fixed: bundles compare as JSON). */
export interface AuditRecordSummary {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly sender: string;
  /** Hex content root of the audited message. */
  readonly contentRoot: string;
  readonly requestId: string;
  readonly auditor: string;
  readonly reason: string;
  /** Organizations whose approval the contract recorded, in commit order. */
  readonly approvals: readonly string[];
  readonly state: ProvenAudit['state'];
  /** Share holders that released their key share to the auditor, in commit order. */
  readonly releases: readonly string[];
  readonly outcome: {
    readonly outcome: 'RETRIEVED' | 'FAILED';
    /** Hex content root the rebuilt ciphertext matched (RETRIEVED), else null. */
    readonly contentRoot: string | null;
    readonly badShares: readonly string[];
    readonly badHolders: readonly string[];
    readonly detail: string;
  } | null;
}

export function auditRecordSummary(message: AcceptedMessage, audit: ProvenAudit): AuditRecordSummary {
  const { outcome } = audit;
  return {
    id: message.id,
    topic: message.topic,
    partition: message.partition,
    sender: message.sender,
    contentRoot: toHex(message.contentRoot),
    requestId: audit.requestId,
    auditor: audit.auditor,
    reason: audit.reason,
    approvals: audit.approvals.map((approval) => approval.organization),
    state: audit.state,
    releases: audit.releases.map((release) => release.holder),
    outcome:
      outcome === null
        ? null
        : {
            outcome: outcome.outcome,
            contentRoot: outcome.contentRoot === null ? null : toHex(outcome.contentRoot),
            badShares: [...outcome.badShares],
            badHolders: [...outcome.badHolders],
            detail: outcome.detail,
          },
  };
}

/** An audit record as a file holds it (JSON). */
export interface AuditRecordBundle {
  readonly format: typeof AUDIT_RECORD_FORMAT;
  /** The network whose trust bundle verifies it. */
  readonly network: string;
  readonly audit: AuditRecordSummary;
  /** encodeAuditRecord's bytes, base64. */
  readonly proof: string;
}

/** Verifies `record` (verifyAuditRecord; throws as it does) and wraps it with its summary. */
export function auditRecordBundle(record: AuditRecord, trust: ProofTrust): AuditRecordBundle {
  const { message, audit } = verifyAuditRecord(record, trust);
  return {
    format: AUDIT_RECORD_FORMAT,
    network: trust.signing.network,
    audit: auditRecordSummary(message, audit),
    proof: Buffer.from(encodeAuditRecord(record)).toString('base64'),
  };
}

/**
 * Checks a parsed bundle file offline: the format (SCHEMA_MISMATCH), the network (WRONG_GROUP),
 * the record (decodeAuditRecord, verifyAuditRecord: their codes, the slot named), and that the
 * summary is exactly what the record proves (BAD_PROOF naming the first field that is not).
 * Returns the proven summary.
 */
export function verifyAuditRecordBundle(value: unknown, trust: ProofTrust): AuditRecordSummary {
  const bundle = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (bundle['format'] !== AUDIT_RECORD_FORMAT || typeof bundle['proof'] !== 'string') {
    throw new LedgerbusError(ErrorCode.SchemaMismatch, `not a ${AUDIT_RECORD_FORMAT} bundle`);
  }
  if (bundle['network'] !== trust.signing.network) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `the audit record is from network ${String(bundle['network'])}, not ${trust.signing.network}`,
    );
  }
  const { message, audit } = verifyAuditRecord(
    decodeAuditRecord(Buffer.from(bundle['proof'], 'base64')),
    trust,
  );
  const proven = auditRecordSummary(message, audit);
  const claimed = (
    typeof bundle['audit'] === 'object' && bundle['audit'] !== null ? bundle['audit'] : {}
  ) as Record<string, unknown>;
  const fields = new Set([...Object.keys(proven), ...Object.keys(claimed)]);
  for (const field of fields) {
    const actual = (proven as unknown as Record<string, unknown>)[field];
    if (JSON.stringify(claimed[field]) !== JSON.stringify(actual)) {
      throw badProof(
        `the summary's ${field} is ${JSON.stringify(claimed[field]) ?? 'missing'}; the proof proves ${JSON.stringify(actual) ?? 'no such field'}`,
      );
    }
  }
  return proven;
}
