/**
 * A node's full-text index of the data catalog (DESIGN §8): SQLite FTS5 with BM25 ranking, in
 * memory, derived from the __system state machine's catalog (registry/catalog-state.ts) and fed by
 * its changes. Every node holds the same catalog at the same __system index, and BM25 depends only
 * on the documents indexed (row count, column lengths, each term's document frequency) — not on the
 * order they arrived in, the rowids they got or the batches they were written in — so the same query
 * ranks the same everywhere; ties are broken by owner then dataset, and scores travel as decimal
 * strings of 9 significant digits.
 *
 * The index keeps up incrementally: a change is queued, and the queue is written in one transaction
 * when it is long or when someone reads (a search, an entry lookup). Only a restored snapshot (a
 * `reset`) rebuilds it.
 *
 * Visibility is decided at read time by the caller's `visible(owner)` (the live registry: only
 * APPROVED owners' entries are shown), so a suspension hides an owner's entries at once and an
 * approval shows them again without touching the index.
 */
import Database from 'better-sqlite3';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { CatalogChange } from '../registry/catalog-state.js';
import { catalogKey, catalogLimits } from '../registry/catalog.js';
import type { CatalogEntry, CatalogHit } from '../registry/catalog.js';

export interface CatalogSearchRequest {
  /** FTS5 query syntax: words, "phrases", prefix*, AND / OR / NOT, NEAR(...); empty lists everything. */
  readonly query: string;
  /** Only entries of this domain (exact). */
  readonly domain?: string;
  /** Only entries of this owner (exact). */
  readonly owner?: string;
  /** Hits at most: default 20, at most catalogLimits.searchResultsMax. */
  readonly limit?: number;
}

/** Where the index's entries come from: the __system state machine. */
export interface CatalogSource {
  onCatalogChange(listener: (change: CatalogChange) => void): () => void;
  catalogEntries(): Iterable<CatalogEntry>;
}

export const catalogSearchLimitDefault = 20;

/**
 * BM25 weights per FTS column, in the table's column order: a term in the title counts most, then in
 * the tags and the dataset's name, then the description; owner, domain and column names least.
 */
const columnWeights = {
  owner: 1,
  dataset: 4,
  domain: 2,
  title: 10,
  description: 2,
  tags: 5,
  columns: 1,
} as const;
const ftsColumns = Object.keys(columnWeights) as (keyof typeof columnWeights)[];
const bm25Weights = ftsColumns.map((column) => columnWeights[column].toFixed(1)).join(', ');
const titleColumn = ftsColumns.indexOf('title');
const descriptionColumn = ftsColumns.indexOf('description');

/** Changes queued before they are written in one transaction anyway. */
const pendingMax = 1024;
/** Tokens of context a snippet shows around its matches. */
const snippetTokens = 16;
/** Characters of the description a listing (empty query) shows. */
const listingSnippetChars = 200;
const snippetCharsMax = 1024;

// Control characters FTS5 writes around matches; they become [ ] only after the snippet is known to
// hold a match (a description may hold brackets of its own, which must not pass for one).
const openMark = '\u0002';
const closeMark = '\u0003';

interface Row {
  readonly rowid: number;
  readonly entry: CatalogEntry;
}

interface RankedRow {
  readonly rowid: number;
  readonly score: number;
}

interface Filters {
  readonly domain: string | undefined;
  readonly owner: string | undefined;
  /** Whether some owner's entries are hidden (their owners in the `hidden` parameter). */
  readonly hidden: boolean;
}

export class CatalogIndex {
  private readonly db: Database.Database;
  /** One per catalog entry: the index mirrors the registry's catalog. */
  private readonly rows = new Map<string, Row>();
  /** One per catalog entry, as `rows`. */
  private readonly byRowid = new Map<number, CatalogEntry>();
  /** Entries per owner, so a search asks `visible` once per owner, not once per entry. One per owner. */
  private readonly owners = new Map<string, number>();
  /** Changes not yet written: flushed at the next read, or at `pendingMax`. */
  private pending: CatalogChange[] = [];
  private nextRowid = 1;
  private detach: (() => void) | undefined;
  private readonly statements: {
    readonly insertText: Database.Statement;
    readonly deleteText: Database.Statement;
    readonly insertRow: Database.Statement;
    readonly deleteRow: Database.Statement;
    readonly snippets: Database.Statement;
  };
  /** Ranking and listing statements by the filters they carry (see `statement`): one per query shape. */
  private readonly searches = new Map<string, Database.Statement>();
  private readonly write: (changes: readonly CatalogChange[]) => void;

