/**
 * `npm run bench:proofs`: how big an acceptance proof is, and what checking one costs, by batch size —
 * version 1 (the whole publish and its result) beside version 2 (the message's own paths, O(log n)).
 * Real blocks: each batch executed by the SDT contract and certified by three of four replicas; the
 * messages' metadata is the contract fixtures' (about 250 bytes, like a 1 KiB message's).
 *
 * Headline: version-2 bytes per message of a 64-message batch (the connector's batch size) ÷ version
 * 1's. Usage: npm run bench:proofs [-- --rounds N]
 */
import { parseArgs } from 'node:util';
import {
  blockEvidence,
  compactMessageProofs,
  encodeAcceptanceProof,
  verifyAcceptance,
} from '../src/proofs/index.js';
import type { AcceptanceProof } from '../src/proofs/index.js';
import { batchBlock, proofTrust } from '../src/proofs/testing/proof-chain.js';
import { showHelpIfAsked } from './lib/help.js';
import { writeBenchResult } from './lib/results.js';

showHelpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const rounds = Number(values.rounds);
if (!Number.isSafeInteger(rounds) || rounds < 1) {
  console.error(`--rounds must be a positive integer, got ${values.rounds}`);
  process.exit(2);
}

interface Row {
  readonly batch: number;
  readonly v1Bytes: number;
  readonly v2Bytes: number;
  readonly v1VerifyMicros: number;
  readonly v2VerifyMicros: number;
  readonly v2CutMicrosPerMessage: number;
}

/** Fastest of `rounds` runs of `work`, in µs: the machine is shared, the minimum is the least disturbed. */
function fastest(work: () => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < rounds; round++) {
    const started = process.hrtime.bigint();
    work();
    best = Math.min(best, Number(process.hrtime.bigint() - started) / 1000);
  }
  return best;
}

const rows: Row[] = [];
for (const batch of [1, 16, 64, 256, 1024]) {
  const block = batchBlock([batch]);
  const evidence = blockEvidence(block, 0);
  const sample = [0, Math.floor(batch / 2), batch - 1].filter((index, at, all) => all.indexOf(index) === at);
  const v1: AcceptanceProof[] = sample.map((messageIndex) => ({ block: evidence, messageIndex }));
  const indexes = Array.from({ length: batch }, (_, index) => index);
  let v2: AcceptanceProof[] = [];
  const cut = fastest(() => {
    v2 = compactMessageProofs(evidence, indexes) ?? [];
  });
  const v2Sample = sample.map((index) => v2[index] as AcceptanceProof);
  const mean = (proofs: AcceptanceProof[]): number =>
    proofs.reduce((sum, proof) => sum + encodeAcceptanceProof(proof).length, 0) / proofs.length;
  const verifyMicros = (proofs: AcceptanceProof[]): number =>
    fastest(() => {
      for (const proof of proofs) verifyAcceptance(proof, proofTrust);
    }) / proofs.length;
  const row: Row = {
    batch,
    v1Bytes: Math.round(mean(v1)),
    v2Bytes: Math.round(mean(v2Sample)),
    v1VerifyMicros: Math.round(verifyMicros(v1)),
    v2VerifyMicros: Math.round(verifyMicros(v2Sample)),
    v2CutMicrosPerMessage: Number((cut / batch).toFixed(1)),
  };
  rows.push(row);
  console.log(
    `batch ${String(batch).padStart(4)}: proof v1 ${String(row.v1Bytes).padStart(7)} B, v2 ${String(row.v2Bytes).padStart(5)} B;` +
      ` verify one v1 ${row.v1VerifyMicros} µs, v2 ${row.v2VerifyMicros} µs; cutting v2 proofs ${row.v2CutMicrosPerMessage} µs/message`,
  );
}

const at64 = rows.find((row) => row.batch === 64) as Row;
const at1024 = rows.find((row) => row.batch === 1024) as Row;
writeBenchResult({
  name: 'proofs',
  value: at64.v2Bytes,
  unit: 'bytes per acceptance proof (v2, batch of 64)',
  reference: 'bytes of a version-1 proof of the same message (it carries the whole 64-message batch)',
  referenceValue: at64.v1Bytes,
  ratio: Number((at64.v2Bytes / at64.v1Bytes).toFixed(4)),
  summary: {
    v2BytesBatch1024: at1024.v2Bytes,
    v1BytesBatch1024: at1024.v1Bytes,
    v2VerifyMicros: at64.v2VerifyMicros,
    v1VerifyMicros: at64.v1VerifyMicros,
  },
  details: { rows, rounds },
});
