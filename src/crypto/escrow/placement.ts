import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { encodeCanonical } from '../../codec/index.js';
import { sha256 } from '../hash.js';

/*
 * Where escrowed chunks and key shares go (DESIGN §7, §11). BlockTorrent maps a chunk hash into the
 * holders' ranges with three hash functions (SHA3-256, SHA-384, SHA-512), one holder per function.
 * The three draws are independent, so with 4 holders they land on 3 distinct holders only
 * 4·3·2/4³ = 37.5% of the time, and on a single holder 6.25% of the time — one lost organization
 * then loses the chunk. We keep the paper's three hash functions but use them for rendezvous
 * (highest-random-weight) hashing: round r ranks the candidates not yet taken by
 * H_{r mod 3}(key || 0x00 || id) and takes the highest. Replicas are therefore always distinct, each
 * candidate is equally likely at each rank, and adding or removing one candidate moves only the
 * chunks it gains or loses. The result depends only on the key and the set of candidates, never
 * on their order, so anyone who knows a chunk's hash and the candidates can recompute its placement
 * (the sender does; the contract checks only that each chunk has distinct eligible holders, since
 * chunk hashes are in the encrypted master table).
 */

/** The paper's hash functions, by node:crypto name, in round order. */
export const placementHashes = ['sha3-256', 'sha384', 'sha512'] as const;

// Between the key and the id; keys have a fixed length per use, so the split is unambiguous.
const separator = Uint8Array.of(0);

/** The message a set of key shares belongs to. */
export interface ShareHolderContext {
  readonly network: string;
  readonly sender: string;
  readonly id: string;
}

/**
 * Every distinct candidate, ranked for `key` by rendezvous hashing (see above). Deterministic;
 * duplicates are dropped and input order does not matter.
 */
export function rankHolders(key: Uint8Array, candidates: readonly string[]): string[] {
  return rank(key, candidates, Number.POSITIVE_INFINITY);
}

/**
 * The `replicas` distinct organizations that keep the chunk whose SHA-256 is `chunkHash`, in rank
 * order. Throws LedgerbusError: BadConfig if `replicas` is not a positive integer;
 * NotEnoughHolders naming both numbers if there are fewer distinct candidates than `replicas`.
 */
export function placeChunk(chunkHash: Uint8Array, candidates: readonly string[], replicas: number): string[] {
  return rankEnough(chunkHash, candidates, replicas, 'chunk holders');
}

/**
 * The `count` organizations that receive the key shares of message `context.id`, in share order
 * (share i+1 goes to the i-th): the first `count` of rankHolders(SHA-256 of canonical CBOR of
 * {network, sender, id}). Throws as `placeChunk`.
 */
export function chooseShareHolders(
  context: ShareHolderContext,
  candidates: readonly string[],
  count: number,
): string[] {
  const key = sha256(encodeCanonical({ network: context.network, sender: context.sender, id: context.id }));
  return rankEnough(key, candidates, count, 'share holders');
}

/**
 * The paper's rule, kept to show why we do not use it: digest i of `chunkHash` under
 * placementHashes[i], read as a big-endian integer mod the number of (distinct) candidates, picks
 * holder i. Three holders, duplicates possible, order of `candidates` significant. Throws
 * LedgerbusError(NotEnoughHolders) if there is no candidate.
 */
export function naiveThreeHashPlacement(chunkHash: Uint8Array, candidates: readonly string[]): string[] {
  const distinct = [...new Set(candidates)];
  if (distinct.length === 0) {
    throw new LedgerbusError(
      ErrorCode.NotEnoughHolders,
      'placing a chunk needs at least 1 holder, 0 available',
    );
  }
  const modulus = BigInt(distinct.length);
  return placementHashes.map((name) => {
    const digest = createHash(name).update(chunkHash).digest();
    return distinct[Number(BigInt(`0x${digest.toString('hex')}`) % modulus)] as string;
  });
}

function rankEnough(key: Uint8Array, candidates: readonly string[], wanted: number, what: string): string[] {
  if (!Number.isSafeInteger(wanted) || wanted < 1) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `the number of ${what} must be a positive integer, got ${String(wanted)}`,
    );
  }
  const available = new Set(candidates).size;
  if (available < wanted) {
    throw new LedgerbusError(
      ErrorCode.NotEnoughHolders,
      `${wanted} distinct ${what} are needed but only ${available} organizations are available`,
    );
  }
  return rank(key, candidates, wanted);
}

/** The first `limit` of the ranking; scores are computed once per (hash, candidate). */
function rank(key: Uint8Array, candidates: readonly string[], limit: number): string[] {
  const remaining = [...new Set(candidates)];
  const scores = placementHashes.map(() => new Map<string, Buffer>());
  const ranked: string[] = [];
  for (let round = 0; remaining.length > 0 && ranked.length < limit; round++) {
    const hashIndex = round % placementHashes.length;
    const name = placementHashes[hashIndex] as (typeof placementHashes)[number];
    const cache = scores[hashIndex] as Map<string, Buffer>;
    let best = -1;
    let bestScore: Buffer | undefined;
    for (const [position, candidate] of remaining.entries()) {
      let score = cache.get(candidate);
      if (score === undefined) {
        score = createHash(name).update(key).update(separator).update(candidate, 'utf8').digest();
        cache.set(candidate, score);
      }
      const order = bestScore === undefined ? 1 : Buffer.compare(score, bestScore);
      // Equal scores would need a hash collision; the smaller id wins so the rule stays total.
      if (order > 0 || (order === 0 && candidate < (remaining[best] as string))) {
        best = position;
        bestScore = score;
      }
    }
    ranked.push(remaining[best] as string);
    remaining.splice(best, 1);
  }
  return ranked;
}