  constructor() {
    this.db = new Database(':memory:');
    this.db.pragma('journal_mode = OFF');
    // unicode61 folds case and diacritics. Prefix indexes of 2 to 4 characters make `lo*`, `loa*`
    // and `loan*` one doclist read each instead of a merge of the doclists of every term they start
    // (longer prefixes start few terms; one character is refused, see `shortPrefix`).
    this.db.exec(`
      CREATE TABLE entries (
        rowid INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        dataset TEXT NOT NULL,
        domain TEXT NOT NULL
      );
      CREATE UNIQUE INDEX entries_key ON entries (owner, dataset);
      CREATE INDEX entries_domain ON entries (domain, owner, dataset);
      CREATE VIRTUAL TABLE catalog_fts USING fts5(
        ${ftsColumns.join(', ')},
        tokenize = 'unicode61 remove_diacritics 2',
        prefix = '2 3 4'
      );
    `);
    this.statements = {
      insertText: this.db.prepare(
        `INSERT INTO catalog_fts (rowid, ${ftsColumns.join(', ')}) VALUES (?, ${ftsColumns.map(() => '?').join(', ')})`,
      ),
      deleteText: this.db.prepare('DELETE FROM catalog_fts WHERE rowid = ?'),
      insertRow: this.db.prepare('INSERT INTO entries (rowid, owner, dataset, domain) VALUES (?, ?, ?, ?)'),
      deleteRow: this.db.prepare('DELETE FROM entries WHERE rowid = ?'),
      snippets: this.db.prepare(`
        SELECT rowid,
          snippet(catalog_fts, ${descriptionColumn}, '${openMark}', '${closeMark}', '…', ${snippetTokens}) AS description,
          snippet(catalog_fts, ${titleColumn}, '${openMark}', '${closeMark}', '…', ${snippetTokens}) AS title
        FROM catalog_fts
        WHERE catalog_fts MATCH :query AND rowid IN (SELECT value FROM json_each(:rowids))`),
    };
    this.write = this.db.transaction((changes: readonly CatalogChange[]) => {
      for (const change of changes) this.applyOne(change);
    });
  }

  /** An index of `source`'s catalog now, kept current with its changes until `close`. */
  static follow(source: CatalogSource): CatalogIndex {
    const index = new CatalogIndex();
    index.apply([{ type: 'reset', entries: [...source.catalogEntries()] }]);
    index.detach = source.onCatalogChange((change) => index.enqueue(change));
    return index;
  }

  /** Queues a change; written with the next read, or once the queue is long. */
  enqueue(change: CatalogChange): void {
    // A reset replaces everything before it: what was queued is moot.
    if (change.type === 'reset') this.pending = [];
    this.pending.push(change);
    if (this.pending.length >= pendingMax) this.flush();
  }

  /** Writes `changes` (after anything queued) in one transaction. */
  apply(changes: readonly CatalogChange[]): void {
    this.flush();
    this.write(changes);
  }

