/**
 * The compute-to-data routes of the OpenAPI document (DESIGN §8): datasets (owner side) and jobs.
 * paths.ts hands in its helpers, so every operation gets the common errors and every status an
 * error code is listed under is checked against the error table, as for the other routes.
 */
import { ErrorCode } from '../../errors.js';
import { catalogRequestSchemas } from '../datashare/catalog-routes.js';
import { datashareRequestSchemas, datashareResponseSchemas } from './datashare-schemas.js';
import type { JsonSchema } from './request-schemas.js';

export interface PathHelpers {
  readonly operation: (spec: {
    operationId: string;
    summary: string;
    description?: string;
    parameters?: readonly JsonSchema[];
    requestBody?: JsonSchema;
    responses: Record<string, JsonSchema>;
  }) => JsonSchema;
  readonly parametersOf: (location: 'path' | 'query' | 'header', schema: JsonSchema) => JsonSchema[];
  readonly codes: (status: number, ...listed: ErrorCode[]) => string;
  readonly errorResponse: (description: string) => JsonSchema;
  readonly json: (schema: JsonSchema) => JsonSchema;
}

export function datasharePaths(helpers: PathHelpers): Record<string, Record<string, JsonSchema>> {
  const { operation, parametersOf, codes, errorResponse, json } = helpers;
  const datasetParameters = parametersOf('path', datashareRequestSchemas.datasetParams);
  const jobParameters = parametersOf('path', datashareRequestSchemas.jobParams);
  const datasetNotFound = errorResponse(`No such dataset (${codes(404, ErrorCode.DatasetNotFound)}).`);
  const jobNotFound = errorResponse(
    `No such job here, or no result yet (${codes(404, ErrorCode.MessageNotFound)}, retriable while the job runs); ` +
      `a dataset the catalog does not list (${codes(404, ErrorCode.DatasetNotFound)}).`,
  );
  const jobForbidden = errorResponse(
    `${codes(403, ErrorCode.Forbidden)}: the network refuses the job (an owner or requester that is not approved: ` +
      "`error.reason` carries the contract's reason code), or the result is sealed to another organization.",
  );
  const jobConflict = errorResponse(
    `${codes(409, ErrorCode.JobRejected)}: the owner rejected the job; ` +
      `${codes(409, ErrorCode.AmbiguousMessageId)}: the id names jobs of several partitions.`,
  );
  const jobFailed = errorResponse(
    `The job ran and failed at its owner: ${codes(422, ErrorCode.MinGroupSize, ErrorCode.DifferenceCheck, ErrorCode.JobLimitExceeded)}; ` +
      'the message names the owner and the detail. ' +
      `${codes(422, ErrorCode.MessageRejected)}: the network refused the job, or it does not wait for approval (\`error.reason\`).`,
  );
  const jobFailedElse = errorResponse(
    `The job failed at its owner for another reason (${codes(502, ErrorCode.JobFailed)}).`,
  );
  const resultCorrupt = errorResponse(
    `${codes(500, ErrorCode.PayloadCorrupt)}: the owner served a result that is not the one it recorded on-chain; ` +
      `${codes(500, ErrorCode.Internal)}: an unexpected failure, whose details are in the connector log.`,
  );
  const jobStatus = { description: 'The job.', content: json(datashareResponseSchemas.jobStatus) };
  const catalogEntry = {
    description: 'Catalog entry.',
    content: json(datashareResponseSchemas.catalogEntry),
  };
  const catalogForbidden = errorResponse(
    `${codes(403, ErrorCode.Forbidden)}: the catalog is for approved members and supervisors.`,
  );
  const catalogRejected = errorResponse(
    `The registry refused the transaction (${codes(409, ErrorCode.AdminRejected)}): \`error.reason\` names why (VERSION_CONFLICT, NOT_ALLOWED, ...).`,
  );

  return {
    '/v1/catalog': {
      post: operation({
        operationId: 'publishCatalogEntry',
        summary:
          'Describe one of our datasets in the catalog (the next version of its entry): columns, rows, hash, policy summary — never a row.',
        requestBody: { required: true, content: json(catalogRequestSchemas.publishBody) },
        responses: {
          '200': catalogEntry,
          '403': catalogForbidden,
          '404': datasetNotFound,
          '409': catalogRejected,
        },
      }),
    },
    '/v1/catalog/search': {
      get: operation({
        operationId: 'searchCatalog',
        summary:
          "Ranked full-text search of the catalog (BM25), answered alike by every node; only approved owners' entries.",
        parameters: parametersOf('query', catalogRequestSchemas.searchQuery),
        responses: {
          '200': { description: 'Ranked hits.', content: json(datashareResponseSchemas.catalogHits) },
          '400': errorResponse(
            `Invalid request or search syntax (${codes(400, ErrorCode.SchemaMismatch, ErrorCode.QueryRejected)}).`,
          ),
          '403': catalogForbidden,
        },
      }),
    },
    '/v1/catalog/{owner}/{dataset}': {
      get: operation({
        operationId: 'catalogEntry',
        summary:
          'One catalog entry; DATASET_NOT_FOUND when it is not listed (withdrawn, or its owner is not approved).',
        parameters: parametersOf('path', catalogRequestSchemas.entryParams),
        responses: { '200': catalogEntry, '403': catalogForbidden, '404': datasetNotFound },
      }),
    },
    '/v1/catalog/{dataset}': {
      delete: operation({
        operationId: 'withdrawCatalogEntry',
        summary:
          'Withdraw our catalog entry for a dataset (it may be published again later, as its next version).',
        parameters: parametersOf('path', catalogRequestSchemas.datasetParams),
        responses: {
          '200': { description: 'Withdrawn.', content: json(datashareResponseSchemas.catalogWithdrawn) },
          '403': catalogForbidden,
          '404': datasetNotFound,
          '409': catalogRejected,
        },
      }),
    },
    '/v1/datasets': {
      post: operation({
        operationId: 'addDataset',
        summary: 'Load a dataset (CSV or JSON lines, the raw request body, streamed) into this connector.',
        description:
          "Its rows stay in the organization: a typed table in the connector's storage that only jobs read, in a " +
          'child process. Column types are inferred. The policy may come with it: the `Ledgerbus-Policy` header, ' +
          "base64 of the policy file's JSON; otherwise the default policy applies until `PUT /v1/datasets/{name}/policy`.",
        parameters: [
          ...parametersOf('query', datashareRequestSchemas.datasetUploadQuery),
          {
            name: 'Ledgerbus-Policy',
            in: 'header',
            required: false,
            description: "Base64 of the dataset policy's JSON.",
            schema: { type: 'string' },
          },
        ],
        requestBody: {
          required: true,
          content: {
            'text/csv': { schema: { type: 'string' } },
            'application/x-ndjson': { schema: { type: 'string' } },
            'application/octet-stream': {
              schema: { type: 'string', contentMediaType: 'application/octet-stream' },
            },
          },
        },
        responses: { '200': { description: 'Loaded.', content: json(datashareResponseSchemas.dataset) } },
      }),
      get: operation({
        operationId: 'listDatasets',
        summary: 'The datasets loaded here: columns and types, row count, content hash, policy.',
        responses: { '200': { description: 'Datasets.', content: json(datashareResponseSchemas.datasets) } },
      }),
    },
    '/v1/datasets/{name}': {
      get: operation({
        operationId: 'describeDataset',
        summary: 'One dataset: columns and types, row count, content hash, policy (never a row).',
        parameters: datasetParameters,
        responses: {
          '200': { description: 'Dataset.', content: json(datashareResponseSchemas.dataset) },
          '404': datasetNotFound,
        },
      }),
      delete: operation({
        operationId: 'removeDataset',
        summary: 'Remove a dataset; jobs that name it later are rejected DATASET_NOT_FOUND.',
        parameters: datasetParameters,
        responses: {
          '200': { description: 'Removed.', content: json(datashareResponseSchemas.removed) },
          '404': datasetNotFound,
        },
      }),
    },
    '/v1/datasets/{name}/policy': {
      put: operation({
        operationId: 'setDatasetPolicy',
        summary: "Replace a dataset's policy; jobs decided from now on follow it.",
        parameters: datasetParameters,
        requestBody: { required: true, content: json(datashareRequestSchemas.policyBody) },
        responses: {
          '200': {
            description: 'The dataset with its new policy.',
            content: json(datashareResponseSchemas.dataset),
          },
          '404': datasetNotFound,
        },
      }),
    },
    '/v1/jobs': {
      post: operation({
        operationId: 'submitJob',
        summary: "Send a compute-to-data job to a dataset's owner (several owners: a federated model job).",
        description:
          "Checked against each dataset's catalog entry (QUERY_REJECTED before anything is sent), sealed to the " +
          "owner's key, and requested on-chain with the plan's hash. With `wait`, answers once every part finished, " +
          'with the result fetched from the owner(s) and checked against the hash recorded on-chain.',
        requestBody: { required: true, content: json(datashareRequestSchemas.jobSubmitBody) },
        responses: {
          '200': jobStatus,
          '400': errorResponse(
            `Invalid request, or a query the catalog's policy refuses (${codes(400, ErrorCode.SchemaMismatch, ErrorCode.QueryRejected)}).`,
          ),
          '403': jobForbidden,
          '404': jobNotFound,
          '409': jobConflict,
          '422': jobFailed,
          '500': resultCorrupt,
          '502': jobFailedElse,
        },
      }),
      get: operation({
        operationId: 'listJobs',
        summary:
          'The jobs this organization requested or ran; with all=true every job record the node shows us.',
        parameters: parametersOf('query', datashareRequestSchemas.jobListQuery),
        responses: { '200': { description: 'Jobs.', content: json(datashareResponseSchemas.jobs) } },
      }),
    },
    '/v1/jobs/{id}': {
      get: operation({
        operationId: 'jobStatus',
        summary:
          "A job's status: its parts, the owner's decision and the result's hash, refreshed from the chain.",
        parameters: jobParameters,
        responses: { '200': jobStatus, '404': jobNotFound, '409': jobConflict },
      }),
    },
    '/v1/jobs/{id}/result': {
      get: operation({
        operationId: 'jobResult',
        summary:
          "A finished job's result (fetched from its owner if not here yet): numbers about groups, or model parameters.",
        parameters: jobParameters,
        responses: {
          '200': { description: 'The result.', content: json(datashareResponseSchemas.jobResult) },
          '403': jobForbidden,
          '404': jobNotFound,
          '409': jobConflict,
          '422': jobFailed,
          '500': resultCorrupt,
          '502': jobFailedElse,
        },
      }),
    },
    '/v1/jobs/{id}/approve': {
      post: operation({
        operationId: 'approveJob',
        summary: 'As the owner: approve a job waiting for a person; it runs next.',
        parameters: jobParameters,
        responses: { '200': jobStatus, '404': jobNotFound, '409': jobConflict, '422': jobFailed },
      }),
    },
    '/v1/jobs/{id}/reject': {
      post: operation({
        operationId: 'rejectJob',
        summary: 'As the owner: refuse a job waiting for a person, with a reason recorded on-chain.',
        parameters: jobParameters,
        requestBody: { required: true, content: json(datashareRequestSchemas.jobRejectBody) },
        responses: { '200': jobStatus, '404': jobNotFound, '409': jobConflict, '422': jobFailed },
      }),
    },
    '/v1/jobs/{id}/receipt': {
      get: operation({
        operationId: 'jobReceipt',
        summary:
          "The job's receipt: request, decision and result with their block evidence, checkable offline with `ledgerbus verify`.",
        parameters: jobParameters,
        responses: {
          '200': { description: 'Job receipt.', content: json(datashareResponseSchemas.jobReceipt) },
          '403': jobForbidden,
          '404': jobNotFound,
        },
      }),
    },
  };
}
