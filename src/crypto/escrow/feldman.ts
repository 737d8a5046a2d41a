import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { bytesEqual } from '../../codec/bytes.js';

/*
 * Feldman verifiable secret sharing (Feldman 1987) over the prime-order subgroup of ed25519
 * (order L = 2^252 + 27742317777372353535851937790883648493), with @noble/curves doing all group and
 * field arithmetic. A dealer picks a random polynomial f(x) = a_0 + a_1·x + … + a_{k-1}·x^{k-1} over
 * Z_L with a_0 the secret, hands share i the value f(i), and publishes C_j = a_j·G. Anyone can then
 * check a share against the commitments, f(i)·G == Σ_j C_j·i^j, without learning anything about the
 * secret beyond C_0 = secret·G (a discrete log, so the secret stays hidden if it is uniform).
 *
 * Encodings: a scalar is 32 bytes little-endian and must be < L (noble's `Fn` encoding, also
 * RFC 8032's); a commitment is a 32-byte compressed point, accepted only in its canonical form.
 */

const Point = ed25519.Point;
const Fn = Point.Fn;
type EdwardsPoint = typeof Point.BASE;

/** Bytes of an encoded scalar (a secret, a coefficient or a share value). */
export const scalarBytes = 32;
/** Bytes of an encoded commitment (a compressed point). */
export const commitmentBytes = 32;
/** Largest share count (and threshold): the contract's `escrowLimits.sharesMax`. */
export const sharesMax = 16;

export interface Share {
  /** Evaluation point x = 1..n; share i+1 of a sharing goes to its i-th holder. */
  readonly index: number;
  /** f(index): a 32-byte little-endian scalar < L. */
  readonly value: Uint8Array;
}

export interface FeldmanSharing {
  /** a_0: a uniformly random non-zero scalar, 32 bytes little-endian. Never leaves the dealer in clear. */
  readonly secret: Uint8Array;
  /** k compressed points C_j = a_j·G, j = 0..k-1 (k = threshold). Public. */
  readonly commitments: Uint8Array[];
  /** n shares, shares[i] at index i+1. Each must be sealed to its holder. */
  readonly shares: Share[];
}

/**
 * A fresh random secret shared `threshold`-of-`count`: any `threshold` shares rebuild it, fewer
 * reveal nothing about it. Every coefficient is uniform in [1, L) (64 random bytes reduced mod L,
 * redrawn if zero — a zero top coefficient would quietly lower the threshold, and
 * `validCommitments` refuses identity commitments). Throws LedgerbusError(BadConfig) unless
 * 1 ≤ threshold ≤ count ≤ 16.
 */
export function splitSecret(threshold: number, count: number): FeldmanSharing {
  if (
    !Number.isSafeInteger(threshold) ||
    !Number.isSafeInteger(count) ||
    threshold < 1 ||
    threshold > count ||
    count > sharesMax
  ) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `escrow shares need 1 <= threshold <= count <= ${sharesMax}, got threshold ${String(threshold)} and count ${String(count)}`,
    );
  }
  const coefficients: bigint[] = [];
  for (let j = 0; j < threshold; j++) coefficients.push(randomNonZeroScalar());
  const commitments = coefficients.map((coefficient) => Point.BASE.multiply(coefficient).toBytes());
  const shares: Share[] = [];
  for (let index = 1; index <= count; index++) {
    shares.push({ index, value: Fn.toBytes(evaluatePolynomial(coefficients, BigInt(index))) });
  }
  const secret = coefficients[0];
  assert(secret !== undefined, 'a sharing has at least one coefficient');
  return { secret: Fn.toBytes(secret), commitments, shares };
}

/**
 * True when `share` lies on the polynomial `commitments` commit to: value·G == Σ_j C_j·index^j.
 * Never throws: a malformed commitment (not a canonical point of the prime-order subgroup, or the
 * identity), a value that is not a 32-byte scalar < L, or an index that is not an integer ≥ 1 all
 * give false. This is what a holder runs on its opened share and an auditor on every released one.
 */
export function verifyShare(commitments: readonly Uint8Array[], share: Share): boolean {
  const points = decodeCommitments(commitments);
  if (points === undefined) return false;
  if (!Number.isSafeInteger(share.index) || share.index < 1) return false;
  const value = decodeScalar(share.value);
  if (value === undefined) return false;
  const x = BigInt(share.index);
  // Horner's rule in the exponent: ((C_{k-1}·x + C_{k-2})·x + …)·x + C_0. Everything here is
  // public (commitments, index), so the faster variable-time multiplication is fine.
  let expected = Point.ZERO;
  for (let j = points.length - 1; j >= 0; j--) {
    expected = expected.multiplyUnsafe(x).add(points[j] as EdwardsPoint);
  }
  return multiplyBase(value).equals(expected);
}

/**
 * True when every commitment decodes, in canonical form, to a point of the prime-order subgroup
 * other than the identity, and there are 1..16 of them. Deterministic and side-effect free: the
 * escrow contract calls it on what a sender published. Small-order and mixed-order points (a
 * subgroup point plus torsion) are refused, so a verified share pins down one secret.
 */
