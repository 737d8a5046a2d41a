/**
 * How a message is named. The SDT contract keeps a message id unique within its partition only, and
 * any member may create a topic, so an id alone may name several messages one organization received
 * (one per partition that delivered one). A received message is (topic, partition, id); whoever asks
 * by id alone gets the one message with it, or an AMBIGUOUS_MESSAGE_ID refusal that lists the
 * candidates — never a guess, which would let one sender's message stand in for another's.
 */
import { ErrorCode, LedgerbusError } from '../errors.js';

/** The partition a message is on. */
export interface MessageLocation {
  readonly topic: string;
  readonly partition: number;
}

/** One of several messages an id could mean, as the 409 answer lists them. */
export interface MessageCandidate extends MessageLocation {
  readonly id: string;
  /** The organization that sent it. */
  readonly sender: string;
}

/** AMBIGUOUS_MESSAGE_ID, carrying the candidates so that the REST answer can list them as data. */
export class AmbiguousMessageIdError extends LedgerbusError {
  constructor(
    readonly id: string,
    readonly candidates: readonly MessageCandidate[],
    /** What the caller should ask instead, e.g. "GET /v1/received/{topic}/{partition}/{id}". */
    remedy: string,
  ) {
    super(
      ErrorCode.AmbiguousMessageId,
      `${candidates.length} messages have id ${id} (${candidates
        .map((candidate) => `${candidate.topic}/${candidate.partition} from ${candidate.sender}`)
        .join(', ')}): ${remedy}`,
    );
  }
}

/** The topic of a partition group id "topic/partition" (topic names never contain '/'). */
export function topicOfGroup(groupId: string): string {
  return groupId.slice(0, groupId.lastIndexOf('/'));
}

/** The partition number of a partition group id "topic/partition". */
export function partitionOfGroup(groupId: string): number {
  return Number(groupId.slice(groupId.lastIndexOf('/') + 1));
}
