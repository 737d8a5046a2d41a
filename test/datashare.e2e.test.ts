// The data catalog and compute-to-data jobs (issue 15, DESIGN §8) as users run them: four
// organizations, each a node and a connector in its own process over TLS, driven by the `ledgerbus`
// CLI. org2 loads a CSV and publishes it; org1 finds it by keyword from its own node; an aggregate
// job returns only groups of at least the minimum size and counts the suppressed ones; a model job
// and a federated model job (org2 + org3) return only parameters; the job's receipt verifies
// offline; org4, the dev network's supervisor, lists every sharing record.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessNetwork } from './support/process-network.js';
import { cliNodeArgs } from './support/processes.js';

const basePort = 26400;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-datashare-e2e-'));
const net = new ProcessNetwork(dir, basePort);
const networkFile = join(dir, 'network.json');

function ledgerbus(...args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...cliNodeArgs(), ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 180_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
const as = (organization: string): string[] => ['--network', networkFile, '--as', organization];

/** Runs the CLI expecting success; its --json output parsed. */
function ok<T>(...args: string[]): T {
  const result = ledgerbus(...args, '--json');
  expect(result.status, `${args.join(' ')}\n${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout) as T;
}

/** Loans by region: A 60 rows, B 30, C 12, D 4 (below the minimum group of 10); amount ≈ 1000 + 50·income. */
function loansCsv(offset: number): string {
  const lines = ['id,region,income,amount,year,late,memo'];
  const regions = [
    ...Array<string>(60).fill('A'),
    ...Array<string>(30).fill('B'),
    ...Array<string>(12).fill('C'),
    ...Array<string>(4).fill('D'),
  ];
  regions.forEach((region, index) => {
    const income = 5 + ((index * 7) % 40);
    const amount = 1000 + 50 * income + (((index * 13) % 11) - 5);
    // memo: a value no result may ever carry, looked for in the requester's files at the end.
    lines.push(
      `${offset + index},${region},${income},${amount},${2022 + (index % 3)},${income < 20},rowsecret${offset + index}x`,
    );
  });
  return `${lines.join('\n')}\n`;
}

interface Dataset {
  rowCount: number;
  columns: { name: string; type: string }[];
}

interface Submitted {
  jobId: string;
  state: string;
  federated: boolean;
  output?: {
    kind: string;
    columns?: string[];
    rows?: unknown[][];
    suppressedGroups?: number;
    coefficients?: number[];
    intercept?: number;
    n?: number;
  };
}

beforeAll(async () => {
  await net.startAll();
  for (const [organization, offset] of [
    ['org2', 0],
    ['org3', 1000],
  ] as const) {
    const file = join(dir, `${organization}-loans.csv`);
    writeFileSync(file, loansCsv(offset));
    const loaded = ok<Dataset>('dataset', 'add', 'loans', '--file', file, ...as(organization));
    expect(loaded.rowCount).toBe(106);
    ok(
      'catalog',
      'publish',
      '--dataset',
      'loans',
      '--domain',
      'finance',
      '--title',
      `${organization} consumer loans`,
      '--description',
      'Consumer loans by region with income, amount and whether the repayment ran late.',
      '--tag',
      'credit',
      ...as(organization),
    );
  }
}, 240_000);

afterAll(async () => {
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('the catalog and compute-to-data jobs with real processes', () => {
  it('loads a CSV with inferred column types, and shows them', () => {
    const shown = ok<Dataset>('dataset', 'show', 'loans', ...as('org2'));
    expect(shown.columns).toEqual([
      { name: 'id', type: 'integer' },
      { name: 'region', type: 'text' },
      { name: 'income', type: 'integer' },
      { name: 'amount', type: 'integer' },
      { name: 'year', type: 'integer' },
      { name: 'late', type: 'boolean' },
      { name: 'memo', type: 'text' },
    ]);
    const text = ledgerbus('dataset', 'list', ...as('org2'));
    expect(text.stdout).toContain('loans');
  });

  it("finds org2's dataset by a keyword search from org1's own node", () => {
    const found = ok<{ hits: { entry: { owner: string; dataset: string } }[] }>(
      'catalog',
      'search',
      'repayment',
      ...as('org1'),
    );
    expect(found.hits.map((hit) => `${hit.entry.owner}/${hit.entry.dataset}`).sort()).toEqual([
      'org2/loans',
      'org3/loans',
    ]);
  });

  let aggregateJob = '';

  it('answers an aggregate job with only the groups of at least the minimum size', () => {
    const done = ok<Submitted>(
      'job',
      'submit',
      '--dataset',
      'org2/loans',
      '--query',
      'SELECT region, COUNT(*) AS n, AVG(amount) FROM loans GROUP BY region',
      '--wait',
      ...as('org1'),
    );
    aggregateJob = done.jobId;
    expect(done.state).toBe('COMPLETED');
    expect(done.output?.rows?.map((row) => [row[0], row[1]])).toEqual([
      ['A', 60],
      ['B', 30],
      ['C', 12],
    ]);
    expect(done.output?.suppressedGroups).toBe(1);
    // As a person reads it: a table, and what was left out.
    const text = ledgerbus('job', 'result', aggregateJob, ...as('org1'));
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain('1 group smaller than 10 rows suppressed');
  }, 120_000);

  it('writes a receipt of the job that `ledgerbus verify` checks offline', () => {
    const file = join(dir, 'job-receipt.json');
    ok('job', 'receipt', aggregateJob, '--out', file, ...as('org1'));
    const verified = ok<{ valid: boolean; requester: string; owner: string; state: string }>(
      'verify',
      file,
      '--network',
      networkFile,
    );
    expect(verified).toMatchObject({ valid: true, requester: 'org1', owner: 'org2', state: 'COMPLETED' });
    // A receipt edited to claim another result hash does not verify.
    const receipt = JSON.parse(readFileSync(file, 'utf8')) as { view: { result: { resultHash: string } } };
    receipt.view.result.resultHash = '00'.repeat(32);
    writeFileSync(file, JSON.stringify(receipt));
    expect(ledgerbus('verify', file, '--network', networkFile).status).toBe(1);
  }, 60_000);

  it('trains a model at the owner and returns only its parameters', () => {
    const model = ['job', 'submit', '--dataset', 'org2/loans', '--model', 'linear'];
    const columns = ['--features', 'income', '--target', 'amount'];
    // Over every row, the model would count region D's 4 rows that the aggregate job suppressed
    // (its n minus the released groups' counts): the owner refuses it.
    const whole = ledgerbus(...model, ...columns, '--wait', ...as('org1'));
    expect(whole.status, whole.stderr).toBe(2);
    expect(whole.stderr).toContain('error DIFFERENCE_CHECK');
    // Over the released rows only, it runs.
    const done = ok<Submitted>(...model, ...columns, '--where', "region != 'D'", '--wait', ...as('org1'));
    expect(done.output).toMatchObject({ kind: 'model', n: 102 });
    expect(done.output?.coefficients?.[0]).toBeCloseTo(50, 0);
    expect(done.output).not.toHaveProperty('rows');
  }, 120_000);

  it('federates a logistic model across org2 and org3, averaging their parameters', () => {
    const done = ok<Submitted>(
      'job',
      'submit',
      '--dataset',
      'org2/loans',
      '--dataset',
      'org3/loans',
      '--model',
      'logistic',
      '--features',
      'income',
      '--target',
      'late',
      '--l2',
      '0.1',
      '--where',
      "region != 'D'",
      '--wait',
      ...as('org1'),
    );
    expect(done.federated).toBe(true);
    expect(done.output).toMatchObject({ kind: 'model', n: 204 });
    expect(done.output?.coefficients?.[0]).toBeLessThan(0);
    expect(done.output).not.toHaveProperty('rows');
  }, 120_000);

  it('refuses an unknown dataset and a disallowed query, saying what to do', () => {
    const unknown = ledgerbus(
      'job',
      'submit',
      '--dataset',
      'org2/salaries',
      '--query',
      'SELECT COUNT(*) FROM salaries',
      ...as('org1'),
    );
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('error DATASET_NOT_FOUND');
    expect(unknown.stderr).toContain('what to do:');
    const disallowed = ledgerbus(
      'job',
      'submit',
      '--dataset',
      'org2/loans',
      '--query',
      'SELECT name FROM loans',
      ...as('org1'),
    );
    expect(disallowed.status).toBe(2);
    expect(disallowed.stderr).toContain('error QUERY_REJECTED');
  }, 60_000);

  it('lists every sharing record for the supervisor', () => {
    const records = ok<{ jobId: string; requester: string; owner: string; state: string }[]>(
      'job',
      'list',
      '--all',
      ...as('org4'),
    );
    expect(records.find((record) => record.jobId === aggregateJob)).toMatchObject({
      requester: 'org1',
      owner: 'org2',
      state: 'COMPLETED',
    });
    // Four jobs ran: an aggregate, a model, and the federated job's two parts; the model over every
    // row failed the difference check.
    expect(
      records.filter((record) => record.requester === 'org1' && record.state === 'COMPLETED'),
    ).toHaveLength(4);
    expect(records.filter((record) => record.requester === 'org1' && record.state === 'FAILED')).toHaveLength(
      1,
    );
  }, 60_000);

  it("leaves no row of the owners' datasets anywhere in the requester's files", () => {
    // Every row's memo is unique ("rowsecret<id>x"); results, job records, receipts and the
    // connector's databases of org1 must hold none of them. The owners' own files do.
    const filesUnder = (root: string): string[] =>
      readdirSync(root, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? filesUnder(join(root, entry.name)) : [join(root, entry.name)],
      );
    const holding = (root: string): string[] =>
      filesUnder(root).filter((file) => readFileSync(file).includes('rowsecret'));
    const requesterFiles = filesUnder(join(dir, 'org1'));
    expect(requesterFiles.length).toBeGreaterThan(3);
    expect(holding(join(dir, 'org1'))).toEqual([]);
    expect(holding(join(dir, 'org2')).length).toBeGreaterThan(0);
  });
});
