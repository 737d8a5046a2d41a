/**
 * A running sha256 over everything a simulated run delivers, so that two versions of the runtime can
 * be shown to produce byte-identical runs for the same seed (`npm run sim -- --verbose` prints it).
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';

export class TraceDigest {
  private readonly hash: Hash = createHash('sha256');

  /** Adds one delivered event: a label (kind and destination) and its bytes or a plain value. */
  add(label: string, value: Uint8Array | unknown): void {
    this.hash.update(label);
    this.hash.update(value instanceof Uint8Array ? value : JSON.stringify(value, bytesAsHex));
  }

  /** The digest so far, as 16 hex characters (enough to tell runs apart). */
  hex(): string {
    return this.hash.copy().digest('hex').slice(0, 16);
  }
}

function bytesAsHex(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (typeof value === 'bigint') return value.toString();
  return value;
}
