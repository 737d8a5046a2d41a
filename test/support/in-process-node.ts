// A node of a devnet layout run inside the test process (its real TLS listener, SQLite and Raft
// layer, without a child process), for tests that reach into its registry host and replicas.
import { loadSigningKey } from '../../src/crypto/index.js';
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
