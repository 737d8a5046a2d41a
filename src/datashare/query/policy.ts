/**
 * The owner's side of a job before it runs: the plan checked against the dataset's columns and the
 * owner's policy (`checkPlan`), and the policy file read (`parseDatasetPolicy`). A plan that
 * passes names only columns the dataset has and the owner allows, uses only allowed functions and
 * model kinds, and compares and aggregates each column as its type permits — so what compile.ts
 * builds from it always runs. (That FROM names the dataset is `planOf`'s check.)
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type {
  AggregateFunction,
  ColumnInfo,
  ColumnType,
  Condition,
  DatasetPolicy,
  JobPlan,
  Literal,
  ModelKind,
  PolicySummary,
} from '../types.js';
import { aggregateFunctions, defaultDatasetPolicy, minGroupSizeFloor, modelKinds } from '../types.js';
import { queryRejected } from './lexer.js';

const numericTypes: readonly ColumnType[] = ['integer', 'real', 'boolean'];
/** A quantile within this of 0 (of 1) needs MIN (MAX) allowed too. */
export const quantileExtremeMargin = 0.05;

export function checkPlan(plan: JobPlan, columns: readonly ColumnInfo[], policy: PolicySummary): void {
  const column = (name: string, use: string): ColumnInfo => {
    const info = columns.find((c) => c.name === name);
    if (info === undefined) {
      const near = columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
      const hint = near === undefined ? '' : ` (it has ${near.name}: quote the name to keep its case)`;
      throw queryRejected(`column ${name} (${use}) is not in dataset ${plan.dataset}${hint}`);
    }
    if (policy.allowedColumns !== '*' && !policy.allowedColumns.includes(name)) {
      throw queryRejected(`column ${name} (${use}) is not allowed by the owner's policy`);
    }
    return info;
  };
  if (plan.kind === 'aggregate') {
    for (const item of plan.select) {
      if (item.type === 'group') {
        column(item.column, 'a group');
        continue;
      }
      if (!policy.aggregates.includes(item.fn)) {
        throw queryRejected(`${item.fn.toUpperCase()} is not allowed by the owner's policy (${item.alias})`);
      }
      // A quantile near 0 or 1 is (nearly) the smallest or largest value: MIN or MAX by another name.
      if (item.fn === 'quantile' && item.q !== undefined) {
        if (item.q < quantileExtremeMargin && !policy.aggregates.includes('min'))
          throw queryRejected(
            `${item.alias}: a quantile below ${quantileExtremeMargin} is close to the smallest value, and the owner's policy does not allow MIN`,
          );
        if (item.q > 1 - quantileExtremeMargin && !policy.aggregates.includes('max'))
          throw queryRejected(
            `${item.alias}: a quantile above ${1 - quantileExtremeMargin} is close to the largest value, and the owner's policy does not allow MAX`,
          );
      }
      if (item.column === null) continue;
      const info = column(item.column, item.alias);
      if (!aggregatesType(item.fn, info.type)) {
        throw queryRejected(
          `${item.alias}: ${item.fn.toUpperCase()} needs a numeric column, and ${info.name} is text`,
        );
      }
    }
    for (const name of plan.groupBy) column(name, 'a group');
  } else {
    if (!policy.models.includes(plan.model)) {
      throw queryRejected(`${plan.model} models are not allowed by the owner's policy`);
    }
    for (const feature of plan.features) {
      const info = column(feature, 'a feature');
      if (!numericTypes.includes(info.type)) {
        throw queryRejected(`feature ${feature} is ${info.type}: a model's features must be numeric`);
      }
    }
    const target = column(plan.target, 'the target');
    const targetTypes: readonly ColumnType[] =
      plan.model === 'logistic' ? ['boolean', 'integer'] : numericTypes;
    if (!targetTypes.includes(target.type)) {
      throw queryRejected(
        `the target ${target.name} is ${target.type}: a ${plan.model} model needs ${targetTypes.join(' or ')}`,
      );
    }
  }
  if (plan.where !== null) checkCondition(plan.where, (name) => column(name, 'in the filter'));
}

function checkCondition(condition: Condition, column: (name: string) => ColumnInfo): void {
  switch (condition.op) {
    case 'and':
    case 'or':
      for (const arg of condition.args) checkCondition(arg, column);
      return;
    case 'not':
      checkCondition(condition.arg, column);
      return;
    case 'cmp':
      checkComparison(column(condition.column), condition.value);
  }
}

