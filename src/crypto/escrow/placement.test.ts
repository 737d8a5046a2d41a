import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { encodeCanonical } from '../../codec/index.js';
import {
  chooseShareHolders,
  naiveThreeHashPlacement,
  placeChunk,
  placementHashes,
  rankHolders,
} from './placement.js';

const orgs = ['org-a', 'org-b', 'org-c', 'org-d'];
const samples = 10_000;

/** Reproducible "random" chunk hashes: SHA-256 of a counter. */
function chunkHash(index: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`chunk ${index}`).digest());
}

function codeAndMessage(run: () => unknown): [string, string] | undefined {
  try {
    run();
  } catch (error) {
    if (isLedgerbusError(error)) return [error.code, error.message];
    throw error;
  }
  return undefined;
}

/** The rule restated: round r sorts what is left by H_{r mod 3}(key || 0 || id), highest first. */
function rankBySorting(key: Uint8Array, candidates: readonly string[]): string[] {
  const left = [...new Set(candidates)];
  const ranked: string[] = [];
  for (let round = 0; left.length > 0; round++) {
    const name = placementHashes[round % 3] as string;
    const score = (id: string) =>
      createHash(name).update(key).update(Uint8Array.of(0)).update(id).digest('hex');
    left.sort((a, b) => (score(a) < score(b) ? 1 : -1));
    ranked.push(left.shift() as string);
  }
  return ranked;
}

describe('rendezvous placement', () => {
  it('ranks by SHA3-256, SHA-384, SHA-512 in turn, highest score first (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 9 }),
        (key, candidates) => {
          expect(rankHolders(key, candidates)).toEqual(rankBySorting(key, candidates));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('depends on the set of candidates only: order and duplicates do not matter', () => {
    const key = chunkHash(1);
    const ranked = rankHolders(key, orgs);
    expect([...ranked].sort()).toEqual(orgs);
    expect(rankHolders(key, [...orgs].reverse())).toEqual(ranked);
    expect(rankHolders(key, [...orgs, ...orgs])).toEqual(ranked);
    expect(placeChunk(key, [...orgs, 'org-a'], 4)).toEqual(ranked);
  });

  it('moves nothing when a candidate that holds no replica leaves (property)', () => {
    const five = [...orgs, 'org-e'];
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        const placed = placeChunk(key, five, 3);
        for (const leaving of five.filter((org) => !placed.includes(org))) {
          expect(
            placeChunk(
              key,
              five.filter((org) => org !== leaving),
              3,
            ),
          ).toEqual(placed);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('puts 3 replicas on 3 distinct holders every time, and spreads the load evenly', () => {
    const load = new Map(orgs.map((org) => [org, 0]));
    const first = new Map(orgs.map((org) => [org, 0]));
    for (let index = 0; index < samples; index++) {
      const holders = placeChunk(chunkHash(index), orgs, 3);
      expect(new Set(holders).size).toBe(3);
      for (const holder of holders) load.set(holder, (load.get(holder) ?? 0) + 1);
      first.set(holders[0] as string, (first.get(holders[0] as string) ?? 0) + 1);
    }
    // Each org keeps 3/4 of the chunks and is the first holder of 1/4, within ±5%.
    for (const org of orgs) {
      expect(Math.abs((load.get(org) ?? 0) / (samples * 0.75) - 1)).toBeLessThan(0.05);
      expect(Math.abs((first.get(org) ?? 0) / (samples * 0.25) - 1)).toBeLessThan(0.05);
    }
  });

  it("shows the paper's independent draws: 3 distinct holders only 37.5% of the time, all on one 6.25%", () => {
    let distinct = 0;
    let allOnOne = 0;
    for (let index = 0; index < samples; index++) {
      const holders = naiveThreeHashPlacement(chunkHash(index), orgs);
      expect(holders).toHaveLength(3);
      const size = new Set(holders).size;
      if (size === 3) distinct += 1;
      if (size === 1) allOnOne += 1;
    }
    expect(distinct / samples).toBeGreaterThan(0.35);
    expect(distinct / samples).toBeLessThan(0.4);
    expect(allOnOne / samples).toBeGreaterThan(0.05);
    expect(allOnOne / samples).toBeLessThan(0.075);
  });

  it('reads each digest as a big-endian integer modulo the number of holders (paper rule)', () => {
    const key = chunkHash(7);
    const expected = placementHashes.map((name) => {
      const digest = createHash(name).update(key).digest();
      return orgs[Number(BigInt(`0x${digest.toString('hex')}`) % 4n)];
    });
    expect(naiveThreeHashPlacement(key, orgs)).toEqual(expected);
    expect(codeAndMessage(() => naiveThreeHashPlacement(key, []))?.[0]).toBe(ErrorCode.NotEnoughHolders);
  });

  it('refuses with NOT_ENOUGH_HOLDERS naming the numbers, and BAD_CONFIG for a bad count', () => {
    const failure = codeAndMessage(() => placeChunk(chunkHash(0), ['org-a', 'org-b', 'org-a'], 3));
    expect(failure?.[0]).toBe(ErrorCode.NotEnoughHolders);
    expect(failure?.[1]).toMatch(/3 distinct chunk holders are needed but only 2/);
    const shares = codeAndMessage(() => chooseShareHolders({ network: 'n', sender: 's', id: 'm' }, orgs, 5));
    expect(shares?.[0]).toBe(ErrorCode.NotEnoughHolders);
    expect(shares?.[1]).toMatch(/5 distinct share holders are needed but only 4/);
    for (const replicas of [0, -1, 1.5, Number.NaN]) {
      expect(codeAndMessage(() => placeChunk(chunkHash(0), orgs, replicas))?.[0]).toBe(ErrorCode.BadConfig);
    }
  });
});

describe('chooseShareHolders', () => {
  const context = { network: 'escrow-testnet', sender: 'org-a', id: 'message-1' };

  it('ranks by the SHA-256 of the canonical message context', () => {
    const key = new Uint8Array(createHash('sha256').update(encodeCanonical(context)).digest());
    expect(chooseShareHolders(context, orgs, 3)).toEqual(rankHolders(key, orgs).slice(0, 3));
    expect(chooseShareHolders(context, [...orgs].reverse(), 4)).toEqual(rankHolders(key, orgs));
  });

  it('varies with the message, so shares of different messages go to different holders', () => {
    const firsts = new Set<string>();
    for (let index = 0; index < 40; index++) {
      firsts.add(chooseShareHolders({ ...context, id: `message-${index}` }, orgs, 2)[0] as string);
    }
    expect(firsts.size).toBe(4);
  });
});
