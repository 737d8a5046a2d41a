/**
 * A deterministic loans table for the dataset and job tests: the rows themselves (the tests'
 * oracle computes expected answers from them independently of SQLite) and the CSV text a data owner
 * would load, with headers in the shapes real files have (spaces, capitals, a leading digit, an
 * empty header). Known structure to find again: `y = 3 + 2·x1 − 1.5·x2` plus noise of at most
 * ±0.05, and `label` drawn from P(label = 1) = σ(−1 + 0.8·x1 − 0.6·x2).
 */
export interface LoanRow {
  readonly id: number;
  readonly region: string;
  readonly year: number;
  readonly status: 'ok' | 'late';
  readonly amount: number;
  /** null: the cell is empty. */
  readonly active: boolean | null;
  readonly x1: number;
  readonly x2: number | null;
  readonly y: number;
  readonly label: 0 | 1;
  readonly zip: string;
  readonly note: string | null;
}

export const linearTruth = { intercept: 3, coefficients: [2, -1.5] } as const;
export const logisticTruth = { intercept: -1, coefficients: [0.8, -0.6] } as const;
export const regions = ['north', 'south', 'east', 'west'] as const;
/** Ids whose region is 'island': a group of 5, below every allowed minimum group size. */
export const islandIds = [101, 102, 103, 104, 105] as const;

/** mulberry32: a small seeded PRNG, so every run builds the same table. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function loanRows(count: number, seed = 15): LoanRow[] {
  const random = seededRandom(seed);
  const rows: LoanRow[] = [];
  for (let i = 0; i < count; i++) {
    const id = i + 1;
    const x1 = Math.round(random() * 10_000) / 1000;
    const x2 = id % 97 === 0 ? null : Math.round(random() * 10_000) / 1000;
    const noise = (random() - 0.5) * 0.1;
    const y = Math.round((3 + 2 * x1 - 1.5 * (x2 ?? 0) + noise) * 1e6) / 1e6;
    const z = -1 + 0.8 * x1 - 0.6 * (x2 ?? 0);
    const label = random() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
    rows.push({
      id,
      region: (islandIds as readonly number[]).includes(id) ? 'island' : regions[Math.floor(random() * 4)]!,
      year: 2019 + Math.floor(random() * 6),
      status: random() < 0.2 ? 'late' : 'ok',
      amount: Math.round(random() * 1_000_000) / 100,
      active: id % 50 === 0 ? null : random() < 0.5,
      x1,
      x2,
      y,
      label,
      zip: String(Math.floor(random() * 100_000)).padStart(5, '0'),
      note: id % 10 === 0 ? `checked, batch ${id % 7}` : null,
    });
  }
  return rows;
}

/** The headers as the owner's file has them, and what loading makes of them. */
export const loanHeaders = [
  'ID',
  'Region',
  'Year',
  'Status',
  'Loan Amount',
  'Active',
  'x1',
  'x2',
  'y',
  'Label',
  'Zip',
  '2nd note',
  '',
] as const;
export const loanColumns = [
  { name: 'id', type: 'integer' },
  { name: 'region', type: 'text' },
  { name: 'year', type: 'integer' },
  { name: 'status', type: 'text' },
  { name: 'loan_amount', type: 'real' },
  { name: 'active', type: 'boolean' },
  { name: 'x1', type: 'real' },
  { name: 'x2', type: 'real' },
  { name: 'y', type: 'real' },
  { name: 'label', type: 'integer' },
  { name: 'zip', type: 'text' },
  { name: 'c_2nd_note', type: 'text' },
  { name: 'col_13', type: 'text' },
] as const;

export function loansCsv(rows: readonly LoanRow[]): string {
  const lines = [loanHeaders.map(csvField).join(',')];
  for (const row of rows) {
    // Booleans in the cases spreadsheets write them: true, TRUE, True.
    const word = String(row.active);
    const active =
      row.active === null
        ? ''
        : [word, word.toUpperCase(), `${word[0]!.toUpperCase()}${word.slice(1)}`][row.id % 3]!;
    lines.push(
      [
        row.id,
        row.region,
        row.year,
        row.status,
        row.amount,
        active,
        row.x1,
        row.x2 ?? '',
        row.y,
        row.label,
        row.zip,
        row.note === null ? '' : csvField(row.note),
        '',
      ].join(','),
    );
  }
  return `${lines.join('\r\n')}\r\n`;
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A big table streamed as CSV text in chunks of about 64 KiB, never held whole: id, region (four),
 * year, status, amount — the shape of the example query.
 */
export function* bigLoansCsv(count: number): Generator<string> {
  yield 'id,region,year,status,amount\n';
  let chunk = '';
  for (let i = 0; i < count; i++) {
    const id = i + 1;
    const status = id % 5 === 0 ? 'late' : 'ok';
    chunk += `${id},${regions[id % 4]},${2019 + (id % 6)},${status},${((id * 7919) % 1_000_000) / 100}\n`;
    if (chunk.length >= 65_536) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk !== '') yield chunk;
}
