import { randomBytes } from 'node:crypto';
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { bytesEqual, fromHex } from '../../codec/bytes.js';
import {
  combineShares,
  secretMatchesCommitments,
  splitSecret,
  validCommitments,
  verifyShare,
} from './feldman.js';
import type { Share } from './feldman.js';

const Point = ed25519.Point;
const Fn = Point.Fn;

/** `value` + `delta` mod L, re-encoded: a share that is well formed but wrong. */
function shifted(value: Uint8Array, delta: bigint): Uint8Array {
  return Fn.toBytes(Fn.add(Fn.fromBytes(value), Fn.create(delta)));
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('Feldman sharing', () => {
  it('rebuilds the secret from any k of n verified shares, and k-1 shares give another value (property)', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 7 })
          .chain((count) => fc.tuple(fc.integer({ min: 1, max: count }), fc.constant(count), fc.integer())),
        fc.infiniteStream(fc.nat()),
        ([threshold, count], picks) => {
          const sharing = splitSecret(threshold, count);
          expect(sharing.commitments).toHaveLength(threshold);
          expect(sharing.shares.map((share) => share.index)).toEqual(
            Array.from({ length: count }, (_, index) => index + 1),
          );
          expect(validCommitments(sharing.commitments)).toBe(true);
          expect(secretMatchesCommitments(sharing.secret, sharing.commitments)).toBe(true);
          for (const share of sharing.shares) expect(verifyShare(sharing.commitments, share)).toBe(true);

          // A random subset of exactly k shares, in random order.
          const pool = [...sharing.shares];
          const chosen: Share[] = [];
          const iterator = picks[Symbol.iterator]();
          while (chosen.length < threshold) {
            const pick = iterator.next().value as number;
            chosen.push(...pool.splice(pick % pool.length, 1));
          }
          expect(bytesEqual(combineShares(chosen, threshold), sharing.secret)).toBe(true);

          if (threshold > 1) {
            const fewer = chosen.slice(1);
            const wrong = combineShares(fewer, threshold - 1);
            expect(bytesEqual(wrong, sharing.secret)).toBe(false);
            expect(secretMatchesCommitments(wrong, sharing.commitments)).toBe(false);
            expect(codeOf(() => combineShares(fewer, threshold))).toBe(ErrorCode.BadConfig);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('uses the first k distinct indexes and skips repeated ones', () => {
    const { secret, shares } = splitSecret(3, 5);
    const [first, second, third] = shares as [Share, Share, Share];
    // The repeated index carries a wrong value: it must be skipped, not used.
    const repeated = { index: first.index, value: shifted(first.value, 1n) };
    expect(bytesEqual(combineShares([first, repeated, second, third], 3), secret)).toBe(true);
    expect(codeOf(() => combineShares([first, repeated, second], 3))).toBe(ErrorCode.BadConfig);
  });

  it('refuses malformed shares and thresholds when combining', () => {
    const { shares } = splitSecret(2, 3);
    const [first, second] = shares as [Share, Share];
    expect(codeOf(() => combineShares([{ index: 0, value: first.value }, second], 2))).toBe(
      ErrorCode.BadConfig,
    );
    expect(codeOf(() => combineShares([{ index: 1, value: new Uint8Array(32).fill(0xff) }, second], 2))).toBe(
      ErrorCode.BadConfig,
    );
    expect(codeOf(() => combineShares([first, second], 0))).toBe(ErrorCode.BadConfig);
    expect(codeOf(() => combineShares([first, second], 17))).toBe(ErrorCode.BadConfig);
  });

  it('is a 1-of-n sharing when the threshold is 1: every share is the secret', () => {
    const { secret, shares } = splitSecret(1, 4);
    for (const share of shares) expect(bytesEqual(share.value, secret)).toBe(true);
  });

  it('refuses thresholds and counts outside 1 <= k <= n <= 16', () => {
    for (const [threshold, count] of [
      [0, 1],
      [2, 1],
      [1, 17],
      [17, 17],
      [1.5, 2],
      [1, Number.NaN],
    ] as const) {
      expect(codeOf(() => splitSecret(threshold, count))).toBe(ErrorCode.BadConfig);
    }
    expect(splitSecret(16, 16).shares).toHaveLength(16);
  });

  it('draws a different secret every time', () => {
    const secrets = new Set(
      Array.from({ length: 8 }, () => Buffer.from(splitSecret(1, 1).secret).toString('hex')),
    );
    expect(secrets.size).toBe(8);
  });
});

describe('verifyShare', () => {
  const sharing = splitSecret(3, 5);
  const share = sharing.shares[1] as Share;

  it('accepts the dealt shares only', () => {
    expect(verifyShare(sharing.commitments, share)).toBe(true);
    expect(verifyShare(sharing.commitments, { index: share.index, value: shifted(share.value, 1n) })).toBe(
      false,
    );
    expect(verifyShare(sharing.commitments, { index: share.index + 1, value: share.value })).toBe(false);
    expect(verifyShare(splitSecret(3, 5).commitments, share)).toBe(false);
  });

  it('fails when any commitment is replaced by another valid point', () => {
    for (let j = 0; j < sharing.commitments.length; j++) {
      const tampered = [...sharing.commitments];
      tampered[j] = Point.BASE.multiply(Fn.create(BigInt(7 + j))).toBytes();
      expect(validCommitments(tampered)).toBe(true);
      expect(verifyShare(tampered, share)).toBe(false);
    }
    // Dropping the top commitment lowers the degree: the share no longer fits.
    expect(verifyShare(sharing.commitments.slice(0, 2), share)).toBe(false);
  });

  it('returns false, never throws, on malformed input', () => {
    const overOrder = new Uint8Array(32).fill(0xff);
    const orderItself = Fn.toBytes(0n).map((_, index) => Number((Fn.ORDER >> BigInt(8 * index)) & 0xffn));
    expect(verifyShare(sharing.commitments, { index: share.index, value: overOrder })).toBe(false);
    expect(verifyShare(sharing.commitments, { index: share.index, value: orderItself })).toBe(false);
    expect(verifyShare(sharing.commitments, { index: share.index, value: share.value.subarray(1) })).toBe(
      false,
    );
    expect(verifyShare(sharing.commitments, { index: 0, value: share.value })).toBe(false);
    expect(verifyShare(sharing.commitments, { index: -1, value: share.value })).toBe(false);
    expect(verifyShare(sharing.commitments, { index: 1.5, value: share.value })).toBe(false);
    expect(verifyShare([...sharing.commitments.slice(0, 2), new Uint8Array(32).fill(0xff)], share)).toBe(
      false,
    );
    expect(verifyShare([], share)).toBe(false);
  });

  it('accepts a zero share value when the commitments say so', () => {
    // f(x) = a·(x − 1): C_0 = −a·G, C_1 = a·G, and share 1 is 0. Legitimate, if unusual.
    const a = 12345n;
    const commitments = [Point.BASE.multiply(a).negate().toBytes(), Point.BASE.multiply(a).toBytes()];
    expect(verifyShare(commitments, { index: 1, value: new Uint8Array(32) })).toBe(true);
    expect(verifyShare(commitments, { index: 2, value: Fn.toBytes(a) })).toBe(true);
  });
});

describe('validCommitments', () => {
  const valid = splitSecret(2, 3).commitments;

  it('rejects empty, too many, and wrongly sized lists', () => {
    expect(validCommitments([])).toBe(false);
    expect(validCommitments(Array.from({ length: 17 }, () => valid[0] as Uint8Array))).toBe(false);
    expect(validCommitments([valid[0] as Uint8Array, new Uint8Array(31)])).toBe(false);
    expect(validCommitments([valid[0] as Uint8Array, new Uint8Array(33)])).toBe(false);
  });

  it('rejects bytes that are not a point', () => {
    // y = 2 has no x on the curve (x² = (y²−1)/(dy²+1) is a non-residue).
    const notOnCurve = new Uint8Array(32);
    notOnCurve[0] = 2;
    expect(() => Point.fromBytes(notOnCurve)).toThrow();
    expect(validCommitments([notOnCurve])).toBe(false);
    let garbageRejected = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (!validCommitments([randomBytes(32)])) garbageRejected += 1;
    }
    // Random bytes are a valid subgroup point with probability about 1/16.
    expect(garbageRejected).toBeGreaterThan(10);
  });

  it('rejects the identity and every small-order point, in any position', () => {
    for (const hex of ED25519_TORSION_SUBGROUP) {
      const torsion = fromHex(hex);
      expect(validCommitments([torsion])).toBe(false);
      expect(validCommitments([valid[0] as Uint8Array, torsion])).toBe(false);
    }
    expect(validCommitments([Point.ZERO.toBytes()])).toBe(false);
  });

  it('rejects mixed-order points (a subgroup point plus torsion)', () => {
    const point = Point.fromBytes(valid[0] as Uint8Array);
    for (const hex of ED25519_TORSION_SUBGROUP.slice(1)) {
      const mixed = point.add(Point.fromBytes(fromHex(hex))).toBytes();
      expect(validCommitments([mixed])).toBe(false);
    }
  });

  it('accepts commitments of a fresh sharing', () => {
    expect(validCommitments(valid)).toBe(true);
  });
});
