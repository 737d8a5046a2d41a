/** Runs simulator seeds in a worker thread so a many-seed run uses every core. */
import { parentPort, workerData } from 'node:worker_threads';
import { SimWorld } from './world.js';
import type { SimCryptoKind } from './sim-crypto.js';
import type { FaultSet } from './world.js';

interface SeedJob {
  readonly seeds: readonly number[];
  readonly replicas: number;
  readonly crypto: SimCryptoKind;
  readonly faults: FaultSet;
}

const job = workerData as SeedJob;
for (const seed of job.seeds) {
  const result = new SimWorld({ seed, replicas: job.replicas, crypto: job.crypto, faults: job.faults }).run();
  parentPort?.postMessage(result);
}
