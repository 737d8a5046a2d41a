/**
 * The OpenAPI 3.1 description of the connector's local REST/WebSocket API, served at
 * `GET /v1/openapi.json`. It is a plain object so that it needs no generator and can be diffed in
 * review; the request schemas (openapi/request-schemas.ts) are the same objects Fastify validates
 * requests with, so the document cannot drift from what the server accepts. The response schemas
 * are in openapi/response-schemas.ts, the routes in openapi/paths.ts; this module assembles them.
 */

import { paths } from './openapi/paths.js';
import type { JsonSchema } from './openapi/request-schemas.js';
import { componentSchemas } from './openapi/response-schemas.js';

export {
  batchBodyBytesMax,
  batchMessagesMax,
  jsonBodyBytesMax,
  receivedLimitDefault,
  receivedLimitMax,
  receivedWaitMsMax,
  requestSchemas,
} from './openapi/request-schemas.js';
export type { JsonSchema } from './openapi/request-schemas.js';

export interface OpenApiDocument {
  readonly openapi: '3.1.0';
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly servers: readonly { readonly url: string }[];
  readonly security: readonly Readonly<Record<string, readonly string[]>>[];
  readonly paths: Readonly<Record<string, Readonly<Record<string, JsonSchema>>>>;
  readonly components: {
    readonly schemas: Readonly<Record<string, JsonSchema>>;
    readonly securitySchemes: Readonly<Record<string, JsonSchema>>;
  };
}

/**
 * The whole document. `serverUrl` defaults to '/', relative to wherever the document was fetched.
 * Deterministic: the same version of the code always serves the same bytes.
 */
export function buildOpenApiDocument(options: { serverUrl?: string } = {}): OpenApiDocument {
  return {
    openapi: '3.1.0',
    info: {
      title: 'ledgerbus connector API',
      version: '1.0.0',
      description:
        "An organization's local API to its ledgerbus connector: send and receive messages, consumer-group " +
        'cursors, delivery status and proofs, live events, administration (topics, organizations), and ' +
        'Prometheus metrics. Every route except /healthz, /readyz and this document requires ' +
        '`Authorization: Bearer <token>`.',
    },
    servers: [{ url: options.serverUrl ?? '/' }],
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      schemas: componentSchemas,
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } },
    },
  };
}
