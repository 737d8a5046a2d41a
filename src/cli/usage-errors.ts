import type { Command, CommanderError } from 'commander';
import { ErrorCode, LedgerbusError } from '../errors.js';

/**
 * Usage errors (a missing option, `--partitions 0`) print as `error SCHEMA_MISMATCH: ...` and exit 2
 * like every other expected failure, instead of Commander's own format and exit status 1.
 */
export function withUsageErrors(command: Command, path: string): Command {
  return command.configureOutput({ outputError: () => {} }).exitOverride((error: CommanderError) => {
    // --help and --version: let Commander exit 0 as usual.
    if (error.exitCode === 0) return;
    const what =
      error.code === 'commander.help'
        ? 'name a subcommand'
        : error.message.replace(/^error: /, '').replace(/\.?\s*$/, '');
    throw new LedgerbusError(ErrorCode.SchemaMismatch, `${what}; see \`ledgerbus ${path} --help\``);
  });
}