export function validCommitments(commitments: readonly Uint8Array[]): boolean {
  return decodeCommitments(commitments) !== undefined;
}

/**
 * The secret that the first `threshold` shares of distinct indexes interpolate to (Lagrange at 0).
 * Shares with an index already seen are skipped. It does NOT check shares against commitments:
 * callers verify each share first (`verifyShare`) and may check the result with
 * `secretMatchesCommitments`. Throws LedgerbusError(BadConfig) if `threshold` is not 1..16, a share
 * is malformed (index not an integer ≥ 1, value not a scalar < L), or fewer than `threshold`
 * distinct indexes are given.
 */
export function combineShares(shares: readonly Share[], threshold: number): Uint8Array {
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > sharesMax) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `threshold must be an integer from 1 to ${sharesMax}, got ${String(threshold)}`,
    );
  }
  const points: { x: bigint; y: bigint }[] = [];
  const seen = new Set<number>();
  for (const share of shares) {
    if (points.length === threshold) break;
    const y = decodeScalar(share.value);
    if (!Number.isSafeInteger(share.index) || share.index < 1 || y === undefined) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `share ${String(share.index)} is malformed: its index must be an integer >= 1 and its value a ${scalarBytes}-byte scalar below the group order`,
      );
    }
    if (seen.has(share.index)) continue;
    seen.add(share.index);
    points.push({ x: BigInt(share.index), y });
  }
  if (points.length < threshold) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `rebuilding the secret needs ${threshold} shares of distinct indexes, got ${points.length}; collect more shares`,
    );
  }
  let secret = Fn.ZERO;
  for (const [i, point] of points.entries()) {
    // λ_i(0) = Π_{j≠i} x_j / (x_j − x_i); the indexes are distinct and < L, so no denominator is 0.
    let numerator = Fn.ONE;
    let denominator = Fn.ONE;
    for (const [j, other] of points.entries()) {
      if (j === i) continue;
      numerator = Fn.mul(numerator, Fn.create(other.x));
      denominator = Fn.mul(denominator, Fn.sub(Fn.create(other.x), Fn.create(point.x)));
    }
    secret = Fn.add(secret, Fn.mul(point.y, Fn.div(numerator, denominator)));
  }
  return Fn.toBytes(secret);
}

/**
 * True when secret·G == C_0, i.e. `secret` is the one the commitments were made for. False (never
 * throws) on malformed input, including invalid commitments.
 */
export function secretMatchesCommitments(secret: Uint8Array, commitments: readonly Uint8Array[]): boolean {
  const points = decodeCommitments(commitments);
  const scalar = decodeScalar(secret);
  if (points === undefined || scalar === undefined) return false;
  return multiplyBase(scalar).equals(points[0] as EdwardsPoint);
}

/** A scalar decoded from 32 little-endian bytes, or undefined unless it is < L. */
export function decodeScalar(bytes: Uint8Array): bigint | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length !== scalarBytes) return undefined;
  const value = bytesToNumberLE(bytes);
  return Fn.isValid(value) ? value : undefined;
}

function decodeCommitments(commitments: readonly Uint8Array[]): EdwardsPoint[] | undefined {
  if (!Array.isArray(commitments) || commitments.length < 1 || commitments.length > sharesMax)
    return undefined;
  const points: EdwardsPoint[] = [];
  for (const bytes of commitments) {
    const point = decodeCommitment(bytes);
    if (point === undefined) return undefined;
    points.push(point);
  }
  return points;
}

function decodeCommitment(bytes: unknown): EdwardsPoint | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length !== commitmentBytes) return undefined;
  let point: EdwardsPoint;
  try {
    // Strict RFC 8032 decoding (not ZIP-215): y < p and a valid x.
    point = Point.fromBytes(bytes, false);
  } catch {
    return undefined;
  }
  // Re-encoding must give the same bytes, so one point has one accepted encoding (this also refuses
  // the "negative zero" x encodings a lenient decoder would take).
  if (!bytesEqual(point.toBytes(), bytes)) return undefined;
  if (point.is0() || !point.isTorsionFree()) return undefined;
  return point;
}

/** scalar·G in constant time; noble's `multiply` refuses 0, whose product is the identity. */
function multiplyBase(scalar: bigint): EdwardsPoint {
  return scalar === 0n ? Point.ZERO : Point.BASE.multiply(scalar);
}

function evaluatePolynomial(coefficients: readonly bigint[], x: bigint): bigint {
  let result = Fn.ZERO;
  for (let j = coefficients.length - 1; j >= 0; j--) {
    result = Fn.add(Fn.mul(result, x), coefficients[j] as bigint);
  }
  return result;
}

function randomNonZeroScalar(): bigint {
  // 512 random bits reduced mod L: the bias is about 2^-259, far below anything observable.
  for (;;) {
    const scalar = Fn.create(bytesToNumberLE(randomBytes(64)));
    if (scalar !== 0n) return scalar;
  }
}
