/**
 * What the escrow contract returns for an `escrow` transaction that passed authentication: one
 * canonical-CBOR result, a leaf of the block's results root like every SDT result (the OK variant of
 * `transactionResultSchema` with `type: 'escrow'`). A refused escrow transaction gets the shared
 * `{ status: 'REJECTED', reason, detail? }` result instead.
 */
import { t } from '../../codec/index.js';
import type { Infer, Schema } from '../../codec/index.js';
import { transactionLimits } from '../limits.js';
import { rejectReasons } from '../reasons.js';
import type { RejectReason } from '../reasons.js';
import { escrowLimits } from './transactions.js';

const messageId = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });
const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const reason = t.oneOf(...rejectReasons) as Schema<RejectReason>;

/**
 * One attestation's fate. RECORDED also answers an identical repeat of an attestation recorded
 * before (the first result again); a different one for the same message is ATTESTATION_CONFLICT.
 */
export const escrowItemResultSchema = t.variant('status', {
  RECORDED: t.record({ id: messageId, status: t.literal('RECORDED') }),
  REJECTED: t.record({
    id: messageId,
    status: t.literal('REJECTED'),
    reason,
    detail: t.optional(t.string({ maxLength: 512 })),
  }),
});
export type EscrowItemResult = Infer<typeof escrowItemResultSchema>;

/** Where an audit request stands after the transaction. */
export const escrowAuditSummarySchema = t.record({
  requestId: t.string({ minLength: 1, maxLength: escrowLimits.requestIdLengthMax }),
  id: messageId,
  state: t.oneOf('PENDING', 'APPROVED', 'CLOSED'),
  /** Approvals recorded so far (they stop being recorded once the request is APPROVED). */
  approvals: t.uint(),
});
export type EscrowAuditSummary = Infer<typeof escrowAuditSummarySchema>;

export const escrowExecutedSchema = t.record({
  status: t.literal('OK'),
  type: t.literal('escrow'),
  kind: t.oneOf('attest', 'auditRequest', 'auditApprove', 'shareRelease', 'auditOutcome'),
  /** The signing organization. */
  organization: organizationId,
  /** One per attestation, in transaction order, for `attest`; empty for every other kind. */
  items: t.array(escrowItemResultSchema, { maxItems: escrowLimits.attestationsPerTransactionMax }),
  /** The request the action was about, for the audit kinds; null for `attest`. */
  audit: t.nullable(escrowAuditSummarySchema),
});
export type EscrowResult = Infer<typeof escrowExecutedSchema>;
