/**
 * The connector's side of the data catalog (DESIGN §8): describing this organization's datasets on
 * the ledger and searching everyone's. A description is built from the dataset as the connector
 * loaded it — its columns and types, row count, content hash and what its policy allows (the
 * policy's "*" written out as every column) — and committed as a signed `catalogPublish` admin
 * transaction; no row of the dataset ever leaves. Searches and lookups are answered by this
 * organization's node from its index of the replicated catalog.
 */
import { toHex } from '../../codec/index.js';
import type { DatasetPolicy } from '../../datashare/types.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../../errors.js';
import { AdminReject } from '../../registry/admin-transactions.js';
import { catalogLimits } from '../../registry/catalog.js';
import type { CatalogEntry, CatalogHit } from '../../registry/catalog.js';
import type { AdminActionInput, AdminResult, CatalogColumnInput, CatalogPolicyInput } from '../api-types.js';
import type { NodeSession } from '../session/node-session.js';

/** A dataset as the connector holds it: what a catalog entry describes. */
export interface CatalogDatasetSource {
  readonly name: string;
  readonly columns: readonly CatalogColumnInput[];
  readonly rowCount: number;
  /** SHA-256 of the dataset as loaded. */
  readonly contentHash: Uint8Array;
  readonly policy: DatasetPolicy;
}

export interface CatalogClientOptions {
  readonly organization: string;
  /** The organization's node: its catalogSearch and catalogEntry methods. */
  readonly session: Pick<NodeSession, 'call'>;
  /** Signs and commits admin transactions as this organization (ConnectorAdmin). */
  readonly admin: { admin(input: AdminActionInput): Promise<AdminResult> };
  /** The organization's datasets; `require` throws DATASET_NOT_FOUND for one it does not have. */
  readonly datasets: { require(name: string): CatalogDatasetSource | Promise<CatalogDatasetSource> };
}

export interface CatalogPublishInput {
  /** The local dataset's name (`ledgerbus dataset add NAME`). */
  readonly dataset: string;
  readonly domain: string;
  readonly title: string;
  readonly description: string;
  readonly tags?: readonly string[];
}

export interface CatalogSearchInput {
  /** FTS5 syntax: words, "phrases", prefix*, AND / OR / NOT; empty lists every entry. */
  readonly query: string;
  readonly domain?: string;
  readonly owner?: string;
  /** Default 20, at most 100. */
  readonly limit?: number;
}

/** A catalog entry as the REST API and the SDK carry it: `contentHash` in hex. */
export interface CatalogEntryJson {
  readonly owner: string;
  readonly dataset: string;
  readonly version: number;
  readonly domain: string;
  readonly title: string;
  readonly description: string;
  readonly tags: readonly string[];
  readonly columns: readonly CatalogColumnInput[];
  readonly rowCount: number;
  readonly contentHash: string;
  readonly policy: CatalogPolicyInput;
  /** When this version was published (ms since the epoch, the admin transaction's timestamp). */
  readonly publishedAt: number;
  /** The __system index of this version. */
  readonly index: number;
}

export interface CatalogHitJson {
  readonly entry: CatalogEntryJson;
  /** 1 for the best match. */
  readonly rank: number;
  /** BM25 (lower is better), 9 significant digits; the same on every node. */
  readonly score: string;
  /** The description (or title) with the matched terms between [ and ]. */
  readonly snippet: string;
}

export interface CatalogSearchResult {
  readonly hits: readonly CatalogHitJson[];
  /** The __system index the node answered at. */
  readonly index: number;
}

export interface CatalogWithdrawResult {
  readonly owner: string;
  readonly dataset: string;
  /** The __system index of the withdrawal. */
  readonly index: number;
}

/** Publishes tried when the entry's version moved meanwhile (another publish, or a withdrawal). */
const publishAttemptsMax = 3;

export class CatalogClient {
  constructor(private readonly options: CatalogClientOptions) {}

