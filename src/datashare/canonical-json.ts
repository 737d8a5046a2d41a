/**
 * Canonical JSON: one text for one value, so a hash of it (a job's plan, a job's result) is the
 * same on the requester's and the owner's side. Object keys are sorted by UTF-16 code unit order
 * at every depth, arrays keep their order, numbers are JavaScript's shortest round-trip form
 * (JSON.stringify), and no whitespace is added.
 *
 * Only what JSON can say is accepted: a non-finite number, undefined, a function, a bigint, a
 * symbol, a class instance (Date, Map, Uint8Array...) or a cycle is a caller's bug — the values
 * hashed here are built by our own code — so it throws AssertionError rather than being silently
 * dropped or turned into null as JSON.stringify would.
 */
import { assert } from '../errors.js';

export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, new Set<object>(), '$');
  return parts.join('');
}

/** UTF-8 bytes of `canonicalJson(value)`. */
export function canonicalJsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}

function write(value: unknown, parts: string[], ancestors: Set<object>, path: string): void {
  if (value === null) {
    parts.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      parts.push(value ? 'true' : 'false');
      return;
    case 'number':
      assert(Number.isFinite(value), `canonical JSON has no ${String(value)} (at ${path})`);
      parts.push(JSON.stringify(value));
      return;
    case 'string':
      parts.push(JSON.stringify(value));
      return;
    case 'object':
      break;
    default:
      assert(false, `canonical JSON cannot hold a ${typeof value} (at ${path})`);
  }
  assert(!ancestors.has(value), `canonical JSON cannot hold a cycle (at ${path})`);
  ancestors.add(value);
  if (Array.isArray(value)) {
    parts.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) parts.push(',');
      // A hole reads as undefined, which is rejected like an explicit undefined.
      write(value[i], parts, ancestors, `${path}[${i}]`);
    }
    parts.push(']');
  } else {
    const prototype = Object.getPrototypeOf(value) as unknown;
    assert(
      prototype === Object.prototype || prototype === null,
      `canonical JSON holds plain objects only (at ${path})`,
    );
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    parts.push('{');
    keys.forEach((key, i) => {
      if (i > 0) parts.push(',');
      parts.push(JSON.stringify(key), ':');
      write(record[key], parts, ancestors, `${path}.${key}`);
    });
    parts.push('}');
  }
  ancestors.delete(value);
}
