/**
 * The job routes of the connector's REST API (DESIGN §8): a thin transport over the connector's
 * JobsApi — submitting and following jobs as a requester, approving or refusing them as an owner,
 * listing every sharing record as a supervisor — with the same authentication, validation and
 * error body as every other route.
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { datashareRequestSchemas } from '../openapi/datashare-schemas.js';
import type { JobSubmitInput, JobsApi } from './jobs-api.js';

/** Registers the job routes on `app`; without a JobsApi (the in-memory test connector) they answer UNKNOWN_METHOD. */
export function registerJobRoutes(app: FastifyInstance, jobs: JobsApi | undefined): void {
  const api = (): JobsApi => {
    if (jobs === undefined)
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'this connector does not run jobs');
    return jobs;
  };

  app.post<{ Body: JobSubmitInput }>(
    '/v1/jobs',
    { schema: { body: datashareRequestSchemas.jobSubmitBody } },
    async (request) => api().submit(request.body),
  );

  app.get<{ Querystring: { all?: boolean; topic?: string } }>(
    '/v1/jobs',
    { schema: { querystring: datashareRequestSchemas.jobListQuery } },
    async (request) => {
      const { all, topic } = request.query;
      if (all === true) return { jobs: await api().listAll(topic === undefined ? {} : { topic }) };
      return { jobs: api().list() };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    { schema: { params: datashareRequestSchemas.jobParams } },
    async (request) => api().status(request.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id/result',
    { schema: { params: datashareRequestSchemas.jobParams } },
    async (request) => api().result(request.params.id),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/jobs/:id/approve',
    { schema: { params: datashareRequestSchemas.jobParams } },
    async (request) => api().approve(request.params.id),
  );

  app.post<{ Params: { id: string }; Body: { reason: string } }>(
    '/v1/jobs/:id/reject',
    { schema: { params: datashareRequestSchemas.jobParams, body: datashareRequestSchemas.jobRejectBody } },
    async (request) => api().reject(request.params.id, request.body.reason),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id/receipt',
    { schema: { params: datashareRequestSchemas.jobParams } },
    async (request) => api().receipt(request.params.id),
  );
}