  /**
   * Describes local dataset `input.dataset` in the catalog: the next version of this organization's
   * entry for it (1 for a new one). Resolves with the entry as this organization's node holds it.
   */
  async publish(input: CatalogPublishInput): Promise<CatalogEntryJson> {
    const source = await this.options.datasets.require(input.dataset);
    const names = source.columns.map((column) => column.name);
    const allowed = source.policy.allowedColumns === '*' ? names : [...source.policy.allowedColumns];
    const missing = allowed.filter((column) => !names.includes(column));
    if (missing.length > 0) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `the policy of ${source.name} allows ${missing.join(', ')}, which it does not have: fix allowedColumns`,
      );
    }
    let version = await this.nextVersion(source.name);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.options.admin.admin({
          kind: 'catalogPublish',
          dataset: source.name,
          version,
          domain: input.domain,
          title: input.title,
          description: input.description,
          tags: [...new Set(input.tags ?? [])],
          columns: source.columns.map((column) => ({ name: column.name, type: column.type })),
          rowCount: source.rowCount,
          contentHash: toHex(source.contentHash),
          policy: {
            allowedColumns: allowed,
            aggregates: [...source.policy.aggregates],
            models: [...source.policy.models],
            minGroupSize: source.policy.minGroupSize,
            approval: source.policy.approval,
          },
        });
        break;
      } catch (error) {
        // The registry names the version it expects: a withdrawn entry (which catalogEntry does not
        // show) goes on from its last version, and a concurrent publish may have taken ours.
        const expected = expectedVersion(error);
        if (expected === undefined || attempt >= publishAttemptsMax) throw error;
        version = expected;
      }
    }
    return this.entry(this.options.organization, source.name);
  }

  /** Withdraws this organization's entry for `dataset`; DATASET_NOT_FOUND if it has none. */
  async withdraw(dataset: string): Promise<CatalogWithdrawResult> {
    try {
      const result = await this.options.admin.admin({ kind: 'catalogWithdraw', dataset });
      return { owner: this.options.organization, dataset, index: result.index };
    } catch (error) {
      if (
        isLedgerbusError(error, ErrorCode.AdminRejected) &&
        error.details?.reason === AdminReject.DatasetUnknown
      ) {
        throw new LedgerbusError(
          ErrorCode.DatasetNotFound,
          `${this.options.organization} has no catalog entry for ${dataset} (${error.message})`,
        );
      }
      throw error;
    }
  }

  /** Ranked entries for `input.query` (only approved owners' entries). QUERY_REJECTED if malformed. */
  async search(input: CatalogSearchInput): Promise<CatalogSearchResult> {
    if (input.limit !== undefined && (!Number.isSafeInteger(input.limit) || input.limit < 1)) {
      throw new LedgerbusError(ErrorCode.QueryRejected, 'catalog search: limit must be a positive integer');
    }
    const { hits, index } = await this.options.session.call('catalogSearch', {
      query: input.query,
      ...(input.domain === undefined ? {} : { domain: input.domain }),
      ...(input.owner === undefined ? {} : { owner: input.owner }),
      ...(input.limit === undefined ? {} : { limit: Math.min(input.limit, catalogLimits.searchResultsMax) }),
    });
    return { hits: hits.map(hitToJson), index };
  }

  /** `owner`'s entry for `dataset`; DATASET_NOT_FOUND if none is shown (withdrawn, owner not approved). */
  async entry(owner: string, dataset: string): Promise<CatalogEntryJson> {
    const { entry } = await this.options.session.call('catalogEntry', { owner, dataset });
    return entryToJson(entry);
  }

  /** The version a publish of `dataset` must carry, as far as the node shows it. */
  private async nextVersion(dataset: string): Promise<number> {
    try {
      const { entry } = await this.options.session.call('catalogEntry', {
        owner: this.options.organization,
        dataset,
      });
      return entry.version + 1;
    } catch (error) {
      if (isLedgerbusError(error, ErrorCode.DatasetNotFound)) return 1;
      throw error;
    }
  }
}

/** The version a VERSION_CONFLICT refusal names ("… publish version N, not M"), or undefined. */
function expectedVersion(error: unknown): number | undefined {
  if (!isLedgerbusError(error, ErrorCode.AdminRejected)) return undefined;
  if (error.details?.reason !== AdminReject.VersionConflict) return undefined;
  const match = /publish version (\d+)/.exec(error.message);
  return match === null ? undefined : Number(match[1]);
}

export function entryToJson(entry: CatalogEntry): CatalogEntryJson {
  return {
    owner: entry.owner,
    dataset: entry.dataset,
    version: entry.version,
    domain: entry.domain,
    title: entry.title,
    description: entry.description,
    tags: [...entry.tags],
    columns: entry.columns.map((column) => ({ name: column.name, type: column.type })),
    rowCount: entry.rowCount,
    contentHash: toHex(entry.contentHash),
    policy: {
      allowedColumns: [...entry.policy.allowedColumns],
      aggregates: [...entry.policy.aggregates],
      models: [...entry.policy.models],
      minGroupSize: entry.policy.minGroupSize,
      approval: entry.policy.approval,
    },
    publishedAt: entry.publishedAt,
    index: entry.index,
  };
}

export function hitToJson(hit: CatalogHit): CatalogHitJson {
  return { entry: entryToJson(hit.entry), rank: hit.rank, score: hit.score, snippet: hit.snippet };
}
