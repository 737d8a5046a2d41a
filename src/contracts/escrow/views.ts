/**
 * The escrow contract's committed state as nodes show it to connectors: one message's escrow record
 * with its audits, and the partition's escrow log (what happened, in order, for connectors to follow).
 * A node's answer is a hint; a connector acts on what it can prove (the message's acceptance proof,
 * the block evidence of each release), never on these fields alone where a decision depends on them.
 */
import { t } from '../../codec/index.js';
import type { Infer } from '../../codec/index.js';
import { transactionLimits } from '../limits.js';
import { escrowLimits, sealedShareSchema } from './transactions.js';

const uint = t.uint();
const organizationId = t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax });
const messageId = t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax });
const requestId = t.string({ minLength: 1, maxLength: escrowLimits.requestIdLengthMax });
const organizationsMax = escrowLimits.holdersMax + escrowLimits.sharesMax;
/** Audits one message may have open or closed: bounds a record (a new request past it is refused). */
export const auditsPerMessageMax = 64;

/** Where a transaction is: the block and its index in it (its proof is that block's evidence). */
const position = { height: uint, transactionIndex: uint };

export const escrowAttestationViewSchema = t.record({
  organization: organizationId,
  share: t.oneOf('VERIFIED', 'INVALID', 'NONE'),
  chunksHeld: uint,
  ...position,
});

export const auditViewSchema = t.record({
  requestId,
  id: messageId,
  auditor: organizationId,
  reason: t.string({ maxLength: escrowLimits.reasonLengthMax }),
  /** PENDING until `auditApprovals` members approved; APPROVED; CLOSED once the auditor recorded an outcome. */
  state: t.oneOf('PENDING', 'APPROVED', 'CLOSED'),
  /** Contract time of the request. */
  requestedAt: uint,
  ...position,
  approvals: t.array(t.record({ organization: organizationId, ...position }), {
    maxItems: organizationsMax,
  }),
  /** Approvals the topic's policy asks for. */
  approvalsNeeded: uint,
  releases: t.array(t.record({ holder: organizationId, share: sealedShareSchema, ...position }), {
    maxItems: escrowLimits.sharesMax,
  }),
  outcome: t.nullable(
    t.record({
      outcome: t.oneOf('RETRIEVED', 'FAILED'),
      contentRoot: t.nullable(t.bytes({ length: 32 })),
      badShares: t.array(organizationId, { maxItems: escrowLimits.sharesMax }),
      badHolders: t.array(organizationId, { maxItems: escrowLimits.holdersMax }),
      detail: t.string({ maxLength: escrowLimits.detailLengthMax }),
      ...position,
    }),
  ),
});
export type AuditView = Infer<typeof auditViewSchema>;

export const escrowRecordViewSchema = t.record({
  id: messageId,
  group: t.string({ minLength: 1, maxLength: 512 }),
  sender: organizationId,
  /** PENDING until every share holder attested VERIFIED; INVALID after any complaint. */
  status: t.oneOf('PENDING', 'VERIFIED', 'INVALID'),
  threshold: uint,
  shareHolders: t.array(organizationId, { maxItems: escrowLimits.sharesMax }),
  chunkHolders: t.array(organizationId, { maxItems: escrowLimits.holdersMax }),
  attestations: t.array(escrowAttestationViewSchema, { maxItems: organizationsMax }),
  audits: t.array(auditViewSchema, { maxItems: auditsPerMessageMax }),
});
export type EscrowRecordView = Infer<typeof escrowRecordViewSchema>;

export const escrowLogKinds = [
  'registered',
  'attested',
  'invalid',
  'auditRequested',
  'auditApproved',
  'shareReleased',
  'auditClosed',
] as const;
export type EscrowLogKind = (typeof escrowLogKinds)[number];

export const escrowLogEntrySchema = t.record({
  /** Position in the partition's escrow log, from 0. */
  seq: uint,
  kind: t.oneOf(...escrowLogKinds),
  id: messageId,
  requestId: t.nullable(requestId),
  ...position,
});
export type EscrowLogEntry = Infer<typeof escrowLogEntrySchema>;
