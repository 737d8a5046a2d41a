/**
 * The compute-to-data routes' request schemas (DESIGN §8): what Fastify validates the dataset and
 * job routes with (datashare/dataset-routes.ts, datashare/job-routes.ts) and the OpenAPI document
 * lists (datashare-paths.ts), and the answers' shapes.
 */
import { jobIdPattern, jobLimits } from '../../contracts/datashare/transactions.js';
import {
  aggregateFunctions,
  modelFeaturesMax,
  modelIterationsMax,
  modelKinds,
  queryTextLengthMax,
} from '../../datashare/types.js';
import { catalogLimits, datasetNamePattern } from '../../registry/catalog.js';
import type { JsonSchema } from './request-schemas.js';

/** Most datasets (owners) one federated job trains on. */
export const federatedDatasetsMax = 16;
/** Largest dataset upload the REST API accepts by default (streamed, never held whole). */
export const datasetBodyBytesMax = 2 * 1024 * 1024 * 1024;

const datasetName = {
  type: 'string',
  minLength: 1,
  maxLength: catalogLimits.datasetNameLengthMax,
  pattern: datasetNamePattern.source,
  description: 'A dataset name: a letter, then letters, digits, _ or -.',
} as const;
const jobId = {
  type: 'string',
  minLength: 8,
  maxLength: jobLimits.jobIdLengthMax,
  pattern: jobIdPattern.source,
  description: 'A job id, as `POST /v1/jobs` answered it.',
} as const;
const columnName = { type: 'string', minLength: 1, maxLength: catalogLimits.columnNameLengthMax } as const;
const strings = { type: 'array', items: { type: 'string' } } as const;

export const datashareRequestSchemas = {
  datasetUploadQuery: {
    type: 'object',
    required: ['name'],
    additionalProperties: false,
    properties: {
      name: datasetName,
      format: {
        enum: ['csv', 'jsonl'],
        description:
          'csv (a header line, then rows) or jsonl (one JSON object per line); default from the Content-Type (text/csv, application/x-ndjson).',
      },
      keyColumn: { ...columnName, description: 'A column to index (as the file names it).' },
    },
  },
  datasetParams: { type: 'object', required: ['name'], properties: { name: datasetName } },
  policyBody: {
    type: 'object',
    description:
      'A dataset policy: allowedColumns ("*" or names), aggregates, models, minGroupSize (≥ 10), maxRows, timeLimitMs, memoryBytesMax, resultRowsMax, approval (auto | manual), differenceCheck; every field optional.',
  },
  jobSubmitBody: {
    type: 'object',
    required: ['datasets', 'spec'],
    additionalProperties: false,
    properties: {
      datasets: {
        type: 'array',
        minItems: 1,
        maxItems: federatedDatasetsMax,
        uniqueItems: true,
        items: { type: 'string', minLength: 3, maxLength: 300, pattern: '^[^/]+/[^/]+$' },
        description:
          'OWNER/NAME of each dataset, as the catalog lists it; several make a federated model job.',
      },
      spec: {
        type: 'object',
        required: ['kind'],
        discriminator: { propertyName: 'kind' },
        oneOf: [
          {
            type: 'object',
            required: ['kind', 'query'],
            additionalProperties: false,
            properties: {
              kind: { const: 'aggregate' },
              query: {
                type: 'string',
                minLength: 1,
                maxLength: queryTextLengthMax,
                description: `SELECT group columns and ${aggregateFunctions.map((fn) => fn.toUpperCase()).join(' / ')} FROM the dataset [WHERE ...] [GROUP BY ...].`,
              },
            },
          },
          {
            type: 'object',
            required: ['kind', 'model', 'features', 'target'],
            additionalProperties: false,
            properties: {
              kind: { const: 'model' },
              model: { enum: [...modelKinds] },
              features: { type: 'array', minItems: 1, maxItems: modelFeaturesMax, items: columnName },
              target: columnName,
              where: { type: 'string', minLength: 1, maxLength: queryTextLengthMax },
              iterations: { type: 'integer', minimum: 1, maximum: modelIterationsMax },
              l2: { type: 'number', minimum: 0 },
            },
          },
        ],
      },
      topic: { type: 'string', minLength: 1, maxLength: 249, pattern: '^[a-zA-Z0-9._-]+$' },
      wait: { type: 'boolean', description: 'Answer once every part finished, with the result.' },
      waitMs: {
        type: 'integer',
        minimum: 1,
        maximum: 3_600_000,
        description:
          'With wait: answer the status after this long if the job is not finished (default 600000).',
      },
    },
  },
  jobParams: { type: 'object', required: ['id'], properties: { id: jobId } },
  jobListQuery: {
    type: 'object',
    additionalProperties: false,
    properties: {
      all: {
        type: 'boolean',
        description:
          "Every job on the job topic's partitions that our node shows us (a supervisor sees every one), read from the ledger.",
      },
      topic: {
        type: 'string',
        minLength: 1,
        maxLength: 249,
        description: 'With all: the job topic (default datashare).',
      },
    },
  },
  jobRejectBody: {
    type: 'object',
    required: ['reason'],
    additionalProperties: false,
    properties: { reason: { type: 'string', minLength: 1, maxLength: jobLimits.detailLengthMax } },
  },
} as const satisfies Record<string, JsonSchema>;

