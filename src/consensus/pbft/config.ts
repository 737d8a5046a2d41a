/** Validation and defaults of `PbftConfig`, kept apart from the replica that reads it. */
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { PbftConfig } from './types.js';

/**
 * etcd-style up-front validation: throws a BAD_CONFIG LedgerbusError naming the field at fault, or
 * returns if `config` is one a replica can run with. The replica's constructor calls it first.
 */
export function validateConfig(config: PbftConfig): void {
  const fail = (field: string, why: string): never => {
    throw new LedgerbusError(ErrorCode.BadConfig, `pbft.${field}: ${why}`);
  };
  const n = config.replicas.length;
  if (n < 4) fail('replicas', `needs at least 4 replicas (3f+1 with f ≥ 1), got ${n}`);
  if (new Set(config.replicas.map((replica) => replica.id)).size !== n)
    fail('replicas', 'replica ids must be distinct');
  if (!Number.isInteger(config.self) || config.self < 0 || config.self >= n)
    fail('self', 'must index replicas');
  const positive: (keyof PbftConfig)[] = [
    'checkpointInterval',
    'watermarkWindow',
    'batchRequestsMax',
    'batchBytesMax',
    'batchTicksMax',
    'requestTimeoutTicks',
    'viewChangeTimeoutTicks',
    'statusIntervalTicks',
    'pendingRequestsMax',
    'requestBytesMax',
    'fetchBlocksMax',
  ];
  for (const field of positive) {
    const value = config[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
      fail(field, 'must be a positive integer');
  }
  if (config.watermarkWindow % config.checkpointInterval !== 0) {
    fail('watermarkWindow', 'must be a multiple of checkpointInterval');
  }
  if (config.watermarkWindow < 2 * config.checkpointInterval) {
    fail('watermarkWindow', 'must be at least 2 × checkpointInterval so the window moves while proposing');
  }
}

/** Sensible defaults for a real deployment; the simulator uses smaller values. */
export const defaultPbftTuning = {
  checkpointInterval: 64,
  watermarkWindow: 256,
  batchRequestsMax: 1024,
  batchBytesMax: 4 * 1024 * 1024,
  batchTicksMax: 1,
  requestTimeoutTicks: 200,
  viewChangeTimeoutTicks: 200,
  statusIntervalTicks: 20,
  pendingRequestsMax: 100_000,
  requestBytesMax: 1024 * 1024,
  clockSkewMaxMs: 5_000,
  fetchBlocksMax: 64,
} as const;
