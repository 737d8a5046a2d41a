/**
 * A dataset file opened the one way jobs read it: read-only at the file (SQLITE_OPEN_READONLY) and
 * at the connection (`PRAGMA query_only`), with the QUANTILE aggregate registered. The job runner's
 * child process uses it, and so does the jobs benchmark when it runs a query directly.
 */
import Database from 'better-sqlite3';
import { quantileFunctionName, quantileOf } from '../../datashare/query/compile.js';
import { assert } from '../../errors.js';

/**
 * A column name as a SQL identifier. Loading makes every name match `columnNamePattern` (lower
 * case letters, digits and _), so it never holds a quote; anything else is a bug.
 */
export function quoteIdentifier(name: string): string {
  assert(/^[a-z_][a-z0-9_]*$/.test(name), `column name ${JSON.stringify(name)} is not a normalised name`);
  return `"${name}"`;
}

export function openDatasetReadOnly(file: string): Database.Database {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('query_only = 1');
    registerQuantile(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** One group's values so far, in a growing typed array (8 bytes a value, outside the JS heap). */
interface QuantileState {
  values: Float64Array;
  length: number;
  q: number;
}

/**
 * `lb_quantile(column, q)`: the exact q-quantile of the group's non-NULL values (compile.ts's
 * `quantileOf`), NULL for a group without any. It has to hold every value of a group; the child's
 * memory limit bounds what that may cost.
 */
export function registerQuantile(db: Database.Database): void {
  const step = (state: QuantileState, value: unknown, q: unknown): QuantileState => {
    state.q = Number(q);
    if (value === null || value === undefined) return state;
    if (state.length === state.values.length) {
      const grown = new Float64Array(Math.max(64, state.values.length * 2));
      grown.set(state.values);
      state.values = grown;
    }
    state.values[state.length++] = Number(value);
    return state;
  };
  db.aggregate<QuantileState>(quantileFunctionName, {
    start: () => ({ values: new Float64Array(0), length: 0, q: 0 }),
    step: step as (total: QuantileState, next: unknown) => QuantileState,
    result: (state) => {
      if (state.length === 0) return null;
      const sorted = state.values.subarray(0, state.length).sort();
      return quantileOf(sorted, state.q);
    },
  });
}
