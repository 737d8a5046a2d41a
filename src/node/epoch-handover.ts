/**
 * Moving a partition to a new replica set, on this node's SQLite partition database: the shared
 * handover of src/partition/handover.ts (which says how an epoch closes and how a new replica copies
 * and re-executes the blocks it lacks) with the SDT contract as the state machine.
 */
import { merkleRoot } from '../crypto/index.js';
import type { Registry } from '../contracts/registry.js';
import type { Block } from '../ledger/block.js';
import type { PartitionInfo } from '../registry/types.js';
import { prepareEpochStorage } from '../partition/handover.js';
import type { HandoverSources as GenericHandoverSources } from '../partition/handover.js';
import { PartitionDatabase } from './partition-database.js';
import { sdtStateMachine } from './partition-replica.js';

export type HandoverSources = GenericHandoverSources<Registry>;

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
  const database = PartitionDatabase.open(dataDirectory, partition.groupId);
  try {
    return prepareEpochStorage(
      database,
      partition.groupId,
      partition.configEpoch,
      sources,
      sdtStateMachine,
      merkleRoot,
    );
  } finally {
    database.close();
  }
}