const policy: JsonSchema = {
  type: 'object',
  properties: {
    allowedColumns: { oneOf: [{ const: '*' }, strings] },
    aggregates: strings,
    models: strings,
    minGroupSize: { type: 'integer' },
    maxRows: { type: 'integer' },
    timeLimitMs: { type: 'integer' },
    memoryBytesMax: { type: 'integer' },
    resultRowsMax: { type: 'integer' },
    approval: { enum: ['auto', 'manual'] },
    differenceCheck: { type: 'boolean' },
  },
};

const dataset: JsonSchema = {
  type: 'object',
  required: ['name', 'columns', 'rowCount', 'contentHash', 'keyColumn', 'format', 'loadedAt', 'policy'],
  properties: {
    name: { type: 'string' },
    columns: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'type'],
        properties: { name: { type: 'string' }, type: { enum: ['integer', 'real', 'text', 'boolean'] } },
      },
    },
    rowCount: { type: 'integer' },
    contentHash: { type: 'string', description: 'Hex SHA-256 of the bytes loaded.' },
    keyColumn: { type: ['string', 'null'] },
    format: { enum: ['csv', 'jsonl'] },
    loadedAt: { type: 'integer' },
    policy,
  },
};

const jobState = {
  enum: [
    'SUBMITTING',
    'REFUSED',
    'REQUESTED',
    'PENDING_APPROVAL',
    'APPROVED',
    'REJECTED',
    'COMPLETED',
    'FAILED',
  ],
} as const;
const decision: JsonSchema = {
  type: ['object', 'null'],
  properties: {
    decision: { enum: ['APPROVED', 'REJECTED'] },
    reason: { type: 'string' },
    detail: { type: 'string' },
  },
};
const result: JsonSchema = {
  type: ['object', 'null'],
  properties: {
    status: { enum: ['COMPLETED', 'FAILED'] },
    code: { type: 'string' },
    detail: { type: 'string' },
    resultHash: { type: ['string', 'null'], description: 'Hex SHA-256 of the result, as recorded on-chain.' },
    resultBytes: { type: 'integer' },
    suppressedGroups: { type: 'integer' },
  },
};
const jobOutput: JsonSchema = {
  type: 'object',
  description:
    'aggregate: columns, rows, suppressedGroups, minGroupSize; model: model, features, target, coefficients, intercept, n, metrics.',
  required: ['kind'],
  properties: { kind: { enum: ['aggregate', 'model'] } },
};
const jobStatus: JsonSchema = {
  type: 'object',
  required: [
    'jobId',
    'role',
    'kind',
    'requester',
    'federated',
    'spec',
    'state',
    'code',
    'detail',
    'parts',
    'hasResult',
  ],
  properties: {
    jobId: { type: 'string' },
    role: { enum: ['requester', 'owner'] },
    kind: { enum: ['aggregate', 'model'] },
    requester: { type: 'string' },
    federated: { type: 'boolean' },
    spec: { type: ['object', 'null'] },
    state: jobState,
    code: { type: ['string', 'null'] },
    detail: { type: 'string' },
    parts: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          jobId: { type: 'string' },
          topic: { type: 'string' },
          partition: { type: 'integer' },
          owner: { type: 'string' },
          dataset: { type: 'string' },
          datasetVersion: { type: 'integer' },
          state: jobState,
          planHash: { type: 'string' },
          decision,
          result,
          resultFetched: { type: 'boolean' },
        },
      },
    },
    hasResult: { type: 'boolean' },
    output: { ...jobOutput, description: 'With wait, once finished: the result.' },
    createdAt: { type: 'integer' },
    updatedAt: { type: 'integer' },
  },
};
const jobRecord: JsonSchema = {
  type: 'object',
  properties: {
    jobId: { type: 'string' },
    topic: { type: 'string' },
    partition: { type: 'integer' },
    requester: { type: 'string' },
    owner: { type: 'string' },
    dataset: { type: 'string' },
    datasetVersion: { type: 'integer' },
    jobKind: { enum: ['aggregate', 'model'] },
    planHash: { type: 'string' },
    federation: { type: ['string', 'null'] },
    state: { enum: ['REQUESTED', 'APPROVED', 'REJECTED', 'COMPLETED', 'FAILED'] },
    requestedAt: { type: 'integer' },
    decision,
    result,
  },
};

