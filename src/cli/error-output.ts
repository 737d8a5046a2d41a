/**
 * How the CLI shows an expected failure: its stable code, its message, and on a line of its own
 * the remedy the error table (errors.ts) gives for the code, so every error says what to do.
 */
import { ErrorCode, errorInfo } from '../errors.js';
import type { LedgerbusError } from '../errors.js';

const knownCodes = new Set<string>(Object.values(ErrorCode));

/** The table's remedy for `code`, or undefined for a string that is not an ErrorCode. */
export function remedyOf(code: string): string | undefined {
  return knownCodes.has(code) ? errorInfo(code as ErrorCode).remedy : undefined;
}

/**
 * The text written to stderr for `error`: `error CODE: message` (plus `hint`), then an indented
 * `what to do:` line. Ends with a newline.
 */
export function errorText(error: LedgerbusError, hint = ''): string {
  return `error ${error.code}: ${error.message}${hint}\n${remedyLine(error.code)}`;
}

/**
 * A verdict of a `verify` command that found a problem, as `--json` prints it (`remedy` added when
 * the code is known) or as text (`INVALID CODE: reason` and the remedy line). Ends with a newline.
 */
export function invalidVerdict(json: boolean, code: string, reason: string): string {
  const remedy = remedyOf(code);
  if (json)
    return `${JSON.stringify({ valid: false, code, reason, ...(remedy === undefined ? {} : { remedy }) })}\n`;
  return `INVALID ${code}: ${reason}\n${remedyLine(code)}`;
}

function remedyLine(code: string): string {
  const remedy = remedyOf(code);
  return remedy === undefined ? '' : `  what to do: ${remedy}\n`;
}
