/**
 * `node.yaml`: which node this process is, where its key and data live, and the genesis file. Values
 * can be overridden by environment variables (LEDGERBUS_NODE_*), as DESIGN §10 asks. Validated up
 * front; a bad field is BAD_CONFIG naming it.
 */
import { dirname, resolve } from 'node:path';
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { GenesisRegistry, parseGenesis } from '../registry/genesis.js';
import { readConfigFile } from '../runtime/config-file.js';

// node.yaml holds no secret (its key is a separate 0600 file, named by path), so unlike connector.yaml
// it is read whatever its mode; the devnet writes it 0600 all the same.
const nodeConfigSchema = t.record({
  nodeId: t.string({ minLength: 1, maxLength: 128 }),
  /** Ed25519 private key (PKCS#8 PEM, mode 0600). Relative paths are relative to the config file. */
  keyFile: t.string({ minLength: 1 }),
  dataDirectory: t.string({ minLength: 1 }),
  genesis: t.string({ minLength: 1 }),
  /** Address to bind; defaults to the node's address in genesis. */
  listen: t.optional(t.string({ pattern: /^[^\s:]+:\d{1,5}$/ })),
  /**
   * Where to dial some peers instead of their registered address (node id → host:port): a private
   * interface, a NAT, or a fault-injecting proxy. Their keys are still the registered ones.
   */
  peers: t.optional(t.dict(t.string({ pattern: /^[^\s:]+:\d{1,5}$/ }), { maxEntries: 1024 })),
  /** Logical clock period of the consensus cores. */
  tickMs: t.optional(t.uint({ min: 1, max: 1000 })),
  logLevel: t.optional(t.oneOf('debug', 'info', 'warn', 'error')),
  /**
   * Per-organization quota on this node's client API (token bucket, see rate-limit.ts); over it a
   * request fails RATE_LIMITED (retriable). Default 1,000 requests/s, burst 2,000.
   */
  rateLimit: t.optional(
    t.record({
      requestsPerSecond: t.uint({ min: 1, max: 1_000_000 }),
      burst: t.uint({ min: 1, max: 10_000_000 }),
    }),
  ),
  /**
   * The Raft layer: every group (__system and the topics) takes a snapshot and compacts its log
   * every `snapshotEvery` applied entries (default 1000) or once the entries since the last one hold
   * `snapshotBytes` (default 16 MiB), whichever comes first. Lower keeps less log on disk; a node
   * further behind than that catches up from a snapshot and fills its global ledger from peers.
   */
  raft: t.optional(
    t.record({
      snapshotEvery: t.optional(t.uint({ min: 1, max: 100_000_000 })),
      snapshotBytes: t.optional(t.uint({ min: 1024, max: 1024 * 1024 * 1024 * 1024 })),
    }),
  ),
  /**
   * Prometheus metrics (node-metrics.ts: partitions, Raft groups, global ledgers, requests, storage;
   * observations, alerts, detector mode; process metrics) served over plain HTTP at
   * http://<listen>/metrics, with /healthz and /readyz beside them (metrics-server.ts). Off unless
   * set; bind it to a private interface.
   */
  metrics: t.optional(t.record({ listen: t.string({ pattern: /^[^\s:]+:\d{1,5}$/ }) })),
});
export type NodeConfig = Infer<typeof nodeConfigSchema>;

function envOverrides(prefix: string, fields: readonly string[]): Record<string, string | number> {
  const overrides: Record<string, string | number> = {};
  for (const field of fields) {
    const name = `${prefix}${field.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()}`;
    const value = process.env[name];
    if (value !== undefined)
      overrides[field] = /^\d+$/.test(value) && field.endsWith('Ms') ? Number(value) : value;
  }
  return overrides;
}

export function loadNodeConfig(path: string): NodeConfig & { baseDirectory: string } {
  const raw = readConfigFile(path);
  const merged = {
    ...(typeof raw === 'object' && raw !== null ? raw : {}),
    ...envOverrides('LEDGERBUS_NODE_', [
      'nodeId',
      'keyFile',
      'dataDirectory',
      'genesis',
      'listen',
      'tickMs',
      'logLevel',
    ]),
  };
  try {
    const config = nodeConfigSchema.parse(merged, '');
    const baseDirectory = dirname(resolve(path));
    return {
      ...config,
      keyFile: resolve(baseDirectory, config.keyFile),
      dataDirectory: resolve(baseDirectory, config.dataDirectory),
      genesis: resolve(baseDirectory, config.genesis),
      baseDirectory,
    };
  } catch (error) {
    if (isLedgerbusError(error)) throw new LedgerbusError(ErrorCode.BadConfig, `${path}: ${error.message}`);
    throw error;
  }
}

/** Loads and checks a genesis (JSON or YAML) into the registry. */
export function loadGenesisRegistry(path: string): GenesisRegistry {
  return new GenesisRegistry(parseGenesis(readConfigFile(path), path));
}
