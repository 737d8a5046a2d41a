/**
 * `connector.yaml`: the organization this connector acts for, its keys, storage, the node it talks
 * to, the genesis file (its trust bundle), how sends share batches, and its local API. Environment
 * overrides LEDGERBUS_CONNECTOR_*.
 */
import { dirname, join, resolve } from 'node:path';
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { readConfigFile } from '../runtime/config-file.js';
import { balancerPolicies } from './session/node-balancer.js';
import { partBytesMin } from './parts.js';
import type { StorageConfig } from './storage/index.js';

const connectorConfigSchema = t.record({
  organization: t.string({ minLength: 1, maxLength: 128 }),
  /** Ed25519 signing key: one of the organization's registered signing keys. */
  keyFile: t.string({ minLength: 1 }),
  /** X25519 key whose public half genesis registers as the organization's encryption key. */
  encryptionKeyFile: t.string({ minLength: 1 }),
  dataDirectory: t.string({ minLength: 1 }),
  genesis: t.string({ minLength: 1 }),
  /**
   * The one own-organization node to connect to (the older form of `nodes`); without either, every
   * node of the organization in genesis.
   */
  node: t.optional(t.string({ minLength: 1 })),
  /**
   * The organization's nodes this connector sends requests to and serves payloads through: ids, or
   * `{ id, address }` to dial a node elsewhere than its registered address (a private interface, a
   * proxy). Its key is still the registered one.
   */
  nodes: t.optional(
    t.array(
      t.record({
        id: t.string({ minLength: 1, maxLength: 128 }),
        address: t.optional(t.string({ pattern: /^[^\s:]+:\d{1,5}$/ })),
      }),
      { minItems: 1, maxItems: 64 },
    ),
  ),
  /**
   * How requests are spread over the nodes (docs/load-balancing.md): `policy` adaptive (default),
   * least-loaded or round-robin; `replicaReads` (default true) lets reads of a partition go to any
   * replica of it, of any organization; `decayMs` (default 3,000) is the time constant of the
   * latency estimates: shorter returns traffic to a healed node sooner, and tries a slow one more often.
   */
  balancer: t.optional(
    t.record({
      policy: t.optional(t.oneOf(...balancerPolicies)),
      replicaReads: t.optional(t.bool()),
      decayMs: t.optional(t.uint({ min: 100, max: 600_000 })),
    }),
  ),
  /**
   * How concurrent sends share signed publishes, as Kafka's `max.in.flight` and `linger.ms` do:
   * while fewer than `inFlightBatchesMax` (default 1) batches of a partition and recipient set await
   * their answer, queued messages go out after `lingerMs` (default 0: at once); at the limit they
   * wait, and the next batch takes them all. A higher limit means smaller batches under load.
   * `inlinePayloads` (default true): payloads of at most 4 KiB travel inside their publish, so every
   * replica keeps their ciphertext in its blocks; false keeps every payload in this organization's
   * storage until a recipient fetches it. `partBytes` (default 64 MiB): a value declared larger
   * is sealed and published in parts of this many bytes, so that recipients fetch the first parts
   * while the rest is still being encrypted (src/connector/parts.ts).
   */
  producer: t.optional(
    t.record({
      lingerMs: t.optional(t.uint({ min: 0, max: 1000 })),
      inFlightBatchesMax: t.optional(t.uint({ min: 1, max: 64 })),
      inlinePayloads: t.optional(t.bool()),
      partBytes: t.optional(t.uint({ min: partBytesMin, max: 1024 * 1024 * 1024 })),
    }),
  ),
  storage: t.optional(
    t.variant('kind', {
      filesystem: t.record({
        kind: t.literal('filesystem'),
        directory: t.optional(t.string({ minLength: 1 })),
      }),
      postgres: t.record({
        kind: t.literal('postgres'),
        connectionString: t.string({ minLength: 1 }),
        schema: t.optional(t.string({ minLength: 1 })),
      }),
    }),
  ),
  api: t.record({
    listen: t.string({ pattern: /^[^\s:]+:\d{1,5}$/ }),
    /** Bearer token the organization's applications present. */
    token: t.string({ minLength: 16 }),
  }),
  logLevel: t.optional(t.oneOf('debug', 'info', 'warn', 'error')),
});
export type ConnectorConfig = Infer<typeof connectorConfigSchema>;

/** A loaded configuration: paths resolved against the file, storage with its defaults filled in. */
export type ResolvedConnectorConfig = Omit<ConnectorConfig, 'storage'> & { readonly storage: StorageConfig };

/**
 * Reads and checks `path`. The file holds the API token (and may hold a database password), so it
 * is refused, as key files are, with KEY_FILE_PERMISSIONS and the `chmod 600` to run if group or
 * others may read or write it; BAD_CONFIG if it is unreadable or a field is wrong.
 */
export function loadConnectorConfig(path: string): ResolvedConnectorConfig {
  const raw = readConfigFile(path, 'the API token');
  const fields: Record<string, unknown> = { ...(typeof raw === 'object' && raw !== null ? raw : {}) };
  // A node named in the environment replaces the file's list: it is the one to use.
  if (process.env['LEDGERBUS_CONNECTOR_NODE'] !== undefined) {
    fields['node'] = process.env['LEDGERBUS_CONNECTOR_NODE'];
    delete fields['nodes'];
  }
  // `nodes: [node1, node2]` is short for `[{ id: node1 }, { id: node2 }]`.
  if (Array.isArray(fields['nodes']))
    fields['nodes'] = (fields['nodes'] as unknown[]).map((entry) =>
      typeof entry === 'string' ? { id: entry } : entry,
    );
  let config: ConnectorConfig;
  try {
    config = connectorConfigSchema.parse(fields, '');
    if (config.node !== undefined && config.nodes !== undefined)
      throw new LedgerbusError(ErrorCode.BadConfig, 'give either node or nodes, not both');
  } catch (error) {
    if (isLedgerbusError(error)) throw new LedgerbusError(ErrorCode.BadConfig, `${path}: ${error.message}`);
    throw error;
  }
  const base = dirname(resolve(path));
  const storage = config.storage ?? { kind: 'filesystem' as const };
  const dataDirectory = resolve(base, config.dataDirectory);
  return {
    ...config,
    keyFile: resolve(base, config.keyFile),
    encryptionKeyFile: resolve(base, config.encryptionKeyFile),
    dataDirectory,
    genesis: resolve(base, config.genesis),
    storage:
      storage.kind === 'filesystem'
        ? {
            kind: 'filesystem',
            directory:
              storage.directory === undefined
                ? join(dataDirectory, 'payloads')
                : resolve(base, storage.directory),
          }
        : {
            kind: 'postgres',
            connectionString: storage.connectionString,
            ...(storage.schema === undefined ? {} : { schema: storage.schema }),
          },
  };
}
