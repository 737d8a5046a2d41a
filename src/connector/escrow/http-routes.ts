/**
 * The audit routes of the connector's REST API (DESIGN §7): a thin transport over the Auditor, with
 * the same authentication, validation and error body as every other route (http-api.ts registers
 * them on its Fastify instance, inside its hooks and error handler).
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { MessageLocation } from '../message-location.js';
import { auditRequestSchemas } from '../openapi/audit-schemas.js';
import type { AuditApi } from './audit-types.js';

interface Located {
  topic?: string;
  partition?: number;
}

/** The location a request names: both `topic` and `partition`, or neither (SCHEMA_MISMATCH otherwise). */
function locationOf(query: Located): MessageLocation | undefined {
  if (query.topic === undefined && query.partition === undefined) return undefined;
  if (query.topic === undefined || query.partition === undefined) {
    throw new LedgerbusError(ErrorCode.SchemaMismatch, 'topic and partition: give both, or neither');
  }
  return { topic: query.topic, partition: query.partition };
}

/**
 * Registers the audit routes on `app`. `audits` is the connector's Auditor; without one (a
 * connector that does not audit, the in-memory test connector) the routes answer UNKNOWN_METHOD.
 */
export function registerAuditRoutes(app: FastifyInstance, audits: AuditApi | undefined): void {
  const auditor = (): AuditApi => {
    if (audits === undefined) {
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'this connector does not serve audits');
    }
    return audits;
  };

  app.post<{ Body: { id: string; reason: string } & Located }>(
    '/v1/audits',
    { schema: { body: auditRequestSchemas.requestBody } },
    async (request) => auditor().request(request.body.id, request.body.reason, locationOf(request.body)),
  );

  app.post<{ Params: { requestId: string }; Querystring: Located }>(
    '/v1/audits/:requestId/approve',
    {
      schema: { params: auditRequestSchemas.requestIdParams, querystring: auditRequestSchemas.locationQuery },
    },
    async (request) => auditor().approve(request.params.requestId, locationOf(request.query)),
  );

  app.get<{ Params: { requestId: string }; Querystring: Located }>(
    '/v1/audits/:requestId/record',
    {
      schema: { params: auditRequestSchemas.requestIdParams, querystring: auditRequestSchemas.locationQuery },
    },
    async (request) => auditor().record(request.params.requestId, locationOf(request.query)),
  );

  app.get('/v1/audits', async () => ({ audits: auditor().list() }));

  app.get<{ Params: { id: string }; Querystring: Located }>(
    '/v1/audits/messages/:id',
    { schema: { params: auditRequestSchemas.messageParams, querystring: auditRequestSchemas.locationQuery } },
    async (request) => auditor().status(request.params.id, locationOf(request.query)),
  );

  app.post<{ Params: { id: string }; Querystring: Located & { requestId?: string } }>(
    '/v1/audits/messages/:id/fetch',
    { schema: { params: auditRequestSchemas.messageParams, querystring: auditRequestSchemas.fetchQuery } },
    async (request) => {
      const at = locationOf(request.query);
      const { requestId } = request.query;
      return auditor().fetch(request.params.id, {
        ...(requestId === undefined ? {} : { requestId }),
        ...(at === undefined ? {} : { at }),
      });
    },
  );

  app.get<{ Params: { id: string }; Querystring: Located & { requestId?: string } }>(
    '/v1/audits/messages/:id/payload',
    { schema: { params: auditRequestSchemas.messageParams, querystring: auditRequestSchemas.fetchQuery } },
    async (request, reply) => {
      const at = locationOf(request.query);
      const { requestId } = request.query;
      const { result, stream } = await auditor().payload(request.params.id, {
        ...(requestId === undefined ? {} : { requestId }),
        ...(at === undefined ? {} : { at }),
      });
      // The sender's bytes, served as a download that no browser renders or sniffs.
      return reply
        .type('application/octet-stream')
        .header('x-content-type-options', 'nosniff')
        .header('content-disposition', 'attachment')
        .header('content-length', String(result.size))
        .header('ledgerbus-sha256', result.sha256)
        .send(stream);
    },
  );
}
