/**
 * Parsers of command-line option values shared by the admin commands. A bad value throws
 * Commander's InvalidArgumentError naming the flag, which the commands report as SCHEMA_MISMATCH
 * with the help to read, before anything is sent.
 */
import { InvalidArgumentError } from 'commander';

/** An integer option within [minimum, maximum]; `name` is the flag, as the error names it. */
export function integerOption(name: string, minimum: number, maximum = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < minimum || parsed > maximum) {
      const range =
        maximum === Number.MAX_SAFE_INTEGER
          ? minimum === 1
            ? 'a positive integer'
            : `an integer of at least ${minimum}`
          : `an integer from ${minimum} to ${maximum}`;
      throw new InvalidArgumentError(`${name} must be ${range}`);
    }
    return parsed;
  };
}

export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** For options that may repeat and also take comma lists: `--allow-produce a,b --allow-produce c`. */
export function collectList(value: string, previous: readonly string[]): string[] {
  return [...previous, ...splitList(value)];
}

const byteUnits = new Map<string, number>([
  ['', 1],
  ['b', 1],
  ['kib', 1024],
  ['mib', 1024 ** 2],
  ['gib', 1024 ** 3],
  ['tib', 1024 ** 4],
]);

/**
 * A size in bytes within [minimum, maximum]: an integer (`1048576`) or a whole number of binary
 * units (`64KiB`, `1MiB`, `8GiB`; case does not matter). Decimal units (kB, MB) are refused rather
 * than guessed at: 1 MB and 1 MiB differ by 5%.
 */
export function byteSizeOption(name: string, minimum: number, maximum = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const match = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(value);
    const unit = byteUnits.get((match?.[2] ?? '').toLowerCase());
    const parsed = match === null || unit === undefined ? Number.NaN : Number(match[1]) * unit;
    if (!Number.isSafeInteger(parsed) || parsed < minimum || parsed > maximum) {
      const range =
        maximum === Number.MAX_SAFE_INTEGER
          ? `of at least ${minimum} byte${minimum === 1 ? '' : 's'}`
          : `from ${minimum} to ${maximum} bytes`;
      throw new InvalidArgumentError(
        `${name} must be a size ${range}: an integer, or a whole number of KiB, MiB, GiB or TiB (64KiB, 1MiB)`,
      );
    }
    return parsed;
  };
}
