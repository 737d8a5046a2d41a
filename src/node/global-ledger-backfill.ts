/**
 * Filling the holes a Raft snapshot leaves in a node's global ledger. Topic groups compact their log
 * into a snapshot that carries each partition's head but not the blocks below it (they would make
 * every snapshot as large as the ledger); a node that was behind the leader's compacted log installs
 * such a snapshot and has its global ledger's head moved past blocks it never applied. This task
 * fetches those blocks — from the node's own replica of the partition, else from the partition's
 * replicas, else from another member's global ledger — and keeps each only after checking it as
 * `apply` would: its certificate against the replica keys of its epoch, its Merkle roots, its link to
 * the block below, and, where the hole ends, the link of the block above it to this one. A lying
 * peer can therefore delay the backfill, never put a block in it.
 */
import type { CborValue } from '../codec/index.js';
import { bytesEqual } from '../codec/index.js';
import type { Block, BlockHeader } from '../ledger/block.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { partitionGroupId } from '../contracts/registry.js';
import { indexBlock } from '../registry/global-index.js';
import type { TopicStateMachine } from '../registry/topic-state.js';
import type { Logger } from '../runtime/logger.js';
import type { GlobalLedgerDatabase } from './global-ledger-database.js';

/** Blocks asked for per request (a peer serves at most 256). */
const backfillBlocksMax = 64;

export interface BackfillSources {
  /** Encoded blocks from `from` of a partition this node replicates, or undefined. */
  readonly localBlocks: (partition: string, from: number, count: number) => Uint8Array[] | undefined;
  /** A request to another node over its consensus link. */
  readonly requestPeer: (nodeId: string, method: string, body: CborValue) => Promise<CborValue>;
  readonly selfNodeId: string;
  readonly logger: Logger;
}

/**
 * One pass over a topic: for each partition, the top of the first hole below its head, filled as far
 * as one fetch goes. The hole is filled from the top down, so every block stored is anchored: the
 * last block of a run must hash to what the ledger already trusts above it (the head the Raft group
 * applied, or the previousHash of the lowest block stored above the hole), and each block below to
 * the one above it. Returns the number of blocks stored (0: nothing missing, or none served yet).
 */
export async function backfillTopic(
  topic: string,
  machine: TopicStateMachine,
  ledger: GlobalLedgerDatabase,
  topicMembers: readonly string[],
  sources: BackfillSources,
): Promise<number> {
  let stored = 0;
  const config = machine.latest.config;
  for (let number = 0; number < config.partitions.length; number++) {
    const partition = partitionGroupId(topic, number);
    const head = machine.head(partition);
    if (head === undefined) continue;
    const gap = ledger.firstGap(partition, head.height);
    if (gap === undefined) continue;
    const anchor =
      gap.to === head.height ? head.hash : ledger.block(partition, gap.to + 1)?.header.previousHash;
    if (anchor === undefined) continue;
    const from = Math.max(gap.from, gap.to - backfillBlocksMax + 1);
    const replicas = config.partitions[number]!.replicas.map((replica) => replica.id);
    const run = await fetchRun(partition, from, gap.to - from + 1, replicas, topicMembers, sources);
    const checked = checkRun(machine, partition, run, from, gap.to, anchor, ledger, sources.logger);
    for (const { block, bytes, hash } of checked) {
      ledger.append({ partition, block, bytes, hash, index: indexBlock(block), raftIndex: 0 });
      stored++;
    }
  }
  return stored;
}

/**
 * The run's blocks, checked, if it is exactly heights `from`..`to`, each certified and linked to the
 * one before it (and to the ledger's block below `from`, if held), the last hashing to `anchor`;
 * otherwise nothing (logged).
 */
function checkRun(
  machine: TopicStateMachine,
  partition: string,
  run: readonly Uint8Array[],
  from: number,
  to: number,
  anchor: Uint8Array,
  ledger: GlobalLedgerDatabase,
  logger: Logger,
): { block: Block; bytes: Uint8Array; hash: Uint8Array }[] {
  if (run.length !== to - from + 1) return [];
  let previous: BlockHeader | undefined = from === 1 ? undefined : ledger.block(partition, from - 1)?.header;
  const checked: { block: Block; bytes: Uint8Array; hash: Uint8Array }[] = [];
  for (const [offset, bytes] of run.entries()) {
    try {
      const { block, hash } = machine.verifyMissing(partition, bytes, previous);
      if (block.header.height !== from + offset) {
        throw new LedgerbusError(
          ErrorCode.BrokenChain,
          `block ${block.header.height} where ${from + offset} belongs`,
        );
      }
      checked.push({ block, bytes, hash });
      previous = block.header;
    } catch (error) {
      logger.warn(
        { partition, height: from + offset, error: (error as Error).message },
        'a block offered to fill the global ledger did not verify; nothing of its run was stored',
      );
      return [];
    }
  }
  if (!bytesEqual(checked.at(-1)!.hash, anchor)) {
    logger.error(
      { partition, height: to },
      'certified blocks offered to fill the global ledger do not lead to the block above them; nothing was stored',
    );
    return [];
  }
  return checked;
}

/** Consecutive encoded blocks from `from`: local replica, then partition replicas, then members. */
async function fetchRun(
  partition: string,
  from: number,
  count: number,
  replicas: readonly string[],
  topicMembers: readonly string[],
  sources: BackfillSources,
): Promise<Uint8Array[]> {
  const local = sources.localBlocks(partition, from, count);
  if (local !== undefined && local.length > 0) return local;
  const asks: [string, string][] = [
    ...replicas.map((node): [string, string] => [node, 'blocks']),
    ...topicMembers.map((node): [string, string] => [node, 'globalBlocks']),
  ];
  for (const [node, method] of asks) {
    if (node === sources.selfNodeId) continue;
    try {
      const reply = (await sources.requestPeer(node, method, {
        group: partition,
        from,
        count,
      })) as Record<string, CborValue>;
      const blocks = reply['blocks'];
      if (!Array.isArray(blocks)) continue;
      const run = blocks.filter((block): block is Uint8Array => block instanceof Uint8Array);
      if (run.length > 0) return run;
    } catch (error) {
      sources.logger.debug(
        { partition, node, method, error: (error as Error).message },
        'could not fetch blocks to fill the global ledger',
      );
    }
  }
  return [];
}
