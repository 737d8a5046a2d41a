// Job receipts over a real partition of a genesis topic (testing/job-chain.ts): every block executed
// by the contracts and certified with real Ed25519 replica keys, checked offline against the
// genesis alone; each tampering is refused with a code and a message naming what broke.
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeCanonical, toHex } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { sha256 } from '../crypto/index.js';
import { isLedgerbusError } from '../errors.js';
import { GenesisRegistry } from '../registry/genesis.js';
import { proofTrustOf } from '../registry/trust.js';
import { blockEvidenceToCbor } from './evidence.js';
import type { BlockEvidence } from './evidence.js';
import { jobReceiptFrom, verifyJobReceipt } from './job-receipt.js';
import type { JobReceipt, JobReceiptSummary } from './job-receipt.js';
import { jobChain, jobGenesis } from './testing/job-chain.js';
import type { JobChain } from './testing/job-chain.js';

let chain: JobChain;

beforeAll(() => {
  chain = jobChain();
});

/** The receipt of `jobId` as a connector writes it from a node's jobRecord answer, through JSON. */
function receiptOf(jobId: string): JobReceipt {
  const answer = chain.answer(jobId);
  const receipt = jobReceiptFrom(
    {
      record: answer.record as unknown as CborValue,
      evidences: answer.evidences.map(({ step, evidence }) => ({
        step,
        evidence: blockEvidenceToCbor(evidence),
      })),
    },
    chain.genesis.network,
  );
  return JSON.parse(JSON.stringify(receipt)) as JobReceipt;
}

function encoded(evidence: BlockEvidence): string {
  return Buffer.from(encodeCanonical(blockEvidenceToCbor(evidence))).toString('base64');
}

