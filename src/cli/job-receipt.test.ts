// `ledgerbus verify` on a job receipt, as a user runs it: the receipt a connector writes from a
// node's jobRecord answer (over a real certified partition of the genesis topic "datashare", see
// proofs/testing/job-chain.ts) is checked offline against network.json alone. The CLI is parsed and
// run in this process.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CborValue } from '../codec/index.js';
import { blockEvidenceToCbor } from '../proofs/evidence.js';
import { jobReceiptFrom } from '../proofs/job-receipt.js';
import type { JobReceipt } from '../proofs/job-receipt.js';
import { jobChain } from '../proofs/testing/job-chain.js';
import type { JobChain } from '../proofs/testing/job-chain.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-job-receipt-'));
let chain: JobChain;
let networkFile: string;

beforeAll(() => {
  chain = jobChain();
  networkFile = join(dir, 'network.json');
  writeFileSync(
    networkFile,
    JSON.stringify({
      format: 'ledgerbus-network/v1',
      network: chain.genesis.network,
      organizations: chain.genesis.organizations.map((organization) => ({
        id: organization.id,
        roles: organization.roles,
        connector: { url: 'http://127.0.0.1:1', token: 'unused' },
      })),
      nodes: chain.genesis.nodes.map((node) => ({
        id: node.id,
        organization: node.organization,
        address: node.address,
      })),
      genesis: chain.genesis,
    }),
  );
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `ledgerbus ...args` in this process; its stdout and exit status. */
async function ledgerbus(...args: string[]): Promise<{ status: number; stdout: string }> {
  let stdout = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await main(['node', 'ledgerbus', ...args]);
  } finally {
    out.mockRestore();
  }
  const status = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { status, stdout };
}

function receiptFile(name: string, receipt: JobReceipt): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(receipt, null, 2));
  return file;
}

function receiptOf(jobId: string): JobReceipt {
  const answer = chain.answer(jobId);
  return jobReceiptFrom(
    {
      record: answer.record as unknown as CborValue,
      evidences: answer.evidences.map(({ step, evidence }) => ({
        step,
        evidence: blockEvidenceToCbor(evidence),
      })),
    },
    chain.genesis.network,
  );
}

describe('ledgerbus verify on a job receipt', () => {
  it('prints what a valid receipt proves, as JSON and as text', async () => {
    const file = receiptFile('job-done.json', receiptOf('job-done'));
    const json = await ledgerbus('verify', file, '--network', networkFile, '--json');
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      valid: true,
      jobId: 'job-done',
      requester: 'alice',
      owner: 'bob',
      dataset: 'loans',
      state: 'COMPLETED',
      decision: 'APPROVED',
      result: 'COMPLETED',
      resultHash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const text = await ledgerbus('verify', file, '--network', networkFile);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(
      /^VALID: job job-done on datashare\/0: alice asked bob for a aggregate job on loans v2/,
    );
    expect(text.stdout).toContain('state COMPLETED; APPROVED by bob (POLICY); COMPLETED (OK), result hash');
  });

  it('exits 1 with the code and the field when the receipt was tampered with', async () => {
    const receipt = receiptOf('job-done');
    const tampered = receiptFile('tampered.json', {
      ...receipt,
      view: { ...receipt.view, result: { ...receipt.view.result!, resultHash: '00'.repeat(32) } },
    });
    const verdict = await ledgerbus('verify', tampered, '--network', networkFile, '--json');
    expect(verdict.status).toBe(1);
    expect(JSON.parse(verdict.stdout)).toMatchObject({
      valid: false,
      code: 'BAD_PROOF',
      reason: expect.stringMatching(/view's result/),
    });
    const elsewhere = receiptFile('elsewhere.json', { ...receipt, network: 'elsewhere' });
    const text = await ledgerbus('verify', elsewhere, '--network', networkFile);
    expect(text.status).toBe(1);
    expect(text.stdout).toMatch(/^INVALID WRONG_GROUP: the job receipt is from network elsewhere/);
  });
});
