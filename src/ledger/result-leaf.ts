/**
 * What a transaction's result contributes to its block's results root.
 *
 * A result in format 1 (every result before batched results existed, and every non-batched result
 * today) is its own leaf: its bytes are hashed as they are. A result in format 2 is a canonical CBOR
 * map with `format: 2`; its leaf is the same map with every top-level array replaced by the Merkle
 * root (RFC 9162, as everywhere) of the canonical encodings of its elements. So the outcome of one
 * message in a batch of thousands is proven by the small leaf and a path of log2(n) hashes, and no
 * proof carries the whole batch (DESIGN §11).
 *
 * The rule depends on the result bytes alone, so old blocks keep their roots and verify unchanged,
 * and a verifier that holds a whole result can always recompute its leaf.
 */
import { decodeCanonical, encodeCanonical } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { MerkleTree, merkleRoot } from '../crypto/index.js';
import { isLedgerbusError } from '../errors.js';

/** The `format` of a result whose arrays are committed by their Merkle roots. */
export const BATCHED_RESULT_FORMAT = 2 as const;

/** One array of a format-2 result: its elements' canonical encodings (the tree's leaves). */
export interface ResultList {
  readonly items: readonly Uint8Array[];
  readonly tree: MerkleTree;
}

/** A format-2 result taken apart: its leaf, and each top-level array with its tree for proofs. */
export interface BatchedResult {
  readonly leaf: Uint8Array;
  readonly lists: ReadonlyMap<string, ResultList>;
}

/** Bound on a result's size when it is decoded to find its leaf (a result is one block entry). */
const resultBytesMax = 4 * 1024 * 1024;

function isMap(value: CborValue): value is { readonly [key: string]: CborValue } {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

/**
 * Takes a format-2 result apart; undefined for any other bytes (format 1, or bytes that are not
 * canonical CBOR at all, which are then their own leaf like any format-1 result).
 */
export function batchedResult(result: Uint8Array): BatchedResult | undefined {
  let value: CborValue;
  try {
    value = decodeCanonical(result, { maxBytes: resultBytesMax });
  } catch (error) {
    if (isLedgerbusError(error)) return undefined;
    throw error;
  }
  if (!isMap(value) || value['format'] !== BATCHED_RESULT_FORMAT) return undefined;
  const leaf: Record<string, CborValue> = {};
  const lists = new Map<string, ResultList>();
  for (const [key, field] of Object.entries(value)) {
    if (Array.isArray(field)) {
      const items = (field as readonly CborValue[]).map((item) => encodeCanonical(item));
      const tree = new MerkleTree(items);
      lists.set(key, { items, tree });
      leaf[key] = tree.root;
    } else {
      leaf[key] = field;
    }
  }
  return { leaf: encodeCanonical(leaf), lists };
}

/** The leaf `result` contributes to its block's results root. */
export function resultLeaf(result: Uint8Array): Uint8Array {
  return batchedResult(result)?.leaf ?? result;
}

/** A block's results root: the Merkle root of its results' leaves, in transaction order. */
export function resultsRoot(results: readonly Uint8Array[]): Uint8Array {
  return merkleRoot(results.map(resultLeaf));
}
