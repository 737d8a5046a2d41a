/**
 * Kafka's default partitioner (DESIGN §2): murmur2 over the key bytes, made positive, modulo the
 * partition count — the same partition Kafka's Java client picks for the same key. Keyless messages
 * stick to one partition per producer until it is told to move (sticky assignment).
 */

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), seed 0x9747b28c. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const m = 0x5bd1e995;
  const r = 24;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4]! & 0xff) |
      ((data[i4 + 1]! & 0xff) << 8) |
      ((data[i4 + 2]! & 0xff) << 16) |
      ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length4 * 4;
  const remaining = length % 4;
  if (remaining === 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (remaining >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (remaining >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's Utils.toPositive: clears the sign bit (not Math.abs, which differs for MIN_VALUE). */
export function toPositive(value: number): number {
  return value & 0x7fffffff;
}

export function partitionForKey(key: Uint8Array, partitionCount: number): number {
  return toPositive(murmur2(key)) % partitionCount;
}

/** Sticky assignment for keyless messages: one partition until `next()` moves on. */
export class StickyPartitioner {
  /** One per topic published to (topics of the registry). */
  private readonly current = new Map<string, number>();

  constructor(private readonly random: () => number = Math.random) {}

  partition(topic: string, partitionCount: number): number {
    let partition = this.current.get(topic);
    if (partition === undefined || partition >= partitionCount) {
      partition = Math.floor(this.random() * partitionCount);
      this.current.set(topic, partition);
    }
    return partition;
  }

  /** Called when a batch for `topic` is sent: the next keyless batch goes elsewhere (KIP-480). */
  next(topic: string, partitionCount: number): void {
    const partition = this.current.get(topic);
    if (partition === undefined || partitionCount < 2) return;
    this.current.set(
      topic,
      (partition + 1 + Math.floor(this.random() * (partitionCount - 1))) % partitionCount,
    );
  }
}
