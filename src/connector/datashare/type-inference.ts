/**
 * How a loaded dataset's columns get their names and types (issue 15, `ledgerbus dataset add`).
 *
 * Names: a header is normalised to `columnNamePattern` (catalog.ts) — lower case, anything but
 * [a-z0-9_] becomes `_`, a leading digit gets the prefix `c_`, an empty header is `col_N` (N its
 * 1-based position), and a name already taken gets `_2`, `_3`... — so a job names columns the same
 * way on every side, and a column name never needs quoting rules of its own.
 *
 * Types: every value of a column is looked at (the load is streamed, so this costs nothing extra)
 * and the column gets the narrowest type that holds them all: integer (safe integers only), then
 * real, boolean (true/false in any case), text otherwise. Integers and reals mix to real; anything
 * else mixed is text. An empty cell is NULL and says nothing; a column of NULLs alone is text.
 * Numbers written with leading zeros (`007`, a postcode, an account number) are identifiers, not
 * quantities: they make the column text so nothing is lost.
 */
import { assert } from '../../errors.js';
import { catalogLimits, columnNamePattern } from '../../registry/catalog.js';
import type { ColumnType } from '../../datashare/types.js';

/** What one cell says about its column's type; `null` says nothing. */
export type CellKind = 'integer' | 'real' | 'boolean' | 'text' | null;

const integerText = /^[+-]?(0|[1-9][0-9]*)$/;
// A decimal or exponent form; the integer part, if any, without leading zeros (as above).
const realText = /^[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

/** The kind of a CSV cell (already trimmed); '' is NULL. */
export function kindOfText(text: string): CellKind {
  if (text === '') return null;
  if (integerText.test(text)) return Number.isSafeInteger(Number(text)) ? 'integer' : 'real';
  if (realText.test(text)) return Number.isFinite(Number(text)) ? 'real' : 'text';
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === 'false') return 'boolean';
  return 'text';
}

/**
 * A JSON value's cell text and kind, for JSONL loads: JSON already says what a value is, so a
 * string stays text even when it looks like a number. The text is what the staging table keeps
 * (numbers in JavaScript's shortest round-trip form, so `Number(text)` gives the same number back).
 */
export function jsonCell(value: unknown): { text: string | null; kind: CellKind } {
  if (value === null || value === undefined || value === '') return { text: null, kind: null };
  switch (typeof value) {
    case 'number':
      return {
        text: String(value),
        kind: Number.isSafeInteger(value) ? 'integer' : 'real',
      };
    case 'boolean':
      return { text: value ? 'true' : 'false', kind: 'boolean' };
    case 'string':
      return { text: value, kind: 'text' };
    default:
      // Nested objects and arrays are kept as their JSON text.
      return { text: JSON.stringify(value), kind: 'text' };
  }
}

/** Folds cell kinds into a column type, one cell at a time. */
export class ColumnTypeInference {
  private seen: CellKind = null;

  add(kind: CellKind): void {
    if (kind === null || kind === this.seen) return;
    const seen = this.seen;
    if (seen === null) this.seen = kind;
    else if (seen === 'text') return;
    else if ((seen === 'integer' && kind === 'real') || (seen === 'real' && kind === 'integer'))
      this.seen = 'real';
    else this.seen = 'text';
  }

  get type(): ColumnType {
    return this.seen ?? 'text';
  }
}

/**
 * Gives columns their normalised, distinct names one at a time (a JSONL file reveals its keys as
 * it goes). Throws (a plain Error, turned into SCHEMA_MISMATCH by the loader) only past the number
 * of columns the catalog can describe.
 */
export class ColumnNamer {
  /** At most `catalogLimits.columnsMax`: `add` throws past it. */
  private readonly taken = new Set<string>();

  get count(): number {
    return this.taken.size;
  }

  add(header: string): string {
    const position = this.taken.size + 1;
    if (position > catalogLimits.columnsMax)
      throw new Error(`more than ${catalogLimits.columnsMax} columns: a dataset has at most that many`);
    let base = normaliseColumnName(header);
    if (base === '') base = `col_${position}`;
    let name = base;
    for (let suffix = 2; this.taken.has(name); suffix++) {
      const tail = `_${suffix}`;
      name = `${base.slice(0, catalogLimits.columnNameLengthMax - tail.length)}${tail}`;
    }
    assert(columnNamePattern.test(name), `normalised column name "${name}" is not valid`);
    this.taken.add(name);
    return name;
  }
}

/** `header` as a column name before de-duplication ('' for an empty header). */
export function normaliseColumnName(header: string): string {
  let name = header
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_');
  if (/^[0-9]/.test(name)) name = `c_${name}`;
  return name.slice(0, catalogLimits.columnNameLengthMax);
}

/** Normalised, distinct names for a whole header row, in order. */
export function normaliseColumnNames(headers: readonly string[]): string[] {
  const namer = new ColumnNamer();
  return headers.map((header) => namer.add(header));
}
