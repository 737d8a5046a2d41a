/**
 * The results writer every ledgerbus benchmark uses, so that CI and people read one format.
 *
 * A benchmark measures a `value` and compares it with a `referenceValue` that bounds what this machine
 * could do (for example Ed25519 verifications per second divided by the work per request); `ratio`
 * is value ÷ referenceValue. The full record, with `details` and machine information, goes to
 * `bench/results/<name>-<timestamp>.json` and `bench/results/<name>-latest.json`; one JSON object with
 * the headline fields is printed as the LAST line of stdout, for scripts that only read that line.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export interface BenchResult {
  /** Short, file-name-safe identifier, e.g. "pbft". */
  readonly name: string;
  readonly value: number;
  /** Unit of `value`, e.g. "requests/s". */
  readonly unit: string;
  /** What `referenceValue` is, in words a reader can check. */
  readonly reference: string;
  readonly referenceValue: number;
  /** value ÷ referenceValue. */
  readonly ratio: number;
  /** A few scalar fields worth seeing on the last line too (kept short). */
  readonly summary?: Readonly<Record<string, string | number | boolean>>;
  /** Everything else, written to the JSON files only. */
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpuCount: number;
  readonly memoryBytes: number;
  readonly node: string;
  readonly platform: string;
  readonly arch: string;
}

const namePattern = /^[a-z0-9][a-z0-9-]*$/;

/** Where results go: bench/results next to this library, whatever the working directory. */
export const resultsDirectory = fileURLToPath(new URL('../results/', import.meta.url));

export function machineInfo(): MachineInfo {
  const cores = cpus();
  return {
    cpuModel: cores[0]?.model.trim() ?? 'unknown',
    cpuCount: cores.length,
    memoryBytes: totalmem(),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
  };
}

/**
 * Writes the result files (creating bench/results if needed), then prints the headline JSON object as
 * the last line of stdout. Call it once, at the very end: anything printed to stdout afterwards would
 * break the "last line" contract. Returns the path of the timestamped file.
 */
export function writeBenchResult(result: BenchResult): string {
  if (!namePattern.test(result.name)) {
    throw new Error(`bench result name "${result.name}" must match ${namePattern}`);
  }
  const timestamp = new Date().toISOString();
  const measured = {
    name: result.name,
    value: result.value,
    unit: result.unit,
    reference: result.reference,
    referenceValue: result.referenceValue,
    ratio: result.ratio,
  };
  const record = {
    ...measured,
    timestamp,
    machine: machineInfo(),
    ...(result.summary === undefined ? {} : { summary: result.summary }),
    ...(result.details === undefined ? {} : { details: result.details }),
  };
  mkdirSync(resultsDirectory, { recursive: true });
  const text = `${JSON.stringify(record, null, 2)}\n`;
  // Colons and dots are awkward in file names on some systems; the ISO form stays sortable.
  const file = join(resultsDirectory, `${result.name}-${timestamp.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, text);
  writeFileSync(join(resultsDirectory, `${result.name}-latest.json`), text);
  const headline = {
    ...measured,
    ...result.summary,
    timestamp,
    node: process.version,
    cpu: record.machine.cpuModel,
  };
  process.stdout.write(`${JSON.stringify(headline)}\n`);
  return file;
}

/** Rounds for display and for the JSON files: measurements are not precise to 15 digits. */
export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
