/**
 * The in-process halves of bench:escrow: what escrowing one message's key costs as the share count
 * grows (the paper's share-count axis, without the network), and how often a chunk lands on three
 * distinct holders under the paper's placement rule and under ours.
 *
 * Key escrow per message, as the sender's placer and the holders do it (src/crypto/escrow):
 * `splitSecret(k, n)` (k coefficients, k commitments, n polynomial evaluations), then `sealShare`
 * once per share (HPKE to the holder's X25519 key), then `verifyShare` once per share (what each
 * holder runs on its opened share, and the auditor on every release). The HPKE open a holder also
 * does is left out on purpose: it is the seal's mirror and would only add a constant per share.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  naiveThreeHashPlacement,
  placeChunk,
  sealShare,
  splitSecret,
  verifyShare,
} from '../../src/crypto/escrow/index.js';
import { generateEncryptionKey } from '../../src/crypto/envelope/keys.js';

export interface ShareCostRun {
  /** n: shares made, one per holder. */
  readonly shares: number;
  /** k. */
  readonly threshold: number;
  readonly messages: number;
  /** Mean microseconds per message, by phase and in total. */
  readonly splitMicros: number;
  readonly sealMicros: number;
  readonly verifyMicros: number;
  readonly totalMicros: number;
  /** 1e6 / totalMicros: messages per second one core could escrow keys for, nothing else. */
  readonly messagesPerSecond: number;
}

/**
 * Times key escrow for each share count in `shareCounts` (threshold `threshold`), `messages`
 * messages each after `warmup` untimed ones. Runs the counts interleaved in rounds, so a burst of
 * load from other processes on a shared machine is spread over every count rather than landing on
 * one of them and bending the growth curve.
 */
export async function measureShareCosts(options: {
  readonly shareCounts: readonly number[];
  readonly threshold: number;
  readonly messages: number;
  readonly warmup: number;
  readonly rounds?: number;
}): Promise<ShareCostRun[]> {
  const most = Math.max(...options.shareCounts);
  const keys = Array.from({ length: most }, () => generateEncryptionKey().publicKey);
  const totals = new Map(options.shareCounts.map((n) => [n, { split: 0, seal: 0, verify: 0, messages: 0 }]));
  const one = async (
    shares: number,
    index: number,
  ): Promise<{ split: number; seal: number; verify: number }> => {
    const context = { network: 'bench', sender: 'org1', id: `bench-${index}`, purpose: 'escrow' as const };
    const t0 = performance.now();
    const sharing = splitSecret(options.threshold, shares);
    const t1 = performance.now();
    for (const [i, share] of sharing.shares.entries()) {
      await sealShare(share.value, keys[i] as Uint8Array, { ...context, holder: `org${i + 2}` });
    }
    const t2 = performance.now();
    for (const share of sharing.shares) {
      if (!verifyShare(sharing.commitments, share))
        throw new Error(`share ${share.index} of ${shares} failed`);
    }
    const t3 = performance.now();
    return { split: t1 - t0, seal: t2 - t1, verify: t3 - t2 };
  };
  for (const n of options.shareCounts) for (let i = 0; i < options.warmup; i++) await one(n, i);
  const rounds = Math.max(1, Math.min(options.rounds ?? 10, options.messages));
  let index = 0;
  for (let round = 0; round < rounds; round++) {
    const perRound = Math.floor(options.messages / rounds) + (round < options.messages % rounds ? 1 : 0);
    for (const n of options.shareCounts) {
      const total = totals.get(n)!;
      for (let i = 0; i < perRound; i++) {
        const cost = await one(n, index++);
        total.split += cost.split;
        total.seal += cost.seal;
        total.verify += cost.verify;
        total.messages += 1;
      }
    }
  }
  return options.shareCounts.map((shares) => {
    const total = totals.get(shares)!;
    const micros = (ms: number): number => (ms * 1000) / total.messages;
    const totalMicros = micros(total.split + total.seal + total.verify);
    return {
      shares,
      threshold: options.threshold,
      messages: total.messages,
      splitMicros: micros(total.split),
      sealMicros: micros(total.seal),
      verifyMicros: micros(total.verify),
      totalMicros,
      messagesPerSecond: 1e6 / totalMicros,
    };
  });
}

export interface PlacementDistinctness {
  readonly candidates: number;
  readonly samples: number;
  /** Share of chunks on 3 distinct holders under the paper's rule (one holder per hash function). */
  readonly naiveDistinct: number;
  /** The same for one holder only (all three hashes picked the same organization). */
  readonly naiveSingleHolder: number;
  /** What probability says for the paper's rule: c(c-1)(c-2)/c³. */
  readonly naiveExpected: number;
  /** Share of chunks on 3 distinct holders under rendezvous ranking (placeChunk, 3 replicas). */
  readonly rendezvousDistinct: number;
  /** Most chunks any one candidate got as a holder ÷ the even share (3·samples/c): 1 is perfectly even. */
  readonly rendezvousMaxLoad: number;
}

/**
 * For each candidate count, `samples` random 32-byte chunk hashes placed by both rules over
 * candidates org1..orgC.
 */
export function measurePlacement(options: {
  readonly candidateCounts: readonly number[];
  readonly samples: number;
}): PlacementDistinctness[] {
  return options.candidateCounts.map((count) => {
    const candidates = Array.from({ length: count }, (_, i) => `org${i + 1}`);
    const load = new Map(candidates.map((candidate) => [candidate, 0]));
    let naiveDistinct = 0;
    let naiveSingle = 0;
    let rendezvousDistinct = 0;
    for (let i = 0; i < options.samples; i++) {
      const hash = randomBytes(32);
      const naive = new Set(naiveThreeHashPlacement(hash, candidates)).size;
      if (naive === 3) naiveDistinct += 1;
      if (naive === 1) naiveSingle += 1;
      const ranked = placeChunk(hash, candidates, 3);
      if (new Set(ranked).size === 3) rendezvousDistinct += 1;
      for (const holder of ranked) load.set(holder, (load.get(holder) ?? 0) + 1);
    }
    const even = (3 * options.samples) / count;
    return {
      candidates: count,
      samples: options.samples,
      naiveDistinct: naiveDistinct / options.samples,
      naiveSingleHolder: naiveSingle / options.samples,
      naiveExpected: (count * (count - 1) * (count - 2)) / count ** 3,
      rendezvousDistinct: rendezvousDistinct / options.samples,
      rendezvousMaxLoad: Math.max(...load.values()) / even,
    };
  });
}
