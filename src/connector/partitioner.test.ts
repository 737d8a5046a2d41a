// Kafka's own murmur2 vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
import { describe, expect, it } from 'vitest';
import { StickyPartitioner, murmur2, partitionForKey, toPositive } from './partitioner.js';

describe('Kafka default partitioner', () => {
  it('computes murmur2 exactly as Kafka does', () => {
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, expected] of cases) expect(murmur2(Buffer.from(key))).toBe(expected);
  });

  it('makes the hash positive by masking the sign bit, as Utils.toPositive', () => {
    expect(toPositive(-2147483648)).toBe(0);
    expect(partitionForKey(Buffer.from('foobar'), 7)).toBe(toPositive(-790332482) % 7);
  });

  it('keeps keyless messages on one partition until a batch is sent, then moves', () => {
    const sticky = new StickyPartitioner(() => 0.5);
    const first = sticky.partition('t', 4);
    expect(sticky.partition('t', 4)).toBe(first);
    sticky.next('t', 4);
    expect(sticky.partition('t', 4)).not.toBe(first);
  });
});
