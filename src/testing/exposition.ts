/**
 * Reading the Prometheus text exposition format (version 0.0.4) in tests, and linting it with
 * `promtool check metrics` where promtool is installed.
 */
import { spawnSync } from 'node:child_process';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One sample line: a name, optional `{labels}`, a value, an optional timestamp. */
const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$/;
/** One label pair; the value may hold escaped backslashes, quotes and newlines. */
const labelPair = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;

/** Every sample of `text`; comments and blank lines are skipped, anything else malformed throws. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const match = sampleLine.exec(line);
    if (match === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, valueText] = match as unknown as [string, string, string | undefined, string];
    samples.push({ name, labels: parseLabels(labelText ?? '', line), value: parseValue(valueText, line) });
  }
  return samples;
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  labelPair.lastIndex = 0;
  while (labelPair.lastIndex < text.length) {
    const at = labelPair.lastIndex;
    const match = labelPair.exec(text);
    if (match === null || match.index !== at) throw new Error(`bad labels in ${JSON.stringify(line)}`);
    const [, name, escaped] = match as unknown as [string, string, string];
    labels[name] = escaped.replace(/\\(.)/g, (_, character: string) =>
      character === 'n' ? '\n' : character,
    );
  }
  return labels;
}

/** A value as Prometheus reads it (Go's ParseFloat: NaN and Inf in any case; prom-client writes `Nan`). */
function parseValue(text: string, line: string): number {
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  if (lower === 'nan') return Number.NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`bad value in ${JSON.stringify(line)}`);
  return value;
}

/** The value of the sample named `name` whose labels are exactly `labels`, or undefined if there is none. */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.filter(
    (sample) =>
      sample.name === name &&
      Object.keys(sample.labels).length === wanted.length &&
      wanted.every(([key, value]) => sample.labels[key] === value),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} has ${found.length} samples`);
  return found[0]?.value;
}

/** As sampleValue, a missing counter reading as 0 (a series appears at its first increment). */
export function counterValue(
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  return sampleValue(samples, name, labels) ?? 0;
}

/**
 * What `promtool check metrics` says of `text`: its exit status and everything it printed, or
 * undefined when promtool is not installed.
 */
export function promtoolCheck(text: string): { status: number; output: string } | undefined {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error !== undefined) {
    if ((run.error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw run.error;
  }
  return { status: run.status ?? -1, output: `${run.stdout}${run.stderr}` };
}

/**
 * Whether a missing promtool fails the test instead of skipping its check: on CI (CI=true) it must
 * be there, so that the check cannot silently stop running.
 */
export function promtoolRequired(): boolean {
  return process.env['CI'] === 'true';
}
