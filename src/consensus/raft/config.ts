/**
 * A `RaftConfig` checked once, up front (etcd's `Config.validate()`), with defaults filled in: the
 * core reads only `RaftSettings` afterwards, so no code path sees an unchecked value.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { RaftConfig } from './types.js';

export interface RaftSettings {
  readonly id: string;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendEntriesMax: number;
  readonly maxInflightMessages: number;
  readonly entryBytesMax: number;
  readonly uncommittedEntriesMax: number;
  readonly pendingReadsMax: number;
}

/** The BAD_CONFIG error for `field` (a config field, or an input field such as `change.id`). */
export function badConfig(field: string, reason: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadConfig, `raft config ${field}: ${reason}`);
}

/**
 * `config` with every default filled in. Throws LedgerbusError(BadConfig) naming the first field
 * that is invalid: an empty id, a server listed twice, a non-integer seed, a limit that is not a
 * positive integer, or heartbeatTicks not below electionTicks.
 */
export function validateConfig(config: RaftConfig): RaftSettings {
  const positive = (field: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!Number.isSafeInteger(v) || v < 1) throw badConfig(field, `must be a positive integer, got ${v}`);
    return v;
  };
  if (typeof config.id !== 'string' || config.id.length === 0) throw badConfig('id', 'must be non-empty');
  const members = [...config.voters, ...(config.learners ?? [])];
  if (new Set(members).size !== members.length) throw badConfig('voters', 'a server is listed twice');
  if (!Number.isSafeInteger(config.seed)) throw badConfig('seed', 'must be an integer');
  const electionTicks = positive('electionTicks', config.electionTicks, 10);
  const heartbeatTicks = positive('heartbeatTicks', config.heartbeatTicks, 1);
  if (heartbeatTicks >= electionTicks) throw badConfig('heartbeatTicks', 'must be less than electionTicks');
  return {
    id: config.id,
    electionTicks,
    heartbeatTicks,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    appendEntriesMax: positive('appendEntriesMax', config.appendEntriesMax, 64),
    maxInflightMessages: positive('maxInflightMessages', config.maxInflightMessages, 256),
    entryBytesMax: positive('entryBytesMax', config.entryBytesMax, 1024 * 1024),
    uncommittedEntriesMax: positive('uncommittedEntriesMax', config.uncommittedEntriesMax, 1024),
    pendingReadsMax: positive('pendingReadsMax', config.pendingReadsMax, 1024),
  };
}
