/**
 * Where a compute-to-data job lives (DESIGN §8): its id, drawn by the requester's connector, and
 * the partition of the job topic its transactions go to. Both sides compute the partition from the
 * id alone, so an owner, a requester and a supervisor find the same job on the same partition
 * without asking anyone.
 */
import { createHash, randomBytes } from 'node:crypto';
import { partitionGroupId } from '../../contracts/registry.js';
import type { NetworkRegistry } from '../../registry/types.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';

/** The topic jobs go on unless the requester names another (the dev network's genesis has it). */
export const defaultJobTopic = 'datashare';

/**
 * Whether jobs may go on `topic`: `datashare`, or a topic named `datashare.<something>` (one per
 * community, say). Owners' connectors follow the job logs of these topics only, so that a network
 * with thousands of partitions does not cost every connector a long poll per partition.
 */
export function isJobTopic(topic: string): boolean {
  return topic === defaultJobTopic || topic.startsWith(`${defaultJobTopic}.`);
}

/** Lower-case base32 without the letters people misread (Crockford's alphabet). */
const base32Alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
/** 26 base32 digits hold 130 bits: room for the 128 random ones. */
const jobIdDigits = 26;

/**
 * A new job id: 'j' and 26 base32 digits of 128 random bits from node:crypto, so ids never collide
 * in practice and cannot be guessed (a guessed id would let nobody read a job — the node shows a
 * job to its parties only — but it would let them squat on it).
 */
export function newJobId(): string {
  let value = BigInt(`0x${randomBytes(16).toString('hex')}`);
  const digits: string[] = [];
  for (let index = 0; index < jobIdDigits; index++) {
    digits.push(base32Alphabet[Number(value & 31n)] as string);
    value >>= 5n;
  }
  return `j${digits.reverse().join('')}`;
}

/** The partition of a topic with `partitionCount` partitions that job `jobId` goes to: SHA-256(id)'s first 4 bytes mod the count. */
export function jobPartition(jobId: string, partitionCount: number): number {
  assert(Number.isSafeInteger(partitionCount) && partitionCount >= 1, 'a topic has at least one partition');
  const digest = createHash('sha256').update(jobId, 'utf8').digest();
  return digest.readUInt32BE(0) % partitionCount;
}

/** Job `jobId`'s partition group ("topic/p") on `topic`. TOPIC_NOT_FOUND when the registry has no such topic. */
export function jobGroup(registry: Pick<NetworkRegistry, 'topic'>, topic: string, jobId: string): string {
  if (!isJobTopic(topic)) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `topic ${topic} does not carry jobs: jobs go on ${defaultJobTopic} or a topic named ${defaultJobTopic}.<name>`,
    );
  }
  const described = registry.topic(topic);
  if (described === undefined) {
    throw new LedgerbusError(
      ErrorCode.TopicNotFound,
      `no topic ${topic} carries jobs here; jobs go on ${defaultJobTopic} unless a topic is named`,
    );
  }
  return partitionGroupId(topic, jobPartition(jobId, described.partitionCount));
}
