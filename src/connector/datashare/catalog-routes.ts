/**
 * The data catalog routes of the connector's REST API (DESIGN §8): a thin transport over the
 * CatalogClient, with the same authentication, validation and error body as every other route
 * (http-api.ts registers them on its Fastify instance, inside its hooks and error handler).
 *
 *   POST   /v1/catalog                   publish (or update) a description of one of our datasets
 *   GET    /v1/catalog/search?q=&domain=&owner=&limit=   ranked full-text search
 *   GET    /v1/catalog/:owner/:dataset   one entry
 *   DELETE /v1/catalog/:dataset          withdraw our entry
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { catalogLimits, datasetNamePattern } from '../../registry/catalog.js';
import type { CatalogClient } from './catalog-client.js';

const datasetName = {
  type: 'string',
  minLength: 1,
  maxLength: catalogLimits.datasetNameLengthMax,
  pattern: datasetNamePattern.source,
  description: 'A dataset name, as `ledgerbus dataset add` loaded it.',
} as const;
const organization = { type: 'string', minLength: 1, maxLength: 128 } as const;
const domain = {
  type: 'string',
  minLength: 1,
  maxLength: catalogLimits.domainLengthMax,
  pattern: '^[a-zA-Z0-9._-]+$',
  description: 'A subject area, e.g. finance (letters, digits, ".", "_" and "-").',
} as const;

/** The request schemas Fastify validates the catalog routes with (and the OpenAPI document can list). */
export const catalogRequestSchemas = {
  publishBody: {
    type: 'object',
    required: ['dataset', 'domain', 'title', 'description'],
    additionalProperties: false,
    properties: {
      dataset: datasetName,
      domain,
      title: { type: 'string', minLength: 1, maxLength: catalogLimits.titleLengthMax },
      description: { type: 'string', maxLength: catalogLimits.descriptionLengthMax },
      tags: {
        type: 'array',
        maxItems: catalogLimits.tagsMax,
        items: { type: 'string', minLength: 1, maxLength: catalogLimits.tagLengthMax, pattern: '^\\S+$' },
      },
    },
  },
  searchQuery: {
    type: 'object',
    additionalProperties: false,
    properties: {
      q: {
        type: 'string',
        maxLength: catalogLimits.queryLengthMax,
        description: 'FTS5 query: words, "phrases", prefix*, AND / OR / NOT. Empty lists every entry.',
      },
      domain,
      owner: { ...organization, description: 'Only entries of this organization.' },
      limit: { type: 'integer', minimum: 1, maximum: catalogLimits.searchResultsMax },
    },
  },
  entryParams: {
    type: 'object',
    required: ['owner', 'dataset'],
    properties: { owner: organization, dataset: datasetName },
  },
  datasetParams: {
    type: 'object',
    required: ['dataset'],
    properties: { dataset: datasetName },
  },
} as const;

interface PublishBody {
  dataset: string;
  domain: string;
  title: string;
  description: string;
  tags?: string[];
}

interface SearchQuery {
  q?: string;
  domain?: string;
  owner?: string;
  limit?: number;
}

/**
 * Registers the catalog routes on `app`. Without a CatalogClient (the in-memory test connector)
 * they answer UNKNOWN_METHOD.
 */
export function registerCatalogRoutes(app: FastifyInstance, catalog: CatalogClient | undefined): void {
  const client = (): CatalogClient => {
    if (catalog === undefined) {
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'this connector does not serve the data catalog');
    }
    return catalog;
  };

  app.post<{ Body: PublishBody }>(
    '/v1/catalog',
    { schema: { body: catalogRequestSchemas.publishBody } },
    async (request) => {
      const { dataset, domain: area, title, description, tags } = request.body;
      return client().publish({
        dataset,
        domain: area,
        title,
        description,
        ...(tags === undefined ? {} : { tags }),
      });
    },
  );

  app.get<{ Querystring: SearchQuery }>(
    '/v1/catalog/search',
    { schema: { querystring: catalogRequestSchemas.searchQuery } },
    async (request) => {
      const { q, domain: area, owner, limit } = request.query;
      return client().search({
        query: q ?? '',
        ...(area === undefined ? {} : { domain: area }),
        ...(owner === undefined ? {} : { owner }),
        ...(limit === undefined ? {} : { limit }),
      });
    },
  );

  app.get<{ Params: { owner: string; dataset: string } }>(
    '/v1/catalog/:owner/:dataset',
    { schema: { params: catalogRequestSchemas.entryParams } },
    async (request) => client().entry(request.params.owner, request.params.dataset),
  );

  app.delete<{ Params: { dataset: string } }>(
    '/v1/catalog/:dataset',
    { schema: { params: catalogRequestSchemas.datasetParams } },
    async (request) => client().withdraw(request.params.dataset),
  );
}
