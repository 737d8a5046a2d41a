/**
 * Moving a partition to a new replica set (a new epoch of its PBFT group), the storage side. The old
 * group ends its epoch with a closing block — the first block whose batch names a topic-group index
 * at which the partition has a newer epoch, executed with every transaction rejected. A replica of
 * the new set starts the new epoch from that block: it first brings its storage up to it, copying
 * the blocks it lacks from the topic's global ledger (each certified by the old replicas) and
 * executing them again against the registry each names, so its contract state is exactly the old
 * replicas' — the results root must match. The node does this on its SQLite file
 * (src/node/epoch-handover.ts), the simulator on its memory storage.
 */
import { bytesEqual } from '../codec/index.js';
import { ErrorCode, LedgerbusError, AssertionError } from '../errors.js';
import type { Block } from '../ledger/block.js';
import { resultLeaf } from '../ledger/result-leaf.js';
import { closes } from './driver.js';
import type { PartitionStateMachine } from './driver.js';
import { LayeredContractState } from './storage.js';
import type { PartitionStorage } from './storage.js';

export interface HandoverSources<TRegistry> {
  /** The registry at a block's indexes; undefined while this host has not applied them. */
  readonly registryAt: (systemIndex: number, topicIndex: number) => TRegistry | undefined;
  /** The partition's epoch at a topic-group index. */
  readonly epochAt: (topicIndex: number) => number | undefined;
  /** A block of this partition from the topic's global ledger, if it holds it yet. */
  readonly globalBlock: (height: number) => Block | undefined;
}

/**
 * The block closing epoch `newEpoch - 1`, once `storage` holds it and everything before it; undefined
 * while the global ledger (or this host's registry) has not reached it yet (call again later).
 * Blocks the storage lacks are copied, executed again with `stateMachine` and stored on the way
 * (each synced). Throws StorageCorrupt if a copied block's execution gives another results root.
 */
export function prepareEpochStorage<TRegistry, TEvent>(
  storage: PartitionStorage,
  partitionId: string,
  newEpoch: number,
  sources: HandoverSources<TRegistry>,
  stateMachine: PartitionStateMachine<TRegistry, TEvent>,
  merkleRoot: (leaves: readonly Uint8Array[]) => Uint8Array,
): Block | undefined {
  const previousEpoch = newEpoch - 1;
  const found = closingBlock(storage, previousEpoch, sources);
  if (found !== undefined) return found;
  const state = new LayeredContractState(storage.committedState);
  for (;;) {
    const height = (storage.blocks.head()?.height ?? 0) + 1;
    const block = sources.globalBlock(height);
    if (block === undefined) return undefined;
    const { header } = block;
    const registry = sources.registryAt(header.systemIndex ?? 0, header.topicIndex ?? 0);
    if (registry === undefined) return undefined;
    const closesEpoch = closes(sources.epochAt, header.topicIndex ?? 0, header.configEpoch);
    const outcome = stateMachine.execute(state.layerFor(height), {
      partitionId,
      configEpoch: header.configEpoch,
      height,
      timestamp: header.timestamp,
      registry,
      closesEpoch,
      requests: block.transactions,
    });
    if (!bytesEqual(merkleRoot(outcome.results.map(resultLeaf)), header.resultsRoot)) {
      throw new LedgerbusError(
        ErrorCode.StorageCorrupt,
        `${partitionId}@${height}: executing the copied block gave another results root`,
      );
    }
    const writes = state.take(height);
    if (writes === undefined) throw new AssertionError(`${partitionId}@${height}: no writes recorded`);
    storage.commitBlock({ ...block, results: outcome.results }, writes);
    storage.sync();
    if (header.configEpoch === previousEpoch && closesEpoch) return block;
  }
}

/** The closing block of `epoch` if the storage holds it (searching down past newer epochs). */
function closingBlock<TRegistry>(
  storage: PartitionStorage,
  epoch: number,
  sources: HandoverSources<TRegistry>,
): Block | undefined {
  for (let height = storage.blocks.head()?.height ?? 0; height > 0; height--) {
    const block = storage.blocks.get(height);
    if (block === undefined) return undefined;
    if (block.header.configEpoch > epoch) continue;
    if (block.header.configEpoch < epoch) return undefined;
    return closes(sources.epochAt, block.header.topicIndex ?? 0, epoch) ? block : undefined;
  }
  return undefined;
}
