import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../errors.js';
import type { AdminAction } from '../registry/admin-transactions.js';
import type { CatalogChange } from '../registry/catalog-state.js';
import { catalogKey } from '../registry/catalog.js';
import type { CatalogEntry, CatalogHit } from '../registry/catalog.js';
import { SystemStateMachine } from '../registry/system-state.js';
import { SystemHarness, testGenesis } from '../registry/testing/fixtures.js';
import { CatalogIndex, formatScore, shortPrefix } from './catalog-index.js';
import type { CatalogSearchRequest } from './catalog-index.js';

const indexes: CatalogIndex[] = [];
afterEach(() => {
  for (const index of indexes.splice(0)) index.close();
});

function newIndex(): CatalogIndex {
  const index = new CatalogIndex();
  indexes.push(index);
  return index;
}

const everyone = (): boolean => true;

function entry(owner: string, dataset: string, fields: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    owner,
    dataset,
    version: 1,
    domain: 'finance',
    title: `Dataset ${dataset}`,
    description: 'Figures collected by the organization.',
    tags: [],
    columns: [{ name: 'region', type: 'text' }],
    rowCount: 100,
    contentHash: new Uint8Array(32),
    policy: {
      allowedColumns: ['region'],
      aggregates: ['count'],
      models: [],
      minGroupSize: 10,
      approval: 'auto',
    },
    publishedAt: 1,
    index: 1,
    ...fields,
  };
}

function put(value: CatalogEntry): CatalogChange {
  return { type: 'put', key: catalogKey(value.owner, value.dataset), entry: value };
}

function keys(hits: readonly CatalogHit[]): string[] {
  return hits.map((hit) => catalogKey(hit.entry.owner, hit.entry.dataset));
}

function indexOf(...entries: CatalogEntry[]): CatalogIndex {
  const index = newIndex();
  index.apply(entries.map(put));
  return index;
}

function search(
  index: CatalogIndex,
  query: string,
  more: Omit<CatalogSearchRequest, 'query'> = {},
  visible: (owner: string) => boolean = everyone,
): string[] {
  return keys(index.search({ query, ...more }, visible));
}

const corpus = [
  entry('org1', 'loans', {
    title: 'Consumer loans by region',
    description: 'Monthly repayments of consumer credit, with late payments flagged per borrower.',
    tags: ['credit', 'banking'],
  }),
  entry('org2', 'claims', {
    domain: 'insurance',
    title: 'Insurance claims',
    description: 'Claims filed per policy holder; includes claims for loans secured by property.',
    tags: ['insurance'],
  }),
  entry('org2', 'mortgages', {
    title: 'Mortgage book',
    description: 'Mortgage loans and their late payments history, payments late by more than 30 days.',
    tags: ['mortgage', 'loan-book'],
  }),
  entry('org3', 'weather', {
    domain: 'climate',
    title: 'Daily weather observations',
    description: 'Temperature and rainfall by station.',
    tags: ['climate'],
  }),
];

