/**
 * The node's Prometheus endpoint (node.yaml `metrics.listen`), plain HTTP and no authentication,
 * like a Kafka broker's JMX exporter: it is meant for a private interface. It serves
 *
 *   GET /metrics  the node's prom-client registry (node-metrics.ts, the anomaly service's counters,
 *                 the process's default metrics) in the text exposition format;
 *   GET /healthz  200 `ok` while the process runs and its event loop answers (liveness);
 *   GET /readyz   200 `ready` when the node's readiness check passes, else 503 with the reasons in
 *                 plain text, one per line (readiness: send it traffic, or count it in).
 *
 * Nothing else is served.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { ErrorCode, LedgerbusError } from '../errors.js';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** What /readyz answers: ready, or what is not (each reason names the part that is not ready). */
export interface Readiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

export interface MetricsServerOptions {
  /** Read on every /readyz; without it the node counts as ready whenever this server answers. */
  readonly readiness?: () => Readiness;
}

/** Reasons listed in one /readyz answer: a node with many partitions down says how many more. */
const reasonsMax = 20;

/** Listens on `host:port`; a port another process holds is BAD_CONFIG saying so. */
export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const text = (status: number, body: string): void => {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
    };
    if (request.method !== 'GET') {
      text(405, 'only GET /metrics, /healthz and /readyz are served here\n');
      return;
    }
    switch (path) {
      case '/metrics':
        registry.metrics().then(
          (body) => response.writeHead(200, { 'content-type': registry.contentType }).end(body),
          (error: unknown) => text(500, `${(error as Error).message}\n`),
        );
        return;
      case '/healthz':
        text(200, 'ok\n');
        return;
      case '/readyz': {
        let readiness: Readiness;
        try {
          readiness = options.readiness?.() ?? { ready: true, reasons: [] };
        } catch (error) {
          // A check that cannot run is no proof of readiness.
          readiness = { ready: false, reasons: [`the readiness check failed: ${(error as Error).message}`] };
        }
        if (readiness.ready) {
          text(200, 'ready\n');
          return;
        }
        const shown = readiness.reasons.slice(0, reasonsMax);
        const more = readiness.reasons.length - shown.length;
        text(
          503,
          `not ready:\n${[...shown, ...(more > 0 ? [`and ${more} more`] : [])].map((line) => `- ${line}\n`).join('')}`,
        );
        return;
      }
      default:
        text(404, 'only GET /metrics, /healthz and /readyz are served here\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new LedgerbusError(
          ErrorCode.BadConfig,
          error.code === 'EADDRINUSE'
            ? `metrics.listen ${host}:${port}: the port is already in use by another process; choose a free port in node.yaml (metrics.listen) or stop that process`
            : `metrics.listen ${host}:${port}: cannot listen (${error.message})`,
        ),
      );
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
