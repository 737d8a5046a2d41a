/**
 * What the connector's parts share: who it is, what it trusts, where it keeps things, and its
 * clock. Each part takes the few of these it uses (`Pick<ConnectorContext, …>`), so its
 * dependencies stay visible in its options.
 */
import type { Signer } from '../crypto/index.js';
import type { EncryptionKeyPair } from '../crypto/envelope/index.js';
import type { ProofTrust } from '../proofs/index.js';
import type { LiveRegistry } from '../registry/live-registry.js';
import type { Logger } from '../runtime/logger.js';
import type { ConnectorDatabase } from './connector-database.js';
import type { ConnectorMetrics } from './connector-metrics.js';
import type { ConnectorEvents } from './events.js';
import type { Lifecycle } from './lifecycle.js';
import type { PayloadStorage } from './storage/index.js';

export interface ConnectorContext {
  readonly organization: string;
  /**
   * The connector key bound to the network of the genesis it started from: all it signs (publishes,
   * confirmations, fetch requests, envelope headers, admin transactions) is valid in that network only.
   */
  readonly signer: Signer;
  readonly encryptionKey: EncryptionKeyPair;
  readonly registry: LiveRegistry;
  readonly trust: ProofTrust;
  readonly database: ConnectorDatabase;
  readonly storage: PayloadStorage;
  readonly logger: Logger;
  readonly lifecycle: Lifecycle;
  readonly events: ConnectorEvents;
  /**
   * The connector's Prometheus metrics (connector-metrics.ts). Parts take it as an optional option,
   * so that a test can build one without it.
   */
  readonly metrics: ConnectorMetrics;
  /** Uniform in [0, 1): spreads retries (jitter). Not for anything secret: nonces use node:crypto. */
  readonly random: () => number;
}
