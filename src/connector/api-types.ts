/**
 * What a connector offers its organization's applications, independent of transport: the REST/WS
 * server (`http-api.ts`) exposes exactly this, and the SDK (`ledgerbus/client`) calls it over HTTP.
 */
import type { Readable } from 'node:stream';
import type { ReceiptSummary } from '../proofs/index.js';

export interface OutgoingMessage {
  /** Partitioning key (Kafka semantics); null/undefined for keyless (sticky) assignment. */
  readonly key?: Uint8Array | null;
  /** The payload: streamed, never held whole. */
  readonly value: Readable;
  /** Recipient organization ids. */
  readonly to: readonly string[];
  readonly id?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, Uint8Array>>;
}

/** The acknowledgement of one message: where it is, and the proof (base64 canonical CBOR). */
export interface SendResult {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly height: number;
  readonly size: number;
  /** Acceptance proof: block header, certificate, inclusion proofs (base64 of canonical CBOR). */
  readonly proof: string;
}

/** A message stored in this organization's storage after verification and decryption. */
export interface ReceivedMessage {
  /** Local delivery sequence: consumers' cursors count in it. */
  readonly sequence: number;
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly sender: string;
  readonly size: number;
  /** Hex sha256 of the plaintext. */
  readonly sha256: string;
  readonly contentType: string;
  /** Base64 key, or null. */
  readonly key: string | null;
  readonly receivedAt: number;
  /** Acceptance proof (base64 of canonical CBOR). */
  readonly proof: string;
}

export interface MessageStatus {
  readonly id: string;
  readonly state: 'ACCEPTED' | 'COMPLETED' | 'EXPIRED';
  readonly sender: string;
  readonly partition: number;
  readonly offset: number;
  readonly recipients: readonly { readonly organization: string; readonly state: 'PENDING' | 'DELIVERED' }[];
}

export type ConnectorEvent =
  | { readonly type: 'message.received'; readonly message: ReceivedMessage }
  | { readonly type: 'message.failed'; readonly id: string; readonly code: string; readonly reason: string }
  | {
      readonly type: 'delivery.confirmed';
      readonly id: string;
      readonly recipient: string;
      readonly height: number;
    };

export interface ConnectorApi {
  readonly organization: string;
  /** One producer batch per partition (one signature each); results in message order. */
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<SendResult[]>;
  /** Received messages of `topic` with sequence > `after`, oldest first, at most `limit`; waits up to waitMs for one. */
  received(options: {
    topic?: string;
    after: number;
    limit: number;
    waitMs?: number;
  }): Promise<ReceivedMessage[]>;
  receivedMessage(id: string): ReceivedMessage | undefined;
  /** The decrypted payload of a received message. */
  payload(id: string): Promise<Readable>;
  /** Consumer-group cursor (committed local sequence), like Kafka committed offsets. */
  committedSequence(groupId: string, topic: string): number;
  /** The highest local delivery sequence so far (where a consumer that starts "from now" begins). */
  latestSequence(): number;
  commitSequence(groupId: string, topic: string, sequence: number): void;
  status(topic: string, id: string): Promise<MessageStatus>;
  /** The delivery-proof bundle for a message this org sent or received (JSON-ready). */
  receipt(topic: string, id: string): Promise<ReceiptBundle>;
  onEvent(listener: (event: ConnectorEvent) => void): () => void;
}

/** `ledgerbus receipt` output, checked offline by `ledgerbus verify`. */
export interface ReceiptBundle {
  readonly format: 'ledgerbus-receipt/v1';
  readonly network: string;
  readonly message: ReceiptSummary;
  readonly deliveredTo: readonly string[];
  /** Base64 of the canonical CBOR DeliveryReceipt. */
  readonly proof: string;
}