const catalogEntry: JsonSchema = {
  type: 'object',
  required: [
    'owner',
    'dataset',
    'version',
    'domain',
    'title',
    'description',
    'tags',
    'columns',
    'rowCount',
    'contentHash',
    'policy',
    'publishedAt',
    'index',
  ],
  properties: {
    owner: { type: 'string' },
    dataset: { type: 'string' },
    version: { type: 'integer' },
    domain: { type: 'string' },
    title: { type: 'string' },
    description: { type: 'string' },
    tags: strings,
    columns: (dataset.properties as Record<string, JsonSchema>)['columns'],
    rowCount: { type: 'integer' },
    contentHash: { type: 'string', description: 'Hex SHA-256 of the dataset as loaded.' },
    policy: {
      type: 'object',
      properties: {
        allowedColumns: strings,
        aggregates: strings,
        models: strings,
        minGroupSize: { type: 'integer' },
        approval: { enum: ['auto', 'manual'] },
      },
    },
    publishedAt: { type: 'integer' },
    index: { type: 'integer', description: 'The __system index of this version.' },
  },
};

export const datashareResponseSchemas = {
  catalogEntry,
  catalogHits: {
    type: 'object',
    required: ['hits', 'index'],
    properties: {
      hits: {
        type: 'array',
        items: {
          type: 'object',
          required: ['entry', 'rank', 'score', 'snippet'],
          properties: {
            entry: catalogEntry,
            rank: { type: 'integer' },
            score: { type: 'string', description: 'BM25 (lower is better), 9 significant digits.' },
            snippet: { type: 'string' },
          },
        },
      },
      index: { type: 'integer', description: 'The __system index the node answered at.' },
    },
  },
  catalogWithdrawn: {
    type: 'object',
    required: ['owner', 'dataset', 'index'],
    properties: { owner: { type: 'string' }, dataset: { type: 'string' }, index: { type: 'integer' } },
  },
  dataset,
  datasets: {
    type: 'object',
    required: ['datasets'],
    properties: { datasets: { type: 'array', items: dataset } },
  },
  removed: {
    type: 'object',
    required: ['name', 'removed'],
    properties: { name: { type: 'string' }, removed: { const: true } },
  },
  jobStatus,
  jobs: {
    type: 'object',
    required: ['jobs'],
    properties: {
      jobs: {
        type: 'array',
        items: { oneOf: [jobStatus, jobRecord] },
        description: 'Local jobs (JobStatus), or with all=true the ledger records (JobRecordSummary).',
      },
    },
  },
  jobResult: {
    type: 'object',
    required: ['jobId', 'output', 'parts'],
    properties: {
      jobId: { type: 'string' },
      output: jobOutput,
      parts: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            jobId: { type: 'string' },
            owner: { type: 'string' },
            dataset: { type: 'string' },
            output: jobOutput,
          },
        },
      },
    },
  },
  jobReceipt: {
    type: 'object',
    description:
      "The job's request, decision and result with their block evidence; `ledgerbus verify` checks it offline.",
  },
} as const satisfies Record<string, JsonSchema>;
