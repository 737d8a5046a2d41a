/**
 * Child process of the crash-durability test (src/ledger/block-store.crash.test.ts): opens the block
 * store, then appends certified blocks after its head forever, printing `stored <height>` only after
 * append returned — that is, after the block was fsynced. The parent kills it with SIGKILL at random
 * moments and checks that every height printed survived.
 *
 * Usage: node --import tsx test/ledger/append-forever.ts <database path> <partition id>
 */
import { BlockStore } from '../../src/ledger/block-store.js';
import { makeBlock, makeGroup } from './fixtures.js';

const [databasePath, partitionId] = process.argv.slice(2);
if (databasePath === undefined || partitionId === undefined) {
  process.stderr.write('usage: append-forever.ts <database path> <partition id>\n');
  process.exit(2);
}

const group = makeGroup({ n: 4, partitionId });
const store = BlockStore.open(databasePath, { partitionId });
process.stdout.write(`opened ${store.head()?.height ?? 0}\n`);
let previous = store.head()?.header;
for (;;) {
  const height = (previous?.height ?? 0) + 1;
  // Rotate which quorum signs, so certificates differ from block to block as they would in a group.
  const signerIndexes = [0, 1, 2, 3].filter((i) => i !== height % 4);
  const block = makeBlock({ group, previous, signerIndexes });
  store.append(block);
  // On Linux, writes to a pipe are synchronous in Node: once this returns the parent can read the line
  // even if we are killed on the next instruction.
  process.stdout.write(`stored ${height}\n`);
  previous = block.header;
}
