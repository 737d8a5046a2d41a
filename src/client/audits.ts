/**
 * Audits of escrowed messages (DESIGN §7) from an application: an auditor organization requests
 * one, members approve it, and the auditor's connector rebuilds the message without its owner.
 * Every call goes to this organization's connector, which signs as this organization; the network's
 * escrow contract decides who may do what (FORBIDDEN, AUDIT_NOT_APPROVED, AUDIT_FAILED otherwise).
 *
 *   const audits = lb.admin().audits;
 *   const { requestId } = await audits.request({ id: 'inv-42', reason: 'quarterly inspection' });
 *   // ... another member: await audits.approve(requestId)
 *   const result = await audits.fetch('inv-42');          // rebuilt into the connector's storage
 *   const bytes = await audits.payload('inv-42');         // a web ReadableStream of the plaintext
 *   const record = await audits.record(requestId);        // checkable offline: ledgerbus verify
 */
import type {
  AuditApproveResult,
  AuditFetchResult,
  AuditRequestResult,
  AuditSummary,
  EscrowStatus,
} from '../connector/escrow/audit-types.js';
import type { MessageLocation } from '../connector/message-location.js';
import type { AuditRecordBundle } from '../proofs/index.js';
import type { Query, Transport } from './transport.js';

export interface AuditRequestInput {
  /** Id of the escrowed message. */
  readonly id: string;
  /** Why, for the approvers and the record. */
  readonly reason: string;
  /** Where the message is, when its id alone names escrowed messages of several partitions. */
  readonly at?: MessageLocation;
}

export interface AuditFetchInput {
  /** Which of our approved audits of the message to use (default: the newest). */
  readonly requestId?: string;
  readonly at?: MessageLocation;
}

function locationQuery(at: MessageLocation | undefined): Query {
  return at === undefined ? {} : { topic: at.topic, partition: at.partition };
}

function messagePath(id: string, what = ''): string {
  return `/v1/audits/messages/${encodeURIComponent(id)}${what}`;
}

export class Audits {
  constructor(private readonly transport: Transport) {}

  /** Requests an audit of message `id` as this (auditor) organization; FORBIDDEN for any other. */
  async request(input: AuditRequestInput): Promise<AuditRequestResult> {
    return this.transport.json<AuditRequestResult>('POST', '/v1/audits', {
      json: {
        id: input.id,
        reason: input.reason,
        ...(input.at === undefined ? {} : { topic: input.at.topic, partition: input.at.partition }),
      },
    });
  }

  /** Approves audit `requestId` as this organization (a member other than the auditor and the sender). */
  async approve(requestId: string, options: { at?: MessageLocation } = {}): Promise<AuditApproveResult> {
    return this.transport.json<AuditApproveResult>(
      'POST',
      `/v1/audits/${encodeURIComponent(requestId)}/approve`,
      {
        query: locationQuery(options.at),
      },
    );
  }

  /**
   * The offline audit record of request `requestId` (or of the newest audit of the escrowed message
   * with that id): its acceptance proof and the evidence of every request, approval, release and
   * outcome, checked by the connector; write it to a file and check it anywhere with
   * `ledgerbus verify FILE --network network.json` (or verifyAuditRecordBundle).
   */
  async record(requestId: string, options: { at?: MessageLocation } = {}): Promise<AuditRecordBundle> {
    return this.transport.json<AuditRecordBundle>(
      'GET',
      `/v1/audits/${encodeURIComponent(requestId)}/record`,
      { query: locationQuery(options.at) },
    );
  }

  /** Every audit request this organization's connector has seen, oldest first. */
  async list(): Promise<AuditSummary[]> {
    return (await this.transport.json<{ audits: AuditSummary[] }>('GET', '/v1/audits')).audits;
  }

  /** Message `id`'s escrow state: shares, attestations, placement, audits, whether it is retrievable. */
  async status(id: string, options: { at?: MessageLocation } = {}): Promise<EscrowStatus> {
    return this.transport.json<EscrowStatus>('GET', messagePath(id), { query: locationQuery(options.at) });
  }

  /**
   * Rebuilds message `id` for this organization's approved audit and records the outcome; resolves
   * when the plaintext is in the connector's storage (no time limit: a large message takes long).
   */
  async fetch(id: string, options: AuditFetchInput = {}): Promise<AuditFetchResult> {
    return this.transport.json<AuditFetchResult>('POST', messagePath(id, '/fetch'), {
      query: { ...locationQuery(options.at), requestId: options.requestId },
      timeoutMs: null,
    });
  }

  /** The rebuilt plaintext of a fetched message, streamed (Content-Length and Ledgerbus-Sha256 set). */
  async payload(id: string, options: AuditFetchInput = {}): Promise<ReadableStream<Uint8Array>> {
    const response = await this.transport.request('GET', messagePath(id, '/payload'), {
      query: { ...locationQuery(options.at), requestId: options.requestId },
    });
    if (response.body === null) return new Response(new Uint8Array(0)).body as ReadableStream<Uint8Array>;
    return response.body;
  }
}
