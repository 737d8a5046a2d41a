/**
 * The policy flags of `ledgerbus topic create` and `topic set-policy`, and the policy lines of
 * `topic describe`. Escrow (DESIGN §7) is `--escrow` plus optional parameters; every value is
 * checked here, naming the flag, before anything is sent — the connector and the registry
 * (BAD_POLICY) check again, so a caller that skips the CLI gains nothing.
 */
import type { Command } from 'commander';
import type { EscrowPolicyDescription, TopicDescription, TopicPolicyInput } from '../connector/api-types.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { DEFAULT_ESCROW_POLICY, escrowPolicyBounds } from '../registry/assignment.js';
import { byteSizeOption, integerOption } from './option-parsers.js';

/** What Commander parses the policy flags into (`--chunk-bytes` becomes `chunkBytes`, ...). */
export interface PolicyFlags {
  readonly messageBytesMax?: number;
  readonly ttlMs?: number;
  readonly retentionMs?: number;
  /** true: --escrow; false: --no-escrow (set-policy only); absent: neither. */
  readonly escrow?: boolean;
  readonly chunkBytes?: number;
  readonly replicas?: number;
  readonly threshold?: number;
  readonly shares?: number;
  readonly auditApprovals?: number;
}

type EscrowKey = keyof EscrowPolicyDescription;

const escrowFlags: readonly { key: EscrowKey; flag: string; value: string; what: string }[] = [
  {
    key: 'replicas',
    flag: '--replicas',
    value: '<r>',
    what: 'holder organizations (not the sender) that keep each chunk',
  },
  {
    key: 'threshold',
    flag: '--threshold',
    value: '<k>',
    what: 'key shares an auditor needs to rebuild the key',
  },
  { key: 'shares', flag: '--shares', value: '<n>', what: 'key shares made, one per holder organization' },
  {
    key: 'chunkBytes',
    flag: '--chunk-bytes',
    value: '<size>',
    what: 'chunk of the ciphertext, in bytes or KiB/MiB',
  },
  { key: 'auditApprovals', flag: '--audit-approvals', value: '<a>', what: 'member approvals an audit needs' },
];

/** `1MiB` for the chunk size, the plain number for the rest. */
function defaultText(key: EscrowKey): string {
  const value = DEFAULT_ESCROW_POLICY[key];
  return key === 'chunkBytes' ? `${value / (1024 * 1024)}MiB` : String(value);
}

/**
 * Adds the policy flags to `command`: for `create`, values left out take the network defaults; for
 * `update` (set-policy) they stay as the topic has them, and `--no-escrow` turns escrow off.
 */
export function addPolicyOptions(command: Command, mode: 'create' | 'update'): Command {
  const unchanged = mode === 'update' ? ' (default: unchanged)' : '';
  command
    .option(
      '--message-bytes-max <size>',
      `largest payload, in bytes or KiB/MiB/GiB/TiB${unchanged}`,
      byteSizeOption('--message-bytes-max', 1),
    )
    .option(
      '--ttl-ms <ms>',
      `how long a message may wait for delivery${unchanged}`,
      integerOption('--ttl-ms', 1),
    )
    .option(
      '--retention-ms <ms>',
      `how long senders keep a payload after delivery${unchanged}`,
      integerOption('--retention-ms', 0),
    )
    .option(
      '--escrow',
      'escrow every message for auditors (DESIGN §7): its ciphertext in chunks on distinct holder ' +
        'organizations, its key k-of-n, so an approved audit needs no sender. --replicas and --shares ' +
        'are not checked against the organizations registered now (organizations join later): a send ' +
        'fails with NOT_ENOUGH_HOLDERS while fewer organizations other than the sender can hold',
    );
  if (mode === 'update') {
    command.option('--no-escrow', 'stop escrowing the messages sent from now on (standard availability)');
  }
  for (const { key, flag, value, what } of escrowFlags) {
    const bounds = escrowPolicyBounds[key];
    const range =
      key === 'threshold'
        ? `${bounds.min} to --shares`
        : key === 'chunkBytes'
          ? `${bounds.min / 1024}KiB to ${bounds.max / (1024 * 1024)}MiB`
          : `${bounds.min} to ${bounds.max}`;
    const parse =
      key === 'chunkBytes'
        ? byteSizeOption(flag, bounds.min, bounds.max)
        : integerOption(flag, bounds.min, bounds.max);
    const fallback = mode === 'update' ? `the topic's, else ${defaultText(key)}` : defaultText(key);
    command.option(
      `${flag} ${value}`,
      `escrow: ${what}, ${range} (default ${fallback}); needs --escrow${mode === 'update' ? ' or an escrow topic' : ''}`,
      parse,
    );
  }
  return command;
}

