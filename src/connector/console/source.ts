/**
 * What the console reads of its connector. Everything is this connector's own: its registry copy and
 * node session (network view), its database (messages), the receipts its node builds for messages
 * it sent or received. The optional parts are found at run time, as the REST API finds `readiness`.
 */
import type { ConnectorAdminApi, ConnectorApi, Readiness } from '../api-types.js';
import type { NodeStats } from '../session/node-balancer.js';
import type { SentMessagesSource } from './sent-messages.js';

export type ConsoleConnector = Pick<
  ConnectorApi,
  'organization' | 'received' | 'receivedMessage' | 'latestSequence' | 'receipt' | 'onEvent'
> &
  Partial<Pick<ConnectorAdminApi, 'organizations' | 'topics'>> & {
    /** As `GET /readyz` answers it; absent (an in-memory connector): nothing to report. */
    readiness?(): Promise<Readiness>;
    /** How the connector's node session sees each of its organization's nodes. */
    nodeStats?(): readonly NodeStats[];
    /** What this organization sent; absent: the messages view says it cannot list them. */
    readonly sentMessages?: SentMessagesSource;
  };

/** The subset of a pino logger the console uses. */
export interface ConsoleLogger {
  debug(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}
