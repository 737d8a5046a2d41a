/**
 * What the global ledger indexes about each block so that any topic node can answer "where and when
 * was message X accepted, and when was it delivered to Y?" without the partition's own database:
 * read from the block's contract results, which the certificate covers.
 */
import { decodeTransactionResult } from '../contracts/results.js';
import type { Block } from '../ledger/block.js';

export interface AcceptedMessage {
  readonly id: string;
  readonly sender: string;
  readonly offset: number;
  readonly transactionIndex: number;
  readonly messageIndex: number;
}

export interface DeliveredMessage {
  readonly id: string;
  readonly recipient: string;
  readonly transactionIndex: number;
  readonly deliveryIndex: number;
}

export interface BlockIndex {
  readonly accepted: readonly AcceptedMessage[];
  readonly delivered: readonly DeliveredMessage[];
}

/** Reads a verified block's results. A result that does not decode is skipped (it indexes nothing). */
export function indexBlock(block: Block): BlockIndex {
  const accepted: AcceptedMessage[] = [];
  const delivered: DeliveredMessage[] = [];
  block.results.forEach((bytes, transactionIndex) => {
    let result;
    try {
      result = decodeTransactionResult(bytes);
    } catch {
      return;
    }
    if (result.status !== 'OK') return;
    if (result.type === 'publish') {
      result.messages.forEach((message, messageIndex) => {
        if (message.status === 'ACCEPTED') {
          accepted.push({
            id: message.id,
            sender: result.sender,
            offset: message.offset,
            transactionIndex,
            messageIndex,
          });
        }
      });
    } else if (result.type === 'confirmDelivery') {
      for (const delivery of result.deliveries) {
        if (delivery.status === 'DELIVERED') {
          delivered.push({
            id: delivery.id,
            recipient: result.recipient,
            transactionIndex,
            deliveryIndex: delivery.deliveryIndex,
          });
        }
      }
    }
  });
  return { accepted, delivered };
}
