import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ErrorCode, errorInfo } from '../errors.js';
import { buildOpenApiDocument } from './openapi.js';
import type { JsonSchema } from './openapi.js';

const knownCodes = new Set<string>(Object.values(ErrorCode));

describe('the OpenAPI document', () => {
  it('is the document last reviewed: a change to the REST API changes this hash on purpose', () => {
    // a016c85f… was the single-file openapi.ts before the split into openapi/ (issue 13), which kept
    // it byte-identical; 30c6753f… adds 404 TOPIC_NOT_FOUND to the two send routes; 94b7b9a1… adds
    // the optional `reason` (the refusal's reason code) to the Error body (issue 13 item 3);
    // issue 14 adds the escrow topic policy (`availability`, `escrow`) to the admin body and the topic
    // description (5a09bed3… with only that) and the escrow and audit routes; 8ed2785c… before
    // GET /v1/audits/{requestId}/record (issue 14 item 6: the offline audit record); d20c2ee7… before
    // issue 15's catalog, dataset and job routes (openapi/datashare-paths.ts); 7e67bfa2… before
    // issue 16's alert routes and the `alert` event (openapi/alert-paths.ts); dd6f5a41… before a
    // listed received message's optional `value` (a small payload, issue 17); c1e76e47… before
    // DELETE /v1/received/... (issue 18: a recipient's retention); d568dfa8… before GET /metrics and
    // GET /readyz (issue 19 item 1: Prometheus metrics, readiness). Change it only together
    // with a deliberate change of the REST API, and say so in the commit.
    const served = JSON.stringify(buildOpenApiDocument());
    expect(createHash('sha256').update(served).digest('hex')).toBe(
      '81bdd4fc2a07994b048ccecf8f21776edb58075839caf7c11efa5c656149a7ef',
    );
  });

  it('names each error code only under the HTTP status the error table gives it', () => {
    const document = buildOpenApiDocument();
    const named: string[] = [];
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const responses = operation['responses'] as Record<string, JsonSchema>;
        for (const [status, response] of Object.entries(responses)) {
          const description = String(response['description']);
          for (const code of description.match(/\b[A-Z][A-Z_]{3,}\b/g) ?? []) {
            if (!knownCodes.has(code)) continue; // a contract or registry reason code, not an ErrorCode
            named.push(code);
            expect(errorInfo(code as ErrorCode).httpStatus, `${method} ${path} ${status} ${code}`).toBe(
              Number(status),
            );
          }
        }
      }
    }
    expect(new Set(named)).toEqual(
      new Set([
        'SCHEMA_MISMATCH',
        'MALFORMED_ENCODING',
        'OVERSIZE',
        'BAD_CONFIG',
        'UNAUTHORIZED',
        'FORBIDDEN',
        'AUDIT_NOT_APPROVED',
        'AUDIT_FAILED',
        'OVERLOADED',
        'RATE_LIMITED',
        'INTERNAL',
        'TIMEOUT',
        'CONNECTION_CLOSED',
        'MESSAGE_NOT_FOUND',
        'PAYLOAD_NOT_FOUND',
        'TOPIC_NOT_FOUND',
        'NOT_RECIPIENT',
        'ADMIN_REJECTED',
        'AMBIGUOUS_MESSAGE_ID',
        'MESSAGE_REJECTED',
        'DATASET_NOT_FOUND',
        'QUERY_REJECTED',
        'MIN_GROUP_SIZE',
        'DIFFERENCE_CHECK',
        'JOB_LIMIT_EXCEEDED',
        'JOB_REJECTED',
        'JOB_FAILED',
        'PAYLOAD_CORRUPT',
        'ALERT_NOT_FOUND',
        'MESSAGE_NOT_CONFIRMED',
      ]),
    );
  });
});
