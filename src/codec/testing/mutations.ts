/**
 * Byte mutations driven by fast-check, for property tests that feed decoders and contracts corrupted
 * versions of valid inputs: flip, set, insert and delete a byte, or truncate.
 */
import fc from 'fast-check';

const flip = fc.record({
  kind: fc.constant('flip' as const),
  at: fc.nat(),
  mask: fc.integer({ min: 1, max: 255 }),
});
const set = fc.record({
  kind: fc.constant('set' as const),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});
const insert = fc.record({
  kind: fc.constant('insert' as const),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});
const remove = fc.record({ kind: fc.constant('delete' as const), at: fc.nat() });
const truncate = fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() });

export const mutation = fc.oneof(flip, set, insert, remove, truncate);

/**
 * Only edits that always change a non-empty input (`set` may write the byte already there): for
 * properties that need the mutated input to differ, such as "a mutated valid transaction is refused".
 */
export const changingMutation = fc.oneof(flip, insert, remove, truncate);
export type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

/** One to four mutations: single edits find shallow bugs, stacked ones reach deeper schema paths. */
export const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

export function mutate(bytes: Uint8Array, change: Mutation): Uint8Array {
  // Inserting into an empty input is the only edit that still means something there.
  const at = bytes.length === 0 ? 0 : change.at % bytes.length;
  switch (change.kind) {
    case 'flip': {
      if (bytes.length === 0) return bytes;
      const copy = Uint8Array.from(bytes);
      copy[at] = (copy[at] as number) ^ change.mask;
      return copy;
    }
    case 'set': {
      if (bytes.length === 0) return bytes;
      const copy = Uint8Array.from(bytes);
      copy[at] = change.byte;
      return copy;
    }
    case 'insert':
      return Uint8Array.from([...bytes.subarray(0, at), change.byte, ...bytes.subarray(at)]);
    case 'delete':
      return Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
    case 'truncate':
      return Uint8Array.from(bytes.subarray(0, at));
  }
}

export function mutateAll(bytes: Uint8Array, changes: readonly Mutation[]): Uint8Array {
  return changes.reduce(mutate, bytes);
}
