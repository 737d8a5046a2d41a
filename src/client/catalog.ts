/**
 * The data catalog (DESIGN §8) from an application: describe this organization's datasets on the
 * ledger, and find anyone's by a ranked full-text search that every node answers alike. Every call
 * goes to this organization's connector; a description holds the dataset's columns, row count,
 * content hash and policy summary, never a row.
 *
 *   const catalog = new Catalog(transport);
 *   await catalog.publish({ dataset: 'loans', domain: 'finance', title: 'Loans by region',
 *                           description: 'Monthly repayments…', tags: ['credit'] });
 *   const { hits } = await catalog.search({ query: 'loan* AND region', domain: 'finance' });
 *   const entry = await catalog.entry('org2', 'loans');   // DATASET_NOT_FOUND if not listed
 *   await catalog.withdraw('loans');
 */
import type {
  CatalogEntryJson,
  CatalogPublishInput,
  CatalogSearchInput,
  CatalogSearchResult,
  CatalogWithdrawResult,
} from '../connector/datashare/catalog-client.js';
import type { Transport } from './transport.js';

export type {
  CatalogEntryJson,
  CatalogHitJson,
  CatalogPublishInput,
  CatalogSearchInput,
  CatalogSearchResult,
  CatalogWithdrawResult,
} from '../connector/datashare/catalog-client.js';

export class Catalog {
  constructor(private readonly transport: Transport) {}

  /**
   * Publishes (or updates, as the next version) this organization's description of its local
   * dataset `input.dataset`; resolves with the entry as the catalog holds it.
   */
  async publish(input: CatalogPublishInput): Promise<CatalogEntryJson> {
    return this.transport.json<CatalogEntryJson>('POST', '/v1/catalog', {
      json: {
        dataset: input.dataset,
        domain: input.domain,
        title: input.title,
        description: input.description,
        ...(input.tags === undefined ? {} : { tags: [...input.tags] }),
      },
    });
  }

  /**
   * Ranked entries (best first) for an FTS5 query — words, "phrases", prefix*, AND / OR / NOT — or
   * every entry for an empty one; QUERY_REJECTED for a query that does not parse.
   */
  async search(input: CatalogSearchInput): Promise<CatalogSearchResult> {
    return this.transport.json<CatalogSearchResult>('GET', '/v1/catalog/search', {
      query: { q: input.query, domain: input.domain, owner: input.owner, limit: input.limit },
    });
  }

  /** `owner`'s entry for `dataset`; DATASET_NOT_FOUND if the catalog does not show one. */
  async entry(owner: string, dataset: string): Promise<CatalogEntryJson> {
    return this.transport.json<CatalogEntryJson>(
      'GET',
      `/v1/catalog/${encodeURIComponent(owner)}/${encodeURIComponent(dataset)}`,
    );
  }

  /** Withdraws this organization's entry for `dataset`; DATASET_NOT_FOUND if it has none. */
  async withdraw(dataset: string): Promise<CatalogWithdrawResult> {
    return this.transport.json<CatalogWithdrawResult>('DELETE', `/v1/catalog/${encodeURIComponent(dataset)}`);
  }
}
