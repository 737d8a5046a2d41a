/**
 * The node's Prometheus endpoint (node.yaml `metrics.listen`): GET /metrics answers the node's
 * prom-client registry (the anomaly service's counters and the process's default metrics) in the
 * text exposition format. Plain HTTP and no authentication, like a Kafka broker's JMX exporter: it
 * is meant for a private interface. Nothing else is served.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { ErrorCode, LedgerbusError } from '../errors.js';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on `host:port`; a port another process holds is BAD_CONFIG saying so. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) =>
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`),
    );
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
