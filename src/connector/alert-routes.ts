/**
 * The alert routes of the connector's REST API (DESIGN §9, docs/alerts.md): a thin transport over
 * ConnectorAlerts, with the same authentication, validation and error body as every other route
 * (http-api.ts registers them on its Fastify instance, inside its hooks and error handler).
 *
 *   GET  /v1/alerts?org=&since=&limit=   alerts this organization may see, newest first
 *   POST /v1/alerts/:id/ack              {note?, suspend?}: a supervisor acknowledges (and suspends)
 *   GET  /v1/alerts/policy               the alert policy in force
 *   PUT  /v1/alerts/policy               a supervisor sets it (the whole policy)
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { alertLimits } from '../registry/alert-schemas.js';
import type { AlertPolicy } from '../registry/alert-schemas.js';
import type { ConnectorAlerts } from './alert-follower.js';

const severity = { type: 'string', enum: ['info', 'warning', 'critical'] } as const;

/** The request schemas Fastify validates the alert routes with (and the OpenAPI document lists). */
export const alertRequestSchemas = {
  listQuery: {
    type: 'object',
    additionalProperties: false,
    properties: {
      org: {
        type: 'string',
        minLength: 1,
        maxLength: 128,
        description:
          'Only alerts about this organization (others than a supervisor may name only themselves).',
      },
      since: {
        type: 'integer',
        minimum: 0,
        description: 'Only alerts raised at or after this time (ms since the epoch).',
      },
      limit: { type: 'integer', minimum: 1, maximum: alertLimits.pageMax },
    },
  },
  idParams: {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', minLength: 1, maxLength: 160, description: 'The alert id.' } },
  },
  ackBody: {
    type: 'object',
    additionalProperties: false,
    properties: {
      note: { type: 'string', maxLength: alertLimits.noteLengthMax },
      suspend: {
        type: 'boolean',
        description: "Also suspend the alert's subject (the supervisor confirms a proposed suspension).",
      },
    },
  },
  policyBody: {
    type: 'object',
    required: ['ledgerSeverityMin', 'proposeSuspension'],
    additionalProperties: false,
    properties: {
      ledgerSeverityMin: {
        ...severity,
        description: 'Alerts below this severity stay events on their node.',
      },
      rateLimit: {
        type: 'object',
        required: ['requestsPerSecondMin', 'durationMsMax'],
        additionalProperties: false,
        description: 'Absent: nodes may not tighten quotas.',
        properties: {
          requestsPerSecondMin: { type: 'integer', minimum: 1 },
          durationMsMax: { type: 'integer', minimum: 1 },
        },
      },
      proposeSuspension: { type: 'boolean' },
    },
  },
} as const;

interface ListQuery {
  org?: string;
  since?: number;
  limit?: number;
}

/** Registers the alert routes on `app`. Without ConnectorAlerts (the in-memory test connector) they answer UNKNOWN_METHOD. */
export function registerAlertRoutes(app: FastifyInstance, alerts: ConnectorAlerts | undefined): void {
  const client = (): ConnectorAlerts => {
    if (alerts === undefined) {
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'this connector does not serve alerts');
    }
    return alerts;
  };

  app.get<{ Querystring: ListQuery }>(
    '/v1/alerts',
    { schema: { querystring: alertRequestSchemas.listQuery } },
    async (request) => {
      const { org, since, limit } = request.query;
      return client().list({
        ...(org === undefined ? {} : { organization: org }),
        ...(since === undefined ? {} : { since }),
        ...(limit === undefined ? {} : { limit }),
      });
    },
  );

  app.post<{ Params: { id: string }; Body: { note?: string; suspend?: boolean } | undefined }>(
    '/v1/alerts/:id/ack',
    { schema: { params: alertRequestSchemas.idParams, body: alertRequestSchemas.ackBody } },
    async (request) => {
      const { note, suspend } = request.body ?? {};
      return client().ack(request.params.id, {
        ...(note === undefined ? {} : { note }),
        ...(suspend === undefined ? {} : { suspend }),
      });
    },
  );

  app.get('/v1/alerts/policy', async () => client().policy());

  app.put<{ Body: AlertPolicy }>(
    '/v1/alerts/policy',
    { schema: { body: alertRequestSchemas.policyBody } },
    async (request) => {
      const { ledgerSeverityMin, rateLimit, proposeSuspension } = request.body;
      return client().setPolicy({
        ledgerSeverityMin,
        ...(rateLimit === undefined ? {} : { rateLimit: { ...rateLimit } }),
        proposeSuspension,
      });
    },
  );
}