/** The code and message `action` throws with, or VALID. */
function refusal(action: () => unknown): { code: string; message: string } {
  try {
    action();
  } catch (error) {
    if (isLedgerbusError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  return { code: 'VALID', message: '' };
}

describe('job receipts', () => {
  it('prove who asked which owner for what, the decision and the result hash, offline', () => {
    const summary = verifyJobReceipt(receiptOf('job-done'), chain.trust);
    expect(summary).toEqual({
      jobId: 'job-done',
      group: 'datashare/0',
      requester: 'alice',
      owner: 'bob',
      dataset: 'loans',
      datasetVersion: 2,
      jobKind: 'aggregate',
      planHash: toHex(sha256(new TextEncoder().encode('plan of job-done'))),
      federation: null,
      state: 'COMPLETED',
      decision: 'APPROVED',
      decisionReason: 'POLICY',
      result: 'COMPLETED',
      resultCode: 'OK',
      resultHash: toHex(sha256(new TextEncoder().encode('the result'))),
    } satisfies JobReceiptSummary);
    expect(verifyJobReceipt(receiptOf('job-refused'), chain.trust)).toMatchObject({
      requester: 'carol',
      state: 'REJECTED',
      decision: 'REJECTED',
      decisionReason: 'QUERY_REJECTED',
      result: null,
      resultHash: null,
    });
    expect(verifyJobReceipt(receiptOf('job-open'), chain.trust)).toMatchObject({
      state: 'REQUESTED',
      decision: null,
    });
    // Another process with the same genesis file verifies it too (keys and certificates, no state).
    const again = proofTrustOf(new GenesisRegistry(chain.genesis));
    expect(verifyJobReceipt(receiptOf('job-done'), again).state).toBe('COMPLETED');
  });

  it('refuses a view that says anything the evidences do not, naming the field', () => {
    const receipt = receiptOf('job-done');
    const withView = (change: Partial<JobReceipt['view']>): JobReceipt => ({
      ...receipt,
      view: { ...receipt.view, ...change },
    });
    const resultHash = refusal(() =>
      verifyJobReceipt(
        withView({ result: { ...receipt.view.result!, resultHash: toHex(new Uint8Array(32)) } }),
        chain.trust,
      ),
    );
    expect(resultHash).toMatchObject({ code: 'BAD_PROOF', message: expect.stringMatching(/view's result/) });
    expect(refusal(() => verifyJobReceipt(withView({ requester: 'carol' }), chain.trust)).message).toMatch(
      /view's requester/,
    );
    expect(refusal(() => verifyJobReceipt(withView({ state: 'FAILED' }), chain.trust)).message).toMatch(
      /view's state/,
    );
    expect(
      refusal(() => verifyJobReceipt(withView({ planHash: toHex(new Uint8Array(32)) }), chain.trust)).message,
    ).toMatch(/view's planHash/);
    // Dropping the result's evidence leaves a view that claims more than is proven.
    const truncated = { ...receipt, evidences: receipt.evidences.slice(0, 2) };
    expect(refusal(() => verifyJobReceipt(truncated, chain.trust))).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/view's state/),
    });
    // Keys in another order are the same view.
    const reordered = { ...receipt, view: Object.fromEntries(Object.entries(receipt.view).reverse()) };
    expect(verifyJobReceipt(reordered, chain.trust).state).toBe('COMPLETED');
  });

  it('refuses swapped, repeated, refused or wrongly signed evidences with a clear code', () => {
    const receipt = receiptOf('job-done');
    const [request, decision, result] = receipt.evidences as [
      JobReceipt['evidences'][number],
      JobReceipt['evidences'][number],
      JobReceipt['evidences'][number],
    ];
    const withEvidences = (evidences: JobReceipt['evidences']): JobReceipt => ({ ...receipt, evidences });
    // Another job's decision in this receipt.
    const otherDecision = receiptOf('job-refused').evidences[1]!;
    expect(
      refusal(() => verifyJobReceipt(withEvidences([request, otherDecision, result]), chain.trust)),
    ).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(
        /evidences\[1\] \(decision\): the evidence is of job job-refused, not job-done/,
      ),
    });
    // The result where the decision belongs, and out of order.
    expect(
      refusal(() => verifyJobReceipt(withEvidences([request, { ...result, step: 'decision' }]), chain.trust)),
    ).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/proves a jobResult, not a jobDecision/),
    });
    expect(
      refusal(() => verifyJobReceipt(withEvidences([request, result, decision]), chain.trust)).code,
    ).toBe('BAD_PROOF');
    expect(
      refusal(() => verifyJobReceipt(withEvidences([decision, request, result]), chain.trust)).code,
    ).toBe('BAD_PROOF');
    // A repeat of the approval: an OK, but naming the first recording, not this position.
    const repeat = {
      step: 'decision' as const,
      evidence: encoded(chain.evidenceAt(chain.repeatedApproval, 0)),
    };
    expect(
      refusal(() => verifyJobReceipt(withEvidences([request, repeat, result]), chain.trust)),
    ).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/at this position/),
    });
    // carol's decision, which the contract refused (she is not the owner).
    const outsider = {
      step: 'decision' as const,
      evidence: encoded(chain.evidenceAt(chain.outsiderDecision, 0)),
    };
    expect(
      refusal(() => verifyJobReceipt(withEvidences([request, outsider, result]), chain.trust)),
    ).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/refused this decision \(NOT_JOB_OWNER\)/),
    });
    // A decision in bob's name signed with carol's key.
    const forged = {
      step: 'decision' as const,
      evidence: encoded(chain.evidenceAt(chain.forgedDecision, 0)),
    };
    expect(
      refusal(() => verifyJobReceipt(withEvidences([request, forged, result]), chain.trust)),
    ).toMatchObject({
      code: 'BAD_SIGNATURE',
      message: expect.stringMatching(/not signed by a key of bob/),
    });
  });

  it('refuses tampered blocks, another network and what is not a job receipt', () => {
    const receipt = receiptOf('job-done');
    const evidence = chain.evidenceAt(chain.view('job-done').result!.height, 0);
    const unsigned: BlockEvidence = { ...evidence, signatures: evidence.signatures.slice(0, 2) };
    const weak = {
      ...receipt,
      evidences: [...receipt.evidences.slice(0, 2), { step: 'result' as const, evidence: encoded(unsigned) }],
    };
    expect(refusal(() => verifyJobReceipt(weak, chain.trust)).code).toBe('INSUFFICIENT_SIGNATURES');
    const swappedResult: BlockEvidence = { ...evidence, result: chain.evidenceAt(1, 0).result };
    const lying = {
      ...receipt,
      evidences: [
        ...receipt.evidences.slice(0, 2),
        { step: 'result' as const, evidence: encoded(swappedResult) },
      ],
    };
    expect(refusal(() => verifyJobReceipt(lying, chain.trust))).toMatchObject({
      code: 'BAD_PROOF',
      message: expect.stringMatching(/result is not the block's result/),
    });
    expect(refusal(() => verifyJobReceipt({ ...receipt, network: 'elsewhere' }, chain.trust)).code).toBe(
      'WRONG_GROUP',
    );
    // The same jobs in another network (its own genesis): nothing of this receipt verifies there.
    const foreign = proofTrustOf(new GenesisRegistry(jobGenesis('other-testnet')));
    expect(refusal(() => verifyJobReceipt({ ...receipt, network: 'other-testnet' }, foreign)).code).toBe(
      'BAD_SIGNATURE',
    );
    expect(
      refusal(() => verifyJobReceipt({ ...receipt, type: 'ledgerbus-receipt/v1' }, chain.trust)).code,
    ).toBe('SCHEMA_MISMATCH');
    expect(refusal(() => verifyJobReceipt({ ...receipt, evidences: [] }, chain.trust)).code).toBe(
      'SCHEMA_MISMATCH',
    );
    expect(refusal(() => verifyJobReceipt(null, chain.trust)).code).toBe('SCHEMA_MISMATCH');
    const garbled = { ...receipt, evidences: [{ step: 'request', evidence: 'AAAA' }] };
    expect(refusal(() => verifyJobReceipt(garbled, chain.trust)).message).toMatch(
      /evidences\[0\] \(request\)/,
    );
  });
});
