/**
 * A job's result as it arrives from another organization's connector (DESIGN §8): decoded JSON
 * that must be a `JobOutput` — numbers about groups, or a model's parameters — before anything here
 * keeps or shows it. Anything else is JOB_FAILED naming what is wrong.
 */
import type { Cell, JobOutput } from '../../datashare/types.js';
import { modelKinds } from '../../datashare/types.js';
import type { ModelKind } from '../../datashare/types.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';

/** Most cells an aggregate result may hold here (the owner's policy bounds rows far below this). */
const cellsMax = 10_000_000;

export function jobOutputOf(value: unknown): JobOutput {
  const record = objectOf(value, 'the result');
  if (record['kind'] === 'aggregate') {
    const columns = stringsOf(record['columns'], 'columns');
    const rows = record['rows'];
    if (!Array.isArray(rows) || rows.length * Math.max(1, columns.length) > cellsMax)
      throw bad('rows must be a list');
    const checked = rows.map((row: unknown, index) => {
      if (!Array.isArray(row) || row.length !== columns.length)
        throw bad(`rows[${index}] must have ${columns.length} cells`);
      return row.map((cell: unknown): Cell => {
        if (cell === null || typeof cell === 'string' || typeof cell === 'boolean') return cell;
        if (typeof cell === 'number' && Number.isFinite(cell)) return cell;
        throw bad(`rows[${index}] holds a cell that is not a string, finite number, boolean or null`);
      });
    });
    return {
      kind: 'aggregate',
      columns,
      rows: checked,
      suppressedGroups: countOf(record['suppressedGroups'], 'suppressedGroups'),
      minGroupSize: countOf(record['minGroupSize'], 'minGroupSize'),
    };
  }
  if (record['kind'] === 'model') {
    const model = record['model'];
    if (!modelKinds.includes(model as ModelKind)) throw bad(`model must be one of ${modelKinds.join(', ')}`);
    const features = stringsOf(record['features'], 'features');
    const coefficients = record['coefficients'];
    if (
      !Array.isArray(coefficients) ||
      coefficients.length !== features.length ||
      !coefficients.every(isFiniteNumber)
    ) {
      throw bad('coefficients must be one finite number per feature');
    }
    const metrics = objectOf(record['metrics'], 'metrics');
    for (const [name, metric] of Object.entries(metrics)) {
      if (!isFiniteNumber(metric)) throw bad(`metrics.${name} must be a finite number`);
    }
    const target = record['target'];
    const intercept = record['intercept'];
    if (typeof target !== 'string') throw bad('target must be a column name');
    if (!isFiniteNumber(intercept)) throw bad('intercept must be a finite number');
    return {
      kind: 'model',
      model: model as ModelKind,
      features,
      target,
      coefficients: coefficients as number[],
      intercept,
      n: countOf(record['n'], 'n'),
      metrics: metrics as Record<string, number>,
    };
  }
  throw bad('kind must be "aggregate" or "model"');
}

function bad(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.JobFailed, `the job's result is malformed: ${message}`);
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw bad(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function stringsOf(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string'))
    throw bad(`${what} must be a list of names`);
  return [...(value as string[])];
}

function countOf(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw bad(`${what} must be a count`);
  return value;
}
