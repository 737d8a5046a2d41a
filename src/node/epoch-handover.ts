/**
 * Moving a partition to a new replica set (a new epoch of its PBFT group). The old group ends its
 * epoch with a closing block — the first block whose batch names a topic-group index at which the
 * partition has a newer epoch, executed with every transaction rejected (EPOCH_CLOSED). A node of
 * the new set starts the new epoch from that block: it first brings its partition database up to
 * it, copying the blocks it lacks from the topic's global ledger (each certified by the old replicas
 * and re-verified when the global ledger applied it) and executing them again against the registry
 * each names, so its contract state is exactly the old replicas' — the results root must match.
 */
import { merkleRoot } from '../crypto/index.js';
import { bytesEqual } from '../codec/index.js';
import type { Registry } from '../contracts/registry.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { Block } from '../ledger/block.js';
import type { PartitionInfo } from '../registry/types.js';
import { LayeredContractState, PartitionDatabase } from './partition-database.js';
import { closes, executeBlockBody } from './partition-replica.js';

export interface HandoverSources {
  /** The registry at a block's indexes; undefined while this node has not applied them. */
  readonly registryAt: (systemIndex: number, topicIndex: number) => Registry | undefined;
  /** The partition's epoch at a topic-group index. */
  readonly epochAt: (topicIndex: number) => number | undefined;
  /** A block of this partition from the topic's global ledger, if it holds it yet. */
  readonly globalBlock: (height: number) => Block | undefined;
}

/**
 * The block closing the epoch before `partition.configEpoch`, once this node's database holds it
 * and everything before it; undefined while the global ledger has not replicated it yet (call
 * again later). Blocks this database lacks are copied and executed again on the way.
 */
export function prepareEpoch(
  dataDirectory: string,
  partition: PartitionInfo,
  sources: HandoverSources,
): Block | undefined {
  const previousEpoch = partition.configEpoch - 1;
  const database = PartitionDatabase.open(dataDirectory, partition.groupId);
  try {
    const found = closingBlock(database, previousEpoch, sources);
    if (found !== undefined) return found;
    const state = new LayeredContractState(database.committedState);
    for (;;) {
      const height = (database.blocks.head()?.height ?? 0) + 1;
      const block = sources.globalBlock(height);
      if (block === undefined) return undefined;
      const { header } = block;
      const registry = sources.registryAt(header.systemIndex ?? 0, header.topicIndex ?? 0);
      if (registry === undefined) return undefined;
      const closesEpoch = closes(sources.epochAt, header.topicIndex ?? 0, header.configEpoch);
      const outcome = executeBlockBody(state.layerFor(height), {
        partitionId: partition.groupId,
        configEpoch: header.configEpoch,
        height,
        timestamp: header.timestamp,
        registry,
        closesEpoch,
        requests: block.transactions,
      });
      if (!bytesEqual(merkleRoot(outcome.results), header.resultsRoot)) {
        throw new LedgerbusError(
          ErrorCode.StorageCorrupt,
          `${partition.groupId}@${height}: executing the copied block gave another results root`,
        );
      }
      const writes = state.take(height);
      if (writes === undefined) throw new Error(`${partition.groupId}@${height}: no writes recorded`);
      database.commitBlock({ ...block, results: outcome.results }, writes);
      if (header.configEpoch === previousEpoch && closesEpoch) return block;
    }
  } finally {
    database.close();
  }
}

/** The closing block of `epoch` if the database holds it (searching down past newer epochs). */
function closingBlock(
  database: PartitionDatabase,
  epoch: number,
  sources: HandoverSources,
): Block | undefined {
  for (let height = database.blocks.head()?.height ?? 0; height > 0; height--) {
    const block = database.blocks.get(height);
    if (block === undefined) return undefined;
    if (block.header.configEpoch > epoch) continue;
    if (block.header.configEpoch < epoch) return undefined;
    return closes(sources.epochAt, block.header.topicIndex ?? 0, epoch) ? block : undefined;
  }
  return undefined;
}
