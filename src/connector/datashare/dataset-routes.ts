/**
 * The dataset routes of the connector's REST API (DESIGN §8, owner side): a thin transport over
 * the connector's DatasetsApi, with the same authentication, validation and error body as every
 * other route (http-api.ts registers them on its Fastify instance, inside its hooks and error
 * handler). A dataset arrives as the raw request body, streamed into its SQLite file as it is read:
 * a million rows are never held in memory.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { ByteLimit } from '../byte-limit.js';
import { datashareRequestSchemas } from '../openapi/datashare-schemas.js';
import type { DatasetFormat, DatasetsApi } from './jobs-api.js';

/** The route whose body is a dataset, streamed (http-api.ts times it by idleness, like a message upload). */
export const datasetUploadRoute = '/v1/datasets';
/** Header carrying the dataset's policy on upload: base64 of its JSON (a policy file's content). */
export const policyHeader = 'ledgerbus-policy';

interface UploadQuery {
  name: string;
  format?: DatasetFormat;
  keyColumn?: string;
}

/**
 * Registers the dataset routes on `app`. Without a DatasetsApi (the in-memory test connector) they
 * answer UNKNOWN_METHOD. `bodyBytesMax` bounds an upload, counted as it streams.
 */
export async function registerDatasetRoutes(
  app: FastifyInstance,
  datasets: DatasetsApi | undefined,
  options: { bodyBytesMax: number },
): Promise<void> {
  const owner = (): DatasetsApi => {
    if (datasets === undefined) {
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'this connector does not keep datasets');
    }
    return datasets;
  };

  // Its own scope so that no parser touches the body: the store reads it as a stream.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request: FastifyRequest, _payload: IncomingMessage, done) =>
      done(null),
    );
    scope.post<{ Querystring: UploadQuery }>(
      datasetUploadRoute,
      { schema: { querystring: datashareRequestSchemas.datasetUploadQuery } },
      async (request) => {
        const api = owner();
        const { name, keyColumn } = request.query;
        const format = request.query.format ?? formatOf(request.headers['content-type']);
        const policy = policyOf(request.headers[policyHeader]);
        const raw = request.raw;
        const declared = raw.headers['content-length'];
        if (declared !== undefined && Number(declared) > options.bodyBytesMax) {
          throw tooLarge(options.bodyBytesMax);
        }
        // The store reads through a stream of its own, which it may destroy when it refuses the
        // file: the request itself stays whole, so the refusal can still be answered on it.
        const source = raw.pipe(new ByteLimit(options.bodyBytesMax, () => tooLarge(options.bodyBytesMax)));
        raw.once('error', (error) => source.destroy(error));
        return api.add(name, source, {
          format,
          ...(keyColumn === undefined ? {} : { keyColumn }),
          ...(policy === undefined ? {} : { policy }),
        });
      },
    );
  });

  app.get('/v1/datasets', async () => ({ datasets: owner().list() }));

  app.get<{ Params: { name: string } }>(
    '/v1/datasets/:name',
    { schema: { params: datashareRequestSchemas.datasetParams } },
    async (request) => owner().get(request.params.name),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/datasets/:name',
    { schema: { params: datashareRequestSchemas.datasetParams } },
    async (request) => owner().remove(request.params.name),
  );

  app.put<{ Params: { name: string }; Body: unknown }>(
    '/v1/datasets/:name/policy',
    { schema: { params: datashareRequestSchemas.datasetParams, body: datashareRequestSchemas.policyBody } },
    async (request) => owner().setPolicy(request.params.name, request.body),
  );
}

function tooLarge(bodyBytesMax: number): LedgerbusError {
  return new LedgerbusError(
    ErrorCode.Oversize,
    `the dataset is larger than the limit of ${bodyBytesMax} bytes`,
  );
}

/** The format a Content-Type implies; SCHEMA_MISMATCH asking for `format` when it implies none. */
function formatOf(contentType: string | undefined): DatasetFormat {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'text/csv') return 'csv';
  if (
    [
      'application/x-ndjson',
      'application/jsonl',
      'application/x-jsonlines',
      'application/jsonlines',
    ].includes(type)
  )
    return 'jsonl';
  throw new LedgerbusError(
    ErrorCode.SchemaMismatch,
    'format: name it (?format=csv or ?format=jsonl), or send Content-Type text/csv or application/x-ndjson',
  );
}

/** The decoded policy of the upload's policy header, if it has one. */
function policyOf(header: string | string[] | undefined): unknown {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join('') : header;
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `${policyHeader}: expected base64 of the policy's JSON`,
    );
  }
  try {
    return JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as unknown;
  } catch {
    throw new LedgerbusError(
      ErrorCode.MalformedEncoding,
      `${policyHeader}: expected base64 of the policy's JSON`,
    );
  }
}