/** Whether any policy flag was given (set-policy with none would change nothing). */
export function anyPolicyFlag(flags: PolicyFlags): boolean {
  return (
    flags.messageBytesMax !== undefined ||
    flags.ttlMs !== undefined ||
    flags.retentionMs !== undefined ||
    flags.escrow !== undefined ||
    escrowFlags.some(({ key }) => flags[key] !== undefined)
  );
}

export function usage(message: string, commandPath: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.SchemaMismatch, `${message}; see \`ledgerbus ${commandPath} --help\``);
}

/**
 * The policy input the flags ask for, and the escrow parameters the topic will have (undefined for
 * a standard topic). `current` is the topic's policy for set-policy, undefined for create. Escrow
 * flags without escrow, and a threshold above the shares, are SCHEMA_MISMATCH naming the flags.
 */
export function policyInputFrom(
  flags: PolicyFlags,
  commandPath: string,
  current?: TopicDescription['policy'],
): { input: TopicPolicyInput; escrow: EscrowPolicyDescription | undefined } {
  const given = escrowFlags.filter(({ key }) => flags[key] !== undefined);
  const names = given.map(({ flag }) => flag).join(', ');
  const escrowOn = flags.escrow ?? current?.availability === 'escrow';
  if (given.length > 0 && !escrowOn) {
    throw usage(
      flags.escrow === false
        ? `${names} with --no-escrow: escrow parameters are for escrow topics; drop one or the other`
        : current === undefined
          ? `${names} set escrow parameters: add --escrow to make an escrow topic`
          : `${names} set escrow parameters, and the topic is not an escrow topic: add --escrow to make it one`,
      commandPath,
    );
  }
  let escrow: EscrowPolicyDescription | undefined;
  if (escrowOn) {
    const base = current?.escrow ?? DEFAULT_ESCROW_POLICY;
    escrow = {
      chunkBytes: flags.chunkBytes ?? base.chunkBytes,
      replicas: flags.replicas ?? base.replicas,
      threshold: flags.threshold ?? base.threshold,
      shares: flags.shares ?? base.shares,
      auditApprovals: flags.auditApprovals ?? base.auditApprovals,
    };
    if (escrow.threshold > escrow.shares) {
      const whose = (key: EscrowKey): string =>
        flags[key] !== undefined ? '' : current?.escrow !== undefined ? " (the topic's)" : ' (the default)';
      throw usage(
        `--threshold ${escrow.threshold}${whose('threshold')} is more than --shares ${escrow.shares}${whose('shares')}: ` +
          'a key cannot need more shares than are made; lower --threshold or raise --shares',
        commandPath,
      );
    }
  }
  const input: TopicPolicyInput = {
    ...(flags.messageBytesMax === undefined ? {} : { messageBytesMax: flags.messageBytesMax }),
    ...(flags.ttlMs === undefined ? {} : { ttlMs: flags.ttlMs }),
    ...(flags.retentionMs === undefined ? {} : { payloadRetentionMs: flags.retentionMs }),
    ...(flags.escrow === undefined ? {} : { availability: flags.escrow ? 'escrow' : 'standard' }),
    ...(given.length === 0
      ? {}
      : {
          escrow: Object.fromEntries(
            given.map(({ key }) => [key, flags[key]]),
          ) as Partial<EscrowPolicyDescription>,
        }),
  };
  return { input, escrow };
}

/** `escrow: chunkBytes 1048576, replicas 3, threshold 2, shares 3, auditApprovals 1`, or `standard`. */
export function availabilityText(escrow: EscrowPolicyDescription | undefined): string {
  if (escrow === undefined) return 'standard';
  const { chunkBytes, replicas, threshold, shares, auditApprovals } = escrow;
  return `escrow: chunkBytes ${chunkBytes}, replicas ${replicas}, threshold ${threshold}, shares ${shares}, auditApprovals ${auditApprovals}`;
}

/** The policy lines of `topic describe`. */
export function policyLines(policy: TopicDescription['policy']): string[] {
  return [
    `policy     messageBytesMax ${policy.messageBytesMax}, ttlMs ${policy.ttlMs}, payloadRetentionMs ${policy.payloadRetentionMs}`,
    `availability ${policy.availability === 'escrow' ? availabilityText(policy.escrow) : 'standard'}`,
  ];
}
