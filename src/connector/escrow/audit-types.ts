/**
 * What the auditor side of escrow (DESIGN §7) answers, as the REST API, the SDK and the CLI see it:
 * plain JSON (hex for hashes), no CBOR and no Uint8Array, so one set of types serves all three.
 */
import type { AuditRecordBundle } from '../../proofs/index.js';
import type { Readable } from 'node:stream';
import type { MessageLocation } from '../message-location.js';

export type AuditState = 'PENDING' | 'APPROVED' | 'CLOSED';

/** What `audit request` recorded on-chain. */
export interface AuditRequestResult {
  /** The request's id (a fresh UUID), which approvals and releases name. */
  readonly requestId: string;
  readonly id: string;
  /** Partition group of the message, e.g. "invoices/0". */
  readonly group: string;
  readonly state: AuditState;
}

/** Where a request stands after an approval. */
export interface AuditApproveResult {
  readonly requestId: string;
  readonly state: AuditState;
  /** Approvals recorded so far. */
  readonly approvals: number;
  /** Approvals the topic's escrow policy asks for. */
  readonly approvalsNeeded: number;
}

/** How an audit ended, as its auditor recorded it on-chain. */
export interface AuditOutcomeSummary {
  readonly outcome: 'RETRIEVED' | 'FAILED';
  /** Hex content root the rebuilt ciphertext matched (RETRIEVED), else null. */
  readonly contentRoot: string | null;
  readonly badShares: readonly string[];
  readonly badHolders: readonly string[];
  readonly detail: string;
}

/** One audit request, as the escrow agent followed it from the escrow log. */
export interface AuditSummary {
  readonly requestId: string;
  readonly id: string;
  readonly group: string;
  readonly auditor: string;
  readonly reason: string;
  readonly state: AuditState;
  readonly approvals: readonly { readonly organization: string }[];
  readonly approvalsNeeded: number;
  readonly releases: readonly { readonly holder: string }[];
  readonly outcome: AuditOutcomeSummary | null;
}

/** A share holder's standing in one escrowed message. */
export interface EscrowShareStatus {
  readonly holder: string;
  /** Evaluation point of its share: its position in the message's share list, plus one. */
  readonly index: number;
  /** What it attested on-chain about its share; null before it attested. */
  readonly attested: 'VERIFIED' | 'INVALID' | null;
}

/** Where the chunks of an escrowed message are, from its (public) placement. */
export interface EscrowPlacementStatus {
  readonly chunks: number;
  /** Holders per chunk. */
  readonly replicas: number;
  /** The distinct chunk holders, as the metadata lists them. */
  readonly holders: readonly string[];
  /** For each chunk, its holders in the order the sender ranked them. */
  readonly perChunk: readonly (readonly string[])[];
  /** Every chunk is on `replicas` distinct organizations. */
  readonly allDistinct: boolean;
  /** Whether the sender placed a chunk on itself (the contract refuses that, so always false). */
  readonly ownerHolds: boolean;
}

/** An escrowed message's on-chain escrow state, its acceptance proof verified by this connector. */
export interface EscrowStatus {
  readonly id: string;
  readonly group: string;
  readonly sender: string;
  readonly status: 'PENDING' | 'VERIFIED' | 'INVALID';
  readonly threshold: number;
  readonly shares: readonly EscrowShareStatus[];
  readonly placement: EscrowPlacementStatus;
  readonly attestations: readonly {
    readonly organization: string;
    readonly share: 'VERIFIED' | 'INVALID' | 'NONE';
    readonly chunksHeld: number;
  }[];
  readonly audits: readonly AuditSummary[];
  /**
   * Whether an approved audit could rebuild the message now, by what holders attested: not INVALID,
   * at least `threshold` share holders attested VERIFIED, and every chunk has a holder that attested
   * holding all the chunks the placement gives it.
   */
  readonly retrievable: boolean;
  /** Why not, when `retrievable` is false. */
  readonly why?: string;
}

/** What one audit fetch rebuilt. */
export interface AuditFetchResult {
  readonly id: string;
  readonly requestId: string;
  /** Plaintext bytes. */
  readonly size: number;
  /** Hex sha256 of the plaintext (also its storage key: storage is content-addressed). */
  readonly sha256: string;
  readonly storageKey: string;
  readonly chunks: number;
  /** Share holders whose released share failed the commitments (or did not open). */
  readonly badShares: readonly string[];
  /** Chunk holders that served a chunk that failed its hash or size. */
  readonly badHolders: readonly string[];
  /** From the first chunk request to the verified plaintext stored (paper Fig. 4c). */
  readonly regenerationMs: number;
}

export interface AuditFetchOptions {
  /** Which of our approved audits of the message to use (default: the newest approved one). */
  readonly requestId?: string;
  /** Where the message is, when the id alone names several escrowed messages. */
  readonly at?: MessageLocation;
}

/** The auditor side of escrow, as the HTTP routes call it (the connector's `Auditor`). */
export interface AuditApi {
  request(id: string, reason: string, at?: MessageLocation): Promise<AuditRequestResult>;
  approve(requestId: string, at?: MessageLocation): Promise<AuditApproveResult>;
  list(): AuditSummary[];
  status(id: string, at?: MessageLocation): Promise<EscrowStatus>;
  fetch(id: string, options?: AuditFetchOptions): Promise<AuditFetchResult>;
  /** The rebuilt plaintext of a fetched message, with what was recorded about it. */
  payload(id: string, options?: AuditFetchOptions): Promise<{ result: AuditFetchResult; stream: Readable }>;
  /** An audit's offline-verifiable record (by request id, or a message id: its newest audit). */
  record(key: string, at?: MessageLocation): Promise<AuditRecordBundle>;
}