function checkComparison(info: ColumnInfo, value: Literal): void {
  const literal = typeof value;
  // SQLite would compare a number with text by its own affinity rules, silently; refuse instead.
  const fits =
    info.type === 'text'
      ? literal === 'string'
      : info.type === 'real'
        ? literal === 'number'
        : literal === 'number' || literal === 'boolean';
  if (!fits) {
    const shown = typeof value === 'string' ? `'${value}'` : String(value);
    throw queryRejected(`column ${info.name} is ${info.type} and cannot be compared with ${shown}`);
  }
}

const policyFields: readonly (keyof DatasetPolicy)[] = [
  'allowedColumns',
  'aggregates',
  'models',
  'minGroupSize',
  'maxRows',
  'timeLimitMs',
  'memoryBytesMax',
  'resultRowsMax',
  'approval',
  'differenceCheck',
];

/**
 * A dataset policy file's decoded JSON: every field optional (the default is
 * `defaultDatasetPolicy`'s), none unknown; BAD_CONFIG naming the first field that is wrong.
 */
export function parseDatasetPolicy(value: unknown): DatasetPolicy {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badPolicy('the policy must be a JSON object');
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!policyFields.includes(key as keyof DatasetPolicy)) {
      throw badPolicy(`unknown field "${key}" (known: ${policyFields.join(', ')})`);
    }
  }
  const d = defaultDatasetPolicy;
  return {
    allowedColumns:
      record.allowedColumns === undefined ? d.allowedColumns : allowedColumnsOf(record.allowedColumns),
    aggregates:
      record.aggregates === undefined
        ? d.aggregates
        : listOf(record.aggregates, 'aggregates', aggregateFunctions),
    models: record.models === undefined ? d.models : listOf<ModelKind>(record.models, 'models', modelKinds),
    minGroupSize: integerOf(record.minGroupSize, 'minGroupSize', d.minGroupSize, minGroupSizeFloor),
    maxRows: integerOf(record.maxRows, 'maxRows', d.maxRows, 1),
    timeLimitMs: integerOf(record.timeLimitMs, 'timeLimitMs', d.timeLimitMs, 1),
    memoryBytesMax: integerOf(record.memoryBytesMax, 'memoryBytesMax', d.memoryBytesMax, 1),
    resultRowsMax: integerOf(record.resultRowsMax, 'resultRowsMax', d.resultRowsMax, 1),
    approval: record.approval === undefined ? d.approval : approvalOf(record.approval),
    differenceCheck:
      record.differenceCheck === undefined ? d.differenceCheck : booleanOf(record.differenceCheck),
  };
}

function badPolicy(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadConfig, `dataset policy: ${message}`);
}

function allowedColumnsOf(value: unknown): readonly string[] | '*' {
  if (value === '*') return '*';
  if (!Array.isArray(value) || !value.every((c) => typeof c === 'string' && c.length > 0)) {
    throw badPolicy('allowedColumns must be "*" or a list of column names');
  }
  if (new Set(value).size !== value.length) throw badPolicy('allowedColumns names a column twice');
  return [...(value as string[])];
}

function listOf<T extends string>(value: unknown, field: string, known: readonly T[]): readonly T[] {
  if (!Array.isArray(value)) throw badPolicy(`${field} must be a list (of ${known.join(', ')})`);
  for (const entry of value) {
    if (!known.includes(entry as T)) {
      throw badPolicy(`${field} holds ${JSON.stringify(entry)}; the known ones are ${known.join(', ')}`);
    }
  }
  if (new Set(value).size !== value.length) throw badPolicy(`${field} names an entry twice`);
  return [...(value as T[])];
}

function integerOf(value: unknown, field: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw badPolicy(`${field} must be an integer of at least ${min}, not ${JSON.stringify(value)}`);
  }
  return value;
}

function approvalOf(value: unknown): 'auto' | 'manual' {
  if (value !== 'auto' && value !== 'manual') throw badPolicy('approval must be "auto" or "manual"');
  return value;
}

function booleanOf(value: unknown): boolean {
  if (typeof value !== 'boolean') throw badPolicy('differenceCheck must be true or false');
  return value;
}

/** COUNT, MIN and MAX take any column; SUM, AVG and QUANTILE need numbers. */
function aggregatesType(fn: AggregateFunction, type: ColumnType): boolean {
  return fn === 'count' || fn === 'min' || fn === 'max' || type !== 'text';
}
