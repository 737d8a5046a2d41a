/** Structured JSON logs (pino) for nodes and connectors; one logger per process, named after it. */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(options: { name: string; level?: string; destination?: number }): Logger {
  return pino(
    { name: options.name, level: options.level ?? 'info', base: { name: options.name } },
    pino.destination({ fd: options.destination ?? 1, sync: false }),
  );
}