describe('CatalogIndex: ranking', () => {
  it('ranks an entry whose title has the term above one whose description has it', () => {
    const index = indexOf(
      entry('org1', 'a', { title: 'Household energy use', description: 'Solar panels per town, by year.' }),
      entry('org2', 'b', { title: 'Solar panels', description: 'Household energy use per town, by year.' }),
    );
    const hits = index.search({ query: 'solar' }, everyone);
    expect(keys(hits)).toEqual(['org2/b', 'org1/a']);
    expect(hits.map((hit) => hit.rank)).toEqual([1, 2]);
    // Lower is better, and the strings compare as the numbers do.
    expect(Number(hits[0]!.score)).toBeLessThan(Number(hits[1]!.score));
    expect(search(index, 'household')).toEqual(['org1/a', 'org2/b']);
  });

  it('ranks tags above the description', () => {
    const index = indexOf(
      entry('org1', 'a', { title: 'Town survey', description: 'Answers about housing and rents.' }),
      entry('org2', 'b', {
        title: 'Town survey',
        description: 'Answers about the neighbourhood.',
        tags: ['housing'],
      }),
    );
    expect(search(index, 'housing')).toEqual(['org2/b', 'org1/a']);
  });

  it('breaks score ties by owner then dataset, and rounds scores to 9 significant digits', () => {
    const same = { title: 'Shared survey', description: 'Identical text everywhere.' };
    const index = indexOf(entry('org3', 'x', same), entry('org1', 'y', same), entry('org1', 'x', same));
    const hits = index.search({ query: 'survey' }, everyone);
    expect(keys(hits)).toEqual(['org1/x', 'org1/y', 'org3/x']);
    expect(new Set(hits.map((hit) => hit.score)).size).toBe(1);
    expect(hits[0]!.score).toMatch(/^-?[0-9.]+(e-?\d+)?$/);
    expect(formatScore(-1.2345678912345e-6)).toBe('-0.00000123456789');
    expect(formatScore(-0)).toBe('0');
  });

  it('keeps the first entries by owner and dataset when a tie spans the limit', () => {
    const same = { title: 'Shared survey', description: 'Identical text everywhere.' };
    const owners = Array.from({ length: 30 }, (_, n) => `org${String(n).padStart(2, '0')}`);
    // Inserted in a scrambled order: rowids say nothing about the order wanted.
    const scrambled = owners.map((_, n) => owners[(n * 7) % 30]!);
    const index = indexOf(...scrambled.map((owner) => entry(owner, 'x', same)));
    expect(search(index, 'survey', { limit: 5 })).toEqual(owners.slice(0, 5).map((owner) => `${owner}/x`));
    expect(search(index, 'survey', { limit: 5 }, (owner) => owner !== 'org01')).toEqual([
      'org00/x',
      'org02/x',
      'org03/x',
      'org04/x',
      'org05/x',
    ]);
  });

  it('ranks alike with and without a filter that every entry passes (the two ways of ranking)', () => {
    let seed = 3;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return Math.floor((seed / 2 ** 31) * n);
    };
    const words = ['loans', 'credit', 'claims', 'rain', 'solar', 'rents'];
    const text = (length: number): string =>
      Array.from({ length }, () => words[random(words.length)]!).join(' ');
    const entries = Array.from({ length: 400 }, (_, n) =>
      // Every fifth text repeats the one before: ties, also across owners.
      entry(`org${random(9)}`, `d${n}`, {
        title: n % 5 === 0 ? 'Same title' : text(2),
        description: n % 5 === 0 ? 'same words' : text(8),
      }),
    );
    const index = indexOf(...entries);
    for (const query of ['loans', 'same', 'credit OR rain', '"solar rents"', 'cl*']) {
      for (const limit of [1, 7, 20, 100]) {
        const plain = index.search({ query, limit }, everyone);
        expect(plain.length, query).toBeGreaterThan(0);
        expect(index.search({ query, limit, domain: 'finance' }, everyone)).toEqual(plain);
        const hidden = (owner: string): boolean => owner !== 'org3';
        expect(index.search({ query, limit }, hidden)).toEqual(
          index.search({ query, limit, domain: 'finance' }, hidden),
        );
      }
    }
  });

  it('marks the matched terms in a snippet of the description, or of the title', () => {
    const index = indexOf(...corpus);
    const [late] = index.search({ query: 'borrower' }, everyone);
    expect(late!.snippet).toContain('[borrower]');
    const [weather] = index.search({ query: 'observations' }, everyone);
    expect(weather!.snippet).toBe('Daily weather [observations]');
  });
});

