/**
 * `--help` for every benchmark: prints the leading doc comment of the benchmark's own file (where
 * each one says what it measures and lists its options) and exits, before any argument is parsed.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Exits 0 after printing the usage of the module at `moduleUrl` when --help or -h was given. */
export function showHelpIfAsked(moduleUrl: string, argv: readonly string[] = process.argv.slice(2)): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  console.log(usageOf(readFileSync(fileURLToPath(moduleUrl), 'utf8')));
  process.exit(0);
}

/** The text of the first block comment of `source`, without its comment markers. */
export function usageOf(source: string): string {
  const match = /\/\*\*([\s\S]*?)\*\//.exec(source);
  if (match === null) return 'no usage written for this benchmark';
  return (match[1] as string)
    .split('\n')
    .map((line) => line.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
}
