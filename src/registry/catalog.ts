/**
 * The data catalog (DESIGN §8, EntDSM's "data registration"): signed descriptions of datasets that
 * stay with their owners, recorded by `catalogPublish` / `catalogWithdraw` admin transactions in the
 * __system Raft log, so every node holds the same catalog and derives the same full-text index from
 * it. A description never holds a row of its dataset: its columns' names and types, its row count,
 * the SHA-256 of what was loaded, and what the owner's policy allows.
 *
 * Entries are keyed `owner/dataset`. A publish of an existing entry is an update and must carry the
 * next version; a withdrawn entry may be published again from the version after its last one.
 */
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';

export const catalogLimits = {
  datasetNameLengthMax: 128,
  domainLengthMax: 64,
  titleLengthMax: 200,
  descriptionLengthMax: 8 * 1024,
  tagsMax: 32,
  tagLengthMax: 64,
  columnsMax: 256,
  columnNameLengthMax: 64,
  /** Entries one catalogSearch answers at most. */
  searchResultsMax: 100,
  queryLengthMax: 512,
} as const;

/** A dataset name: what `dataset add NAME` accepts and what a job's FROM names. */
export const datasetNamePattern = /^[a-zA-Z][a-zA-Z0-9_-]{0,127}$/;
/** A column name as loading normalises it: lower case, a letter first, then letters, digits and _. */
export const columnNamePattern = /^[a-z_][a-z0-9_]{0,63}$/;

const datasetName = t.string({
  minLength: 1,
  maxLength: catalogLimits.datasetNameLengthMax,
  pattern: datasetNamePattern,
});
const columnName = t.string({
  minLength: 1,
  maxLength: catalogLimits.columnNameLengthMax,
  pattern: columnNamePattern,
});

export const catalogColumnSchema = t.record({
  name: columnName,
  type: t.oneOf('integer', 'real', 'text', 'boolean'),
});

/** What the catalog shows of the owner's policy (datashare `PolicySummary`, with columns listed). */
export const catalogPolicySchema = t.record({
  /** Every column a job may name; the owner's "*" is written out as the full list. */
  allowedColumns: t.array(columnName, { maxItems: catalogLimits.columnsMax }),
  aggregates: t.array(t.oneOf('count', 'sum', 'avg', 'min', 'max', 'quantile'), { maxItems: 6 }),
  models: t.array(t.oneOf('linear', 'logistic'), { maxItems: 2 }),
  minGroupSize: t.uint({ min: 10, max: 1_000_000 }),
  approval: t.oneOf('auto', 'manual'),
});
export type CatalogPolicy = Infer<typeof catalogPolicySchema>;

/** The description an owner signs; the fields of a `catalogPublish` action besides `kind`. */
export const catalogDescriptionFields = {
  dataset: datasetName,
  /** 1 for a new entry; the last version + 1 for an update or a publish after a withdrawal. */
  version: t.uint({ min: 1 }),
  domain: t.string({ minLength: 1, maxLength: catalogLimits.domainLengthMax, pattern: /^[a-zA-Z0-9._-]+$/ }),
  title: t.string({ minLength: 1, maxLength: catalogLimits.titleLengthMax }),
  description: t.string({ maxLength: catalogLimits.descriptionLengthMax }),
  tags: t.array(t.string({ minLength: 1, maxLength: catalogLimits.tagLengthMax, pattern: /^[^\s]+$/ }), {
    maxItems: catalogLimits.tagsMax,
  }),
  columns: t.array(catalogColumnSchema, { minItems: 1, maxItems: catalogLimits.columnsMax }),
  rowCount: t.uint(),
  /** SHA-256 of the dataset as loaded (the owner's file), so a requester can tell versions apart. */
  contentHash: t.bytes({ length: 32 }),
  policy: catalogPolicySchema,
};

export const catalogPublishActionSchema = t.record({
  kind: t.literal('catalogPublish'),
  ...catalogDescriptionFields,
});
export const catalogWithdrawActionSchema = t.record({
  kind: t.literal('catalogWithdraw'),
  dataset: datasetName,
});

/** A catalog entry as every node holds it. */
export const catalogEntrySchema = t.record({
  owner: t.string({ minLength: 1, maxLength: 128 }),
  ...catalogDescriptionFields,
  /** The admin transaction's timestamp (ms) of this version. */
  publishedAt: t.uint(),
  /** __system index of this version. */
  index: t.uint(),
});
export type CatalogEntry = Infer<typeof catalogEntrySchema>;

/** The catalog key of `owner`'s `dataset`. */
export function catalogKey(owner: string, dataset: string): string {
  return `${owner}/${dataset}`;
}

/** One ranked answer of a catalog search. */
export const catalogHitSchema = t.record({
  entry: catalogEntrySchema,
  /** Position in the ranking, from 1. */
  rank: t.uint({ min: 1 }),
  /**
   * FTS5 BM25 score (lower is better), as a decimal string rounded to 9 significant digits: the same
   * on every node, and CBOR-encodable (the codec has no floats).
   */
  score: t.string({ maxLength: 32 }),
  /** The description (or title) with the matched terms between [ and ]. */
  snippet: t.string({ maxLength: 1024 }),
});
export type CatalogHit = Infer<typeof catalogHitSchema>;