  /** Writes the queued changes now. */
  flush(): void {
    if (this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    this.write(changes);
  }

  /** Entries indexed (visible or not). */
  get size(): number {
    this.flush();
    return this.rows.size;
  }

  /**
   * The entries matching `request.query`, best first (BM25, then owner and dataset), leaving out
   * owners for which `visible` is false. An empty query lists the (filtered) entries by owner and
   * dataset. A query FTS5 cannot parse is QUERY_REJECTED.
   */
  search(request: CatalogSearchRequest, visible: (owner: string) => boolean): CatalogHit[] {
    this.flush();
    const query = request.query.trim();
    if (query.length > catalogLimits.queryLengthMax) {
      throw new LedgerbusError(
        ErrorCode.QueryRejected,
        `catalog search: the query has ${query.length} characters, at most ${catalogLimits.queryLengthMax} are allowed`,
      );
    }
    const prefix = shortPrefix(query);
    if (prefix !== undefined) {
      // Unindexed (the prefix index starts at 2 characters), "a*" would merge the doclists of every
      // term starting with a: seconds of a node's time for one request.
      throw new LedgerbusError(
        ErrorCode.QueryRejected,
        `catalog search: a prefix needs at least ${prefixLengthMin} letters before * (${prefix}*)`,
      );
    }
    const limit = Math.min(
      Math.max(1, request.limit ?? catalogSearchLimitDefault),
      catalogLimits.searchResultsMax,
    );
    const hidden = [...this.owners.keys()].filter((owner) => !visible(owner));
    const filters = { domain: request.domain, owner: request.owner, hidden: hidden.length > 0 };
    const parameters = {
      ...(request.domain === undefined ? {} : { domain: request.domain }),
      ...(request.owner === undefined ? {} : { owner: request.owner }),
      ...(hidden.length === 0 ? {} : { hidden: JSON.stringify(hidden) }),
      limit,
    };
    if (query === '') {
      const rowids = (this.statement('list', filters).all(parameters) as { rowid: number }[]).map(
        (row) => row.rowid,
      );
      return rowids.map((rowid, position) => {
        const entry = this.byRowid.get(rowid)!;
        return { entry, rank: position + 1, score: '0', snippet: listingSnippet(entry) };
      });
    }
    let ranked: RankedRow[];
    try {
      ranked = this.ranked(query, filters, parameters);
    } catch (error) {
      // SQLITE_ERROR is what FTS5 raises for a query it cannot parse (the SQL itself is fixed).
      if (error instanceof Database.SqliteError && error.code === 'SQLITE_ERROR') {
        throw new LedgerbusError(
          ErrorCode.QueryRejected,
          `catalog search: ${error.message.replace(/^fts5: /, '')} in ${JSON.stringify(query)}; write words, "exact phrases", prefixes like loan*, and AND / OR / NOT (quote words with - or :)`,
        );
      }
      throw error;
    }
    const snippets = new Map<number, { description: string; title: string }>();
    if (ranked.length > 0) {
      const rows = this.statements.snippets.all({
        query,
        rowids: JSON.stringify(ranked.map((row) => row.rowid)),
      }) as { rowid: number; description: string | null; title: string | null }[];
      for (const row of rows) {
        snippets.set(row.rowid, { description: row.description ?? '', title: row.title ?? '' });
      }
    }
    return ranked.map((row, position) => {
      const entry = this.byRowid.get(row.rowid)!;
      return {
        entry,
        rank: position + 1,
        score: formatScore(row.score),
        snippet: pickSnippet(entry, snippets.get(row.rowid)),
      };
    });
  }

  /** `owner`'s entry for `dataset`, unless absent or `visible(owner)` is false. */
  entry(owner: string, dataset: string, visible: (owner: string) => boolean): CatalogEntry | undefined {
    this.flush();
    const row = this.rows.get(catalogKey(owner, dataset));
    if (row === undefined || !visible(owner)) return undefined;
    return row.entry;
  }

  close(): void {
    this.detach?.();
    this.detach = undefined;
    this.pending = [];
    if (this.db.open) this.db.close();
  }

  /**
   * The best `parameters.limit` matches of `query`, by score then owner and dataset.
   *
   * BM25 is computed for every match, so a common word costs in proportion to the entries holding
   * it; the rest is kept small. Without a domain or owner filter the FTS table is ranked alone (no
   * join per match: a quarter of the time) by score only, one row beyond the limit, and the ties are
   * ordered here — unless a tie spans the limit, when which tied entries make the cut matters and
   * the joined statement, which orders by owner and dataset itself, decides. A domain or owner
   * filter joins the entries table, whose condition then spares BM25 the rows it excludes.
   */
  private ranked(
    query: string,
    filters: Filters,
    parameters: Readonly<Record<string, unknown>>,
  ): RankedRow[] {
    const limit = parameters['limit'] as number;
    if (filters.domain === undefined && filters.owner === undefined) {
      const rows = this.statement('ranked', filters).all({
        ...parameters,
        query,
        limit: limit + 1,
      }) as RankedRow[];
      const spansLimit = rows.length > limit && rows[limit - 1]!.score === rows[limit]!.score;
      if (!spansLimit) {
        return rows.slice(0, limit).sort((a, b) => this.compareRanked(a, b));
      }
    }
    return this.statement('joined', filters).all({ ...parameters, query }) as RankedRow[];
  }

  private compareRanked(a: RankedRow, b: RankedRow): number {
    if (a.score !== b.score) return a.score < b.score ? -1 : 1;
    const left = this.byRowid.get(a.rowid)!;
    const right = this.byRowid.get(b.rowid)!;
    return compareStrings(left.owner, right.owner) || compareStrings(left.dataset, right.dataset);
  }

  /**
   * The statement of `kind` with only the filters a search uses: every condition costs per
   * matching row, and a query for a common word matches most entries.
   */
  private statement(kind: 'ranked' | 'joined' | 'list', filters: Filters): Database.Statement {
    const conditions = [
      ...(filters.domain === undefined ? [] : ['e.domain = :domain']),
      ...(filters.owner === undefined ? [] : ['e.owner = :owner']),
      ...(filters.hidden
        ? [
            kind === 'ranked'
              ? 'f.rowid NOT IN (SELECT h.rowid FROM entries h WHERE h.owner IN (SELECT value FROM json_each(:hidden)))'
              : 'e.owner NOT IN (SELECT value FROM json_each(:hidden))',
          ]
        : []),
    ];
    const name = `${kind} ${conditions.join(' AND ')}`;
    let statement = this.searches.get(name);
    if (statement === undefined) {
      const where = conditions.map((condition) => ` AND ${condition}`).join('');
      // Ranked first, snippets after for the few rows kept: SQLite's sorter would otherwise build a
      // snippet for every match of a common word.
      const sql = {
        ranked: `SELECT f.rowid AS rowid, bm25(catalog_fts, ${bm25Weights}) AS score
          FROM catalog_fts f
          WHERE catalog_fts MATCH :query${where}
          ORDER BY score
          LIMIT :limit`,
        joined: `SELECT f.rowid AS rowid, bm25(catalog_fts, ${bm25Weights}) AS score
          FROM catalog_fts f JOIN entries e ON e.rowid = f.rowid
          WHERE catalog_fts MATCH :query${where}
          ORDER BY score, e.owner, e.dataset
          LIMIT :limit`,
        list: `SELECT e.rowid AS rowid FROM entries e
          WHERE 1${where}
          ORDER BY e.owner, e.dataset
          LIMIT :limit`,
      }[kind];
      statement = this.db.prepare(sql);
      this.searches.set(name, statement);
    }
    return statement;
  }

  private applyOne(change: CatalogChange): void {
    switch (change.type) {
      case 'put': {
        const previous = this.rows.get(change.key);
        if (previous !== undefined) this.remove(change.key, previous);
        this.insert(change.key, change.entry, previous?.rowid ?? this.nextRowid++);
        return;
      }
      case 'delete': {
        const previous = this.rows.get(change.key);
        if (previous !== undefined) this.remove(change.key, previous);
        return;
      }
      case 'reset': {
        this.db.exec('DELETE FROM catalog_fts; DELETE FROM entries;');
        this.rows.clear();
        this.byRowid.clear();
        this.owners.clear();
        for (const entry of change.entries) {
          this.insert(catalogKey(entry.owner, entry.dataset), entry, this.nextRowid++);
        }
        return;
      }
    }
  }

  private insert(key: string, entry: CatalogEntry, rowid: number): void {
    this.statements.insertText.run(rowid, ...ftsColumns.map((column) => ftsText(entry, column)));
    this.statements.insertRow.run(rowid, entry.owner, entry.dataset, entry.domain);
    this.rows.set(key, { rowid, entry });
    this.byRowid.set(rowid, entry);
    this.owners.set(entry.owner, (this.owners.get(entry.owner) ?? 0) + 1);
  }

  private remove(key: string, row: Row): void {
    this.statements.deleteText.run(row.rowid);
    this.statements.deleteRow.run(row.rowid);
    this.rows.delete(key);
    this.byRowid.delete(row.rowid);
    const count = (this.owners.get(row.entry.owner) ?? 1) - 1;
    if (count === 0) this.owners.delete(row.entry.owner);
    else this.owners.set(row.entry.owner, count);
  }
}

/** The text an entry gives each FTS column. */
function ftsText(entry: CatalogEntry, column: (typeof ftsColumns)[number]): string {
  switch (column) {
    case 'tags':
      return entry.tags.join(' ');
    case 'columns':
      return entry.columns.map((item) => item.name).join(' ');
    default:
      return entry[column];
  }
}

/**
 * A BM25 score as the answer carries it: 9 significant digits (so the last bits of a double never
 * show), lower is better, and no negative zero.
 */
export function formatScore(score: number): string {
  const rounded = Number(score.toPrecision(9));
  return rounded === 0 ? '0' : String(rounded);
}

/** The description's snippet if it holds a match, else the title's if it does, else the description. */
function pickSnippet(
  entry: CatalogEntry,
  snippets: { description: string; title: string } | undefined,
): string {
  const description = snippets?.description ?? '';
  const title = snippets?.title ?? '';
  const chosen = description.includes(openMark)
    ? description
    : title.includes(openMark)
      ? title
      : description !== ''
        ? description
        : entry.title;
  return clip(chosen.replaceAll(openMark, '[').replaceAll(closeMark, ']'), snippetCharsMax);
}

function listingSnippet(entry: CatalogEntry): string {
  return clip(entry.description === '' ? entry.title : entry.description, listingSnippetChars);
}

/**
 * The first prefix term (`x*`, `"… x"*`) of an FTS5 query with fewer than `prefixLengthMin` letters
 * before the *, or undefined. A * inside a string is not an operator (the tokenizer drops it).
 */
export function shortPrefix(query: string): string | undefined {
  const characters = [...query];
  let quoted = false;
  for (let at = 0; at < characters.length; at++) {
    const character = characters[at]!;
    if (character === '"') quoted = !quoted; // "" inside a string toggles twice: still quoted
    if (quoted || character !== '*') continue;
    let end = at - 1;
    if (characters[end] === '"') end--;
    let start = end;
    while (start >= 0 && tokenCharacter.test(characters[start]!)) start--;
    const term = characters.slice(start + 1, end + 1).join('');
    if ([...term].length < prefixLengthMin) return term;
  }
  return undefined;
}

const prefixLengthMin = 2;
const tokenCharacter = /[\p{L}\p{N}]/u;

/** Code-unit order, as SQLite's BINARY collation orders the ASCII names of owners and datasets. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max - 1)}…`;
}
