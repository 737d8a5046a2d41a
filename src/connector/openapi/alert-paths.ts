/**
 * The alert routes of the OpenAPI document (DESIGN §9, docs/alerts.md). paths.ts hands in its
 * helpers, so every operation gets the common errors and every status an error code is listed under
 * is checked against the error table, as for the other routes.
 */
import { ErrorCode } from '../../errors.js';
import { alertRules } from '../../intelligence/alert.js';
import { alertLimits } from '../../registry/alert-schemas.js';
import { alertRequestSchemas } from '../alert-routes.js';
import type { PathHelpers } from './datashare-paths.js';
import type { JsonSchema } from './request-schemas.js';

const decimal = { type: 'string', description: 'A decimal number, e.g. "0.873142" or "1.5e-7".' } as const;
const severity = { type: 'string', enum: ['info', 'warning', 'critical'] } as const;

/** An alert as the registry holds it (registry/alerts.ts `alertRecordSchema`). */
export const alertJsonSchema: JsonSchema = {
  type: 'object',
  required: [
    'id',
    'node',
    'subject',
    'rule',
    'severity',
    'score',
    'threshold',
    'features',
    'summary',
    'firstAt',
    'lastAt',
    'observations',
    'raisedAt',
    'index',
    'corroboratedBy',
  ],
  properties: {
    id: { type: 'string' },
    node: { type: 'string', description: 'The node that raised it (its key signed the transaction).' },
    subject: { type: 'string', description: "The organization it is about ('' for an unregistered key)." },
    topic: { type: 'string' },
    rule: { type: 'string', enum: [...alertRules] },
    severity,
    score: decimal,
    threshold: decimal,
    features: {
      type: 'array',
      maxItems: alertLimits.featuresMax,
      items: {
        type: 'object',
        required: ['name', 'value', 'contribution'],
        properties: { name: { type: 'string' }, value: decimal, contribution: decimal },
      },
    },
    summary: { type: 'string' },
    firstAt: { type: 'integer', description: 'First observation the alert covers (ms since the epoch).' },
    lastAt: { type: 'integer' },
    observations: { type: 'integer' },
    response: {
      description: 'What the node asked for, within the policy.',
      oneOf: [
        {
          type: 'object',
          required: ['kind', 'requestsPerSecond', 'durationMs'],
          properties: {
            kind: { const: 'rateLimit' },
            requestsPerSecond: { type: 'integer' },
            durationMs: { type: 'integer' },
          },
        },
        { type: 'object', required: ['kind'], properties: { kind: { const: 'proposeSuspension' } } },
      ],
    },
    raisedAt: { type: 'integer', description: "The raising transaction's timestamp (ms)." },
    index: { type: 'integer', description: 'The __system index it was raised at.' },
    corroboratedBy: { type: 'array', items: { type: 'string' } },
    ack: {
      type: 'object',
      required: ['by', 'at'],
      properties: { by: { type: 'string' }, at: { type: 'integer' }, note: { type: 'string' } },
    },
  },
};

export function alertPaths(helpers: PathHelpers): Record<string, Record<string, JsonSchema>> {
  const { operation, parametersOf, codes, errorResponse, json } = helpers;
  const forbidden = errorResponse(
    `${codes(403, ErrorCode.Forbidden)}: the caller is not an approved organization, or asked for alerts about another (only a supervisor sees all).`,
  );
  const rejected = errorResponse(
    `The registry refused the transaction (${codes(409, ErrorCode.AdminRejected)}): \`error.reason\` names why (NOT_ALLOWED for anyone but a supervisor, ALREADY_EXISTS for an alert acknowledged already).`,
  );
  const policyAnswer = {
    description: 'The alert policy in force and the __system index it was read or set at.',
    content: json({
      type: 'object',
      required: ['policy', 'index'],
      properties: { policy: alertRequestSchemas.policyBody, index: { type: 'integer' } },
    }),
  };
  return {
    '/v1/alerts': {
      get: operation({
        operationId: 'listAlerts',
        summary:
          'Alerts this organization may see, newest first: a supervisor all, anyone else those about itself.',
        parameters: parametersOf('query', alertRequestSchemas.listQuery),
        responses: {
          '200': {
            description: 'Alerts, newest first; `more` when older ones match past `limit`.',
            content: json({
              type: 'object',
              required: ['alerts', 'index', 'more'],
              properties: {
                alerts: { type: 'array', items: alertJsonSchema },
                index: { type: 'integer' },
                more: { type: 'boolean' },
              },
            }),
          },
          '403': forbidden,
        },
      }),
    },
    '/v1/alerts/{id}/ack': {
      post: operation({
        operationId: 'ackAlert',
        summary:
          "A supervisor acknowledges an alert (lifting any quota it imposed); with `suspend`, also suspends the alert's subject.",
        parameters: parametersOf('path', alertRequestSchemas.idParams),
        requestBody: { required: true, content: json(alertRequestSchemas.ackBody) },
        responses: {
          '200': {
            description: 'Acknowledged (and suspended, when asked).',
            content: json({
              type: 'object',
              required: ['id', 'subject', 'index'],
              properties: {
                id: { type: 'string' },
                subject: { type: 'string' },
                index: { type: 'integer' },
                suspended: {
                  type: 'object',
                  required: ['organization', 'index'],
                  properties: { organization: { type: 'string' }, index: { type: 'integer' } },
                },
              },
            }),
          },
          '403': forbidden,
          '404': errorResponse(
            `No such alert that this organization may see (${codes(404, ErrorCode.AlertNotFound)}).`,
          ),
          '409': rejected,
        },
      }),
    },
    '/v1/alerts/policy': {
      get: operation({
        operationId: 'getAlertPolicy',
        summary:
          'What nodes may do about alerts on their own: which go on the ledger, the quota floor, proposals.',
        responses: { '200': policyAnswer, '403': forbidden },
      }),
      put: operation({
        operationId: 'setAlertPolicy',
        summary: 'A supervisor sets the whole alert policy.',
        requestBody: { required: true, content: json(alertRequestSchemas.policyBody) },
        responses: { '200': policyAnswer, '409': rejected },
      }),
    },
  };
}
