/**
 * This machine's single-thread Ed25519 verification rate, measured with the same `verify` the
 * replicas use (src/crypto: domain hash, cached public key, node:crypto), so a benchmark can state
 * its bound in verifications and compare against a number taken in the same run.
 *
 * On a shared machine the rate moves with whatever else runs, so a benchmark should not rely on one
 * measurement taken before it starts: `VerifyRateSampler` also takes short samples in between the
 * benchmark's own work and reports the rate over all of them.
 */
import { performance } from 'node:perf_hooks';
import { SigningDomain, sha256, signingKeyFromSeed } from '../../src/crypto/index.js';

export interface VerifyRate {
  readonly verifiesPerSecond: number;
  readonly verifies: number;
  readonly seconds: number;
  readonly samples: number;
  /** Slowest and fastest sample, to show how steady the machine was. */
  readonly sampleRateMin: number;
  readonly sampleRateMax: number;
}

const signatureType = 'bench-verify';
/** Replicas verify in their network's domain; which network does not change the cost. */
const domain = SigningDomain.of('ledgerbus-bench');

export class VerifyRateSampler {
  private readonly signed: { publicKey: Uint8Array; payload: Uint8Array; signature: Uint8Array }[];
  private verifies = 0;
  private seconds = 0;
  private samples = 0;
  private sampleRateMin = Number.POSITIVE_INFINITY;
  private sampleRateMax = 0;
  private cursor = 0;

  /** Pre-makes signatures from a few keys (a replica sees a few signers over and over). */
  constructor(options: { payloadBytes?: number } = {}) {
    const payloadBytes = options.payloadBytes ?? 128;
    this.signed = Array.from({ length: 64 }, (_, i) => {
      const seed = sha256(new TextEncoder().encode(`ledgerbus-bench/verify-key-${i % 8}`));
      const key = signingKeyFromSeed(seed);
      const payload = new Uint8Array(payloadBytes).fill(i);
      return { publicKey: key.publicKey, payload, signature: domain.sign(key, signatureType, payload) };
    });
    this.verifyFor(50); // warm-up: JIT and the public-key cache, not counted
  }

  /**
   * Verifies for about `durationMs` and adds the result to the running total. Throws if a valid
   * signature fails, since the number would then mean nothing. Returns this sample's rate.
   */
  sample(durationMs: number): number {
    const { verifies, seconds } = this.verifyFor(durationMs);
    this.verifies += verifies;
    this.seconds += seconds;
    this.samples += 1;
    const rate = verifies / seconds;
    this.sampleRateMin = Math.min(this.sampleRateMin, rate);
    this.sampleRateMax = Math.max(this.sampleRateMax, rate);
    return rate;
  }

  /** The rate over every sample so far. */
  rate(): VerifyRate {
    if (this.samples === 0) throw new Error('VerifyRateSampler: no sample taken');
    return {
      verifiesPerSecond: this.verifies / this.seconds,
      verifies: this.verifies,
      seconds: this.seconds,
      samples: this.samples,
      sampleRateMin: this.sampleRateMin,
      sampleRateMax: this.sampleRateMax,
    };
  }

  private verifyFor(durationMs: number): { verifies: number; seconds: number } {
    const start = performance.now();
    let verifies = 0;
    let elapsed: number;
    do {
      for (let i = 0; i < 32; i++) {
        const entry = this.signed[this.cursor++ % this.signed.length]!;
        if (!domain.verify(entry.publicKey, signatureType, entry.payload, entry.signature)) {
          throw new Error('Ed25519 rate: a valid signature did not verify');
        }
        verifies += 1;
      }
      elapsed = performance.now() - start;
    } while (elapsed < durationMs);
    return { verifies, seconds: elapsed / 1000 };
  }
}

/** One measurement of about `durationMs`, for benchmarks that need just a number. */
export function measureEd25519VerifyRate(durationMs = 1500): VerifyRate {
  const sampler = new VerifyRateSampler();
  sampler.sample(durationMs);
  return sampler.rate();
}