describe('CatalogIndex: query syntax', () => {
  const index = (): CatalogIndex => indexOf(...corpus);

  it('matches prefixes', () => {
    expect(search(index(), 'loan*').sort()).toEqual(['org1/loans', 'org2/claims', 'org2/mortgages']);
    expect(search(index(), 'loan')).toEqual(['org2/mortgages']);
    expect(search(index(), 'weath*')).toEqual(['org3/weather']);
  });

  it('matches phrases exactly', () => {
    expect(search(index(), '"late payments"').sort()).toEqual(['org1/loans', 'org2/mortgages']);
    expect(search(index(), '"payments late"')).toEqual(['org2/mortgages']);
  });

  it('combines with AND, OR and NOT', () => {
    expect(search(index(), 'loans AND property')).toEqual(['org2/claims']);
    expect(search(index(), 'loans NOT mortgage').sort()).toEqual(['org1/loans', 'org2/claims']);
    expect(search(index(), 'rainfall OR borrower').sort()).toEqual(['org1/loans', 'org3/weather']);
    expect(search(index(), '(loans OR rainfall) NOT insurance').sort()).toEqual([
      'org1/loans',
      'org2/mortgages',
      'org3/weather',
    ]);
  });

  it('filters by domain and owner exactly', () => {
    expect(search(index(), 'loans', { domain: 'finance' }).sort()).toEqual(['org1/loans', 'org2/mortgages']);
    expect(search(index(), 'loans', { owner: 'org2' }).sort()).toEqual(['org2/claims', 'org2/mortgages']);
    expect(search(index(), 'loans', { domain: 'fin' })).toEqual([]);
    expect(search(index(), 'loans', { owner: 'org2', domain: 'insurance' })).toEqual(['org2/claims']);
  });

  it('lists every entry by owner and dataset for an empty query, filtered and limited', () => {
    expect(search(index(), '')).toEqual(['org1/loans', 'org2/claims', 'org2/mortgages', 'org3/weather']);
    expect(search(index(), '  ', { domain: 'finance' })).toEqual(['org1/loans', 'org2/mortgages']);
    expect(search(index(), '', { limit: 2 })).toEqual(['org1/loans', 'org2/claims']);
    const [first] = index().search({ query: '' }, everyone);
    expect(first).toMatchObject({ rank: 1, score: '0', snippet: corpus[0]!.description });
  });

  it('caps the number of hits', () => {
    const many = indexOf(
      ...Array.from({ length: 150 }, (_, n) => entry(`org${n}`, 'd', { title: 'Common' })),
    );
    expect(many.search({ query: 'common' }, everyone)).toHaveLength(20);
    expect(many.search({ query: 'common', limit: 5 }, everyone)).toHaveLength(5);
    expect(many.search({ query: 'common', limit: 1000 }, everyone)).toHaveLength(100);
  });

  it('refuses a malformed query as QUERY_REJECTED, not an internal error', () => {
    for (const query of [
      '"unterminated',
      'AND',
      'nosuchcolumn: x',
      'loans AND',
      '(loans',
      'credit-risk',
      'l*',
    ]) {
      let caught: unknown;
      try {
        index().search({ query }, everyone);
      } catch (error) {
        caught = error;
      }
      expect(isLedgerbusError(caught, ErrorCode.QueryRejected), query).toBe(true);
      expect((caught as Error).message).toMatch(/^catalog search: /);
    }
    let tooLong: unknown;
    try {
      index().search({ query: 'x'.repeat(513) }, everyone);
    } catch (error) {
      tooLong = error;
    }
    expect(isLedgerbusError(tooLong, ErrorCode.QueryRejected)).toBe(true);
  });
});

describe('CatalogIndex: visibility and changes', () => {
  it('leaves out entries of owners that are not visible, in search and in entry()', () => {
    const index = indexOf(...corpus);
    const notOrg2 = (owner: string): boolean => owner !== 'org2';
    expect(keys(index.search({ query: 'loans' }, notOrg2))).toEqual(['org1/loans']);
    expect(keys(index.search({ query: '' }, notOrg2))).toEqual(['org1/loans', 'org3/weather']);
    expect(index.entry('org2', 'claims', notOrg2)).toBeUndefined();
    expect(index.entry('org2', 'claims', everyone)?.title).toBe('Insurance claims');
    expect(index.entry('org1', 'nothing', everyone)).toBeUndefined();
  });

  it('applies updates and withdrawals incrementally', () => {
    const index = indexOf(...corpus);
    index.apply([
      put({ ...corpus[3]!, version: 2, title: 'Daily rainfall', description: 'Loans of umbrellas.' }),
    ]);
    expect(search(index, 'observations')).toEqual([]);
    expect(search(index, 'umbrellas')).toEqual(['org3/weather']);
    expect(index.entry('org3', 'weather', everyone)?.version).toBe(2);
    index.apply([{ type: 'delete', key: 'org2/claims' }]);
    expect(search(index, 'insurance')).toEqual([]);
    expect(index.size).toBe(3);
  });

  it('gives the same answers however the same changes were batched', () => {
    // A seeded stream of puts, updates and withdrawals over 300 keys.
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      // The high bits: an LCG's low bits repeat with short periods.
      return Math.floor((seed / 2 ** 31) * n);
    };
    const words = [
      'loans',
      'credit',
      'claims',
      'weather',
      'rain',
      'energy',
      'solar',
      'housing',
      'rents',
      'trade',
    ];
    const phrase = (length: number): string =>
      Array.from({ length }, () => words[random(words.length)]!).join(' ');
    const changes: CatalogChange[] = [];
    for (let n = 0; n < 2000; n++) {
      const owner = `org${random(5)}`;
      const dataset = `d${random(60)}`;
      if (random(6) === 0) changes.push({ type: 'delete', key: catalogKey(owner, dataset) });
      else {
        changes.push(
          put(
            entry(owner, dataset, {
              title: phrase(3),
              description: phrase(12),
              tags: [words[random(10)]!],
              domain: `dom${random(3)}`,
            }),
          ),
        );
      }
    }
    const one = newIndex();
    one.apply(changes);
    const two = newIndex();
    for (let start = 0; start < changes.length; start += 37) two.apply(changes.slice(start, start + 37));
    const three = newIndex();
    for (const change of changes) three.enqueue(change);
    // And one rebuilt from scratch from the final catalog alone.
    const final = new Map<string, CatalogEntry>();
    for (const change of changes) {
      if (change.type === 'put') final.set(change.key, change.entry);
      else if (change.type === 'delete') final.delete(change.key);
    }
    const four = newIndex();
    four.apply([{ type: 'reset', entries: [...final.values()].reverse() }]);
    const queries: CatalogSearchRequest[] = [
      { query: 'loans' },
      { query: 'sol*', limit: 100 },
      { query: '"credit claims"' },
      { query: 'rain OR energy', domain: 'dom1', limit: 50 },
      { query: 'housing NOT rents', owner: 'org2' },
      { query: '', limit: 100 },
    ];
    for (const request of queries) {
      const expected = one.search(request, everyone);
      expect(expected.length, request.query).toBeGreaterThan(0);
      for (const other of [two, three, four]) expect(other.search(request, everyone)).toEqual(expected);
    }
    expect(four.size).toBe(final.size);
  });
});

