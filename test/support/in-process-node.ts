// A node or connector of a devnet layout run inside the test process (its real TLS listener, SQLite
// and Raft layer, without a child process), for tests that reach into its registry host, replicas,
// or the connector's own objects.
import { loadConnectorConfig } from '../../src/connector/config.js';
import type { ResolvedConnectorConfig } from '../../src/connector/config.js';
import { Connector } from '../../src/connector/connector.js';
import type { ConnectorOptions } from '../../src/connector/connector.js';
import { openStorage } from '../../src/connector/storage/index.js';
import { loadEncryptionKey } from '../../src/crypto/envelope/index.js';
import { loadSigningKey } from '../../src/crypto/index.js';
import { liveRegistryFromGenesis } from '../../src/registry/live-registry.js';
import { loadGenesisRegistry, loadNodeConfig } from '../../src/node/config.js';
import { LedgerbusNode } from '../../src/node/node.js';
import type { NodeOptions } from '../../src/node/node.js';
import { createLogger } from '../../src/runtime/logger.js';

/** Starts the node `configPath` (a devnet node.yaml) describes, logging errors only; `options` add to it. */
export async function startLayoutNode(
  configPath: string,
  options: Partial<Pick<NodeOptions, 'raftSnapshotEvery' | 'raftSnapshotBytes'>> = {},
): Promise<LedgerbusNode> {
  const config = loadNodeConfig(configPath);
  const node = new LedgerbusNode({
    nodeId: config.nodeId,
    key: loadSigningKey(config.keyFile),
    registry: loadGenesisRegistry(config.genesis),
    dataDirectory: config.dataDirectory,
    logger: createLogger({ name: config.nodeId, level: 'error' }),
    ...options,
  });
  await node.start();
  return node;
}

/**
 * The connector `configPath` (a devnet connector.yaml) describes, logging errors only, not started
 * (a test may want it unstarted); `options` add to or replace what the file gives.
 */
export async function layoutConnector(
  configPath: string,
  options: Partial<ConnectorOptions> = {},
): Promise<{ connector: Connector; config: ResolvedConnectorConfig }> {
  const config = loadConnectorConfig(configPath);
  const connector = new Connector({
    organization: config.organization,
    signingKey: loadSigningKey(config.keyFile),
    encryptionKey: loadEncryptionKey(config.encryptionKeyFile),
    registry: liveRegistryFromGenesis(loadGenesisRegistry(config.genesis).genesis),
    storage: await openStorage(config.storage),
    dataDirectory: config.dataDirectory,
    logger: createLogger({ name: config.organization, level: 'error' }),
    ...options,
  });
  return { connector, config };
}
