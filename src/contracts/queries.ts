/**
 * Read-only queries over a partition's committed SDT state, for the node's client API (fetch
 * authorization, consumers reading from an offset, the dashboard). They never write.
 */
import { assert } from '../errors.js';
import type { ContractState } from './state.js';
import { PartitionStore } from './store.js';
import type { MessageRecord, MessageStatus } from './store.js';
import type { MessageMetadata } from './transactions.js';

/** Largest page `messagesByOffset` returns. */
export const queryMessagesMax = 1000;

export interface RecipientDelivery {
  readonly organization: string;
  readonly state: 'PENDING' | 'DELIVERED';
  /** Block height and contract time of the confirmation, when DELIVERED. */
  readonly height?: number;
  readonly confirmedAt?: number;
  /** Where in that block the confirmation is (for the delivery proof). */
  readonly transactionIndex?: number;
  readonly deliveryIndex?: number;
}

export interface MessageView {
  readonly metadata: MessageMetadata;
  readonly sender: string;
  /** ACCEPTED until every recipient confirms (COMPLETED) or the TTL passes first (EXPIRED). */
  readonly state: MessageStatus;
  readonly offset: number;
  /** Block in which the message was accepted, and where in it (for the inclusion proof). */
  readonly height: number;
  readonly transactionIndex: number;
  readonly messageIndex: number;
  readonly configEpoch: number;
  readonly acceptedAt: number;
  readonly deadline: number;
  /** Height and contract time at which it completed or expired. */
  readonly closedHeight?: number;
  readonly closedAt?: number;
  /** One per recipient, in the message's recipient order. */
  readonly recipients: readonly RecipientDelivery[];
}

export interface PartitionStatus {
  /** Last executed block height (0 before the first). */
  readonly height: number;
  /** Contract time: the largest block timestamp executed. */
  readonly time: number;
  /** Offset the next accepted message will get; also the number of messages accepted. */
  readonly nextOffset: number;
}

export function partitionStatus(state: ContractState, partitionId: string): PartitionStatus {
  const { height, time, nextOffset } = new PartitionStore(state, partitionId).meta();
  return { height, time, nextOffset };
}

/** The message `id` accepted on this partition, or undefined if it never was. */
export function messageById(state: ContractState, partitionId: string, id: string): MessageView | undefined {
  const record = new PartitionStore(state, partitionId).message(id);
  return record === undefined ? undefined : view(record);
}

/**
 * Messages at offsets [fromOffset, toOffset), at most `limit` (default and maximum
 * `queryMessagesMax`) of them, in offset order. `nextOffset` is where the next page starts; it
 * equals `toOffset` (or the partition's end) when the range is exhausted.
 */
export function messagesByOffset(
  state: ContractState,
  partitionId: string,
  range: { fromOffset: number; toOffset?: number; limit?: number },
): { messages: MessageView[]; nextOffset: number } {
  assert(Number.isSafeInteger(range.fromOffset) && range.fromOffset >= 0, 'fromOffset');
  const store = new PartitionStore(state, partitionId);
  const end = Math.min(range.toOffset ?? Number.MAX_SAFE_INTEGER, store.meta().nextOffset);
  const limit = Math.max(0, Math.min(range.limit ?? queryMessagesMax, queryMessagesMax));
  const messages: MessageView[] = [];
  let offset = range.fromOffset;
  for (; offset < end && messages.length < limit; offset++) {
    const id = store.messageIdAt(offset);
    assert(id !== undefined, `offset ${offset} below the partition end has no message`);
    const record = store.message(id);
    assert(record !== undefined, `offset ${offset} names unknown message ${id}`);
    messages.push(view(record));
  }
  return { messages, nextOffset: Math.max(offset, range.fromOffset) };
}

function view(record: MessageRecord): MessageView {
  return {
    metadata: record.metadata,
    sender: record.sender,
    state: record.status,
    offset: record.offset,
    height: record.height,
    transactionIndex: record.transactionIndex,
    messageIndex: record.messageIndex,
    configEpoch: record.configEpoch,
    acceptedAt: record.acceptedAt,
    deadline: record.deadline,
    ...(record.closedHeight === null ? {} : { closedHeight: record.closedHeight }),
    ...(record.closedAt === null ? {} : { closedAt: record.closedAt }),
    recipients: record.metadata.recipients.map((organization): RecipientDelivery => {
      const delivery = record.deliveries.find((candidate) => candidate.recipient === organization);
      return delivery === undefined
        ? { organization, state: 'PENDING' }
        : {
            organization,
            state: 'DELIVERED',
            height: delivery.height,
            confirmedAt: delivery.confirmedAt,
            transactionIndex: delivery.transactionIndex,
            deliveryIndex: delivery.deliveryIndex,
          };
    }),
  };
}
