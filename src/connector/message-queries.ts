/**
 * Questions about one message that the node answers from the ledger: its status, and its delivery
 * receipt (verified here before it is handed out), for messages this organization sent or
 * received, or, for a supervisor, any message of a topic.
 */
import type { CborValue } from '../codec/index.js';
import { partitionGroupId } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import {
  acceptanceProofSchema,
  deliveryEvidenceSchema,
  deliveryReceiptOf,
  encodeDeliveryReceipt,
  receiptSummary,
  verifyDeliveryReceipt,
} from '../proofs/index.js';
import type { MessageStatus, ReceiptBundle, ReceiptSource } from './api-types.js';
import type { ConnectorContext } from './context.js';
import { AmbiguousMessageIdError, partitionOfGroup } from './message-location.js';
import type { NodeSession } from './session/node-session.js';

export interface MessageQueriesOptions extends Pick<
  ConnectorContext,
  'organization' | 'registry' | 'trust' | 'database'
> {
  readonly session: NodeSession;
}

export class MessageQueries {
  constructor(private readonly options: MessageQueriesOptions) {}

  /** The ledger's state of message `id` of `topic` and of each of its recipients (see groupOf). */
  async status(topic: string, id: string, options: { partition?: number } = {}): Promise<MessageStatus> {
    const group = this.groupOf(topic, id, options.partition);
    const answer = await this.options.session.call('message', { group, id });
    return {
      id,
      state: answer.state,
      sender: answer.sender,
      partition: partitionOfGroup(group),
      offset: answer.offset,
      recipients: answer.recipients.map((recipient) => ({
        organization: recipient.organization,
        state: recipient.state,
      })),
    };
  }

  /**
   * The delivery receipt of message `id` of `topic` from `options.source` (default `best`),
   * verified against the registry's trust and checked to be of that very message (BAD_PROOF if not).
   */
  async receipt(
    topic: string,
    id: string,
    options: { source?: ReceiptSource; partition?: number } = {},
  ): Promise<ReceiptBundle> {
    const { session } = this.options;
    // Connected first, as both sources are asked on the same connection.
    await session.controlPeer();
    const source = options.source ?? 'best';
    // The global ledger can find a message this connector neither sent nor received (a supervisor's
    // question) without knowing its partition; when the partition is known, both sources are pinned
    // to it, or the node could answer with another partition's message of the same id.
    let group: string | undefined;
    try {
      group = this.groupOf(topic, id, options.partition);
    } catch (error) {
      if (source !== 'global' || !isLedgerbusError(error, ErrorCode.MessageNotFound)) throw error;
    }
    // From the topic's global ledger any node of the topic answers, hosting the partition or not.
    type Answer = { readonly acceptance: CborValue; readonly deliveries: readonly CborValue[] };
    const fromGlobal = (): Promise<Answer> =>
      session.call('globalReceipt', { topic, id, ...(group === undefined ? {} : { partition: group }) });
    const fromPartition = (): Promise<Answer> => session.call('receipt', { group: group as string, id });
    let answer: Answer;
    let answeredFrom: 'global' | 'partition';
    if (source === 'global') [answer, answeredFrom] = [await fromGlobal(), 'global'];
    else if (source === 'partition') [answer, answeredFrom] = [await fromPartition(), 'partition'];
    else {
      const [global, partition] = await Promise.allSettled([fromGlobal(), fromPartition()]);
      const deliveries = (settled: PromiseSettledResult<Answer>): number =>
        settled.status === 'fulfilled' ? settled.value.deliveries.length : -1;
      if (global.status === 'rejected' && partition.status === 'rejected') throw partition.reason;
      [answer, answeredFrom] =
        deliveries(global) >= deliveries(partition)
          ? [(global as PromiseFulfilledResult<Answer>).value, 'global']
          : [(partition as PromiseFulfilledResult<Answer>).value, 'partition'];
    }
    const receipt = deliveryReceiptOf(
      acceptanceProofSchema.parse(answer.acceptance, 'receipt.acceptance'),
      answer.deliveries.map((evidence, index) =>
        deliveryEvidenceSchema.parse(evidence, `receipt.deliveries[${index}]`),
      ),
    );
    const verified = verifyDeliveryReceipt(receipt, this.options.trust);
    const message = verified.message;
    if (
      message.id !== id ||
      message.topic !== topic ||
      (group !== undefined && message.partitionId !== group)
    ) {
      throw new LedgerbusError(
        ErrorCode.BadProof,
        `the node proved ${message.partitionId}/${message.id}, not ${group ?? topic}/${id}`,
      );
    }
    return {
      format: 'ledgerbus-receipt/v1',
      network: this.options.registry.network,
      source: answeredFrom,
      message: receiptSummary(message),
      deliveredTo: verified.deliveries.map((delivery) => delivery.recipient),
      proof: Buffer.from(encodeDeliveryReceipt(receipt)).toString('base64'),
    };
  }

  /**
   * The partition ("topic/p") of message `id` of `topic` that this organization sent or received:
   * `partition` when given; else the one partition where it has such a message (AMBIGUOUS_MESSAGE_ID
   * when it has several: its own ids are unique per topic, but what others sent it is unique per
   * partition only); else partition 0 of a one-partition topic (a supervisor may ask about anything).
   */
  groupOf(topic: string, id: string, partition?: number): string {
    const { database } = this.options;
    if (partition !== undefined) return partitionGroupId(topic, partition);
    const candidates = new Map<string, { partition: number; sender: string }>();
    const sent = database.sent(topic, id);
    if (sent !== undefined)
      candidates.set(sent.group_id, { partition: sent.partition, sender: this.options.organization });
    for (const row of database.receivedWithId(id, topic)) {
      candidates.set(row.group_id, { partition: row.partition, sender: row.sender });
    }
    if (candidates.size > 1) {
      throw new AmbiguousMessageIdError(
        id,
        [...candidates.values()].map((candidate) => ({ topic, id, ...candidate })),
        `name the partition (?partition=N)`,
      );
    }
    const [only] = candidates.keys();
    if (only !== undefined) return only;
    const partitions = this.options.registry.topic(topic)?.partitionCount;
    if (partitions === 1) return `${topic}/0`;
    throw new LedgerbusError(
      ErrorCode.MessageNotFound,
      `message ${id} of ${topic} was neither sent nor received by ${this.options.organization}`,
    );
  }
}
