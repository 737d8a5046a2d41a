/**
 * Confirming deliveries on-chain (DESIGN step 18): what a partition's consumer stored is recorded
 * as delivered in a confirmDelivery transaction, one per sender (a sender's receipt carries the
 * whole transaction, so it names no other sender's messages), and marked confirmed locally after.
 */
import { randomBytes } from 'node:crypto';
import { decodeTransactionResult } from '../../contracts/results.js';
import { encodeConfirmDelivery, nonceBytes } from '../../contracts/transactions.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { AcceptedMessage } from '../../proofs/index.js';
import type { ConnectorContext } from '../context.js';
import type { TransactionSubmitter } from '../session/submitter.js';
import { carriesPart } from '../parts.js';

/** Deliveries one confirmDelivery transaction carries at most. */
const confirmDeliveriesMax = 1024;

export interface DeliveryConfirmerOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'database' | 'logger' | 'lifecycle' | 'events'
> {
  readonly submitter: TransactionSubmitter;
}

export class DeliveryConfirmer {
  constructor(private readonly options: DeliveryConfirmerOptions) {}

  /**
   * Confirms on-chain every stored message of `accepted` not confirmed yet, in one transaction per
   * sender and 1024 messages, and marks each confirmed in the database AFTER its transaction
   * committed (a failure leaves it unconfirmed, to be confirmed with the next page).
   */
  async confirmStored(accepted: readonly AcceptedMessage[]): Promise<void> {
    const { database } = this.options;
    const unconfirmed = accepted.filter(
      (message) =>
        (
          database.received(message.partitionId, message.id) ??
          database.receivedPart(message.partitionId, message.id)
        )?.confirmed === 0,
    );
    const bySender = new Map<string, AcceptedMessage[]>();
    for (const message of unconfirmed) {
      bySender.set(message.sender, [...(bySender.get(message.sender) ?? []), message]);
    }
    for (const messages of bySender.values()) {
      for (let start = 0; start < messages.length; start += confirmDeliveriesMax) {
        const batch = messages.slice(start, start + confirmDeliveriesMax);
        await this.confirm(batch);
        // One transaction: one fsync for the batch rather than one per message.
        database.transaction(() => {
          for (const message of batch) database.markConfirmed(message.partitionId, message.id);
        });
      }
    }
  }

  /**
   * Records the deliveries of `messages` (one partition) on-chain in one confirmDelivery and emits
   * `delivery.confirmed` for each the ledger counted. A refused transaction is MESSAGE_REJECTED.
   */
  async confirm(messages: readonly AcceptedMessage[]): Promise<void> {
    const first = messages[0];
    if (first === undefined) return;
    const operation = encodeConfirmDelivery(
      {
        recipient: this.options.organization,
        nonce: randomBytes(nonceBytes),
        timestamp: this.options.lifecycle.clock.now(),
        deliveries: messages.map((message) => ({ id: message.id, contentRoot: message.contentRoot })),
      },
      this.options.signer,
    );
    const answer = await this.options.submitter.submit(first.partitionId, operation);
    const result = decodeTransactionResult(answer.evidence.result);
    if (result.status !== 'OK' || result.type !== 'confirmDelivery') {
      throw new LedgerbusError(
        ErrorCode.MessageRejected,
        `confirmDelivery refused: ${result.status === 'REJECTED' ? result.reason : 'unexpected result'}`,
        result.status === 'REJECTED' ? { details: { reason: result.reason } } : {},
      );
    }
    result.deliveries.forEach((delivery, index) => {
      const { id, topic, partition } = messages[index] as AcceptedMessage;
      // A part of a large value is confirmed like any message, but announced only with its message.
      const headers = messages[index]?.metadata.headers;
      const part = headers !== undefined && carriesPart(headers);
      if (delivery.status === 'DELIVERED' && part) return;
      if (delivery.status === 'DELIVERED') {
        this.options.events.emit({
          type: 'delivery.confirmed',
          id,
          topic,
          partition,
          recipient: this.options.organization,
          height: delivery.height,
        });
      } else {
        // Expired before we stored it, typically: the payload is kept, the ledger says why.
        this.options.logger.warn({ id, reason: delivery.reason }, 'delivery confirmation refused');
      }
    });
  }
}
