/**
 * A process that loads a big generated CSV into a DatasetStore, for the crash test: it prints
 * "loading" once the load has begun, and "loaded" if it ever finishes. Usage:
 * `node --import tsx load-worker.ts DIRECTORY NAME ROWS`.
 */
import { Readable } from 'node:stream';
import { DatasetStore } from '../dataset-store.js';
import { bigLoansCsv } from './loans.js';

const [directory, name, rows] = process.argv.slice(2);
const store = new DatasetStore(directory!);
const source = Readable.from(bigLoansCsv(Number(rows)));
let told = false;
source.on('data', () => {
  if (told) return;
  told = true;
  process.stdout.write('loading\n');
});
await store.add(name!, source, { format: 'csv' });
process.stdout.write('loaded\n');