describe('CatalogIndex following a SystemStateMachine', () => {
  function publish(dataset: string, version: number, title: string): AdminAction {
    return {
      kind: 'catalogPublish',
      dataset,
      version,
      domain: 'finance',
      title,
      description: '',
      tags: [],
      columns: [{ name: 'amount', type: 'real' }],
      rowCount: 1,
      contentHash: new Uint8Array(32),
      policy: {
        allowedColumns: ['amount'],
        aggregates: ['sum'],
        models: [],
        minGroupSize: 10,
        approval: 'auto',
      },
    };
  }

  it('indexes what the state machine applies, and rebuilds on a restored snapshot', () => {
    const harness = new SystemHarness();
    expect(harness.admin('alpha', publish('before', 1, 'Published before the index'))).toBe('OK');
    const index = CatalogIndex.follow(harness.machine);
    indexes.push(index);
    expect(search(index, 'published')).toEqual(['alpha/before']);
    expect(harness.admin('beta', publish('loans', 1, 'Loans ledger'))).toBe('OK');
    expect(search(index, 'ledger')).toEqual(['beta/loans']);
    expect(harness.admin('beta', { kind: 'catalogWithdraw', dataset: 'loans' })).toBe('OK');
    expect(search(index, 'ledger')).toEqual([]);

    const other = new SystemHarness();
    expect(other.admin('alpha', publish('elsewhere', 1, 'Only elsewhere'))).toBe('OK');
    harness.machine.restore(other.applied(), other.machine.snapshot());
    expect(search(index, 'published')).toEqual([]);
    expect(search(index, 'elsewhere')).toEqual(['alpha/elsewhere']);
    index.close();
    // Closed, it no longer follows: the state machine goes on alone.
    expect(new SystemStateMachine(testGenesis()).catalogEntries().next().done).toBe(true);
  });
});

describe('shortPrefix', () => {
  it('finds prefixes of fewer than 2 letters, outside strings only', () => {
    expect(shortPrefix('loan*')).toBeUndefined();
    expect(shortPrefix('lo*')).toBeUndefined();
    expect(shortPrefix('l*')).toBe('l');
    expect(shortPrefix('loans OR x*')).toBe('x');
    expect(shortPrefix('"consumer l"*')).toBe('l');
    expect(shortPrefix('"consumer lo"*')).toBeUndefined();
    expect(shortPrefix('"a*"')).toBeUndefined();
    expect(shortPrefix('title: é*')).toBe('é');
    expect(shortPrefix('loan_s*')).toBe('s');
  });
});
