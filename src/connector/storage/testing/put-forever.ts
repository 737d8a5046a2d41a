/**
 * Child process of the crash test (filesystem.crash.test.ts): opens filesystem storage and puts
 * generated payloads forever, printing `stored <key>` only after put resolved — that is, after the
 * file and its directory were fsynced. The parent SIGKILLs it at random instants and checks that every
 * printed key survived with the right content.
 *
 * Usage: node --import tsx src/connector/storage/testing/put-forever.ts <directory> <seed>
 */
import { openFilesystemStorage } from '../filesystem.js';
import { generated } from './generated.js';

const [directory, seedText] = process.argv.slice(2);
if (directory === undefined || seedText === undefined) {
  process.stderr.write('usage: put-forever.ts <directory> <seed>\n');
  process.exit(2);
}
const seed = Number(seedText);
const storage = await openFilesystemStorage(directory);
process.stdout.write('opened\n');
for (let index = 0; ; index += 1) {
  // Mostly small payloads (many puts, many kill points), with a large one now and then so that kills
  // also land in the middle of a long write.
  const size =
    index % 7 === 6 ? 1_000_000 + ((seed + index * 7919) % 3_000_000) : (seed + index * 104_729) % 70_000;
  const { key } = await storage.put(generated(size, seed * 100_000 + index).stream);
  // On Linux, writes to a pipe are synchronous in Node: once this returns the parent can read the line
  // even if we are killed on the next instruction.
  process.stdout.write(`stored ${key}\n`);
}
