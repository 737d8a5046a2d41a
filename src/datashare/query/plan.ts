/**
 * From what a requester writes (a `JobSpec`) to what runs (a `JobPlan`) and what the ledger holds
 * (its hash). Both sides compute the plan from the same spec — the requester before it submits,
 * the owner from the sealed spec it received — so the plan hash on the ledger names the job that
 * ran. The dataset's columns and the owner's policy are checked later (policy.ts).
 */
import { fromHex } from '../../codec/index.js';
import { sha256 } from '../../crypto/hash.js';
import { canonicalJsonBytes } from '../canonical-json.js';
import type { JobPlan, JobSpec, ModelKind, ModelPlan } from '../types.js';
import { modelFeaturesMax, modelIterationsMax, modelKinds, queryTextLengthMax } from '../types.js';
import { queryRejected } from './lexer.js';
import { parseAggregateQuery, parseCondition } from './parser.js';

export const defaultModelIterations = 25;
/** Longest dataset or column name a spec may carry (the catalog's limits are lower). */
const nameLengthMax = 128;

export function planOf(spec: JobSpec): JobPlan {
  if (spec.kind === 'aggregate') {
    const plan = parseAggregateQuery(spec.query);
    // FROM is an SQL name: unquoted it reads as lower case, so `FROM Loans` finds "Loans". The
    // plan keeps the dataset's own spelling.
    if (plan.dataset.toLowerCase() !== spec.dataset.toLowerCase()) {
      throw queryRejected(`the query reads FROM ${plan.dataset}, but the job is for dataset ${spec.dataset}`);
    }
    return { ...plan, dataset: spec.dataset };
  }
  return modelPlanOf(spec);
}

/** Bytes of a job's salt (`JobSpec.salt`, hex in the spec). */
export const planSaltBytes = 32;

/**
 * SHA-256 of the job's salt followed by the plan's canonical JSON: what the ledger records for a
 * job. The salt is random and travels only inside the sealed spec: without it, anyone who reads the
 * ledger (every replica operator, the supervisor) could confirm a guessed query against the hash —
 * the catalog lists the columns, so guesses are cheap.
 */
export function planHash(plan: JobPlan, salt: Uint8Array): Uint8Array {
  if (salt.length !== planSaltBytes) throw queryRejected(`a job's salt is ${planSaltBytes} bytes`);
  const json = canonicalJsonBytes(plan);
  const input = new Uint8Array(salt.length + json.length);
  input.set(salt, 0);
  input.set(json, salt.length);
  return sha256(input);
}

/** The salt a spec carries (QUERY_REJECTED if it has none, or not 64 hex digits). */
export function saltOf(spec: JobSpec): Uint8Array {
  if (spec.salt === undefined || !/^[0-9a-f]{64}$/.test(spec.salt)) {
    throw queryRejected(`the job carries no salt of ${planSaltBytes} bytes (64 hex digits)`);
  }
  return fromHex(spec.salt);
}

function modelPlanOf(spec: Extract<JobSpec, { kind: 'model' }>): ModelPlan {
  const { features, target } = spec;
  if (features.length < 1 || features.length > modelFeaturesMax) {
    throw queryRejected(`a model takes 1 to ${modelFeaturesMax} features, not ${features.length}`);
  }
  const seen = new Set<string>();
  for (const feature of features) {
    if (seen.has(feature)) throw queryRejected(`feature ${feature} is named twice`);
    seen.add(feature);
  }
  if (seen.has(target)) throw queryRejected(`the target ${target} cannot also be a feature`);
  const iterations = spec.iterations ?? defaultModelIterations;
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > modelIterationsMax) {
    throw queryRejected(`iterations must be an integer from 1 to ${modelIterationsMax}, not ${iterations}`);
  }
  const l2 = spec.l2 ?? 0;
  if (!Number.isFinite(l2) || l2 < 0) throw queryRejected(`l2 must be a finite number ≥ 0, not ${l2}`);
  return {
    kind: 'model',
    dataset: spec.dataset,
    model: spec.model,
    features: [...features],
    target,
    where: spec.where === undefined ? null : parseCondition(spec.where),
    iterations,
    l2,
  };
}

/**
 * A `JobSpec` from untrusted decoded JSON (the owner opening a sealed job): exactly the fields of
 * one kind of spec, of the right types and sizes; QUERY_REJECTED naming the first that is not.
 */
export function specOf(value: unknown): JobSpec {
  const record = objectOf(value, 'the job');
  if (record.kind === 'aggregate') {
    onlyFields(record, ['kind', 'dataset', 'query', 'salt']);
    return {
      kind: 'aggregate',
      dataset: nameOf(record.dataset, 'dataset'),
      query: stringOf(record.query, 'query', queryTextLengthMax),
      ...(record.salt === undefined ? {} : { salt: stringOf(record.salt, 'salt', 64) }),
    };
  }
  if (record.kind === 'model') {
    onlyFields(record, [
      'kind',
      'dataset',
      'model',
      'features',
      'target',
      'where',
      'iterations',
      'l2',
      'salt',
    ]);
    const model = record.model;
    if (!modelKinds.includes(model as ModelKind)) {
      throw queryRejected(`model must be one of ${modelKinds.join(', ')}, not ${shown(model)}`);
    }
    if (!Array.isArray(record.features) || record.features.length > modelFeaturesMax) {
      throw queryRejected(`features must be a list of at most ${modelFeaturesMax} column names`);
    }
    const features = (record.features as unknown[]).map((feature, i) => nameOf(feature, `features[${i}]`));
    return {
      kind: 'model',
      dataset: nameOf(record.dataset, 'dataset'),
      model: model as ModelKind,
      features,
      target: nameOf(record.target, 'target'),
      ...(record.where === undefined ? {} : { where: stringOf(record.where, 'where', queryTextLengthMax) }),
      ...(record.iterations === undefined ? {} : { iterations: numberOf(record.iterations, 'iterations') }),
      ...(record.l2 === undefined ? {} : { l2: numberOf(record.l2, 'l2') }),
      ...(record.salt === undefined ? {} : { salt: stringOf(record.salt, 'salt', 64) }),
    };
  }
  throw queryRejected(`the job's kind must be "aggregate" or "model", not ${shown(record.kind)}`);
}

function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw queryRejected(`${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function onlyFields(record: Record<string, unknown>, fields: readonly string[]): void {
  for (const key of Object.keys(record)) {
    if (!fields.includes(key)) throw queryRejected(`unknown field ${shown(key)} in the job`);
  }
}

function stringOf(value: unknown, field: string, lengthMax: number): string {
  if (typeof value !== 'string') throw queryRejected(`${field} must be a string`);
  if (value.length > lengthMax) throw queryRejected(`${field} is longer than ${lengthMax} characters`);
  return value;
}

function nameOf(value: unknown, field: string): string {
  const name = stringOf(value, field, nameLengthMax);
  if (name.length === 0) throw queryRejected(`${field} must not be empty`);
  return name;
}

function numberOf(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw queryRejected(`${field} must be a number`);
  return value;
}

function shown(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
